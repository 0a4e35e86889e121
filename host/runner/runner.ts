// `cni-wasm add|check|del|gc|status <network> <netns>`: what cnitool does
// with libcni (libcni/api.go), with the same environment, the same config
// lookup, the same per-plugin configs and the same result cache, except
// that the bundled plugin types of a list run here, in this process,
// through invoke() (no exec per plugin). Other types are exec'd from
// CNI_PATH, only when the policy lists them in allowExec. When a
// `cni-wasm daemon` serves its socket (resident mode), the components run
// there instead, as the native shims' calls do: the same invoke(), warm.
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { invoke } from '../invoke.js';
import { DEFAULT_SOCKET, callDaemon } from '../daemon/client.js';
import { convertResult } from '../cni/convert.js';
import { parseCniArgs, validateContainerId, validateIfname } from '../cni/env.js';
import { CniError } from '../cni/errors.js';
import { compareVersions, resultFamily, isSupportedVersion, type CniVersion } from '../cni/versions.js';
import { loadPolicy, type Policy } from '../gate/policy.js';
import { locatePlugin } from '../sandbox/loader.js';
import { childProcess, nodeCrypto } from '../lazy.js';
import { type ConfList, type PluginConf, RunnerError, loadNetworkConf } from './conf.js';
import { type RuntimeConf, DEFAULT_CACHE_DIR, cacheFile, cachedAttachments, deleteRecord, readCachedResult, writeRecord } from './cache.js';
import { Ordered, goMarshal } from './gojson.js';

export const DEFAULT_NETCONFPATH = '/etc/cni/net.d';
/** CNI_PATH when it is unset: where runtimes install plugins */
export const DEFAULT_CNI_PATH = '/opt/cni/bin';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** the least time an exec'd (non-component) plugin gets */
export const EXEC_TIMEOUT_MS = 60_000;

export type RunCommand = 'ADD' | 'CHECK' | 'DEL' | 'GC' | 'STATUS';

export interface RunnerOptions {
  confDir: string;
  cniPath: string[];
  cacheDir: string;
  policyFile?: string;
  rt: RuntimeConf;
  /** the daemon's socket; null: never use a daemon (CNI_WASM_NO_DAEMON) */
  socket?: string | null;
}

/** A plugin's own CNI error, with the plugin it came from. */
export class PluginError extends Error {
  constructor(
    readonly plugin: { type: string; name: string }, readonly command: RunCommand,
    readonly code: number, readonly msg: string, readonly details: string, readonly text: string,
  ) {
    super(text);
  }
}

