// What the real-client end-to-end tests (podman, containerd) share: running
// a command, finding and installing what a clean CI machine lacks, and a
// read-only look at the machine's own network namespace (which must not change).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function sh(cmd: string[], timeoutMs = 120_000, env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: timeoutMs, env: env ?? process.env });
  if (r.error) throw new Error(`${cmd.join(' ')}: ${r.error.message}`);
  return r;
}

export const which = (bin: string): boolean => sh(['sh', '-c', `command -v ${bin}`]).status === 0;

/** apt-get install, with one `apt-get update` and retry when the lists are stale. */
export function aptInstall(need: string[]): void {
  if (!need.length) return;
  const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = sh(['apt-get', 'install', '-y', ...need], 900_000, aptEnv);
  if (r.status !== 0) {
    sh(['apt-get', 'update'], 900_000, aptEnv);
    r = sh(['apt-get', 'install', '-y', ...need], 900_000, aptEnv);
  }
  if (r.status !== 0) throw new Error(`apt-get install -y ${need.join(' ')} failed:\n${r.stderr || r.stdout}`);
}

/** The machine's own netns as a string to compare before and after: links, nft tables, ip_forward. */
export function machineNetns(): string {
  const links = (JSON.parse(sh(['ip', '-j', 'link', 'show']).stdout || '[]') as any[])
    .map((l) => `${l.ifindex}:${l.ifname}`).sort();
  const tables = sh(['nft', 'list', 'tables']).stdout.trim().split('\n').filter(Boolean).sort();
  const fwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  return JSON.stringify({ links, tables, fwd }, null, 1);
}

/** Hard ulimits this root may not raise: containers get at most these. */
export function ulimit(name: 'Max open files' | 'Max processes', want: number): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const hard = line?.trim().split(/\s{2,}/)[2];
  return hard && /^\d+$/.test(hard) ? Math.min(want, Number(hard)) : want;
}

/** podman's environment with a temp configuration dir (containers.conf, storage.conf). */
export const podmanEnv = (dir: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: process.env.HOME ?? '/root',
  CONTAINERS_CONF: `${dir}/containers.conf`,
  CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
});

/** The last audit records, one line each, for a failure message. */
export function auditLines(records: () => any[], n = 25): string {
  try {
    return records().slice(-n).map((r) =>
      `${r.command} ${r.plugin} ${r.containerId?.slice(0, 12)} ${r.call} ${JSON.stringify(r.args)} ${r.verdict} -> ${r.outcome}`).join('\n') || '(empty)';
  } catch (e) {
    return `(cannot read the audit log: ${(e as Error).message})`;
  }
}
