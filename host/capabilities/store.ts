// store: a small key/value store per plugin and network, laid out exactly as
// the reference host-local keeps its leases (<dataDir>/<network>/<key>, a
// `lock` file taken with flock), so both implementations can share a node's
// state. The lock is taken at open and held until the invocation ends, so a
// plugin's read-modify-write is atomic against every concurrent CNI call.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { type CallContext, type HostInterface, HostError } from '../gate/gate.js';
import { flock } from '../kernel/native.js';

const SESSION = 'store';
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

class StoreSession {
  constructor(public readonly dir: string, private readonly lockFd: number) {}
  close(): void { closeSync(this.lockFd); } // closing drops the flock
}

function session(ctx: CallContext): StoreSession {
  const s = ctx.session.get(SESSION) as StoreSession | undefined;
  if (!s) throw new HostError('ESTORE', 'store.open must be called first');
  return s;
}

function checkKey(key: string): void {
  if (!key || key.includes('/') || key.startsWith('.') || key === 'lock' || key.length > 255) {
    throw new HostError('EINVAL', `'${key}' is not a valid store key`);
  }
}

function dirGrant(ctx: CallContext, dataDir: string): string | null {
  const g = ctx.plugin.grants.store;
  if (!g) return 'no store grant';
  if (!dataDir) return null;
  if (!isAbsolute(dataDir) || normalize(dataDir) !== dataDir.replace(/\/+$/, '')) return `data dir '${dataDir}' must be an absolute, normalized path`;
  const dirs = g === true ? [] : g.dirs ?? [];
  return dirs.some((d) => d === '*' || dataDir === d || dataDir.startsWith(d.replace(/\/*$/, '/'))) ? null : `data dir '${dataDir}' is outside the plugin's granted store dirs`;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** flock, but give up (ETIMEDOUT) rather than hang behind a stuck holder:
 *  a blocked flock is native code the plugin's time limit cannot interrupt. */
function lockWithin(fd: number, timeoutMs: number, dir: string): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      flock(fd, true, false);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EWOULDBLOCK' && (e as { code?: string }).code !== 'EAGAIN') throw e;
    }
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new HostError('ETIMEDOUT', `${dir} is locked by another CNI call and stayed locked for ${timeoutMs} ms`);
    }
    Atomics.wait(pause, 0, 0, 5);
  }
}

const storeKeys = (dir: string): string[] => readdirSync(dir).filter((n) => n !== 'lock' && !n.startsWith('.')).sort();

const needOpen = (ctx: CallContext) => (ctx.plugin.grants.store ? null : 'no store grant');

export const store: HostInterface = {
  open: {
    authorize: (ctx, network: string, dataDir: string) => dirGrant(ctx, dataDir),
    run: (ctx, network: string, dataDir: string) => {
      if (!NETWORK_NAME.test(network)) throw new HostError('EINVAL', `'${network}' is not a valid network name`);
      if (ctx.session.has(SESSION)) throw new HostError('EBUSY', 'the store is already open in this call');
      const dir = join(dataDir || ctx.policy.storeDir, network);
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
      const fd = openSync(join(dir, 'lock'), 'a', 0o644);
      // most of the call's time budget, so this specific error wins over the generic time-out
      lockWithin(fd, Math.floor(ctx.policy.timeoutMs * 0.8), dir);
      ctx.session.set(SESSION, new StoreSession(dir, fd));
    },
  },
  get: {
    authorize: needOpen,
    run: (ctx, key: string) => {
      checkKey(key);
      try {
        return readFileSync(join(session(ctx).dir, key), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new HostError('ESTORE', (e as Error).message);
      }
    },
  },
  put: {
    authorize: needOpen,
    run: (ctx, key: string, value: string) => {
      checkKey(key);
      const file = join(session(ctx).dir, key);
      // write-then-rename: a crash leaves the old value or the new, never half
      const tmp = join(session(ctx).dir, `.${key}.${process.pid}.tmp`);
      writeFileSync(tmp, value, { mode: 0o644 });
      renameSync(tmp, file);
    },
  },
  remove: {
    authorize: needOpen,
    run: (ctx, key: string) => {
      checkKey(key);
      rmSync(join(session(ctx).dir, key), { force: true });
    },
  },
  keys: {
    authorize: needOpen,
    run: (ctx) => storeKeys(session(ctx).dir),
  },
  find: {
    authorize: needOpen,
    run: (ctx, values: string[]) => {
      const dir = session(ctx).dir;
      const wanted = new Set(values);
      return storeKeys(dir).filter((k) => {
        try { return wanted.has(readFileSync(join(dir, k), 'utf8').trim()); } catch { return false; }
      });
    },
  },
  entries: {
    authorize: needOpen,
    run: (ctx) => {
      const dir = session(ctx).dir;
      const out: [string, string][] = [];
      for (const k of storeKeys(dir)) {
        // unreadable entries (a directory, a vanished file) are skipped
        try { out.push([k, readFileSync(join(dir, k), 'utf8')]); } catch { /* skip */ }
      }
      return out;
    },
  },
};
