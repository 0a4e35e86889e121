// One plugin instance for one CNI call: instantiated with an import object
// bound to this invocation's grants, every entry into the guest run under a
// time limit, and every way a guest can fail turned into a CNI error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { guard } from './guard.js';
import { CniError } from '../cni/errors.js';
import { type CallContext, type GatedFunction, type WitSignature, TimeLimitReached, gateFunctions } from '../gate/gate.js';
import { HOST_INTERFACES } from '../capabilities/index.js';
import { WIT_PACKAGE, WIT_VERSION } from './interfaces.js';
import { ERR_PLUGIN_REFUSED, bundledDir, type LoadedPlugin, verifiedFile, warmCompile } from './loader.js';
import { LIMITS, checkCoreModule, withV8Limits } from './limits.js';

/** The import key the rewritten glue takes its string decoders from (package.ts). */
const LIFT_GUARD_KEY = '__cniWasmLiftGuard';

export const ERR_PLUGIN_TRAPPED = 100;
export const ERR_PLUGIN_TIMEOUT = 101;

/** The guest's exports, as jco lifts them. */
export type GuestExports = Record<string, (...a: unknown[]) => unknown>;

let signatures: Record<string, Record<string, WitSignature>> | undefined;
function witSignatures(): Record<string, Record<string, WitSignature>> {
  signatures ??= JSON.parse(readFileSync(join(bundledDir(), 'signatures.json'), 'utf8'));
  return signatures!;
}


/** Nesting of withTimeLimit on this thread (a delegated plugin runs inside its caller's). */
let limited = 0;

/**
 * Runs fn (which enters the guest) under the time limit: the thread's
 * watchdog (host/sandbox/watchdog.cc, one thread per isolate, armed per
 * entry; vm's timeout started a thread per entry, ~0.23 ms each). Inside
 * another plugin's limit (delegation) the outer one already bounds it: the
 * call's deadline is one for all its plugins. Failures are still put in the
 * words of the plugin that failed.
 */
export function withTimeLimit<T>(ctx: CallContext, what: string, timeoutMs: number, fn: () => T): T {
  if (limited > 0) {
    // a termination unwinds past this (no catch or finally runs): `inside`
    // then still names the delegate that was running
    inside.push(ctx.plugin.type);
    try {
      return fn();
    } catch (e) {
      throw guestFailure(ctx, what, e);
    } finally {
      inside.pop();
    }
  }
  limited++;
  inside.length = 0;
  try {
    return guard(fn, timeoutMs);
  } catch (e) {
    throw guestFailure(ctx, what, e, inside[inside.length - 1]);
  } finally {
    limited--;
    inside.length = 0;
  }
}
/** The delegated plugins running inside the outer limit, innermost last. */
const inside: string[] = [];

function guestFailure(ctx: CallContext, what: string, e: unknown, delegate?: string): CniError {
  if (e instanceof CniError) return e;
  const err = e as { code?: string };
  if (delegate && err && err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
    return new CniError(ERR_PLUGIN_TIMEOUT, `plugin '${delegate}' (run by '${ctx.plugin.type}') did not finish within the call's time limit (${ctx.policy.timeoutMs} ms) and was stopped`,
      'the limit is the policy\'s timeoutMs');
  }
  return pluginFailure(ctx, what, e);
}

