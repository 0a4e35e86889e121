// store: a small key/value store per plugin and network, laid out exactly as
// the reference host-local keeps its leases (<dataDir>/<network>/<key>, a
// `lock` file taken with flock), so both implementations can share a node's
// state. The lock is taken at open and held until the invocation ends, so a
// plugin's read-modify-write is atomic against every concurrent CNI call.
//
// Scope, decided by the host, not the plugin: the network is the
// invocation's own (the runtime's config `name`; a delegating plugin cannot
// change it); the directory is the plugin's default (host-local: the
// policy's storeDir; any other plugin: a directory of its own beside it), or
// a dataDir its grant allows — never one of cni-wasm's own directories
// (ledger, audit, components) and never another plugin's default. Reads are
// bounded (regular files only, no symlinks, size-capped) and writes have quotas.
//
// Cost (the IPAM path of every ADD and DEL): the directory is listed once, at
// open, with the lock held, and the listing is kept for the call — nothing
// that honours the lock (we, the reference) changes the directory meanwhile —
// so a missing key costs no syscall and the key quota no readdir; values are
// read and written by the native addon (store.inc.c) on a directory fd kept
// for the call, one crossing per call rather than one per syscall.
//
// Durability, as before: every write is write-then-rename, so a reader and a
// crash of this process see the old value or the new; a new key is created
// only if absent (RENAME_NOREPLACE). There is no fsync (the reference has
// none either): a replaced value is swapped out (RENAME_EXCHANGE) rather than
// renamed over, which spares the writeback ext4 would start and wait on, so
// after a power loss a value written just before may come back empty, as a
// new key already could. The lock is polled with a short backoff (0.2 ms
// doubling to 1 ms) in native code, never past the call's time limit.
import {
  closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, realpathSync, unlinkSync,
} from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { overlaps, protectedDirs, type Policy } from '../gate/policy.js';
import { flockWithin, storeRead, storeWrite } from '../kernel/native.js';
import { tmpSuffix } from '../lazy.js';

const SESSION = 'store';
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** Per value, and per call: enough for leases and saved state, not for filling a disk. */
export const STORE_LIMITS = { valueBytes: 64 << 10, putsPerCall: 10_000, keys: 100_000 };

class StoreSession {
  puts = 0;
  /**
   * @param keys the store's keys (the directory's names but `lock` and dot files), listed at open
   * @param names how many names the directory holds (the key quota counts them all)
   */
  constructor(
    public readonly dir: string, private readonly lockFd: number, readonly dirFd: number,
    readonly keys: Set<string>, public names: number,
  ) {}
  close(): void { closeSync(this.dirFd); closeSync(this.lockFd); } // closing drops the flock
  /** the keys, sorted, as `keys` answers */
  sorted(): string[] { return [...this.keys].sort(); }
}

function session(ctx: CallContext): StoreSession {
  const s = ctx.session.get(SESSION) as StoreSession | undefined;
  if (!s) throw new HostError('ESTORE', 'store.open must be called first');
  return s;
}

function checkKey(key: string): void {
  if (!key || key.includes('/') || key.startsWith('.') || key === 'lock' || key.length > 255 || key.includes('\0')) {
    throw new HostError('EINVAL', `'${key}' is not a valid store key`);
  }
}

function checkValue(value: string): void {
  if (Buffer.byteLength(value) > STORE_LIMITS.valueBytes) throw new HostError('ENOSPC', `a store value may hold at most ${STORE_LIMITS.valueBytes} bytes`);
}

/** Where a plugin's store lives when it names no dataDir. */
export function defaultStoreRoot(policy: Policy, plugin: string): string {
  return plugin === 'host-local' ? policy.storeDir : join(dirname(policy.storeDir), 'cni-wasm', plugin);
}

/** The path with its existing part resolved (symlinks followed), so no link leads around the checks. */
export function resolved(path: string): string {
  let head = path;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail.reverse());
    } catch {
      const up = dirname(head);
      if (up === head) return path;
      tail.push(head.slice(up.length + (up === '/' ? 0 : 1)));
      head = up;
    }
  }
}

