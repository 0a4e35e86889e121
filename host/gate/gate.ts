// The capability gate: the one wrapper every host function goes through.
// It authorizes the call against the plugin's grants and the attachment's
// ledger, runs it, and writes the audit record, whatever the outcome.
import { KernelError } from '../kernel/types.js';
import { CniError } from '../cni/errors.js';
import { nowMs } from '../lazy.js';
import type { AuditLog } from './audit.js';
import type { Grants, Policy } from './policy.js';
import type { Ledger } from './ledger.js';
import type { Namespaces } from '../capabilities/namespaces.js';

/** A refusal or failure the guest sees as result::err(host-error). */
export class HostError extends Error {
  constructor(public readonly code: string, message: string) { super(message); }
}

export interface PluginIdentity {
  type: string;
  sha256: string;
  grants: Grants;
}

/** What a plugin may ask another plugin to do (WIT delegate.command). */
export type DelegateCommand = 'add' | 'del' | 'check' | 'gc' | 'status';

/** Everything a host function may consult, bound to one plugin invocation. */
export interface CallContext {
  plugin: PluginIdentity;
  command: string;
  containerId: string;
  ifname: string;
  network: string;
  /** string values of the plugin's network config: host objects it may name */
  configNames: Set<string>;
  /** interfaces of the chain's prevResult (current shape), for chained plugins */
  prevInterfaces?: { name: string; sandbox: string }[];
  ledger: Ledger;
  audit: AuditLog;
  ns: Namespaces;
  policy: Policy;
  /** CNI_PATH, for external delegation */
  cniPath: string[];
  /** nesting of delegate calls */
  depth: number;
  /** per-invocation state owned by capabilities (store lock, ...) */
  session: Map<string, { close(): void }>;
  /** the last message the guest reported before trapping */
  lastAbort?: string;
  /** runs another plugin for this attachment; throws CniError */
  delegate(type: string, command: DelegateCommand, config: string): string;
}

export interface HostFunction {
  /** null to allow, else why not (the guest sees EDENIED with this text) */
  authorize(ctx: CallContext, ...args: any[]): string | null;
  run(ctx: CallContext, ...args: any[]): unknown;
  /** the guest-visible error value, when the WIT error type is not host-error */
  errorValue?(code: string, message: string, cause?: unknown): unknown;
}

export type HostInterface = Record<string, HostFunction>;

/** WIT names of an interface's functions and their parameters (from the build). */
export interface WitSignature { wit: string; params: string[]; hasResult: boolean }

type JcoResult = { tag: 'ok'; val: unknown } | { tag: 'err'; val: unknown };

export function bindInterface(
  ctx: CallContext, iface: string, impl: HostInterface, sigs: Record<string, WitSignature>,
): Record<string, (...args: unknown[]) => unknown> {
  const bound: Record<string, (...args: unknown[]) => unknown> = {};
  for (const [name, sig] of Object.entries(sigs)) {
    const fn = impl[name];
    const call = `${iface}.${sig.wit}`;
    bound[name] = (...args: unknown[]): JcoResult | undefined => {
      const t0 = nowMs();
      const named: Record<string, unknown> = {};
      sig.params.forEach((p, i) => { named[p] = args[i]; });
      const record = (verdict: 'allow' | 'deny', outcome: string) => ctx.audit.write({
        time: new Date().toISOString(), plugin: ctx.plugin.type, sha256: ctx.plugin.sha256,
        command: ctx.command, containerId: ctx.containerId, network: ctx.network,
        call, args: named, verdict, outcome, ms: +(nowMs() - t0).toFixed(3),
      });
      const fail = (code: string, message: string, cause?: unknown): JcoResult | undefined => {
        if (!sig.hasResult) return undefined;
        return { tag: 'err', val: fn?.errorValue ? fn.errorValue(code, message, cause) : { code, message } };
      };
      if (!fn) {
        record('deny', 'error: ENOSYS not implemented by this host');
        return fail('ENOSYS', `${call} is not implemented by this host`);
      }
      const reason = fn.authorize(ctx, ...args);
      if (reason !== null) {
        record('deny', `error: EDENIED ${reason}`);
        return fail('EDENIED', `${call} denied: ${reason}`);
      }
      try {
        const val = fn.run(ctx, ...args);
        record('allow', 'ok');
        return sig.hasResult ? { tag: 'ok', val } : undefined;
      } catch (e) {
        const code = e instanceof KernelError || e instanceof HostError ? e.code : e instanceof CniError ? `CNI${e.code}` : 'EHOST';
        const message = e instanceof CniError ? e.msg : e instanceof Error ? e.message : String(e);
        record('allow', `error: ${code} ${message}`);
        return fail(code, message, e);
      }
    };
  }
  return bound;
}

// ---- helpers for authorize() -------------------------------------------------

export type Role = 'host' | 'container';

export function nsGranted(g: { host?: boolean; container?: boolean } | undefined, ns: Role): string | null {
  if (g && g[ns]) return null;
  return `no grant for the ${ns} namespace`;
}

/** In the host namespace a plugin may change only what this attachment
 *  created or what its network config names. */
export function mayChangeHostLink(ctx: CallContext, name: string): string | null {
  if (ctx.ledger.ownsLink(name) || ctx.configNames.has(name)) return null;
  if (ctx.plugin.grants.links?.names?.includes(name)) return null;
  return `host link '${name}' was not created by this attachment and is not named in the network config`;
}

export function linkAccess(ctx: CallContext, grant: { host?: boolean; container?: boolean } | undefined, ns: Role, name: string | null): string | null {
  const g = nsGranted(grant, ns);
  if (g !== null || ns === 'container' || name === null) return g;
  return mayChangeHostLink(ctx, name);
}
