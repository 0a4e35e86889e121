// tc: typed traffic control (a tbf, the ingress qdisc, an ingress redirect
// to an IFB, and listing them), never raw netlink or tc text from the guest.
//
// Object rights (declared below):
//   every function: arg `ns` + `link` name a link it acts on (list: reads).
//     ns container: only CNI_IFNAME, or an IFB this attachment created there.
//     ns host: only a veth or IFB this attachment created (never a bridge or
//       anything shared), or a host interface of the chain's prevResult that
//       the kernel confirms is the veth peer of CNI_IFNAME in the container
//       netns (indexes checked both ways, and the host end's
//       IFLA_LINK_NETNSID is the container netns's id).
//   redirect-ingress: `target` must be an IFB this attachment created, in
//     the same namespace. Grant: tc { host, container }.
// A qdisc put on a host link the attachment did not create (the host veth
// of a chain) is recorded in the ledger, before it is made, with the link's
// ifindex, so the sweep removes it only from that very link.
import { type CallContext, type HostInterface, HostError, always, onNs } from '../gate/gate.js';
import { declareUndo } from '../sweep.js';
import type { LedgerEntry } from '../gate/ledger.js';
import type { Rtnl } from '../kernel/rtnl.js';
import { Tc, pschedTicksPerUsec, type QdiscInfo, type QdiscParent, type TbfSpec } from '../kernel/tc.js';
import type { Role } from './namespaces.js';
import type { Tbf } from '../wit.js';

type WitTbf = Tbf;

const IFNAME = /^[^\s/:]{1,15}$/;
function checkName(name: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') throw new HostError('EINVAL', `'${name}' is not a valid interface name`);
}

function ownedEntry(ctx: CallContext, name: string, ns: Role): LedgerEntry | undefined {
  const e = ctx.ledger.entries.find((x) => x.kind === 'link' && x.name === name && (x.ns ?? 'host') === ns);
  // still the link it made (ownership checks the ifindex an earlier call recorded, once)
  return e && ctx.owned.has(ns, name, 'change') ? e : undefined;
}

/** The host link is a veth whose peer is CNI_IFNAME in the container netns. */
function isPeerOfIfname(ctx: CallContext, name: string): string | null {
  try {
    const h = ctx.ns.rtnl('host').getLink(name);
    if (h.kind !== 'veth') return `host link '${name}' is not a veth`;
    const c = ctx.ns.rtnl('container').getLink(ctx.ifname);
    // both ends name each other, and the host end's peer is in the container's netns
    const nsid = ctx.ns.rtnl('host').netnsId(ctx.ns.fd('container')!);
    if (c.kind !== 'veth' || c.peerIndex !== h.index || h.peerIndex !== c.index || nsid < 0 || h.linkNetnsid !== nsid) {
      return `host link '${name}' is not the veth peer of ${ctx.ifname} in the container`;
    }
    return null;
  } catch (e) {
    return `cannot verify that host link '${name}' is the veth peer of ${ctx.ifname}: ${(e as Error).message}`;
  }
}

export function mayShape(ctx: CallContext, ns: Role, link: string): string | null {
  if (typeof link !== 'string') return 'no link named';
  if (ns === 'container') {
    const e = ownedEntry(ctx, link, 'container');
    if (link === ctx.ifname || (e?.kind === 'link' && e.linkKind === 'ifb')) return null;
    return `container link '${link}' is neither CNI_IFNAME (${ctx.ifname}) nor an IFB this attachment created`;
  }
  const e = ownedEntry(ctx, link, 'host');
  if (e?.kind === 'link' && (e.linkKind === 'ifb' || e.linkKind === 'veth')) return null;
  if (!ctx.owned.has('host', link, 'change')) {
    return `host link '${link}' was not created by this attachment and is not a host interface in prevResult`;
  }
  return isPeerOfIfname(ctx, link);
}

function mayTarget(ctx: CallContext, ns: Role, target: string): string | null {
  const e = ownedEntry(ctx, target, ns);
  return e?.kind === 'link' && e.linkKind === 'ifb' ? null : `'${target}' is not an IFB this attachment created in the ${ns} namespace`;
}

const tcOf = (ctx: CallContext, ns: Role): Tc => new Tc(ctx.ns.rtnl(ns));

