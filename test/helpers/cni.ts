// Running CNI plugins in tests exactly as a runtime does: exec the binary
// (our installed shim, or the reference plugin) with CNI_* env and the config
// on stdin, from inside a throwaway netns that plays the host.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsPath } from './netns.js';
import { RESIDENT, residentBinary, residentStderr } from './resident.js';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
export const CLI = join(ROOT, 'bin/cni-wasm.cjs');
/** Debian's containernetworking-plugins */
export const REFERENCE_BIN = '/usr/lib/cni';

export interface Harness {
  dir: string;
  /** our shims */
  bin: string;
  policyFile: string;
  auditLog: string;
  stateDir: string;
  /** default store (IPAM) dir */
  storeDir: string;
}

/** A temp dir with a policy, shims for every bundled plugin, and state dirs. */
export function makeHarness(prefix: string, policy: Record<string, unknown> = {}): Harness {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}`));
  const h: Harness = {
    dir, bin: join(dir, 'bin'), policyFile: join(dir, 'policy.json'),
    auditLog: join(dir, 'audit.log'), stateDir: join(dir, 'state'), storeDir: join(dir, 'ipam'),
  };
  mkdirSync(h.bin, { recursive: true });
  writePolicy(h, policy);
  const r = spawnSync(process.execPath, [CLI, 'install', '--bin-dir', h.bin, '--policy', h.policyFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cni-wasm install failed: ${r.stderr}`);
  return h;
}

export function writePolicy(h: Harness, policy: Record<string, unknown>): void {
  writeFileSync(h.policyFile, JSON.stringify({
    auditLog: h.auditLog, stateDir: h.stateDir, storeDir: h.storeDir, pluginDirs: [], ...policy,
  }, null, 2));
}

export function removeHarness(h: Harness): void {
  rmSync(h.dir, { recursive: true, force: true });
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
  /** netns (name) to run the plugin in: the test's "host" */
  hostNs?: string;
  /** container netns name, or '' for none */
  netns?: string;
  containerId?: string;
  ifname?: string;
  args?: string;
  config: object | string;
  /** CNI_PATH (default: the dir the binary is in) */
  path?: string;
  env?: Record<string, string>;
}

export interface CniReply {
  code: number;
  stdout: string;
  stderr: string;
  /** parsed stdout, when it is JSON */
  json: any;
}

/** Execs `<binDir>/<type>` as a runtime would. */
export function execPlugin(binDir: string, type: string, call: CniCall): CniReply {
  const bin = join(binDir, type);
  if (!existsSync(bin)) throw new Error(`no plugin binary ${bin}`);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? 'test-container',
    CNI_NETNS: call.netns ? netnsPath(call.netns) : '',
    CNI_IFNAME: call.ifname ?? 'eth0',
    CNI_PATH: call.path ?? binDir,
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
    ...call.env,
  };
  // CNI_WASM_TEST_MODE=resident: through a native shim and a daemon in the host netns (resident.ts)
  const exe = residentBinary(binDir, type, call.hostNs) ?? bin;
  const notes = !!env.CNI_WASM_SHIM_DEBUG;
  if (RESIDENT) env.CNI_WASM_SHIM_DEBUG = '1';
  const cmd = call.hostNs ? ['ip', 'netns', 'exec', call.hostNs, exe] : [exe];
  const r = spawnSync(cmd[0], cmd.slice(1), {
    input: typeof call.config === 'string' ? call.config : JSON.stringify(call.config),
    env, encoding: 'utf8', timeout: 60_000,
  });
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: residentStderr(r.stderr ?? '', notes), json };
}

/** Our plugin, through the installed shim. */
export const ours = (h: Harness, type: string, call: CniCall): CniReply => execPlugin(h.bin, type, call);
/** The reference plugin from Debian's containernetworking-plugins. */
export const reference = (type: string, call: CniCall): CniReply => execPlugin(REFERENCE_BIN, type, call);

export function hasReference(): boolean {
  return existsSync(join(REFERENCE_BIN, 'bridge'));
}

/** `cni-wasm --policy <harness policy> <args>` (the runner: add, del, check ...) inside netns `ns`, with only cnitool's environment. */
export function cniWasmIn(h: Harness, ns: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, CLI, '--policy', h.policyFile, ...args], {
    encoding: 'utf8', timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: REFERENCE_BIN, ...env },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function readAudit(h: Harness): any[] {
  if (!existsSync(h.auditLog)) return [];
  return readFileSync(h.auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export interface Sequence {
  /** exit codes, one per call */
  codes: number[];
  /** "COMMAND: stdout stderr" of each call that failed */
  errors: string[];
  version: CniReply;
  add: CniReply;
}

/** CNI versions from 0.4.0 on have CHECK. */
export const hasCheck = (version: string): boolean => !/^0\.[0-3]\./.test(version);

/**
 * The calls libcni makes for one attachment, at the config's own cniVersion:
 * VERSION, ADD, CHECK (0.4.0 and later), DEL with the cached ADD result as
 * prevResult, then DEL again. `call` runs one command with one config;
 * `afterAdd` looks at the kernel and the state between ADD and the rest.
 */
export function libcniSequence(
  call: (command: CniCall['command'], config: object) => CniReply, conf: { cniVersion: string } & Record<string, unknown>,
  afterAdd?: (add: CniReply) => void,
): Sequence {
  const t: Sequence = { codes: [], errors: [], version: undefined as unknown as CniReply, add: undefined as unknown as CniReply };
  const step = (command: CniCall['command'], config: object) => {
    const r = call(command, config);
    t.codes.push(r.code);
    if (r.code !== 0) t.errors.push(`${command}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    return r;
  };
  t.version = step('VERSION', { cniVersion: conf.cniVersion });
  t.add = step('ADD', conf);
  afterAdd?.(t.add);
  const cached = { ...conf, prevResult: t.add.json };
  if (hasCheck(conf.cniVersion)) step('CHECK', cached);
  step('DEL', cached);
  step('DEL', cached);
  return t;
}
