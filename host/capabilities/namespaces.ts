// The two namespaces a plugin can name: 'host' (where this process runs) and
// 'container' (CNI_NETNS). Sockets open lazily: most calls touch only one.
import { closeFd, homeNetnsFd, openNetns } from '../kernel/native.js';
import { Rtnl } from '../kernel/rtnl.js';
import { HostError } from '../gate/gate.js';

export type Role = 'host' | 'container';

export class Namespaces {
  private containerFdCache: number | null = null;
  private readonly sockets = new Map<Role, Rtnl>();

  constructor(public readonly containerPath: string) {}

  /** fd of the container netns, or null for the host (the current netns). */
  fd(ns: Role): number | null {
    if (ns === 'host') return null;
    if (this.containerFdCache === null) {
      if (!this.containerPath) throw new HostError('ENETNS', 'no container network namespace was given (CNI_NETNS is empty)');
      try {
        this.containerFdCache = openNetns(this.containerPath);
      } catch (e) {
        throw new HostError('ENETNS', `the container network namespace ${this.containerPath} is gone: ${(e as Error).message}`);
      }
    }
    return this.containerFdCache;
  }

  /** fd of the host netns, for placing a veth peer there */
  hostFd(): number { return homeNetnsFd(); }

  rtnl(ns: Role): Rtnl {
    let s = this.sockets.get(ns);
    if (!s) {
      s = Rtnl.open(this.fd(ns));
      this.sockets.set(ns, s);
    }
    return s;
  }

  close(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    if (this.containerFdCache !== null) { closeFd(this.containerFdCache); this.containerFdCache = null; }
  }
}
