// Resident mode: `cni-wasm daemon` and the native shims. Needs root. Prefix: dm-.
//
// The daemon runs inside a throwaway netns that plays the host (dm-host), on
// a temp socket, started and killed by this file. Our native shims are exec'd
// as a runtime does (ip netns exec dm-host <bin>/bridge). Exec mode is the
// same shim with CNI_WASM_NO_DAEMON=1, run from its own host netns, so both
// modes see the same world and their results can be compared word for word.
// CNI_WASM_SHIM_DEBUG=1 makes the shim say on stderr who served the call.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, ROOT, type CniCall, type CniReply, type Harness, execPlugin, makeHarness, removeHarness } from '../helpers/cni.js';
import { buildFixtures, cli, componentPath, installThirdParty } from '../helpers/fixtures.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'dm-';
const HOST = `${P}host`;
const EXEC_HOST = `${P}exh`;
const OTHER = `${P}other`;
let h: Harness;
let sock: string;
let daemon: ChildProcess | null = null;
let daemonLog = '';

const conf = (name: string, mode: string, subnet = '10.88.0.0/24', bridge = 'dmbr0') => ({
  cniVersion: '1.0.0', name, type: 'bridge', bridge, isGateway: true, ipMasq: false,
  ipam: { type: 'host-local', subnet, dataDir: join(h.dir, `ipam-${mode}`), routes: [{ dst: '0.0.0.0/0' }] },
});

function call(hostNs: string, command: CniCall['command'], config: object, netns: string, cid: string, env: Record<string, string> = {}): CniReply {
  return execPlugin(h.bin, 'bridge', {
    command, hostNs, netns, containerId: cid, ifname: 'eth0', config, env: { CNI_WASM_SHIM_DEBUG: '1', ...env },
  });
}

/** The same call with the shim's argv/env as a runtime gives, async (for concurrency). */
function callAsync(hostNs: string, command: string, config: object, netns: string, cid: string): Promise<CniReply> {
  return new Promise((res) => {
    const c = spawn('ip', ['netns', 'exec', hostNs, join(h.bin, 'bridge')], {
      env: {
        PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netnsPath(netns), CNI_IFNAME: 'eth0',
        CNI_PATH: h.bin, CNI_WASM_SHIM_DEBUG: '1',
      },
    });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => { stdout += d; });
    c.stderr.on('data', (d) => { stderr += d; });
    c.on('close', (code) => {
      let json: any;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      res({ code: code ?? -1, stdout, stderr, json });
    });
    c.stdin.on('error', () => { /* the shim exited first; its reply says why */ });
    c.stdin.end(JSON.stringify(config));
  });
}

