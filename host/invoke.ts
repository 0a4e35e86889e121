// One CNI call, end to end: environment and config in, plugin component run
// in its sandbox, result (converted to the caller's version) or error out.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, CniErrorCode } from './cni/errors.js';
import { parseEnv, type Invocation } from './cni/env.js';
import { VALID_ATTACHMENTS, parseNetConf, type NetConf } from './cni/config.js';
import { convertResult } from './cni/convert.js';
import { isSupportedVersion, versionInfo } from './cni/versions.js';
import { AuditLog } from './gate/audit.js';
import { Ledger, type LedgerEntry } from './gate/ledger.js';
import { type Grants, type Policy, intersectGrants, loadPolicy } from './gate/policy.js';
import { type ObjectDecl, Ownership } from './gate/ownership.js';
import type { CallContext, DelegateCommand } from './gate/gate.js';
import { Namespaces } from './capabilities/namespaces.js';
import { defaultRouteLink } from './capabilities/links.js';
import { PluginRefused, loadPlugin, locatePlugin } from './sandbox/loader.js';
import { instantiate, withTimeLimit } from './sandbox/sandbox.js';
import { type SweepMode, lazyKernel, sweep } from './sweep.js';
import { childProcess, nowMs } from './lazy.js';

export interface Outcome {
  /** what goes to stdout */
  stdout: string;
  exitCode: number;
}

const CURRENT = '1.1.0';
/** An external plugin ran past execTimeoutMs. */
export const ERR_EXEC_TIMEOUT = 103;

/** Shared by a top-level call and the plugins it delegates to. */
interface Shared {
  inv: Invocation;
  policy: Policy;
  audit: AuditLog;
  ns: Namespaces;
  network: string;
  ledger: Ledger;
  /** the plugin the runtime called */
  top: string;
  /** the runtime's own config: the only one object rights are read from */
  conf: NetConf;
  /** rights of this attachment, made when the top plugin loads, shared with its delegates */
  owned: Ownership | null;
  /** ms since the epoch after which no host call starts; grows by the time external plugins take */
  deadline: number;
  /** the top plugin's grants: what the sweep's own delegated DEL may use */
  topGrants: Grants | null;
  /** where each type's component is, looked up once per call */
  located: Map<string, ReturnType<typeof locatePlugin>>;
  /** every plugin call's sessions (store lock, ...), so none outlives the call */
  sessions: CallContext['session'][];
}

function closeSessions(...all: CallContext['session'][]): void {
  for (const m of all) {
    for (const s of m.values()) { try { s.close(); } catch { /* closing is best effort; the process owns the fds */ } }
    m.clear();
  }
}

/** locatePlugin, once per type and call (it reads the manifest; a delegation asks three times). */
function located(sh: Shared, type: string): ReturnType<typeof locatePlugin> {
  if (!sh.located.has(type)) sh.located.set(type, locatePlugin(type, sh.policy));
  return sh.located.get(type)!;
}

