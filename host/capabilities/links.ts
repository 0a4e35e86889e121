// links: typed link operations, declared for the gate.
//
// Object rights (host/gate/ownership.ts): reading needs only the namespace
// grant; every change names the link it acts on and the right it needs —
// a link this attachment created has all of them, a config-declared one the
// rights its manifest gives the key (bridge: create/attach/change/address),
// CNI_IFNAME all of them in the container. Created links are recorded in the
// ledger before they exist, with the ifindex the kernel gave them (the
// sweep removes a link only while the link of its name still has it, and a
// later call's rights on it are checked the same way, see ownership.ts);
// the sweep removes veths and IFBs, and forgets bridges (shared, as the
// reference leaves them). A veth's entry names its other end too (`peer`):
// the kernel removes both ends when either goes, so removing either forgets
// the entry — the ledger must never go on naming a free name, which would
// give the attachment (and its DEL's sweep) whatever link takes it next.
import { closeSync, openSync, readSync } from 'node:fs';
import type { LinkInfo } from '../kernel/types.js';
import type { MacvlanMode, Rtnl } from '../kernel/rtnl.js';
import { type CallContext, type HostInterface, HostError, bindInterface, onNs } from '../gate/gate.js';
import type { LedgerEntry } from '../gate/ledger.js';
import type { Role } from './namespaces.js';
import type { Link, MacvlanInfo, MacvlanSpec, PortOptions, VethSpec } from '../wit.js';

type WitLink = Link;

function toWit(ctx: CallContext, ns: Role, l: LinkInfo): WitLink {
  let master = '';
  if (l.masterIndex) {
    try { master = ctx.ns.rtnl(ns).getLinkByIndex(l.masterIndex).name; } catch { master = ''; }
  }
  return { index: l.index, name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, master, promisc: l.promisc };
}

/** 8 random hex digits, as the reference names its veths (without loading crypto). */
export function randomSuffix(): string {
  const b = Buffer.alloc(4);
  const fd = openSync('/dev/urandom', 'r');
  try { readSync(fd, b, 0, 4, null); } finally { closeSync(fd); }
  return b.toString('hex');
}

/** The link of the first default route in the main table, IPv4 before IPv6 (the reference macvlan's default master); null for none. */
export function defaultRouteLink(r: Rtnl): LinkInfo | null {
  for (const family of [4, 6] as const) {
    for (const rt of r.listRoutes(family)) {
      if (/^(0\.0\.0\.0|::)\/0$/.test(rt.dst) && rt.ifindex && !rt.type) {
        try { return r.getLinkByIndex(rt.ifindex); } catch { /* vanished: try the next */ }
      }
    }
  }
  return null;
}

const IFNAME = /^[^\s/:%]{1,15}$/;
/** A kernel interface name; `%` is refused so the kernel never picks one (a `%d` template). */
export function checkName(name: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..' || Buffer.byteLength(name) > 15) {
    throw new HostError('EINVAL', `'${name}' is not a valid interface name`);
  }
}

const link = (kind: string, ns: Role, name: string, plugin: string, keep = false): LedgerEntry =>
  ({ kind: 'link', ns, name, linkKind: kind, plugin, ...(keep ? { keep: true } : {}) });

const grant = onNs('links');

/** What the kernel chose for a new link: its ifindex, recorded with the outcome. */
const choseIndex = (r: unknown) => [indexOf(r)];
const indexOf = (l: unknown) => {
  const i = (l as WitLink | undefined)?.index;
  return typeof i === 'number' && i > 0 ? { index: i } : undefined;
};

/** Entries naming link `name` in `ns`: the link itself, or a veth whose other end it is (the kernel removes both together). */
const namesLink = (ns: Role, name: string) => (e: LedgerEntry) => e.kind === 'link'
  && ((e.name === name && (e.ns ?? 'host') === ns) || (e.peer === name && e.peerNs === ns));

