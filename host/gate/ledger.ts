// The ledger: what each attachment made, written AHEAD of the kernel change.
// It is what gives a plugin rights on a host object it created, and what the
// sweep after DEL, GC, or a failed or timed-out ADD uses to remove exactly
// what the attachment made, even when the plugin crashed half-way or was
// stopped by its time limit.
//
// One journal per attachment, <stateDir>/ledger/<network>/<container>@<ifname>.jsonl
// (names too long for a file name, or not plain, are replaced by '#' and a
// sha256, which no network or container id can contain), in a root-only
// directory. The first line names the attachment; every further line is one
// record: `intend` (before the kernel is touched), `confirm` (it worked,
// possibly with what the kernel chose), `abandon` (it failed: nothing was
// made) or `forget` (undone, or handed over). Appends are single writes; the
// journal is held under an exclusive flock for the whole CNI call, so a
// racing ADD and DEL of one attachment cannot interleave, and it is read
// back with every line validated and its size capped.
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { flock } from '../kernel/native.js';
import { nodeCrypto, tmpSuffix } from '../lazy.js';
import { HostError } from './errors.js';

export type LedgerValue = string | number | boolean | string[];

/** One object an attachment made. `kind` is declared by a host interface, with its undo. */
export interface LedgerEntry {
  kind: string;
  /** the plugin type that made it */
  plugin: string;
  /** 'host' (default) or 'container' */
  ns?: 'host' | 'container';
  /** shared objects (a bridge, its gateway address) are forgotten at DEL, never removed */
  keep?: boolean;
  [field: string]: LedgerValue | undefined;
}

export interface LiveEntry { id: number; state: 'intent' | 'done'; entry: LedgerEntry }

interface Header { v: 1; network: string; containerId: string; ifname: string }

type Record =
  | { op: 'intend'; id: number; entry: LedgerEntry }
  | { op: 'confirm'; id: number; set?: { [k: string]: LedgerValue } }
  | { op: 'abandon' | 'forget'; id: number };

const MAX_FILE = 1 << 20;
const MAX_VALUE = 64 << 10;
const PLAIN = /^[A-Za-z0-9_.-]+$/;

/** A component of a file name that no two different inputs share. */
function fileName(parts: string[]): string {
  const plain = parts.every((p) => PLAIN.test(p)) && parts.join('@').length <= 200;
  if (plain) return parts.join('@');
  return '#' + nodeCrypto().createHash('sha256').update(parts.join('\0')).digest('hex');
}

export const ledgerRoot = (stateDir: string): string => join(stateDir, 'ledger');
const networkDir = (stateDir: string, network: string) => join(ledgerRoot(stateDir), fileName([network]));

/** Network dirs this process made (a resident worker opens a journal per call). */
const madeDirs = new Set<string>();