export function invoke(type: string, env: NodeJS.ProcessEnv, stdin: () => string, policyFile?: string): Outcome {
  let version: string | undefined;
  let shared: Shared | undefined;
  let text = '';
  try {
    const inv = parseEnv(env);
    text = stdin();
    if (inv.command === 'VERSION') {
      let requested: unknown;
      try { requested = (JSON.parse(text || '{}') as { cniVersion?: unknown }).cniVersion; } catch { requested = undefined; }
      return { stdout: JSON.stringify(versionInfo(requested)) + '\n', exitCode: 0 };
    }
    const conf = parseNetConf(text, inv);
    version = conf.cniVersion;
    const policy = loadPolicy(policyFile);
    const audit = new AuditLog(policy.auditLog);
    let ns: Namespaces;
    try {
      ns = new Namespaces(inv.netns);
    } catch (e) {
      // a refused CNI_NETNS is a decision too: recorded before the error goes out
      audit.write({
        time: new Date().toISOString(), plugin: type, sha256: '', command: inv.command, containerId: inv.containerId,
        network: conf.name, call: 'invoke.netns', args: { netns: inv.netns }, verdict: 'deny',
        outcome: `error: ${e instanceof CniError ? `CNI${e.code} ${e.msg}` : (e as Error).message}`, ms: 0,
      });
      audit.close();
      throw e;
    }
    const deadline = Date.now() + policy.timeoutMs;
    const perAttachment = inv.command === 'ADD' || inv.command === 'DEL' || inv.command === 'CHECK';
    let ledger: Ledger;
    try {
      ledger = perAttachment
        ? Ledger.open(policy.stateDir, conf.name, inv.containerId, inv.ifname, deadline - policy.timeoutMs / 5)
        : Ledger.detached(`${inv.command} concerns no attachment and may not create objects`);
    } catch (e) {
      throw new CniError(CniErrorCode.IoFailure, `cni-wasm cannot record this call, so it was not made: ${(e as Error).message}`,
        `check that the policy's stateDir (${policy.stateDir}) is writable`);
    }
    shared = { inv, policy, audit, ns, network: conf.name, ledger, top: type, conf, owned: null, deadline, topGrants: null, located: new Map(), sessions: [] };
    let out: string;
    try {
      out = runPlugin(shared, type, inv.command, guestConfig(conf), 0, null);
    } catch (e) {
      // A failed or stopped ADD takes back everything it made, whatever the plugin managed to undo.
      if (inv.command === 'ADD') sweepNow(shared, 'failed-add', (_e, id) => shared!.ledger.madeNow.has(id));
      throw e;
    }
    if (inv.command === 'DEL') sweepNow(shared, 'del', (e) => e.plugin === type);
    if (inv.command === 'GC') gcAttachments(shared, type);
    if (inv.command !== 'ADD') return { stdout: '', exitCode: 0 };
    const result = convertResult(JSON.parse(out), conf.cniVersion);
    return { stdout: JSON.stringify(result) + '\n', exitCode: 0 };
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(999, (e as Error)?.message ?? String(e));
    // A config rejected after its version was read still gets its own version back.
    version ??= requestedVersion(text);
    return { stdout: JSON.stringify(err.toJSON(version)) + '\n', exitCode: 1 };
  } finally {
    shared?.ledger.close();
    shared?.ns.close();
    shared?.audit.close();
  }
}

function sweepKernel(sh: Shared): ReturnType<typeof lazyKernel> {
  const k = lazyKernel(null, () => {
    try { return sh.ns.fd('container'); } catch { return null; }
  });
  return Object.assign(k, {
    delegateDel: (t: string, config: string) => {
      // the lease of an interrupted ADD, released by its IPAM plugin with a fresh budget
      sh.deadline = Math.max(sh.deadline, Date.now() + sh.policy.timeoutMs);
      delegateSync(sh, t, 'del', config, 1, sh.topGrants);
    },
  });
}

function sweepNow(sh: Shared, mode: SweepMode, only: (e: LedgerEntry, id: number) => boolean): void {
  const k = sweepKernel(sh);
  try {
    sweep(sh.ledger, only, mode, k, sh.audit, { containerId: sh.inv.containerId, network: sh.network, command: sh.inv.command });
  } finally {
    k.close();
  }
}

/** GC: attachments the runtime no longer lists lose everything they made. */
function gcAttachments(sh: Shared, type: string): void {
  const valid = new Set((sh.conf[VALID_ATTACHMENTS] ?? []).map((a) => `${a.containerID}\u0000${a.ifname}`));
  Ledger.removeEmpty(sh.policy.stateDir, sh.network);
  const k = sweepKernel(sh);
  try {
    for (const a of Ledger.listAttachments(sh.policy.stateDir, sh.network)) {
      if (valid.has(`${a.containerId}\u0000${a.ifname}`)) continue;
      let l: Ledger;
      try {
        // an attachment busy in another call right now is left for the next GC
        l = Ledger.open(sh.policy.stateDir, sh.network, a.containerId, a.ifname, Date.now() + 50);
      } catch {
        continue;
      }
      try {
        sweep(l, (e) => e.plugin === type, 'gc', k, sh.audit, { containerId: a.containerId, network: sh.network, command: 'GC' });
      } finally {
        l.close();
      }
    }
  } finally {
    k.close();
  }
}

