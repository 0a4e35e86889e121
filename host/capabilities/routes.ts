// routes: add/del/list. A host route must go out of a link the attachment
// owns or its config names.
import { type CallContext, type HostInterface, HostError, linkAccess, nsGranted } from '../gate/gate.js';
import type { RouteInfo } from '../kernel/types.js';
import type { Role } from './namespaces.js';

interface WitRoute { dst: string; gw: string; dev: string; src: string; metric: number; scope: string }

const g = (ctx: CallContext) => ctx.plugin.grants.routes;

function toKernel(ctx: CallContext, ns: Role, r: WitRoute): RouteInfo {
  const family = r.dst.includes(':') ? 6 : 4;
  if (r.gw && r.gw.includes(':') !== (family === 6)) throw new HostError('EINVAL', `gateway ${r.gw} and destination ${r.dst} are of different IP families`);
  return {
    family, dst: r.dst,
    gw: r.gw || undefined,
    ifindex: r.dev ? ctx.ns.rtnl(ns).getLink(r.dev).index : undefined,
    src: r.src || undefined,
    metric: r.metric || undefined,
    scope: r.scope || undefined,
  };
}

function authorize(ctx: CallContext, ns: Role, r: WitRoute): string | null {
  if (ns === 'host' && !r.dev) return nsGranted(g(ctx), ns) ?? 'a host route must name its device';
  return linkAccess(ctx, g(ctx), ns, r.dev || null);
}

export const routes: HostInterface = {
  add: {
    authorize,
    run: (ctx, ns: Role, r: WitRoute) => {
      ctx.ns.rtnl(ns).addRoute(toKernel(ctx, ns, r));
      if (ns === 'host') ctx.ledger.add({ kind: 'route', dst: r.dst, gw: r.gw, dev: r.dev, plugin: ctx.plugin.type });
    },
  },
  addEcmp: {
    authorize,
    run: (ctx, ns: Role, r: WitRoute) => {
      ctx.ns.rtnl(ns).addRoute(toKernel(ctx, ns, r), { exclusive: false });
      if (ns === 'host') ctx.ledger.add({ kind: 'route', dst: r.dst, gw: r.gw, dev: r.dev, plugin: ctx.plugin.type });
    },
  },
  del: {
    authorize,
    run: (ctx, ns: Role, r: WitRoute) => {
      ctx.ns.rtnl(ns).delRoute(toKernel(ctx, ns, r));
      if (ns === 'host') ctx.ledger.forget((e) => e.kind === 'route' && e.dst === r.dst && e.dev === r.dev);
    },
  },
  list: {
    authorize: (ctx, ns: Role) => nsGranted(g(ctx), ns),
    run: (ctx, ns: Role, family: 'v4' | 'v6') => {
      const rt = ctx.ns.rtnl(ns);
      const names = new Map(rt.listLinks().map((l) => [l.index, l.name]));
      return rt.listRoutes(family === 'v4' ? 4 : 6).map((x) => ({
        dst: x.dst, gw: x.gw ?? '', dev: x.ifindex ? names.get(x.ifindex) ?? '' : '',
        src: x.src ?? '', metric: x.metric ?? 0, scope: x.scope ?? '',
      }));
    },
  },
};