/** Creates dir (and parents) owner-only, whatever the umask. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function attachmentKey(containerId: string, ifname: string): string {
  return fileName([containerId, ifname]);
}

function validEntry(e: unknown): e is LedgerEntry {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return false;
  const o = e as { [k: string]: unknown };
  if (typeof o.kind !== 'string' || typeof o.plugin !== 'string') return false;
  if (Object.keys(o).length > 32) return false;
  return Object.values(o).every((v) => (typeof v === 'string' && v.length <= MAX_VALUE) || typeof v === 'number' || typeof v === 'boolean'
    || (Array.isArray(v) && v.length <= 64 && v.every((x) => typeof x === 'string' && x.length <= 256)));
}

function validRecord(r: unknown): r is Record {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as { op?: unknown; id?: unknown; entry?: unknown; set?: unknown };
  if (typeof o.id !== 'number' || !Number.isInteger(o.id)) return false;
  if (o.op === 'intend') return validEntry(o.entry);
  if (o.op === 'confirm') return o.set === undefined || validEntry({ kind: 'x', plugin: 'x', ...(o.set as object) });
  return o.op === 'abandon' || o.op === 'forget';
}

/** Bounded read of a whole file (regular file only, no symlink); `st`: its fstat, when the caller has it. */
function readCapped(fd: number, st = fstatSync(fd)): string {
  if (!st.isFile()) throw new HostError('ELEDGER', 'ledger journal is not a regular file');
  if (st.size > MAX_FILE) throw new HostError('ELEDGER', `ledger journal is ${st.size} bytes, above the ${MAX_FILE} limit`);
  const buf = Buffer.alloc(st.size);
  let got = 0;
  while (got < st.size) {
    const n = readSync(fd, buf, got, st.size - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got).toString('utf8');
}

function parseJournal(text: string, file: string): { header: Header | null; live: Map<number, LiveEntry>; lines: number } {
  const live = new Map<number, LiveEntry>();
  let header: Header | null = null;
  let lines = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    let r: unknown;
    try { r = JSON.parse(line); } catch { continue; } // a torn last line after a crash
    if (lines++ === 0) {
      const h = r as Header;
      if (h?.v !== 1 || typeof h.network !== 'string' || typeof h.containerId !== 'string' || typeof h.ifname !== 'string') {
        throw new HostError('ELEDGER', `${file} is not a cni-wasm ledger journal`);
      }
      header = h;
      continue;
    }
    if (!validRecord(r)) continue; // never obey a record we cannot vouch for
    if (r.op === 'intend') live.set(r.id, { id: r.id, state: 'intent', entry: r.entry });
    else if (r.op === 'confirm') {
      const l = live.get(r.id);
      if (l) { l.state = 'done'; if (r.set) Object.assign(l.entry, r.set); }
    } else live.delete(r.id);
  }
  return { header, live, lines };
}

const pause = new Int32Array(new SharedArrayBuffer(4));

export class Ledger {
  private fd: number;
  private live: Map<number, LiveEntry>;
  private nextId: number;
  private lines: number;
  readonly file: string;

  /** ids recorded by this invocation: what a failed ADD takes back */
  readonly madeNow = new Set<number>();
  private detachedWhy = '';

  /** A ledger that records nothing: for calls that must not create objects (GC, STATUS). */
  static detached(why: string): Ledger {
    const l = new Ledger('', -1, new Map(), 0);
    l.detachedWhy = why;
    return l;
  }

  private constructor(file: string, fd: number, live: Map<number, LiveEntry>, lines: number) {
    this.file = file;
    this.fd = fd;
    this.live = live;
    this.lines = lines;
    this.nextId = Math.max(0, ...live.keys()) + 1;
  }

