// uplinks: an ENI lent to a bridge (vpc-bridge L2), declared for the gate.
//
// Every call needs the 'lend' right on the uplink, which only a manifest
// key can give (vpc-bridge: "eniName", or the link "eniMACAddress" names):
// a link the attachment created has it too, but nothing else does, so the
// host's own interfaces cannot be lent by a plugin that merely names them.
// The bridge must be one this attachment created (its ledger holds it,
// possibly as a copy of the group's entries). Each change is recorded first
// with what is needed to give it back; the sweep gives it back.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { declareUndo } from '../sweep.js';
import { canonicalIp } from '../gate/ownership.js';
import { endpointNatAdd, endpointNatDel, natTable, uplinkNatAdd, uplinkNatDel } from '../kernel/bridgenat.js';
import { KernelError } from '../kernel/types.js';
import type { Rtnl } from '../kernel/rtnl.js';
import { checkName } from './links.js';

interface Prior { mtu: number; up: boolean; defaultGw: string }

const grant = always('uplinks');

function parseNet(cidr: string): Address4 | Address6 {
  if (Address4.isValid(cidr) && cidr.includes('/')) return new Address4(cidr);
  if (Address6.isValid(cidr) && cidr.includes('/')) return new Address6(cidr);
  throw new HostError('EINVAL', `'${cidr}' is not an address with a prefix`);
}

const sameAddr = (a: string, b: string) => canonicalIp(a) === canonicalIp(b) && a.split('/')[1] === b.split('/')[1];

/** The bridge an uplink is a port of, if this attachment created it. */
function lentTo(ctx: CallContext, uplink: string): string | null {
  const r = ctx.ns.rtnl('host');
  const l = r.getLink(uplink);
  if (!l.masterIndex) return null;
  const m = r.getLinkByIndex(l.masterIndex).name;
  return ctx.ledger.ownsLink(m, 'host') ? m : null;
}

function defaultVia(r: Rtnl, ifindex: number, family: 4 | 6): string {
  return r.listRoutes(family).find((x) => x.dst === (family === 4 ? '0.0.0.0/0' : '::/0') && x.ifindex === ifindex && x.gw && !x.type)?.gw ?? '';
}

