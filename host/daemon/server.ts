// `cni-wasm daemon`: the resident host. It keeps the host code and the
// compiled components warm in a pool of worker threads and serves CNI calls
// from the native shims (host/shim/shim.c) over a root-only unix socket.
// Every call still runs invoke() as exec mode does: a fresh component
// instance with grants bound to that call, the same gate, ledger, audit and
// time limits. Per-network locking stays the on-disk flock, so the reference
// plugins, exec mode and the daemon interoperate.
//
// Who is served: a peer whose SO_PEERCRED uid is 0, in this daemon's own
// network namespace (the shim says which it is in; the daemon checks the
// peer's /proc/<pid>/ns/net too). Anyone else is told to fall back: the shim
// then runs the call itself, as it would without a daemon.
//
// Signals: SIGHUP starts a fresh pool (policy, plugins and host code read
// anew) and lets the old one finish its calls; SIGTERM/SIGINT stop
// accepting, finish the calls in flight, remove the socket and exit.
import net from 'node:net';
import { availableParallelism } from 'node:os';
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { FrameReader, MAX_FRAME, encode, parseRequest, type CallRequest } from './protocol.js';
import { Pool } from './pool.js';
import { peerCred } from '../kernel/native.js';
import { loadPolicy } from '../gate/policy.js';

import { DEFAULT_SOCKET } from './client.js';

export { DEFAULT_SOCKET };
/** Time to receive a whole request once connected. */
const READ_TIMEOUT_MS = 10_000;
/** Calls waiting for a worker beyond this are sent back to exec mode. */
const MAX_QUEUE = 1024;
/** A call that runs this long has its worker stopped (its own limits come first). */
const HARD_LIMIT_MS = 300_000;

export interface DaemonOptions { socket?: string; policy?: string; workers?: number }

