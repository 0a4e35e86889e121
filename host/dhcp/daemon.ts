// `dhcp daemon`: cni-wasm's DHCP daemon, what the reference's `dhcp daemon`
// is for its dhcp IPAM plugin. It serves the plugin's host function
// (host/capabilities/dhcp.ts) on a root-only unix socket (0600, and every
// peer's SO_PEERCRED uid must be 0), holds the leases, and keeps renewing
// them. The DHCP protocol itself (packets, DORA, renew/rebind, release)
// is the client component's (guest-plugins/dhcp/client), run by client.ts.
//
// Flags as the reference: -socketpath (default /run/cni/dhcp.sock),
// -broadcast, -timeout, -resendmax, -resendtimeout, -pidfile, -hostprefix;
// and -statedir: where leases persist (default <policy stateDir>/dhcp).
// Socket activation (LISTEN_FDS=1) is honoured.
//
// Beyond the reference: leases persist in <statedir>/leases.json (0600,
// written atomically), so a restarted daemon resumes renewing them and a DEL
// after a restart still releases (containernetworking/plugins #235, #767);
// CHECK reports the lease it holds and never acquires one.
//
// Lease operations run in worker threads (workers.ts), a few at once; the
// operations of one lease run one after another.
import net from 'node:net';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadPolicy, type Policy } from '../gate/policy.js';
import { peerCred } from '../kernel/native.js';
import { BANNER, DEFAULT_SOCKET, MAX_REQUEST, type DaemonLease, type DaemonReply, type DaemonRequest } from './protocol.js';
import { ClientFailure, type Target } from './client.js';
import { ClientWorkers } from './workers.js';

export interface DhcpDaemonOptions {
  socketPath: string;
  stateDir: string;
  pidfile: string;
  hostPrefix: string;
  broadcast: boolean;
  timeoutMs: number;
  resendMaxMs: number;
  resendTimeoutMs: number;
}

const MAX_LEASES = 4096;
const MAX_TIMER_MS = 0x7fffffff;
/** A lease operation started by a timer (renew, rebind) may take this long. */
const MAINTAIN_BUDGET_MS = 30_000;
/** Lease operations at once (each waits for a server, mostly). */
const WORKERS = 4;

const log = (s: string): void => { process.stderr.write(`${new Date().toISOString()} dhcp daemon[${process.pid}]: ${s}\n`); };

/** Go's time.ParseDuration for what these flags take: "10s", "1m30s", "500ms", "2h". */
export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0, at = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) { ms += Number(m[1]) * unit[m[2]]; at = re.lastIndex; }
  if (!s || at !== s.length) throw new Error(`invalid duration "${s}"`);
  return Math.round(ms);
}

/** Go's flag package: -name value, -name=value, --name; bools without a value. */
export function parseDaemonFlags(args: string[], policy: Policy): DhcpDaemonOptions {
  const o: DhcpDaemonOptions = {
    socketPath: '', stateDir: join(policy.stateDir, 'dhcp'), pidfile: '', hostPrefix: '', broadcast: false,
    timeoutMs: 10_000, resendMaxMs: 62_000, resendTimeoutMs: 208_000,
  };
  const strings: Record<string, (v: string) => void> = {
    socketpath: (v) => { o.socketPath = v; }, statedir: (v) => { o.stateDir = v; }, pidfile: (v) => { o.pidfile = v; }, hostprefix: (v) => { o.hostPrefix = v; },
    timeout: (v) => { o.timeoutMs = parseDuration(v); }, resendmax: (v) => { o.resendMaxMs = parseDuration(v); }, resendtimeout: (v) => { o.resendTimeoutMs = parseDuration(v); },
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('-') || a === '-' || a === '--') throw new Error(`unexpected argument "${a}"`);
    const [name, val] = a.replace(/^--?/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    if (name === 'broadcast') {
      if (val === undefined) o.broadcast = true;
      else if (/^(1|t|true|T|TRUE|True)$/.test(val)) o.broadcast = true;
      else if (/^(0|f|false|F|FALSE|False)$/.test(val)) o.broadcast = false;
      else throw new Error(`invalid boolean value "${val}" for -broadcast`);
      continue;
    }
    const set = strings[name];
    if (!set) throw new Error(`flag provided but not defined: -${name}`);
    const v = val ?? args[++i];
    if (v === undefined) throw new Error(`flag needs an argument: -${name}`);
    try { set(v); } catch (e) { throw new Error(`invalid value "${v}" for flag -${name}: ${(e as Error).message}`); }
  }
  o.socketPath = resolve(o.socketPath || DEFAULT_SOCKET);
  o.stateDir = resolve(o.stateDir);
  return o;
}

