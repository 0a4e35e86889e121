// What a process sends to the kernel over netlink, captured with
// `strace -e write=all` (a hex dump of every sendto/sendmsg buffer), split
// into netlink messages. Used to compare our tc encoding byte for byte with
// iproute2's and the reference plugin's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function hasStrace(): boolean {
  return spawnSync('strace', ['-V'], { encoding: 'utf8' }).status === 0;
}

/** Netlink messages in the buffers of every sendto/sendmsg in an strace -e write=all log. */
export function parseStraceSends(log: string): Buffer[] {
  const bufs: Buffer[] = [];
  let cur: number[] | null = null;
  for (const line of log.split('\n')) {
    if (/\b(sendto|sendmsg)\(/.test(line)) {
      if (cur) bufs.push(Buffer.from(cur));
      cur = [];
      continue;
    }
    const m = /^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})/.exec(line);
    if (m && cur) {
      for (const h of m[1].trim().split(/\s+/)) cur.push(parseInt(h, 16));
      continue;
    }
    if (!line.startsWith(' *') && cur && cur.length) { bufs.push(Buffer.from(cur)); cur = null; }
  }
  if (cur && cur.length) bufs.push(Buffer.from(cur));
  const msgs: Buffer[] = [];
  for (const b of bufs) {
    let o = 0;
    while (o + 16 <= b.length) {
      const len = b.readUInt32LE(o);
      if (len < 16 || o + len > b.length) break;
      msgs.push(b.subarray(o, o + len));
      o += (len + 3) & ~3;
    }
  }
  return msgs;
}

/** Runs cmd under strace (inside netns `ns` when given) and returns its netlink messages of `type`. */
export function captureNetlink(cmd: string[], opts: { ns?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): { msgs: Buffer[]; status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'strace-'));
  const out = join(dir, 'log');
  const full = ['strace', '-f', '-qq', '-e', 'trace=sendto,sendmsg', '-e', 'write=all', '-o', out, ...cmd];
  const argv = opts.ns ? ['ip', 'netns', 'exec', opts.ns, ...full] : full;
  const r = spawnSync(argv[0], argv.slice(1), { input: opts.input, env: opts.env, encoding: 'utf8', timeout: 60_000 });
  let log = '';
  try { log = readFileSync(out, 'utf8'); } finally { rmSync(dir, { recursive: true, force: true }); }
  return { msgs: parseStraceSends(log), status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const msgType = (m: Buffer): number => m.readUInt16LE(4);

/** A message with its seq and pid zeroed: what must match between two senders. */
export function normalized(m: Buffer): Buffer {
  const c = Buffer.from(m);
  c.fill(0, 8, 16);
  return c;
}