const log = (s: string): void => { process.stderr.write(`cni-wasm daemon[${process.pid}]: ${s}\n`); };

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
  const home = nsId('/proc/self/ns/net');
  const stats = { started: Date.now(), served: 0, refused: 0, fallback: 0, errors: 0, reloads: 0 };

  let pool = new Pool(size, HARD_LIMIT_MS, log);
  await pool.ready();

  const server = net.createServer({ allowHalfOpen: false }, (sock) => serve(sock));
  const inflight = new Set<Promise<unknown>>();

  function answer(sock: net.Socket, msg: unknown): void {
    try {
      sock.end(encode(msg));
    } catch (e) {
      sock.destroy();
      log(`cannot answer: ${(e as Error).message}`);
    }
  }

  const conns = new Set<net.Socket>();
  function serve(sock: net.Socket): void {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => { /* the peer went away: nothing to tell it */ });
    let peer: { pid: number; uid: number; gid: number };
    try {
      peer = peerCred((sock as unknown as { _handle: { fd: number } })._handle.fd);
    } catch (e) {
      stats.refused++;
      log(`refused a connection: ${(e as Error).message}`);
      answer(sock, { fallback: 'the daemon cannot tell who is calling' });
      return;
    }
    if (peer.uid !== 0) {
      stats.refused++;
      log(`refused pid ${peer.pid}: uid ${peer.uid} is not root`);
      answer(sock, { fallback: `the daemon serves root only (this caller is uid ${peer.uid})` });
      // read and drop what it sends, so its write never blocks; then close
      sock.resume();
      setTimeout(() => sock.destroy(), READ_TIMEOUT_MS).unref();
      return;
    }
    const reader = new FrameReader();
    const timer = setTimeout(() => { answer(sock, { error: `no complete request within ${READ_TIMEOUT_MS} ms` }); }, READ_TIMEOUT_MS);
    let got = false;
    sock.on('data', (chunk: Buffer) => {
      if (got) return;
      let body: Buffer | null;
      try {
        body = reader.push(chunk);
      } catch (e) {
        got = true;
        clearTimeout(timer);
        stats.errors++;
        answer(sock, { error: (e as Error).message });
        return;
      }
      if (!body) return;
      got = true;
      clearTimeout(timer);
      let req;
      try {
        req = parseRequest(body);
      } catch (e) {
        stats.errors++;
        answer(sock, { error: `bad request: ${(e as Error).message}` });
        return;
      }
      if (req.op === 'status') {
        const m = process.memoryUsage();
        answer(sock, { status: {
          pid: process.pid, socket: socketPath, workers: pool.size, busy: pool.busy, queued: pool.queued, instancesAhead: pool.ahead,
          ...stats, uptimeMs: Date.now() - stats.started, rss: m.rss, heapUsed: m.heapUsed, netns: home,
        } });
        return;
      }
      call(sock, req, peer.pid);
    });
    sock.on('end', () => { if (!got) { clearTimeout(timer); } });
    sock.on('close', () => clearTimeout(timer));
  }

  function call(sock: net.Socket, req: CallRequest, pid: number): void {
    const elsewhere = req.netns.dev !== home.dev || req.netns.ino !== home.ino;
    let peerNs: { dev: number; ino: number } | null = null;
    try { peerNs = nsId(`/proc/${pid}/ns/net`); } catch { peerNs = null; }
    if (elsewhere || (peerNs && (peerNs.dev !== home.dev || peerNs.ino !== home.ino))) {
      stats.fallback++;
      answer(sock, { fallback: 'not here: the caller is in another network namespace than the daemon' });
      return;
    }
    if (pool.queued >= MAX_QUEUE) {
      stats.fallback++;
      answer(sock, { fallback: `the daemon is busy (${MAX_QUEUE} calls waiting)` });
      return;
    }
    // The policy as exec mode picks it: the shim's --policy, else the caller's CNI_WASM_POLICY, else the daemon's.
    const policy = req.policy ?? (req.env.CNI_WASM_POLICY || undefined) ?? policyFile;
    const p = pool.run({ type: req.type, env: req.env, stdin: req.stdin, policy }).then((r) => {
      stats.served++;
      answer(sock, { exitCode: r.exitCode, stdout: r.stdout });
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }

  // The socket: directory 0700 (made if missing), socket 0600 from the start.
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
  const listenFd = systemdSocket();
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    if (listenFd !== null) {
      server.listen({ fd: listenFd }, () => res());
    } else {
      const old = process.umask(0o177);
      server.listen(socketPath, () => { process.umask(old); res(); });
    }
  });
  if (listenFd === null) chmodSync(socketPath, 0o600);
  server.on('error', (e) => log(`socket error: ${e.message}`));
  log(`serving ${listenFd !== null ? `systemd socket fd ${listenFd}` : socketPath} with ${size} workers (max frame ${MAX_FRAME} bytes)`);

  let stopping = false;
  process.on('SIGHUP', () => {
    if (stopping) return;
    try {
      loadPolicy(policyFile);
    } catch (e) {
      log(`reload: the policy does not load (${(e as Error).message}); keeping the running workers`);
      return;
    }
    stats.reloads++;
    const old = pool;
    pool = new Pool(size, HARD_LIMIT_MS, log);
    void pool.ready().then(async () => {
      const left = await old.drain();
      pool.adopt(left);
      log('reloaded: new workers serve; the old ones finished their calls');
    }, (e) => log(`reload failed: ${(e as Error).message}`));
  });
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: finishing ${inflight.size} call(s) in flight`);
    server.close();
    // every accepted connection is answered (calls still arriving on them too), then the workers stop
    const t0 = Date.now();
    const idle = () => new Promise<void>((res) => {
      const poll = () => (conns.size === 0 && pool.busy === 0 && pool.queued === 0) || Date.now() - t0 > HARD_LIMIT_MS ? res() : setTimeout(poll, 20);
      poll();
    });
    void idle().then(() => pool.drain()).then(() => {
      try { if (listenFd === null) unlinkSync(socketPath); } catch { /* gone already */ }
      log('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('uncaughtException', (e) => { stats.errors++; log(`internal error (kept serving): ${e.stack ?? e.message}`); });
}

/** The listening socket systemd passed (socket activation), if any. */
function systemdSocket(): number | null {
  if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== '1') return null;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
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
