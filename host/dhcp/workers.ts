// The DHCP daemon's worker threads (worker.ts): lease operations run there,
// a few at a time, so a DORA that waits for a slow or absent server holds
// up neither the socket nor the other leases. An operation that overstays
// its time limit by HARD_GRACE_MS has its worker stopped and replaced.
import { Worker } from 'node:worker_threads';
import type { Policy } from '../gate/policy.js';
import type { Target } from './client.js';
import type { ClientDone, ClientJob } from './worker.js';

const WORKER = new URL('./worker.js', import.meta.url);
const HARD_GRACE_MS = 5000;

interface Pending { job: ClientJob; resolve: (d: ClientDone) => void; timer?: NodeJS.Timeout }
interface Slot { worker: Worker; current: Pending | null }

export class ClientWorkers {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private next = 1;

  constructor(size: number, private readonly log: (s: string) => void) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER), current: null };
    slot.worker.unref();
    slot.worker.on('message', (m: ClientDone) => {
      const p = slot.current;
      if (!p || p.job.id !== m.id) return;
      clearTimeout(p.timer);
      slot.current = null;
      p.resolve(m);
      this.dispatch();
    });
    slot.worker.on('error', (e) => this.replace(slot, `worker error: ${e.message}`));
    slot.worker.on('exit', (code) => { if (this.slots.includes(slot)) this.replace(slot, `worker exited (${code})`); });
    return slot;
  }

  private replace(slot: Slot, why: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.log(why);
    this.slots[i] = this.spawn();
    const p = slot.current;
    slot.current = null;
    void slot.worker.terminate();
    if (p) { clearTimeout(p.timer); p.resolve({ id: p.job.id, error: { code: 'EIO', message: why } }); }
    this.dispatch();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.current || !this.queue.length) continue;
      const p = this.queue.shift()!;
      slot.current = p;
      p.timer = setTimeout(() => this.replace(slot, `lease operation ${String(p.job.input.op)} ran past its time limit; its worker was stopped`), p.job.timeoutMs + HARD_GRACE_MS);
      slot.worker.postMessage(p.job);
    }
  }

  run(policy: Policy, target: Target, input: Record<string, unknown>, timeoutMs: number): Promise<ClientDone> {
    return new Promise((resolve) => {
      this.queue.push({ job: { id: this.next++, policy, target, input, timeoutMs }, resolve });
      this.dispatch();
    });
  }

  close(): void {
    for (const s of this.slots.splice(0)) void s.worker.terminate();
  }
}
