// The one way the host reads a file a plugin or a policy names: a regular
// file, not followed through a symlink, opened without blocking (a FIFO or a
// device never hangs the call), and read up to a cap (/dev/zero or a huge
// file never exhausts the host). fstat on the open descriptor decides, so
// the file checked is the file read.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';

export class FileRefused extends Error {
  constructor(public readonly code: string, message: string) { super(message); }
}

export interface ReadOptions {
  /** refuse a file larger than this many bytes */
  maxBytes: number;
  /** what the file is, for messages ("resolv.conf", "component") */
  what: string;
  /** also require: owned by this process's user and writable by no one else */
  ownedByUs?: boolean;
}

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK; // libuv adds O_CLOEXEC

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

export function checkOwnership(st: Stats, path: string, what: string): void {
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) throw new FileRefused('EPERM', `${what} ${path} is owned by uid ${st.uid}, not by this host (uid ${uid}); refusing it`);
  if (st.mode & 0o022) throw new FileRefused('EPERM', `${what} ${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); refusing it`);
}

/** Reads a regular file, bounded; throws FileRefused with an errno-like code. */
export function readRegularFile(path: string, o: ReadOptions): Buffer {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ELOOP') throw new FileRefused('ELOOP', `${o.what} ${path} is a symbolic link; refusing to follow it`);
    if (err.code === 'ENOENT') throw new FileRefused('ENOENT', `open ${path}: no such file or directory`);
    if (err.code === 'EACCES') throw new FileRefused('EACCES', `open ${path}: permission denied`);
    if (err.code === 'ENXIO') throw new FileRefused('EINVAL', `${o.what} ${path} is not a regular file`);
    throw new FileRefused(err.code ?? 'EIO', `open ${path}: ${err.message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileRefused('EINVAL', `${o.what} ${path} is ${kind(st)}, not a regular file; refusing to read it`);
    if (o.ownedByUs) checkOwnership(st, path, o.what);
    if (st.size > o.maxBytes) throw new FileRefused('EFBIG', `${o.what} ${path} is ${st.size} bytes; the limit is ${o.maxBytes}`);
    // read at most the cap (+1 to notice a file that grew after fstat)
    const buf = Buffer.allocUnsafe(Math.min(st.size, o.maxBytes) + 1);
    let n = 0;
    for (;;) {
      let got: number;
      try {
        got = readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EAGAIN') throw new FileRefused('EAGAIN', `${o.what} ${path} would block; refusing to wait for it`);
        throw new FileRefused(err.code ?? 'EIO', `read ${path}: ${err.message}`);
      }
      if (got === 0) break;
      n += got;
      if (n > o.maxBytes) throw new FileRefused('EFBIG', `${o.what} ${path} is larger than the limit of ${o.maxBytes} bytes`);
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** lstat without following; null when absent. */
export function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw e;
  }
}

/** A directory this host keeps its own files in: a real dir (no symlink), ours, not writable by others. */
export function checkPrivateDir(path: string, what: string): void {
  const st = lstatOrNull(path);
  if (!st) throw new FileRefused('ENOENT', `${what} ${path} does not exist`);
  if (!st.isDirectory()) throw new FileRefused('EINVAL', `${what} ${path} is ${kind(st)}, not a directory; refusing it`);
  checkOwnership(st, path, what);
}
