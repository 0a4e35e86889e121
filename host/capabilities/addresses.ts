// addresses: add/del/list/settle on a named link, declared for the gate.
// Object rights: a change needs the 'address' right on the link (the
// attachment's own links, CNI_IFNAME, a config-declared bridge). In the host
// namespace the address itself must be the attachment's: one of its IPs or
// its IPAM result's gateway (the bridge's gateway address). A host address is
// shared by every attachment of the network, so the sweep forgets it.
import { type CallContext, type HostInterface, HostError, onNs } from '../gate/gate.js';
import { checkName } from './links.js';
import type { Role } from './namespaces.js';

const fam = (f: 'v4' | 'v6'): 4 | 6 => (f === 'v4' ? 4 : 6);

const SETTLE_POLL_MS = 50;
const pause = new Int32Array(new SharedArrayBuffer(4));

const grant = onNs('addresses');
const named = (_ctx: CallContext, ns: Role, link: string, ...rest: unknown[]) => { checkName(link); return [ns, link, ...rest]; };
const onLink = (_ctx: CallContext, ns: Role, link: string) => [{ ns, name: link, right: 'address' as const }];

export const addresses: HostInterface = {
  add: {
    grant, prepare: named, objects: onLink,
    check: (ctx, ns: Role, _link: string, cidr: string) => (ns === 'host' ? ctx.owned.hostAddress(cidr) : null),
    creates: (ctx, ns: Role, link: string, cidr: string) => (ns === 'host' ? [{ kind: 'address', link, cidr, plugin: ctx.plugin.type, keep: true }] : []),
    run: (ctx, ns: Role, link: string, cidr: string, noDad: boolean) => {
      const r = ctx.ns.rtnl(ns);
      r.addAddress(r.getLink(link).index, cidr, { noDad });
    },
  },
  del: {
    grant, prepare: named, objects: onLink,
    removes: (_ctx, ns: Role, link: string, cidr: string) => (e) => ns === 'host' && e.kind === 'address' && e.link === link && e.cidr === cidr,
    run: (ctx, ns: Role, link: string, cidr: string) => {
      const r = ctx.ns.rtnl(ns);
      r.delAddress(r.getLink(link).index, cidr);
    },
  },
  list: {
    grant, reads: true,
    run: (ctx, ns: Role, link: string, family: 'v4' | 'v6') => {
      const r = ctx.ns.rtnl(ns);
      const index = r.getLink(link).index;
      return r.listAddresses({ ifindex: index, family: fam(family) })
        .map((a) => ({ cidr: a.cidr, family: a.family === 4 ? 'v4' : 'v6', scope: a.scope }));
    },
  },
  settle: {
    grant, reads: true,
    run: (ctx, ns: Role, link: string, timeoutMs: number) => {
      const r = ctx.ns.rtnl(ns);
      const index = r.getLink(link).index;
      // never past the call's own deadline: the wait is synchronous
      const deadline = Math.min(Date.now() + timeoutMs, ctx.deadline - 50);
      for (;;) {
        const busy = r.listAddresses({ ifindex: index }).filter((a) => a.tentative || a.dadFailed);
        if (!busy.length) return;
        if (Date.now() >= deadline) {
          throw new HostError('ETIMEDOUT', `link ${link} still has tentative addresses (${busy.map((a) => a.cidr).join(', ')}) after ${timeoutMs} ms`);
        }
        Atomics.wait(pause, 0, 0, SETTLE_POLL_MS);
      }
    },
  },
};
