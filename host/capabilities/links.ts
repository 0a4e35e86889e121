// links: typed link operations. Container-side links are the plugin's to
// manage; host-side ones only when owned by the attachment or config-named.
import { closeSync, openSync, readSync } from 'node:fs';
import type { LinkInfo } from '../kernel/types.js';
import type { MacvlanMode } from '../kernel/rtnl.js';
import { type CallContext, type HostInterface, HostError, linkAccess, mayChangeHostLink, nsGranted } from '../gate/gate.js';
import type { Role } from './namespaces.js';

interface WitLink { index: number; name: string; kind: string; mtu: number; mac: string; up: boolean; master: string; promisc: boolean }

function toWit(ctx: CallContext, ns: Role, l: LinkInfo): WitLink {
  let master = '';
  if (l.masterIndex) {
    try { master = ctx.ns.rtnl(ns).getLinkByIndex(l.masterIndex).name; } catch { master = ''; }
  }
  return { index: l.index, name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, master, promisc: l.promisc };
}

/** 8 random hex digits, as the reference names its veths (without loading crypto). */
function randomSuffix(): string {
  const b = Buffer.alloc(4);
  const fd = openSync('/dev/urandom', 'r');
  try { readSync(fd, b, 0, 4, null); } finally { closeSync(fd); }
  return b.toString('hex');
}

const IFNAME = /^[^\s/:]{1,15}$/;
function checkName(name: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') throw new HostError('EINVAL', `'${name}' is not a valid interface name`);
}

const g = (ctx: CallContext) => ctx.plugin.grants.links;

/** An operation on one named link in `ns`. */
function onLink(run: (ctx: CallContext, ns: Role, name: string, ...rest: any[]) => unknown): HostInterface[string] {
  return {
    authorize: (ctx, ns: Role, name: string) => linkAccess(ctx, g(ctx), ns, name),
    run: (ctx, ns: Role, name: string, ...rest: unknown[]) => { checkName(name); return run(ctx, ns, name, ...rest); },
  };
}

