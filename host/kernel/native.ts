// Typed access to the native addon (host/kernel/native/addon.c), plus the one
// namespace-switching helper every kernel module shares.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { KernelError } from './types.js';

interface Addon {
  setns(fd: number): void;
  openNetns(path: string): number;
  close(fd: number): void;
  nlOpen(protocol?: number): number;
  /** Returns full netlink messages (nlmsghdr included), ACK/DONE excluded. */
  nlRequest(fd: number, req: Buffer): Buffer[];
  nlBatch(fd: number, batch: Buffer): void;
  flock(fd: number, exclusive: boolean, wait?: boolean): void;
  funlock(fd: number): void;
  flockWithin(fd: number, ms: number): boolean;
  storeRead(dirFd: number, names: string[], maxBytes: number, needles: Buffer[] | null): (string | 0 | 1 | 2)[];
  storeWrite(dirFd: number, tmp: string, name: string, value: string, mode: 0 | 1): boolean;
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  udpOpen(ifname: string): number;
  udpSend(fd: number, data: Buffer, ip: string, port: number): void;
  udpRecv(fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; source: string } | null;
  ifHwaddr(fd: number, ifname: string): Buffer;
  unixExchange(path: string, banner: string, req: Buffer, timeoutMs: number, maxBytes: number): Buffer;
  unixConnect(path: string, timeoutMs: number): number;
  nlStart(fd: number, req: Buffer): object;
  nlJoin(handle: object): void;
  nlDone(handle: object): boolean;
  nlWatchOpen(): number;
  nlWaitGone(fd: number, handle: object, name: string, timeoutMs: number): 0 | 1 | 2;
  unixListen(path: string, backlog: number): number;
  acceptWatch(listenFd: number): number;
  acceptWait(watchFd: number, listenFd: number, waitMs: number, ioTimeoutMs: number): number;
  readFrame(fd: number, maxBytes: number, timeoutMs: number): Buffer;
}

const ADDON = join('build', 'Release', 'cniwasm_native.node');
let addon: Addon | undefined;

function findAddon(): string {
  const p = join(packageRoot(), ADDON);
  if (!existsSync(p)) throw new KernelError('ENOENT', `native addon ${p} not found (run npm ci, or node-gyp rebuild)`);
  return p;
}

// Loaded on first use so that importing the kernel layer stays cheap.
function load(): Addon {
  if (!addon) addon = createRequire(import.meta.url)(findAddon()) as Addon;
  return addon;
}

/** Re-throws an addon error as a KernelError whose message names the operation. */
export function kernelError(e: unknown, what: string): KernelError {
  if (e instanceof KernelError) return e;
  const err = e as { code?: unknown; errno?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : 'EIO';
  const errno = typeof err?.errno === 'number' ? Math.abs(err.errno) : 0;
  return new KernelError(code, `${what}: ${String(err?.message ?? e)}`, errno);
}

function call<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw kernelError(e, what);
  }
}

export const setns = (fd: number): void => call('setns', () => load().setns(fd));
export const openNetns = (path: string): number => call(`open ${path}`, () => load().openNetns(path));
export const closeFd = (fd: number): void => call('close', () => load().close(fd));
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
/** A netlink socket bound in the thread's current netns (NETLINK_ROUTE unless told). */
export const nlOpen = (protocol = NETLINK_ROUTE): number => call('netlink socket', () => load().nlOpen(protocol));
/** Sends one request (caller sets seq, flags incl. NLM_F_ACK or NLM_F_DUMP); returns full reply messages. */
export const nlRequest = (fd: number, req: Buffer): Buffer[] => load().nlRequest(fd, req);
/**
 * Sends one nfnetlink batch (BATCH_BEGIN, changes each with NLM_F_ACK,
 * BATCH_END; consecutive seqs) and returns once every change is acked;
 * throws the first error. The kernel applies it all or nothing.
 */
export const nlBatch = (fd: number, batch: Buffer): void => load().nlBatch(fd, batch);
/**
 * Sends one acked request from a thread of its own and returns at once; the
 * socket must serve nothing else until nlJoin returns. For requests the
 * kernel answers long after it made the change (a link deletion waits for
 * RCU grace periods), so the caller can work meanwhile.
 */
export const nlStart = (fd: number, req: Buffer): object => load().nlStart(fd, req);
/** Waits for a request nlStart sent; throws what the kernel answered, as nlRequest does. */
export const nlJoin = (handle: object): void => load().nlJoin(handle);
/** Whether the kernel has answered a request nlStart sent (nlJoin will not wait). */
export const nlDone = (handle: object): boolean => load().nlDone(handle);
/** A socket of the thread's netns that hears the kernel's link announcements (RTNLGRP_LINK). */
export const nlWatchOpen = (): number => call('netlink watch socket', () => load().nlWatchOpen());
/**
 * Waits until the link `name` is announced deleted on a watch socket (1: it
 * is out of the kernel's tables), or the kernel answered the request (2:
 * nlJoin says how), or timeoutMs passed (0).
 */
