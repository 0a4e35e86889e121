// cni-wasm in one minute: two "containers" on a dual-stack bridge network,
// set up by our plugins exactly as a container runtime would exec them.
//
// Everything happens inside namespaces made here and deleted at the end
// (also on Ctrl-C or failure): cw-demo-host plays the machine (the bridge and
// the NAT table live there), cw-demo-a and cw-demo-b are the containers. The
// machine's own network namespace is never touched. State (audit log,
// ledger, IPAM leases) lives in a temp dir.
//
//   npm run demo                 (as root, after npm ci)
//   npm run demo -- --reference  (same steps with the reference plugins in /usr/lib/cni)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ensurePackage, have, netnsWithPrefix } from './system.js';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConflistRunner, PluginError, type NetConfList, type RuntimeConf, type Step } from './conflist.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CLI = join(ROOT, 'bin/cni-wasm.cjs');
const REFERENCE_BIN = '/usr/lib/cni';
const PREFIX = 'cw-demo-';
const HOST = 'cw-demo-host';
const CONTAINERS = [
  { name: 'a', ns: 'cw-demo-a', id: 'cni-wasm-demo-a' },
  { name: 'b', ns: 'cw-demo-b', id: 'cni-wasm-demo-b' },
];
/** a third container, attached with `cni-wasm add` as cnitool would */
const RUNNER_NS = 'cw-demo-c';
const BRIDGE = 'cni-demo0';
const NETWORK = 'demo-net';
const SUBNET4 = '192.168.199.0/24';
const SUBNET6 = 'fde4:8dba:82e1::/64';
const NAT_TABLE = 'cni_wasm_nat';
const ECHO_PORT = 7007;

const useReference = process.argv.includes('--reference');

// ---------------------------------------------------------------- output

// `npm run demo | head` must not stop the demo before it cleans up
let stdoutOpen = true;
process.stdout.on('error', () => { stdoutOpen = false; });
const out = (s = ''): void => { if (stdoutOpen) process.stdout.write(s + '\n'); };
const indent = (text: string, pad = '    '): string =>
  text.replace(/\s+$/, '').split('\n').map((l) => (pad + l).trimEnd()).join('\n');
function section(title: string): void {
  out();
  out(`== ${title} ${'='.repeat(Math.max(3, 72 - title.length))}`);
}