/** One lease as the daemon keeps (and persists) it. */
interface LeaseRecord extends Target {
  clientId: string;
  provide: { code: number; value: string }[];
  request: number[];
  /** the client component's lease document */
  lease: Record<string, unknown>;
  /** ms since the epoch of the next maintenance step; 0 for none (expired, interface gone) */
  nextAt: number;
}

/** The reference's client id: containerID/netName/ifName, at most 254 bytes. */
export function clientIdOf(containerId: string, network: string, ifname: string): string {
  const id = `${containerId}/${network}/${ifname}`;
  const b = Buffer.from(id);
  return b.length > 254 ? b.subarray(0, 254).toString('utf8') : id;
}

class LeaseBook {
  readonly leases = new Map<string, LeaseRecord>();
  private readonly file: string;
  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    this.file = join(dir, 'leases.json');
  }

  load(): void {
    if (!existsSync(this.file)) return;
    const st = statSync(this.file);
    if (!st.isFile() || st.size > 16 << 20) throw new Error(`${this.file} is not a lease file (not a regular file or over 16 MiB)`);
    const doc = JSON.parse(readFileSync(this.file, 'utf8')) as { leases?: LeaseRecord[] };
    for (const r of doc.leases ?? []) if (r && typeof r.clientId === 'string') this.leases.set(r.clientId, r);
  }

  /** write-then-rename, 0600: a crash leaves the old file or the new one */
  save(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify({ version: 1, leases: [...this.leases.values()] }, null, 1) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}

/** What the IPAM plugin gets: address, gateway, routes. */
function resultOf(lease: Record<string, unknown>): DaemonLease {
  const routes = Array.isArray(lease.routes) ? lease.routes as { dst: string; gw: string; onLink: boolean }[] : [];
  return { address: String(lease.address ?? ''), gateway: String(lease.router ?? ''), routes: routes.map((r) => ({ dst: r.dst, gw: r.gw, onLink: !!r.onLink })) };
}

