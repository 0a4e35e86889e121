// What each attachment created in the host namespace. It is what lets a
// plugin change a host object at all (ownership), and what DEL and GC use to
// remove exactly what ADD made, even when a plugin crashed half-way.
// One small JSON file per attachment, replaced atomically on every change.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export type LedgerEntry =
  /** ns 'container': made in the container namespace (an IFB); it goes with the namespace */
  | { kind: 'link'; name: string; linkKind: string; plugin: string; ns?: 'container' }
  | { kind: 'address'; link: string; cidr: string; plugin: string }
  | { kind: 'route'; dst: string; gw: string; dev: string; plugin: string }
  | { kind: 'masquerade'; network: string; source: string; exclude: string; plugin: string }
  /** a host port under MAC spoof check (port . mac in the bridge table cni_wasm_spoof) */
  | { kind: 'spoofcheck'; port: string; mac: string; plugin: string }
  /** a qdisc this attachment put on a host link it did not create (the host veth);
   *  ifindex tells the link from a later one of the same name */
  | { kind: 'qdisc'; link: string; ifindex: number; parent: 'root' | 'ingress'; plugin: string };

export interface LedgerFile {
  network: string;
  containerId: string;
  ifname: string;
  entries: LedgerEntry[];
}

export function attachmentKey(containerId: string, ifname: string): string {
  return `${containerId}-${ifname}`;
}

export class Ledger {
  private doc: LedgerFile;
  private readonly file: string;

  constructor(stateDir: string, network: string, containerId: string, ifname: string) {
    const dir = join(stateDir, 'ledger', network);
    this.file = join(dir, attachmentKey(containerId, ifname) + '.json');
    this.doc = Ledger.read(this.file) ?? { network, containerId, ifname, entries: [] };
  }

  static read(file: string): LedgerFile | null {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as LedgerFile;
    } catch {
      return null;
    }
  }

  static listAttachments(stateDir: string, network: string): LedgerFile[] {
    const dir = join(stateDir, 'ledger', network);
    let names: string[] = [];
    try { names = readdirSync(dir).filter((n) => n.endsWith('.json')); } catch { return []; }
    return names.map((n) => Ledger.read(join(dir, n))).filter((x): x is LedgerFile => x !== null);
  }

  get entries(): readonly LedgerEntry[] { return this.doc.entries; }

  ownsLink(name: string, ns: 'host' | 'container' = 'host'): boolean {
    return this.doc.entries.some((e) => e.kind === 'link' && e.name === name && (e.ns ?? 'host') === ns);
  }

  add(...e: LedgerEntry[]): void {
    this.doc.entries.push(...e);
    this.save();
  }

  /** Forgets entries matching `pred`; the file goes when nothing is left. */
  forget(pred: (e: LedgerEntry) => boolean): void {
    const before = this.doc.entries.length;
    this.doc.entries = this.doc.entries.filter((e) => !pred(e));
    if (this.doc.entries.length !== before) this.save();
  }

  renameLink(from: string, to: string): void {
    for (const e of this.doc.entries) if (e.kind === 'link' && e.name === from && !e.ns) e.name = to;
    this.save();
  }

  private save(): void {
    if (this.doc.entries.length === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    mkdirSync(join(this.file, '..'), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.doc) + '\n');
    renameSync(tmp, this.file);
  }
}
