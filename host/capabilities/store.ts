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
import {
  closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, realpathSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { overlaps, protectedDirs, type Policy } from '../gate/policy.js';
import { flock } from '../kernel/native.js';
import { tmpSuffix } from '../lazy.js';

const SESSION = 'store';
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** Per value, and per call: enough for leases and saved state, not for filling a disk. */
export const STORE_LIMITS = { valueBytes: 64 << 10, putsPerCall: 10_000, keys: 100_000 };

class StoreSession {
  puts = 0;
  constructor(public readonly dir: string, private readonly lockFd: number) {}
  close(): void { closeSync(this.lockFd); } // closing drops the flock
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

const pause = new Int32Array(new SharedArrayBuffer(4));

/** flock, but give up (ETIMEDOUT) rather than hang behind a stuck holder:
 *  a blocked flock is native code the plugin's time limit cannot interrupt. */
function lockWithin(fd: number, deadline: number, dir: string): void {
  for (;;) {
    try {
      flock(fd, true, false);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EWOULDBLOCK' && (e as { code?: string }).code !== 'EAGAIN') throw e;
    }
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new HostError('ETIMEDOUT', `${dir} is locked by another CNI call and stayed locked past this call's time limit`);
    }
    Atomics.wait(pause, 0, 0, 5);
  }
}

const storeKeys = (dir: string): string[] => readdirSync(dir).filter((n) => n !== 'lock' && !n.startsWith('.')).sort();

/** A value: a regular file, read without following links or blocking, at most the value limit. */
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

const grant = always('store');

export const store: HostInterface = {
  open: {
    grant,
    check: (ctx, network: string, dataDir: string) => dirCheck(ctx, network, dataDir),
    run: (ctx, network: string, dataDir: string) => {
      if (!NETWORK_NAME.test(network)) throw new HostError('EINVAL', `'${network}' is not a valid network name`);
      if (ctx.session.has(SESSION)) throw new HostError('EBUSY', 'the store is already open in this call');
      const dir = join(dataDir || defaultStoreRoot(ctx.policy, ctx.plugin.type), network);
      // A store lives in its own directory, marked by its `lock` file (the
      // reference host-local makes it too). Refusing an existing directory
      // without one keeps a store grant from writing into, say, /etc.
      if (existsSync(dir) && !existsSync(join(dir, 'lock')) && readdirSync(dir).length > 0) {
        throw new HostError('EDENIED', `${dir} exists and is not a store directory (it has no lock file); refusing to write there`);
      }
      try {
        mkdirSync(dir, { recursive: true, mode: 0o755 });
      } catch (e) {
        throw new HostError('ESTORE', `cannot create ${dir}: ${(e as Error).message}`);
      }
      const fd = openSync(join(dir, 'lock'), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o644);
      // most of the call's time budget, so this specific error wins over the generic time-out
      lockWithin(fd, ctx.deadline - 100, dir);
      // With the lock held no writer is in progress: a temp file is a crash's orphan.
      for (const n of readdirSync(dir)) if (n.startsWith('.') && n.endsWith('.tmp')) rmSync(join(dir, n), { force: true });
      ctx.session.set(SESSION, new StoreSession(dir, fd));
    },
  },
  get: {
    grant, reads: true,
    run: (ctx, key: string) => { checkKey(key); return readValue(join(session(ctx).dir, key)); },
  },
  put: {
    grant,
    run: (ctx, key: string, value: string) => {
      checkKey(key);
      const s = session(ctx);
      if (Buffer.byteLength(value) > STORE_LIMITS.valueBytes) throw new HostError('ENOSPC', `a store value may hold at most ${STORE_LIMITS.valueBytes} bytes`);
      if (++s.puts > STORE_LIMITS.putsPerCall) throw new HostError('ENOSPC', `at most ${STORE_LIMITS.putsPerCall} store writes per call`);
      const file = join(s.dir, key);
      if (s.puts === 1 && !existsSync(file) && readdirSync(s.dir).length > STORE_LIMITS.keys) {
        throw new HostError('ENOSPC', `the store ${s.dir} already holds ${STORE_LIMITS.keys} keys`);
      }
      // write-then-rename: a crash leaves the old value or the new, never half
      const tmp = join(s.dir, `.${key}.${tmpSuffix()}.tmp`);
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
      try { writeSync(fd, value); } finally { closeSync(fd); }
      renameSync(tmp, file);
    },
  },
  remove: {
    grant,
    run: (ctx, key: string) => { checkKey(key); rmSync(join(session(ctx).dir, key), { force: true }); },
  },
  keys: {
    grant, reads: true,
    run: (ctx) => storeKeys(session(ctx).dir),
  },
  find: {
    grant, reads: true,
    run: (ctx, values: string[]) => {
      const dir = session(ctx).dir;
      const wanted = new Set(values);
      return storeKeys(dir).filter((k) => {
        try { return wanted.has((readValue(join(dir, k)) ?? '').trim()); } catch { return false; }
      });
    },
  },
  entries: {
    grant, reads: true,
    run: (ctx) => {
      const dir = session(ctx).dir;
      const out: [string, string][] = [];
      for (const k of storeKeys(dir)) {
        // unreadable entries (a directory, a vanished file, an oversized one) are skipped
        try { const v = readValue(join(dir, k)); if (v !== undefined) out.push([k, v]); } catch { /* skip */ }
      }
      return out;
    },
  },
};