function dirCheck(ctx: CallContext, network: string, dataDir: string): string | null {
  if (network !== ctx.network) return `the store of network '${network}' is not this invocation's (network '${ctx.network}')`;
  const g = ctx.plugin.grants.store;
  if (!dataDir) return null;
  if (!isAbsolute(dataDir) || normalize(dataDir) !== dataDir.replace(/\/+$/, '')) return `data dir '${dataDir}' must be an absolute, normalized path`;
  const dirs = g === true ? [] : g ? g.dirs ?? [] : [];
  if (!dirs.some((d) => d === '*' || dataDir === d || dataDir.startsWith(d.replace(/\/*$/, '/')))) {
    return `data dir '${dataDir}' is outside the plugin's granted "store": {"dirs"}`;
  }
  const real = resolved(join(dataDir, network));
  const own = overlaps(real, protectedDirs(ctx.policy));
  if (own) return `data dir '${dataDir}' reaches cni-wasm's own directory ${own}`;
  if (ctx.plugin.type !== 'host-local' && overlaps(real, [resolved(ctx.policy.storeDir)])) return `data dir '${dataDir}' is host-local's store`;
  return null;
}

/** flock, but give up (ETIMEDOUT) rather than hang behind a stuck holder:
 *  a blocked flock is native code the plugin's time limit cannot interrupt. */
function lockWithin(fd: number, deadline: number, dir: string): void {
  let held: boolean;
  try {
    held = flockWithin(fd, deadline - Date.now());
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (!held) {
    closeSync(fd);
    throw new HostError('ETIMEDOUT', `${dir} is locked by another CNI call and stayed locked past this call's time limit`);
  }
}

const isKey = (n: string): boolean => n !== 'lock' && !n.startsWith('.');

/** Why a value cannot be read, in the words of an fs read (the rare path, for the message). */
function readValue(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HostError('ESTORE', (e as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new HostError('ESTORE', `${file} is not a regular file`);
    if (st.size > STORE_LIMITS.valueBytes) throw new HostError('ESTORE', `${file} is ${st.size} bytes, above the ${STORE_LIMITS.valueBytes}-byte value limit`);
    const buf = Buffer.alloc(st.size);
    const n = st.size ? readSync(fd, buf, 0, st.size, 0) : 0;
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The value of each key (undefined: absent), as the session's listing and the files say. */
function values(s: StoreSession, keys: string[]): (string | undefined)[] {
  const present = keys.filter((k) => s.keys.has(k));
  const read = present.length ? storeRead(s.dirFd, present, STORE_LIMITS.valueBytes, null) : [];
  let i = 0;
  return keys.map((k) => {
    if (!s.keys.has(k)) return undefined;
    const v = read[i++];
    if (typeof v === 'string') return v;
    return v === 0 ? undefined : readValue(join(s.dir, k)); // readValue throws the reason
  });
}

/** Keys whose value, trimmed, is one of `wanted` (files that are not values are skipped). */
function matching(s: StoreSession, wanted: string[]): string[] {
  const keys = s.sorted();
  if (!keys.length || !wanted.length) return [];
  const set = new Set(wanted);
  // The native read drops files holding none of the wanted values (as bytes);
  // a value with U+FFFD could match undecodable bytes, so then nothing is dropped.
  const needles = wanted.length <= 16 && !wanted.some((w) => w.includes('\uFFFD')) ? wanted.map((w) => Buffer.from(w.trim())) : null;
  const read = storeRead(s.dirFd, keys, STORE_LIMITS.valueBytes, needles);
  return keys.filter((_, i) => { const v = read[i]; return typeof v === 'string' && set.has(v.trim()); });
}

/** Write-then-rename of one value; with onlyNew, nothing (false) if the key exists. */
function writeValue(s: StoreSession, key: string, value: string, onlyNew: boolean): boolean {
  checkValue(value);
  if (++s.puts > STORE_LIMITS.putsPerCall) throw new HostError('ENOSPC', `at most ${STORE_LIMITS.putsPerCall} store writes per call`);
  const fresh = !s.keys.has(key);
  if (onlyNew && !fresh) return false;
  if (fresh && s.names > STORE_LIMITS.keys) throw new HostError('ENOSPC', `the store ${s.dir} already holds ${STORE_LIMITS.keys} keys`);
  const done = storeWrite(s.dirFd, `.${key}.${tmpSuffix()}.tmp`, key, value, onlyNew ? 1 : 0);
  if (fresh) { s.keys.add(key); s.names++; } // written, or there already (made by a writer that ignores the lock)
  return done;
}

function remove(s: StoreSession, key: string): void {
  try {
    unlinkSync(join(s.dir, key));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new HostError('ESTORE', (e as Error).message);
  }
  if (s.keys.delete(key)) s.names--;
}

const grant = always('store');

export const store: HostInterface = {
  open: {
    grant,
    check: (ctx, network: string, dataDir: string) => dirCheck(ctx, network, dataDir),
    run: (ctx, network: string, dataDir: string) => {
      if (!NETWORK_NAME.test(network)) throw new HostError('EINVAL', `'${network}' is not a valid network name`);
      if (ctx.session.has(SESSION)) throw new HostError('EBUSY', 'the store is already open in this call');
      const dir = join(dataDir || defaultStoreRoot(ctx.policy, ctx.plugin.type), network);
      const lockFlags = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;
      let fd: number;
      try {
        fd = openSync(join(dir, 'lock'), lockFlags); // an existing store: the usual case
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
        // A store lives in its own directory, marked by its `lock` file (the
        // reference host-local makes it too). Refusing an existing directory
        // without one keeps a store grant from writing into, say, /etc.
        // The lock is looked for after the listing: it is made before any
        // other file of a store and never removed, so a concurrent first call
        // that made the directory and its lock meanwhile is not mistaken for
        // a directory without one.
        if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, 'lock'))) {
          throw new HostError('EDENIED', `${dir} exists and is not a store directory (it has no lock file); refusing to write there`);
        }
        try {
          mkdirSync(dir, { recursive: true, mode: 0o755 });
        } catch (e2) {
          throw new HostError('ESTORE', `cannot create ${dir}: ${(e2 as Error).message}`);
        }
        fd = openSync(join(dir, 'lock'), lockFlags | constants.O_CREAT, 0o644);
      }
      // most of the call's time budget, so this specific error wins over the generic time-out
      lockWithin(fd, ctx.deadline - 100, dir);
      let dirFd: number;
      try {
        dirFd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
      } catch (e) {
        closeSync(fd);
        throw new HostError('ESTORE', `cannot open ${dir}: ${(e as Error).message}`);
      }
      // With the lock held no writer is in progress: a temp file is a crash's orphan.
      const keys = new Set<string>();
      let names = 0;
      for (const n of readdirSync(dir)) {
        if (n.startsWith('.') && n.endsWith('.tmp')) { try { unlinkSync(join(dir, n)); continue; } catch { /* counted */ } }
        names++;
        if (isKey(n)) keys.add(n);
      }
      ctx.session.set(SESSION, new StoreSession(dir, fd, dirFd, keys, names));
    },
  },
  get: {
    grant, reads: true,
    run: (ctx, key: string) => { checkKey(key); return values(session(ctx), [key])[0]; },
  },
  put: {
    grant,
    run: (ctx, key: string, value: string) => { checkKey(key); writeValue(session(ctx), key, value, false); },
  },
  remove: {
    grant,
    run: (ctx, key: string) => { checkKey(key); remove(session(ctx), key); },
  },
  keys: {
    grant, reads: true,
    run: (ctx) => session(ctx).sorted(),
  },
  find: {
    grant, reads: true,
    run: (ctx, values: string[]) => matching(session(ctx), values),
  },
  findGet: {
    grant, reads: true,
    run: (ctx, wanted: string[], keys: string[]) => {
      keys.forEach(checkKey);
      const s = session(ctx);
      return { found: matching(s, wanted), values: values(s, keys) };
    },
  },
  create: {
    grant,
    run: (ctx, key: string, value: string, also: [string, string][]) => {
      // everything that could refuse a write of `also` is checked before `key` is written
      for (const [k, v] of [[key, value], ...also]) {
        checkKey(k);
        checkValue(v);
      }
      const s = session(ctx);
      if (s.puts + 1 + also.length > STORE_LIMITS.putsPerCall) throw new HostError('ENOSPC', `at most ${STORE_LIMITS.putsPerCall} store writes per call`);
      if (!writeValue(s, key, value, true)) return false;
      for (const [k, v] of also) writeValue(s, k, v, false);
      return true;
    },
  },
  removeFound: {
    grant,
    run: (ctx, wanted: string[]) => {
      const s = session(ctx);
      const found = matching(s, wanted);
      for (const k of found) remove(s, k);
      return found;
    },
  },
  entries: {
    grant, reads: true,
    run: (ctx) => {
      const s = session(ctx);
      const keys = s.sorted();
      const read = keys.length ? storeRead(s.dirFd, keys, STORE_LIMITS.valueBytes, null) : [];
      // unreadable entries (a directory, a vanished file, an oversized one) are skipped
      const out: [string, string][] = [];
      keys.forEach((k, i) => { const v = read[i]; if (typeof v === 'string') out.push([k, v]); });
      return out;
    },
  },
};
