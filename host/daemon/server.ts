// `cni-wasm daemon`: the resident host. It keeps the host code and the
// compiled components warm in a pool of worker threads, which serve CNI calls
// from the native shims (host/shim/shim.c) over a root-only unix socket:
// every idle worker waits in accept on the one listening socket and takes one
// connection at a time (worker.ts), so a call goes from the shim to a worker
// and back with no stop in the main thread, and the kernel's backlog is the
// queue. Every call still runs invoke() as exec mode does: a fresh component
// instance with grants bound to that call, the same gate, ledger, audit and
// time limits. Per-network locking stays the on-disk flock, so the reference
// plugins, exec mode and the daemon interoperate.
//
// Who is served: a peer whose SO_PEERCRED uid is 0, in this daemon's own
// network namespace (the shim says which it is in; the worker checks the
// peer's /proc/<pid>/ns/net too). Anyone else is told to fall back: the shim
// then runs the call itself, as it would without a daemon.
//
// Signals: SIGHUP starts fresh workers (policy, plugins and host code read
// anew) and lets the old ones finish their calls; SIGTERM/SIGINT remove the
// socket (new callers run exec mode), serve what is already queued, finish
// the calls in flight and exit.
import net from 'node:net';
import { availableParallelism } from 'node:os';
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { FrameReader, MAX_FRAME, encode } from './protocol.js';
import { Pool, type Shared } from './pool.js';
import { Board, Total } from './board.js';
import { closeFd, unixListen } from '../kernel/native.js';
import { loadPolicy } from '../gate/policy.js';

import { DEFAULT_SOCKET } from './client.js';
import { daemonLog as log } from './log.js';

export { DEFAULT_SOCKET };
/** Connections waiting for a free worker (beyond it a caller's connect fails and it runs exec mode). */
const BACKLOG = 1024;
/** A call that runs this long has its worker stopped (its own limits come first). */
const HARD_LIMIT_MS = 300_000;

export interface DaemonOptions { socket?: string; policy?: string; workers?: number }


function nsId(path: string): { dev: number; ino: number } {
  const st = statSync(path);
  return { dev: st.dev, ino: st.ino };
}

export async function runDaemon(o: DaemonOptions): Promise<void> {
  const socketPath = resolve(o.socket ?? DEFAULT_SOCKET);
  const policyFile = o.policy ? resolve(o.policy) : undefined;
  // Twice the CPUs: a call spends part of its time blocked in the kernel (veth
  // creation and deletion wait for RCU grace periods), when another can run.
  // 50 concurrent ADDs on 2 CPUs: 2.3x the reference's wall time with 2
  // workers, 1.8x with 4 or 8 (bench/resident.ts, same minute, loaded machine).
  const size = o.workers ?? Math.max(4, 2 * availableParallelism());
  // A broken policy is refused at start (calls would all fail).
  loadPolicy(policyFile);
  // V8's own tiers (Sparkplug, then TurboFan). A cap at --max-opt=2 meant
  // Sparkplug only (Node 20's V8 has Maglev off): on this build TurboFan's
  // ADD is 8% faster at the same CPU per pair (DESIGN.md, resident mode).
  const home = nsId('/proc/self/ns/net');

  // The socket: directory 0700 (made if missing), socket 0600 from the start.
  const listenFd = systemdSocket() ?? await listenAt(socketPath);
  // room for a reload's workers while the old ones finish their calls
  const board = Board.create(4 * size);
  const shared: Shared = { listenFd, board: board.buffer, startedMs: board.startedMs, socketPath, policyFile, home, workers: size };
  let pool = new Pool(size, shared, board, HARD_LIMIT_MS, log);
  await pool.ready();
  log(`serving ${systemdFd !== null ? `systemd socket fd ${listenFd}` : socketPath} with ${size} workers (max frame ${MAX_FRAME} bytes)`);

  let stopping = false;
  process.on('SIGHUP', () => {
    if (stopping) return;
    try {
      loadPolicy(policyFile);
    } catch (e) {
      log(`reload: the policy does not load (${(e as Error).message}); keeping the running workers`);
      return;
    }
    board.add(Total.Reloads);
    const old = pool;
    pool = new Pool(size, shared, board, HARD_LIMIT_MS, log);
    void pool.ready().then(async () => {
      await old.leave('retire');
      log('reloaded: new workers serve; the old ones finished their calls');
    }, (e) => log(`reload failed: ${(e as Error).message}`));
  });
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: serving the calls already made, then stopping`);
    // no new callers (they run exec mode); what is queued is still served
    if (systemdFd === null) { try { unlinkSync(socketPath); } catch { /* gone already */ } }
    void pool.leave('drain').then(() => {
      if (systemdFd === null) { try { closeFd(listenFd); } catch { /* closed */ } }
      log('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('uncaughtException', (e) => { board.add(Total.Errors); log(`internal error (kept serving): ${e.stack ?? e.message}`); });
}

let systemdFd: number | null = null;

/** A fresh listening socket at path (a stale one is replaced; a live one is an error). */
async function listenAt(socketPath: string): Promise<number> {
  const dir = dirname(socketPath);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  else if ((statSync(dir).mode & 0o077) !== 0) log(`warning: ${dir} is accessible to others than its owner (the socket itself is 0600)`);
  if (existsSync(socketPath)) {
    const live = await new Promise<boolean>((res) => {
      const c = net.connect(socketPath, () => { c.destroy(); res(true); });
      c.on('error', () => res(false));
    });
    if (live) throw new Error(`another daemon is serving ${socketPath}`);
    unlinkSync(socketPath);
  }
  const fd = unixListen(socketPath, BACKLOG);
  chmodSync(socketPath, 0o600);
  return fd;
}

/** The listening socket systemd passed (socket activation), if any. */
function systemdSocket(): number | null {
  if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== '1') return null;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  systemdFd = 3;
  return 3;
}

/** `cni-wasm daemon --check`: is one running and serving? Prints its status. */
export function checkDaemon(socket?: string, timeoutMs = 5000): Promise<{ ok: boolean; status?: Record<string, unknown>; why?: string }> {
  const path = resolve(socket ?? DEFAULT_SOCKET);
  return new Promise((res) => {
    const c = net.connect(path);
    const reader = new FrameReader();
    const t = setTimeout(() => { c.destroy(); res({ ok: false, why: `no answer from ${path} within ${timeoutMs} ms` }); }, timeoutMs);
    c.on('connect', () => c.write(encode({ v: 1, op: 'status' })));
    c.on('data', (d: Buffer) => {
      try {
        const body = reader.push(d);
        if (!body) return;
        clearTimeout(t);
        c.destroy();
        const m = JSON.parse(body.toString('utf8')) as { status?: Record<string, unknown>; fallback?: string; error?: string };
        res(m.status ? { ok: true, status: m.status } : { ok: false, why: m.fallback ?? m.error ?? 'unexpected answer' });
      } catch (e) {
        clearTimeout(t);
        c.destroy();
        res({ ok: false, why: (e as Error).message });
      }
    });
    c.on('error', (e) => { clearTimeout(t); res({ ok: false, why: `no daemon at ${path}: ${e.message}` }); });
  });
}
