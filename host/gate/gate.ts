// The capability gate: the one place that decides and records every host call.
//
// Each host function is a declaration (see HostFunction): the grant it needs,
// the objects it acts on with the right each needs, the ledger entries it
// creates or removes, and `run`. The gate interprets the declaration for
// every call, in this order, and nothing here is repeated per function:
//
//   1. the call's deadline (a host call never starts after the time limit)
//   2. argument sizes (before any work)
//   3. the grant (policy), then the object rights (ownership.ts), then any
//      extra check the declaration makes
//   4. write-ahead: the audit intent record, then the ledger intents; if
//      either cannot be written the call is refused and nothing is done
//   5. run
//   6. the ledger outcome (confirm / abandon / forget; a forgotten link's
//      rights go with it), then the audit outcome
//
// A denial is the guest's result::err({code: EDENIED, message}) naming what
// would allow it; so is a kernel error. A host call cut by the time limit
// after its intent was written leaves that intent, which the sweep undoes.
import { KernelError } from '../kernel/types.js';
import { CniError } from '../cni/errors.js';
import { nowMs } from '../lazy.js';
import { type AuditLog, recordTime } from './audit.js';
import type { Grants, Policy, Role } from './policy.js';
import type { Ledger, LedgerEntry, LedgerValue } from './ledger.js';
import type { Ownership, Right } from './ownership.js';
import type { Namespaces } from '../capabilities/namespaces.js';
import { HostError } from './errors.js';

export { HostError };
export type { Role };

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
  /** the plugin the runtime called: ledger entries are its, whoever of its delegates made them */
  owner: string;
  /** the runtime's own config, for the plugin it called (undefined for delegates: their config is a plugin's writing) */
  runtimeConf?: Record<string, unknown>;
  /** the invocation's network: the runtime's config `name` (delegates cannot change it) */
  network: string;
  /** object rights of this attachment (shared by a call and its delegates) */
  owned: Ownership;
  ledger: Ledger;
  audit: AuditLog;
  ns: Namespaces;
  policy: Policy;
  /** CNI_PATH, for external delegation */
  cniPath: string[];
  /** nesting of delegate calls */
  depth: number;
  /** ms since the epoch after which no host call starts */
  deadline: number;
  /** per-invocation state owned by capabilities (store lock, ...) */
  session: Map<string, { close(): void }>;
  /** the last message the guest reported before trapping */
  lastAbort?: string;
  /** the host call in progress, should the time limit stop the guest inside it */
  inFlight?: string;
  /** between groups.join and groups.seal: the group every new ledger entry belongs to */
  group?: string;
  /** runs another plugin for this attachment; throws CniError */
  delegate(type: string, command: DelegateCommand, config: string): string;
}

export interface GrantNeed {
  key: keyof Grants;
  /** for per-namespace grants (links, addresses, routes, sysctl) */
  ns?: Role;
}

export interface ObjectNeed { ns: Role; name: string; right: Right }

/** Args as the guest passed them (jco-lifted). */
type Args = any[];