export const links: HostInterface = {
  get: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role, name: string) => toWit(ctx, ns, ctx.ns.rtnl(ns).getLink(name)),
  },
  list: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role) => ctx.ns.rtnl(ns).listLinks().map((l) => toWit(ctx, ns, l)),
  },
  createVeth: {
    authorize: (ctx) => nsGranted(g(ctx), 'host') ?? nsGranted(g(ctx), 'container'),
    run: (ctx, spec: { containerName: string; hostName: string; mtu: number; containerMac: string }) => {
      checkName(spec.containerName);
      const hostName = spec.hostName || `veth${randomSuffix()}`;
      checkName(hostName);
      const c = ctx.ns.rtnl('container');
      // Created inside the container with its peer placed straight into the
      // host namespace, so neither end ever clashes with a name elsewhere.
      c.createVeth(spec.containerName, hostName, {
        mtu: spec.mtu || undefined, mac: spec.containerMac || undefined, peerNsFd: ctx.ns.hostFd(),
        // txqueuelen 0 on both ends, as the reference plugins' veths have it
        txqlen: 0,
      });
      ctx.ledger.add({ kind: 'link', name: hostName, linkKind: 'veth', plugin: ctx.plugin.type });
      return {
        host: toWit(ctx, 'host', ctx.ns.rtnl('host').getLink(hostName)),
        container: toWit(ctx, 'container', c.getLink(spec.containerName)),
      };
    },
  },
  createBridge: {
    authorize: (ctx) => nsGranted(g(ctx), 'host'),
    run: (ctx, name: string, mtu: number, vlanFiltering: boolean) => {
      checkName(name);
      const h = ctx.ns.rtnl('host');
      h.createBridge(name, { mtu: mtu || undefined, vlanFiltering });
      ctx.ledger.add({ kind: 'link', name, linkKind: 'bridge', plugin: ctx.plugin.type });
      return toWit(ctx, 'host', h.getLink(name));
    },
  },
  createMacvlan: {
    authorize: (ctx, _name: string, master: string) => nsGranted(g(ctx), 'container') ?? nsGranted(g(ctx), 'host') ?? mayChangeHostLink(ctx, master),
    run: (ctx, name: string, master: string, mode: MacvlanMode, mtu: number) => {
      checkName(name);
      const h = ctx.ns.rtnl('host');
      const m = h.getLink(master);
      // A temporary host-side name, then moved: the container name may exist on the host.
      const tmp = `mv${randomSuffix()}`;
      h.createMacvlan(tmp, m.index, mode, { mtu: mtu || undefined, nsFd: ctx.ns.fd('container')! });
      const c = ctx.ns.rtnl('container');
      c.setLink(tmp, { newName: name });
      return toWit(ctx, 'container', c.getLink(name));
    },
  },
  createIfb: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role, name: string, mtu: number, txqueuelen: number) => {
      checkName(name);
      const r = ctx.ns.rtnl(ns);
      // Recorded first: should the process die right after, DEL still finds it.
      const entry = { kind: 'link' as const, name, linkKind: 'ifb', plugin: ctx.plugin.type, ...(ns === 'container' ? { ns: 'container' as const } : {}) };
      const known = ctx.ledger.ownsLink(name, ns);
      if (!known) ctx.ledger.add(entry);
      try {
        r.createIfb(name, { mtu: mtu || undefined, txqlen: txqueuelen, up: true });
      } catch (e) {
        if (!known) ctx.ledger.forget((x) => x.kind === 'link' && x.name === name && (x.ns ?? 'host') === ns);
        throw e;
      }
      return toWit(ctx, ns, r.getLink(name));
    },
  },
  hostPeer: {
    authorize: (ctx) => nsGranted(g(ctx), 'host') ?? nsGranted(g(ctx), 'container'),
    run: (ctx, name: string) => {
      checkName(name);
      const c = ctx.ns.rtnl('container').getLink(name);
      if (c.kind !== 'veth' || !c.peerIndex) throw new HostError('EINVAL', `container link '${name}' is not a veth`);
      let h: LinkInfo;
      try {
        h = ctx.ns.rtnl('host').getLinkByIndex(c.peerIndex);
      } catch {
        throw new HostError('ENOENT', `veth peer with index ${c.peerIndex} is not in host ns`);
      }
      const nsid = ctx.ns.rtnl('host').netnsId(ctx.ns.fd('container')!);
      if (h.kind !== 'veth' || h.peerIndex !== c.index || nsid < 0 || h.linkNetnsid !== nsid) {
        throw new HostError('ENOENT', `veth peer with index ${c.peerIndex} is not in host ns`);
      }
      return toWit(ctx, 'host', h);
    },
  },
  setUp: onLink((ctx, ns, name, up: boolean) => { ctx.ns.rtnl(ns).setLink(name, { up }); }),
  setMtu: onLink((ctx, ns, name, mtu: number) => { ctx.ns.rtnl(ns).setLink(name, { mtu }); }),
  setMac: onLink((ctx, ns, name, mac: string) => { ctx.ns.rtnl(ns).setLink(name, { mac }); }),
  setPromisc: onLink((ctx, ns, name, on: boolean) => { ctx.ns.rtnl(ns).setLink(name, { promisc: on }); }),
  setMaster: {
    authorize: (ctx, ns: Role, name: string, master: string) =>
      linkAccess(ctx, g(ctx), ns, name) ?? (master ? linkAccess(ctx, g(ctx), ns, master) : null),
    run: (ctx, ns: Role, name: string, master: string) => {
      const r = ctx.ns.rtnl(ns);
      r.setLink(name, { masterIndex: master ? r.getLink(master).index : 0 });
    },
  },
  rename: {
    authorize: (ctx, ns: Role, name: string) => linkAccess(ctx, g(ctx), ns, name),
    run: (ctx, ns: Role, name: string, newName: string) => {
      checkName(newName);
      ctx.ns.rtnl(ns).setLink(name, { newName });
      if (ns === 'host') ctx.ledger.renameLink(name, newName);
    },
  },
  moveToContainer: {
    authorize: (ctx, name: string) => linkAccess(ctx, g(ctx), 'host', name) ?? nsGranted(g(ctx), 'container'),
    run: (ctx, name: string) => {
      ctx.ns.rtnl('host').setLink(name, { nsFd: ctx.ns.fd('container')! });
      ctx.ledger.forget((e) => e.kind === 'link' && e.name === name && !e.ns);
    },
  },
  setBridgePort: {
    authorize: (ctx, name: string) => linkAccess(ctx, g(ctx), 'host', name),
    run: (ctx, name: string, opts: { hairpin: boolean; isolated: boolean }) => {
      ctx.ns.rtnl('host').setBridgePort(name, { hairpin: opts.hairpin, isolated: opts.isolated });
    },
  },
  bridgeVlanAdd: {
    authorize: (ctx, name: string) => linkAccess(ctx, g(ctx), 'host', name),
    run: (ctx, name: string, vid: number, pvid: boolean, untagged: boolean, self: boolean) => {
      ctx.ns.rtnl('host').bridgeVlanAdd(name, vid, { pvid, untagged, self });
    },
  },
  remove: onLink((ctx, ns, name) => {
    ctx.ns.rtnl(ns).deleteLink(name);
    ctx.ledger.forget((e) => e.kind === 'link' && e.name === name && (e.ns ?? 'host') === ns);
  }),
};
