// One daemon worker thread. It serves the daemon's socket itself: while idle
// it waits in accept on the listening socket it shares with the other
// workers, takes one connection, checks who is calling, runs the call with
// invoke() exactly as exec mode does (a fresh component instance, the same
// gate, ledger, audit and limits per call), answers, and only then accepts
// again. A busy worker takes no second call, so the kernel's backlog is the
// queue and a call never waits behind another's blocking wait while a worker
// is free; no call passes through the main thread.
//
// invoke() is synchronous and switches network namespaces with setns(2),
// which acts on the calling thread only: each worker has its own thread, so
// its switches never reach the daemon's main thread or another worker
// (test/netns/daemon.test.ts checks that).
import { statSync, writeSync } from 'node:fs';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { invoke } from '../invoke.js';
import { acceptWait, acceptWatch, closeFd, peerCred, readFrame } from '../kernel/native.js';
import { reapBackground } from '../kernel/rtnl.js';
import { setTmpTag } from '../lazy.js';
import { keepWarm } from '../sandbox/loader.js';
import { aheadStats, makeInstancesAhead, makeSpare } from '../sandbox/sandbox.js';
import { Board, Slot, State, Total } from './board.js';
import { MAX_FRAME, encode, failedCall, parseRequest, type CallRequest } from './protocol.js';
import { daemonLog as log } from './log.js';

export interface WorkerSetup {
  listenFd: number;
  board: SharedArrayBuffer;
  startedMs: number;
  slot: number;
  socketPath: string;
  /** the daemon's --policy */
  policyFile: string | undefined;
  /** the daemon's network namespace */
  home: { dev: number; ino: number };
  workers: number;
}

/** Messages from the main thread: finish the call in hand and exit ('retire'), or first serve what is queued ('drain'). */
export type WorkerOrder = 'retire' | 'drain';

/** Time to receive a whole request once connected. */
const READ_TIMEOUT_MS = 10_000;
/** What a caller that is not served may send before its connection is closed. */
const REFUSED_READ_BYTES = 64 << 10;
/** A reply that cannot be written within this is dropped. */
const WRITE_TIMEOUT_MS = 30_000;
/** How long one wait in accept lasts before the worker looks at its messages. */
const IDLE_WAIT_MS = 200;

if (!parentPort) throw new Error('host/daemon/worker.js runs as a worker thread of cni-wasm daemon');
const port = parentPort;
const setup = workerData as WorkerSetup;
const board = new Board(setup.board, setup.startedMs);
const me = setup.slot;

// temp files (write-then-rename) are named per thread, not only per process
setTmpTag(`${process.pid}.t${threadId}`);
keepWarm();
makeInstancesAhead();

function answer(fd: number, msg: unknown): void {
  try {
    const b = encode(msg);
    for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
  } catch {
    // the caller went away (or stopped reading): nothing to tell it
  }
}

function nsId(path: string): { dev: number; ino: number } {
  const st = statSync(path);
  return { dev: st.dev, ino: st.ino };
}

function status(): Record<string, unknown> {
  const m = process.memoryUsage();
  return {
    pid: process.pid, socket: setup.socketPath, workers: setup.workers, busy: board.busy(),
    instancesAhead: { made: board.total(Total.AheadMade), used: board.total(Total.AheadUsed) },
    started: board.startedMs, served: board.total(Total.Served), refused: board.total(Total.Refused),
    fallback: board.total(Total.Fallback), errors: board.total(Total.Errors), reloads: board.total(Total.Reloads),
    uptimeMs: Date.now() - board.startedMs, rss: m.rss, heapUsed: m.heapUsed, netns: setup.home,
  };
}

// What process.env holds (null until the first call replaced the daemon's):
// each call changes only what differs (process.env is slow to write).
let applied: Record<string, string> | null = null;

/** The caller's environment, as an exec'd plugin would have it (PATH for
 *  external plugins, CNI_WASM_DEBUG, ...). A worker's process.env is its own
 *  copy: this reaches neither the daemon nor the other workers. */
function useEnv(env: Record<string, string>): void {
  const old = applied ?? Object.fromEntries(Object.keys(process.env).map((k) => [k, '\u0000']));
  for (const k of Object.keys(old)) if (!Object.hasOwn(env, k)) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (old[k] !== v) process.env[k] = v;
  applied = { ...env };
}