/** An entry after `name` in `ns` became `newName` (the link itself, or its veth peer), with what it recorded. */
function renamedEntry(e: LedgerEntry, ns: Role, name: string, newName: string, plugin: string): LedgerEntry {
  const out: LedgerEntry = { kind: 'link', ns: e.ns ?? 'host', name: e.name, linkKind: e.linkKind ?? '', plugin };
  for (const k of ['keep', 'index', 'peer', 'peerNs', 'peerIndex'] as const) if (e[k] !== undefined) (out as Record<string, unknown>)[k] = e[k];
  if (e.name === name && (e.ns ?? 'host') === ns) out.name = newName;
  if (e.peer === name && e.peerNs === ns) out.peer = newName;
  return out;
}

/** A change to one named link in `ns`, needing `right` on it. */
function onLink(right: 'change' | 'delete', run: (ctx: CallContext, ns: Role, name: string, ...rest: any[]) => unknown): HostInterface[string] {
  return {
    grant,
    prepare: (_ctx, ns: Role, name: string, ...rest: unknown[]) => { checkName(name); return [ns, name, ...rest]; },
    objects: (_ctx, ns: Role, name: string) => [{ ns, name, right }],
    run,
  };
}

/** A removal forgets the link's entry and the entry of its veth peer, which the kernel removed with it. */
const forgetsLink = (_ctx: CallContext, ns: Role, name: string) => namesLink(ns, name);

/** Removals begun and not yet finished in one plugin call (links.begin-remove). */
const MAX_REMOVALS = 4;
class Removals {
  private pending = new Map<string, { ns: Role; name: string; finish(): void }>();
  constructor(private readonly ctx: CallContext) {}
  begin(ns: Role, name: string, start: () => { finish(): void }): void {
    const key = `${ns}/${name}`;
    if (this.pending.has(key)) throw new HostError('EBUSY', `the removal of ${name} is already under way`);
    if (this.pending.size >= MAX_REMOVALS) throw new HostError('EAGAIN', `${MAX_REMOVALS} removals are already under way in this call; finish one first`);
    const r = start();
    this.pending.set(key, { ns, name, finish: () => r.finish() });
  }
  /** a removal of this link is under way (remove waits for finish-remove: the thread's request names the link) */
  has(ns: Role, name: string): boolean { return this.pending.has(`${ns}/${name}`); }
  finish(ns: Role, name: string): void {
    const key = `${ns}/${name}`;
    const r = this.pending.get(key);
    if (!r) throw new HostError('EINVAL', `no removal of ${name} was begun in this call`);
    this.pending.delete(key);
    r.finish();
  }
  /**
   * At the end of the plugin call, what was never finished is finished as
   * finish-remove would have been: through the gate (audited, as
   * session.links.finish-remove), so a link the kernel confirmed gone is
   * forgotten by the ledger, which must not go on naming a free name (it
   * would give this attachment, and its DEL's sweep, whatever link takes
   * the name next). What the gate refuses (the time limit had passed, the
   * audit cannot be written) is finished here and left to the sweep.
   */
  close(): void {
    if (this.pending.size) {
      const finish = bindInterface(this.ctx, 'session', { finishRemove: links.finishRemove },
        { finishRemove: { wit: 'links.finish-remove', params: ['ns', 'name'], hasResult: true } }).finishRemove;
      for (const { ns, name } of [...this.pending.values()]) {
        try { finish(ns, name); } catch { /* past the deadline: below */ }
      }
    }
    for (const r of this.pending.values()) { try { r.finish(); } catch { /* the sweep deals with what is left */ } }
    this.pending.clear();
  }
}
/** The plugin call's object under `key`, made at first use (closed when the call ends). */
function sessionOf<T extends { close(): void }>(ctx: CallContext, key: string, make: (ctx: CallContext) => T): T {
  let r = ctx.session.get(key) as T | undefined;
  if (!r) { r = make(ctx); ctx.session.set(key, r); }
  return r;
}
const REMOVALS = 'links.removals';
const removals = (ctx: CallContext): Removals => sessionOf(ctx, REMOVALS, (c) => new Removals(c));

