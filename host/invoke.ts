// One CNI call, end to end: environment and config in, plugin component run
// in its sandbox, result (converted to the caller's version) or error out.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, CniErrorCode } from './cni/errors.js';
import { parseEnv, type Invocation } from './cni/env.js';
import { parseNetConf, type NetConf } from './cni/config.js';
import { convertResult } from './cni/convert.js';
import { isSupportedVersion, versionInfo } from './cni/versions.js';
import { AuditLog } from './gate/audit.js';
import { Ledger } from './gate/ledger.js';
import { type Policy, loadPolicy } from './gate/policy.js';
import type { CallContext, DelegateCommand } from './gate/gate.js';
import { Namespaces } from './capabilities/namespaces.js';
import { loadPlugin, locatePlugin } from './sandbox/loader.js';
import { instantiate, withTimeLimit } from './sandbox/sandbox.js';
import { sweepAttachment, gcAttachments } from './sweep.js';
import { childProcess, nowMs } from './lazy.js';

export interface Outcome {
  /** what goes to stdout */
  stdout: string;
  exitCode: number;
}

const CURRENT = '1.1.0';

/** Shared by a top-level call and the plugins it delegates to. */
interface Shared {
  inv: Invocation;
  policy: Policy;
  audit: AuditLog;
  ns: Namespaces;
  network: string;
  ledger: Ledger | null;
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
    const ns = new Namespaces(inv.netns);
    const perAttachment = inv.command === 'ADD' || inv.command === 'DEL' || inv.command === 'CHECK';
    shared = {
      inv, policy, audit, ns, network: conf.name,
      ledger: perAttachment ? new Ledger(policy.stateDir, conf.name, inv.containerId, inv.ifname) : null,
    };
    const out = runPlugin(shared, type, inv.command, guestConfig(conf), 0);
    if (inv.command === 'DEL') sweepAttachment(shared.ledger!, type, shared.audit, shared.ns, inv.containerId, conf.name);
    if (inv.command === 'GC') gcAttachments(policy, conf, shared.audit);
    if (inv.command !== 'ADD') return { stdout: '', exitCode: 0 };
    const result = convertResult(JSON.parse(out), conf.cniVersion);
    return { stdout: JSON.stringify(result) + '\n', exitCode: 0 };
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(999, (e as Error)?.message ?? String(e));
    // A config rejected after its version was read still gets its own version back.
    version ??= requestedVersion(text);
    return { stdout: JSON.stringify(err.toJSON(version)) + '\n', exitCode: 1 };
  } finally {
    shared?.ns.close();
    shared?.audit.close();
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

function runPlugin(sh: Shared, type: string, command: string, config: string, depth: number): string {
  let plugin: ReturnType<typeof loadPlugin>;
  try {
    plugin = loadPlugin(type, sh.policy);
    if (!plugin) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `no plugin component named '${type}' (looked in the bundled plugins and ${sh.policy.pluginDirs.join(', ') || 'no plugin dirs'})`);
    }
  } catch (e) {
    // A refusal to load is a decision about a plugin: it is audited too.
    const why = e instanceof CniError ? `error: CNI${e.code} ${e.msg}` : `error: ${(e as Error).message}`;
    sh.audit.write({
      time: new Date().toISOString(), plugin: type, sha256: '', command, containerId: sh.inv.containerId,
      network: sh.network, call: 'invoke.load', args: { depth }, verdict: 'deny', outcome: why, ms: 0,
    });
    throw e;
  }
  const confDoc = JSON.parse(config) as Record<string, unknown>;
  const ctx: CallContext = {
    plugin: { type, sha256: plugin.manifest.sha256, grants: plugin.grants },
    command, containerId: sh.inv.containerId, ifname: sh.inv.ifname, network: sh.network,
    configNames: topLevelStrings(confDoc),
    prevInterfaces: prevInterfaces(confDoc),
    ledger: sh.ledger ?? new Ledger(sh.policy.stateDir, sh.network, '_', '_'),
    audit: sh.audit, ns: sh.ns, policy: sh.policy, cniPath: sh.inv.path, depth,
    session: new Map(),
    delegate: (t, cmd, cfg) => delegateSync(sh, t, cmd, cfg, depth + 1),
  };
  const t0 = nowMs();
  // one budget for start-up and the call together
  const remaining = () => Math.max(1, Math.round(sh.policy.timeoutMs - (nowMs() - t0)));
  let outcome = 'ok';
  try {
    const guest = instantiate(plugin, ctx, sh.policy.timeoutMs);
    const req = {
      config, containerId: sh.inv.containerId, ifname: sh.inv.ifname, args: sh.inv.args,
      hasNetns: !!sh.inv.netns && existsSync(sh.inv.netns), netnsPath: sh.inv.netns,
    };
    const fn = command.toLowerCase();
    const out = withTimeLimit(ctx, command, remaining(), () => guest[fn](req));
    return typeof out === 'string' ? out : '';
  } catch (e) {
    outcome = e instanceof CniError ? `error: CNI${e.code} ${e.msg}` : `error: ${(e as Error).message}`;
    throw e;
  } finally {
    for (const s of ctx.session.values()) s.close();
    sh.audit.write({
      time: new Date().toISOString(), plugin: type, sha256: plugin.manifest.sha256, command,
      containerId: sh.inv.containerId, network: sh.network, call: `invoke.${command.toLowerCase()}`,
      args: { ifname: sh.inv.ifname, depth }, verdict: 'allow', outcome, ms: +(nowMs() - t0).toFixed(3),
    });
  }
}

