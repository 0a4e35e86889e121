// routes: add/del/list, declared for the gate. A route out of a link needs
// the 'change' right on that link. In the host namespace a route must name
// its device, and its destination must be one of the attachment's own
// addresses (a host route to a container) or a config-declared prefix: a
// plugin cannot redirect the host's traffic elsewhere.
import { type CallContext, type HostInterface, HostError, onNs } from '../gate/gate.js';
import type { RouteInfo } from '../kernel/types.js';
import { checkName } from './links.js';
import type { Role } from './namespaces.js';
import type { Route } from '../wit.js';

type WitRoute = Route;

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
    onlink: r.onlink || undefined,
  };
}

const grant = onNs('routes');
const prepare = (_ctx: CallContext, ns: Role, r: WitRoute) => { if (r.dev) checkName(r.dev); return [ns, r]; };
const objects = (_ctx: CallContext, ns: Role, r: WitRoute) => (r.dev ? [{ ns, name: r.dev, right: 'change' as const }] : []);

function check(ctx: CallContext, ns: Role, r: WitRoute): string | null {
  if (ns !== 'host') return null;
  if (!r.dev) return 'a host route must name its device';
  const [ip, len] = r.dst.split('/');
  const host = len === undefined || len === (ip.includes(':') ? '128' : '32');
  if (!host) return `host route ${r.dst}: only host routes (/32, /128) to this attachment's own addresses may be added in the host namespace`;
  return ctx.owned.address(ip);
}

const entry = (ctx: CallContext, r: WitRoute) => ({ kind: 'route', dst: r.dst, gw: r.gw, dev: r.dev, plugin: ctx.plugin.type });
const same = (r: WitRoute) => (e: { kind: string; dst?: unknown; dev?: unknown }) => e.kind === 'route' && e.dst === r.dst && e.dev === r.dev;

export const routes: HostInterface = {
  add: {
    grant, prepare, objects, check,
    creates: (ctx, ns: Role, r: WitRoute) => (ns === 'host' ? [entry(ctx, r)] : []),
    run: (ctx, ns: Role, r: WitRoute) => { ctx.ns.rtnl(ns).addRoute(toKernel(ctx, ns, r)); },
  },
  addEcmp: {
    grant, prepare, objects, check,
    creates: (ctx, ns: Role, r: WitRoute) => (ns === 'host' ? [entry(ctx, r)] : []),
    run: (ctx, ns: Role, r: WitRoute) => { ctx.ns.rtnl(ns).addRoute(toKernel(ctx, ns, r), { exclusive: false }); },
  },
  del: {
    grant, prepare, objects,
    // in the host only a route this attachment added: never the host's own
    check: (ctx, ns: Role, r: WitRoute) => (ns !== 'host' ? null : !r.dev ? 'a host route must name its device'
      : ctx.ledger.entries.some(same(r)) ? null : `host route ${r.dst} dev ${r.dev} was not added by this attachment`),
    removes: (_ctx, ns: Role, r: WitRoute) => (e) => ns === 'host' && same(r)(e),
    run: (ctx, ns: Role, r: WitRoute) => { ctx.ns.rtnl(ns).delRoute(toKernel(ctx, ns, r)); },
  },
  list: {
    grant, reads: true,
    run: (ctx, ns: Role, family: 'v4' | 'v6') => {
      const rt = ctx.ns.rtnl(ns);
      const names = new Map(rt.listLinks().map((l) => [l.index, l.name]));
      return rt.listRoutes(family === 'v4' ? 4 : 6).map((x) => ({
        dst: x.dst, gw: x.gw ?? '', dev: x.ifindex ? names.get(x.ifindex) ?? '' : '',
        src: x.src ?? '', metric: x.metric ?? 0, scope: x.scope ?? '', onlink: !!x.onlink,
      }));
    },
  },
};