/** The config's cniVersion, when the config decodes and names a version we speak. */
function requestedVersion(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as { cniVersion?: unknown } | null)?.cniVersion;
    return isSupportedVersion(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The config as the guest sees it: prevResult in the current shape. */
function guestConfig(conf: NetConf): string {
  if (!conf.prevResult) return JSON.stringify(conf);
  return JSON.stringify({ ...conf, prevResult: convertResult(conf.prevResult, CURRENT) });
}

/**
 * A config a guest hands back for delegation carries prevResult in the
 * current shape (guestConfig gave it so). The delegated plugin must see what
 * the reference plugins pass on: the runtime's bytes, prevResult at the
 * config's own cniVersion. Anything that does not decode is left for
 * parseNetConf to judge.
 */
function runtimeShape(text: string): string {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return text;
  }
  const prev = doc?.prevResult;
  if (typeof prev !== 'object' || prev === null || Array.isArray(prev)) return text;
  const version = typeof doc.cniVersion === 'string' && doc.cniVersion !== '' ? doc.cniVersion : '0.1.0';
  if (!isSupportedVersion(version)) return text;
  try {
    return JSON.stringify({ ...doc, prevResult: convertResult(prev, version) });
  } catch {
    return text;
  }
}

function runPlugin(sh: Shared, type: string, command: string, config: string, depth: number, callerGrants: Grants | null): string {
  let plugin: ReturnType<typeof loadPlugin>;
  try {
    plugin = loadPlugin(type, sh.policy, located(sh, type));
    if (!plugin) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `no plugin component named '${type}' (looked in the bundled plugins and ${sh.policy.pluginDirs.join(', ') || 'no plugin dirs'})`);
    }
  } catch (e) {
    // A refusal to load is a decision about a plugin: it is audited too.
    const why = e instanceof CniError ? `error: CNI${e.code} ${e.msg}` : `error: ${(e as Error).message}`;
    sh.audit.write({
      time: new Date().toISOString(), plugin: type, sha256: e instanceof PluginRefused ? e.sha256 : '', command, containerId: sh.inv.containerId,
      network: sh.network, call: 'invoke.load', args: { depth }, verdict: 'deny', outcome: why, ms: 0,
    });
    throw e;
  }
  // Object rights come from the runtime's config and the top plugin's
  // declarations only; a delegate works within its caller's rights and grants.
  if (!sh.owned) sh.owned = attachmentRights(sh, plugin.objects);
  const grants = callerGrants ? intersectGrants(callerGrants, plugin.grants) : plugin.grants;
  if (depth === 0) sh.topGrants = grants;
  const ctx: CallContext = {
    plugin: { type, sha256: plugin.manifest.sha256, grants },
    command, containerId: sh.inv.containerId, ifname: sh.inv.ifname, network: sh.network, owner: sh.top,
    runtimeConf: depth === 0 ? sh.conf : undefined,
    owned: sh.owned, ledger: sh.ledger, audit: sh.audit, ns: sh.ns, policy: sh.policy, cniPath: sh.inv.path, depth,
    get deadline() { return sh.deadline; },
    session: new Map(),
    delegate: (t, cmd, cfg) => delegateSync(sh, t, cmd, cfg, depth + 1, grants),
  };
  sh.sessions.push(ctx.session);
  const t0 = nowMs();
  let outcome = 'ok';
  try {
    // The watchdog's limit: the call's own budget, plus what external plugins may take.
    const limit = Math.max(1, Math.round(sh.deadline - Date.now())) + (sh.policy.allowExec.length ? sh.policy.execTimeoutMs : 0);
    const guest = instantiate(plugin, ctx, limit);
    const req = {
      config, containerId: sh.inv.containerId, ifname: sh.inv.ifname, args: sh.inv.args,
      hasNetns: !!sh.inv.netns && existsSync(sh.inv.netns), netnsPath: sh.inv.netns,
    };
    const fn = command.toLowerCase();
    const out = withTimeLimit(ctx, command, Math.max(1, Math.round(limit - (nowMs() - t0))), () => guest[fn](req));
    return typeof out === 'string' ? out : '';
  } catch (e) {
    outcome = e instanceof CniError ? `error: CNI${e.code} ${e.msg}` : `error: ${(e as Error).message}`;
    if (ctx.inFlight) outcome += ` (stopped during ${ctx.inFlight})`;
    throw e;
  } finally {
    // The top plugin's call also closes what a delegate stopped by the time
    // limit left open (a termination runs no finally block in between).
    if (depth === 0) closeSessions(...sh.sessions);
    else closeSessions(ctx.session);
    sh.audit.write({
      time: new Date().toISOString(), plugin: type, sha256: plugin.manifest.sha256, command,
      containerId: sh.inv.containerId, network: sh.network, call: `invoke.${command.toLowerCase()}`,
      args: { ifname: sh.inv.ifname, depth }, verdict: 'allow', outcome, ms: +(nowMs() - t0).toFixed(3),
    }, { later: depth > 0 }); // the top plugin's record writes everything held: a call is not done until its records are
  }
}

