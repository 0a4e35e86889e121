// The sweep: undo what a ledger says an attachment made and still holds.
// It runs after every DEL and GC and after an ADD that failed or ran out of
// time, for every kind of object a ledger can hold. The undo of each kind is
// declared once here; shared objects (`keep`: a bridge, its gateway address)
// are only forgotten at DEL, as the reference leaves them, and are removed
// after a failed ADD only when that ADD made them and nothing else uses them.
import type { AuditLog } from './gate/audit.js';
import type { Ledger, LedgerEntry } from './gate/ledger.js';
import { Rtnl } from './kernel/rtnl.js';
import { masqueradeDel } from './kernel/masquerade.js';
import { parseMasquerade } from './capabilities/firewall.js';
import { spoofCheckDel } from './kernel/spoofcheck.js';
import { nowMs } from './lazy.js';
import { KernelError } from './kernel/types.js';
import { groupLocks, heldElsewhere } from './capabilities/groups.js';

/** What an undo may use: sockets in the two namespaces (the container one may be gone). */
export interface SweepKernel {
  rtnl(ns: 'host' | 'container'): Rtnl;
  /** runs a delegated plugin's DEL (the lease an interrupted ADD took) */
  delegateDel?(type: string, config: string): void;
}

export type SweepMode = 'del' | 'failed-add' | 'gc';

const gone = (e: unknown) => e instanceof KernelError && (e.code === 'ENODEV' || e.code === 'ENOENT' || e.code === 'ESRCH' || e.code === 'ENETNS')
  || (e as { code?: string })?.code === 'ENETNS';

/** Per kind: undo one entry; return what was done, or null when nothing was left to do. */
const UNDO: Record<string, (e: LedgerEntry, k: SweepKernel, mode: SweepMode) => string | null> = {
  link: (e, k, mode) => {
    const ns = e.ns ?? 'host';
    const name = String(e.name);
    // the ifindex the kernel gave the link when the attachment made it (none in older ledgers)
    const made = typeof e.index === 'number' && e.index > 0 ? e.index : 0;
    try {
      let now = 0;
      if (e.keep) {
        // a shared bridge: only a failed ADD takes back the one it made, and only while no port uses it
        if (mode !== 'failed-add') return null;
        const l = k.rtnl(ns).listLinks();
        const me = l.find((x) => x.name === name);
        if (!me || l.some((x) => x.masterIndex === me.index)) return null;
        now = me.index;
      } else if (made) {
        now = k.rtnl(ns).getLink(name).index;
      }
      // The name is only a name: removed with its veth peer or its namespace,
      // or by an operator, it may be someone else's link now. Left alone.
      if (made && now !== made) return `links.left ${ns} ${name}: not the link this attachment made (ifindex ${made}), someone else's now (ifindex ${now})`;
      // by ifindex when known: exactly the link checked, whatever happens to the name meanwhile
      k.rtnl(ns).deleteLink(name, made);
      return `links.remove ${ns} ${name}`;
    } catch (err) {
      if (gone(err)) return null; // already gone, usually with its container
      throw err;
    }
  },
  // the gateway address goes with the bridge, or stays for the network
  address: () => null,
  masquerade: (e) => {
    masqueradeDel([parseMasquerade({ network: String(e.network), source: String(e.source), exclude: String(e.exclude) })]);
    return `firewall.masquerade-del ${e.source}`;
  },
  spoofcheck: (e) => {
    spoofCheckDel([{ port: String(e.port), mac: String(e.mac) }]);
    return `firewall.mac-spoof-check-del ${e.port}`;
  },
  route: (e, k) => {
    try {
      const r = k.rtnl('host');
      const dev = r.getLink(String(e.dev)).index;
      const dst = String(e.dst);
      r.delRoute({ family: dst.includes(':') ? 6 : 4, dst, gw: e.gw ? String(e.gw) : undefined, ifindex: dev });
      return `routes.del ${dst}`;
    } catch (err) {
      if (gone(err)) return null;
      throw err;
    }
  },
  // an IPAM lease taken by an ADD that did not finish: released by the IPAM plugin's DEL
  delegation: (e, k, mode) => {
    if (mode !== 'failed-add' || !k.delegateDel) return null;
    k.delegateDel(String(e.type), String(e.config));
    return `delegate.run del ${e.type}`;
  },
};

/** Registers the undo of a ledger kind a host interface declares. */
export function declareUndo(kind: string, undo: (e: LedgerEntry, k: SweepKernel, mode: SweepMode) => string | null): void {
  UNDO[kind] = undo;
}

export interface SweepWho { containerId: string; network: string; command: string }

/**
 * Undoes, newest first, every live entry `only` selects, and forgets it. An
 * undo that fails is recorded and its entry kept, so a later DEL or GC tries again.
 */
export function sweep(ledger: Ledger, only: (e: LedgerEntry, id: number) => boolean, mode: SweepMode, k: SweepKernel, audit: AuditLog, who: SweepWho): void {
  const live = ledger.liveEntries.filter((l) => only(l.entry, l.id)).reverse();
  // Entries of a shared group (host/capabilities/groups.ts) are decided under the group's lock:
  // undone (whatever `keep` says) by the last holder only, else just forgotten.
  let locks: { close(): void } | null = null;
  let lockError = '';
  if (live.some((l) => typeof l.entry.group === 'string')) {
    try { locks = groupLocks(ledger, live.map((l) => l.entry), Date.now() + 3000); } catch (err) { lockError = (err as Error).message; }
  }
  try {
  for (const { entry } of live) {
    const t0 = nowMs();
    const undo = UNDO[entry.kind];
    let did: string | null = null;
    let outcome = 'ok';
    try {
      if (!undo) throw new Error(`no undo is declared for ledger kind '${entry.kind}'`);
      if (typeof entry.group !== 'string') did = undo(entry, k, mode);
      else if (!locks) throw new Error(`shared group '${entry.group}' left for a later sweep: ${lockError}`);
      else if (!heldElsewhere(ledger.file, entry.plugin, entry.group)) did = undo({ ...entry, keep: false }, k, mode);
    } catch (err) {
      outcome = `error: ${(err as Error).message}`;
    }
    if (did || outcome !== 'ok') {
      // "links.left host x: why": the call recorded, and why
      const why = did?.includes(': ') ? did.slice(did.indexOf(': ') + 2) : undefined;
      audit.write({
        // the host acts, on what the component with this digest made
        time: new Date().toISOString(), plugin: 'cni-wasm', sha256: typeof entry.sha256 === 'string' ? entry.sha256 : '', command: who.command,
        containerId: who.containerId, network: who.network, call: `sweep.${(did ?? entry.kind).split(' ')[0]}`,
        args: why !== undefined ? { entry, why } : { entry }, verdict: 'allow', outcome, ms: +(nowMs() - t0).toFixed(3),
      });
    }
    if (outcome === 'ok') ledger.forget((x) => x === entry);
  }
  } finally {
    locks?.close();
  }
}

/** Sockets opened on first use, closed by the caller. */
export function lazyKernel(hostFd: number | null, containerFd: () => number | null): SweepKernel & { close(): void } {
  const open = new Map<string, Rtnl>();
  return {
    rtnl(ns) {
      let r = open.get(ns);
      if (!r) {
        const fd = ns === 'host' ? hostFd : containerFd();
        if (ns === 'container' && fd === null) throw new KernelError('ENETNS', 'the container namespace is gone');
        r = Rtnl.open(fd);
        open.set(ns, r);
      }
      return r;
    },
    close() { for (const r of open.values()) r.close(); open.clear(); },
  };
}
