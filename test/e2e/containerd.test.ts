// A second real libcni client end to end: Debian's containerd 1.6 and its
// `ctr run --cni` (go-cni over libcni, run in the ctr process itself) serve
// two busybox containers on a bridge + host-local -> firewall -> tuning ->
// loopback chain of OUR shims. Needs root. Prefix: ctd-.
//
// Isolation (nothing here may touch the machine's own network namespace, and
// nothing may persist in /var/lib/containerd, /run/containerd or /opt):
// - containerd is started by the test with its own config: root, state, the
//   gRPC/ttrpc sockets and the opt dir in the temp dir, the CRI plugin off.
//   It runs in the throwaway netns ctd-host and in a private mount namespace
//   with a tmpfs over /run, so what it and its shims keep under
//   /run/containerd (shim sockets) vanishes with it.
// - ctr's go-cni reads the fixed dirs /etc/cni/net.d and /opt/cni/bin. Each
//   ctr command runs in ctd-host (nsenter --net: the bridge, host veth ends and
//   nft tables land there) and in its own private mount namespace where our
//   conf dir is bound over /etc/cni/net.d and a tmpfs over /opt holds
//   /opt/cni/bin -> our shim dir. The machine's /etc/cni/net.d is untouched.
// - containers run from a busybox rootfs dir (`--rootfs`), no image, no
//   snapshotter; --runc-root and --fifo-dir are temp dirs; --cgroup "" so no
//   cgroup dir is made.
// - `ctr run --rm` without --detach is the only ctr path that runs CNI DEL
//   (when the task exits): the test keeps each `ctr run` as a child process,
//   and stops a container with `ctr task kill`; DEL then runs without a
//   netns (the task is gone), as it does for containerd users.
// - libcni's result cache /var/lib/cni/results/ctd-net-<ns>-<id>-eth0 is
//   checked (libcni removes it on DEL) and removed at the end if left.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { type Harness, makeHarness, readAudit, removeHarness } from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'ctd-';
const HOST = `${P}host`;
/** a namespace outside the host side, reached only through masquerade */
const OUT = `${P}out`;
const NET = 'ctd-net';
const BRIDGE = 'ctd0';
const SUBNET = '10.78.0.0/24';
const GATEWAY = '10.78.0.1';
const OUT_HOST_IP = '10.79.0.1';
const OUT_IP = '10.79.0.2';
/** containerd namespace (go-cni's container id is "<namespace>-<id>") */
const CNS = 'ctd-e2e';
const NAMES = ['ctd-a', 'ctd-b'] as const;
const CNI_RESULTS = '/var/lib/cni/results';
const OUTSIDE_DIRS = ['/var/lib/cni/results', '/var/lib/cni'];

let h: Harness | undefined;
let dir: string;
let rootfs: string;
let daemon: ChildProcess | undefined;
let baseline: string;
const preexisting = new Set<string>();

interface Ctr { name: string; cniId: string; ip: string; proc: ChildProcess; log: string }
const ctrs: Record<string, Ctr> = {};

// ---------------------------------------------------------------- helpers

function sh(cmd: string[], timeoutMs = 120_000, env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: timeoutMs, env: env ?? process.env });
  if (r.error) throw new Error(`${cmd.join(' ')}: ${r.error.message}`);
  return r;
}

const which = (bin: string): boolean => sh(['sh', '-c', `command -v ${bin}`]).status === 0;
const sleepMs = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

/** Alive, by /proc (the event loop is blocked while a test polls, so exitCode never updates). */
function alive(p: ChildProcess | undefined): boolean {
  if (!p?.pid) return false;
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch { return false; }
}

function waitFor(what: string, pred: () => boolean, timeoutMs = 30_000): void {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    sleepMs(200);
  }
}

