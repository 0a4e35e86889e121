// The audit log: one JSON line per host call and per plugin invocation,
// appended whole lines at a time (one write each) so concurrent CNI calls
// never interleave inside a line. What precedes an action (the intent) is
// written before the action; what only tells how something went (an outcome,
// a read, a denial) may wait for the next write or the end of the call, so
// a host call costs one write, not two. A crash can lose those trailing
// records since the last write, never an intent.
import { chmodSync, closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
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

let lastMs = -1;
let lastIso = '';
/** The time of a record, as new Date().toISOString() gives it: made once per millisecond (a call writes ~40 records in a few). */
export function recordTime(): string {
  const ms = Date.now();
  if (ms !== lastMs) { lastMs = ms; lastIso = new Date(ms).toISOString(); }
  return lastIso;
}

/** Per invocation: records and bytes the plugins' host calls may produce. */
export const AUDIT_QUOTA = { records: 4000, bytes: 4 * 1024 * 1024 };
/** Kept back for the records the host itself must write (refusals, the
 *  invocation record); past quota + reserve a write fails (fail closed). */
export const AUDIT_RESERVE = { records: 64, bytes: 512 * 1024 };
/** A record longer than this is cut down (arguments shortened) before it is written. */
export const MAX_RECORD_BYTES = 96 * 1024;

export class AuditQuotaExceeded extends Error {}

/** Held records are written once they reach this much text. */
const HOLD_CHARS = 64 * 1024;

/** Owner-only, whatever the umask: a directory we create, the file we create.
 *  An existing directory is left as it is (it may be /var/log). */
export function ensurePrivateDir(dir: string): void {
  // there already (every call after the first): one lstat, not mkdir's EEXIST and stat as well
  if (lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) chmodSync(dir, 0o700);
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`audit dir ${dir} is not a directory`);
}

function openPrivate(path: string): number {
  ensurePrivateDir(dirname(path));
  // O_NOFOLLOW: the log is never written through a symlink someone planted
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  const st = fstatSync(fd);
  if (!st.isFile()) { closeSync(fd); throw new Error(`audit log ${path} is not a regular file`); }
  if (st.uid !== (process.geteuid?.() ?? 0)) { closeSync(fd); throw new Error(`audit log ${path} is owned by uid ${st.uid}, not by this host`); }
  if (st.mode & 0o077) fchmodSync(fd, 0o600);
  return fd;
}

function line(rec: AuditRecord): string {
  let text = JSON.stringify(rec);
  // (a UTF-16 unit is at most 3 bytes of UTF-8: most records need no count)
  if (text.length * 3 > MAX_RECORD_BYTES && Buffer.byteLength(text) > MAX_RECORD_BYTES) {
    text = JSON.stringify({ ...rec, args: shortenArgs(rec.args), outcome: rec.outcome.slice(0, 4096) });
  }
  return text + '\n';
}

function shortenArgs(v: unknown, depth = 0): any {
  if (typeof v === 'string') return v.length > 256 ? `${v.slice(0, 256)}…(${v.length} chars)` : v;
  if (depth > 4) return '…';
  if (Array.isArray(v)) return v.length > 8 ? [...v.slice(0, 8).map((x) => shortenArgs(x, depth + 1)), `…(${v.length} items)`] : v.map((x) => shortenArgs(x, depth + 1));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).slice(0, 32).map(([k, x]) => [k, shortenArgs(x, depth + 1)]));
  return v;
}

// The digest of a component the loader refused, by type, for the
// invocation's load-refusal record (written by invoke.ts without one).
const refusedDigests = new Map<string, string>();
export function noteRefusedDigest(type: string, sha256: string): void { refusedDigests.set(type, sha256); }

export class AuditLog {
  private fd: number | null = null;
  private records = 0;
  private bytes = 0;
  /** records that wait for the next write (outcomes, reads, denials) */
  private held = '';
  constructor(public readonly path: string) {}

  /** false once the plugins' host calls used this invocation's quota */
  hasRoomForCalls(): boolean {
    return this.records < AUDIT_QUOTA.records && this.bytes < AUDIT_QUOTA.bytes;
  }

  quotaText(): string {
    return `${AUDIT_QUOTA.records} records or ${AUDIT_QUOTA.bytes} bytes`;
  }