function pluginFailure(ctx: CallContext, what: string, e: unknown): CniError {
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

// ---- bounds on what one call can make the host hold ---------------------------
/** bytes of one string the glue may lift out of guest memory: a config of
 *  several MB (UTF-16 in the guest) passes through delegation; 20M characters do not */
export const MAX_LIFT_STRING_BYTES = 16 * 1024 * 1024;
/** bytes lifted for one host call's arguments (or one export's result), all
 *  strings together; each string counts at least LIFT_MIN_CHARGE (a list of
 *  a million empty strings is a million JS strings) */
export const MAX_LIFT_CALL_BYTES = 32 * 1024 * 1024;
const LIFT_MIN_CHARGE = 32; // a JS string and its array slot cost about this much however short
/** characters of all string arguments of one host call, after lifting */
export const MAX_CALL_ARG_CHARS = 8 * 1024 * 1024;
/** characters of a plugin's result document */
export const MAX_RESULT_CHARS = 256 * 1024;
/** log.write message characters per invocation */
export const MAX_LOG_CHARS = 256 * 1024;
/** core modules compiled and core instances created per plugin instance */
const MAX_CORE_COMPILES = LIMITS.coreModules;
const MAX_CORE_INSTANCES = LIMITS.coreModules * 2;

/** Counts what the glue lifts between two host calls; over budget, the glue
 *  gets '' instead of the string and the host refuses the call. */
class LiftBudget {
  private used = 0;
  over: string | null = null;
  charge(bytes: number): boolean {
    if (this.over) return false;
    if (bytes > MAX_LIFT_STRING_BYTES) {
      this.over = `a string of ${bytes} bytes in guest memory; the limit is ${MAX_LIFT_STRING_BYTES}`;
      return false;
    }
    this.used += Math.max(bytes, LIFT_MIN_CHARGE);
    if (this.used > MAX_LIFT_CALL_BYTES) {
      this.over = `string arguments totalling more than ${MAX_LIFT_CALL_BYTES} bytes (strings count at least ${LIFT_MIN_CHARGE} bytes each)`;
      return false;
    }
    return true;
  }
  /** the problem since the last reset, and a fresh budget */
  take(): string | null {
    const o = this.over;
    this.used = 0; this.over = null;
    return o;
  }
}

/** Decoders without options, shared by every instance: decode() without {stream} keeps no state between
 *  calls, and a TextDecoder costs ~10 us to make (two per instance, in makeSpare). */
const plainDecoders = new Map<string, TextDecoder>();
function plainDecoder(label = 'utf-8'): TextDecoder {
  let td = plainDecoders.get(label);
  if (!td) {
    td = new TextDecoder(label);
    if (plainDecoders.size < 8) plainDecoders.set(label, td);
  }
  return td;
}

function guardedDecoderFactory(budget: LiftBudget) {
  return (label?: string, opts?: TextDecoderOptions) => {
    const td = opts === undefined ? plainDecoder(label) : new TextDecoder(label, opts);
    return {
      decode(view?: ArrayBufferView): string {
        const n = view ? view.byteLength : 0;
        return budget.charge(n) ? td.decode(view) : '';
      },
    };
  };
}

/** Characters of all strings in a lifted value, stopping early past `limit`. */
export function argChars(v: unknown, limit: number, acc = 0): number {
  if (acc > limit) return acc;
  if (typeof v === 'string') return acc + v.length;
  if (Array.isArray(v)) {
    acc += v.length;
    for (const x of v) { acc = argChars(x, limit, acc); if (acc > limit) return acc; }
    return acc;
  }
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) { acc = argChars(x, limit, acc); if (acc > limit) return acc; }
  }
  return acc;
}

/** A copy fit for a refusal record: long strings and lists shortened. */
export function shortened(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length > 256 ? `${v.slice(0, 256)}…(${v.length} chars)` : v;
  if (depth > 4) return '…';
  if (Array.isArray(v)) {
    const head = v.slice(0, 8).map((x) => shortened(x, depth + 1));
    return v.length > 8 ? [...head, `…(${v.length} items)`] : head;
  }
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).slice(0, 32).map(([k, x]) => [k, shortened(x, depth + 1)]));
  return v;
}

/** Per-invocation counters, shared by every plugin instance of one CNI call
 *  (they share its audit log). */
interface InvocationQuota { logChars: number; refusedAll: boolean }
const quotas = new WeakMap<object, InvocationQuota>();
const quotaOf = (ctx: CallContext): InvocationQuota => {
  let q = quotas.get(ctx.audit);
  if (!q) { q = { logChars: 0, refusedAll: false }; quotas.set(ctx.audit, q); }
  return q;
};

/** A host function as an instance's import calls it: the call's context, the instance's lift budget, the lifted arguments. */
type BoundedFunction = (ctx: CallContext, budget: LiftBudget, args: unknown[]) => unknown;

