// podman's OWN networks end to end, with ONLY our shims in cni_plugin_dirs:
// Debian's podman 4.3 (CNI backend) runs what it writes itself — the 0.4.0
// conflist of `podman network create` (bridge + portmap + firewall + tuning)
// and its default network (the same chain, generated in memory). The SAME
// scenario runs with the reference dir (/usr/lib/cni) as the control, side by
// side, and every observable result is compared. Needs root. Prefix: cwc-.
//
// Both chains name `portmap`: our side needs dist/plugins/portmap (the portmap
// plugin). Without it every podman command on those networks fails (plugin
// not found), so the tests of our side run ONLY when dist/plugins/portmap
// exists; the reference control always runs.
//
// Isolation, as test/e2e/podman.test.ts (read its header): each side has its
// own throwaway "host" netns (cwc-ours-host / cwc-ref-host, entered with
// `nsenter --net`), a netns beyond it (cwc-*-out, a veth to the host side and
// no route to the containers), a temp CONTAINERS_CONF (network_backend "cni",
// cni_plugin_dirs = that side's dir only, network_config_dir temp,
// default_network "cwc-default" so podman's default network cannot meet the
// machine's own "podman" network's leases) and a temp CONTAINERS_STORAGE_CONF
// (vfs). Containers run from a busybox rootfs dir. What libcni and the
// reference host-local keep outside the temp dirs (/var/lib/cni/results
// entries, /var/lib/cni/networks/cwc-*) is checked and removed at the end.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { type Harness, REFERENCE_BIN, ROOT, makeHarness, readAudit, removeHarness } from '../helpers/cni.js';
import { aptInstall, auditLines, machineNetns, podmanEnv, sh, ulimit, which } from '../helpers/clients.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'cwc-';
const NET = 'cwc-net';
const DEFAULT_NET = 'cwc-default';
const OUT_HOST_IP = '10.90.0.1';
const OUT_IP = '10.90.0.2';
const HOST_PORT = 8080;
const CNI_RESULTS = '/var/lib/cni/results';
const REF_LEASES = '/var/lib/cni/networks';
const OUTSIDE_DIRS = [CNI_RESULTS, REF_LEASES, '/var/lib/cni', '/run/runc'];
/** our side needs the portmap plugin: podman's own chains name it */
const HAVE_PORTMAP = existsSync(join(ROOT, 'dist/plugins/portmap'));
/** web (-p 8080:80) and static (--ip) on cwc-net, two on the default network */
const CTRS = ['web', 'fixed', 'def1', 'def2'] as const;
type CtrName = typeof CTRS[number];

interface Ctr { name: string; id: string; net: string; ip: string; sandbox: string }
interface Side {
  label: 'ours' | 'ref';
  bin: string;
  host: string;
  out: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  rootfs: string;
  h?: Harness;
  ctrs: Partial<Record<CtrName, Ctr>>;
  sandboxes: Set<string>;
  subnet?: string;
  gateway?: string;
}

const sides: Side[] = [];
let baseline: string;
const preexisting = new Set<string>();

// ---------------------------------------------------------------- helpers



function ensurePackages(): void {
  const need: string[] = [];
  if (!which('podman')) need.push('podman');
  if (!which('runc')) need.push('runc');
  if (!existsSync('/bin/busybox')) need.push('busybox-static');
  if (!which('nsenter')) need.push('util-linux');
  if (!which('nft')) need.push('nftables');
  if (!which('iptables')) need.push('iptables'); // the reference portmap/firewall/bridge ipMasq
  if (!existsSync(join(REFERENCE_BIN, 'portmap'))) need.push('containernetworking-plugins');
  aptInstall(need);
}