/** The ledger entry for a qdisc on a host link the attachment did not create (the host veth). */
function qdiscEntry(ctx: CallContext, ns: Role, link: string, parent: QdiscParent): LedgerEntry[] {
  if (ns !== 'host' || ownedEntry(ctx, link, 'host')) return [];
  if (ctx.ledger.entries.some((e) => e.kind === 'qdisc' && e.link === link && e.parent === parent)) return [];
  return [{ kind: 'qdisc', link, ifindex: ctx.ns.rtnl('host').getLink(link).index, parent, plugin: ctx.plugin.type }];
}

function toWitQdisc(q: QdiscInfo): { kind: string; handle: number; parent: number; tbf?: WitTbf } {
  return { kind: q.kind, handle: q.handle, parent: q.parent, tbf: q.tbf ? { rate: q.tbf.rate, buffer: q.tbf.buffer, limit: q.tbf.limit } : undefined };
}

function linkName(r: Rtnl, index: number): string {
  try { return r.getLinkByIndex(index).name; } catch { return ''; }
}

const grant = onNs('tc');
const named = (_ctx: CallContext, ns: Role, link: string, ...rest: unknown[]) => { checkName(link); return [ns, link, ...rest]; };

export const tc: HostInterface = {
  ticksPerUsec: { grant: always('tc'), reads: true, run: () => pschedTicksPerUsec() },
  setTbf: {
    grant, prepare: named, check: mayShape,
    creates: (ctx, ns: Role, link: string) => qdiscEntry(ctx, ns, link, 'root'),
    run: (ctx, ns: Role, link: string, spec: WitTbf, replace: boolean) => {
      const s: TbfSpec = { rate: BigInt(spec.rate), buffer: spec.buffer, limit: spec.limit };
      tcOf(ctx, ns).setTbf(link, s, replace ? 'replace' : 'add');
    },
  },
  addIngress: {
    grant, prepare: named, check: mayShape,
    creates: (ctx, ns: Role, link: string) => qdiscEntry(ctx, ns, link, 'ingress'),
    run: (ctx, ns: Role, link: string) => { tcOf(ctx, ns).addIngress(link); },
  },
  removeQdisc: {
    grant, check: mayShape,
    prepare: (ctx, ns: Role, link: string, parent: QdiscParent) => {
      checkName(link);
      if (parent !== 'root' && parent !== 'ingress') throw new HostError('EINVAL', `unknown qdisc parent '${String(parent)}'`);
      return [ns, link, parent];
    },
    removes: (_ctx, ns: Role, link: string, parent: QdiscParent) => (e) => ns === 'host' && e.kind === 'qdisc' && e.link === link && e.parent === parent,
    run: (ctx, ns: Role, link: string, parent: QdiscParent) => { tcOf(ctx, ns).deleteQdisc(link, parent); },
  },
  listQdiscs: {
    grant, prepare: named, check: mayShape, reads: true,
    run: (ctx, ns: Role, link: string) => tcOf(ctx, ns).listQdiscs(link).slice(0, 64).map(toWitQdisc),
  },
  redirectIngress: {
    grant,
    prepare: (_ctx, ns: Role, link: string, target: string) => { checkName(link); checkName(target); return [ns, link, target]; },
    check: (ctx, ns: Role, link: string, target: string) => mayShape(ctx, ns, link) ?? mayTarget(ctx, ns, target),
    // the filter lives on the ingress qdisc, which the ledger already holds
    run: (ctx, ns: Role, link: string, target: string) => { tcOf(ctx, ns).addRedirect(link, target); },
  },
  listIngressFilters: {
    grant, prepare: named, check: mayShape, reads: true,
    run: (ctx, ns: Role, link: string) => {
      const r = ctx.ns.rtnl(ns);
      return tcOf(ctx, ns).listIngressFilters(link).filter((f) => f.kind !== 'u32' || f.keys > 0).slice(0, 64).map((f) => ({
        kind: f.kind, prio: f.prio, protocol: f.protocol, classid: f.classid, matchAll: f.matchAll,
        redirects: f.actions.filter((a) => a.eaction === 'egress-redirect').slice(0, 16).map((a) => linkName(r, a.ifindex)),
      }));
    },
  },
};

/** For the sweep: the qdisc goes only if its link is still the one it was put on. */
export function sweepQdisc(e: LedgerEntry, rtnl: Rtnl): string | null {
  try {
    if (rtnl.getLink(String(e.link)).index !== e.ifindex) return null;
    new Tc(rtnl).deleteQdisc(String(e.link), e.parent as QdiscParent);
    return `tc.remove-qdisc ${e.link} ${e.parent}`;
  } catch {
    return null; // gone with its link, or already removed
  }
}

declareUndo('qdisc', (e, k) => sweepQdisc(e, k.rtnl('host')));