export const nlWaitGone = (fd: number, handle: object, name: string, timeoutMs: number): 0 | 1 | 2 => load().nlWaitGone(fd, handle, name, timeoutMs);

// The daemon's socket, served by its workers (host/kernel/native/serve.inc.c).
/** A listening unix socket at `path` (which must not exist), mode 0600. */
export const unixListen = (path: string, backlog: number): number => call(`listen on ${path}`, () => load().unixListen(path, backlog));
/** An epoll fd for one worker's acceptWait: a new connection wakes one idle worker, not all. */
export const acceptWatch = (listenFd: number): number => call('watch the listening socket', () => load().acceptWatch(listenFd));
/** One connection (blocking; writes time out after ioTimeoutMs), or -1 when none came within waitMs. */
export const acceptWait = (watchFd: number, listenFd: number, waitMs: number, ioTimeoutMs: number): number =>
  call('accept', () => load().acceptWait(watchFd, listenFd, waitMs, ioTimeoutMs));
/** One length-prefixed frame, whole within timeoutMs. */
export const readFrame = (fd: number, maxBytes: number, timeoutMs: number): Buffer => call('read request', () => load().readFrame(fd, maxBytes, timeoutMs));
/** Blocks until the lock is held. */
export const flock = (fd: number, exclusive: boolean, wait = true): void => call('flock', () => load().flock(fd, exclusive, wait));
export const funlock = (fd: number): void => call('funlock', () => load().funlock(fd));
// The store's files (host/kernel/native/store.inc.c, used by host/capabilities/store.ts).
/** An exclusive flock, waited for at most ms (short backoff): whether it is held. */
export const flockWithin = (fd: number, ms: number): boolean => call('flock', () => load().flockWithin(fd, ms));
/** Each name's content, or 0 (absent), 1 (not a bounded regular file), 2 (holds none of needles). */
export const storeRead = (dirFd: number, names: string[], maxBytes: number, needles: Buffer[] | null = null): (string | 0 | 1 | 2)[] =>
  call('read', () => load().storeRead(dirFd, names, maxBytes, needles));
/** Writes a temp file and renames it to name (mode 1: only if name does not exist; false then). */
export const storeWrite = (dirFd: number, tmp: string, name: string, value: string, mode: 0 | 1): boolean =>
  call(`write ${name}`, () => load().storeWrite(dirFd, tmp, name, value, mode));

/** Who is at the other end of a unix socket (SO_PEERCRED). */
export const peerCred = (fd: number): { pid: number; uid: number; gid: number } => call('SO_PEERCRED', () => load().peerCred(fd));

// The DHCP daemon's sockets (host/kernel/native/dhcp.inc.c).
/** UDP port 68 on `ifname` of the thread's current netns (use withNetns). */
export const udpOpen = (ifname: string): number => call(`DHCP socket on ${ifname}`, () => load().udpOpen(ifname));
export const udpSend = (fd: number, data: Buffer, ip: string, port: number): void => call(`send to ${ip}:${port}`, () => load().udpSend(fd, data, ip, port));
export const udpRecv = (fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; source: string } | null => call('receive', () => load().udpRecv(fd, maxBytes, timeoutMs));
export const ifHwaddr = (fd: number, ifname: string): Buffer => call(`hardware address of ${ifname}`, () => load().ifHwaddr(fd, ifname));
/** One request to a root-owned unix socket that greets with `banner`; the reply read to EOF. */
export const unixExchange = (path: string, banner: string, req: Buffer, timeoutMs: number, maxBytes: number): Buffer =>
  call(path, () => load().unixExchange(path, banner, req, timeoutMs, maxBytes));
/** A blocking unix stream socket connected to path; reads and writes time out after timeoutMs. */
export const unixConnect = (path: string, timeoutMs: number): number => call(`connect ${path}`, () => load().unixConnect(path, timeoutMs));

let homeFd: number | undefined;
// The netns the main thread is in right now; null = home.
let current: number | null = null;

/** fd of the netns the process started in; opened before the first switch. */
export function homeNetnsFd(): number {
  if (homeFd === undefined) homeFd = openNetns('/proc/self/ns/net');
  return homeFd;
}

/**
 * Runs fn with the main thread inside the netns nsFd (null: where we are).
 * Sockets created, sync fs calls on /proc/sys and spawnSync children made in
 * fn act in that netns. Nests: on exit the previous netns is restored.
 */
export function withNetns<T>(nsFd: number | null, fn: () => T): T {
  if (nsFd === null) return fn();
  const home = homeNetnsFd();
  const prev = current;
  setns(nsFd);
  current = nsFd;
  try {
    return fn();
  } finally {
    try {
      setns(prev ?? home);
      current = prev;
    } catch (e) {
      // Carrying on in the wrong netns could change the wrong host: stop hard.
      process.stderr.write(`cni-wasm: fatal: cannot return to the original netns: ${String(e)}\n`);
      process.exit(70);
    }
  }
}