function podman(s: Side, args: string[], opts: { check?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv; host?: string } = {}): SpawnSyncReturns<string> {
  const cmd = ['nsenter', `--net=${netnsPath(opts.host ?? s.host)}`, 'podman', ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: opts.env ?? s.env, timeout: opts.timeoutMs ?? 180_000 });
  if (r.error) throw new Error(`[${s.label}] podman ${args.join(' ')}: ${r.error.message}`);
  if ((opts.check ?? true) && r.status !== 0) {
    throw new Error(`[${s.label}] podman ${args.join(' ')} exited ${r.status ?? r.signal}\n` +
      `--- podman stderr ---\n${r.stderr.trim()}\n--- podman stdout ---\n${r.stdout.trim()}\n` +
      `--- last audit records ---\n${auditTail(s)}`);
  }
  return r;
}

const auditTail = (s: Side, n = 25): string => (s.h ? auditLines(() => readAudit(s.h!), n) : '(reference side: no audit)');



function writeConfig(dir: string, binDir: string): string {
  const q = (s: string) => JSON.stringify(s);
  for (const d of ['net.d', 'graphroot', 'runroot', 'tmp', 'rootfs/bin', 'rootfs/www']) mkdirSync(join(dir, d), { recursive: true });
  const nofile = ulimit('Max open files', 1024);
  const nproc = ulimit('Max processes', 1024);
  writeFileSync(join(dir, 'containers.conf'), [
    '[containers]',
    `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
    'pids_limit = 0',
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `tmp_dir = ${q(join(dir, 'tmp'))}`,
    '[network]',
    'network_backend = "cni"',
    `cni_plugin_dirs = [${q(binDir)}]`,
    `network_config_dir = ${q(join(dir, 'net.d'))}`,
    `default_network = ${q(DEFAULT_NET)}`,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'storage.conf'), [
    '[storage]',
    'driver = "vfs"',
    `graphroot = ${q(join(dir, 'graphroot'))}`,
    `runroot = ${q(join(dir, 'runroot'))}`,
    '',
  ].join('\n'));
  const rootfs = join(dir, 'rootfs');
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const app of ['sh', 'ip', 'ping', 'sleep', 'cat', 'httpd', 'wget', 'timeout']) symlinkSync('busybox', join(rootfs, 'bin', app));
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
  writeFileSync(join(rootfs, 'www/index.html'), 'hello from cwc\n');
  return rootfs;
}

function makeSide(label: 'ours' | 'ref'): Side {
  const host = `${P}${label}-host`;
  const out = `${P}${label}-out`;
  makeNetns(host);
  makeNetns(out);
  nsExec(host, ['ip', 'link', 'add', 'cwc-up', 'type', 'veth', 'peer', 'name', 'cwc-down', 'netns', out]);
  nsExec(host, ['ip', 'addr', 'add', `${OUT_HOST_IP}/24`, 'dev', 'cwc-up']);
  nsExec(host, ['ip', 'link', 'set', 'cwc-up', 'up']);
  nsExec(out, ['ip', 'addr', 'add', `${OUT_IP}/24`, 'dev', 'cwc-down']);
  nsExec(out, ['ip', 'link', 'set', 'cwc-down', 'up']);
  let h: Harness | undefined;
  let base: string;
  let bin: string;
  if (label === 'ours') {
    h = makeHarness(`${P}ours-`);
    base = h.dir;
    bin = h.bin;
  } else {
    base = mkdtempSync(join(tmpdir(), `${P}ref-`));
    bin = REFERENCE_BIN;
  }
  const dir = join(base, 'podman');
  const rootfs = writeConfig(dir, bin);
  return { label, bin, host, out, dir, env: podmanEnv(dir), rootfs, h, ctrs: {}, sandboxes: new Set() };
}

function inspect(s: Side, name: string, net: string): Ctr {
  const j = JSON.parse(podman(s, ['inspect', '--type', 'container', name]).stdout)[0];
  const n = j?.NetworkSettings?.Networks?.[net];
  assert.ok(n, `[${s.label}] podman inspect ${name}: no ${net} network in ${JSON.stringify(j?.NetworkSettings)}`);
  const c: Ctr = { name, id: j.Id, net, ip: n.IPAddress, sandbox: j.NetworkSettings.SandboxKey };
  if (c.sandbox) s.sandboxes.add(c.sandbox);
  return c;
}

const ctrName = (s: Side, n: CtrName): string => `${P}${s.label}-${n}`;
const ctr = (s: Side, n: CtrName): Ctr => {
  const c = s.ctrs[n];
  if (!c) throw new Error(`[${s.label}] container ${n} was not started (an earlier test failed)`);
  return c;
};
const leasePath = (s: Side, c: Ctr): string => (s.h ? join(s.h.storeDir, c.net, c.ip) : join(REF_LEASES, c.net, c.ip));
function leases(s: Side, net: string): string[] {
  const d = s.h ? join(s.h.storeDir, net) : join(REF_LEASES, net);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort() : [];
}
const hostVeths = (s: Side): string[] => ipJson<any[]>(s.host, ['-d', 'link', 'show'])
  .filter((l) => l.linkinfo?.info_kind === 'veth' && l.ifname !== 'cwc-up').map((l) => l.ifname);
const cacheFile = (c: Ctr): string => join(CNI_RESULTS, `${c.net}-${c.id}-eth0`);
/** lines of the host side's whole nft ruleset (ours and the reference's iptables-nft) naming an address */
const rulesNaming = (s: Side, ip: string): string[] =>
  nsExec(s.host, ['nft', 'list', 'ruleset']).stdout.split('\n').filter((l) => new RegExp(`\\b${ip.replace(/\./g, '\\.')}\\b`).test(l));

/** an HTTP GET with busybox wget (its -T crashes; timeout(1) bounds it) */
function httpGet(ns: string, url: string): string {
  const r = nsExec(ns, ['busybox', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', url], { check: false, timeoutMs: 15_000 });
  return r.status === 0 ? r.stdout : `FAILED (${r.status}) ${r.stderr.trim()}`;
}
function httpGetIn(s: Side, name: CtrName, url: string): string {
  const r = podman(s, ['exec', ctrName(s, name), 'timeout', '5', 'wget', '-q', '-O', '-', url], { check: false, timeoutMs: 30_000 });
  return r.status === 0 ? r.stdout : `FAILED (${r.status}) ${r.stderr.trim()}`;
}
function pingIn(s: Side, name: CtrName, ip: string): string {
  const r = podman(s, ['exec', ctrName(s, name), 'ping', '-c', '2', '-W', '3', ip], { check: false, timeoutMs: 30_000 });
  return r.status === 0 && /2 packets received/.test(r.stdout) ? 'ok' : `FAILED: ${r.stdout}${r.stderr}`;
}

function unmountUnder(dir: string): string[] {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) sh(['umount', '-l', m]);
  return mounts;
}

function reapCrashedRuns(): void {
  for (const n of readdirSync(tmpdir())) {
    const dir = join(tmpdir(), n);
    const conf = join(dir, 'podman', 'containers.conf');
    if (!n.startsWith(P) || !existsSync(conf)) continue;
    spawnSync('podman', ['rm', '--all', '--force', '--time', '0'], { env: podmanEnv(join(dir, 'podman')), timeout: 120_000 });
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** the sides under test: our side only with the portmap plugin built */
const active = (): Side[] => sides;
const ours = (): Side | undefined => sides.find((s) => s.label === 'ours');
const ref = (): Side => sides.find((s) => s.label === 'ref')!;

/** Runs fn per side and, with both sides present, asserts ours == ref. */
function sideBySide<T>(what: string, fn: (s: Side) => T, expected?: (s: Side) => T): void {
  const got = active().map((s) => ({ s, v: fn(s) }));
  for (const { s, v } of got) if (expected) assert.equal(v, expected(s), `[${s.label}] ${what}`);
  if (got.length === 2) assert.equal(got[0].v, got[1].v, `${what}: ours (${JSON.stringify(got[0].v)}) vs the reference (${JSON.stringify(got[1].v)})`);
}

// ---------------------------------------------------------------- setup

test.before(() => {
  ensurePackages();
  for (const d of OUTSIDE_DIRS) if (existsSync(d)) preexisting.add(d);
  for (const n of [NET, DEFAULT_NET]) if (existsSync(join(REF_LEASES, n))) preexisting.add(join(REF_LEASES, n));
  reapCrashedRuns();
  cleanupAll(P);
  baseline = machineNetns();
  if (HAVE_PORTMAP) sides.push(makeSide('ours'));
  else console.log('podman-chain: dist/plugins/portmap is not built: our side SKIPPED, only the reference control runs');
  sides.push(makeSide('ref'));
});

test.after(() => {
  const problems: string[] = [];
  for (const s of sides) {
    try {
      const r = podman(s, ['rm', '--all', '--force', '--time', '0'], { check: false });
      if (r.status !== 0) problems.push(`[${s.label}] podman rm --all: ${r.stderr.trim()}`);
    } catch (e) { problems.push((e as Error).message); }
    for (const sb of s.sandboxes) {
      if (!existsSync(sb)) continue;
      sh(['umount', sb]);
      try { rmSync(sb, { force: true }); } catch (e) { problems.push(`${sb}: ${(e as Error).message}`); }
    }
    for (const c of Object.values(s.ctrs)) if (c) rmSync(cacheFile(c), { force: true });
    const base = join(s.dir, '..');
    const left = unmountUnder(base);
    if (left.length) problems.push(`[${s.label}] unmounted leftovers: ${left.join(', ')}`);
    if (s.h) removeHarness(s.h);
    else rmSync(base, { recursive: true, force: true });
  }
  cleanupAll(P);
  for (const n of [NET, DEFAULT_NET]) {
    const d = join(REF_LEASES, n);
    if (!preexisting.has(d)) rmSync(d, { recursive: true, force: true });
  }
  for (const d of OUTSIDE_DIRS) {
    if (preexisting.has(d) || !existsSync(d)) continue;
    try { if (!readdirSync(d).length) rmdirSync(d); } catch { /* someone else's now */ }
  }
  if (problems.length) console.error(`podman-chain e2e cleanup:\n  ${problems.join('\n  ')}`);
});

// ---------------------------------------------------------------- tests

test('podman uses the CNI backend with only this side\'s plugin dir', () => {
  for (const s of active()) {
    const info = JSON.parse(podman(s, ['info', '--format', 'json']).stdout);
    assert.is(info.host?.networkBackend, 'cni', `[${s.label}] network backend`);
  }
  sideBySide('the default network as podman reports it', (s) => {
    const n = JSON.parse(podman(s, ['network', 'inspect', DEFAULT_NET]).stdout)[0];
    return { driver: n?.driver, iface: n?.network_interface, subnet: n?.subnets?.[0]?.subnet };
  });
});

test('podman network create writes its 0.4.0 bridge + portmap + firewall + tuning conflist', () => {
  sideBySide('the conflist podman wrote', (s) => {
    podman(s, ['network', 'create', NET]);
    const conf = JSON.parse(readFileSync(join(s.dir, 'net.d', `${NET}.conflist`), 'utf8'));
    const n = JSON.parse(podman(s, ['network', 'inspect', NET]).stdout)[0];
    s.subnet = n.subnets[0].subnet;
    s.gateway = n.subnets[0].gateway;
    return conf;
  });
  const conf = JSON.parse(readFileSync(join(ref().dir, 'net.d', `${NET}.conflist`), 'utf8'));
  assert.is(conf.cniVersion, '0.4.0');
  assert.equal(conf.plugins.map((p: any) => p.type), ['bridge', 'portmap', 'firewall', 'tuning']);
});

const fixedIp = (s: Side): string => s.subnet!.replace(/\.0\/24$/, '.50');

test('containers on cwc-net (-p 8080:80, --ip) and on the default network get the same addresses', () => {
  sideBySide('container addresses', (s) => {
    podman(s, ['run', '-d', '--name', ctrName(s, 'web'), '--network', NET, '-p', `${HOST_PORT}:80`, '--rootfs', s.rootfs,
      'httpd', '-f', '-p', '80', '-h', '/www']);
    s.ctrs.web = inspect(s, ctrName(s, 'web'), NET);
    podman(s, ['run', '-d', '--name', ctrName(s, 'fixed'), '--network', NET, '--ip', fixedIp(s), '--rootfs', s.rootfs, 'sleep', '600']);
    s.ctrs.fixed = inspect(s, ctrName(s, 'fixed'), NET);
    for (const n of ['def1', 'def2'] as const) {
      podman(s, ['run', '-d', '--name', ctrName(s, n), '--rootfs', s.rootfs, 'sleep', '600']);
      s.ctrs[n] = inspect(s, ctrName(s, n), DEFAULT_NET);
    }
    return CTRS.map((n) => `${n}=${ctr(s, n).ip}`);
  });
  for (const s of active()) {
    assert.is(ctr(s, 'fixed').ip, fixedIp(s), `[${s.label}] --ip`);
    for (const n of CTRS) {
      const c = ctr(s, n);
      assert.ok(existsSync(leasePath(s, c)), `[${s.label}] lease ${leasePath(s, c)}`);
      assert.equal(readFileSync(leasePath(s, c), 'utf8').split(/\r?\n/), [c.id, 'eth0'], `[${s.label}] lease of ${n}`);
      assert.ok(existsSync(cacheFile(c)), `[${s.label}] libcni result cache ${cacheFile(c)}`);
    }
    assert.is(hostVeths(s).length, 4, `[${s.label}] four host veths: ${hostVeths(s)}`);
  }
  assert.fixture(machineNetns(), baseline, 'machine netns unchanged');
});

/** everything a user would try, as a comparable record */
function connectivity(s: Side): Record<string, string> {
  const web = ctr(s, 'web');
  const fixed = ctr(s, 'fixed');
  const d1 = ctr(s, 'def1');
  const d2 = ctr(s, 'def2');
  const url = (host: string) => `http://${host}:${HOST_PORT}/`;
  return {
    'fixed -> web': pingIn(s, 'fixed', web.ip),
    'web -> fixed': pingIn(s, 'web', fixed.ip),
    'def1 -> def2': pingIn(s, 'def1', d2.ip),
    'def2 -> def1': pingIn(s, 'def2', d1.ip),
    'def1 -> cwc-net gateway': pingIn(s, 'def1', s.gateway!),
    'def1 -> out (masquerade)': pingIn(s, 'def1', OUT_IP),
    'http from another netns via the host side': httpGet(s.out, url(OUT_HOST_IP)),
    'http from the host netns via 127.0.0.1': httpGet(s.host, url('127.0.0.1')),
    'http from the host netns via its own address': httpGet(s.host, url(OUT_HOST_IP)),
    'http from a container on the same bridge via the gateway': httpGetIn(s, 'fixed', url(s.gateway!)),
    'http from a container on the default network': httpGetIn(s, 'def1', url(OUT_HOST_IP)),
    'http hairpin (web reaches its own published port)': httpGetIn(s, 'web', url(s.gateway!)),
    'http direct to the container port': httpGet(s.host, `http://${web.ip}:80/`),
  };
}
const allOk = (s: Side): Record<string, string> => Object.fromEntries(Object.keys(connectivity(s)).map((k) =>
  [k, k.startsWith('http') ? 'hello from cwc\n' : 'ok']));

let before: Record<string, Record<string, string>> = {};

test('pings between containers, to the host side and out; -p 8080:80 reached from another netns, the host, localhost, hairpin', () => {
  before = {};
  sideBySide('connectivity', (s) => (before[s.label] = connectivity(s)), allOk);
});

test('podman network reload keeps every container connected, on the same addresses', () => {
  sideBySide('network reload', (s) => {
    const r = podman(s, ['network', 'reload', '--all']);
    const reloaded = r.stdout.trim().split('\n').filter(Boolean).sort();
    assert.equal(reloaded, CTRS.map((n) => ctr(s, n).id).sort(), `[${s.label}] reloaded every container`);
    const again = CTRS.map((n) => inspect(s, ctrName(s, n), ctr(s, n).net));
    assert.equal(again.map((c) => c.ip), CTRS.map((n) => ctr(s, n).ip), `[${s.label}] same addresses after reload`);
    assert.is(hostVeths(s).length, 4, `[${s.label}] four host veths after reload: ${hostVeths(s)}`);
    for (const n of CTRS) assert.ok(existsSync(leasePath(s, ctr(s, n))), `[${s.label}] lease of ${n} kept`);
    return connectivity(s);
  }, allOk);
});

test('our audit log: every plugin of both chains ran for every container, nothing denied', () => {
  const s = ours();
  if (!s) { console.log('  (our side skipped: no dist/plugins/portmap)'); return; }
  for (const n of CTRS) {
    const c = ctr(s, n);
    const mine = readAudit(s.h!).filter((r) => r.containerId === c.id);
    assert.is(mine.filter((r) => r.verdict === 'deny').length, 0, `${n}: denied ${JSON.stringify(mine.filter((r) => r.verdict === 'deny'))}`);
    for (const plugin of ['bridge', 'host-local', 'portmap', 'firewall', 'tuning']) {
      const adds = mine.filter((r) => r.command === 'ADD' && r.plugin === plugin && r.call === 'invoke.add');
      // one ADD at run, one at reload
      assert.is(adds.length, 2, `${n}: ${plugin} ADDs`);
      assert.ok(adds.every((r) => r.outcome === 'ok'), `${n}: ${plugin} ADDs ok: ${JSON.stringify(adds)}`);
    }
  }
});

test('podman stop / rm leave no veth, lease, nft rule, ledger entry or results cache entry', () => {
  sideBySide('after stop', (s) => {
    podman(s, ['stop', '--time', '0', ...CTRS.map((n) => ctrName(s, n))]);
    return {
      veths: hostVeths(s),
      leases: [...leases(s, NET), ...leases(s, DEFAULT_NET)],
      caches: CTRS.filter((n) => existsSync(cacheFile(ctr(s, n)))),
      rules: CTRS.flatMap((n) => rulesNaming(s, ctr(s, n).ip)),
    };
  }, () => ({ veths: [], leases: [], caches: [], rules: [] }));
  sideBySide('after rm', (s) => {
    podman(s, ['rm', ...CTRS.map((n) => ctrName(s, n))]);
    return {
      ps: podman(s, ['ps', '-a', '--format', '{{.Names}}']).stdout.trim(),
      sandboxes: CTRS.filter((n) => existsSync(ctr(s, n).sandbox)),
      veths: hostVeths(s),
      caches: CTRS.filter((n) => existsSync(cacheFile(ctr(s, n)))),
    };
  }, () => ({ ps: '', sandboxes: [], veths: [], caches: [] }));
  const s = ours();
  if (s) {
    assert.equal(Ledger.all(s.h!.stateDir), [], 'our ledger is empty');
    for (const n of CTRS) {
      const del = readAudit(s.h!).filter((r) => r.containerId === ctr(s, n).id && r.command === 'DEL' && r.call === 'invoke.del');
      for (const plugin of ['bridge', 'host-local', 'portmap', 'firewall', 'tuning']) {
        assert.ok(del.some((r) => r.plugin === plugin), `${n}: ${plugin} DEL`);
      }
      assert.ok(del.every((r) => r.outcome === 'ok'), `${n}: DELs ok: ${JSON.stringify(del.filter((r) => r.outcome !== 'ok'))}`);
    }
  }
  assert.fixture(machineNetns(), baseline, 'machine netns unchanged');
});

test.run();