export interface HostFunction {
  /** the grant the call needs; null for none (log) */
  grant: ((ctx: CallContext, ...args: Args) => GrantNeed) | null;
  /** fills in what the host decides for the guest (a random veth name), before anything else */
  prepare?(ctx: CallContext, ...args: Args): Args;
  /** the links the call acts on, each with the right it needs */
  objects?(ctx: CallContext, ...args: Args): ObjectNeed[];
  /** checks that are not about links (address ownership, key shapes); null to allow */
  check?(ctx: CallContext, ...args: Args): string | null;
  /** what the call creates, recorded in the ledger before it runs */
  creates?(ctx: CallContext, ...args: Args): LedgerEntry[];
  /** what the kernel chose, recorded with the outcome (one object per created entry) */
  chose?(result: unknown, ...args: Args): ({ [k: string]: LedgerValue } | undefined)[];
  /** ledger entries the call undoes (or the kernel undid with it: a veth's peer), forgotten when it succeeds; the rights on a forgotten link go with it */
  removes?(ctx: CallContext, ...args: Args): (e: LedgerEntry) => boolean;
  /**
   * The kernel's work goes on after run returns (a begun creation): what the
   * call creates stays an intent, its ledger ids handed to the work under way,
   * to be settled by the call that finishes it (settles)
   */
  defer?(ctx: CallContext, ids: number[], ...args: Args): void;
  /**
   * The ledger ids of a deferred call this call finishes: confirmed with
   * chose's values (and the links on them owned) when it succeeds, abandoned
   * when the kernel refused
   */
  settles?(ctx: CallContext, ...args: Args): number[];
  /** after success: ownership follows a rename or a move */
  after?(ctx: CallContext, result: unknown, ...args: Args): void;
  /** changes nothing: one audit record after the call, no write-ahead */
  reads?: boolean;
  run(ctx: CallContext, ...args: Args): unknown;
  /** the guest-visible error value, when the WIT error type is not host-error */
  errorValue?(code: string, message: string, cause?: unknown): unknown;
}

export type HostInterface = Record<string, HostFunction>;

/** WIT names of an interface's functions and their parameters (from the build). */
export interface WitSignature { wit: string; params: string[]; hasResult: boolean }

export type JcoResult = { tag: 'ok'; val: unknown } | { tag: 'err'; val: unknown };

/** Stops the guest: thrown (as an Error, which traps) when a call comes after the deadline. */
export class TimeLimitReached extends Error {}

/** Limits on what one host call may hand the host, checked before any work. */
/** 8 Mi characters: a config of several MB passes through delegation; a 20M-character argument does not. */
export const ARG_LIMITS = { chars: 8 << 20, items: 100_000 };
const AUDIT_STRING = 512;

/** Size of an argument tree, stopping once over the limits. */
function measure(v: unknown, acc: { chars: number; items: number }): void {
  if (acc.chars > ARG_LIMITS.chars || acc.items > ARG_LIMITS.items) return;
  if (typeof v === 'string') acc.chars += v.length;
  else if (Array.isArray(v)) { acc.items += v.length; for (const x of v) measure(x, acc); }
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) measure(x, acc);
}

/** Arguments as the audit records them: long strings shortened, with their length. */
export function auditValue(v: unknown): unknown {
  if (typeof v === 'string') return v.length > AUDIT_STRING ? `${v.slice(0, AUDIT_STRING)}…(${v.length} chars)` : v;
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.length > 64 ? [...v.slice(0, 64).map(auditValue), `…(${v.length} items)`] : v.map(auditValue);
  if (typeof v === 'object' && v !== null) {
    // (a loop, not Object.fromEntries(Object.entries(...)): every host call's arguments come through here)
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const x = auditValue((v as Record<string, unknown>)[k]);
      if (k === '__proto__') Object.defineProperty(o, k, { value: x, enumerable: true, writable: true, configurable: true });
      else o[k] = x;
    }
    return o;
  }
  return v;
}

function grantReason(ctx: CallContext, need: GrantNeed): string | null {
  const g = ctx.plugin.grants[need.key] as unknown;
  if (!g) return `plugin '${ctx.plugin.type}' has no "${need.key}" grant`;
  if (need.ns && !(g as Record<string, unknown>)[need.ns]) {
    return `plugin '${ctx.plugin.type}' has no "${need.key}": {"${need.ns}": true} grant`;
  }
  return null;
}

/** Legacy `links.names`: host links a policy lets a plugin change without declaring a key. */
const NAMED_RIGHTS: Right[] = ['create', 'attach', 'change', 'address', 'delete'];

function objectReason(ctx: CallContext, o: ObjectNeed): string | null {
  if (o.ns === 'host' && ctx.plugin.grants.links?.names?.includes(o.name) && NAMED_RIGHTS.includes(o.right)) return null;
  return ctx.owned.link(o.ns, o.name, o.right);
}

