// files: what a meta-plugin (flannel) keeps on the host's disk, and nothing
// more: the settings lines of its env file (/run/flannel/subnet.env) and one
// saved delegate config per container in its data dir
// (/var/lib/cni/flannel/<container id>).
//
// objects: arg `path` of read-env is a host file (right "read"), arg `dir`
// of save/load/remove/list a host directory (right "write"); both must be
// what the RUNTIME's config names under a key the plugin's manifest declares
// (kind "file" / "dir"; a config a plugin wrote for a delegate grants
// nothing), inside the plugin's "files" grant, and never reach cni-wasm's
// own directories (stateDir, audit log, plugin dirs) or host-local's store,
// symlinks resolved. `name` is this attachment's container id; GC may remove
// (and read) the documents of containers the runtime no longer lists.
//
// Only the lines whose key the plugin asks for (FLANNEL_*) cross from an env
// file: a config that points subnetFile at /etc/shadow learns nothing of it.
// Reads are readRegularFile's (regular file, no symlink, non-blocking,
// capped). A saved document is written to a temp file (0600, O_EXCL,
// O_NOFOLLOW), fsync'd, renamed over the target and the directory fsync'd;
// it replaces only a regular file holding a JSON object (a saved config),
// never anything else, in a directory that is ours (a real directory, owned
// by us, not writable by group or others, holding no subdirectories), so a
// dataDir of /etc with a container id "passwd" writes nothing. Each save is
// a ledger entry ('saved-file') whose undo removes the file: a failed ADD
// leaves no saved config behind (unless an earlier ADD of the container had
// saved one: that stays for its DEL), and GC of a dead attachment removes it.
import {
  closeSync, constants, fchmodSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { overlaps, protectedDirs } from '../gate/policy.js';
import { VALID_ATTACHMENTS, type GcAttachment } from '../cni/config.js';
import { FileRefused, checkOwnership, lstatOrNull, readRegularFile } from '../sandbox/files.js';
import { declareUndo } from '../sweep.js';
import { resolved } from './store.js';
import { tmpSuffix } from '../lazy.js';
import type { LedgerEntry } from '../gate/ledger.js';

/** subnet.env is a handful of lines */
export const MAX_ENV_BYTES = 64 << 10;
/** a saved delegate config (the config with its runtimeConfig) */
export const MAX_SAVED_BYTES = 256 << 10;
const MAX_KEYS = 16, MAX_LINES = 1024, MAX_ENTRIES = 100_000;
const ENV_KEY = /^FLANNEL_[A-Z0-9_]{0,64}$/;
/** a container id as libcni allows it */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;

export interface EnvLine { key: string; value?: string }

const grant = always('files');

function listOf(ctx: CallContext, k: 'paths' | 'dirs'): string[] {
  const g = ctx.plugin.grants.files;
  return g === true ? ['*'] : g ? g[k] ?? [] : [];
}

const within = (path: string, roots: string[]) => roots.some((d) => d === '*' || path === d || path.startsWith(d.replace(/\/*$/, '/')));

/** The checks every path argument passes: shape, grant, declared key, cni-wasm's own dirs. */
function pathCheck(ctx: CallContext, kind: 'file' | 'dir', path: string): string | null {
  const what = kind === 'file' ? 'env file' : 'data dir';
  if (typeof path !== 'string' || !isAbsolute(path) || normalize(path) !== path.replace(/(.)\/+$/, '$1') || path.includes('\0')) {
    return `${what} '${path}' must be an absolute, normalized path`;
  }
  if (!within(path, listOf(ctx, kind === 'file' ? 'paths' : 'dirs'))) {
    return `${what} '${path}' is outside the plugin's granted "files": {"${kind === 'file' ? 'paths' : 'dirs'}"}`;
  }
  const named = ctx.owned.path(kind, path, kind === 'file' ? 'read' : 'write');
  if (named) return named;
  const real = resolved(path);
  const own = overlaps(real, protectedDirs(ctx.policy));
  if (own) return `${what} '${path}' reaches cni-wasm's own directory ${own}`;
  if (kind === 'dir' && overlaps(real, [resolved(ctx.policy.storeDir)])) return `data dir '${path}' is host-local's store (${ctx.policy.storeDir})`;
  return null;
}

function validAttachments(ctx: CallContext): GcAttachment[] | null {
  if (ctx.command !== 'GC' || !ctx.runtimeConf) return null;
  const v = ctx.runtimeConf[VALID_ATTACHMENTS];
  return Array.isArray(v) ? v as GcAttachment[] : [];
}

/** `name` is this attachment's; or, in GC, a container the runtime no longer lists (others: reads only). */
function nameCheck(ctx: CallContext, name: string, use: 'save' | 'load' | 'remove'): string | null {
  if (typeof name !== 'string' || !NAME.test(name)) return `'${name}' is not a container id (a single file name of letters, digits, "_", "." and "-")`;
  if (name === ctx.containerId && (use !== 'save' || ctx.command === 'ADD')) return null;
  if (use === 'save') return ctx.command === 'ADD' ? `'${name}' is not this attachment's container id ('${ctx.containerId}')` : `saving is for ADD only (this is ${ctx.command})`;
  const valid = validAttachments(ctx);
  if (valid === null) return `'${name}' is not this attachment's container id ('${ctx.containerId}')`;
  if (use === 'remove' && valid.some((a) => a.containerID === name)) return `container '${name}' is still listed in "${VALID_ATTACHMENTS}"; GC may not remove its saved config`;
  return null;
}

const refused = (e: unknown): HostError => e instanceof HostError ? e
  : new HostError((e as FileRefused).code ?? (e as NodeJS.ErrnoException).code ?? 'EIO', (e as Error).message);

/** A directory we may keep files in: absent (made 0700), or a real directory of ours holding no directories. */
function ourDir(dir: string, create: boolean): boolean {
  const st = lstatOrNull(dir);
  if (!st) {
    if (!create) return false;
    try { mkdirSync(dir, { recursive: true, mode: 0o700 }); } catch (e) { throw new HostError('EIO', `mkdir ${dir}: ${(e as Error).message}`); }
    return true;
  }
  if (st.isSymbolicLink()) throw new HostError('ELOOP', `data dir ${dir} is a symbolic link; refusing to follow it`);
  if (!st.isDirectory()) throw new HostError('ENOTDIR', `data dir ${dir} is not a directory`);
  try { checkOwnership(st, dir, 'data dir'); } catch (e) { throw refused(e); }
  const entries = readdirSync(dir, { withFileTypes: true });
  if (entries.length > MAX_ENTRIES) throw new HostError('ENOSPC', `data dir ${dir} holds more than ${MAX_ENTRIES} entries`);
  const sub = entries.find((d) => d.isDirectory());
  if (sub) throw new HostError('EDENIED', `data dir ${dir} holds a directory (${sub.name}), so it is not a directory of saved configs; refusing to write there`);
  return true;
}

function readSaved(file: string): string | undefined {
  try {
    return readRegularFile(file, { maxBytes: MAX_SAVED_BYTES, what: 'saved config' }).toString('utf8');
  } catch (e) {
    if ((e as FileRefused).code === 'ENOENT') return undefined;
    throw refused(e);
  }
}

function isJsonObject(text: string): boolean {
  try { const v = JSON.parse(text) as unknown; return typeof v === 'object' && v !== null && !Array.isArray(v); } catch { return false; }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

function saveFile(dir: string, name: string, content: string): void {
  if (Buffer.byteLength(content) > MAX_SAVED_BYTES) throw new HostError('EFBIG', `a saved config may hold at most ${MAX_SAVED_BYTES} bytes`);
  ourDir(dir, true);
  const file = join(dir, name);
  const st = lstatOrNull(file);
  if (st) {
    if (!st.isFile()) throw new HostError('EEXIST', `${file} exists and is not a regular file; refusing to replace it`);
    const old = readSaved(file);
    if (old !== undefined && !isJsonObject(old)) throw new HostError('EEXIST', `${file} exists and is not a saved config (a JSON object); refusing to replace it`);
  }
  const tmp = join(dir, `.${name}.${tmpSuffix()}.tmp`);
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask
    const buf = Buffer.from(content);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw new HostError('EIO', `write ${file}: ${(e as Error).message}`);
  }
  closeSync(fd);
  renameSync(tmp, file);
  fsyncDir(dir);
}

/** Removes dir/name if it is a regular file (or a stray link); true when something went. */
function removeFile(dir: string, name: string): boolean {
  const file = join(dir, name);
  const st = lstatOrNull(file);
  if (!st) return false;
  if (st.isDirectory()) throw new HostError('EISDIR', `${file} is a directory; refusing to remove it`);
  rmSync(file, { force: true });
  return true;
}

export function parseEnvLines(text: string, keys: string[]): EnvLine[] {
  const out: EnvLine[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let line of lines) {
    if (line.endsWith('\r')) line = line.slice(0, -1); // bufio.ScanLines drops it
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    if (!keys.includes(key)) continue;
    out.push(eq < 0 ? { key } : { key, value: line.slice(eq + 1) });
    if (out.length >= MAX_LINES) break;
  }
  return out;
}

const matches = (dir: string, name: string) => (e: LedgerEntry) => e.kind === 'saved-file' && e.dir === dir && e.name === name;

export const files: HostInterface = {
  readEnv: {
    grant, reads: true,
    check: (ctx, path: string, keys: string[]) => {
      if (!Array.isArray(keys) || keys.length > MAX_KEYS || !keys.every((k) => ENV_KEY.test(k))) {
        return `keys must be at most ${MAX_KEYS} names of the form FLANNEL_*`;
      }
      return pathCheck(ctx, 'file', path);
    },
    run: (_ctx, path: string, keys: string[]) => {
      let text: string;
      try {
        text = readRegularFile(path, { maxBytes: MAX_ENV_BYTES, what: 'env file' }).toString('utf8');
      } catch (e) {
        throw refused(e);
      }
      return parseEnvLines(text, keys);
    },
  },
  save: {
    grant,
    check: (ctx, dir: string, name: string) => pathCheck(ctx, 'dir', dir) ?? nameCheck(ctx, name, 'save'),
    // a config saved by an earlier ADD of this container (a repeated ADD) is
    // that attachment's: the undo of this save leaves it
    creates: (ctx, dir: string, name: string) => [{ kind: 'saved-file', plugin: ctx.owner, dir, name, ...(lstatOrNull(join(dir, name)) ? { existed: true } : {}) }],
    run: (_ctx, dir: string, name: string, content: string) => saveFile(dir, name, content),
  },
  load: {
    grant, reads: true,
    check: (ctx, dir: string, name: string) => pathCheck(ctx, 'dir', dir) ?? nameCheck(ctx, name, 'load'),
    run: (_ctx, dir: string, name: string) => (ourDir(dir, false) ? readSaved(join(dir, name)) : undefined),
  },
  remove: {
    grant,
    check: (ctx, dir: string, name: string) => pathCheck(ctx, 'dir', dir) ?? nameCheck(ctx, name, 'remove'),
    removes: (_ctx, dir: string, name: string) => matches(dir, name),
    run: (_ctx, dir: string, name: string) => {
      if (!ourDir(dir, false)) return;
      removeFile(dir, name);
      fsyncDir(dir);
    },
  },
  list: {
    grant, reads: true,
    check: (ctx, dir: string) => pathCheck(ctx, 'dir', dir),
    run: (_ctx, dir: string) => {
      if (!ourDir(dir, false)) return [];
      return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isFile() && NAME.test(d.name)).map((d) => d.name).sort();
    },
  },
};

// A failed ADD, a DEL whose plugin left it, or GC of a dead attachment: the saved config goes.
declareUndo('saved-file', (e, _k, mode) => {
  const dir = String(e.dir), name = String(e.name);
  if (!isAbsolute(dir) || !NAME.test(name) || (e.existed && mode === 'failed-add')) return null;
  return removeFile(dir, name) ? `files.remove ${join(dir, name)}` : null;
});
