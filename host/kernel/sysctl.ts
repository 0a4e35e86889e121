// Network sysctls, read and written through /proc/sys while the main thread
// sits in the target netns (sync fs calls run on this thread, so they see it).
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { withNetns } from './native.js';
import { KernelError } from './types.js';

/**
 * "net/ipv4/ip_forward" or "net.ipv4.ip_forward" to a path under /proc/sys.
 * In the dotted form '/' stands for a '.' inside a component, as in
 * sysctl(8): "net.ipv4.conf.eth0/100.rp_filter".
 */
export function sysctlPath(key: string): string {
  const parts = key.startsWith('net.')
    ? key.split('.').map((p) => p.replace(/\//g, '.'))
    : key.split('/');
  if (parts[0] !== 'net' || parts.length < 2 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new KernelError('EPERM', `sysctl "${key}": only keys under net/ are allowed`, 1);
  }
  return '/proc/sys/' + parts.join('/');
}

function fsError(e: unknown, what: string): KernelError {
  const err = e as NodeJS.ErrnoException;
  return new KernelError(typeof err.code === 'string' ? err.code : 'EIO', `${what}: ${err.message}`, Math.abs(err.errno ?? 0));
}

export function sysctlGet(nsFd: number | null, key: string): string {
  const path = sysctlPath(key);
  return withNetns(nsFd, () => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw fsError(e, `sysctl get ${key}`);
    }
  });
}

export function sysctlSet(nsFd: number | null, key: string, value: string | number): void {
  const path = sysctlPath(key);
  withNetns(nsFd, () => {
    try {
      writeFileSync(path, String(value));
    } catch (e) {
      throw fsError(e, `sysctl set ${key}=${value}`);
    }
  });
}

const ENSURE_READ_MAX = 4096;
const ensureBuf = Buffer.alloc(ENSURE_READ_MAX);

/** The two-step form: read (and trim), write when it differs. */
function readThenWrite(path: string, key: string, value: string): string {
  let now: string;
  try {
    now = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw fsError(e, `sysctl get ${key}`);
  }
  if (now === value) return now;
  try {
    writeFileSync(path, value);
  } catch (e) {
    throw fsError(e, `sysctl set ${key}=${value}`);
  }
  return now;
}

/**
 * Writes value unless the key holds it already (compared trimmed: a write
 * can fail where a read does not, and costs more), in one switch into the
 * netns and through one open for both (a new interface's first path lookup
 * is the dear part). Anything unusual (a key only readable, a long value, a
 * failed read or write) takes the two-step path again, so the errors are
 * exactly sysctlGet's and sysctlSet's. Returns the value it found.
 */
export function sysctlEnsure(nsFd: number | null, key: string, value: string): string {
  const path = sysctlPath(key);
  return withNetns(nsFd, () => {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch {
      return readThenWrite(path, key, value);
    }
    let now: string | null = null;
    try {
      const n = readSync(fd, ensureBuf, 0, ENSURE_READ_MAX, 0);
      if (n < ENSURE_READ_MAX) {
        const cur = ensureBuf.toString('utf8', 0, n).trim();
        if (cur === value || writeSync(fd, value, 0) === Buffer.byteLength(value)) now = cur;
      }
    } catch {
      now = null;
    } finally {
      closeSync(fd);
    }
    return now ?? readThenWrite(path, key, value);
  });
}
