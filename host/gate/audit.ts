// The audit log: one JSON line per host call and per plugin invocation,
// appended with a single write each so concurrent CNI calls never interleave
// inside a line, and so a crash loses at most the call in flight.
import { appendFileSync, mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface AuditRecord {
  time: string;
  plugin: string;
  sha256: string;
  command: string;
  containerId: string;
  network: string;
  /** "links.create-veth", or "invoke.add" for the plugin call itself */
  call: string;
  args: Record<string, unknown>;
  verdict: 'allow' | 'deny';
  /** "ok", or "error: <code> <message>" */
  outcome: string;
  ms: number;
}

export class AuditLog {
  private fd: number | null = null;
  constructor(public readonly path: string) {}

  write(rec: AuditRecord): void {
    // u64 arguments (tc rates) arrive as BigInt, which JSON cannot hold: as decimal strings.
    const line = JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
    if (this.fd === null) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.fd = openSync(this.path, 'a', 0o640);
    }
    writeSync(this.fd, line);
  }

  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }
}

/** For one-off records outside an invocation (install, approve). */
export function appendAudit(path: string, rec: AuditRecord): void {
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, JSON.stringify(rec) + '\n');
}
