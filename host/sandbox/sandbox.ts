// One plugin instance for one CNI call: instantiated with an import object
// bound to this invocation's grants, every entry into the guest run under a
// time limit, and every way a guest can fail turned into a CNI error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { CniError } from '../cni/errors.js';
import { type CallContext, type WitSignature, TimeLimitReached, bindInterface } from '../gate/gate.js';
import { HOST_INTERFACES } from '../capabilities/index.js';
import { WIT_PACKAGE, WIT_VERSION } from './interfaces.js';
import { bundledDir, coreModule, type LoadedPlugin } from './loader.js';

export const ERR_PLUGIN_TRAPPED = 100;
export const ERR_PLUGIN_TIMEOUT = 101;

/** The guest's exports, as jco lifts them. */
export type GuestExports = Record<string, (...a: unknown[]) => unknown>;

let signatures: Record<string, Record<string, WitSignature>> | undefined;
function witSignatures(): Record<string, Record<string, WitSignature>> {
  signatures ??= JSON.parse(readFileSync(join(bundledDir(), 'signatures.json'), 'utf8'));
  return signatures!;
}

// One context for the process: creating a context per call costs ~1 ms.
const limiter = vm.createContext({ call: null as (() => unknown) | null });

/** Runs fn (which enters the guest) under the time limit. */
export function withTimeLimit<T>(ctx: CallContext, what: string, timeoutMs: number, fn: () => T): T {
  limiter.call = fn;
  try {
    return vm.runInContext('call()', limiter, { timeout: timeoutMs, displayErrors: false }) as T;
  } catch (e) {
    throw guestFailure(ctx, what, timeoutMs, e);
  } finally {
    limiter.call = null;
  }
}

function guestFailure(ctx: CallContext, what: string, timeoutMs: number, e: unknown): CniError {
  if (e instanceof CniError) return e;
  const type = ctx.plugin.type;
  const err = e as { code?: string; payload?: { code: number; msg: string; details: string }; message?: string };
  if (err && err.payload && typeof err.payload.code === 'number') {
    return new CniError(err.payload.code, err.payload.msg, err.payload.details);
  }
  if ((err && err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') || e instanceof TimeLimitReached) {
    return new CniError(ERR_PLUGIN_TIMEOUT, `plugin '${type}' did not finish ${what} within its time limit (${ctx.policy.timeoutMs} ms) and was stopped`,
      'the limit is the policy\'s timeoutMs');
  }
  const why = ctx.lastAbort ?? (e instanceof WebAssembly.RuntimeError ? e.message : `host error: ${err?.message ?? String(e)}`);
  const oom = /unreachable|out of bounds|memory/.test(why) && !ctx.lastAbort ? ' (it may have run out of its memory limit)' : '';
  return new CniError(ERR_PLUGIN_TRAPPED, `plugin '${type}' crashed during ${what}: ${why}${oom}`);
}

export function instantiate(plugin: LoadedPlugin, ctx: CallContext, timeoutMs: number): GuestExports {
  const sigs = witSignatures();
  const imports: Record<string, unknown> = {};
  for (const iface of plugin.manifest.imports) {
    const impl = HOST_INTERFACES[iface];
    if (!impl || !sigs[iface]) continue; // 'types' has no functions
    const bound = bindInterface(ctx, iface, impl, sigs[iface]);
    // jco's JS reads the key without the version; its .d.ts names it with it
    imports[`${WIT_PACKAGE}/${iface}`] = bound;
    imports[`${WIT_PACKAGE}/${iface}@${WIT_VERSION}`] = bound;
  }
  const getCoreModule = (p: string) => coreModule(join(plugin.dir, p));
  return withTimeLimit(ctx, 'start-up', timeoutMs, () => plugin.instantiate(getCoreModule, imports));
}