/** What this attachment may act on: declared config keys, its prevResult, and what its ledger holds. */
function attachmentRights(sh: Shared, decls: ObjectDecl[]): Ownership {
  const o = Ownership.fromConfig(sh.inv.ifname, decls, sh.conf);
  o.defaultRouteLink = (ns) => defaultRouteLink(sh.ns.rtnl(ns))?.name ?? null;
  // a link the ledger holds is checked (its ifindex) only when a call acts on it
  o.currentIndex = (ns, name) => {
    try { return sh.ns.rtnl(ns).getLink(name).index; } catch (e) { if ((e as { code?: string }).code === 'ENODEV') return null; throw e; }
  };
  if (o.wantsMacs('host')) o.resolveMacs('host', sh.ns.rtnl('host').listLinks());
  o.ownResult(sh.conf.prevResult, true);
  for (const e of sh.ledger.entries) {
    if (e.kind === 'link' && typeof e.name === 'string') o.own(e.ns ?? 'host', e.name, typeof e.index === 'number' ? e.index : 0);
    if (e.kind === 'masquerade' && typeof e.source === 'string') o.ownAddress(e.source);
    if (e.kind === 'address' && typeof e.cidr === 'string') o.ownAddress(e.cidr);
  }
  return o;
}

/** The digest of a bundled or pinned component of this type ('' for an external binary). */
function locatePluginDigest(sh: Shared, type: string): string {
  const where = located(sh, type);
  return where && 'manifest' in where ? where.manifest.sha256 : sh.policy.plugins[type]?.sha256 ?? '';
}

/** Just what an IPAM plugin's DEL needs to release a lease, kept in the ledger. */
function ipamEssentials(config: string): string {
  const d = JSON.parse(config) as Record<string, unknown>;
  const keep: Record<string, unknown> = {};
  for (const k of ['cniVersion', 'name', 'type', 'ipam', 'args', 'runtimeConfig']) if (d[k] !== undefined) keep[k] = d[k];
  if (keep.runtimeConfig && typeof keep.runtimeConfig === 'object') keep.runtimeConfig = { ips: (keep.runtimeConfig as Record<string, unknown>).ips };
  return JSON.stringify(keep);
}