export async function runDhcpDaemon(args: string[], policyFile?: string): Promise<void> {
  const policy = loadPolicy(policyFile);
  const o = parseDaemonFlags(args, policy);
  const book = new LeaseBook(o.stateDir);
  book.load();
  const timers = new Map<string, NodeJS.Timeout>();
  const workers = new ClientWorkers(WORKERS, log);
  const chains = new Map<string, Promise<unknown>>();

  /** One lease's operations, one after another. */
  function serial<T>(clientId: string, f: () => Promise<T>): Promise<T> {
    const p = (chains.get(clientId) ?? Promise.resolve()).then(f, f);
    const tail = p.catch(() => undefined);
    chains.set(clientId, tail);
    void tail.then(() => { if (chains.get(clientId) === tail) chains.delete(clientId); });
    return p;
  }

  async function client(r: LeaseRecord, op: string, budgetMs: number): Promise<Record<string, unknown>> {
    const d = await workers.run(policy, targetOf(r), clientInput(r, op, budgetMs), budgetMs);
    if (d.error) throw new ClientFailure(d.error.code, d.error.message);
    return d.out!;
  }

  const clientInput = (r: LeaseRecord, op: string, budgetMs: number): Record<string, unknown> => ({
    op, clientId: r.clientId, provide: r.provide, request: r.request, broadcast: o.broadcast,
    timeoutMs: o.timeoutMs, resendMaxMs: o.resendMaxMs, budgetMs, lease: r.lease,
  });
  const targetOf = (r: LeaseRecord): Target => ({ ...r, netns: o.hostPrefix + r.netns });

  function schedule(r: LeaseRecord): void {
    const old = timers.get(r.clientId);
    if (old) clearTimeout(old);
    timers.delete(r.clientId);
    if (!r.nextAt) return;
    const t = setTimeout(() => maintain(r.clientId), Math.min(MAX_TIMER_MS, Math.max(0, r.nextAt - Date.now())));
    t.unref?.();
    timers.set(r.clientId, t);
  }

  /** The component decides: renew, rebind, or nothing yet; the daemon keeps what it says. */
  function maintain(clientId: string): Promise<void> {
    return serial(clientId, () => maintainNow(clientId));
  }

  async function maintainNow(clientId: string): Promise<void> {
    const r = book.leases.get(clientId);
    if (!r) return;
    try {
      const out = await client(r, 'maintain', MAINTAIN_BUDGET_MS);
      if (out.lease && typeof out.lease === 'object') r.lease = out.lease as Record<string, unknown>;
      r.nextAt = Number(out.nextAt) || 0;
      if (out.event) log(`${clientId}: ${String(out.event)}${r.lease.address ? ` ${String(r.lease.address)}` : ''}${r.nextAt ? `, next step at ${new Date(r.nextAt).toISOString()}` : ''}`);
    } catch (e) {
      const f = e as ClientFailure;
      if (f.code === 'ENETNS' || f.code === 'ENODEV') {
        // as the reference: the interface is gone, maintenance ends (DEL still forgets it)
        log(`${clientId}: ${f.message}; lease maintenance stopped`);
        r.nextAt = 0;
      } else {
        log(`${clientId}: ${f.message}; trying again in 10s`);
        r.nextAt = Date.now() + 10_000;
      }
    }
    if (book.leases.get(clientId) !== r) return; // released meanwhile
    book.save();
    schedule(r);
  }

  async function handle(req: DaemonRequest): Promise<DaemonReply> {
    for (const k of ['containerId', 'network', 'ifname', 'netns'] as const) {
      // GC and STATUS name no attachment
      if (typeof req[k] !== 'string' || (k === 'network' || (req.op !== 'gc' && req.op !== 'ready' && k !== 'netns')) && !req[k]) return { error: { code: 'EINVAL', message: `request without ${k}` } };
    }
    const clientId = clientIdOf(req.containerId, req.network, req.ifname);
    const have = book.leases.get(clientId);
    const budget = Math.max(100, Math.min(Number((req as { budgetMs?: number }).budgetMs) || o.timeoutMs, o.resendTimeoutMs));
    if (req.op === 'check') {
      if (!have) return { error: { code: 'ENOENT', message: `the DHCP daemon holds no lease for ${clientId}` } };
      return { lease: resultOf(have.lease) };
    }
    if (req.op === 'ready') return {};
    if (req.op === 'gc') {
      const keep = new Set((Array.isArray(req.valid) ? req.valid : []).map((v) => clientIdOf(String(v[0]), req.network, String(v[1]))));
      const gone = [...book.leases.values()].filter((r) => r.network === req.network && !keep.has(r.clientId));
      for (const r of gone) log(`${r.clientId}: not a valid attachment of ${req.network} (GC)`);
      await Promise.all(gone.map((r) => serial(r.clientId, () => release(r.clientId, budget))));
      return {};
    }
    if (req.op === 'del') return serial(clientId, () => release(clientId, budget));
    if (req.op !== 'add') return { error: { code: 'EINVAL', message: `unknown operation '${String(req.op)}'` } };
    return serial(clientId, () => acquire(req, clientId, budget));
  }

  async function release(clientId: string, budget: number): Promise<DaemonReply> {
    const have = book.leases.get(clientId);
    if (!have) return {};
    try {
      await client(have, 'release', Math.min(budget, 3000));
      log(`${clientId}: released ${String(have.lease.address ?? '')}`);
    } catch (e) {
      // as the reference: the lease is forgotten all the same (the server lets it expire)
      log(`${clientId}: failed to release DHCP lease: ${(e as Error).message}`);
    }
    book.leases.delete(clientId);
    schedule({ ...have, nextAt: 0 });
    book.save();
    return {};
  }

  async function acquire(req: DaemonRequest, clientId: string, budget: number): Promise<DaemonReply> {
    const have = book.leases.get(clientId);
    if (have) {
      // the reference's l.Check(): the lease it has, maintenance looks at it now
      if (have.netns === req.netns) {
        have.nextAt = Math.min(have.nextAt || Date.now(), Date.now());
        setImmediate(() => maintain(clientId));
        return { lease: resultOf(have.lease) };
      }
      book.leases.delete(clientId);
    }
    if (book.leases.size >= MAX_LEASES) return { error: { code: 'ENOSPC', message: `the DHCP daemon already holds ${MAX_LEASES} leases` } };
    const rec: LeaseRecord = {
      clientId, containerId: req.containerId, network: req.network, ifname: req.ifname, netns: req.netns,
      provide: Array.isArray(req.provide) ? req.provide.slice(0, 32) : [], request: Array.isArray(req.request) ? req.request.slice(0, 64) : [],
      lease: {}, nextAt: 0,
    };
    log(`${clientId}: acquiring lease`);
    let out: Record<string, unknown>;
    try {
      out = await client(rec, 'acquire', budget);
    } catch (e) {
      const f = e as ClientFailure;
      return { error: { code: f.code ?? 'EIO', message: f.message } };
    }
    rec.lease = out.lease as Record<string, unknown>;
    rec.nextAt = Number(out.nextAt) || 0;
    book.leases.set(clientId, rec);
    book.save();
    schedule(rec);
    log(`${clientId}: lease acquired ${String(rec.lease.address)}, expiration is ${new Date(Number(rec.lease.expiresAt)).toISOString()}`);
    return { lease: resultOf(rec.lease) };
  }

  function serve(sock: net.Socket): void {
    let peer: { uid: number } | undefined;
    try { peer = peerCred((sock as unknown as { _handle: { fd: number } })._handle.fd); } catch { peer = undefined; }
    if (!peer || peer.uid !== 0) { sock.destroy(); return; }
    // a request arrives at once; its answer may take the caller's whole budget
    sock.setTimeout(10_000, () => { if (!chunks.length) sock.destroy(); });
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST) { sock.destroy(); return; }
      chunks.push(d);
    });
    sock.on('end', () => {
      let req: DaemonRequest;
      try {
        req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as DaemonRequest;
      } catch (e) {
        sock.end(JSON.stringify({ error: { code: 'EINVAL', message: `bad request: ${(e as Error).message}` } }));
        return;
      }
      handle(req).then(
        (reply) => { if (!sock.destroyed) sock.end(JSON.stringify(reply)); },
        (e) => { if (!sock.destroyed) sock.end(JSON.stringify({ error: { code: 'EIO', message: (e as Error).message } })); },
      );
    });
    sock.on('error', () => sock.destroy());
    sock.write(BANNER);
  }

  // resume: every lease we hold gets its next step (due ones at once)
  for (const r of book.leases.values()) {
    if (r.nextAt) log(`${r.clientId}: resuming lease ${String(r.lease.address ?? '')}`);
    schedule(r);
  }

  const server = net.createServer({ allowHalfOpen: true }, serve);
  const listenFd = process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS === '1' ? 3 : null;
  if (listenFd === null) {
    mkdirSync(dirname(o.socketPath), { recursive: true, mode: 0o700 });
    if (existsSync(o.socketPath)) {
      const live = await new Promise<boolean>((res) => {
        const c = net.connect(o.socketPath, () => { c.destroy(); res(true); });
        c.on('error', () => res(false));
      });
      if (live) throw new Error(`another daemon is serving ${o.socketPath}`);
      unlinkSync(o.socketPath);
    }
  }
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    if (listenFd !== null) server.listen({ fd: listenFd }, () => res());
    else {
      const old = process.umask(0o177);
      server.listen(o.socketPath, () => { process.umask(old); res(); });
    }
  });
  if (listenFd === null) chmodSync(o.socketPath, 0o600);
  if (o.pidfile) writeFileSync(o.pidfile, `${process.pid}\n`);
  log(`serving ${listenFd !== null ? 'the systemd socket' : o.socketPath}; leases in ${o.stateDir}; ${book.leases.size} resumed`);
  server.on('error', (e) => log(`socket error: ${e.message}`));
  const stop = (sig: string): void => {
    log(`${sig}: stopping (leases are kept in ${o.stateDir} and resumed at the next start)`);
    server.close();
    try { if (listenFd === null) unlinkSync(o.socketPath); } catch { /* gone */ }
    try { if (o.pidfile) unlinkSync(o.pidfile); } catch { /* gone */ }
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // keep the process alive while timers are unref'd
  setInterval(() => undefined, 1 << 30);
}
