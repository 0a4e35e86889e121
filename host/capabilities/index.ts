// Every interface the host offers, by WIT interface name.
import type { HostInterface } from '../gate/gate.js';
import { addresses } from './addresses.js';
import { delegate } from './delegate.js';
import { dhcp } from './dhcp.js';
import { dhcpWire } from './dhcp-wire.js';
import { dns } from './dns.js';
import { files } from './files.js';
import { firewall } from './firewall.js';
import { forwardAccept } from './forward.js';
import { links } from './links.js';
import { log } from './log.js';
import { portmap } from './portmap.js';
import { routes } from './routes.js';
import { store } from './store.js';
import { sysctl } from './sysctl.js';
import { tc } from './tc.js';
import { neighbours } from './neighbours.js';
import { groups } from './groups.js';
import { uplinks } from './uplinks.js';

export const HOST_INTERFACES: Record<string, HostInterface> = {
  links, addresses, routes, sysctl, firewall: { ...firewall, ...forwardAccept }, portmap, tc, store, delegate, dns, log, files, neighbours, groups, uplinks,
  dhcp, 'dhcp-wire': dhcpWire,
};