  /**
   * Opens (creating) the attachment's journal and takes its lock, waiting at
   * most until `deadline` (ms since the epoch): a stuck holder gives a clear
   * ETIMEDOUT, never a hang the time limit could not interrupt.
   */
  static open(stateDir: string, network: string, containerId: string, ifname: string, deadline: number): Ledger {
    const dir = networkDir(stateDir, network);
    const file = Ledger.pathOf(stateDir, network, containerId, ifname);
    const makeDir = () => {
      try {
        privateDir(dir);
      } catch (e) {
        throw new HostError('ELEDGER', `cannot create the ledger directory ${dir}: ${(e as Error).message}`);
      }
      madeDirs.add(dir);
    };
    if (!madeDirs.has(dir)) makeDir();
    for (;;) {
      let fd: number;
      try {
        fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
      } catch (e) {
        // made by this process earlier, removed since: made again
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && madeDirs.delete(dir)) { makeDir(); continue; }
        throw new HostError('ELEDGER', `cannot open the ledger ${file}: ${(e as Error).message}`);
      }
      lockUntil(fd, deadline, file);
      // The journal may have been removed or replaced while we waited: lock the one at the path.
      let held: ReturnType<typeof fstatSync> | undefined;
      try {
        held = fstatSync(fd);
        if (statSync(file, { throwIfNoEntry: false })?.ino !== held.ino) held = undefined;
      } catch { held = undefined; }
      if (!held) { closeSync(fd); continue; }
      const { header, live, lines } = parseJournal(readCapped(fd, held), file);
      const l = new Ledger(file, fd, live, lines);
      if (!header) l.append({ v: 1, network, containerId, ifname });
      else if (header.network !== network || header.containerId !== containerId || header.ifname !== ifname) {
        closeSync(fd);
        throw new HostError('ELEDGER', `${file} belongs to another attachment`);
      }
      return l;
    }
  }

  static pathOf(stateDir: string, network: string, containerId: string, ifname: string): string {
    return join(networkDir(stateDir, network), attachmentKey(containerId, ifname) + '.jsonl');
  }

  /** The live entries of an attachment, read without locking or creating anything (tools, tests). */
  static peek(stateDir: string, network: string, containerId: string, ifname: string): LedgerEntry[] {
    let fd: number;
    try {
      fd = openSync(Ledger.pathOf(stateDir, network, containerId, ifname), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return [];
    }
    try {
      return [...parseJournal(readCapped(fd), 'ledger').live.values()].map((l) => l.entry);
    } finally {
      closeSync(fd);
    }
  }

  /** Every live entry of every journal under stateDir, unlocked (tools, tests: "is anything left?"). */
  static all(stateDir: string): (LedgerEntry & { containerId: string; ifname: string; network: string })[] {
    const out: (LedgerEntry & { containerId: string; ifname: string; network: string })[] = [];
    let nets: string[];
    try { nets = readdirSync(ledgerRoot(stateDir)); } catch { return out; }
    for (const n of nets) {
      let files: string[];
      try { files = readdirSync(join(ledgerRoot(stateDir), n)).filter((f) => f.endsWith('.jsonl')); } catch { continue; }
      for (const f of files) {
        let fd: number | undefined;
        try {
          fd = openSync(join(ledgerRoot(stateDir), n, f), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
          const { header, live } = parseJournal(readCapped(fd), f);
          if (header) for (const l of live.values()) out.push({ ...l.entry, containerId: header.containerId, ifname: header.ifname, network: header.network });
        } catch { /* not a journal */ } finally {
          if (fd !== undefined) closeSync(fd);
        }
      }
    }
    return out;
  }

  /**
   * Live entries of every other journal in the directory of `file` (the same
   * network), unlocked, each with the journal it came from: who else holds a
   * group (host/capabilities/groups.ts). Journals that do not parse are skipped.
   */
  static siblings(file: string): { file: string; live: LiveEntry[] }[] {
    const dir = dirname(file);
    let names: string[];
    try { names = readdirSync(dir).filter((n) => n.endsWith('.jsonl')); } catch { return []; }
    const out: { file: string; live: LiveEntry[] }[] = [];
    for (const n of names.slice(0, 100_000)) {
      const path = join(dir, n);
      if (path === file) continue;
      let fd: number | undefined;
      try {
        fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        const { header, live } = parseJournal(readCapped(fd), n);
        if (header) out.push({ file: path, live: [...live.values()] });
      } catch { /* not a journal */ } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    return out;
  }

  /** The lock file of a group of shared objects, beside the journals of its network. */
  static groupLockPath(file: string, plugin: string, group: string): string {
    return join(dirname(file), `group-${fileName([plugin, group])}.lock`);
  }

  /** Headers of a network's journals, unlocked (GC then opens each). */
  static listAttachments(stateDir: string, network: string): { containerId: string; ifname: string }[] {
    const dir = networkDir(stateDir, network);
    let names: string[];
    try { names = readdirSync(dir).filter((n) => n.endsWith('.jsonl')); } catch { return []; }
    const out: { containerId: string; ifname: string }[] = [];
    for (const n of names) {
      let fd: number | undefined;
      try {
        fd = openSync(join(dir, n), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
        const { header } = parseJournal(readCapped(fd), n);
        if (header && header.network === network) out.push({ containerId: header.containerId, ifname: header.ifname });
      } catch { /* not a journal of ours: skipped, never obeyed */ } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    return out;
  }

  /**
   * Removes the network's empty journals: a call killed between making its
   * journal and writing the header leaves one, which no DEL of a listed
   * attachment and no GC would open again. Only one nobody holds is removed
   * (locked here first, so a call that just made it finds, once it has the
   * lock, that the path is not its file and makes it anew). Returns how many.
   */
  static removeEmpty(stateDir: string, network: string): number {
    const dir = networkDir(stateDir, network);
    let names: string[];
    try { names = readdirSync(dir).filter((n) => n.endsWith('.jsonl')); } catch { return 0; }
    let removed = 0;
    for (const n of names) {
      const path = join(dir, n);
      if (statSync(path, { throwIfNoEntry: false })?.size !== 0) continue;
      let fd: number;
      try { fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); } catch { continue; }
      try {
        flock(fd, true, false);
        const held = fstatSync(fd);
        if (held.isFile() && held.size === 0 && statSync(path, { throwIfNoEntry: false })?.ino === held.ino) {
          rmSync(path, { force: true });
          removed++;
        }
      } catch { /* held by a call right now: its own */ } finally {
        closeSync(fd);
      }
    }
    return removed;
  }

  get entries(): LedgerEntry[] { return [...this.live.values()].map((l) => l.entry); }
  get liveEntries(): LiveEntry[] { return [...this.live.values()]; }

  /** A live entry by id (undefined once abandoned or forgotten). */
  entryOf(id: number): LedgerEntry | undefined { return this.live.get(id)?.entry; }

  ownsLink(name: string, ns: 'host' | 'container' = 'host'): boolean {
    return this.entries.some((e) => e.kind === 'link' && e.name === name && (e.ns ?? 'host') === ns);
  }

  private append(rec: unknown): void {
    if (this.fd < 0) throw new HostError('ELEDGER', this.detachedWhy || 'the ledger is closed');
    const line = JSON.stringify(rec) + '\n';
    try {
      writeSync(this.fd, line);
    } catch (e) {
      throw new HostError('ELEDGER', `cannot write the ledger ${this.file}: ${(e as Error).message}`);
    }
    this.lines++;
  }

  /** Records entries before the change that makes them; returns their ids. Throws if it cannot. */
  intend(entries: LedgerEntry[]): number[] {
    return entries.map((entry) => {
      const id = this.nextId++;
      this.append({ op: 'intend', id, entry });
      this.madeNow.add(id);
      this.live.set(id, { id, state: 'intent', entry: { ...entry } });
      return id;
    });
  }

  confirm(id: number, set?: { [k: string]: LedgerValue }): void {
    const l = this.live.get(id);
    if (!l) return;
    this.append(set ? { op: 'confirm', id, set } : { op: 'confirm', id });
    l.state = 'done';
    if (set) Object.assign(l.entry, set);
  }

  /** The change failed: nothing was made. */
  abandon(id: number): void {
    if (!this.live.has(id)) return;
    this.append({ op: 'abandon', id });
    this.live.delete(id);
  }

  /** Forgets live entries matching pred (undone, or no longer ours); returns them. */
  forget(pred: (e: LedgerEntry) => boolean): LedgerEntry[] {
    const out: LedgerEntry[] = [];
    for (const l of [...this.live.values()]) {
      if (!pred(l.entry)) continue;
      this.append({ op: 'forget', id: l.id });
      this.live.delete(l.id);
      out.push(l.entry);
    }
    return out;
  }

  /** Compacts or removes the journal, then drops the lock. */
  close(): void {
    if (this.fd < 0) return;
    try {
      if (this.live.size === 0) rmSync(this.file, { force: true });
      else if (this.lines > 4 * (this.live.size + 1) && this.lines > 64) this.compact();
    } catch { /* left as it is: still a valid journal */ }
    closeSync(this.fd); // drops the flock
    this.fd = -1;
  }

  private compact(): void {
    const text = readCapped(this.fd).split('\n')[0] + '\n' +
      [...this.live.values()].map((l) => JSON.stringify({ op: 'intend', id: l.id, entry: l.entry }) + '\n' +
        (l.state === 'done' ? JSON.stringify({ op: 'confirm', id: l.id }) + '\n' : '')).join('');
    const tmp = `${this.file}.${tmpSuffix()}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try { writeSync(fd, text); } finally { closeSync(fd); }
    renameSync(tmp, this.file);
  }
}

function lockUntil(fd: number, deadline: number, file: string): void {
  for (;;) {
    try {
      flock(fd, true, false);
      return;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EWOULDBLOCK' && code !== 'EAGAIN') { closeSync(fd); throw new HostError('ELEDGER', `cannot lock ${file}: ${(e as Error).message}`); }
    }
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new HostError('ETIMEDOUT', `the ledger of this attachment (${file}) is locked by another CNI call that did not finish in time`);
    }
    Atomics.wait(pause, 0, 0, 5);
  }
}
