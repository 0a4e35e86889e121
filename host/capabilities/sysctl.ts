// sysctl: read/write /proc/sys/net/... in a namespace. Container-side keys
// are the container's own; host-side keys must match the grant's patterns.
//   objects: arg `key` names a sysctl of `ns`; right: read/change. Host: only
//   the grant's `keys`. Container: any net/ key, unless the grant narrows it
//   (`containerKeys`, `containerAllowlist`: the tuning plugin's policy).
import { type CallContext, type HostInterface, nsGranted } from '../gate/gate.js';
import { globMatch } from '../gate/policy.js';
import { sysctlGet, sysctlSet } from '../kernel/sysctl.js';
import type { Role } from './namespaces.js';
import { allowlistRefusal } from './sysctl-allowlist.js';

const g = (ctx: CallContext) => ctx.plugin.grants.sysctl;

function authorize(ctx: CallContext, ns: Role, key: string): string | null {
  const denied = nsGranted(g(ctx), ns);
  if (denied) return denied;
  if (!/^net\/[A-Za-z0-9_.\/-]+$/.test(key) || key.split('/').includes('..')) return `sysctl key '${key}' is outside net/`;
  if (ns === 'container') {
    const grant = g(ctx)!;
    if (grant.containerKeys && !grant.containerKeys.some((p) => globMatch(p, key))) return `container sysctl '${key}' is not in the plugin's granted container keys`;
    return grant.containerAllowlist ? allowlistRefusal(grant.containerAllowlist, key, ctx.ifname) : null;
  }
  const keys = g(ctx)?.keys ?? [];
  return keys.some((p) => globMatch(p, key)) ? null : `host sysctl '${key}' is not in the plugin's granted keys`;
}

export const sysctl: HostInterface = {
  get: { authorize, run: (ctx, ns: Role, key: string) => sysctlGet(ctx.ns.fd(ns), key).trim() },
  set: {
    authorize: (ctx, ns: Role, key: string) => authorize(ctx, ns, key),
    run: (ctx, ns: Role, key: string, value: string) => {
      // Skip the write when the value is already right: it is the common case
      // (ip_forward on a busy node) and a write costs a syscall round.
      const fd = ctx.ns.fd(ns);
      if (sysctlGet(fd, key).trim() === value) return;
      sysctlSet(fd, key, value);
    },
  },
};