function status(): any {
  const r = nsExec(HOST, [process.execPath, CLI, 'daemon', '--socket', sock, '--check'], { check: false });
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

async function startDaemon(): Promise<void> {
  daemonLog = '';
  daemon = spawn('ip', ['netns', 'exec', HOST, process.execPath, CLI, '--policy', h.policyFile, 'daemon', '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  daemon.stderr!.on('data', (d) => { daemonLog += d; });
  const t0 = Date.now();
  while (Date.now() - t0 < 30_000) {
    if (/serving/.test(daemonLog)) return;
    if (daemon.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daemon did not start: ${daemonLog}`);
}

function stopped(p: ChildProcess): Promise<number | string | null> {
  return new Promise((res) => {
    if (p.exitCode !== null || p.signalCode !== null) return res(p.exitCode ?? p.signalCode);
    p.once('exit', (code, sig) => res(code ?? sig));
  });
}

/** A result with the random parts (MACs, the host veth's name) named by role. */
function normal(r: any): any {
  const c = JSON.parse(JSON.stringify(r));
  for (const i of c.interfaces ?? []) {
    if (i.mac) i.mac = 'MAC';
    if (/^veth/.test(i.name)) i.name = 'VETH';
  }
  return c;
}

const leases = (mode: string, network: string): string[] => {
  const d = join(h.dir, `ipam-${mode}`, network);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort() : [];
};
const hostVeths = (ns: string): string[] => ipJson<any[]>(ns, ['link', 'show']).map((l) => l.ifname).filter((n: string) => n.startsWith('veth'));
const ledgerFiles = (): string[] => {
  const walk = (d: string): string[] => (existsSync(d) ? readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)])) : []);
  return walk(join(h.stateDir, 'ledger')).filter((f) => !f.endsWith('.lock'));
};

test.before(async () => {
  cleanupAll(P);
  h = makeHarness(P);
  sock = join(h.dir, 'run', 'cni-wasm.sock');
  const r = cli(['install', '--bin-dir', h.bin, '--policy', h.policyFile, '--socket', sock, '--only', 'bridge,host-local', '--conf-dir', h.dir]);
  if (r.status !== 0 || !/native shim/.test(r.stdout)) throw new Error(`install --socket did not write native shims: ${r.stdout}${r.stderr}`);
  for (const n of [HOST, EXEC_HOST, OTHER]) makeNetns(n);
  await startDaemon();
});

// a test process that dies early (an uncaught error) must not leave its daemon behind
process.on('exit', () => { if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL'); });

test.after(() => {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('dm-setns in a worker thread switches that thread only', async () => {
  makeNetns(`${P}iso`);
  nsExec(`${P}iso`, ['ip', 'link', 'add', 'dmiso0', 'type', 'veth', 'peer', 'name', 'dmiso1']);
  const addon = join(ROOT, 'build/Release/cniwasm_native.node');
  const sab = new SharedArrayBuffer(8);
  const flags = new Int32Array(sab);
  const w = new Worker(`
    const { workerData: { addon, path, sab }, parentPort } = require('node:worker_threads');
    const a = require(addon);
    const { spawnSync } = require('node:child_process');
    const fs = require('node:fs');
    const f = new Int32Array(sab);
    a.setns(a.openNetns(path));
    const links = JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout).map((l) => l.ifname);
    parentPort.postMessage({ ino: fs.statSync('/proc/thread-self/ns/net').ino, links });
    Atomics.store(f, 0, 1); Atomics.notify(f, 0);
    Atomics.wait(f, 1, 0, 10000); // stays switched while the main thread looks
  `, { eval: true, workerData: { addon, path: netnsPath(`${P}iso`), sab } });
  const msg: any = await new Promise((res) => w.once('message', res));
  const isoIno = statSync(netnsPath(`${P}iso`)).ino;
  assert.is(msg.ino, isoIno, 'the worker thread is in the netns it switched to');
  assert.ok(msg.links.includes('dmiso0'), 'a child the worker spawns is there too');
  while (Atomics.load(flags, 0) !== 1) await new Promise((r) => setTimeout(r, 5));
  const mine = statSync('/proc/thread-self/ns/net').ino;
  assert.is.not(mine, isoIno, 'the main thread has not moved');
  const here = JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout).map((l: any) => l.ifname);
  assert.not.ok(here.includes('dmiso0'));
  Atomics.store(flags, 1, 1); Atomics.notify(flags, 1);
  await w.terminate();
});

test('dm-parity: bridge + host-local ADD/CHECK/DEL through the daemon equal exec mode', () => {
  makeNetns(`${P}c-d`);
  makeNetns(`${P}c-e`);
  const before = status().served;
  const d = call(HOST, 'ADD', conf('dmpar', 'daemon'), `${P}c-d`, 'dm-par');
  const e = call(EXEC_HOST, 'ADD', conf('dmpar', 'exec'), `${P}c-e`, 'dm-par', { CNI_WASM_NO_DAEMON: '1' });
  assert.is(d.code, 0, d.stdout + d.stderr);
  assert.is(e.code, 0, e.stdout + e.stderr);
  assert.match(d.stderr, /served by the daemon/);
  assert.match(e.stderr, /exec mode \(CNI_WASM_NO_DAEMON/);
  assert.equal(normal(d.json).interfaces.map((i: any) => i.sandbox?.replace(/c-[de]$/, 'c-X')), normal(e.json).interfaces.map((i: any) => i.sandbox?.replace(/c-[de]$/, 'c-X')));
  const strip = (r: any) => { const c = normal(r); for (const i of c.interfaces) delete i.sandbox; return c; };
  assert.equal(strip(d.json), strip(e.json));
  assert.equal(leases('daemon', 'dmpar'), leases('exec', 'dmpar'));
  // the kernel state matches too: the same bridge address, the same container address
  const addrs = (ns: string, dev: string) => ipJson<any[]>(ns, ['addr', 'show', 'dev', dev])[0].addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal(addrs(HOST, 'dmbr0'), addrs(EXEC_HOST, 'dmbr0'));
  assert.equal(addrs(`${P}c-d`, 'eth0'), addrs(`${P}c-e`, 'eth0'));
  for (const cmd of ['CHECK', 'DEL', 'DEL'] as const) {
    const withPrev = { ...conf('dmpar', 'daemon'), prevResult: d.json };
    const dd = call(HOST, cmd, withPrev, `${P}c-d`, 'dm-par');
    const ee = call(EXEC_HOST, cmd, { ...withPrev, ipam: conf('dmpar', 'exec').ipam, prevResult: e.json }, `${P}c-e`, 'dm-par', { CNI_WASM_NO_DAEMON: '1' });
    assert.is(dd.code, 0, `${cmd}: ${dd.stdout}`);
    assert.is(ee.code, 0, `${cmd}: ${ee.stdout}`);
    assert.is(dd.stdout, ee.stdout, cmd);
    assert.match(dd.stderr, /served by the daemon/);
  }
  // an error is the same error
  const bad = { ...conf('dmpar', 'daemon'), ipam: { type: 'host-local', subnet: '10.88.0.0/33' } };
  const bd = call(HOST, 'ADD', bad, `${P}c-d`, 'dm-bad');
  const be = call(EXEC_HOST, 'ADD', bad, `${P}c-e`, 'dm-bad', { CNI_WASM_NO_DAEMON: '1' });
  assert.is(bd.code, be.code);
  assert.is(bd.stdout, be.stdout);
  // escaping both ways (env, stdin, stdout): quotes, control bytes, non-ASCII, astral characters
  const odd = { ...conf('dmpar', 'daemon'), bridge: 'ü"\\\u0001\t😀x'.repeat(2), args: { k: 'é\n' } };
  const od = call(HOST, 'ADD', odd, `${P}c-d`, 'dm-odd', { CNI_ARGS: 'IgnoreUnknown=1;X=é"\\' });
  const oe = call(EXEC_HOST, 'ADD', odd, `${P}c-e`, 'dm-odd', { CNI_ARGS: 'IgnoreUnknown=1;X=é"\\', CNI_WASM_NO_DAEMON: '1' });
  assert.match(od.stderr, /served by the daemon/);
  assert.is(od.code, oe.code);
  assert.is(od.stdout, oe.stdout);
  assert.equal(leases('daemon', 'dmpar'), []);
  assert.equal(hostVeths(HOST), []);
  assert.ok(status().served >= before + 6);
});

test('dm-fresh: every call gets a fresh instance (guest globals from one call are not in the next; made-ahead instances too)', () => {
  // a third-party fixture that counts its calls in module globals (test/fixtures/guests/fresh)
  const h2 = makeHarness(`${P}fr-`);
  try {
    buildFixtures(join(h2.dir, 'built'), ['fresh']);
    installThirdParty(h2, [{ type: 'fresh', component: componentPath(join(h2.dir, 'built'), 'fresh') }]);
    const nbin = join(h2.dir, 'nbin');
    const r = cli(['install', '--bin-dir', nbin, '--policy', h2.policyFile, '--socket', sock, '--only', 'fresh', '--conf-dir', h2.dir]);
    assert.is(r.status, 0, r.stdout + r.stderr);
    const c = { cniVersion: '1.0.0', name: 'dmfresh', type: 'fresh' };
    makeNetns(`${P}c-f`);
    const ahead0 = status().instancesAhead;
    for (let i = 0; i < 6; i++) {
      // ADD and DEL alternate on the same worker (the pool takes the first idle one): each sees a new instance
      const a = execPlugin(nbin, 'fresh', { command: 'ADD', hostNs: HOST, netns: `${P}c-f`, containerId: `dm-fr${i}`, config: c, env: { CNI_WASM_SHIM_DEBUG: '1' } });
      assert.is(a.code, 0, a.stdout + a.stderr);
      assert.match(a.stderr, /served by the daemon/);
      assert.equal(a.json.dns, { domain: 'calls-1', search: ['prev-'] }, `call ${i}: ${a.stdout}`);
      const d = execPlugin(nbin, 'fresh', { command: 'DEL', hostNs: HOST, netns: `${P}c-f`, containerId: `dm-fr${i}`, config: c, env: { CNI_WASM_SHIM_DEBUG: '1' } });
      assert.is(d.code, 0, d.stdout + d.stderr);
    }
    // the calls after the first used instances made while the worker was idle
    const ahead1 = status().instancesAhead;
    assert.ok(ahead1.used - ahead0.used >= 8, `instances made ahead and used: ${JSON.stringify(ahead0)} -> ${JSON.stringify(ahead1)}`);
    // exec mode says the same
    const e = execPlugin(nbin, 'fresh', { command: 'ADD', hostNs: HOST, netns: `${P}c-f`, containerId: 'dm-fre', config: c, env: { CNI_WASM_SHIM_DEBUG: '1', CNI_WASM_NO_DAEMON: '1' } });
    assert.match(e.stderr, /exec mode/);
    assert.equal(e.json.dns, { domain: 'calls-1', search: ['prev-'] });
  } finally {
    removeHarness(h2);
  }
});

test('dm-runner: `cni-wasm add|check|del` run their components in the daemon when it serves, with exec mode\'s results', () => {
  makeNetns(`${P}c-rd`);
  makeNetns(`${P}c-re`);
  // the same network in each mode's own config dir; only the IPAM dir differs
  for (const mode of ['daemon', 'exec']) {
    mkdirSync(join(h.dir, `runner-conf-${mode}`), { recursive: true });
    const { name: _n, cniVersion: _v, ...plugin } = conf('dmrun', mode, '10.89.0.0/24', 'dmbr5');
    writeFileSync(join(h.dir, `runner-conf-${mode}`, '10-dmrun.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'dmrun', plugins: [plugin] }));
  }
  const run = (ns: string, mode: string, cmd: string, env: Record<string, string> = {}) => nsExec(ns, [
    process.execPath, CLI, '--policy', h.policyFile, cmd, 'dmrun', netnsPath(`${P}c-r${mode[0]}`), '--conf-dir', join(h.dir, `runner-conf-${mode}`),
    '--cache-dir', join(h.dir, `runner-cache-${mode}`), '--container-id', 'dm-run', '--socket', sock, '--json',
  ], { check: false, env: { ...process.env, CNI_WASM_SHIM_DEBUG: '1', ...env } });
  const before = status().served;
  const d = run(HOST, 'daemon', 'add');
  const e = run(EXEC_HOST, 'exec', 'add', { CNI_WASM_NO_DAEMON: '1' });
  assert.is(d.status, 0, d.stdout + d.stderr);
  assert.is(e.status, 0, e.stdout + e.stderr);
  assert.match(d.stderr, /bridge ADD served by the daemon/);
  assert.match(e.stderr, /bridge ADD ran here \(CNI_WASM_NO_DAEMON/);
  const strip = (t: string) => { const c = normal(JSON.parse(t)); for (const i of c.interfaces) delete i.sandbox; return c; };
  assert.equal(strip(d.stdout), strip(e.stdout));
  assert.equal(leases('daemon', 'dmrun'), leases('exec', 'dmrun'));
  assert.is(leases('daemon', 'dmrun').length, 1);
  for (const cmd of ['check', 'del']) {
    const dd = run(HOST, 'daemon', cmd);
    const ee = run(EXEC_HOST, 'exec', cmd, { CNI_WASM_NO_DAEMON: '1' });
    assert.is(dd.status, 0, `${cmd}: ${dd.stdout}${dd.stderr}`);
    assert.is(ee.status, 0, `${cmd}: ${ee.stdout}${ee.stderr}`);
    assert.is(dd.stdout, ee.stdout, cmd);
    assert.match(dd.stderr, new RegExp(`bridge ${cmd.toUpperCase()} served by the daemon`));
  }
  assert.ok(status().served >= before + 3);
  // the runner in another netns than the daemon's: the daemon sends it back and it runs the call itself
  const o = run(EXEC_HOST, 'exec', 'add');
  assert.is(o.status, 0, o.stdout + o.stderr);
  assert.match(o.stderr, /bridge ADD ran here \(not here: the caller is in another network namespace/);
  assert.is(run(EXEC_HOST, 'exec', 'del').status, 0);
  assert.equal(leases('daemon', 'dmrun'), []);
  assert.equal(leases('exec', 'dmrun'), []);
  assert.equal(hostVeths(HOST), []);
  assert.equal(hostVeths(EXEC_HOST), []);
});

test('dm-other-netns: a caller in another netns runs the call itself', () => {
  makeNetns(`${P}c-o`);
  const before = status();
  const r = call(OTHER, 'ADD', conf('dmoth', 'other', '10.89.0.0/24', 'dmbr1'), `${P}c-o`, 'dm-oth');
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /exec mode \(not here/);
  // it acted where the caller is, not where the daemon is
  assert.is(ipJson<any[]>(OTHER, ['link', 'show', 'dmbr1']).length, 1);
  assert.is(ipJson<any[]>(HOST, ['link', 'show']).filter((l) => l.ifname === 'dmbr1').length, 0);
  const after = status();
  assert.is(after.served, before.served);
  assert.is(after.fallback, before.fallback + 1);
  const del = call(OTHER, 'DEL', conf('dmoth', 'other', '10.89.0.0/24', 'dmbr1'), `${P}c-o`, 'dm-oth');
  assert.is(del.code, 0, del.stdout);
  assert.equal(leases('other', 'dmoth'), []);
});

test('dm-nonroot: a peer that is not root is not served', async () => {
  // a copy of the shim nobody can exec
  const pub = mkdtempSync(join(tmpdir(), 'dm-pub-'));
  chmodSync(pub, 0o755);
  copyFileSync(join(h.bin, 'bridge'), join(pub, 'bridge'));
  chmodSync(join(pub, 'bridge'), 0o755);
  const asNobody = (): ReturnType<typeof nsExec> => nsExec(HOST, ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', join(pub, 'bridge')], {
    input: '{"cniVersion":"1.0.0"}', check: false, env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION', CNI_WASM_SHIM_DEBUG: '1' },
  });
  try {
    const s0 = status();
    // the socket is 0600 in a 0700 dir: it cannot even connect
    const a = asNobody();
    assert.match(a.stderr, /exec mode \(no daemon at .*Permission denied/);
    // and with the file modes opened up, the daemon's SO_PEERCRED check refuses it
    chmodSync(join(h.dir), 0o755);
    chmodSync(join(h.dir, 'run'), 0o755);
    chmodSync(sock, 0o666);
    const b = asNobody();
    assert.match(b.stderr, /exec mode \(the daemon serves root only \(this caller is uid 65534\)\)/);
    const s1 = status();
    assert.is(s1.served, s0.served, 'nothing was served to it');
    assert.is(s1.refused, s0.refused + 1);
    for (let i = 0; i < 50 && !/uid 65534 is not root/.test(daemonLog); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(daemonLog, /uid 65534 is not root/);
  } finally {
    chmodSync(sock, 0o600);
    chmodSync(join(h.dir, 'run'), 0o700);
    chmodSync(join(h.dir), 0o700);
    rmSync(pub, { recursive: true, force: true });
  }
});

test('dm-malformed: bad requests get an error, never a crash', async () => {
  const ask = (bytes: Buffer, end = true): Promise<string> => new Promise((res) => {
    // from inside the daemon's netns would not matter: these never get that far
    const c = net.connect(sock);
    let got = Buffer.alloc(0);
    c.on('connect', () => { c.write(bytes); if (end) c.end(); });
    c.on('data', (d) => { got = Buffer.concat([got, d]); });
    c.on('close', () => res(got.length > 4 ? got.subarray(4).toString() : ''));
    c.on('error', () => res(got.length > 4 ? got.subarray(4).toString() : ''));
  });
  const frame = (s: string) => { const b = Buffer.from(s); const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
  assert.match(await ask(frame('not json')), /"error":"bad request: request is not JSON/);
  assert.match(await ask(frame('{"v":1,"op":"call","type":"../x","netns":{"dev":1,"ino":1},"env":{},"stdin":""}')), /type must be a plugin type name/);
  assert.match(await ask(frame('{"v":1,"op":"call","type":"bridge","netns":{"dev":1,"ino":1},"env":{"A":1},"stdin":""}')), /env A must be a string/);
  assert.match(await ask(frame('{"v":2}')), /unsupported request version/);
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(0xffffffff);
  assert.match(await ask(huge), /exceeds 16777216/);
  // a request from another netns (this test process is not in dm-host) is sent back
  const env = { CNI_COMMAND: 'VERSION' };
  const ns = statSync('/proc/self/ns/net');
  assert.match(await ask(frame(JSON.stringify({ v: 1, op: 'call', type: 'bridge', policy: null, netns: { dev: ns.dev, ino: ns.ino }, env, stdin: '{}' }))), /"fallback":"not here/);
  assert.ok(status(), 'still serving');
});

test('dm-concurrent: 20 concurrent ADDs all succeed with distinct leases; DELs leave nothing', async () => {
  const N = 20;
  for (let i = 0; i < N; i++) makeNetns(`${P}k${i}`);
  const c = conf('dmcon', 'daemon', '10.90.0.0/24', 'dmbr2');
  const t0 = Date.now();
  const adds = await Promise.all(Array.from({ length: N }, (_, i) => callAsync(HOST, 'ADD', c, `${P}k${i}`, `dm-k${i}`)));
  const ms = Date.now() - t0;
  for (const r of adds) {
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /served by the daemon/);
  }
  const ips = adds.map((r) => r.json.ips[0].address);
  assert.is(new Set(ips).size, N, `distinct addresses: ${ips.join(' ')}`);
  assert.is(leases('daemon', 'dmcon').length, N);
  assert.is(hostVeths(HOST).length, N);
  console.log(`    ${N} concurrent ADDs through the daemon: ${ms} ms`);
  const dels = await Promise.all(Array.from({ length: N }, (_, i) => callAsync(HOST, 'DEL', c, `${P}k${i}`, `dm-k${i}`)));
  for (const r of dels) assert.is(r.code, 0, r.stdout + r.stderr);
  assert.equal(leases('daemon', 'dmcon'), []);
  assert.equal(hostVeths(HOST), []);
  assert.equal(ledgerFiles(), []);
});

test('dm-reload: SIGHUP starts fresh workers; calls keep working', async () => {
  const s0 = status();
  daemon!.kill('SIGHUP');
  const t0 = Date.now();
  while (!/reloaded/.test(daemonLog) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
  assert.match(daemonLog, /reloaded/);
  const s1 = status();
  assert.is(s1.reloads, s0.reloads + 1);
  assert.is(s1.pid, s0.pid);
  const v = call(HOST, 'VERSION', { cniVersion: '1.0.0' }, '', 'dm-v');
  assert.is(v.code, 0);
  assert.match(v.stderr, /served by the daemon/);
});

/** n concurrent ADDs (container netns <P><tag><i>, ids <cid><i>), the daemon SIGKILLed once a few are back. */
async function addsKilledMidway(n: number, c: object, tag: string, cid: string): Promise<CniReply[]> {
  for (let i = 0; i < n; i++) makeNetns(`${P}${tag}${i}`);
  const pending = Array.from({ length: n }, (_, i) => callAsync(HOST, 'ADD', c, `${P}${tag}${i}`, `${cid}${i}`));
  // kill once a few ADDs are back: others are in flight or queued
  let back = 0;
  for (const p of pending) void p.then(() => { back++; });
  while (back < 5) await new Promise((r) => setTimeout(r, 2));
  daemon!.kill('SIGKILL');
  await stopped(daemon!);
  return Promise.all(pending);
}

test('dm-kill: SIGKILL during concurrent ADDs loses no lease; DELs leave nothing', async () => {
  const N = 20;
  const c = conf('dmkill', 'daemon', '10.91.0.0/24', 'dmbr3');
  const adds = await addsKilledMidway(N, c, 'k', 'dm-x');
  const okd = adds.filter((r) => r.code === 0);
  const lost = adds.filter((r) => r.code !== 0);
  console.log(`    killed mid-load: ${okd.length} ADDs succeeded (${okd.filter((r) => /exec mode/.test(r.stderr)).length} in exec mode after the kill), ${lost.length} failed`);
  for (const r of lost) assert.match(r.json?.msg ?? r.stdout, /daemon went away during ADD|worker stopped/, r.stdout + r.stderr);
  // every successful ADD holds its lease, each a different address
  const ips = okd.map((r) => r.json.ips[0].address.split('/')[0]);
  assert.is(new Set(ips).size, ips.length);
  const held = leases('daemon', 'dmkill');
  for (const ip of ips) assert.ok(held.includes(ip), `lease of ${ip} kept`);
  // the runtime DELs every attachment (a failed ADD too); the daemon is gone: exec mode
  const dels = await Promise.all(Array.from({ length: N }, (_, i) => callAsync(HOST, 'DEL', c, `${P}k${i}`, `dm-x${i}`)));
  for (const r of dels) {
    assert.is(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /exec mode \(no daemon at .*Connection refused/);
  }
  assert.equal(leases('daemon', 'dmkill'), []);
  assert.equal(hostVeths(HOST), []);
  for (let i = 0; i < N; i++) assert.equal(ipJson<any[]>(`${P}k${i}`, ['link', 'show']).map((l) => l.ifname), ['lo']);
  assert.equal(ledgerFiles(), []);
});

test('dm-kill-gc: SIGKILL during concurrent ADDs; a runtime GC (no DELs) keeps the listed attachments and removes the rest', async () => {
  await startDaemon();
  const N = 20;
  const c = { ...conf('dmkgc', 'daemon', '10.92.0.0/24', 'dmbr4'), cniVersion: '1.1.0' };
  const adds = await addsKilledMidway(N, c, 'g', 'dm-g');
  const okIdx = adds.map((r, i) => (r.code === 0 ? i : -1)).filter((i) => i >= 0);
  const lost = N - okIdx.length;
  console.log(`    killed mid-load: ${okIdx.length} ADDs succeeded, ${lost} failed; GC instead of DELs`);
  // the runtime lists what it knows to be attached: the ADDs that succeeded
  const valid = okIdx.map((i) => ({ containerID: `dm-g${i}`, ifname: 'eth0' }));
  const g = call(HOST, 'GC', { ...c, 'cni.dev/valid-attachments': valid }, '', 'dm-gc');
  assert.is(g.code, 0, g.stdout + g.stderr);
  const ips = okIdx.map((i) => adds[i].json.ips[0].address.split('/')[0]).sort();
  assert.equal(leases('daemon', 'dmkgc'), ips, 'exactly the listed attachments keep their leases');
  assert.is(hostVeths(HOST).length, okIdx.length, 'and their veths; the rest are gone');
  for (let i = 0; i < N; i++) {
    if (!okIdx.includes(i)) assert.equal(ipJson<any[]>(`${P}g${i}`, ['link', 'show']).map((l) => l.ifname), ['lo'], `dm-g${i} swept`);
  }
  // then the runtime DELs the live ones: nothing is left at all
  for (const i of okIdx) assert.is(call(HOST, 'DEL', c, `${P}g${i}`, `dm-g${i}`).code, 0);
  assert.equal(leases('daemon', 'dmkgc'), []);
  assert.equal(hostVeths(HOST), []);
  assert.equal(ledgerFiles(), []);
});

test('dm-down: SIGTERM finishes the call in flight; with no daemon the shim runs exec mode', async () => {
  await startDaemon();
  makeNetns(`${P}c-t`);
  const c = conf('dmterm', 'daemon', '10.92.0.0/24', 'dmbr4');
  const add = callAsync(HOST, 'ADD', c, `${P}c-t`, 'dm-t');
  await new Promise((r) => setTimeout(r, 40));
  daemon!.kill('SIGTERM');
  const [r, code] = await Promise.all([add, stopped(daemon!)]);
  assert.is(code, 0, daemonLog);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.not.ok(existsSync(sock), 'socket removed');
  assert.is(status(), null, '--check says nothing serves');
  const del = call(HOST, 'DEL', c, `${P}c-t`, 'dm-t');
  assert.is(del.code, 0, del.stdout);
  assert.match(del.stderr, /exec mode \(no daemon at .*No such file/);
  assert.equal(leases('daemon', 'dmterm'), []);
  assert.equal(hostVeths(HOST), []);
});

test('dm-stderr-gone: a daemon whose stderr reader went away still serves, and stops on SIGTERM', async () => {
  await startDaemon();
  daemon!.stderr!.destroy(); // as a closed terminal or a logger that died
  makeNetns(`${P}c-e`);
  const c = conf('dmerr', 'daemon', '10.93.0.0/24', 'dmbr6');
  const add = call(HOST, 'ADD', c, `${P}c-e`, 'dm-e');
  assert.is(add.code, 0, add.stdout + add.stderr);
  assert.match(add.stderr, /served by the daemon/);
  assert.is(call(HOST, 'DEL', c, `${P}c-e`, 'dm-e').code, 0);
  daemon!.kill('SIGTERM'); // its "stopping" lines now meet EPIPE
  const code = await Promise.race([stopped(daemon!), new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
  if (code !== 0) daemon!.kill('SIGKILL');
  assert.is(code, 0);
  assert.not.ok(existsSync(sock), 'socket removed');
  assert.equal(leases('daemon', 'dmerr'), []);
});

test.run();
