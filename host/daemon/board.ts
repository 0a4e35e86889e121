// The daemon's board: counters and per-worker state in shared memory, so the
// workers (which serve the socket themselves, worker.ts) and the main thread
// (status, the hard limit, a worker that died mid-call) see the same numbers
// without sending each other a message per call.

/** Totals since the daemon started. */
export const enum Total { Served, Refused, Fallback, Errors, AheadMade, AheadUsed, Reloads, Count }

/** Per worker slot. */
export const enum Slot { State, SinceSec, Conn, Stride = 4 }

export const enum State { Free, Starting, Idle, Busy }

export class Board {
  readonly totals: Int32Array;
  readonly slots: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer, readonly startedMs: number) {
    this.totals = new Int32Array(buffer, 0, Total.Count);
    this.slots = new Int32Array(buffer, Total.Count * 4);
  }

  static create(slotCount: number): Board {
    const b = new Board(new SharedArrayBuffer((Total.Count + slotCount * Slot.Stride) * 4), Date.now());
    for (let i = 0; i < slotCount; i++) Atomics.store(b.slots, i * Slot.Stride + Slot.Conn, -1);
    return b;
  }

  get slotCount(): number { return this.slots.length / Slot.Stride; }

  add(t: Total, n = 1): void { Atomics.add(this.totals, t, n); }
  total(t: Total): number { return Atomics.load(this.totals, t); }

  get(slot: number, f: Slot): number { return Atomics.load(this.slots, slot * Slot.Stride + f); }
  set(slot: number, f: Slot, v: number): void { Atomics.store(this.slots, slot * Slot.Stride + f, v); }

  /** Seconds since the daemon started (what SinceSec holds). */
  nowSec(): number { return Math.floor((Date.now() - this.startedMs) / 1000); }

  /** A slot no worker holds, taken for a new one; -1 when all are held. */
  claim(): number {
    for (let i = 0; i < this.slotCount; i++) {
      if (Atomics.compareExchange(this.slots, i * Slot.Stride + Slot.State, State.Free, State.Starting) === State.Free) return i;
    }
    return -1;
  }

  busy(): number {
    let n = 0;
    for (let i = 0; i < this.slotCount; i++) if (this.get(i, Slot.State) === State.Busy) n++;
    return n;
  }
}
