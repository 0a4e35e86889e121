// A second real libcni client end to end: Debian's containerd 1.6 and its
// `ctr run --cni` (go-cni over libcni, run in the ctr process itself) serve
// two busybox containers on a bridge + host-local -> firewall -> tuning ->
// loopback chain of OUR shims; the same two containers run on the same chain
// of the reference plugins (/usr/lib/cni) as the control, side by side, and
// the results are compared. Needs root. Prefix: ctd-.
//
// Isolation (nothing here may touch the machine's own network namespace, and
// nothing may persist in /var/lib/containerd, /run/containerd or /opt):
// - containerd is started by the test with its own config: root, state, the
//   gRPC/ttrpc sockets and the opt dir in the temp dir, the CRI plugin off.
//   It runs in the throwaway netns ctd-daemon and in a private mount namespace
//   with a tmpfs over /run, so what it and its shims keep under
//   /run/containerd (shim sockets) vanishes with it.
// - ctr's go-cni reads the fixed dirs /etc/cni/net.d and /opt/cni/bin. Each
//   ctr command runs in its side's host netns, ctd-ours-host or ctd-ref-host
//   (nsenter --net: the bridge, host veth ends and nft tables land there), and
//   in its own private mount namespace where that side's conf dir is bound
//   over /etc/cni/net.d and a tmpfs over /opt holds /opt/cni/bin -> that
//   side's plugin dir. The machine's /etc/cni/net.d is untouched.
// - containers run from a busybox rootfs dir (`--rootfs`), no image, no
//   snapshotter; --runc-root and --fifo-dir are temp dirs; --cgroup "" so no
//   cgroup dir is made.
// - `ctr run --rm` without --detach is the only ctr path that runs CNI DEL
//   (when the task exits): the test keeps each `ctr run` as a child process,
//   and stops a container with `ctr task kill`; DEL then runs without a
//   netns (the task is gone), as it does for containerd users.
// - libcni's result cache /var/lib/cni/results/ctd-net-<ns>-<id>-eth0 is
//   checked (libcni removes it on DEL) and removed at the end if left; so is
//   the reference host-local's /var/lib/cni/networks/ctd-net.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { type Harness, REFERENCE_BIN, makeHarness, readAudit, removeHarness } from '../helpers/cni.js';
import { aptInstall, machineNetns, sh, which } from '../helpers/clients.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'ctd-';
/** where containerd itself runs (the containers' host side is the ctr's netns) */
const DAEMON_NS = `${P}daemon`;
const NET = 'ctd-net';
const BRIDGE = 'ctd0';
const SUBNET = '10.78.0.0/24';
const GATEWAY = '10.78.0.1';
const OUT_HOST_IP = '10.79.0.1';
const OUT_IP = '10.79.0.2';
/** containerd namespace (go-cni's container id is "<namespace>-<id>") */
const CNS = 'ctd-e2e';
const NAMES = ['a', 'b'] as const;
const CNI_RESULTS = '/var/lib/cni/results';
const REF_LEASES = '/var/lib/cni/networks';
const OUTSIDE_DIRS = [CNI_RESULTS, REF_LEASES, '/var/lib/cni'];
const PLUGINS = ['bridge', 'host-local', 'firewall', 'tuning', 'loopback'];

let h: Harness | undefined;
let dir: string;
let rootfs: string;
let daemon: ChildProcess | undefined;
let baseline: string;
const preexisting = new Set<string>();

interface Ctr { name: string; cniId: string; ip: string; proc: ChildProcess; log: string }
interface Side {
  label: 'ours' | 'ref';
  bin: string;
  /** the containers' host side (the ctr processes run here) */
  host: string;
  /** a namespace beyond the host side, reached only through the masquerade */
  out: string;
  ctrs: Partial<Record<typeof NAMES[number], Ctr>>;
}
const sides: Side[] = [];
const ours = (): Side => sides[0];

// ---------------------------------------------------------------- helpers


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
  aptInstall(need);
}

const sock = (): string => join(dir, 'containerd.sock');

/** ctr in the side's host netns, in a private mount ns where go-cni's fixed dirs are that side's. */
function ctrCmd(s: Side, args: string[]): string[] {
  return ['nsenter', `--net=${netnsPath(s.host)}`, 'unshare', '--mount', '--propagation', 'private',
    'sh', join(dir, `ctr-${s.label}.sh`), ...args];
}

