// A small conflist runner that does what libcni (AddNetworkList /
// DelNetworkList / CheckNetworkList) does with a network configuration list:
//
//   ADD    each plugin in order; its config is the plugin's own object with
//          the list's "name" and "cniVersion" injected, "runtimeConfig" from
//          the capabilities it declares, and "prevResult" = the result of the
//          plugin before it. The last result is the attachment's result.
//   DEL    each plugin in reverse order, prevResult = the cached ADD result.
//   CHECK  each plugin in order, prevResult = the cached ADD result.
//
// Plugins are found in CNI_PATH and exec'd with the CNI_* environment and the
// config on stdin, exactly as a runtime does. Used by the demo and the bench;
// tests can use it to drive whole conflists against ours or the reference.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetConfList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConf[];
}

export interface RuntimeConf {
  containerId: string;
  /** path of the container's netns, e.g. /run/netns/x ('' for none) */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs */
  args?: [string, string][];
  /** capability name -> value, handed to plugins that declare the capability */
  capabilityArgs?: Record<string, unknown>;
}

export interface ExecRequest {
  bin: string;
  env: Record<string, string>;
  stdin: string;
}

export interface ExecReply {
  code: number;
  stdout: string;
  stderr: string;
}

/** How a plugin binary is started; the default spawns it (inside hostNs if set). */
export type Exec = (req: ExecRequest) => ExecReply;

export interface RunnerOptions {
  /** CNI_PATH: where plugin binaries are looked up, in order */
  path: string[];
  /** run plugins inside this named netns (`ip netns exec`): the netns playing the host */
  hostNs?: string;
  /** replaces the default exec (e.g. one that setns()es itself, for timing) */
  exec?: Exec;
  /** extra environment (PATH is passed on by default) */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** One plugin invocation, as it happened. */
export interface Step {
  type: string;
  command: string;
  /** wall time of the exec, ms */
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** A plugin failed: the CNI error it printed (or its exit status). */
export class PluginError extends Error {
  constructor(
    public readonly type: string,
    public readonly command: string,
    public readonly code: number,
    public readonly msg: string,
    public readonly details: string,
    public readonly steps: Step[],
  ) {
    super(`${type} ${command} failed: ${msg}${details ? ` (${details})` : ''}${code ? ` [CNI error ${code}]` : ''}`);
  }
}

export function defaultExec(hostNs: string | undefined, timeoutMs: number): Exec {
  return ({ bin, env, stdin }) => {
    const cmd = hostNs ? ['ip', 'netns', 'exec', hostNs, bin] : [bin];
    const r = spawnSync(cmd[0], cmd.slice(1), { input: stdin, env, encoding: 'utf8', timeout: timeoutMs });
    if (r.error) return { code: -1, stdout: r.stdout ?? '', stderr: `${r.error.message}\n${r.stderr ?? ''}` };
    if (r.signal) return { code: -1, stdout: r.stdout, stderr: `${r.stderr}killed by ${r.signal}\n` };
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
}

export function findPlugin(type: string, path: string[]): string {
  if (!type || /[/\\\0]/.test(type)) throw new Error(`invalid plugin type '${type}'`);
  for (const dir of path) {
    const p = join(dir, type);
    if (existsSync(p)) return p;
  }
  throw new Error(`failed to find plugin "${type}" in path [${path.join(' ')}]`);
}

/** The config one plugin gets on stdin, built as libcni's buildOneConfig does. */
export function pluginConfig(list: NetConfList, plugin: PluginConf, rt: RuntimeConf, prevResult: unknown): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined && prevResult !== null) conf.prevResult = prevResult;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on && rt.capabilityArgs && cap in rt.capabilityArgs) runtimeConfig[cap] = rt.capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  return conf;
}

/** Compares dotted versions numerically ("1.0.0" >= "0.4.0"). */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export class ConflistRunner {
  private readonly exec: Exec;

  constructor(private readonly opts: RunnerOptions) {
    this.exec = opts.exec ?? defaultExec(opts.hostNs, opts.timeoutMs ?? 60_000);
  }

  /** Execs one plugin; throws PluginError on a non-zero exit. */
  invoke(command: string, plugin: PluginConf, conf: Record<string, unknown>, rt: RuntimeConf, steps: Step[]): unknown {
    const bin = findPlugin(plugin.type, this.opts.path);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...this.opts.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifname,
      CNI_PATH: this.opts.path.join(':'),
    };
    if (rt.args?.length) env.CNI_ARGS = rt.args.map(([k, v]) => `${k}=${v}`).join(';');
    const t0 = performance.now();
    const r = this.exec({ bin, env, stdin: JSON.stringify(conf) });
    const ms = performance.now() - t0;
    steps.push({ type: plugin.type, command, ms, code: r.code, stdout: r.stdout, stderr: r.stderr });
    if (r.code !== 0) {
      let e: { code?: number; msg?: string; details?: string } = {};
      try { e = JSON.parse(r.stdout); } catch { /* not JSON */ }
      const msg = e.msg ?? ((r.stderr || r.stdout).trim() || `exit status ${r.code}`);
      throw new PluginError(plugin.type, command, e.code ?? 0, msg, e.details ?? '', steps);
    }
    if (command !== 'ADD') return undefined;
    try {
      return JSON.parse(r.stdout);
    } catch {
      throw new PluginError(plugin.type, command, 0, `result is not JSON: ${r.stdout.slice(0, 200)}`, '', steps);
    }
  }

  /** ADD of the whole list; returns the final result and each plugin's step. */
  add(list: NetConfList, rt: RuntimeConf): { result: unknown; steps: Step[] } {
    const steps: Step[] = [];
    let prev: unknown;
    for (const p of list.plugins) prev = this.invoke('ADD', p, pluginConfig(list, p, rt, prev), rt, steps);
    return { result: prev, steps };
  }

  /** DEL of the whole list, last plugin first, each given the cached ADD
   *  result (from 0.4.0 on; older versions get no prevResult on DEL). */
  del(list: NetConfList, rt: RuntimeConf, cachedResult?: unknown): { steps: Step[] } {
    const steps: Step[] = [];
    const prev = versionAtLeast(list.cniVersion, '0.4.0') ? cachedResult : undefined;
    for (const p of [...list.plugins].reverse()) this.invoke('DEL', p, pluginConfig(list, p, rt, prev), rt, steps);
    return { steps };
  }

  /** CHECK of the whole list (0.4.0 and later; skipped when the list says disableCheck). */
  check(list: NetConfList, rt: RuntimeConf, cachedResult: unknown): { steps: Step[] } {
    const steps: Step[] = [];
    if (!versionAtLeast(list.cniVersion, '0.4.0')) throw new Error(`configuration version "${list.cniVersion}" does not support the CHECK command`);
    if (list.disableCheck) return { steps };
    for (const p of list.plugins) this.invoke('CHECK', p, pluginConfig(list, p, rt, cachedResult), rt, steps);
    return { steps };
  }
}