/** Runs another plugin for the same attachment; its result comes back in the current shape. */
function delegateSync(sh: Shared, type: string, cmd: DelegateCommand, guestText: string, depth: number, callerGrants: Grants | null): string {
  const command = cmd.toUpperCase();
  const config = runtimeShape(guestText);
  const conf = parseNetConf(config, { command: command as Invocation['command'] });
  // An ADD that takes a lease is an object of this attachment: recorded
  // first, so a failed or stopped ADD gives it back (the sweep runs its DEL).
  let id: number | undefined;
  if (command === 'ADD' && sh.inv.command === 'ADD') {
    [id] = sh.ledger.intend([{ kind: 'delegation', type, config: ipamEssentials(config), plugin: sh.top, keep: true, sha256: locatePluginDigest(sh, type) }]);
  }
  let out: string;
  try {
    if (located(sh, type)) out = runPlugin(sh, type, command, guestConfig(conf), depth, callerGrants);
    else if (sh.policy.allowExec.includes(type)) out = execExternal(sh, type, command, config);
    else {
      const refusal = new CniError(CniErrorCode.InvalidNetworkConfig, `no plugin component named '${type}', and the policy does not allow running a '${type}' binary (allowExec)`);
      sh.audit.write({
        time: new Date().toISOString(), plugin: type, sha256: '', command, containerId: sh.inv.containerId,
        network: sh.network, call: 'exec', args: { type }, verdict: 'deny', outcome: `error: CNI${refusal.code} ${refusal.msg}`, ms: 0,
      });
      throw refusal;
    }
  } catch (e) {
    if (id !== undefined) sh.ledger.abandon(id);
    throw e;
  }
  if (id !== undefined) sh.ledger.confirm(id);
  if (command !== 'ADD') return '';
  const result = convertResult(JSON.parse(out), CURRENT);
  sh.owned?.ownResult(result);
  return JSON.stringify(result);
}

/**
 * An external plugin (allowExec), as libcni would exec it. Its time is
 * bounded by the policy's execTimeoutMs, not by the calling guest's budget,
 * whose deadline moves on by as long as the external plugin took.
 */
function execExternal(sh: Shared, type: string, command: string, config: string): string {
  const bin = sh.inv.path.map((d) => join(d, type)).find((p) => existsSync(p));
  if (!bin) throw new CniError(CniErrorCode.InvalidNetworkConfig, `failed to find plugin '${type}' in CNI_PATH ${sh.inv.path.join(':')}`);
  const t0 = nowMs();
  sh.audit.write({
    time: new Date().toISOString(), plugin: type, sha256: 'external:' + bin, command, containerId: sh.inv.containerId,
    network: sh.network, call: 'exec', args: { bin }, verdict: 'allow', outcome: 'pending', ms: 0,
  });
  const r = childProcess().spawnSync(bin, [], {
    input: config, encoding: 'utf8', timeout: sh.policy.execTimeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20,
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: sh.inv.containerId, CNI_NETNS: sh.inv.netns,
      CNI_IFNAME: sh.inv.ifname, CNI_PATH: sh.inv.path.join(':'),
      CNI_ARGS: sh.inv.args.map(([k, v]) => `${k}=${v}`).join(';'),
    },
  });
  const took = nowMs() - t0;
  sh.deadline += took;
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  sh.audit.write({
    time: new Date().toISOString(), plugin: type, sha256: 'external:' + bin, command, containerId: sh.inv.containerId,
    network: sh.network, call: 'exec', args: { bin }, verdict: 'allow',
    outcome: r.status === 0 ? 'ok' : timedOut ? 'error: ETIMEDOUT' : `error: exit ${r.status}`, ms: +took.toFixed(3),
  });
  if (timedOut) {
    throw new CniError(ERR_EXEC_TIMEOUT, `plugin '${type}' (${bin}) did not finish ${command} within ${sh.policy.execTimeoutMs} ms and was stopped`,
      'external plugins are bounded by the policy\'s execTimeoutMs; raise it if this plugin is slow for a reason');
  }
  if (r.status !== 0) {
    try {
      const e = JSON.parse(r.stdout) as { code: number; msg: string; details?: string };
      throw new CniError(e.code, e.msg, e.details ?? '');
    } catch (e) {
      if (e instanceof CniError) throw e;
      throw new CniError(999, `plugin '${type}' (${bin}) failed: ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`);
    }
  }
  return r.stdout;
}

export function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}