export const uplinks: HostInterface = {
  lend: {
    grant,
    prepare: (ctx, uplink: string, bridge: string, cidr: string, gateway: string, mtu: number) => {
      checkName(uplink); checkName(bridge);
      const net = parseNet(cidr);
      const gw = canonicalIp(gateway);
      if (gw === null || gateway.includes('/')) throw new HostError('EINVAL', `'${gateway}' is not an IP address`);
      const g = gw.includes(':') ? new Address6(gw) : new Address4(gw);
      if (g.v4 !== net.v4 || !g.isInSubnet(net as never)) throw new HostError('EINVAL', `gateway ${gateway} is not in ${cidr}`);
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new HostError('EINVAL', `invalid MTU ${mtu}`);
      return [uplink, bridge, cidr, gateway, mtu];
    },
    objects: (_ctx, uplink: string, bridge: string) => [{ ns: 'host', name: uplink, right: 'lend' }, { ns: 'host', name: bridge, right: 'attach' }],
    check: (ctx, _uplink: string, bridge: string) => (ctx.ledger.ownsLink(bridge, 'host') ? null : `host link '${bridge}' was not created by this attachment: an uplink is lent only to a bridge the attachment made`),
    // what the uplink was, read once the call is allowed and before the intent is written
    creates: (ctx, uplink: string, bridge: string, cidr: string, gateway: string) => {
      const r = ctx.ns.rtnl('host');
      const l = r.getLink(uplink);
      const prior: Prior = { mtu: l.mtu, up: l.up, defaultGw: defaultVia(r, l.index, cidr.includes(':') ? 6 : 4) };
      return [{ kind: 'lend', uplink, bridge, cidr, gateway, mtu: prior.mtu, up: prior.up, defaultGw: prior.defaultGw, plugin: ctx.plugin.type }];
    },
    run: (ctx, uplink: string, bridge: string, cidr: string, gateway: string, mtu: number) => {
      const r = ctx.ns.rtnl('host');
      const l = r.getLink(uplink), br = r.getLink(bridge);
      if (l.masterIndex && l.masterIndex !== br.index) throw new HostError('EBUSY', `${uplink} is a port of another link`);
      const family = cidr.includes(':') ? 6 : 4;
      if (!r.listAddresses({ ifindex: l.index, family }).some((a) => sameAddr(a.cidr, cidr))) {
        throw new HostError('ENOENT', `${uplink} does not have the address ${cidr}`);
      }
      r.delAddress(l.index, cidr);
      r.setLink(uplink, { up: false });
      r.setLink(uplink, { mtu });
      r.setLink(uplink, { masterIndex: br.index });
      r.setLink(uplink, { up: true });
      r.addAddress(br.index, cidr);
      r.addRoute({ family, dst: family === 4 ? '0.0.0.0/0' : '::/0', gw: gateway, ifindex: br.index });
    },
  },
  natAdd: {
    grant,
    prepare: (_ctx, uplink: string) => { checkName(uplink); natTable(uplink); return [uplink]; },
    objects: (_ctx, uplink: string) => [{ ns: 'host', name: uplink, right: 'lend' }],
    check: (ctx, uplink: string) => (lentTo(ctx, uplink) ? null : `${uplink} is not lent to a bridge of this attachment`),
    creates: (ctx, uplink: string) => [{ kind: 'uplink-nat', uplink, plugin: ctx.plugin.type }],
    run: (ctx, uplink: string) => uplinkNatAdd(uplink, ctx.ns.rtnl('host').getLink(uplink).mac, ctx.ns.fd('host')),
  },
  endpointAdd: {
    grant,
    prepare: (_ctx, uplink: string, ip: string, mac: string) => { checkName(uplink); return [uplink, ip, mac.toLowerCase()]; },
    objects: (_ctx, uplink: string) => [{ ns: 'host', name: uplink, right: 'lend' }],
    check: (ctx, uplink: string, ip: string) => ctx.owned.address(ip) ?? (lentTo(ctx, uplink) ? null : `${uplink} is not lent to a bridge of this attachment`),
    creates: (ctx, uplink: string, ip: string) => [{ kind: 'uplink-endpoint', uplink, ip, plugin: ctx.plugin.type }],
    run: (ctx, uplink: string, ip: string, mac: string) => endpointNatAdd(uplink, ip, mac, ctx.ns.fd('host')),
  },
  endpointDel: {
    grant,
    prepare: (_ctx, uplink: string, ip: string) => { checkName(uplink); return [uplink, ip]; },
    objects: (_ctx, uplink: string) => [{ ns: 'host', name: uplink, right: 'lend' }],
    check: (ctx, uplink: string, ip: string) => ctx.owned.address(ip),
    removes: (_ctx, uplink: string, ip: string) => (e) => e.kind === 'uplink-endpoint' && e.uplink === uplink && e.ip === ip,
    run: (ctx, uplink: string, ip: string) => endpointNatDel(uplink, ip, ctx.ns.fd('host')),
  },
};

const goneErr = (e: unknown) => e instanceof KernelError && ['ENODEV', 'ENOENT', 'EADDRNOTAVAIL', 'ESRCH', 'EEXIST'].includes(e.code);
function quietly(fn: () => void): void {
  try { fn(); } catch (e) { if (!goneErr(e)) throw e; }
}

// The uplink as it was: off the bridge, its MTU, its address, its state and its default route.
declareUndo('lend', (e, k) => {
  const r = k.rtnl('host');
  const uplink = String(e.uplink), cidr = String(e.cidr);
  let l;
  try { l = r.getLink(uplink); } catch (err) { if (goneErr(err)) return null; throw err; }
  quietly(() => { const br = r.getLink(String(e.bridge)); r.delAddress(br.index, cidr); });
  if (l.masterIndex) r.setLink(uplink, { masterIndex: 0 });
  if (typeof e.mtu === 'number' && l.mtu !== e.mtu) r.setLink(uplink, { mtu: e.mtu });
  quietly(() => r.addAddress(l.index, cidr));
  r.setLink(uplink, { up: e.up === true });
  if (e.defaultGw) {
    const family = cidr.includes(':') ? 6 : 4;
    quietly(() => r.addRoute({ family, dst: family === 4 ? '0.0.0.0/0' : '::/0', gw: String(e.defaultGw), ifindex: l.index }));
  }
  return `uplinks.lend given back: ${uplink} ${cidr}`;
});
declareUndo('uplink-nat', (e) => { uplinkNatDel(String(e.uplink)); return `uplinks.nat-del ${e.uplink}`; });
declareUndo('uplink-endpoint', (e) => { endpointNatDel(String(e.uplink), String(e.ip)); return `uplinks.endpoint-del ${e.ip}`; });