/**
 * Wraps the gate's functions: before the gate sees a call, the
 * arguments as lifted are checked against the bounds above and the
 * invocation's audit quota. A refusal here is audited like a gate denial
 * (with the arguments shortened) and the guest gets E2BIG / EQUOTA.
 */
function bounded(
  iface: string, gated: Record<string, GatedFunction>, sigs: Record<string, WitSignature>,
): Record<string, BoundedFunction> {
  const impl = HOST_INTERFACES[iface];
  const out: Record<string, BoundedFunction> = {};
  for (const [name, sig] of Object.entries(sigs)) {
    const inner = gated[name];
    if (!inner) continue;
    const call = `${iface}.${sig.wit}`;
    out[name] = (ctx: CallContext, budget: LiftBudget, args: unknown[]) => {
      const lifted = budget.take();
      const q = quotaOf(ctx);
      let code = '';
      let why = '';
      // quota first: refusals are recorded too, so they must not be a way past it
      if (q.refusedAll) { code = 'EQUOTA'; why = `${call} refused: this invocation is over its quota`; }
      else if (!ctx.audit.hasRoomForCalls()) { code = 'EQUOTA'; why = `${call} refused: this invocation reached its audit quota (${ctx.audit.quotaText()}); every further host call is refused`; }
      else if (lifted) { code = 'E2BIG'; why = `${call} refused: its arguments hold ${lifted}`; }
      else if (argChars(args, MAX_CALL_ARG_CHARS) > MAX_CALL_ARG_CHARS) { code = 'E2BIG'; why = `${call} refused: its arguments exceed ${MAX_CALL_ARG_CHARS} characters`; }
      else if (iface === 'log') {
        const n = argChars(args[sig.params.indexOf('message')], MAX_LOG_CHARS);
        if (q.logChars + n > MAX_LOG_CHARS) { code = 'EQUOTA'; why = `${call} refused: more than ${MAX_LOG_CHARS} characters of log messages in one invocation`; }
        else q.logChars += n;
      }
      if (code) {
        // The first quota refusal is recorded; after it every call is refused
        // unrecorded (fail closed: nothing runs that is not in the log).
        if (!q.refusedAll) {
          const named: Record<string, unknown> = {};
          sig.params.forEach((p, i) => { named[p] = shortened(args[i]); });
          ctx.audit.write({
            time: new Date().toISOString(), plugin: ctx.plugin.type, sha256: ctx.plugin.sha256,
            command: ctx.command, containerId: ctx.containerId, network: ctx.network,
            call, args: named, verdict: 'deny', outcome: `error: ${code} ${why}`, ms: 0,
          }, { later: true });
        }
        if (code === 'EQUOTA') q.refusedAll = true;
        if (!sig.hasResult) return undefined;
        const fn = impl?.[name];
        return { tag: 'err', val: fn?.errorValue ? fn.errorValue(code, why) : { code, message: why } };
      }
      try {
        return inner(ctx, args);
      } finally {
        budget.take();
      }
    };
  }
  return out;
}

/**
 * Every host function, gated and bounded, made once: an instance's imports
 * pass them the context of the call they serve (binding closures for every
 * function of every interface a plugin imports cost ~0.15 ms a call).
 */
let hostFns: Record<string, Record<string, BoundedFunction>> | undefined;
function hostFunctions(): Record<string, Record<string, BoundedFunction>> {
  hostFns ??= Object.fromEntries(Object.entries(witSignatures()).filter(([iface]) => HOST_INTERFACES[iface])
    .map(([iface, sigs]) => [iface, bounded(iface, gateFunctions(iface, HOST_INTERFACES[iface], sigs), sigs)]));
  return hostFns;
}

/**
 * One component instance, used for one export call. Its imports are stubs
 * that call the gate's functions with the context in `late`: the call's is
 * put there before the export runs (before start-up, for an instance made
 * for the call) and taken away when the export returns. An instance made
 * ahead of time (resident mode, below) has no call bound while it is made:
 * a host call from its start-up is refused and the instance thrown away.
 */
