// Throwaway network namespaces for integration tests.
// Rule: every test file uses its own name prefix (e.g. 'kt-' for the kernel
// tests), creates only namespaces with that prefix, and calls
// cleanupAll(prefix) in its `after` hook, so a crashed run never leaks into
// the next and files never delete each other's namespaces. Nothing here
// touches the machine's own netns.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';

export interface ExecOptions {
  /** stdin for the command */
  input?: string;
  /** throw when the exit status is not 0 (default true) */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export const netnsPath = (name: string): string => `/run/netns/${name}`;

function run(cmd: string[], opts: ExecOptions = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd[0], cmd.slice(1), {
    input: opts.input, env: opts.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000,
  });
  if (r.error) throw r.error;
  if ((opts.check ?? true) && r.status !== 0) {
    throw new Error(`${cmd.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}

/** Creates netns `name` with lo up; replaces a leftover of the same name. */
export function makeNetns(name: string): string {
  deleteNetns(name);
  run(['ip', 'netns', 'add', name]);
  run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return netnsPath(name);
}

export function deleteNetns(name: string): void {
  run(['ip', 'netns', 'del', name], { check: false });
}

/** Runs cmd inside netns `name` (`ip netns exec`). */
export function nsExec(name: string, cmd: string[], opts: ExecOptions = {}): SpawnSyncReturns<string> {
  return run(['ip', 'netns', 'exec', name, ...cmd], opts);
}

/** `ip -j <args>` inside netns `ns`, parsed (`[]` when ip prints nothing). */
export function ipJson<T = any>(ns: string, args: string[]): T {
  const out = run(['ip', '-n', ns, '-j', ...args]).stdout.trim();
  return (out ? JSON.parse(out) : []) as T;
}

export function listNetns(): string[] {
  const out = run(['ip', '-j', 'netns', 'list'], { check: false }).stdout.trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

/** Deletes every netns whose name starts with prefix. */
export function cleanupAll(prefix: string): void {
  if (!prefix) throw new Error('cleanupAll needs a non-empty prefix');
  for (const n of listNetns()) if (n.startsWith(prefix)) deleteNetns(n);
}
