// The reference tuning plugin's sysctl allowlist (/etc/cni/tuning/allowlist.conf):
// one regular expression a line, blank lines ignored; when the file exists a
// key must match one of them (unanchored, as Go's regexp.MatchString). The
// reference matches the key as written in the config ("net.ipv4.conf.IFNAME.
// arp_filter"); the host sees it in slash form with CNI_IFNAME put in, so a
// key is tried both dotted and with its CNI_IFNAME component as "IFNAME".
// The file is read bounded: regular file, no symlink, at most 64 KiB.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

const MAX = 64 << 10;
const cache = new Map<string, RegExp[] | null>();

function readAllowlist(path: string): RegExp[] | null | string {
  if (cache.has(path)) return cache.get(path)!;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') { cache.set(path, null); return null; }
    return `cannot read the sysctl allowlist ${path}: ${(e as Error).message}`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX) return `the sysctl allowlist ${path} is not a regular file of at most ${MAX} bytes`;
    const buf = Buffer.alloc(st.size);
    const n = readSync(fd, buf, 0, st.size, 0);
    const res: RegExp[] = [];
    for (const line of buf.subarray(0, n).toString('utf8').split('\n')) {
      const l = line.trim();
      if (!l) continue;
      try { res.push(new RegExp(l)); } catch { return `the sysctl allowlist ${path} has an invalid expression: ${l}`; }
    }
    cache.set(path, res);
    return res;
  } finally {
    closeSync(fd);
  }
}

/** null when the key may be written in the container, else why not. */
export function allowlistRefusal(path: string, slashKey: string, ifname: string): string | null {
  const list = readAllowlist(path);
  if (list === null) return null;
  if (typeof list === 'string') return list;
  const parts = slashKey.split('/');
  const dotted = parts.join('.');
  const templ = parts.map((p) => (p === ifname ? 'IFNAME' : p)).join('.');
  if (list.some((r) => r.test(dotted) || r.test(templ))) return null;
  return `sysctl ${dotted} is not allowed by ${path}; only: ${list.map((r) => r.source).join(', ')}`;
}