/** Installs what the test needs (CI runs on a clean machine). */
function ensurePackages(): void {
  const need: string[] = [];
  if (!which('containerd') || !which('ctr')) need.push('containerd');
  if (!which('runc')) need.push('runc');
  if (!existsSync('/bin/busybox')) need.push('busybox-static');
  if (!which('nsenter') || !which('unshare')) need.push('util-linux');
  if (!which('nft')) need.push('nftables');
  if (!need.length) return;
  const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = sh(['apt-get', 'install', '-y', ...need], 900_000, aptEnv);
  if (r.status !== 0) {
    sh(['apt-get', 'update'], 900_000, aptEnv);
    r = sh(['apt-get', 'install', '-y', ...need], 900_000, aptEnv);
  }
  if (r.status !== 0) throw new Error(`apt-get install -y ${need.join(' ')} failed:\n${r.stderr || r.stdout}`);
}

const sock = (): string => join(dir, 'containerd.sock');

/** ctr in ctd-host, in a private mount ns where go-cni's fixed dirs are ours. */
function ctrCmd(args: string[]): string[] {
  return ['nsenter', `--net=${netnsPath(HOST)}`, 'unshare', '--mount', '--propagation', 'private',
    'sh', join(dir, 'ctr.sh'), ...args];
}

function ctr(args: string[], opts: { check?: boolean; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const r = sh(ctrCmd(args), opts.timeoutMs ?? 60_000);
  if ((opts.check ?? true) && r.status !== 0) {
    throw new Error(`ctr ${args.join(' ')} exited ${r.status ?? r.signal}\n--- stderr ---\n${r.stderr.trim()}\n` +
      `--- stdout ---\n${r.stdout.trim()}\n--- containerd log ---\n${logTail(join(dir, 'containerd.log'))}\n` +
      `--- last audit records ---\n${auditTail()}`);
  }
  return r;
}

let execN = 0;
const cexec = (name: string, cmd: string[], check = true): SpawnSyncReturns<string> =>
  ctr(['task', 'exec', '--exec-id', `e${++execN}`, '--fifo-dir', join(dir, 'fifo'), name, ...cmd], { check });

function logTail(file: string, n = 15): string {
  try { return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n'); } catch { return '(none)'; }
}

function auditTail(n = 25): string {
  if (!h) return '(no harness)';
  try {
    return readAudit(h).slice(-n).map((r) =>
      `${r.command} ${r.plugin} ${r.containerId} ${r.call} ${JSON.stringify(r.args)} ${r.verdict} -> ${r.outcome}`).join('\n') || '(empty)';
  } catch (e) {
    return `(cannot read the audit log: ${(e as Error).message})`;
  }
}

/** What must not change in the machine's own netns (read-only looks). */
function machineNetns(): string {
  const links = (JSON.parse(sh(['ip', '-j', 'link', 'show']).stdout || '[]') as any[])
    .map((l) => `${l.ifindex}:${l.ifname}`).sort();
  const tables = sh(['nft', 'list', 'tables']).stdout.trim().split('\n').filter(Boolean).sort();
  const fwd = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  return JSON.stringify({ links, tables, fwd }, null, 1);
}

function writeConfig(): void {
  const q = (s: string) => JSON.stringify(s);
  for (const d of ['root', 'state', 'opt', 'fifo', 'runc', 'net.d', 'rootfs/bin']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'config.toml'), [
    'version = 2',
    `root = ${q(join(dir, 'root'))}`,
    `state = ${q(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${q(sock())}`,
    '[ttrpc]',
    `  address = ${q(join(dir, 'containerd.ttrpc.sock'))}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(join(dir, 'opt'))}`,
    '',
  ].join('\n'));
  // go-cni's fixed dirs, made ours inside ctr's private mount namespace
  writeFileSync(join(dir, 'ctr.sh'), [
    'set -e',
    `mount --bind ${q(join(dir, 'net.d'))} /etc/cni/net.d`,
    'mount -t tmpfs -o mode=0755 tmpfs /opt',
    'mkdir -p /opt/cni',
    `ln -s ${q(h!.bin)} /opt/cni/bin`,
    `exec ctr --address ${q(sock())} --namespace ${CNS} "$@"`,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'net.d', `10-${NET}.conflist`), JSON.stringify({
    cniVersion: '1.0.0',
    name: NET,
    plugins: [
      {
        type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'firewall' },
      { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.log_martians': '1' } },
      { type: 'loopback' },
    ],
  }, null, 2));
  rootfs = join(dir, 'rootfs');
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const app of ['sh', 'ip', 'ping', 'sleep', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', app));
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
}

function startDaemon(): void {
  const log = openSync(join(dir, 'containerd.log'), 'a');
  daemon = spawn('nsenter', [`--net=${netnsPath(HOST)}`, 'unshare', '--mount', '--propagation', 'private',
    'sh', '-c', `mount -t tmpfs tmpfs /run && exec containerd --config '${join(dir, 'config.toml')}'`],
  { stdio: ['ignore', log, log] });
  waitFor('containerd to serve its socket', () => {
    if (!alive(daemon)) throw new Error(`containerd exited:\n${logTail(join(dir, 'containerd.log'))}`);
    return existsSync(sock()) && sh(['ctr', '--address', sock(), 'version']).status === 0;
  });
}

function stopDaemon(): void {
  if (!alive(daemon)) return;
  daemon!.kill('SIGTERM');
  try {
    waitFor('containerd to stop', () => !alive(daemon), 10_000);
  } catch {
    daemon!.kill('SIGKILL');
  }
}

const cacheFile = (c: { cniId: string }): string => join(CNI_RESULTS, `${NET}-${c.cniId}-eth0`);
const tasks = (): string => ctr(['task', 'ls']).stdout;

/** `ctr run --cni --rm` kept in the foreground (a child process): the only ctr path that runs DEL. */
function runContainer(name: string): Ctr {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const cmd = ctrCmd(['run', '--cni', '--rm', '--rootfs', '--fifo-dir', join(dir, 'fifo'), '--runc-root', join(dir, 'runc'),
    '--cgroup', '', '--env', 'PATH=/bin', rootfs, name, '/bin/sleep', '600']);
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', fd, fd] });
  const c: Ctr = { name, cniId: `${CNS}-${name}`, ip: '', proc, log };
  waitFor(`${name} running with its network`, () => {
    if (!alive(proc)) throw new Error(`ctr run ${name} exited:\n${logTail(log)}\n${auditTail()}`);
    return existsSync(cacheFile(c)) && new RegExp(`^${name}\\s+\\d+\\s+RUNNING`, 'm').test(tasks());
  }, 60_000);
  const cached = JSON.parse(readFileSync(cacheFile(c), 'utf8'));
  c.ip = String(cached.result?.ips?.[0]?.address ?? '').split('/')[0];
  return c;
}

const leaseDir = (): string => join(h!.storeDir, NET);
const leases = (): string[] => (existsSync(leaseDir()) ? readdirSync(leaseDir()).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : []);
const hostVeths = (): any[] => ipJson<any[]>(HOST, ['-d', 'link', 'show']).filter((l) => l.linkinfo?.info_kind === 'veth');
const forCtr = (id: string, pred: (r: any) => boolean): any[] => readAudit(h!).filter((r) => r.containerId === id && pred(r));
/** the elements of one of our nft sets/maps in ctd-host ([] when the table is gone) */
function nftElements(table: string, set: string): string[] {
  let r = nsExec(HOST, ['nft', '-j', 'list', 'set', 'inet', table, set], { check: false });
  if (r.status !== 0) r = nsExec(HOST, ['nft', '-j', 'list', 'map', 'inet', table, set], { check: false });
  if (r.status !== 0) return [];
  const s = (JSON.parse(r.stdout).nftables as any[]).find((x) => x.set || x.map);
  return ((s?.set ?? s?.map)?.elem ?? []).map((e: any) => JSON.stringify(e));
}

function unmountUnder(d: string): string[] {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === d || m.startsWith(d + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) sh(['umount', '-l', m]);
  return mounts;
}

/** A run killed before its after hook leaves its temp dir and maybe a containerd: stop it, remove the dir. */
function reapCrashedRuns(): void {
  for (const n of readdirSync(tmpdir())) {
    const d = join(tmpdir(), n);
    const cfg = join(d, 'containerd', 'config.toml');
    if (!n.startsWith(P) || !existsSync(cfg)) continue;
    const pids = sh(['pgrep', '-f', `^containerd --config ${cfg}$`]).stdout.trim().split('\n').filter(Boolean);
    for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
    unmountUnder(d);
    rmSync(d, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- setup

test.before(() => {
  ensurePackages();
  for (const d of OUTSIDE_DIRS) if (existsSync(d)) preexisting.add(d);
  reapCrashedRuns();
  cleanupAll(P);
  baseline = machineNetns();
  makeNetns(HOST);
  makeNetns(OUT);
  // ctd-out: a network beyond the host side, with no route back to the containers
  nsExec(HOST, ['ip', 'link', 'add', 'ctd-up', 'type', 'veth', 'peer', 'name', 'ctd-down', 'netns', OUT]);
  nsExec(HOST, ['ip', 'addr', 'add', `${OUT_HOST_IP}/24`, 'dev', 'ctd-up']);
  nsExec(HOST, ['ip', 'link', 'set', 'ctd-up', 'up']);
  nsExec(OUT, ['ip', 'addr', 'add', `${OUT_IP}/24`, 'dev', 'ctd-down']);
  nsExec(OUT, ['ip', 'link', 'set', 'ctd-down', 'up']);
  h = makeHarness(P);
  dir = join(h.dir, 'containerd');
  writeConfig();
  startDaemon();
});

test.after(() => {
  const problems: string[] = [];
  for (const c of Object.values(ctrs)) {
    if (alive(c.proc)) {
      try { ctr(['task', 'kill', '-s', 'SIGKILL', c.name], { check: false }); } catch (e) { problems.push((e as Error).message); }
      try { waitFor(`ctr run ${c.name} to end`, () => !alive(c.proc), 15_000); } catch {
        c.proc.kill('SIGKILL');
        problems.push(`ctr run ${c.name} did not end`);
      }
    }
  }
  try {
    if (daemon) {
      for (const c of Object.values(ctrs)) {
        ctr(['task', 'rm', '-f', c.name], { check: false });
        ctr(['container', 'rm', c.name], { check: false });
      }
    }
  } catch (e) { problems.push((e as Error).message); }
  stopDaemon();
  for (const c of Object.values(ctrs)) rmSync(cacheFile(c), { force: true });
  cleanupAll(P);
  if (h) {
    const left = unmountUnder(h.dir);
    if (left.length) problems.push(`unmounted leftovers: ${left.join(', ')}`);
    removeHarness(h);
  }
  for (const d of OUTSIDE_DIRS) {
    if (preexisting.has(d) || !existsSync(d)) continue;
    try { if (!readdirSync(d).length) rmdirSync(d); } catch { /* someone else's now */ }
  }
  if (problems.length) console.error(`containerd e2e cleanup:\n  ${problems.join('\n  ')}`);
});

// ---------------------------------------------------------------- tests

test('containerd 1.6 runs from the temp dir; ctr sees only our conflist', () => {
  const v = sh(['ctr', '--address', sock(), 'version']).stdout;
  assert.match(v, /Server:\s+Version:\s+1\.6\./, `containerd 1.6 serving:\n${v}`);
  assert.not.ok(existsSync('/run/containerd/s'), 'no shim sockets on the machine /run (private tmpfs)');
  // inside ctr's mount namespace, go-cni's conf dir is ours alone
  const r = sh(['nsenter', `--net=${netnsPath(HOST)}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    `mount --bind '${join(dir, 'net.d')}' /etc/cni/net.d && ls /etc/cni/net.d`]);
  assert.is(r.stdout.trim(), `10-${NET}.conflist`);
});

test('ctr run --cni: two containers get addresses from our host-local', () => {
  for (const name of NAMES) ctrs[name] = runContainer(name);
  const [a, b] = NAMES.map((n) => ctrs[n]);
  for (const c of [a, b]) {
    assert.match(c.ip, /^10\.78\.0\.\d+$/, `${c.name} has an address in ${SUBNET}: ${c.ip}`);
    assert.is.not(c.ip, GATEWAY);
    const out = cexec(c.name, ['/bin/ip', '-4', 'addr', 'show', 'eth0']).stdout;
    assert.ok(out.includes(`inet ${c.ip}/24`), `${c.name} eth0:\n${out}`);
    const routes = cexec(c.name, ['/bin/ip', '-4', 'route']).stdout;
    assert.match(routes, new RegExp(`default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`), `${c.name} routes:\n${routes}`);
    // loopback (last in the chain) brought lo up
    const lo = cexec(c.name, ['/bin/ip', 'link', 'show', 'lo']).stdout;
    assert.match(lo, /<LOOPBACK,UP,LOWER_UP>/, `${c.name} lo:\n${lo}`);
    // tuning set the container sysctl
    assert.is(cexec(c.name, ['/bin/cat', '/proc/sys/net/ipv4/conf/eth0/log_martians']).stdout.trim(), '1', 'tuning sysctl');
    const lease = join(leaseDir(), c.ip);
    assert.ok(existsSync(lease), `lease ${lease} exists (leases: ${leases().join(', ')})`);
    assert.equal(readFileSync(lease, 'utf8').split(/\r?\n/), [c.cniId, 'eth0'], 'lease names the go-cni container id and ifname');
    const res = JSON.parse(readFileSync(cacheFile(c), 'utf8'));
    assert.is(res.kind, 'cniCacheV1', 'libcni cache format');
    assert.is(res.containerId, c.cniId);
    assert.equal(res.config ? JSON.parse(Buffer.from(res.config, 'base64').toString()).plugins.map((p: any) => p.type)
      : [], ['bridge', 'firewall', 'tuning', 'loopback'], 'libcni ran our chain');
  }
  assert.is.not(a.ip, b.ip);
  assert.equal(leases().sort(), [a.ip, b.ip].sort(), 'exactly the two leases');
});

test('bridge, host veths and nft elements live in ctd-host; the machine netns is unchanged', () => {
  const br = ipJson<any[]>(HOST, ['-d', 'link', 'show', 'dev', BRIDGE])[0];
  assert.is(br?.linkinfo?.info_kind, 'bridge');
  const veths = hostVeths().filter((v) => v.master === BRIDGE);
  assert.is(veths.length, 2, `two host veths on ${BRIDGE}: ${veths.map((v) => v.ifname)}`);
  const ips = Object.values(ctrs).map((c) => c.ip).sort();
  assert.equal(nftElements('cni_wasm_filter', 'accept4').map((e) => JSON.parse(e)).sort(), ips, 'firewall: both addresses accepted');
  assert.is(nftElements('cni_wasm_nat', 'masq4').length, 2, 'ipMasq: both addresses in the masquerade map');
  for (const c of Object.values(ctrs)) assert.equal(Ledger.peek(h!.stateDir, NET, c.cniId, 'eth0').length > 0, true, `ledger for ${c.name}`);
  assert.fixture(machineNetns(), baseline, 'machine netns links / nft tables / ip_forward unchanged');
});

test('connectivity: container to container, to the host side, host side to containers, out through masquerade', () => {
  const [a, b] = NAMES.map((n) => ctrs[n]);
  const ping = (c: Ctr, ip: string) => {
    const r = cexec(c.name, ['/bin/ping', '-c', '2', '-W', '3', ip], false);
    assert.is(r.status, 0, `${c.name} -> ${ip}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /2 packets received/);
  };
  ping(a, b.ip);
  ping(b, a.ip);
  ping(a, GATEWAY);
  for (const c of [a, b]) {
    const r = nsExec(HOST, ['ping', '-c', '2', '-W', '3', c.ip], { check: false });
    assert.is(r.status, 0, `${HOST} -> ${c.name}:\n${r.stdout}${r.stderr}`);
  }
  // ctd-out has no route to the containers: the replies come back only through the masquerade
  const before = nsExec(OUT, ['ip', 'route']).stdout;
  assert.not.match(before, /10\.78\./);
  ping(b, OUT_IP);
});

test('the audit log records every plugin of the chain, allowed, for both containers', () => {
  for (const c of Object.values(ctrs)) {
    const mine = forCtr(c.cniId, () => true);
    assert.ok(mine.length > 0, `audit records for ${c.name} (${c.cniId})`);
    assert.is(mine.filter((r) => r.verdict === 'deny').length, 0, `denied: ${JSON.stringify(mine.filter((r) => r.verdict === 'deny'))}`);
    for (const plugin of ['bridge', 'host-local', 'firewall', 'tuning', 'loopback']) {
      const add = mine.filter((r) => r.command === 'ADD' && r.plugin === plugin && r.call === 'invoke.add');
      assert.is(add.length, 1, `one ${plugin} ADD for ${c.name}`);
      assert.is(add[0].outcome, 'ok', `${plugin} ADD ok`);
    }
  }
});

test('ctr task kill ends the run: DEL leaves no veth, lease, ledger entry, nft element or results cache', () => {
  for (const c of Object.values(ctrs)) ctr(['task', 'kill', '-s', 'SIGKILL', c.name]);
  for (const c of Object.values(ctrs)) {
    waitFor(`ctr run ${c.name} to finish its DEL`, () => !alive(c.proc), 60_000);
    assert.not.match(readFileSync(c.log, 'utf8'), /network review|level=error/, `ctr run ${c.name}:\n${logTail(c.log)}`);
  }
  assert.not.match(ctr(['container', 'ls', '-q']).stdout, /ctd-/, 'containers removed (--rm)');
  for (const c of Object.values(ctrs)) {
    const del = forCtr(c.cniId, (r) => r.command === 'DEL' && r.call === 'invoke.del');
    for (const plugin of ['bridge', 'host-local', 'firewall', 'tuning', 'loopback']) {
      const d = del.filter((r) => r.plugin === plugin);
      assert.ok(d.length >= 1, `${plugin} DEL for ${c.name}`);
      assert.ok(d.every((r) => r.outcome === 'ok'), JSON.stringify(d));
    }
    assert.not.ok(existsSync(cacheFile(c)), `libcni dropped ${cacheFile(c)}`);
    assert.equal(Ledger.peek(h!.stateDir, NET, c.cniId, 'eth0'), [], `no ledger entry for ${c.name}`);
  }
  assert.equal(leases(), [], 'no leases left');
  assert.equal(hostVeths().filter((v) => v.ifname !== 'ctd-up').map((v) => v.ifname), [], `no container veths left in ${HOST}`);
  assert.equal(nftElements('cni_wasm_filter', 'accept4'), [], 'no firewall elements');
  assert.equal(nftElements('cni_wasm_nat', 'masq4'), [], 'no masquerade elements');
  assert.equal(Ledger.all(h!.stateDir), [], 'the ledger is empty');
  assert.fixture(machineNetns(), baseline, 'machine netns unchanged');
});

test('containerd stops cleanly and leaves nothing mounted', () => {
  stopDaemon();
  assert.not.ok(alive(daemon), 'containerd stopped');
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(dir));
  assert.equal(mounts, [], 'nothing of the temp dir mounted in the machine mount namespace');
});

test.run();
