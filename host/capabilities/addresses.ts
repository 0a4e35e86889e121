// addresses: add/del/list on a named link. In the host namespace the link
// must be the attachment's own or config-named (the bridge's gateway address).
import { type CallContext, type HostInterface, HostError, linkAccess, nsGranted } from '../gate/gate.js';
import type { Role } from './namespaces.js';

const g = (ctx: CallContext) => ctx.plugin.grants.addresses;
const fam = (f: 'v4' | 'v6'): 4 | 6 => (f === 'v4' ? 4 : 6);

const SETTLE_POLL_MS = 50;
const pause = new Int32Array(new SharedArrayBuffer(4));

export const addresses: HostInterface = {
  add: {
    authorize: (ctx, ns: Role, link: string) => linkAccess(ctx, g(ctx), ns, link),
    run: (ctx, ns: Role, link: string, cidr: string, noDad: boolean) => {
      const r = ctx.ns.rtnl(ns);
      r.addAddress(r.getLink(link).index, cidr, { noDad });
      if (ns === 'host') ctx.ledger.add({ kind: 'address', link, cidr, plugin: ctx.plugin.type });
    },
  },
  del: {
    authorize: (ctx, ns: Role, link: string) => linkAccess(ctx, g(ctx), ns, link),
    run: (ctx, ns: Role, link: string, cidr: string) => {
      const r = ctx.ns.rtnl(ns);
      r.delAddress(r.getLink(link).index, cidr);
      if (ns === 'host') ctx.ledger.forget((e) => e.kind === 'address' && e.link === link && e.cidr === cidr);
    },
  },
  list: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role, link: string, family: 'v4' | 'v6') => {
      const r = ctx.ns.rtnl(ns);
      const index = r.getLink(link).index;
      return r.listAddresses({ ifindex: index, family: fam(family) })
        .map((a) => ({ cidr: a.cidr, family: a.family === 4 ? 'v4' : 'v6', scope: a.scope }));
    },
  },
  settle: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role, link: string, timeoutMs: number) => {
      const r = ctx.ns.rtnl(ns);
      const index = r.getLink(link).index;
      // never past the plugin's own time limit: the wait is synchronous
      const deadline = Date.now() + Math.min(timeoutMs, ctx.policy.timeoutMs);
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