/** An interface's functions bound to one call's context. */
export function bindInterface(
  ctx: CallContext, iface: string, impl: HostInterface, sigs: Record<string, WitSignature>,
): Record<string, (...args: unknown[]) => unknown> {
  const bound: Record<string, (...args: unknown[]) => unknown> = {};
  for (const [name, gated] of Object.entries(gateFunctions(iface, impl, sigs))) bound[name] = (...raw: unknown[]) => gated(ctx, raw);
  return bound;
}

/** A host function as the gate runs it, for any call's context. */
export type GatedFunction = (ctx: CallContext, raw: unknown[]) => JcoResult | undefined;

/**
 * An interface's functions as the gate runs them, each taking the call's
 * context: made once (a resident worker's instances share them), so a call
 * binds nothing but its context.
 */
export function gateFunctions(iface: string, impl: HostInterface, sigs: Record<string, WitSignature>): Record<string, GatedFunction> {
  const gated: Record<string, GatedFunction> = {};
  for (const [name, sig] of Object.entries(sigs)) {
    const fn = impl[name];
    const call = `${iface}.${sig.wit}`;
    gated[name] = (ctx: CallContext, raw: unknown[]): JcoResult | undefined => {
      if (Date.now() > ctx.deadline) {
        ctx.inFlight = `${call} (refused: the time limit had passed)`;
        throw new TimeLimitReached(call);
      }
      const t0 = nowMs();
      let args: Args = raw;
      // the arguments as recorded: made once per call (the intent and the outcome record share them)
      let recorded: Record<string, unknown> | null = null;
      const named = () => {
        if (recorded) return recorded;
        const o: Record<string, unknown> = {};
        sig.params.forEach((p, i) => { o[p] = auditValue(args[i]); });
        return (recorded = o);
      };
      // Only the intent ('pending') must be on disk before the call acts; the
      // other records go out with the next write (audit.ts).
      const record = (verdict: 'allow' | 'deny', outcome: string) => ctx.audit.write({
        time: recordTime(), plugin: ctx.plugin.type, sha256: ctx.plugin.sha256,
        command: ctx.command, containerId: ctx.containerId, network: ctx.network,
        call, args: named(), verdict, outcome, ms: +(nowMs() - t0).toFixed(3),
      }, { later: outcome !== 'pending' });
      const fail = (code: string, message: string, cause?: unknown): JcoResult | undefined => {
        if (!sig.hasResult) return undefined;
        return { tag: 'err', val: fn?.errorValue ? fn.errorValue(code, message, cause) : { code, message } };
      };
      const deny = (reason: string) => {
        record('deny', `error: EDENIED ${reason}`);
        return fail('EDENIED', `${call} denied: ${reason}`);
      };
      if (!fn) {
        record('deny', 'error: ENOSYS not implemented by this host');
        return fail('ENOSYS', `${call} is not implemented by this host`);
      }
      const size = { chars: 0, items: 0 };
      measure(raw, size);
      if (size.chars > ARG_LIMITS.chars || size.items > ARG_LIMITS.items) {
        const why = `${call} refused: arguments too large (limits: ${ARG_LIMITS.chars} characters, ${ARG_LIMITS.items} list items per call)`;
        record('deny', `error: E2BIG ${why}`);
        return fail('E2BIG', why);
      }
      let creates: LedgerEntry[] = [];
      let settles: number[] = [];
      try {
        if (fn.prepare) { args = fn.prepare(ctx, ...raw); recorded = null; }
        const need = fn.grant?.(ctx, ...args);
        const reason = (need ? grantReason(ctx, need) : null)
          ?? (fn.objects?.(ctx, ...args) ?? []).reduce<string | null>((r, o) => r ?? objectReason(ctx, o), null)
          ?? fn.check?.(ctx, ...args) ?? null;
        if (reason !== null) return deny(reason);
        settles = fn.settles?.(ctx, ...args) ?? [];
        // every entry names the attachment's plugin, and the component that made it (by digest)
        creates = (fn.creates?.(ctx, ...args) ?? []).map((e) => ({ ...e, plugin: ctx.owner, ...(e.plugin !== ctx.owner ? { by: e.plugin } : {}), ...(ctx.group !== undefined ? { group: ctx.group } : {}), sha256: ctx.plugin.sha256 }));
      } catch (e) {
        // a malformed argument (an unknown enum, a bad name) found while deciding
        const code = e instanceof HostError || e instanceof KernelError ? e.code : 'EINVAL';
        record('deny', `error: ${code} ${(e as Error).message}`);
        return fail(code, (e as Error).message);
      }

      // Write-ahead: nothing is done that is not recorded first.
      let ids: number[] = [];
      if (!fn.reads) {
        try {
          record('allow', 'pending');
          ids = creates.length ? ctx.ledger.intend(creates) : [];
        } catch (e) {
          const why = `cannot record the call, so it was not made: ${(e as Error).message}`;
          try { record('deny', `error: ERECORD ${why}`); } catch { /* the audit itself is what failed */ }
          return fail('ERECORD', why);
        }
      }
      ctx.inFlight = call;
      let val: unknown;
      try {
        val = fn.run(ctx, ...args);
      } catch (e) {
        ctx.inFlight = undefined;
        if (e instanceof TimeLimitReached) throw e;
        // The kernel refused: nothing was made (an EEXIST name is someone else's).
        for (const id of [...ids, ...settles]) ctx.ledger.abandon(id);
        const code = e instanceof KernelError || e instanceof HostError ? e.code : e instanceof CniError ? `CNI${e.code}` : 'EHOST';
        const message = e instanceof CniError ? e.msg : e instanceof Error ? e.message : String(e);
        record('allow', `error: ${code} ${message}`);
        return fail(code, message, e);
      }
      ctx.inFlight = undefined;
      try {
        const chosen = fn.chose?.(val, ...args) ?? [];
        // made now: what this call created, unless its work is still under way, or what it finished
        const made: [number, LedgerEntry | undefined][] = fn.defer
          ? (fn.defer(ctx, ids, ...args), [])
          : ids.map((id, k) => [id, creates[k]]);
        for (const id of settles) made.push([id, ctx.ledger.entryOf(id)]);
        made.forEach(([id, e], k) => {
          ctx.ledger.confirm(id, chosen[k]);
          if (e?.kind === 'link' && typeof e.name === 'string') ctx.owned.own(e.ns ?? 'host', (chosen[k]?.name as string | undefined) ?? e.name);
        });
        const forgotten = fn.removes ? ctx.ledger.forget(fn.removes(ctx, ...args)) : [];
        fn.after?.(ctx, val, ...args);
        // rights on a link last as long as the ledger holds it (a removed veth's peer too)
        for (const e of forgotten) {
          const ns = e.ns ?? 'host';
          if (e.kind === 'link' && typeof e.name === 'string' && !ctx.ledger.ownsLink(e.name, ns)) ctx.owned.disown(ns, e.name);
        }
        record('allow', 'ok');
      } catch (e) {
        // Done, but not recorded as done: the intent stays, so the sweep still
        // finds it; the guest is told so it fails and undoes.
        return fail('ERECORD', `${call} was made but its outcome could not be recorded: ${(e as Error).message}`);
      }
      return sig.hasResult ? { tag: 'ok', val } : undefined;
    };
  }
  return gated;
}

// ---- helpers for declarations ------------------------------------------------

export const onNs = (key: keyof Grants) => (_ctx: CallContext, ns: Role): GrantNeed => ({ key, ns });
export const always = (key: keyof Grants) => (): GrantNeed => ({ key });
