// After a plugin's DEL (and for GC), remove whatever the ledger says the
// attachment created and is still there: the plugin may have crashed
// half-way, or never been told. Shared objects (the bridge, its gateway
// address) are only forgotten, never removed, as the reference leaves them.
import type { AuditLog } from './gate/audit.js';
import { Ledger, type LedgerEntry } from './gate/ledger.js';
import type { Policy } from './gate/policy.js';
import type { NetConf } from './cni/config.js';
import { VALID_ATTACHMENTS } from './cni/config.js';
import type { Namespaces } from './capabilities/namespaces.js';
import { Rtnl } from './kernel/rtnl.js';
import { masqueradeDel } from './kernel/masquerade.js';
import { parseMasquerade } from './capabilities/firewall.js';
import { spoofCheckDel } from './kernel/spoofcheck.js';
import { nowMs } from './lazy.js';
import { sweepQdisc } from './capabilities/tc.js';

function removeEntry(e: LedgerEntry, rtnl: () => Rtnl): string | null {
  // Made in the container namespace: it goes with the namespace.
  if (e.kind === 'link' && e.ns === 'container') return null;
  if (e.kind === 'qdisc') return sweepQdisc(e, rtnl());
  if (e.kind === 'link' && (e.linkKind === 'veth' || e.linkKind === 'ifb')) {
    try {
      rtnl().deleteLink(e.name);
      return `links.remove ${e.name}`;
    } catch {
      return null; // already gone, usually with its container
    }
  }
  if (e.kind === 'masquerade') {
    masqueradeDel([parseMasquerade(e)]);
    return `firewall.masquerade-del ${e.source}`;
  }
  if (e.kind === 'spoofcheck') {
    spoofCheckDel([{ port: e.port, mac: e.mac }]);
    return `firewall.mac-spoof-check-del ${e.port}`;
  }
  return null;
}

function sweep(ledger: Ledger, only: (e: LedgerEntry) => boolean, audit: AuditLog, rtnl: () => Rtnl, who: { containerId: string; network: string; command: string }): void {
  for (const e of ledger.entries.filter(only)) {
    const t0 = nowMs();
    let outcome = 'ok';
    let did: string | null = null;
    try {
      did = removeEntry(e, rtnl);
    } catch (err) {
      outcome = `error: ${(err as Error).message}`;
    }
    if (did) {
      audit.write({
        time: new Date().toISOString(), plugin: 'cni-wasm', sha256: '', command: who.command,
        containerId: who.containerId, network: who.network, call: `sweep.${did.split(' ')[0]}`,
        args: { entry: e }, verdict: 'allow', outcome, ms: +(nowMs() - t0).toFixed(3),
      });
    }
  }
  ledger.forget(only);
}

export function sweepAttachment(ledger: Ledger, type: string, audit: AuditLog, ns: Namespaces, containerId: string, network: string): void {
  if (!ledger.entries.some((e) => e.plugin === type)) return;
  sweep(ledger, (e) => e.plugin === type, audit, () => ns.rtnl('host'), { containerId, network, command: 'DEL' });
}

/** GC: attachments the runtime no longer lists lose everything they made. */
export function gcAttachments(policy: Policy, conf: NetConf, audit: AuditLog): void {
  const valid = new Set((conf[VALID_ATTACHMENTS] ?? []).map((a) => `${a.containerID}\u0000${a.ifname}`));
  const opened: Rtnl[] = [];
  const rtnl = () => opened[0] ?? (opened[0] = Rtnl.open(null));
  try {
    for (const f of Ledger.listAttachments(policy.stateDir, conf.name)) {
      if (valid.has(`${f.containerId}\u0000${f.ifname}`)) continue;
      const ledger = new Ledger(policy.stateDir, conf.name, f.containerId, f.ifname);
      sweep(ledger, () => true, audit, rtnl, { containerId: f.containerId, network: conf.name, command: 'GC' });
    }
  } finally {
    opened[0]?.close();
  }
}
