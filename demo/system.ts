// What the demo and the bench need from the machine, installed from Debian's
// packages when missing (both run as root on a fresh machine).
import { spawnSync } from 'node:child_process';

export const have = (prog: string): boolean => spawnSync('sh', ['-c', `command -v ${prog}`]).status === 0;

let aptUpdated = false;

/** Installs Debian package `pkg` when `present()` says it is missing; whether it is there now. */
export function ensurePackage(pkg: string, present: () => boolean, log: (s: string) => void): boolean {
  if (present()) return true;
  if (!have('apt-get')) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, encoding: 'utf8', timeout: 600_000 });
  log(`installing ${pkg} (apt-get install -y ${pkg})`);
  let r = install();
  if (r.status !== 0 && !aptUpdated) {
    aptUpdated = true;
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8', timeout: 600_000 });
    r = install();
  }
  if (r.status !== 0) log(`apt-get install ${pkg} failed: ${(r.stderr ?? '').trim().split('\n').pop()}`);
  return present();
}

/** Network namespaces whose names start with prefix (each script owns one prefix). */
export function netnsWithPrefix(prefix: string): string[] {
  const r = spawnSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name).filter((n) => n.startsWith(prefix));
}