/** Veth creations begun and not yet finished in one plugin call (links.begin-create-veth), by host end name. */
const MAX_CREATIONS = 4;
class VethCreations {
  private pending = new Map<string, { containerName: string; ids: number[]; finish(): void }>();
  constructor(private readonly ctx: CallContext) {}
  begin(spec: VethSpec, start: () => { finish(): void }): void {
    if (this.pending.has(spec.hostName)) throw new HostError('EBUSY', `the creation of ${spec.hostName} is already under way`);
    if (this.pending.size >= MAX_CREATIONS) throw new HostError('EAGAIN', `${MAX_CREATIONS} veth creations are already under way in this call; finish one first`);
    const r = start();
    this.pending.set(spec.hostName, { containerName: spec.containerName, ids: [], finish: () => r.finish() });
  }
  /** the gate's ledger ids for what begin sent (kept as intents until finish) */
  hold(hostName: string, ids: number[]): void { const p = this.pending.get(hostName); if (p) p.ids = ids; }
  ids(hostName: string): number[] {
    const p = this.pending.get(hostName);
    if (!p) throw new HostError('EINVAL', `no creation of veth ${hostName} was begun in this call`);
    return p.ids;
  }
  /** an end of a pair under way: not to be removed until it is finished */
  has(ns: Role, name: string): boolean {
    if (ns === 'host') return this.pending.has(name);
    for (const p of this.pending.values()) if (p.containerName === name) return true;
    return false;
  }
  finish(hostName: string): string {
    const p = this.pending.get(hostName);
    if (!p) throw new HostError('EINVAL', `no creation of veth ${hostName} was begun in this call`);
    this.pending.delete(hostName);
    p.finish();
    return p.containerName;
  }
  /**
   * At the end of the plugin call, what was never finished is finished
   * through the gate (audited as session.links.finish-create-veth, the ledger
   * settled, so a failed ADD's sweep removes the pair by its ifindex). What
   * the gate refuses (the time limit had passed) is finished here and its
   * ledger entry settled directly: confirmed if the kernel made the pair,
   * abandoned if it refused (then the name may be someone else's).
   */
  close(): void {
    if (this.pending.size) {
      const finish = bindInterface(this.ctx, 'session', { finishCreateVeth: links.finishCreateVeth },
        { finishCreateVeth: { wit: 'links.finish-create-veth', params: ['host-name'], hasResult: true } }).finishCreateVeth;
      for (const hostName of [...this.pending.keys()]) {
        try { finish(hostName); } catch { /* past the deadline: below */ }
      }
    }
    for (const [, p] of this.pending) {
      let made = true;
      try { p.finish(); } catch { made = false; }
      for (const id of p.ids) { try { if (made) this.ctx.ledger.confirm(id); else this.ctx.ledger.abandon(id); } catch { /* the intent stays for the sweep */ } }
    }
    this.pending.clear();
  }
}
const CREATIONS = 'links.veth-creations';
const creations = (ctx: CallContext): VethCreations => sessionOf(ctx, CREATIONS, (c) => new VethCreations(c));
/** A removal must not race a creation under way of the same link (its request names it). */
function notBeingCreated(ctx: CallContext, ns: Role, name: string): void {
  if ((ctx.session.get(CREATIONS) as VethCreations | undefined)?.has(ns, name)) {
    throw new HostError('EBUSY', `the creation of ${name} is under way; finish it with finish-create-veth`);
  }
}

/** create-veth's decisions, shared by its begin half. */
const vethDecl = {
  // both ends are new: the container end must be a name this attachment
  // may create there (CNI_IFNAME), the host end is the host's choice
  grant: () => ({ key: 'links' as const, ns: 'host' as const }),
  prepare: (_ctx: CallContext, spec: VethSpec) => {
    const s = { ...spec, hostName: spec.hostName || `veth${randomSuffix()}` };
    checkName(s.containerName);
    checkName(s.hostName);
    return [s];
  },
  objects: (_ctx: CallContext, spec: VethSpec) => [{ ns: 'container' as const, name: spec.containerName, right: 'create' as const }],
  check: (ctx: CallContext) => (ctx.plugin.grants.links?.container ? null : `plugin '${ctx.plugin.type}' has no "links": {"container": true} grant`),
  // one entry for the pair (the container end dies with its namespace), naming both ends
  creates: (ctx: CallContext, spec: VethSpec) => [{ ...link('veth', 'host', spec.hostName, ctx.plugin.type), peer: spec.containerName, peerNs: 'container' }],
};
const choseVeth = (r: unknown) => {
  const v = r as { host?: WitLink; container?: WitLink } | undefined;
  const host = indexOf(v?.host), peer = indexOf(v?.container);
  return [host || peer ? { ...host, ...(peer ? { peerIndex: peer.index } : {}) } : undefined];
};
// Created inside the container with its peer placed straight into the host
// namespace, so neither end ever clashes with a name elsewhere; txqueuelen 0
// on both ends, as the reference plugins' veths have it.
const vethOptions = (ctx: CallContext, spec: VethSpec) => ({
  mtu: spec.mtu || undefined, mac: spec.containerMac || undefined, peerNsFd: ctx.ns.hostFd(), txqlen: 0,
});
const vethPair = (ctx: CallContext, hostName: string, containerName: string) => ({
  host: toWit(ctx, 'host', ctx.ns.rtnl('host').getLink(hostName)),
  container: toWit(ctx, 'container', ctx.ns.rtnl('container').getLink(containerName)),
});