/** cnitool's runtime config: its environment variables, our flags over them. */
export function runtimeFromEnv(env: NodeJS.ProcessEnv, netnsArg: string, flags: { ifname?: string; containerId?: string; cacheDir?: string; confDir?: string; policy?: string; socket?: string }): RunnerOptions {
  let capabilityArgs: Record<string, unknown> = {};
  const cap = env.CAP_ARGS ?? '';
  if (cap !== '') {
    try {
      capabilityArgs = JSON.parse(cap);
    } catch (e) {
      throw new RunnerError(`CAP_ARGS is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof capabilityArgs !== 'object' || capabilityArgs === null || Array.isArray(capabilityArgs)) {
      throw new RunnerError('CAP_ARGS must be a JSON object, e.g. {"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}');
    }
  }
  let args: Array<[string, string]> = [];
  const rawArgs = env.CNI_ARGS ?? '';
  if (rawArgs !== '') {
    // cnitool: every pair KEY=VALUE, neither empty
    for (const pair of rawArgs.split(';')) {
      const kv = pair.split('=');
      if (kv.length !== 2 || kv[0] === '' || kv[1] === '') throw new RunnerError(`invalid CNI_ARGS pair "${pair}"`);
    }
    args = parseCniArgs(rawArgs);
  }
  const ifname = flags.ifname || env.CNI_IFNAME || 'eth0';
  const netns = resolve(netnsArg);
  const containerId = flags.containerId ?? containerIdFor(netns);
  return {
    confDir: flags.confDir || env.NETCONFPATH || DEFAULT_NETCONFPATH,
    cniPath: (env.CNI_PATH || DEFAULT_CNI_PATH).split(':').filter(Boolean),
    cacheDir: flags.cacheDir || DEFAULT_CACHE_DIR,
    policyFile: flags.policy,
    rt: { containerId, netns, ifname, args, capabilityArgs },
    socket: env.CNI_WASM_NO_DAEMON ? null : resolve(flags.socket || DEFAULT_SOCKET),
  };
}

/** cnitool's container id: "cnitool-" and the first 10 bytes of sha512(netns path), in hex. */
export function containerIdFor(netnsPath: string): string {
  return 'cnitool-' + nodeCrypto().createHash('sha512').update(netnsPath).digest('hex').slice(0, 20);
}

const versionOr010 = (v: string): string => (v === '' ? '0.1.0' : v);
const atLeast = (v: string, min: string): boolean => compareVersions(versionOr010(v), min) >= 0;

function requireVersion(v: string): CniVersion {
  const x = versionOr010(v);
  if (!isSupportedVersion(x)) throw new RunnerError(`unsupported CNI version "${v}" (cni-wasm speaks 0.1.0 to 1.1.0)`);
  return x;
}

/** A result as it goes into a config (prevResult): Go marshals 0.x results from structs, 1.x from a map. */
function asGoValue(result: Record<string, unknown>): unknown {
  const v = String(result.cniVersion ?? '');
  return isSupportedVersion(v) && resultFamily(v) !== '100' ? new Ordered(result) : result;
}

/** libcni's buildOneConfig: name and cniVersion of the list, prevResult, runtimeConfig for declared capabilities. */
export function buildOneConfig(list: ConfList, p: PluginConf, prevResult: Record<string, unknown> | null, rt: RuntimeConf | null): string {
  const doc: Record<string, unknown> = JSON.parse(p.bytes.toString('utf8'));
  doc.name = list.name;
  doc.cniVersion = list.cniVersion;
  if (prevResult) doc.prevResult = asGoValue(prevResult);
  if (rt) {
    const rc: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(p.capabilities)) {
      if (on && cap in rt.capabilityArgs && rt.capabilityArgs[cap] !== null) rc[cap] = rt.capabilityArgs[cap];
    }
    // replaces any runtimeConfig written in the file, as libcni does
    if (Object.keys(rc).length) doc.runtimeConfig = rc;
  }
  return goMarshal(doc);
}

function describe(p: PluginConf): string {
  return `type="${p.type}"${p.name ? ` name="${p.name}"` : ''}`;
}

export class Runner {
  readonly policy: Policy;
  constructor(readonly o: RunnerOptions) {
    try {
      this.policy = loadPolicy(o.policyFile);
    } catch (e) {
      throw new RunnerError((e as Error).message);
    }
  }

  load(network: string): ConfList {
    return loadNetworkConf(this.o.confDir, network);
  }

  /** cnitool's FindInPath: the first regular file <dir>/<type> on CNI_PATH. */
  findInPath(type: string): string | null {
    // a type names a file in a CNI_PATH dir, never a path
    if (type === '' || type === '.' || type === '..' || /[/\0]/.test(type)) return null;
    for (const d of this.o.cniPath) {
      const p = join(d, type);
      try { if (statSync(p).isFile()) return p; } catch { /* next */ }
    }
    return null;
  }

  /** Where a type runs: 'component' (here), 'exec' (an allowed binary), or why it cannot. */
  resolveType(type: string): { how: 'component' } | { how: 'exec'; bin: string } | { how: 'none'; why: string } {
    if (locatePlugin(type, this.policy)) return { how: 'component' };
    const bin = this.findInPath(type);
    if (bin && this.policy.allowExec.includes(type)) return { how: 'exec', bin };
    if (bin) {
      return { how: 'none', why: `"${type}" is not a cni-wasm component, and the policy does not allow running ${bin} (list "${type}" in "allowExec" of the policy to allow it)` };
    }
    return { how: 'none', why: `failed to find plugin "${type}" in path [${this.o.cniPath.join(' ')}] (and it is not a cni-wasm component)` };
  }

  /** One plugin, one command: its stdout, or a PluginError. */
  private exec(p: PluginConf, command: RunCommand, stdin: string, rt: RuntimeConf | null): string {
    const where = this.resolveType(p.type);
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt?.containerId ?? '',
      CNI_NETNS: rt?.netns ?? '',
      CNI_IFNAME: rt?.ifname ?? '',
      CNI_ARGS: (rt?.args ?? []).map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_PATH: this.o.cniPath.join(':'),
    };
    const plugin = { type: p.type, name: p.name };
    if (where.how === 'none') throw new PluginError(plugin, command, 0, where.why, '', where.why);
    let code: number;
    let stdout: string;
    let stderr = '';
    if (where.how === 'component') {
      const full = { ...process.env, ...env } as Record<string, string>;
      const d = this.o.socket ? callDaemon(this.o.socket, p.type, this.o.policyFile && resolve(this.o.policyFile), full, stdin) : null;
      if (d?.served) {
        code = d.exitCode;
        stdout = d.stdout;
      } else if (d && 'lost' in d && command === 'ADD') {
        // as the shim does: an ADD that may have run in part is not repeated (its DEL sweeps what it made)
        const why = `the cni-wasm daemon went away during ADD (${d.why}); the call may have run in part (a DEL of this attachment removes what it made)`;
        throw new PluginError(plugin, command, 999, why, '', why);
      } else {
        const out = invoke(p.type, full, () => stdin, this.o.policyFile);
        code = out.exitCode;
        stdout = out.stdout;
      }
      if (process.env.CNI_WASM_SHIM_DEBUG) process.stderr.write(`cni-wasm: ${p.type} ${command} ${d?.served ? `served by the daemon at ${this.o.socket}` : `ran here (${d ? d.why : 'CNI_WASM_NO_DAEMON is set'})`}\n`);
    } else {
      // an external plugin may wait on a daemon (dhcp): its own, longer bound
      const limit = Math.max(this.policy.timeoutMs, EXEC_TIMEOUT_MS);
      const r = childProcess().spawnSync(where.bin, [], {
        input: stdin, encoding: 'utf8', env: { ...process.env, ...env },
        maxBuffer: 64 * 1024 * 1024, timeout: limit, killSignal: 'SIGKILL',
      });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
        const why = `${where.bin} did not finish ${command} within ${limit} ms and was killed (the limit is the policy's timeoutMs, at least ${EXEC_TIMEOUT_MS} ms for exec'd plugins)`;
        throw new PluginError(plugin, command, 0, why, '', why);
      }
      code = r.status ?? -1;
      stdout = r.stdout ?? '';
      stderr = r.stderr ?? '';
      if (r.error) {
        throw new PluginError(plugin, command, 0, `netplugin failed: ${r.error.message}`, '', `netplugin failed: ${r.error.message}`);
      }
      // libcni copies a successful plugin's stderr through
      if (code === 0 && stderr) process.stderr.write(stderr);
    }
    if (code === 0) return stdout;
    // libcni's pluginErr: the plugin's own error document, else what it printed
    let e: { code?: unknown; msg?: unknown; details?: unknown } | null = null;
    try { e = stdout.trim() ? JSON.parse(stdout) : null; } catch { e = null; }
    if (e && typeof e === 'object') {
      const msg = typeof e.msg === 'string' ? e.msg : '';
      const details = typeof e.details === 'string' ? e.details : '';
      throw new PluginError(plugin, command, Number(e.code) || 0, msg, details, details ? `${msg}; ${details}` : msg);
    }
    const msg = stdout.trim()
      ? `netplugin failed but error parsing its diagnostic message ${JSON.stringify(stdout)}`
      : stderr ? `netplugin failed: ${JSON.stringify(stderr)}: exit status ${code}` : `netplugin failed with no error message: exit status ${code}`;
    throw new PluginError(plugin, command, 0, msg, '', msg);
  }

  /** A plugin's ADD output as libcni reads it: missing cniVersion means the config's. */
  private parseResult(stdout: string, confVersion: string, p: PluginConf): Record<string, unknown> {
    let doc: any;
    try {
      doc = JSON.parse(stdout);
    } catch (e) {
      throw new RunnerError(`plugin ${describe(p)} failed (add): decoding its result: ${(e as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RunnerError(`plugin ${describe(p)} failed (add): its result is not a JSON object`);
    if (typeof doc.cniVersion !== 'string' || doc.cniVersion === '') doc.cniVersion = versionOr010(confVersion);
    try {
      return convertResult(doc, doc.cniVersion) as unknown as Record<string, unknown>;
    } catch (e) {
      throw new RunnerError(`plugin ${describe(p)} failed (add): ${(e as Error).message}`);
    }
  }

  private validateAttachment(list: ConfList): void {
    const cnierr = (f: () => void) => { try { f(); } catch (e) { throw new RunnerError(e instanceof CniError ? e.message : String(e)); } };
    cnierr(() => validateContainerId(this.o.rt.containerId));
    if (list.name === '') throw new RunnerError('missing network name');
    if (!NAME_RE.test(list.name)) throw new RunnerError(`invalid characters found in network name; ${list.name}`);
    cnierr(() => validateIfname(this.o.rt.ifname));
  }

  /** AddNetworkList: each plugin's result is the next one's prevResult; the last is cached and returned. */
  add(list: ConfList): { result: Record<string, unknown>; cacheFile: string } {
    this.validateAttachment(list);
    requireVersion(list.cniVersion);
    let result: Record<string, unknown> | null = null;
    for (const p of list.plugins) {
      try {
        const out = this.exec(p, 'ADD', buildOneConfig(list, p, result, this.o.rt), this.o.rt);
        result = this.parseResult(out, list.cniVersion, p);
      } catch (e) {
        const err = e instanceof PluginError ? new PluginError(e.plugin, 'ADD', e.code, e.msg, e.details, `plugin ${describe(p)} failed (add): ${e.text}`) : e as Error;
        this.undo(list, result, err);
        throw err;
      }
    }
    let file: string;
    try {
      file = writeRecord(this.o.cacheDir, result ?? {}, list.bytes, list.name, this.o.rt);
    } catch (e) {
      this.undo(list, result, e as Error);
      throw e;
    }
    return { result: result ?? {}, cacheFile: file };
  }

  /**
   * A failed ADD leaves nothing: DEL for the whole list, in reverse, as a
   * runtime does after a failed ADD (libcni itself leaves that to the
   * caller). Like that runtime's DEL it carries no prevResult: nothing was
   * cached.
   */
  private undo(list: ConfList, _last: Record<string, unknown> | null, failed: Error): void {
    const prev = null;
    const notes: string[] = [];
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      const p = list.plugins[i]!;
      // a type that cannot run has nothing to undo
      if (this.resolveType(p.type).how === 'none') continue;
      try {
        this.exec(p, 'DEL', buildOneConfig(list, p, prev, this.o.rt), this.o.rt);
      } catch (e) {
        // a config the plugin rejects at ADD it rejects at DEL too: said once
        if (e instanceof PluginError && failed instanceof PluginError && e.msg === failed.msg && e.details === failed.details) continue;
        notes.push(`undoing the failed ADD: plugin ${describe(p)} failed (delete): ${e instanceof PluginError ? e.text : (e as Error).message}`);
      }
    }
    (failed as Error & { undoErrors?: string[] }).undoErrors = notes;
  }

  private convert(result: Record<string, unknown>, version: string): Record<string, unknown> {
    return convertResult(result, versionOr010(version)) as unknown as Record<string, unknown>;
  }

  /** libcni's getCachedResult: the cached result, in the list's version (null when none). */
  cachedResult(list: ConfList): Record<string, unknown> | null {
    const r = readCachedResult(this.o.cacheDir, list.name, this.o.rt);
    if (!r) return null;
    try {
      return this.convert(r, list.cniVersion);
    } catch (e) {
      throw new RunnerError(`failed to convert cached result to config version "${list.cniVersion}": ${(e as Error).message}`);
    }
  }

  /** CheckNetworkList: in order, each with the cached result. */
  check(list: ConfList): 'checked' | 'disabled' {
    if (!atLeast(list.cniVersion, '0.4.0')) throw new RunnerError(`configuration version "${list.cniVersion}" does not support the CHECK command`);
    if (list.disableCheck) return 'disabled';
    let cached: Record<string, unknown> | null;
    try {
      cached = this.cachedResult(list);
    } catch (e) {
      throw new RunnerError(`failed to get network "${list.name}" cached result: ${(e as Error).message}`);
    }
    for (const p of list.plugins) this.exec(p, 'CHECK', buildOneConfig(list, p, cached, this.o.rt), this.o.rt);
    return 'checked';
  }

  /** DelNetworkList: in reverse, the cached result as prevResult (0.4.0 and later); then the cache entry goes. */
  del(list: ConfList, rt: RuntimeConf = this.o.rt): void {
    let cached: Record<string, unknown> | null = null;
    if (atLeast(list.cniVersion, '0.4.0')) {
      try {
        cached = this.withRt(rt, () => this.cachedResult(list));
      } catch {
        // libcni: an unreadable cache entry is dropped and DEL goes on without it
        deleteRecord(this.o.cacheDir, list.name, rt);
        cached = null;
      }
    }
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      const p = list.plugins[i]!;
      try {
        this.exec(p, 'DEL', buildOneConfig(list, p, cached, rt), rt);
      } catch (e) {
        if (e instanceof PluginError) throw new PluginError(e.plugin, 'DEL', e.code, e.msg, e.details, `plugin ${describe(p)} failed (delete): ${e.text}`);
        throw e;
      }
    }
    deleteRecord(this.o.cacheDir, list.name, rt);
  }

  private withRt<T>(rt: RuntimeConf, f: () => T): T {
    const saved = this.o.rt;
    this.o.rt = rt;
    try { return f(); } finally { this.o.rt = saved; }
  }

  /**
   * GCNetworkList with the attachments in the cache as the valid ones: a
   * plugin releases what it holds for attachments nobody knows about (a
   * crashed runtime's leases), and keeps what the cache says is in use.
   * (cnitool passes no list, so libcni DELs every cached attachment of the
   * network first; we do not, as that tears down live containers.)
   */
  gc(list: ConfList): { ran: boolean; valid: Array<{ containerID: string; ifname: string }> } {
    const valid = cachedAttachments(this.o.cacheDir)
      .filter((a) => a.network === list.name)
      .map((a) => ({ containerID: a.containerId, ifname: a.ifname }));
    if (list.disableGC || !atLeast(list.cniVersion, '1.1.0')) return { ran: false, valid };
    const errs: string[] = [];
    for (const p of list.plugins) {
      const doc: Record<string, unknown> = JSON.parse(p.bytes.toString('utf8'));
      doc.name = list.name;
      doc.cniVersion = list.cniVersion;
      doc['cni.dev/valid-attachments'] = valid;
      doc['cni.dev/attachments'] = valid;
      try {
        this.exec(p, 'GC', goMarshal(doc), null);
      } catch (e) {
        errs.push(`failed to GC plugin ${p.type}: ${(e as Error).message}`);
      }
    }
    if (errs.length) throw new RunnerError(errs.join('\n'));
    return { ran: true, valid };
  }

  /** GetStatusNetworkList: each plugin in order; the first error stops it. */
  status(list: ConfList): boolean {
    if (!atLeast(list.cniVersion, '1.1.0')) return false;
    for (const p of list.plugins) {
      const doc: Record<string, unknown> = JSON.parse(p.bytes.toString('utf8'));
      doc.name = list.name;
      doc.cniVersion = list.cniVersion;
      this.exec(p, 'STATUS', goMarshal(doc), null);
    }
    return true;
  }

  cachePath(list: ConfList): string {
    return cacheFile(this.o.cacheDir, list.name, this.o.rt);
  }
}