let failures = 0;
function check(ok: boolean, what: string, detail = ''): boolean {
  out(`  [${ok ? 'ok' : 'FAIL'}] ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures++;
  return ok;
}

// ---------------------------------------------------------------- processes

interface Run { status: number; stdout: string; stderr: string }

function run(cmd: string[], input?: string, timeoutMs = 30_000): Run {
  const r = spawnSync(cmd[0], cmd.slice(1), { input, encoding: 'utf8', timeout: timeoutMs });
  if (r.error) return { status: -1, stdout: r.stdout ?? '', stderr: r.error.message };
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function must(cmd: string[], input?: string): string {
  const r = run(cmd, input);
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}


/** Prints "$ cmd" and its output, run inside netns ns. */
function show(ns: string, cmd: string[]): string {
  const text = must(['ip', 'netns', 'exec', ns, ...cmd]);
  out(`  ${ns}$ ${cmd.join(' ')}`);
  out(text.trim() ? indent(text) : '    (nothing)');
  return text;
}

function ipJson<T = any>(ns: string, args: string[]): T {
  const text = must(['ip', '-n', ns, '-j', ...args]).trim();
  return (text ? JSON.parse(text) : []) as T;
}

// ---------------------------------------------------------------- cleanup

let tmp: string | null = null;
const children = new Set<ChildProcess>();
let interrupted: string | null = null;

const listOurNetns = (): string[] => netnsWithPrefix(PREFIX);

let cleanedUp = false;
function cleanup(): string[] {
  if (cleanedUp) return [];
  cleanedUp = true;
  for (const c of children) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  const deleted: string[] = [];
  // containers first, then the host: a veth pair goes with either end
  for (const n of listOurNetns().sort((x, y) => Number(x === HOST) - Number(y === HOST))) {
    run(['ip', 'netns', 'del', n]);
    deleted.push(n);
  }
  if (tmp) { rmSync(tmp, { recursive: true, force: true }); tmp = null; }
  return deleted;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = sig;
    // the demo is mostly synchronous: it notices at its next step; this is the fallback
    setTimeout(() => { cleanup(); process.exit(130); }, 5000).unref();
  });
}
process.on('exit', () => { cleanup(); });

/** A step boundary: lets signal handlers run, and stops if one did. */
async function step(): Promise<void> {
  // a signal's handler runs on the loop turn after the one that reads it
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

// ---------------------------------------------------------------- the network

function conflist(dataDir: string): NetConfList {
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: SUBNET4 }], [{ subnet: SUBNET6 }]],
          routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
          dataDir,
        },
      },
    ],
  };
}

/** JSON with small objects and arrays kept on one line. */
// As containerd and CRI-O do: the loopback is its own network, attached as "lo".
const LOOPBACK: NetConfList = { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };

function compactJson(v: unknown, pad = ''): string {
  const flat = JSON.stringify(v);
  if (flat.length <= 72 - pad.length || v === null || typeof v !== 'object') return flat;
  const inner = pad + '  ';
  if (Array.isArray(v)) return `[\n${v.map((x) => inner + compactJson(x, inner)).join(',\n')}\n${pad}]`;
  const body = Object.entries(v as Record<string, unknown>).map(([k, x]) => `${inner}${JSON.stringify(k)}: ${compactJson(x, inner)}`);
  return `{\n${body.join(',\n')}\n${pad}}`;
}

function describeSteps(steps: Step[]): string {
  return steps.map((s) => `${s.type} ${s.command} ${s.ms.toFixed(0)} ms`).join(', ');
}

/** Map name -> keys (container addresses) of our NAT table in the host netns; null when there is no table. */
function natSets(): Map<string, string[]> | null {
  const r = run(['ip', 'netns', 'exec', HOST, 'nft', '-j', 'list', 'table', 'inet', NAT_TABLE]);
  if (r.status !== 0) return null;
  const str = (e: any): string => typeof e === 'string' ? e
    : e?.concat ? e.concat.map(str).join(' . ')
    : e?.prefix ? `${e.prefix.addr}/${e.prefix.len}`
    : e?.range ? e.range.join('-') : JSON.stringify(e);
  const sets = new Map<string, string[]>();
  for (const x of JSON.parse(r.stdout).nftables as any[]) {
    const m = x.map ?? x.set;
    if (m) sets.set(m.name, (m.elem ?? []).map((e: any) => str(Array.isArray(e) ? e[0] : e)));
  }
  return sets;
}

interface Attachment { ips: { address: string }[] }

// ---------------------------------------------------------------- traffic

const ECHO_SERVER = `
const s = require('dgram').createSocket({ type: 'udp6' });
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(${ECHO_PORT}, '::', () => console.log('ready'));`;

const ECHO_CLIENT = `
const addr = process.argv[1];
const s = require('dgram').createSocket(addr.includes(':') ? 'udp6' : 'udp4');
const t0 = process.hrtime.bigint();
s.on('message', () => { console.log((Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2)); process.exit(0); });
s.on('error', () => {});
const send = () => s.send(Buffer.from('cni-wasm demo'), ${ECHO_PORT}, addr, () => {});
send(); setInterval(send, 250);
setTimeout(() => process.exit(1), 3000);`;

async function startEchoServer(ns: string): Promise<ChildProcess> {
  const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`echo server in ${ns} did not start`)), 5000);
    c.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); res(); } });
    c.on('exit', (code) => { clearTimeout(timer); rej(new Error(`echo server in ${ns} exited ${code}`)); });
  });
  return c;
}

/** ping when the machine has it, else a UDP echo; retries while IPv6 DAD may still run. */
function reach(fromNs: string, addr: string, tool: 'ping' | 'udp'): { ok: boolean; detail: string } {
  if (tool === 'ping') {
    let last = '';
    for (let i = 0; i < 3; i++) {
      const r = run(['ip', 'netns', 'exec', fromNs, 'ping', '-c1', '-W1', addr]);
      if (r.status === 0) {
        const rtt = /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? '';
        return { ok: true, detail: `ping: 1 packet, ${rtt}${i ? ` (attempt ${i + 1})` : ''}` };
      }
      last = (r.stdout + r.stderr).trim().split('\n').pop() ?? '';
    }
    return { ok: false, detail: last };
  }
  const r = run(['ip', 'netns', 'exec', fromNs, process.execPath, '-e', ECHO_CLIENT, addr]);
  return r.status === 0
    ? { ok: true, detail: `UDP echo, ${r.stdout.trim()} ms round trip` }
    : { ok: false, detail: 'no UDP echo reply within 3 s' };
}

// ---------------------------------------------------------------- audit

interface AuditRec { plugin: string; call: string; verdict: string; outcome: string; containerId: string }

function auditSummary(file: string): void {
  const recs: AuditRec[] = existsSync(file)
    ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRec)
    : [];
  const by = new Map<string, { inv: number; calls: number; denied: number; errors: number; kinds: Set<string> }>();
  // a change is written twice: before it is made ("pending", write-ahead) and with its outcome
  const pending = recs.filter((r) => r.outcome === 'pending').length;
  for (const r of recs) {
    if (r.outcome === 'pending') continue;
    const e = by.get(r.plugin) ?? { inv: 0, calls: 0, denied: 0, errors: 0, kinds: new Set<string>() };
    if (r.call.startsWith('invoke.')) e.inv++;
    else { e.calls++; e.kinds.add(r.call); }
    if (r.verdict === 'deny') e.denied++;
    if (r.outcome !== 'ok') e.errors++;
    by.set(r.plugin, e);
  }
  out(`  ${recs.length} records in ${file} (${pending} of them written before a change was made, then its outcome)`);
  out(`  ${'plugin'.padEnd(12)}${'runs'.padStart(5)}${'host calls'.padStart(12)}${'denied'.padStart(8)}${'errors'.padStart(8)}`);
  for (const [p, e] of by) {
    out(`  ${p.padEnd(12)}${String(e.inv).padStart(5)}${String(e.calls).padStart(12)}${String(e.denied).padStart(8)}${String(e.errors).padStart(8)}`);
  }
  for (const [p, e] of by) if (e.kinds.size) out(`  ${p} used: ${[...e.kinds].sort().join(', ')}`);
  const errs = new Map<string, number>();
  for (const r of recs) {
    if (r.outcome === 'ok' || r.outcome === 'pending' || r.call.startsWith('invoke.')) continue;
    const k = `${r.plugin} ${r.call} -> ${r.outcome.replace(/^error: (\S+).*/, '$1')}`;
    errs.set(k, (errs.get(k) ?? 0) + 1);
  }
  if (errs.size) out(`  errors the host returned (a plugin probing, e.g. for a bridge not made yet): ${[...errs].map(([k, n]) => `${k} x${n}`).join('; ')}`);
  const denied = recs.filter((r) => r.verdict === 'deny');
  check(denied.length === 0, 'no call was denied by the policy', denied.map((r) => `${r.plugin} ${r.call}`).join('; '));
  const a = CONTAINERS[0];
  const cmd = ['audit', '--file', file, '--container', a.id, '--plugin', 'bridge'];
  const lines = must([process.execPath, CLI, ...cmd]).trim().split('\n');
  out();
  out(`  $ cni-wasm ${cmd.join(' ').replace(file, '<audit.log>')}   (first ${Math.min(8, lines.length)} of ${lines.length} lines)`);
  for (const l of lines.slice(0, 8)) out('    ' + (l.length > 150 ? l.slice(0, 149) + '…' : l));
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  out('cni-wasm demo: two containers on a dual-stack bridge network (bridge + host-local + ipMasq),');
  out(`plugins exec'd as a runtime does (${useReference ? 'REFERENCE plugins from ' + REFERENCE_BIN : 'cni-wasm WebAssembly plugins'}).`);
  out(`Namespaces: ${HOST} plays the host, ${CONTAINERS.map((c) => c.ns).join(' and ')} are the containers.`);

  section('Setup');
  if (process.getuid?.() !== 0) throw new Error('the demo makes network namespaces: run it as root');
  // ipMasq needs nft for its first rules; a fresh machine may not have it
  for (const [p, pkg] of [['ip', 'iproute2'], ['nft', 'nftables']]) {
    if (!ensurePackage(pkg, () => have(p), out)) throw new Error(`'${p}' is missing and could not be installed (apt-get install -y ${pkg})`);
  }
  const tool: 'ping' | 'udp' = have('ping') ? 'ping' : 'udp';
  for (const n of listOurNetns()) run(['ip', 'netns', 'del', n]); // a leftover of an interrupted run
  tmp = mkdtempSync(join(tmpdir(), 'cw-demo-'));
  const bin = join(tmp, 'bin');
  const policyFile = join(tmp, 'policy.json');
  const auditLog = join(tmp, 'audit.log');
  const stateDir = join(tmp, 'state');
  const ipamDir = join(tmp, 'ipam');
  writeFileSync(policyFile, JSON.stringify({ auditLog, stateDir, storeDir: ipamDir, pluginDirs: [] }, null, 2));
  let path: string[];
  if (useReference) {
    if (!existsSync(join(REFERENCE_BIN, 'bridge'))) throw new Error(`no reference plugins in ${REFERENCE_BIN} (apt-get install -y containernetworking-plugins)`);
    path = [REFERENCE_BIN];
    out(`  plugins: ${REFERENCE_BIN}`);
  } else {
    for (const t of ['loopback', 'bridge', 'host-local']) {
      if (!existsSync(join(ROOT, 'dist/plugins', t, 'manifest.json'))) throw new Error(`plugin '${t}' is not built (npm run build)`);
    }
    out(`  $ cni-wasm install --bin-dir ${bin} --policy ${policyFile}`);
    out(indent(must([process.execPath, CLI, 'install', '--bin-dir', bin, '--policy', policyFile, '--only', 'loopback,bridge,host-local'])));
    path = [bin];
  }
  out(`  temp dir ${tmp}: policy.json, audit.log, state/ (ledger), ipam/ (leases)`);
  must(['ip', 'netns', 'add', HOST]);
  must(['ip', '-n', HOST, 'link', 'set', 'lo', 'up']);
  for (const c of CONTAINERS) must(['ip', 'netns', 'add', c.ns]);
  out(`  namespaces: ${HOST}, ${CONTAINERS.map((c) => c.ns).join(', ')}`);
  out(`  reachability test: ${tool === 'ping' ? 'ping -c1 -W1' : `UDP echo on port ${ECHO_PORT} (no ping on this machine: apt-get install iputils-ping)`}`);
  await step();

  const list = conflist(ipamDir);
  section(`Network config "${NETWORK}" (a conflist, as in /etc/cni/net.d)`);
  out(indent(compactJson(list).replace(ipamDir, '<temp>/ipam'), '  '));

  const runner = new ConflistRunner({ path, hostNs: HOST });
  const rt = (c: typeof CONTAINERS[number]): RuntimeConf => ({ containerId: c.id, netns: `/run/netns/${c.ns}`, ifname: 'eth0' });
  const results = new Map<string, Attachment>();

  const lo = (c: typeof CONTAINERS[number]): RuntimeConf => ({ ...rt(c), ifname: 'lo' });

  section('ADD: the loopback network (lo), then each plugin of the conflist in order (eth0)');
  const execSteps: Step[] = [];
  for (const c of CONTAINERS) {
    const l = runner.add(LOOPBACK, lo(c));
    const r = runner.add(list, rt(c));
    if (c === CONTAINERS[0]) execSteps.push(...l.steps, ...r.steps);
    const res = r.result as Attachment;
    results.set(c.name, res);
    out(`  container ${c.name}: ${describeSteps([...l.steps, ...r.steps])}`);
    out(`    result ips: ${(res.ips ?? []).map((i) => i.address).join(', ')}`);
    await step();
  }

  for (const c of CONTAINERS) {
    section(`Container ${c.name} (${c.ns})`);
    show(c.ns, ['ip', '-br', 'addr']);
    show(c.ns, ['ip', 'route']);
    show(c.ns, ['ip', '-6', 'route']);
  }

  section(`Bridge ${BRIDGE} in ${HOST}`);
  show(HOST, ['ip', '-br', 'addr', 'show', 'dev', BRIDGE]);
  const ports = show(HOST, ['ip', '-br', 'link', 'show', 'master', BRIDGE]);
  check(ports.trim().split('\n').filter(Boolean).length === 2, 'two veth ports on the bridge');
  await step();

  section('Traffic between the containers');
  const addrOf = (c: string, fam: 4 | 6): string => {
    const a = (results.get(c)?.ips ?? []).map((i) => i.address.split('/')[0]).find((x) => x.includes(':') === (fam === 6));
    if (!a) throw new Error(`container ${c} got no IPv${fam} address`);
    return a;
  };
  const servers: ChildProcess[] = [];
  try {
    if (tool === 'udp') for (const c of CONTAINERS) servers.push(await startEchoServer(c.ns));
    for (const [from, to] of [[CONTAINERS[0], CONTAINERS[1]], [CONTAINERS[1], CONTAINERS[0]]]) {
      for (const fam of [4, 6] as const) {
        const dst = addrOf(to.name, fam);
        const r = reach(from.ns, dst, tool);
        check(r.ok, `${from.name} -> ${to.name} IPv${fam} ${dst}`, r.detail);
        await step();
      }
    }
  } finally {
    for (const s of servers) { if (s.pid) try { process.kill(s.pid, 'SIGTERM'); } catch { /* gone */ } }
  }
  const sets = natSets();
  if (sets) {
    out(`  ipMasq (nft table inet ${NAT_TABLE} in ${HOST}, one map element per address):`);
    for (const [name, elems] of sets) out(`    map ${name}: ${elems.join(', ') || '(empty)'}`);
  }

  if (!useReference) {
    section('Audit trail: every host call a plugin made, checked against the policy');
    auditSummary(auditLog);
  }
  await step();

  section('DEL: each plugin in reverse order with prevResult = the ADD result, then lo');
  for (const c of [...CONTAINERS].reverse()) {
    const r = runner.del(list, rt(c), results.get(c.name));
    const l = runner.del(LOOPBACK, lo(c));
    out(`  container ${c.name}: ${describeSteps([...r.steps, ...l.steps])}`);
    await step();
  }
  const again = runner.del(list, rt(CONTAINERS[0]), results.get('a'));
  check(true, 'DEL again is a no-op, not an error', describeSteps(again.steps));

  if (!useReference) {
    section('The same network with `cni-wasm add/del`, in place of cnitool (NETCONFPATH, CNI_PATH, CAP_ARGS)');
    const confDir = join(tmp!, 'net.d');
    const cacheDir = join(tmp!, 'cache');
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(confDir, '10-demo.conflist'), JSON.stringify(list, null, 2));
    must(['ip', 'netns', 'add', RUNNER_NS]);
    const cli = (args: string[]) => must(['env', `NETCONFPATH=${confDir}`, `CNI_PATH=${path.join(':')}`, 'ip', 'netns', 'exec', HOST,
      process.execPath, CLI, '--policy', policyFile, ...args, '--cache-dir', cacheDir]);
    out(`  $ NETCONFPATH=<temp>/net.d cni-wasm add ${NETWORK} /run/netns/${RUNNER_NS}`);
    const res = JSON.parse(cli(['add', NETWORK, `/run/netns/${RUNNER_NS}`])) as Attachment;
    out(`    result ips: ${(res.ips ?? []).map((i) => i.address).join(', ')}`);
    const cached = readdirSync(join(cacheDir, 'results'));
    check(cached.length === 1, 'libcni\'s result cache written, as cnitool and podman read it', cached.join(' '));
    const gw = ((res.ips ?? []) as { gateway?: string }[]).map((i) => i.gateway ?? '').find((x) => x && !x.includes(':'));
    if (gw) { const r = reach(RUNNER_NS, gw, tool); check(r.ok, `the runner's container reaches its gateway ${gw}`, r.detail); }
    out(`  $ cni-wasm check ${NETWORK} /run/netns/${RUNNER_NS} && cni-wasm del ${NETWORK} /run/netns/${RUNNER_NS}`);
    cli(['check', NETWORK, `/run/netns/${RUNNER_NS}`]);
    cli(['del', NETWORK, `/run/netns/${RUNNER_NS}`]);
    check(readdirSync(join(cacheDir, 'results')).length === 0, 'DEL removed the cache entry');
    await step();
  }

  if (!useReference) {
    section('Resident mode: the same calls through `cni-wasm daemon` and native shims');
    // The shims a runtime execs are now a small native binary; it forwards
    // each call (env, stdin, its netns) to the daemon, which keeps the
    // compiled components warm and gives every call a fresh instance.
    const nbin = join(tmp!, 'bin-native');
    const sock = join(tmp!, 'run', 'cni-wasm.sock');
    out(`  $ cni-wasm install --bin-dir <temp>/bin-native --socket <temp>/run/cni-wasm.sock --policy ...`);
    const inst = must([process.execPath, CLI, 'install', '--bin-dir', nbin, '--policy', policyFile, '--socket', sock, '--only', 'loopback,bridge,host-local']);
    if (!/native shim/.test(inst)) {
      check(false, 'native shims written', 'the native shim is not built (npm run build:shim needs a C compiler)');
    } else {
      out(`  $ ip netns exec ${HOST} cni-wasm daemon --socket <temp>/run/cni-wasm.sock`);
      const d = spawn('ip', ['netns', 'exec', HOST, process.execPath, CLI, '--policy', policyFile, 'daemon', '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
      children.add(d);
      let dlog = '';
      d.stderr!.on('data', (b: Buffer) => { dlog += b; });
      for (let i = 0; i < 600 && !/serving/.test(dlog) && d.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
      if (check(/serving/.test(dlog), 'the daemon serves', dlog.trim().split('\n').pop()?.replace(tmp!, '<temp>'))) {
        const resident = new ConflistRunner({ path: [nbin], hostNs: HOST });
        const c = CONTAINERS[0];
        const ms = (steps: Step[]) => steps.reduce((a, x) => a + x.ms, 0);
        // the first call of each plugin warms its worker (loads and compiles it); then container a again, as above
        resident.add(LOOPBACK, lo(c));
        const w = resident.add(list, rt(c));
        resident.del(list, rt(c), w.result as Attachment);
        resident.del(LOOPBACK, lo(c));
        const l = resident.add(LOOPBACK, lo(c));
        const r = resident.add(list, rt(c));
        const res = r.result as Attachment;
        out(`  container ${c.name}, resident: ${describeSteps([...l.steps, ...r.steps])}`);
        out(`  container ${c.name}, exec mode (above): ${describeSteps(execSteps)}`);
        check(ms([...l.steps, ...r.steps]) < ms(execSteps), `resident ADD of lo + eth0: ${ms([...l.steps, ...r.steps]).toFixed(0)} ms, exec mode ${ms(execSteps).toFixed(0)} ms`);
        out(`    result ips: ${(res.ips ?? []).map((i) => i.address).join(', ')}`);
        const st = JSON.parse(must(['ip', 'netns', 'exec', HOST, process.execPath, CLI, 'daemon', '--socket', sock, '--check'])) as { served: number; workers: number; rss: number; instancesAhead?: { used: number } };
        out(`  $ cni-wasm daemon --check: ${st.served} calls served by ${st.workers} workers, ${st.instancesAhead?.used ?? 0} of them with an instance made ahead, RSS ${(st.rss / 1048576).toFixed(0)} MiB`);
        const dr = resident.del(list, rt(c), res);
        const dl = resident.del(LOOPBACK, lo(c));
        out(`  DEL, resident: ${describeSteps([...dr.steps, ...dl.steps])}`);
      }
      d.kill('SIGTERM');
      await new Promise((r) => (d.exitCode !== null ? r(null) : d.once('exit', r)));
      check(/stopped/.test(dlog), 'SIGTERM: the daemon finished its calls and stopped');
    }
    await step();
  }

  section('Nothing left behind');
  const veths = ipJson<unknown[]>(HOST, ['link', 'show', 'type', 'veth']);
  check(veths.length === 0, `no veths in ${HOST}`, veths.length ? `${veths.length} left` : '');
  for (const c of CONTAINERS) {
    const links = ipJson<{ ifname: string }[]>(c.ns, ['link', 'show']).map((l) => l.ifname);
    check(links.length === 1 && links[0] === 'lo', `container ${c.name} has only lo`, links.join(' '));
  }
  const netDir = join(ipamDir, NETWORK);
  const files = existsSync(netDir) ? readdirSync(netDir) : [];
  const leases = files.filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
  check(leases.length === 0, 'no IPAM leases', leases.length ? leases.join(' ') : `left: ${files.join(', ') || 'nothing'} (bookkeeping the reference keeps too)`);
  const after = natSets();
  if (after) {
    const full = [...after].filter(([, e]) => e.length);
    check(full.length === 0, `nft maps in inet ${NAT_TABLE} are empty`, full.map(([n, e]) => `${n}: ${e.join(' ')}`).join('; '));
  } else if (!useReference) {
    check(false, `nft table inet ${NAT_TABLE} was never created (ipMasq)`);
  }
  if (have('iptables')) {
    const chains = run(['ip', 'netns', 'exec', HOST, 'iptables', '-t', 'nat', '-S']).stdout.split('\n').filter((l) => /^-N CNI-/.test(l));
    check(chains.length === 0, 'no CNI-* iptables chains', chains.join(' '));
  }
  if (!useReference) {
    const ledgerDir = join(stateDir, 'ledger', NETWORK);
    const ledgers = existsSync(ledgerDir) ? readdirSync(ledgerDir).filter((f) => f.endsWith('.jsonl')) : [];
    check(ledgers.length === 0, 'no attachment ledgers (nothing any plugin made is left)', ledgers.join(' '));
  }
  await step();
  show(HOST, ['ip', '-br', 'link']);
  out(`  (the bridge stays, as with the reference plugin; it goes with ${HOST})`);
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  out();
  out(interrupted ? `Interrupted (${interrupted})` : `FAILED: ${(e as Error).message}`);
  if (e instanceof PluginError && !interrupted) {
    const last = e.steps[e.steps.length - 1];
    if (last?.stderr.trim()) out(indent(last.stderr.trim().split('\n').slice(-15).join('\n')));
  }
} finally {
  section('Cleanup');
  const deleted = cleanup();
  out(`  deleted namespaces: ${deleted.join(', ') || 'none'}; removed the temp dir`);
  const left = listOurNetns();
  if (!check(left.length === 0, `no ${PREFIX}* namespaces left`, left.join(' '))) code = 1;
}
if (failures || interrupted) code = 1;
out();
out(!code ? 'Demo passed: every check ok.' : failures ? `Demo FAILED (${failures} failed check${failures === 1 ? '' : 's'})` : 'Demo FAILED');
process.exit(code);