  /** Appends one record, with the records held before it. Throws (the caller
   *  must not act) when it cannot be written or the invocation is past its
   *  quota and reserve. `later`: the record may wait for the next write. */
  write(rec: AuditRecord, o: { later?: boolean } = {}): void {
    if (!rec.sha256 && rec.call === 'invoke.load' && refusedDigests.has(rec.plugin)) rec = { ...rec, sha256: refusedDigests.get(rec.plugin)! };
    const text = line(rec);
    const n = Buffer.byteLength(text);
    // The host's own sweep records (plugin "cni-wasm") are bounded by the
    // ledger the host wrote, not by what a plugin asked: they are never cut.
    const hostOwn = rec.plugin === 'cni-wasm';
    if (!hostOwn && (this.records + 1 > AUDIT_QUOTA.records + AUDIT_RESERVE.records || this.bytes + n > AUDIT_QUOTA.bytes + AUDIT_RESERVE.bytes)) {
      throw new AuditQuotaExceeded(`audit quota of this invocation exhausted (${this.quotaText()}); refusing to act unrecorded`);
    }
    this.records++;
    this.bytes += n;
    if (o.later && this.held.length + text.length < HOLD_CHARS) {
      this.held += text;
      return;
    }
    if (this.fd === null) this.fd = openPrivate(this.path);
    writeSync(this.fd, this.held + text);
    this.held = '';
  }

  /** Writes what is held; throws when it cannot (a call then reports failure). */
  flush(): void {
    if (!this.held) return;
    if (this.fd === null) this.fd = openPrivate(this.path);
    writeSync(this.fd, this.held);
    this.held = '';
  }

  close(): void {
    try {
      this.flush();
    } catch (e) {
      process.stderr.write(`cni-wasm: could not write the last audit records to ${this.path}: ${(e as Error).message}\n`);
    } finally {
      if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
    }
  }
}

/** For one-off records outside an invocation (install, approve). */
export function appendAudit(path: string, rec: AuditRecord): void {
  const fd = openPrivate(path);
  try {
    writeSync(fd, line(rec));
  } finally {
    closeSync(fd);
  }
}

// ---- reading the log (cni-wasm audit) ----------------------------------------
// What a human reads must be what was recorded, and nothing a plugin wrote
// may pass for something else: every control character, line or paragraph
// separator and bidi override is escaped (no forged lines, no terminal
// escapes), long values are shortened, one record is one line.

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\\]/g;

/** Escapes everything that could act on a terminal or split a line. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/** For `--json`: JSON that is still one line of printable text. */
export function safeJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export const SHOW_VALUE_CHARS = 120;

function shortText(s: string, max = SHOW_VALUE_CHARS): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** An allowExec refusal is a policy decision even where it was recorded as a failed delegate call. */
export function isDenial(r: AuditRecord): boolean {
  return r.verdict === 'deny' || /does not allow running a '[^']*' binary \(allowExec\)/.test(String(r.outcome ?? ''));
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v));

export function formatRecord(r: AuditRecord): string {
  const args = Object.entries(r.args && typeof r.args === 'object' ? r.args : {})
    .map(([k, v]) => `${escapeText(shortText(k, 40))}=${escapeText(shortText(str(v)))}`).join(' ');
  const f = (v: unknown, n: number) => escapeText(shortText(str(v), n));
  const sha = typeof r.sha256 === 'string' && r.sha256 ? ` [${f(r.sha256.replace(/^external:/, 'exec:'), 24).slice(0, 12)}]` : ' [no digest]';
  const line = `${f(r.time, 40)} ${f(r.command, 10).padEnd(5)} ${f(r.plugin, 40).padEnd(10)}${sha} ${isDenial(r) ? 'DENY ' : '     '}${f(r.call, 60)} ${args} -> ${f(r.outcome, 400)} (${f(r.ms, 20)} ms)`;
  return line.length > 2000 ? `${line.slice(0, 2000)}…` : line;
}

export interface AuditFilter {
  container?: string;
  plugin?: string;
  denied?: boolean;
  /** ms since the epoch */
  since?: number;
  command?: string;
  /** "links.remove", "links." or "links.*" */
  call?: string;
}

/** "2026-12-01T08:00:00Z", "2026-12-01", or a duration back from now: "90s", "10m", "2h", "1d". */
export function parseSince(s: string, now = Date.now()): number {
  const d = /^(\d+)\s*(s|m|h|d)$/.exec(s.trim());
  if (d) return now - Number(d[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[d[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new Error(`--since '${s}' is neither a time (2026-12-01T08:00:00Z) nor a duration (10m, 2h, 1d)`);
  return t;
}

export function matches(r: AuditRecord, f: AuditFilter): boolean {
  if (f.container !== undefined && !(typeof r.containerId === 'string' && r.containerId.startsWith(f.container))) return false;
  if (f.plugin !== undefined && r.plugin !== f.plugin) return false;
  if (f.denied && !isDenial(r)) return false;
  if (f.since !== undefined && !(Date.parse(r.time) >= f.since)) return false;
  if (f.command !== undefined && String(r.command).toUpperCase() !== f.command.toUpperCase()) return false;
  if (f.call !== undefined) {
    const c = String(r.call);
    const want = f.call.endsWith('*') ? f.call.slice(0, -1) : f.call;
    if (f.call.endsWith('*') || f.call.endsWith('.') ? !c.startsWith(want) : c !== want) return false;
  }
  return true;
}