function ctr(args: string[], opts: { check?: boolean; timeoutMs?: number; side?: Side } = {}): SpawnSyncReturns<string> {
  const r = sh(opts.side ? ctrCmd(opts.side, args) : ['ctr', '--address', sock(), '--namespace', CNS, ...args], opts.timeoutMs ?? 60_000);
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


function writeConfig(): void {
  const q = (s: string) => JSON.stringify(s);
  const conflist = JSON.stringify({
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
  }, null, 2);
  for (const d of ['root', 'state', 'opt', 'fifo', 'runc', 'rootfs/bin']) mkdirSync(join(dir, d), { recursive: true });
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
  for (const s of sides) {
    // go-cni's fixed dirs, made this side's inside ctr's private mount namespace
    mkdirSync(join(dir, `net.d-${s.label}`));
    writeFileSync(join(dir, `ctr-${s.label}.sh`), [
      'set -e',
      `mount --bind ${q(join(dir, `net.d-${s.label}`))} /etc/cni/net.d`,
      'mount -t tmpfs -o mode=0755 tmpfs /opt',
      'mkdir -p /opt/cni',
      `ln -s ${q(s.bin)} /opt/cni/bin`,
      `exec ctr --address ${q(sock())} --namespace ${CNS} "$@"`,
      '',
    ].join('\n'));
    writeFileSync(join(dir, `net.d-${s.label}`, `10-${NET}.conflist`), conflist);
  }
  rootfs = join(dir, 'rootfs');
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const app of ['sh', 'ip', 'ping', 'sleep', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', app));
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
}

function startDaemon(): void {
  const log = openSync(join(dir, 'containerd.log'), 'a');
  daemon = spawn('nsenter', [`--net=${netnsPath(DAEMON_NS)}`, 'unshare', '--mount', '--propagation', 'private',
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
const ctrName = (s: Side, n: typeof NAMES[number]): string => `${P}${s.label}-${n}`;
function get(s: Side, n: typeof NAMES[number]): Ctr {
  const c = s.ctrs[n];
  if (!c) throw new Error(`[${s.label}] container ${n} was not started (an earlier test failed)`);
  return c;
}

/** `ctr run --cni --rm` kept in the foreground (a child process): the only ctr path that runs DEL. */
function runContainer(s: Side, n: typeof NAMES[number]): Ctr {
  const name = ctrName(s, n);
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const cmd = ctrCmd(s, ['run', '--cni', '--rm', '--rootfs', '--fifo-dir', join(dir, 'fifo'), '--runc-root', join(dir, 'runc'),
    '--cgroup', '', '--env', 'PATH=/bin', rootfs, name, '/bin/sleep', '600']);
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', fd, fd] });
  const c: Ctr = { name, cniId: `${CNS}-${name}`, ip: '', proc, log };
  s.ctrs[n] = c;
  waitFor(`${name} running with its network`, () => {
    if (!alive(proc)) throw new Error(`ctr run ${name} exited:\n${logTail(log)}\n${s.label === 'ours' ? auditTail() : ''}`);
    return existsSync(cacheFile(c)) && new RegExp(`^${name}\\s+\\d+\\s+RUNNING`, 'm').test(tasks());
  }, 60_000);
  const cached = JSON.parse(readFileSync(cacheFile(c), 'utf8'));
  c.ip = String(cached.result?.ips?.[0]?.address ?? '').split('/')[0];
  return c;
}

const leaseDir = (s: Side): string => (s.label === 'ours' ? join(h!.storeDir, NET) : join(REF_LEASES, NET));
const leases = (s: Side): string[] => (existsSync(leaseDir(s)) ? readdirSync(leaseDir(s)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort() : []);
const hostVeths = (s: Side): any[] => ipJson<any[]>(s.host, ['-d', 'link', 'show'])
  .filter((l) => l.linkinfo?.info_kind === 'veth' && l.ifname !== 'ctd-up');
const forCtr = (id: string, pred: (r: any) => boolean): any[] => readAudit(h!).filter((r) => r.containerId === id && pred(r));
/** the elements of one of our nft sets/maps in our host netns ([] when the table is gone) */
function nftElements(table: string, set: string): string[] {
  let r = nsExec(ours().host, ['nft', '-j', 'list', 'set', 'inet', table, set], { check: false });
  if (r.status !== 0) r = nsExec(ours().host, ['nft', '-j', 'list', 'map', 'inet', table, set], { check: false });
  if (r.status !== 0) return [];
  const x = (JSON.parse(r.stdout).nftables as any[]).find((y) => y.set || y.map);
  return ((x?.set ?? x?.map)?.elem ?? []).map((e: any) => JSON.stringify(e));
}
/** lines of the host side's whole nft ruleset (ours, or the reference's iptables-nft) naming an address */
const rulesNaming = (s: Side, ip: string): string[] =>
  nsExec(s.host, ['nft', 'list', 'ruleset']).stdout.split('\n').filter((l) => new RegExp(`\\b${ip.replace(/\./g, '\\.')}\\b`).test(l));

/** Runs fn per side and asserts ours == the reference (and == expected when given). */
function sideBySide<T>(what: string, fn: (s: Side) => T, expected?: T): void {
  const [o, r] = sides.map(fn);
  if (expected !== undefined) {
    assert.equal(o, expected, `[ours] ${what}`);
    assert.equal(r, expected, `[ref] ${what}`);
  }
  assert.equal(o, r, `${what}: ours (${JSON.stringify(o)}) vs the reference (${JSON.stringify(r)})`);
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

function makeSide(label: 'ours' | 'ref', bin: string): Side {
  const host = `${P}${label}-host`;
  const out = `${P}${label}-out`;
  makeNetns(host);
  makeNetns(out);
  // the out netns: a network beyond the host side, with no route back to the containers
  nsExec(host, ['ip', 'link', 'add', 'ctd-up', 'type', 'veth', 'peer', 'name', 'ctd-down', 'netns', out]);
  nsExec(host, ['ip', 'addr', 'add', `${OUT_HOST_IP}/24`, 'dev', 'ctd-up']);
  nsExec(host, ['ip', 'link', 'set', 'ctd-up', 'up']);
  nsExec(out, ['ip', 'addr', 'add', `${OUT_IP}/24`, 'dev', 'ctd-down']);
  nsExec(out, ['ip', 'link', 'set', 'ctd-down', 'up']);
  return { label, bin, host, out, ctrs: {} };
}

// ---------------------------------------------------------------- setup

test.before(() => {
  ensurePackages();
  for (const d of OUTSIDE_DIRS) if (existsSync(d)) preexisting.add(d);
  if (existsSync(join(REF_LEASES, NET))) preexisting.add(join(REF_LEASES, NET));
  reapCrashedRuns();
  cleanupAll(P);
  baseline = machineNetns();
  makeNetns(DAEMON_NS);
  h = makeHarness(P);
  sides.push(makeSide('ours', h.bin), makeSide('ref', REFERENCE_BIN));
  dir = join(h.dir, 'containerd');
  writeConfig();
  startDaemon();
});

test.after(() => {
  const problems: string[] = [];
  const all = sides.flatMap((s) => Object.values(s.ctrs)).filter((c): c is Ctr => !!c);
  for (const c of all) {
    if (!alive(c.proc)) continue;
    try { ctr(['task', 'kill', '-s', 'SIGKILL', c.name], { check: false }); } catch (e) { problems.push((e as Error).message); }
    try { waitFor(`ctr run ${c.name} to end`, () => !alive(c.proc), 15_000); } catch {
      c.proc.kill('SIGKILL');
      problems.push(`ctr run ${c.name} did not end`);
    }
  }
  try {
    if (alive(daemon)) {
      for (const c of all) {
        ctr(['task', 'rm', '-f', c.name], { check: false });
        ctr(['container', 'rm', c.name], { check: false });
      }
    }
  } catch (e) { problems.push((e as Error).message); }
  stopDaemon();
  for (const c of all) rmSync(cacheFile(c), { force: true });
  cleanupAll(P);
  if (h) {
    const left = unmountUnder(h.dir);
    if (left.length) problems.push(`unmounted leftovers: ${left.join(', ')}`);
    removeHarness(h);
  }
  if (!preexisting.has(join(REF_LEASES, NET))) rmSync(join(REF_LEASES, NET), { recursive: true, force: true });
  for (const d of OUTSIDE_DIRS) {
    if (preexisting.has(d) || !existsSync(d)) continue;
    try { if (!readdirSync(d).length) rmdirSync(d); } catch { /* someone else's now */ }
  }
  if (problems.length) console.error(`containerd e2e cleanup:\n  ${problems.join('\n  ')}`);
});

// ---------------------------------------------------------------- tests

test('containerd 1.6 runs from the temp dir; each side\'s ctr sees only its conflist and plugin dir', () => {
  const v = sh(['ctr', '--address', sock(), 'version']).stdout;
  assert.match(v, /Server:\s+Version:\s+1\.6\./, `containerd 1.6 serving:\n${v}`);
  assert.not.ok(existsSync('/run/containerd/s'), 'no shim sockets on the machine /run (private tmpfs)');
  for (const s of sides) {
    // what ctr's go-cni sees, through the same wrapper (its last line execs ctr: replace it by a look)
    const look = readFileSync(join(dir, `ctr-${s.label}.sh`), 'utf8').replace(/^exec ctr .*$/m, 'ls /etc/cni/net.d; readlink /opt/cni/bin');
    const r = sh(['nsenter', `--net=${netnsPath(s.host)}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', look]);
    assert.equal(r.stdout.trim().split('\n'), [`10-${NET}.conflist`, s.bin], `[${s.label}] go-cni's dirs`);
  }
});

test('ctr run --cni: two containers per side, the same addresses, leases and chain', () => {
  for (const s of sides) for (const n of NAMES) runContainer(s, n);
  sideBySide('addresses', (s) => NAMES.map((n) => get(s, n).ip));
  sideBySide('what the containers see', (s) => NAMES.map((n) => {
    const c = get(s, n);
    const addr = cexec(c.name, ['/bin/ip', '-4', 'addr', 'show', 'eth0']).stdout;
    const route = cexec(c.name, ['/bin/ip', '-4', 'route']).stdout;
    const lo = cexec(c.name, ['/bin/ip', 'link', 'show', 'lo']).stdout;
    return {
      eth0: addr.includes(`inet ${c.ip}/24`),
      defaultRoute: new RegExp(`default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`).test(route),
      loUp: /<LOOPBACK,UP,LOWER_UP>/.test(lo), // loopback, last in the chain
      logMartians: cexec(c.name, ['/bin/cat', '/proc/sys/net/ipv4/conf/eth0/log_martians']).stdout.trim(), // tuning
    };
  }), NAMES.map(() => ({ eth0: true, defaultRoute: true, loUp: true, logMartians: '1' })));
  sideBySide('leases', (s) => NAMES.map((n) => {
    const c = get(s, n);
    return readFileSync(join(leaseDir(s), c.ip), 'utf8').split(/\r?\n/).map((x) => x.replace(`-${s.label}-`, '-X-'));
  }));
  sideBySide('libcni result cache', (s) => NAMES.map((n) => {
    const c = get(s, n);
    const res = JSON.parse(readFileSync(cacheFile(c), 'utf8'));
    return {
      kind: res.kind, id: res.containerId === c.cniId,
      chain: JSON.parse(Buffer.from(res.config, 'base64').toString()).plugins.map((p: any) => p.type),
    };
  }), NAMES.map(() => ({ kind: 'cniCacheV1', id: true, chain: ['bridge', 'firewall', 'tuning', 'loopback'] })));
  for (const s of sides) {
    assert.equal(leases(s), NAMES.map((n) => get(s, n).ip).sort(), `[${s.label}] exactly the two leases`);
    assert.match(get(s, 'a').ip, /^10\.78\.0\.\d+$/);
  }
});

test('bridge, host veths and firewall/masquerade state live in the host netns; the machine netns is unchanged', () => {
  sideBySide('host side', (s) => ({
    bridge: ipJson<any[]>(s.host, ['-d', 'link', 'show', 'dev', BRIDGE])[0]?.linkinfo?.info_kind,
    veths: hostVeths(s).filter((v) => v.master === BRIDGE).length,
    rulesNamingEach: NAMES.map((n) => rulesNaming(s, get(s, n).ip).length > 0),
  }), { bridge: 'bridge', veths: 2, rulesNamingEach: [true, true] });
  const ips = NAMES.map((n) => get(ours(), n).ip).sort();
  assert.equal(nftElements('cni_wasm_filter', 'accept4').map((e) => JSON.parse(e)).sort(), ips, 'firewall: both addresses accepted');
  assert.is(nftElements('cni_wasm_nat', 'masq4').length, 2, 'ipMasq: both addresses in the masquerade map');
  for (const n of NAMES) assert.ok(Ledger.peek(h!.stateDir, NET, get(ours(), n).cniId, 'eth0').length > 0, `ledger for ${n}`);
  assert.fixture(machineNetns(), baseline, 'machine netns links / nft tables / ip_forward unchanged');
});

test('connectivity: container to container, to the host side, host side to containers, out through masquerade', () => {
  sideBySide('connectivity', (s) => {
    const ping = (n: typeof NAMES[number], ip: string): string => {
      const r = cexec(get(s, n).name, ['/bin/ping', '-c', '2', '-W', '3', ip], false);
      return r.status === 0 && /2 packets received/.test(r.stdout) ? 'ok' : `FAILED: ${r.stdout}${r.stderr}`;
    };
    const fromHost = (n: typeof NAMES[number]): string => {
      const r = nsExec(s.host, ['ping', '-c', '2', '-W', '3', get(s, n).ip], { check: false });
      return r.status === 0 ? 'ok' : `FAILED: ${r.stdout}${r.stderr}`;
    };
    // the out netns has no route to the containers: replies come back only through the masquerade
    assert.not.match(nsExec(s.out, ['ip', 'route']).stdout, /10\.78\./);
    return {
      'a -> b': ping('a', get(s, 'b').ip), 'b -> a': ping('b', get(s, 'a').ip), 'a -> gateway': ping('a', GATEWAY),
      'host -> a': fromHost('a'), 'host -> b': fromHost('b'), 'b -> out': ping('b', OUT_IP),
    };
  }, { 'a -> b': 'ok', 'b -> a': 'ok', 'a -> gateway': 'ok', 'host -> a': 'ok', 'host -> b': 'ok', 'b -> out': 'ok' });
});

test('our audit log records every plugin of the chain, allowed, for both containers', () => {
  for (const n of NAMES) {
    const c = get(ours(), n);
    const mine = forCtr(c.cniId, () => true);
    assert.ok(mine.length > 0, `audit records for ${c.name} (${c.cniId})`);
    assert.is(mine.filter((r) => r.verdict === 'deny').length, 0, `denied: ${JSON.stringify(mine.filter((r) => r.verdict === 'deny'))}`);
    for (const plugin of PLUGINS) {
      const add = mine.filter((r) => r.command === 'ADD' && r.plugin === plugin && r.call === 'invoke.add');
      assert.is(add.length, 1, `one ${plugin} ADD for ${c.name}`);
      assert.is(add[0].outcome, 'ok', `${plugin} ADD ok`);
    }
  }
});

test('ctr task kill ends the run: DEL leaves no veth, lease, ledger entry, nft rule or results cache', () => {
  for (const s of sides) for (const n of NAMES) ctr(['task', 'kill', '-s', 'SIGKILL', get(s, n).name]);
  sideBySide('after the tasks ended', (s) => {
    for (const n of NAMES) waitFor(`ctr run ${get(s, n).name} to finish its DEL`, () => !alive(get(s, n).proc), 60_000);
    return {
      ctrErrors: NAMES.filter((n) => /network review|level=error/.test(readFileSync(get(s, n).log, 'utf8'))),
      containers: ctr(['container', 'ls', '-q']).stdout.split('\n').filter((l) => l.startsWith(`${P}${s.label}-`)),
      caches: NAMES.filter((n) => existsSync(cacheFile(get(s, n)))),
      leases: leases(s),
      veths: hostVeths(s).map((v) => v.ifname),
    };
  }, { ctrErrors: [], containers: [], caches: [], leases: [], veths: [] });
  // Better than the reference: containerd's DEL comes without a netns (the
  // task is gone), and the reference bridge then only releases the IPAM lease
  // and returns, leaving its ipMasq rules (one per container) behind. Ours
  // removes everything its ledger recorded, netns or not.
  assert.equal(NAMES.flatMap((n) => rulesNaming(ours(), get(ours(), n).ip)), [], '[ours] no nft rule or element names a container address');
  const refLeft = NAMES.flatMap((n) => rulesNaming(sides[1], get(sides[1], n).ip));
  assert.is(refLeft.length, 2, `[ref] the reference's known leak: its two masquerade rules stay:\n${refLeft.join('\n')}`);
  assert.ok(refLeft.every((l) => /ip saddr \S+ .*jump CNI-/.test(l)), refLeft.join('\n'));
  for (const n of NAMES) {
    const c = get(ours(), n);
    const del = forCtr(c.cniId, (r) => r.command === 'DEL' && r.call === 'invoke.del');
    for (const plugin of PLUGINS) {
      const d = del.filter((r) => r.plugin === plugin);
      assert.ok(d.length >= 1, `${plugin} DEL for ${c.name}`);
      assert.ok(d.every((r) => r.outcome === 'ok'), JSON.stringify(d));
    }
    assert.equal(Ledger.peek(h!.stateDir, NET, c.cniId, 'eth0'), [], `no ledger entry for ${c.name}`);
  }
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
