// sysctl: read/write /proc/sys/net/... in a namespace, declared for the gate.
// Only keys under net/. A key that names an interface (net/ipv4/conf/<if>/...,
// net/ipv6/conf/<if>/..., net/ipv4/neigh/<if>/..., net/ipv6/neigh/<if>/...)
// needs the 'change' right on that interface, unless it is 'all' or
// 'default'. Host keys must also match the grant's patterns, where a '*' in
// the interface position matches only such interfaces.
import { type CallContext, type HostInterface, onNs } from '../gate/gate.js';
import { globMatch } from '../gate/policy.js';
import { sysctlEnsure, sysctlGet, sysctlSet } from '../kernel/sysctl.js';
import type { Role } from './namespaces.js';
import { allowlistRefusal } from './sysctl-allowlist.js';
import { declareUndo } from '../sweep.js';
import { KernelError } from '../kernel/types.js';

const KEY = /^net\/[A-Za-z0-9_.\/-]+$/;

const isInterfaceKey = (key: string) => /^net\/ipv[46]\/(conf|neigh)\/[^/]+\/./.test(key);

/** The interface a key is about, if any. */
function keyInterface(key: string): string | null {
  const p = key.split('/');
  if (p.length >= 5 && (p[1] === 'ipv4' || p[1] === 'ipv6') && (p[2] === 'conf' || p[2] === 'neigh')) {
    return p[3] === 'all' || p[3] === 'default' ? null : p[3];
  }
  return null;
}

function checkKey(_ctx: CallContext, _ns: Role, key: string): string | null {
  if (!KEY.test(key) || key.split('/').some((s) => s === '..' || s === '.' || s === '')) return `sysctl key '${key}' is outside net/`;
  return null;
}

function objects(_ctx: CallContext, ns: Role, key: string) {
  const ifname = KEY.test(key) ? keyInterface(key) : null;
  return ifname ? [{ ns, name: ifname, right: 'sysctl' as const }] : [];
}

function check(ctx: CallContext, ns: Role, key: string): string | null {
  const bad = checkKey(ctx, ns, key);
  if (bad) return bad;
  if (ns === 'container') {
    // the tuning plugin's policy may narrow container keys (the reference's allowlist file too)
    const g = ctx.plugin.grants.sysctl!;
    if (g.containerKeys && !g.containerKeys.some((p) => globMatch(p, key))) return `container sysctl '${key}' is not in the plugin's granted "sysctl": {"containerKeys"}`;
    return g.containerAllowlist ? allowlistRefusal(g.containerAllowlist, key, ctx.ifname) : null;
  }
  const keys = ctx.plugin.grants.sysctl?.keys ?? [];
  // a '*' where an interface goes stands for an interface, not for all or default
  const ifname = keyInterface(key);
  const matches = (p: string) => globMatch(p, key) && (ifname !== null || p.split('/')[3] !== '*' || !isInterfaceKey(key));
  return keys.some(matches) ? null : `host sysctl '${key}' is not in the plugin's granted "sysctl": {"keys"}`;
}

/** Writes value unless the key holds it already (the common case, and a write costs a syscall round). */
function write(ctx: CallContext, ns: Role, key: string, value: string): void {
  sysctlEnsure(ctx.ns.fd(ns), key, value);
}

export const sysctl: HostInterface = {
  get: { grant: onNs('sysctl'), check: checkKey, reads: true, run: (ctx, ns: Role, key: string) => sysctlGet(ctx.ns.fd(ns), key).trim() },
  set: {
    grant: onNs('sysctl'), objects, check,
    run: write,
  },
  // Host keys: the value before goes to the ledger first (read once the call
  // is allowed, before the intent is written), unless the attachment already records this key.
  setRestored: {
    grant: onNs('sysctl'), objects, check,
    prepare: (_ctx, ns: Role, key: string, value: string) => {
      if (typeof value !== 'string' || value.length > 256 || /[\n\0]/.test(value)) throw new KernelError('EINVAL', 'a sysctl value is at most 256 characters on one line', 22);
      return [ns, key, value];
    },
    creates: (ctx, ns: Role, key: string, value: string) =>
      (ns !== 'host' || ctx.ledger.entries.some((e) => e.kind === 'sysctl' && e.key === key) ? []
        : [{ kind: 'sysctl', key, value, prior: sysctlGet(ctx.ns.fd(ns), key).trim(), plugin: ctx.plugin.type }]),
    run: (ctx, ns: Role, key: string, value: string) => write(ctx, ns, key, value),
  },
};

// The value before comes back, unless someone has changed the key since (then theirs stays).
declareUndo('sysctl', (e) => {
  const key = String(e.key);
  try {
    const now = sysctlGet(null, key).trim();
    if (now === String(e.prior) || now !== String(e.value)) return null;
    sysctlSet(null, key, String(e.prior));
    return `sysctl.set ${key}=${e.prior}`;
  } catch (err) {
    // an interface key whose interface is gone (the bridge went first)
    if (err instanceof KernelError && err.code === 'ENOENT') return null;
    throw err;
  }
});