export const links: HostInterface = {
  get: {
    grant, reads: true,
    run: (ctx, ns: Role, name: string) => toWit(ctx, ns, ctx.ns.rtnl(ns).getLink(name)),
  },
  list: {
    grant, reads: true,
    run: (ctx, ns: Role) => ctx.ns.rtnl(ns).listLinks().map((l) => toWit(ctx, ns, l)),
  },
  createVeth: {
    ...vethDecl,
    chose: choseVeth,
    run: (ctx, spec: VethSpec) => {
      ctx.ns.rtnl('container').createVeth(spec.containerName, spec.hostName, vethOptions(ctx, spec));
      return vethPair(ctx, spec.hostName, spec.containerName);
    },
  },
  createBridge: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string, ...rest: unknown[]) => { checkName(name); return [name, ...rest]; },
    objects: (_ctx, name: string) => [{ ns: 'host', name, right: 'create' }],
    // a bridge is shared by every attachment on it: forgotten at DEL, not removed
    creates: (ctx, name: string) => [link('bridge', 'host', name, ctx.plugin.type, true)],
    chose: choseIndex,
    run: (ctx, name: string, mtu: number, vlanFiltering: boolean) => {
      const h = ctx.ns.rtnl('host');
      h.createBridge(name, { mtu: mtu || undefined, vlanFiltering });
      return toWit(ctx, 'host', h.getLink(name));
    },
  },
  createMacvlan: {
    // the master is a parent only: a macvlan plugin can never change, move or delete it
    grant: () => ({ key: 'links', ns: 'container' }),
    prepare: (_ctx, spec: MacvlanSpec) => {
      checkName(spec.name);
      checkName(spec.master);
      if (!Number.isInteger(spec.bcqueuelen) || spec.bcqueuelen < 0) throw new HostError('EINVAL', `invalid bcqueuelen ${spec.bcqueuelen}`);
      return [spec];
    },
    objects: (_ctx, spec: MacvlanSpec) => [{ ns: spec.masterNs, name: spec.master, right: 'parent' }, { ns: 'container', name: spec.name, right: 'create' }],
    // a master in the host namespace is looked up there
    check: (ctx, spec: MacvlanSpec) => (spec.masterNs === 'host' && !ctx.plugin.grants.links?.host ? `plugin '${ctx.plugin.type}' has no "links": {"host": true} grant` : null),
    creates: (ctx, spec: MacvlanSpec) => [link('macvlan', 'container', spec.name, ctx.plugin.type)],
    chose: choseIndex,
    run: (ctx, spec: MacvlanSpec) => {
      const c = ctx.ns.rtnl('container');
      const where = ctx.ns.rtnl(spec.masterNs);
      const m = where.getLink(spec.master);
      // Born in the container under a temporary name, then renamed: the
      // wanted name may exist on the host, and a failure leaves nothing there.
      const tmp = `mv${randomSuffix()}`;
      const opts = {
        mtu: spec.mtu || undefined, mac: spec.mac, bcQueueLen: spec.bcqueuelen || undefined,
        // txqueuelen 0, as the reference 1.1.1's macvlans have it (and seed 004 shows)
        txqlen: 0,
        nsFd: spec.masterNs === 'host' ? ctx.ns.fd('container')! : undefined,
      };
      where.createMacvlan(tmp, m.index, spec.mode as MacvlanMode, opts);
      try {
        c.setLink(tmp, { newName: spec.name });
      } catch (e) {
        try { c.deleteLink(tmp); } catch { /* gone with its namespace */ }
        throw e;
      }
      return toWit(ctx, 'container', c.getLink(spec.name));
    },
  },
  getMacvlan: {
    grant, reads: true,
    prepare: (_ctx, ns: Role, name: string) => { checkName(name); return [ns, name]; },
    run: (ctx, ns: Role, name: string): MacvlanInfo => {
      const l = ctx.ns.rtnl(ns).getLink(name);
      if (l.kind !== 'macvlan' || !l.macvlanMode) throw new HostError('EINVAL', `link '${name}' is not a macvlan`);
      return { mode: l.macvlanMode, bcqueuelen: l.bcQueueLen ?? 0 };
    },
  },
  defaultRouteLink: {
    grant, reads: true,
    run: (ctx, ns: Role) => {
      const l = defaultRouteLink(ctx.ns.rtnl(ns));
      if (!l) throw new HostError('ENOENT', `no default route interface found in the ${ns} namespace`);
      return toWit(ctx, ns, l);
    },
  },
  createIfb: {
    grant: onNs('links'),
    prepare: (_ctx, ns: Role, name: string, mtu: number, txqueuelen: number) => { checkName(name); return [ns, name, mtu, txqueuelen]; },
    // in the container a new name must be one this attachment may take there
    creates: (ctx, ns: Role, name: string) => (ctx.ledger.ownsLink(name, ns) ? [] : [link('ifb', ns, name, ctx.plugin.type)]),
    chose: choseIndex,
    run: (ctx, ns: Role, name: string, mtu: number, txqueuelen: number) => {
      const r = ctx.ns.rtnl(ns);
      r.createIfb(name, { mtu: mtu || undefined, txqlen: txqueuelen, up: true });
      return toWit(ctx, ns, r.getLink(name));
    },
  },
  // The host end of a container's veth, as the kernel says (both ends name each other, the peer is in the container netns).
  hostPeer: {
    grant: () => ({ key: 'links', ns: 'host' }), reads: true,
    prepare: (_ctx, name: string) => { checkName(name); return [name]; },
    check: (ctx) => (ctx.plugin.grants.links?.container ? null : `plugin '${ctx.plugin.type}' has no "links": {"container": true} grant`),
    run: (ctx, name: string) => {
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
  setUp: onLink('change', (ctx, ns, name, up: boolean) => { ctx.ns.rtnl(ns).setLink(name, { up }); }),
  setMtu: onLink('change', (ctx, ns, name, mtu: number) => { ctx.ns.rtnl(ns).setLink(name, { mtu }); }),
  setMac: {
    ...onLink('change', (ctx, ns, name, mac: string) => { ctx.ns.rtnl(ns).setLink(name, { mac }); }),
    // A passthru macvlan's MAC is its master's: the kernel would change the
    // master (a host link this attachment may only use as a parent).
    check: (ctx, ns: Role, name: string) => {
      let l: LinkInfo;
      try { l = ctx.ns.rtnl(ns).getLink(name); } catch { return null; } // let the kernel say it is gone
      return l.kind === 'macvlan' && l.macvlanMode === 'passthru'
        ? `'${name}' is a passthru macvlan: its MAC is its master's, which this attachment may not change` : null;
    },
  },
  setPromisc: onLink('change', (ctx, ns, name, on: boolean) => { ctx.ns.rtnl(ns).setLink(name, { promisc: on }); }),
  setMaster: {
    grant,
    prepare: (_ctx, ns: Role, name: string, master: string) => { checkName(name); if (master) checkName(master); return [ns, name, master]; },
    objects: (_ctx, ns: Role, name: string, master: string) =>
      [{ ns, name, right: 'change' as const }, ...(master ? [{ ns, name: master, right: 'attach' as const }] : [])],
    run: (ctx, ns: Role, name: string, master: string) => {
      const r = ctx.ns.rtnl(ns);
      r.setLink(name, { masterIndex: master ? r.getLink(master).index : 0 });
    },
  },
  rename: {
    grant,
    prepare: (_ctx, ns: Role, name: string, newName: string) => { checkName(name); checkName(newName); return [ns, name, newName]; },
    // in the container the new name must be one this attachment may take (CNI_IFNAME)
    objects: (_ctx, ns: Role, name: string, newName: string) =>
      [{ ns, name, right: 'change' as const }, ...(ns === 'container' ? [{ ns, name: newName, right: 'create' as const }] : [])],
    // the entries naming it (its own, or its veth peer's) are recorded again under the new name, ifindex kept
    creates: (ctx, ns: Role, name: string, newName: string) =>
      (name === newName ? [] : ctx.ledger.entries.filter(namesLink(ns, name)).map((e) => renamedEntry(e, ns, name, newName, ctx.plugin.type))),
    removes: (_ctx, ns: Role, name: string, newName: string) => (name === newName ? () => false : namesLink(ns, name)),
    after: (ctx, _r, ns: Role, name: string, newName: string) => ctx.owned.renamed(ns, name, newName),
    run: (ctx, ns: Role, name: string, newName: string) => { ctx.ns.rtnl(ns).setLink(name, { newName }); },
  },
  moveToContainer: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string) => { checkName(name); return [name]; },
    objects: (_ctx, name: string) => [{ ns: 'host', name, right: 'move' }],
    check: (ctx) => (ctx.plugin.grants.links?.container ? null : `plugin '${ctx.plugin.type}' has no "links": {"container": true} grant`),
    // it now lives (and dies) with the container namespace
    removes: (_ctx, name: string) => (e) => e.kind === 'link' && e.name === name && (e.ns ?? 'host') === 'host',
    after: (ctx, _r, name: string) => ctx.owned.moved(name, 'container'),
    run: (ctx, name: string) => { ctx.ns.rtnl('host').setLink(name, { nsFd: ctx.ns.fd('container')! }); },
  },
  setBridgePort: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string, opts: unknown) => { checkName(name); return [name, opts]; },
    objects: (_ctx, name: string) => [{ ns: 'host', name, right: 'change' }],
    run: (ctx, name: string, opts: PortOptions) => {
      ctx.ns.rtnl('host').setBridgePort(name, { hairpin: opts.hairpin, isolated: opts.isolated });
    },
  },
  joinBridge: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string, bridge: string, opts: unknown) => { checkName(name); checkName(bridge); return [name, bridge, opts]; },
    objects: (_ctx, name: string, bridge: string) => [{ ns: 'host', name, right: 'change' }, { ns: 'host', name: bridge, right: 'attach' }],
    run: (ctx, name: string, bridge: string, opts: PortOptions) => {
      const r = ctx.ns.rtnl('host');
      // up and enslaved in one request; port options only once it is a port
      r.setLink(name, { up: true, masterIndex: r.getLink(bridge).index });
      r.setBridgePort(name, { hairpin: opts.hairpin, isolated: opts.isolated });
    },
  },
  bridgeVlanAdd: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string, ...rest: unknown[]) => { checkName(name); return [name, ...rest]; },
    objects: (_ctx, name: string) => [{ ns: 'host', name, right: 'change' }],
    run: (ctx, name: string, vid: number, pvid: boolean, untagged: boolean, self: boolean) => {
      ctx.ns.rtnl('host').bridgeVlanAdd(name, vid, { pvid, untagged, self });
    },
  },
  // The tuning plugin's: only links this attachment may change in the container (CNI_IFNAME).
  getSettings: {
    grant: () => ({ key: 'links', ns: 'container' }), reads: true,
    prepare: (_ctx, name: string) => { checkName(name); return [name]; },
    objects: (_ctx, name: string) => [{ ns: 'container', name, right: 'change' }],
    run: (ctx, name: string) => {
      const l = ctx.ns.rtnl('container').getLink(name);
      return { mac: l.mac, mtu: l.mtu, promisc: l.promisc, allmulti: !!l.allmulti, txqlen: l.txqlen ?? 0 };
    },
  },
  setAllmulti: {
    grant: () => ({ key: 'links', ns: 'container' }),
    prepare: (_ctx, name: string, on: boolean) => { checkName(name); return [name, on]; },
    objects: (_ctx, name: string) => [{ ns: 'container', name, right: 'change' }],
    run: (ctx, name: string, on: boolean) => { ctx.ns.rtnl('container').setLink(name, { allmulti: on }); },
  },
  setTxqlen: {
    grant: () => ({ key: 'links', ns: 'container' }),
    prepare: (_ctx, name: string, qlen: number) => {
      checkName(name);
      if (!Number.isInteger(qlen) || qlen < 0 || qlen > 0x7fffffff) throw new HostError('EINVAL', `invalid txqueuelen ${qlen}`);
      return [name, qlen];
    },
    objects: (_ctx, name: string) => [{ ns: 'container', name, right: 'change' }],
    run: (ctx, name: string, qlen: number) => { ctx.ns.rtnl('container').setLink(name, { txqlen: qlen }); },
  },
  createDummy: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, name: string, mtu: number) => { checkName(name); return [name, mtu]; },
    objects: (_ctx, name: string) => [{ ns: 'host', name, right: 'create' }],
    creates: (ctx, name: string) => [link('dummy', 'host', name, ctx.plugin.type)],
    chose: choseIndex,
    run: (ctx, name: string, mtu: number) => {
      const h = ctx.ns.rtnl('host');
      h.createDummy(name, { mtu: mtu || undefined });
      return toWit(ctx, 'host', h.getLink(name));
    },
  },
  remove: {
    ...onLink('delete', (ctx, ns, name) => {
      notBeingCreated(ctx, ns, name);
      // not beside a removal begun of the same link, whose request (by name) may still be on its way to the kernel
      if ((ctx.session.get(REMOVALS) as Removals | undefined)?.has(ns, name)) throw new HostError('EBUSY', `the removal of ${name} is already under way; finish it with finish-remove`);
      ctx.ns.rtnl(ns).deleteLink(name);
    }),
    removes: forgetsLink,
  },
  // remove in two halves (the kernel's RCU wait overlaps the plugin's next
  // calls): begin needs the same right, finish forgets the ledger entry once
  // the kernel confirmed, as remove does
  beginRemove: {
    ...onLink('delete', (ctx, ns, name) => {
      notBeingCreated(ctx, ns, name);
      removals(ctx).begin(ns, name, () => ctx.ns.rtnl(ns).beginDeleteLink(name));
    }),
    // until finish-remove, no right on what it takes (the link, its veth peer): the names may be free already
    after: (ctx, _r, ns: Role, name: string) => {
      for (const e of ctx.ledger.entries.filter(namesLink(ns, name))) {
        const self = e.name === name && (e.ns ?? 'host') === ns;
        ctx.owned.suspend(e.ns ?? 'host', String(e.name), self, self
          ? `the removal of ${ns} link '${name}' is under way (finish it with finish-remove)`
          : `${e.ns ?? 'host'} link '${e.name}' goes with the removal of ${ns} link '${name}' under way (finish it with finish-remove)`);
      }
    },
  },
  finishRemove: {
    ...onLink('delete', (ctx, ns, name) => removals(ctx).finish(ns, name)),
    removes: forgetsLink,
  },
  // create-veth in two halves (the plugin's next calls overlap the kernel's
  // work): begin makes every decision and records the intent, finish settles it
  beginCreateVeth: {
    ...vethDecl,
    run: (ctx, spec: VethSpec) => {
      creations(ctx).begin(spec, () => ctx.ns.rtnl('container').beginCreateVeth(spec.containerName, spec.hostName, vethOptions(ctx, spec)));
      return spec.hostName;
    },
    defer: (ctx, ids, spec: VethSpec) => creations(ctx).hold(spec.hostName, ids),
  },
  finishCreateVeth: {
    grant: () => ({ key: 'links', ns: 'host' }),
    prepare: (_ctx, hostName: string) => { checkName(hostName); return [hostName]; },
    settles: (ctx, hostName: string) => creations(ctx).ids(hostName),
    chose: choseVeth,
    run: (ctx, hostName: string) => vethPair(ctx, hostName, creations(ctx).finish(hostName)),
  },
};
