// A call context for exercising the gate and the host-function declarations
// without root or a kernel: a real ledger in a temp dir, the real ownership
// rules, an audit that collects records, and whatever `run` the test gives.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CallContext, type HostInterface, bindInterface } from '../../host/gate/gate.js';
import { Ledger } from '../../host/gate/ledger.js';
import { type ObjectDecl, Ownership } from '../../host/gate/ownership.js';
import { type Grants, defaultPolicy } from '../../host/gate/policy.js';
import { links } from '../../host/capabilities/links.js';
import { Rtnl, closeFd, openNetns } from '../../host/kernel/index.js';
import { ROOT } from './cni.js';

export interface FakeCall {
  ctx: CallContext;
  audit: any[];
  dir: string;
  /** binds `iface` with runs replaced by recorders (no kernel is touched) */
  bind(iface: string, impl: HostInterface, params: Record<string, string[]>): Record<string, (...a: unknown[]) => any>;
  ran: string[];
}

/** Every fake call's temp dir, removed when the test process exits. */
const tempDirs: string[] = [];
process.on('exit', () => { for (const d of tempDirs) rmSync(d, { recursive: true, force: true }); });

export function fakeCall(opts: {
  type?: string; grants: Grants; objects?: ObjectDecl[]; config?: object; ifname?: string; network?: string; deadline?: number;
}): FakeCall {
  const dir = mkdtempSync(join(tmpdir(), 'gate-unit-'));
  tempDirs.push(dir);
  const network = opts.network ?? 'unitnet';
  const ifname = opts.ifname ?? 'eth0';
  const audit: any[] = [];
  const ledger = Ledger.open(dir, network, 'unit-container', ifname, Date.now() + 1000);
  const policy = { ...defaultPolicy(), stateDir: join(dir, 'state'), storeDir: join(dir, 'networks'), auditLog: join(dir, 'audit', 'audit.log'), pluginDirs: [join(dir, 'plugins')] };
  const ran: string[] = [];
  const ctx: CallContext = {
    plugin: { type: opts.type ?? 'rogue', sha256: 'f'.repeat(64), grants: opts.grants },
    command: 'ADD', containerId: 'unit-container', ifname, network, owner: opts.type ?? 'rogue',
    owned: Ownership.fromConfig(ifname, opts.objects ?? [], opts.config ?? {}),
    ledger, audit: { write: (r: any) => audit.push(r) } as any, ns: {} as any, policy, cniPath: [], depth: 0,
    deadline: opts.deadline ?? Date.now() + 60_000, session: new Map(),
    delegate: () => { throw new Error('no delegation here'); },
  };
  return {
    ctx, audit, dir, ran,
    bind(iface, impl, params) {
      const stubbed: HostInterface = {};
      for (const [k, f] of Object.entries(impl)) stubbed[k] = { ...f, run: (..._a: unknown[]) => { ran.push(`${iface}.${k}`); return undefined; } };
      const sigs = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, { wit: k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()), params: p, hasResult: true }]));
      return bindInterface(ctx, iface, stubbed, sigs) as any;
    },
  };
}

/**
 * The two namespaces of a plugin call, both made by the test (the "host" one
 * too: nothing touches the machine's own), open for real host functions.
 */
export class TestNamespaces {
  readonly fdH: number;
  readonly fdC: number;
  readonly rH: Rtnl;
  readonly rC: Rtnl;
  constructor(host: string, ctr: string) {
    this.fdH = openNetns(`/run/netns/${host}`);
    this.fdC = openNetns(`/run/netns/${ctr}`);
    this.rH = Rtnl.open(this.fdH);
    this.rC = Rtnl.open(this.fdC);
  }
  close(): void {
    for (const r of [this.rH, this.rC]) try { r.close(); } catch { /* closed */ }
    for (const fd of [this.fdH, this.fdC]) try { closeFd(fd); } catch { /* closed */ }
  }
}

/**
 * fakeCall with the real links functions behind the real gate, acting in
 * `nss`: `L` the bound interface, `end()` the end of the plugin call (its
 * sessions closed, as invoke's runPlugin does).
 */
export function realLinksCall(nss: TestNamespaces, opts: Parameters<typeof fakeCall>[0]) {
  const t = fakeCall(opts);
  (t.ctx as { ns: unknown }).ns = {
    rtnl: (ns: string) => (ns === 'host' ? nss.rH : nss.rC),
    fd: (ns: string) => (ns === 'host' ? nss.fdH : nss.fdC),
    hostFd: () => nss.fdH,
    close() { /* the test's sockets */ },
  };
  const sigs = JSON.parse(readFileSync(join(ROOT, 'dist/plugins/signatures.json'), 'utf8')).links;
  const L = bindInterface(t.ctx, 'links', links, sigs) as Record<string, (...a: unknown[]) => { tag: string; val: any }>;
  const end = () => { for (const s of t.ctx.session.values()) s.close(); t.ctx.session.clear(); };
  const records = (call: string) => t.audit.filter((r) => r.call === call);
  return { ...t, L, end, records };
}
