// Every interface the host offers, by WIT interface name.
import type { HostInterface } from '../gate/gate.js';
import { addresses } from './addresses.js';
import { delegate } from './delegate.js';
import { dhcp } from './dhcp.js';
import { dhcpWire } from './dhcp-wire.js';
import { dns } from './dns.js';
import { firewall } from './firewall.js';
import { forwardAccept } from './forward.js';
import { links } from './links.js';
import { log } from './log.js';
import { portmap } from './portmap.js';
import { routes } from './routes.js';
import { store } from './store.js';
import { sysctl } from './sysctl.js';
import { tc } from './tc.js';

export const HOST_INTERFACES: Record<string, HostInterface> = {
  links, addresses, routes, sysctl, firewall: { ...firewall, ...forwardAccept }, portmap, tc, store, delegate, dns, log,
  dhcp, 'dhcp-wire': dhcpWire,
};
