// The daemon's worker threads, started once, each serving the listening
// socket itself (worker.ts). The main thread only watches them: a worker
// that dies or overruns the hard limit is replaced, and the call it had
// taken is answered with a CNI error (never retried: an ADD may have run in
// part, and its ledger lets the runtime's DEL sweep what it made).
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { closeFd } from '../kernel/native.js';
import { type Board, Slot, State } from './board.js';
import { encode, failedCall } from './protocol.js';
import type { WorkerOrder, WorkerSetup } from './worker.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
/**
 * A worker's young generation: 64 MiB rather than the 32 a worker gets by
 * default. Every call allocates a few MiB that die with it (the glue's
 * closures, codecs, results); half as many scavenges cost ~4% less daemon
 * CPU per ADD+DEL pair at the same latency (interleaved A/B; 128 MiB: no
 * better).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 64 };

interface Member { worker: Worker; slot: number; ready: boolean; gone: boolean }

export type Shared = Omit<WorkerSetup, 'slot'>;

export class Pool {
  private members: Member[] = [];
  private leaving = false;
  private exited: (() => void) | null = null;
  private watch: NodeJS.Timeout;
  restarts = 0;

  constructor(readonly size: number, private readonly shared: Shared, private readonly board: Board,
    private readonly hardLimitMs: number, private readonly log: (s: string) => void) {
    for (let i = 0; i < size; i++) this.spawn();
    // a call that runs this long has its worker stopped (its own limits come first)
    this.watch = setInterval(() => this.overruns(), 1000);
    this.watch.unref();
  }

  /** Resolves when every worker has loaded the host and serves. */
  ready(): Promise<void> {
    return new Promise((res, rej) => {
      const t0 = Date.now();
      const poll = () => {
        if (this.members.every((m) => m.ready)) return res();
        if (Date.now() - t0 > 60_000) return rej(new Error('workers did not start within 60 s'));
        setTimeout(poll, 10);
      };
      poll();
    });
  }

  /** Workers finish the call in hand and exit ('retire'), or first serve every call already queued ('drain'). */
  leave(order: WorkerOrder): Promise<void> {
    this.leaving = true;
    clearInterval(this.watch);
    for (const m of this.members) if (!m.gone) m.worker.postMessage(order);
    return new Promise((res) => {
      if (this.members.every((m) => m.gone)) return res();
      this.exited = res;
    });
  }

  private spawn(): void {
    const slot = this.board.claim();
    if (slot < 0) {
      this.log('no free worker slot (too many reloads still finishing calls); running with fewer workers');
      return;
    }
    const setup: WorkerSetup = { ...this.shared, slot };
    const m: Member = { worker: new Worker(WORKER, { workerData: setup, resourceLimits: WORKER_LIMITS }), slot, ready: false, gone: false };
    this.members.push(m);
    m.worker.on('message', (msg: unknown) => { if (msg === 'ready') m.ready = true; });
    m.worker.on('error', (e) => this.log(`worker error: ${e.stack ?? e.message}`));
    m.worker.on('exit', (code) => this.gone(m, code));
  }

  private gone(m: Member, code: number): void {
    if (m.gone) return;
    m.gone = true;
    // the connection it had taken (the fd is the process's: it outlives the thread)
    const fd = this.board.get(m.slot, Slot.Conn);
    if (this.board.get(m.slot, Slot.State) === State.Busy && fd >= 0) {
      try {
        writeSync(fd, encode(failedCall(`the cni-wasm daemon's worker stopped during the call (exit ${code}); the call may have run in part`)));
      } catch { /* the caller went away */ }
      try { closeFd(fd); } catch { /* closed already */ }
    }
    this.board.set(m.slot, Slot.Conn, -1);
    this.board.set(m.slot, Slot.State, State.Free);
    this.members = this.members.filter((x) => x !== m);
    if (this.leaving) {
      if (this.members.length === 0 && this.exited) { const e = this.exited; this.exited = null; e(); }
      return;
    }
    this.log(`worker exited (${code}); starting another`);
    this.restarts++;
    this.spawn();
  }

  private overruns(): void {
    const now = this.board.nowSec();
    for (const m of this.members) {
      if (m.gone || this.board.get(m.slot, Slot.State) !== State.Busy) continue;
      if ((now - this.board.get(m.slot, Slot.SinceSec)) * 1000 > this.hardLimitMs) {
        this.log(`a call overran ${this.hardLimitMs} ms; stopping its worker`);
        void m.worker.terminate();
      }
    }
  }
}