/** Runs another plugin for the same attachment; its result comes back in the current shape. */
function delegateSync(sh: Shared, type: string, cmd: DelegateCommand, config: string, depth: number): string {
  const command = cmd.toUpperCase();
  const conf = parseNetConf(config, { command: command as Invocation['command'] });
  let out: string;
  if (locatePlugin(type, sh.policy)) out = runPlugin(sh, type, command, guestConfig(conf), depth);
  else if (sh.policy.allowExec.includes(type)) out = execExternal(sh, type, command, config);
  else throw new CniError(CniErrorCode.InvalidNetworkConfig, `no plugin component named '${type}', and the policy does not allow running a '${type}' binary (allowExec)`);
  if (command !== 'ADD') return '';
  return JSON.stringify(convertResult(JSON.parse(out), CURRENT));
}

function execExternal(sh: Shared, type: string, command: string, config: string): string {
  const bin = sh.inv.path.map((d) => join(d, type)).find((p) => existsSync(p));
  if (!bin) throw new CniError(CniErrorCode.InvalidNetworkConfig, `failed to find plugin '${type}' in CNI_PATH ${sh.inv.path.join(':')}`);
  const t0 = nowMs();
  const r = childProcess().spawnSync(bin, [], {
    input: config, encoding: 'utf8', timeout: sh.policy.timeoutMs,
    env: {
      ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: sh.inv.containerId, CNI_NETNS: sh.inv.netns,
      CNI_IFNAME: sh.inv.ifname, CNI_PATH: sh.inv.path.join(':'),
      CNI_ARGS: sh.inv.args.map(([k, v]) => `${k}=${v}`).join(';'),
    },
  });
  sh.audit.write({
    time: new Date().toISOString(), plugin: type, sha256: 'external:' + bin, command, containerId: sh.inv.containerId,
    network: sh.network, call: 'exec', args: { bin }, verdict: 'allow',
    outcome: r.status === 0 ? 'ok' : `error: exit ${r.status}`, ms: +(nowMs() - t0).toFixed(3),
  });
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

/** name and sandbox of each interface in prevResult (already in the current shape) */
function prevInterfaces(doc: Record<string, unknown>): { name: string; sandbox: string }[] {
  const ifs = (doc.prevResult as { interfaces?: unknown } | undefined)?.interfaces;
  if (!Array.isArray(ifs)) return [];
  return ifs.slice(0, 256).flatMap((i) => (i && typeof i === 'object' && typeof (i as { name?: unknown }).name === 'string'
    ? [{ name: (i as { name: string }).name, sandbox: typeof (i as { sandbox?: unknown }).sandbox === 'string' ? (i as { sandbox: string }).sandbox : '' }]
    : []));
}

function topLevelStrings(doc: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(doc)) if (typeof v === 'string' && k !== 'cniVersion' && k !== 'type') out.add(v);
  return out;
}

export function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}
