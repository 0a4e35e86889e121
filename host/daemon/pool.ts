// A fixed pool of worker threads, started once, each serving one CNI call at
// a time (worker.ts). Calls queue only when every worker is busy; a worker
// that dies or overruns the hard limit is replaced and its call answered
// with a CNI error (never retried: an ADD may have run in part, and its
// ledger lets the runtime's DEL sweep what it made).
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { Done, Job } from './worker.js';

export interface Reply { stdout: string; exitCode: number }

interface Pending { job: Job; resolve: (r: Reply) => void; started?: number; timer?: NodeJS.Timeout }

interface Slot { worker: Worker; ready: boolean; current: Pending | null; gone: boolean; ahead: { made: number; used: number } }

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

const failure = (msg: string): Reply => ({ stdout: JSON.stringify({ cniVersion: '1.1.0', code: 999, msg }) + '\n', exitCode: 1 });

export class Pool {
  private slots: Slot[] = [];
  private queue: Pending[] = [];
  private nextId = 1;
  private turn = 0;
  private draining = false;
  private drained: (() => void) | null = null;
  served = 0;
  restarts = 0;

  constructor(readonly size: number, private readonly hardLimitMs: number, private readonly log: (s: string) => void) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /** Resolves when every worker has loaded the host and is ready. */
  ready(): Promise<void> {
    return new Promise((res, rej) => {
      const t0 = Date.now();
      const poll = () => {
        if (this.slots.every((s) => s.ready)) return res();
        if (Date.now() - t0 > 60_000) return rej(new Error('workers did not start within 60 s'));
        setTimeout(poll, 10);
      };
      poll();
    });
  }

  /** instances the workers made ahead of their calls, and calls that used one (live workers) */
  get ahead(): { made: number; used: number } {
    return this.slots.reduce((a, s) => ({ made: a.made + s.ahead.made, used: a.used + s.ahead.used }), { made: 0, used: 0 });
  }

  get busy(): number { return this.slots.filter((s) => s.current).length; }
  get queued(): number { return this.queue.length; }

  run(job: Omit<Job, 'id'>): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.draining) return resolve(failure('the cni-wasm daemon is shutting down'));
      this.queue.push({ job: { ...job, id: this.nextId++ }, resolve });
      this.dispatch();
    });
  }

  /** Stops taking calls; resolves once the in-flight ones are answered; hands back the queued ones. */
  drain(): Promise<Pending[]> {
    this.draining = true;
    const left = this.queue.splice(0);
    return new Promise((res) => {
      const finish = () => {
        for (const s of this.slots) { s.gone = true; void s.worker.terminate(); }
        res(left);
      };
      if (this.busy === 0) return finish();
      this.drained = finish;
    });
  }

  /** Queued calls taken over from an older pool (reload). */
  adopt(ps: Pending[]): void {
    this.queue.push(...ps.map((p) => ({ ...p, job: { ...p.job, id: this.nextId++ } })));
    this.dispatch();
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER), ready: false, current: null, gone: false, ahead: { made: 0, used: 0 } };
    slot.worker.on('message', (m: Done | { ready: true }) => {
      if ('ready' in m) { slot.ready = true; this.dispatch(); return; }
      const p = slot.current;
      if (!p || p.job.id !== m.id) return;
      clearTimeout(p.timer);
      slot.current = null;
      this.served++;
      if (m.ahead) slot.ahead = m.ahead;
      p.resolve({ stdout: m.stdout, exitCode: m.exitCode });
      this.dispatch();
    });
    slot.worker.on('error', (e) => this.log(`worker error: ${e.stack ?? e.message}`));
    slot.worker.on('exit', (code) => {
      if (slot.gone) return;
      slot.gone = true;
      const p = slot.current;
      slot.current = null;
      if (p) {
        clearTimeout(p.timer);
        p.resolve(failure(`the cni-wasm daemon's worker stopped during ${p.job.env.CNI_COMMAND ?? 'the call'} (exit ${code}); the call may have run in part`));
      }
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.draining) {
        this.log(`worker exited (${code}); starting another`);
        this.restarts++;
        this.slots[i] = this.spawn();
      }
      this.dispatch();
    });
    return slot;
  }

  private dispatch(): void {
    if (this.draining) {
      if (this.busy === 0 && this.drained) { const d = this.drained; this.drained = null; d(); }
      return;
    }
    // Round robin over the free workers: one that just answered is making
    // the next call's instances (sandbox.ts makeSpare) for a few ms, which a
    // call sent to it would wait for, while the others have theirs ready.
    const n = this.slots.length;
    for (let k = 0; k < n; k++) {
      if (!this.queue.length) return;
      const i = (this.turn + k) % n;
      const s = this.slots[i];
      if (!s.ready || s.current || s.gone) continue;
      this.turn = (i + 1) % n;
      const p = this.queue.shift()!;
      s.current = p;
      p.started = Date.now();
      // The call's own limits (policy timeoutMs, execTimeoutMs) stop it well before this.
      p.timer = setTimeout(() => {
        this.log(`call ${p.job.type} ${p.job.env.CNI_COMMAND} overran ${this.hardLimitMs} ms; stopping its worker`);
        void s.worker.terminate();
      }, this.hardLimitMs);
      s.worker.postMessage(p.job);
    }
  }
}