interface Made {
  exports: GuestExports;
  budget: LiftBudget;
  /** the call it serves (null: none yet, or its call is over) */
  late: { ctx: CallContext | null };
  /** core module files it was made from (re-checked when a made-ahead third-party instance is used) */
  files: string[];
}

function stubImports(plugin: LoadedPlugin, budget: LiftBudget, late: Made['late']): Record<string, unknown> {
  const sigs = witSignatures();
  const host = hostFunctions();
  const imports: Record<string, unknown> = { [LIFT_GUARD_KEY]: guardedDecoderFactory(budget) };
  for (const iface of plugin.manifest.imports) {
    if (!HOST_INTERFACES[iface] || !sigs[iface]) continue; // 'types' has no functions
    const stubs: Record<string, (...a: unknown[]) => unknown> = {};
    for (const name of Object.keys(sigs[iface])) {
      const fn = host[iface][name];
      stubs[name] = (...a: unknown[]) => {
        const ctx = late.ctx;
        if (!ctx) throw new Error(`host call ${iface}.${sigs[iface][name].wit} outside a CNI call`);
        return fn(ctx, budget, a);
      };
    }
    // jco's JS reads the key without the version; its .d.ts names it with it
    imports[`${WIT_PACKAGE}/${iface}`] = stubs;
    imports[`${WIT_PACKAGE}/${iface}@${WIT_VERSION}`] = stubs;
  }
  return imports;
}

/** The call the instance's imports reach from now on. */
function bindCall(ctx: CallContext, made: Made): void {
  made.late.ctx = ctx;
}

/** Instantiates the component (its start-up runs inside `guard`). */
function make(plugin: LoadedPlugin, guard: (start: () => GuestExports) => GuestExports, bind?: (m: Made) => void): Made {
  const made: Made = { exports: {}, budget: new LiftBudget(), late: { ctx: null }, files: [] };
  const imports = stubImports(plugin, made.budget, made.late);
  bind?.(made);
  let compiles = 0;
  const getCoreModule = (p: string) => {
    if (++compiles > MAX_CORE_COMPILES) throw new CniError(ERR_PLUGIN_REFUSED, `plugin '${plugin.manifest.type}' asked for more than ${MAX_CORE_COMPILES} core modules`);
    made.files.push(p);
    // Resident mode keeps the module compiled from the checked bytes, per file
    // version (bundled) or per approved digest (a third-party cache, whose
    // bytes are still read and checked on every call, as in exec mode).
    const read = () => verifiedFile(plugin.dir, plugin.manifest, p, LIMITS.moduleBytes);
    const checked = plugin.manifest.bundled ? null : read();
    return warmCompile(join(plugin.dir, p), checked ? plugin.manifest.files?.[p] : undefined, () => {
      const bytes = checked ?? read();
      try {
        checkCoreModule(bytes, `plugin '${plugin.manifest.type}' (${p})`);
      } catch (e) {
        throw new CniError(ERR_PLUGIN_REFUSED, (e as Error).message);
      }
      return new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
    });
  };
  let instances = 0;
  const instantiateCore = (m: WebAssembly.Module, imp?: WebAssembly.Imports) => {
    if (++instances > MAX_CORE_INSTANCES) throw new CniError(ERR_PLUGIN_REFUSED, `plugin '${plugin.manifest.type}' created more than ${MAX_CORE_INSTANCES} core instances`);
    return new WebAssembly.Instance(m, imp);
  };
  const start = () => plugin.instantiate(getCoreModule, imports, instantiateCore);
  made.exports = guard(plugin.manifest.bundled ? start : () => withV8Limits(start));
  return made;
}