function run(req: CallRequest): { exitCode: number; stdout: string } {
  useEnv(req.env);
  // The policy as exec mode picks it: the shim's --policy, else the caller's CNI_WASM_POLICY, else the daemon's.
  const policy = req.policy ?? (req.env.CNI_WASM_POLICY || undefined) ?? setup.policyFile;
  const used = aheadStats.used;
  try {
    return invoke(req.type, req.env, () => req.stdin, policy);
  } catch (e) {
    // invoke() turns every failure into a CNI error; this is a bug, still not a crash
    board.add(Total.Errors);
    return failedCall(`cni-wasm daemon worker: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    board.add(Total.AheadUsed, aheadStats.used - used);
  }
}

/** One connection, from accept to close. */
function serve(fd: number): void {
  let peer: { pid: number; uid: number; gid: number };
  try {
    peer = peerCred(fd);
  } catch (e) {
    board.add(Total.Refused);
    log(`refused a connection: ${(e as Error).message}`);
    return answer(fd, { fallback: 'the daemon cannot tell who is calling' });
  }
  if (peer.uid !== 0) {
    board.add(Total.Refused);
    log(`refused pid ${peer.pid}: uid ${peer.uid} is not root`);
    // what it sends is read (a little, briefly) so its write never fails first
    try { readFrame(fd, REFUSED_READ_BYTES, 1000); } catch { /* whatever it was */ }
    return answer(fd, { fallback: `the daemon serves root only (this caller is uid ${peer.uid})` });
  }
  let body: Buffer;
  try {
    body = readFrame(fd, MAX_FRAME, READ_TIMEOUT_MS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNRESET') return;
    board.add(Total.Errors);
    return answer(fd, { error: code === 'E2BIG' ? `a request frame exceeds ${MAX_FRAME} bytes` : code === 'ETIMEDOUT' ? `no complete request within ${READ_TIMEOUT_MS} ms` : (e as Error).message });
  }
  let req;
  try {
    req = parseRequest(body);
  } catch (e) {
    board.add(Total.Errors);
    return answer(fd, { error: `bad request: ${(e as Error).message}` });
  }
  if (req.op === 'status') return answer(fd, { status: status() });
  let peerNs: { dev: number; ino: number } | null = null;
  try { peerNs = nsId(`/proc/${peer.pid}/ns/net`); } catch { peerNs = null; }
  const home = setup.home;
  if (req.netns.dev !== home.dev || req.netns.ino !== home.ino || (peerNs && (peerNs.dev !== home.dev || peerNs.ino !== home.ino))) {
    board.add(Total.Fallback);
    return answer(fd, { fallback: 'not here: the caller is in another network namespace than the daemon' });
  }
  const r = run(req);
  board.add(Total.Served);
  answer(fd, { exitCode: r.exitCode, stdout: r.stdout });
}

let order: WorkerOrder | null = null;
port.on('message', (m: WorkerOrder) => { order = m; });

const watch = acceptWatch(setup.listenFd);
const leave = (): void => { closeFd(watch); port.close(); };

function loop(): void {
  if (order === 'retire') return leave();
  const fd = acceptWait(watch, setup.listenFd, order === 'drain' ? 0 : IDLE_WAIT_MS, WRITE_TIMEOUT_MS);
  if (fd < 0) {
    // drained: nothing more is waiting
    if (order === 'drain') return leave();
  } else {
    board.set(me, Slot.SinceSec, board.nowSec());
    board.set(me, Slot.Conn, fd);
    board.set(me, Slot.State, State.Busy);
    try {
      serve(fd);
    } finally {
      board.set(me, Slot.State, State.Idle);
      board.set(me, Slot.Conn, -1);
      closeFd(fd);
    }
    reapBackground();
    // the next call's instances, made before accepting it (another idle worker takes a call meanwhile)
    const made = aheadStats.made;
    makeSpare();
    board.add(Total.AheadMade, aheadStats.made - made);
  }
  setImmediate(loop);
}

board.set(me, Slot.State, State.Idle);
port.postMessage('ready');
loop();
