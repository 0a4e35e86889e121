// The two namespaces a plugin can name: 'host' (where this process runs) and
// 'container' (CNI_NETNS). Sockets open lazily: most calls touch only one.
//
// CNI_NETNS is checked when the invocation starts, before any plugin runs:
// it must be a network namespace file (nsfs, of type net: checked by the
// addon on the descriptor it opened with O_NONBLOCK, so a FIFO, a device or
// a regular file is refused at once instead of hanging), and it must not be
// the host's own namespace (same st_dev/st_ino as /proc/self/ns/net), or
// every "container" grant would act on the host. A path that is not a
// network namespace is CNI error 4 (a bad CNI_NETNS; the reference plugins
// say 999 with the same "failed to open netns" text); the plugin's own
// namespace is 8, libcni's ErrInvalidNetNS (the 1.1.1 reference plugins
// accept it). A path that does not exist
// is left for later: DEL of a vanished namespace must still succeed.
import { fstatSync, statSync } from 'node:fs';
import { closeFd, homeNetnsFd, openNetns } from '../kernel/native.js';
import { Rtnl } from '../kernel/rtnl.js';
import { HostError } from '../gate/gate.js';
import { CniError, CniErrorCode } from '../cni/errors.js';

/** The fd of CNI_NETNS after the checks above, or null when the path does not exist. */
export function openContainerNetns(path: string): number | null {
  let fd: number;
  try {
    fd = openNetns(path);
  } catch (e) {
    const err = e as { code?: string; message?: string; detail?: string };
    if (err.code === 'ENOENT') return null;
    throw new CniError(CniErrorCode.InvalidEnvironment, `failed to open netns "${path}": ${String(err.message ?? e).replace(/^open [^:]*: /, '')}`,
      'CNI_NETNS must name a network namespace file (/run/netns/NAME or /proc/PID/ns/net)');
  }
  const ours = fstatSync(homeNetnsFd());
  const theirs = fstatSync(fd);
  if (ours.dev === theirs.dev && ours.ino === theirs.ino) {
    closeFd(fd);
    throw new CniError(CniErrorCode.InvalidNetns, `CNI_NETNS "${path}" is the plugin's own (the host's) network namespace; refusing to treat it as the container's`,
      "plugin's netns and netns from CNI_NETNS should not be the same");
  }
  return fd;
}

export type Role = 'host' | 'container';

/**
 * The host's rtnetlink socket, kept from one call to the next (a daemon
 * worker serves thousands; opening one costs ~0.1 ms): the thread's own
 * namespace is the host's, and a reply to a request abandoned earlier is
 * skipped by its sequence number. Keyed by the namespace it was opened in,
 * so a thread whose namespace is another never gets it.
 */
let hostSocket: { rtnl: Rtnl; dev: number; ino: number } | null = null;
function hostRtnl(): Rtnl {
  const here = statSync('/proc/thread-self/ns/net');
  if (hostSocket && (hostSocket.dev !== here.dev || hostSocket.ino !== here.ino)) {
    hostSocket.rtnl.close();
    hostSocket = null;
  }
  hostSocket ??= { rtnl: Rtnl.open(null), dev: here.dev, ino: here.ino };
  return hostSocket.rtnl;
}

export class Namespaces {
  private containerFdCache: number | null = null;
  private readonly sockets = new Map<Role, Rtnl>();

  constructor(public readonly containerPath: string) {
    if (containerPath) this.containerFdCache = openContainerNetns(containerPath);
  }

  /** fd of the container netns, or null for the host (the current netns). */
  fd(ns: Role): number | null {
    if (ns === 'host') return null;
    if (this.containerFdCache === null) {
      if (!this.containerPath) throw new HostError('ENETNS', 'no container network namespace was given (CNI_NETNS is empty)');
      let fd: number | null;
      try {
        fd = openContainerNetns(this.containerPath);
      } catch (e) {
        throw new HostError('ENETNS', e instanceof CniError ? e.msg : (e as Error).message);
      }
      if (fd === null) throw new HostError('ENETNS', `the container network namespace ${this.containerPath} is gone`);
      this.containerFdCache = fd;
    }
    return this.containerFdCache;
  }

  /** fd of the host netns, for placing a veth peer there */
  hostFd(): number { return homeNetnsFd(); }

  rtnl(ns: Role): Rtnl {
    let s = this.sockets.get(ns);
    if (!s) {
      s = ns === 'host' ? hostRtnl() : Rtnl.open(this.fd(ns));
      this.sockets.set(ns, s);
    }
    return s;
  }

  close(): void {
    for (const [ns, s] of this.sockets) if (ns !== 'host') s.close();
    this.sockets.clear();
    if (this.containerFdCache !== null) { closeFd(this.containerFdCache); this.containerFdCache = null; }
  }
}