// ---- resident mode: the next instance made ahead of time ------------------------
// A daemon worker makes, while it is idle, one fresh instance of each plugin
// it has run, so a call finds one ready instead of paying for the component's
// instantiation (jco's glue, the core instances). Each is used by exactly one
// call and dropped; it never saw another call (its imports had nothing bound
// until its call bound them, and lose them when that call's export returns).
const MAX_SPARE_KINDS = 16;
const SPARE_STARTUP_MS = 5_000;
let sparesOn = false;
const recent = new Map<string, LoadedPlugin>();
const spares = new Map<string, { plugin: LoadedPlugin; made: Made }>();
const spareKey = (p: LoadedPlugin): string => `${p.dir}\u0000${p.manifest.sha256}`;

/** Instances made ahead that calls used, and calls that made their own (resident mode). */
export const aheadStats = { used: 0, made: 0 };

/** Turns making instances ahead on (the daemon's workers). */
export function makeInstancesAhead(): void { sparesOn = true; }

/**
 * Makes the missing instances ahead, all under one watchdog (each costs a
 * thread). One whose start-up outruns the limit is not made ahead again: its
 * calls make their own.
 */
export function makeSpare(): void {
  const missing = [...recent].filter(([key]) => !spares.has(key));
  if (!missing.length) return;
  let current: string | null = null;
  const makeAll = () => {
    for (const [key, plugin] of missing) {
      current = key;
      try {
        spares.set(key, { plugin, made: make(plugin, (start) => start()) });
        aheadStats.made++;
      } catch {
        // not made ahead (a host call during start-up, a limit): its calls make their own
        recent.delete(key);
      }
    }
    current = null;
  };
  try {
    guard(makeAll, SPARE_STARTUP_MS);
  } catch {
    if (current !== null) recent.delete(current);
  }
}

function takeSpare(plugin: LoadedPlugin): Made | null {
  const key = spareKey(plugin);
  if (!recent.has(key)) {
    if (recent.size >= MAX_SPARE_KINDS) {
      const oldest = recent.keys().next().value as string;
      recent.delete(oldest);
      spares.delete(oldest);
    }
    recent.set(key, plugin);
  }
  const s = spares.get(key);
  if (!s) return null;
  spares.delete(key);
  // made from another load of the plugin (its glue reloaded): not this one
  if (s.plugin.instantiate !== plugin.instantiate) return null;
  // a third-party cache is checked on every call, as exec mode does
  if (!plugin.manifest.bundled) for (const p of s.made.files) verifiedFile(plugin.dir, plugin.manifest, p, LIMITS.moduleBytes);
  aheadStats.used++;
  return s.made;
}

export function instantiate(plugin: LoadedPlugin, ctx: CallContext, timeoutMs: number): GuestExports {
  let made = sparesOn ? takeSpare(plugin) : null;
  if (made) bindCall(ctx, made);
  else made = make(plugin, (start) => withTimeLimit(ctx, 'start-up', timeoutMs, start), (m) => bindCall(ctx, m));
  return boundedExports(plugin.manifest.type, made);
}

/** The guest's exports, with what they hand back bounded. */
function boundedExports(type: string, made: Made): GuestExports {
  const { exports, budget, late } = made;
  const out: GuestExports = {};
  for (const [name, fn] of Object.entries(exports)) {
    if (typeof fn !== 'function') continue;
    out[name] = (...args: unknown[]) => {
      budget.take();
      let val: unknown;
      try {
        if (!late.ctx) throw new CniError(ERR_PLUGIN_TRAPPED, `plugin '${type}': an instance serves one call only`);
        val = fn(...args);
      } catch (e) {
        const over = budget.take();
        if (over) throw new CniError(ERR_PLUGIN_TRAPPED, `plugin '${type}' returned an error with ${over}`);
        throw e;
      } finally {
        // the call is over for this instance: its imports reach nothing any more
        late.ctx = null;
      }
      const over = budget.take();
      if (over) throw new CniError(ERR_PLUGIN_TRAPPED, `plugin '${type}' returned ${over}`);
      if (typeof val === 'string' && val.length > MAX_RESULT_CHARS) {
        throw new CniError(ERR_PLUGIN_TRAPPED, `plugin '${type}' returned a result of ${val.length} characters; the limit is ${MAX_RESULT_CHARS}`);
      }
      return val;
    };
  }
  return out;
}
