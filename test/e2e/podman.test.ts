// A real client end to end: Debian's podman 4.3 (CNI network backend, so it
// drives plugins through libcni) runs two containers on a bridge +
// host-local network served by OUR shims. Needs root. Prefix: cwp-.
//
// Isolation (nothing here may touch the machine's own network namespace, and
// nothing may persist in /var/lib/containers):
// - podman runs inside a throwaway netns, cwp-host, so the bridge, the host
//   ends of the veths and the NAT rules land there. It is entered with
//   `nsenter --net` rather than `ip netns exec`: the latter also gives every
//   command a private mount namespace with a fresh /sys (no cgroup mounts, so
//   runc cannot create containers) and hides the mounts one podman command
//   makes (container netns files under /run/netns) from the next one.
// - its configuration is a temp CONTAINERS_CONF (network_backend "cni",
//   cni_plugin_dirs = our shim dir, network_config_dir = a temp dir holding
//   only our conflist, runc, cgroupfs, file events, temp tmp_dir) and a temp
//   CONTAINERS_STORAGE_CONF (vfs, temp graphroot/runroot).
// - containers run from a busybox rootfs directory (`--rootfs`), not an
//   image: `podman import` would write containers/image's blob info cache to
//   /var/lib/containers/cache whatever the storage config says.
// - what podman/libcni/runc still put outside the temp dir — libcni's result
//   cache /var/lib/cni/results/cwp-net-<id>-eth0 (removed by libcni on DEL),
//   runc's state root /run/runc, podman's container netns
//   /run/netns/netns-<uuid> — is checked and removed at the end (the dirs
//   only when this test created them and they are empty).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Harness, makeHarness, readAudit, removeHarness } from '../helpers/cni.js';
import { aptInstall, auditLines, machineNetns, podmanEnv, sh, ulimit, which } from '../helpers/clients.js';
import { cleanupAll, ipJson, makeNetns, netnsPath } from '../helpers/netns.js';

const P = 'cwp-';
const HOST = `${P}host`;
const NET = 'cwp-net';
const BRIDGE = 'cwp0';
const SUBNET = '10.77.0.0/24';
const GATEWAY = '10.77.0.1';
const NAMES = ['cwp-a', 'cwp-b'] as const;
const CNI_RESULTS = '/var/lib/cni/results';
/** dirs outside the temp dir that podman/libcni/runc create on first use */
const OUTSIDE_DIRS = ['/var/lib/cni/results', '/var/lib/cni', '/run/runc'];

let h: Harness | undefined;
let env: NodeJS.ProcessEnv;
let rootfs: string;
let podmanDir: string;
/** the machine's own netns, before the test: links, nft tables, ip_forward */
let baseline: string;
const preexisting = new Set<string>();

interface Ctr { name: string; id: string; ip: string; mac: string; sandbox: string }
const ctrs: Record<string, Ctr> = {};
/** every container netns podman reported, for cleanup */
const sandboxes = new Set<string>();

// ---------------------------------------------------------------- helpers



/** Installs what the test needs (CI runs on a clean machine). */
function ensurePackages(): void {
  const need: string[] = [];
  if (!which('podman')) need.push('podman');
  if (!which('runc')) need.push('runc');
  if (!existsSync('/bin/busybox')) need.push('busybox-static');
  if (!which('nsenter')) need.push('util-linux');
  if (!which('nft')) need.push('nftables');
  aptInstall(need);
}

/** podman, run inside cwp-host with the isolated configuration. */
function podman(args: string[], opts: { check?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const cmd = ['nsenter', `--net=${netnsPath(HOST)}`, 'podman', ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: opts.env ?? env, timeout: opts.timeoutMs ?? 180_000 });
  if (r.error) throw new Error(`podman ${args.join(' ')}: ${r.error.message}`);
  if ((opts.check ?? true) && r.status !== 0) {
    throw new Error(`podman ${args.join(' ')} exited ${r.status ?? r.signal}\n` +
      `--- podman stderr ---\n${r.stderr.trim()}\n--- podman stdout ---\n${r.stdout.trim()}\n` +
      `--- last audit records ---\n${auditTail()}`);
  }
  return r;
}

const auditTail = (n = 25): string => (h ? auditLines(() => readAudit(h!), n) : '(no harness)');



function writeConfig(dir: string, binDir: string): void {
  const q = (s: string) => JSON.stringify(s);
  for (const d of ['net.d', 'graphroot', 'runroot', 'tmp', 'rootfs/bin']) mkdirSync(join(dir, d), { recursive: true });
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
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'storage.conf'), [
    '[storage]',
    'driver = "vfs"',
    `graphroot = ${q(join(dir, 'graphroot'))}`,
    `runroot = ${q(join(dir, 'runroot'))}`,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'net.d', `${NET}.conflist`), JSON.stringify({
    cniVersion: '1.0.0',
    name: NET,
    plugins: [{
      type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true,
      // no dataDir: our host-local keeps leases in the policy's storeDir (temp)
      ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], routes: [{ dst: '0.0.0.0/0' }] },
    }],
  }, null, 2));
  rootfs = join(dir, 'rootfs');
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const app of ['sh', 'ip', 'ping', 'sleep', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', app));
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(rootfs, d), { recursive: true });
}

function inspect(name: string): Ctr {
  const j = JSON.parse(podman(['inspect', '--type', 'container', name]).stdout)[0];
  const n = j?.NetworkSettings?.Networks?.[NET];
  assert.ok(n, `podman inspect ${name}: no ${NET} network in ${JSON.stringify(j?.NetworkSettings)}`);
  const c: Ctr = { name, id: j.Id, ip: n.IPAddress, mac: n.MacAddress, sandbox: j.NetworkSettings.SandboxKey };
  if (c.sandbox) sandboxes.add(c.sandbox);
  return c;
}

const leaseDir = (): string => join(h!.storeDir, NET);
const leases = (): string[] => (existsSync(leaseDir()) ? readdirSync(leaseDir()).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : []);
const hostVeths = (): any[] => ipJson<any[]>(HOST, ['-d', 'link', 'show']).filter((l) => l.linkinfo?.info_kind === 'veth');
const forCtr = (id: string, pred: (r: any) => boolean): any[] => readAudit(h!).filter((r) => r.containerId === id && pred(r));

/** Unmounts anything podman left mounted under dir (so rm -rf cannot cross into it). */
function unmountUnder(dir: string): string[] {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) sh(['umount', '-l', m]);
  return mounts;
}

/** A run killed before its after hook (e.g. by the runner's timeout) leaves
 *  its temp dir, and maybe containers known only to its own podman config:
 *  remove them with that config, then the dir. */
function reapCrashedRuns(): void {
  for (const n of readdirSync(tmpdir())) {
    const dir = join(tmpdir(), n);
    const conf = join(dir, 'podman', 'containers.conf');
    if (!n.startsWith(P) || !existsSync(conf)) continue;
    podman(['rm', '--all', '--force', '--time', '0'], { check: false, env: podmanEnv(join(dir, 'podman')) });
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- setup

test.before(() => {
  ensurePackages();
  for (const d of OUTSIDE_DIRS) if (existsSync(d)) preexisting.add(d);
  cleanupAll(P);
  makeNetns(HOST);
  reapCrashedRuns();
  cleanupAll(P);
  baseline = machineNetns();
  makeNetns(HOST);
  h = makeHarness(P);
  podmanDir = join(h.dir, 'podman');
  writeConfig(podmanDir, h.bin);
  env = podmanEnv(podmanDir);
});

test.after(() => {
  const problems: string[] = [];
  try {
    if (h && env) {
      const r = podman(['rm', '--all', '--force', '--time', '0'], { check: false });
      if (r.status !== 0) problems.push(`podman rm --all: ${r.stderr.trim()}`);
    }
  } catch (e) { problems.push((e as Error).message); }
  // container netns podman did not get to remove (e.g. it crashed)
  for (const s of sandboxes) {
    if (!existsSync(s)) continue;
    sh(['umount', s]);
    try { rmSync(s, { force: true }); } catch (e) { problems.push(`${s}: ${(e as Error).message}`); }
  }
  for (const c of Object.values(ctrs)) rmSync(join(CNI_RESULTS, `${NET}-${c.id}-eth0`), { force: true });
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
  if (problems.length) console.error(`podman e2e cleanup:\n  ${problems.join('\n  ')}`);
});

// ---------------------------------------------------------------- tests

test('podman uses the CNI backend, our shim dir and our conflist', () => {
  const info = JSON.parse(podman(['info', '--format', 'json']).stdout);
  assert.is(info.host?.networkBackend, 'cni', 'network backend');
  assert.is(info.host?.ociRuntime?.name, 'runc');
  const net = JSON.parse(podman(['network', 'inspect', NET]).stdout)[0];
  assert.is(net?.name, NET);
  assert.is(net?.driver, 'bridge');
  assert.is(net?.network_interface, BRIDGE);
  assert.is(net?.subnets?.[0]?.subnet, SUBNET);
});

test('two containers on cwp-net get addresses from our host-local', () => {
  for (const name of NAMES) {
    podman(['run', '-d', '--name', name, '--network', NET, '--rootfs', rootfs, 'sleep', '300']);
    ctrs[name] = inspect(name);
  }
  const [a, b] = NAMES.map((n) => ctrs[n]);
  for (const c of [a, b]) {
    assert.match(c.id, /^[0-9a-f]{64}$/);
    assert.match(c.ip, /^10\.77\.0\.\d+$/, `${c.name} has an address in ${SUBNET}: ${c.ip}`);
    assert.is.not(c.ip, GATEWAY);
    // what the container itself sees
    const out = podman(['exec', c.name, 'ip', '-4', 'addr', 'show', 'eth0']).stdout;
    assert.ok(out.includes(`inet ${c.ip}/24`), `${c.name} eth0:\n${out}`);
    const routes = podman(['exec', c.name, 'ip', '-4', 'route']).stdout;
    assert.match(routes, new RegExp(`default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`), `${c.name} routes:\n${routes}`);
    // our lease file, in the reference format: "<id>\r\n<ifname>" (line break tolerated either way)
    const lease = join(leaseDir(), c.ip);
    assert.ok(existsSync(lease), `lease ${lease} exists (leases: ${leases().join(', ')})`);
    assert.equal(readFileSync(lease, 'utf8').split(/\r?\n/), [c.id, 'eth0'], 'lease names the container and ifname');
    // libcni cached our result: proof podman went through libcni
    const cached = join(CNI_RESULTS, `${NET}-${c.id}-eth0`);
    assert.ok(existsSync(cached), `libcni result cache ${cached}`);
    const res = JSON.parse(readFileSync(cached, 'utf8'));
    assert.ok(JSON.stringify(res.result?.ips ?? res).includes(c.ip), `cached result has ${c.ip}: ${JSON.stringify(res)}`);
  }
  assert.is.not(a.ip, b.ip);
  assert.equal(leases().sort(), [a.ip, b.ip].sort(), 'exactly the two leases');
});

test('the bridge and the host ends live in cwp-host; the machine netns is unchanged', () => {
  const br = ipJson<any[]>(HOST, ['-d', 'link', 'show', 'dev', BRIDGE])[0];
  assert.is(br?.linkinfo?.info_kind, 'bridge');
  assert.ok(br.flags.includes('UP'), 'bridge up');
  const addrs = ipJson<any[]>(HOST, ['-4', 'addr', 'show', 'dev', BRIDGE])[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
  assert.ok(addrs.includes(`${GATEWAY}/24`), `gateway on the bridge: ${addrs}`);
  const veths = hostVeths();
  assert.is(veths.length, 2, `two host veths: ${veths.map((v) => v.ifname)}`);
  for (const c of Object.values(ctrs)) {
    // eth0@ifN in the container: N is a veth on our bridge in cwp-host
    const sandboxName = c.sandbox.replace(/^\/run\/netns\//, '');
    const eth0 = ipJson<any[]>(sandboxName, ['link', 'show', 'dev', 'eth0'])[0];
    assert.is(eth0.address, c.mac, `${c.name} mac`);
    const peer = veths.find((v) => v.ifindex === eth0.link_index);
    assert.ok(peer, `${c.name}'s eth0 peer (ifindex ${eth0.link_index}) is a veth in ${HOST}`);
    assert.is(peer.master, BRIDGE, `${peer.ifname} is on ${BRIDGE}`);
  }
  assert.fixture(machineNetns(), baseline, 'machine netns links / nft tables / ip_forward unchanged');
});

test('the containers reach each other over the bridge', () => {
  const [a, b] = NAMES.map((n) => ctrs[n]);
  for (const [from, to] of [[a, b], [b, a]]) {
    const r = podman(['exec', from.name, 'ping', '-c', '3', '-W', '3', to.ip], { check: false });
    assert.is(r.status, 0, `${from.name} -> ${to.name} (${to.ip}):\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /3 packets received/);
  }
});

test('the audit log records our plugins serving both containers', () => {
  for (const c of Object.values(ctrs)) {
    const mine = forCtr(c.id, () => true);
    assert.ok(mine.length > 0, `audit records for ${c.name} (${c.id})`);
    const denied = mine.filter((r) => r.verdict === 'deny');
    assert.is(denied.length, 0, `denied calls: ${JSON.stringify(denied)}`);
    for (const r of mine) assert.is(r.network, NET);
    // each change is recorded twice: before it is made ("pending") and with its outcome
    const add = (plugin: string, call: string) => mine.filter((r) => r.command === 'ADD' && r.plugin === plugin && r.call === call && r.outcome !== 'pending');
    assert.is(mine.filter((r) => r.command === 'ADD' && r.plugin === 'bridge' && r.call === 'links.begin-create-veth' && r.outcome === 'pending').length, 1,
      'the veth was recorded before it was made');
    assert.is(add('bridge', 'invoke.add').length, 1, 'one bridge ADD');
    assert.is(add('bridge', 'invoke.add')[0].outcome, 'ok');
    assert.is(add('bridge', 'links.finish-create-veth').length, 1, 'bridge created one veth in the host call');
    assert.is(add('bridge', 'links.finish-create-veth')[0].outcome, 'ok');
    assert.ok(add('bridge', 'addresses.add').some((r) => r.args?.ns === 'container' && r.args?.cidr === `${c.ip}/24`),
      `bridge put ${c.ip}/24 on the container's eth0`);
    assert.ok(add('bridge', 'delegate.run').some((r) => r.args?.['plugin-type'] === 'host-local'), 'bridge delegated IPAM to host-local');
    assert.is(add('host-local', 'invoke.add').length, 1, 'one host-local ADD');
    assert.ok(add('host-local', 'store.open').length >= 1, 'host-local opened its store');
    // the lease is created only if no one holds that address (as the reference's O_EXCL)
    assert.ok(add('host-local', 'store.create').some((r) => r.args?.key === c.ip && r.outcome === 'ok'),
      `host-local stored the lease ${c.ip}`);
    assert.ok(add('bridge', 'firewall.masquerade-add').length >= 1, 'ipMasq: masquerade added');
  }
});

test('podman rm -f runs DEL: audit DEL records, leases, veths and caches gone', () => {
  const [a, b] = NAMES.map((n) => ctrs[n]);
  podman(['rm', '--force', '--time', '0', a.name, b.name]);
  const ps = podman(['ps', '-a', '--format', '{{.Names}}']).stdout.trim();
  assert.is(ps, '', `no containers left: ${ps}`);
  for (const c of [a, b]) {
    const del = forCtr(c.id, (r) => r.command === 'DEL');
    const one = (plugin: string, call: string) => del.filter((r) => r.plugin === plugin && r.call === call);
    assert.ok(one('bridge', 'invoke.del').length >= 1, `bridge DEL for ${c.name}`);
    assert.ok(one('bridge', 'invoke.del').every((r) => r.outcome === 'ok'), JSON.stringify(one('bridge', 'invoke.del')));
    assert.ok(one('host-local', 'invoke.del').length >= 1, `host-local DEL for ${c.name}`);
    // released by owner: every lease whose file names this container and interface
    assert.ok(one('host-local', 'store.remove-found').some((r) => JSON.stringify(r.args?.values ?? []).includes(c.id) && r.outcome === 'ok'),
      `host-local released ${c.ip}`);
    assert.ok(one('bridge', 'firewall.masquerade-del').length >= 1, 'ipMasq: masquerade removed');
    assert.is(del.filter((r) => r.verdict === 'deny').length, 0, 'no denied DEL calls');
    assert.not.ok(existsSync(join(leaseDir(), c.ip)), `lease ${c.ip} released`);
    assert.not.ok(existsSync(join(CNI_RESULTS, `${NET}-${c.id}-eth0`)), 'libcni dropped its cached result');
    assert.not.ok(existsSync(c.sandbox), `podman removed the container netns ${c.sandbox}`);
  }
  assert.equal(leases(), [], 'no leases left');
  assert.equal(hostVeths().map((v) => v.ifname), [], `no veths left in ${HOST}`);
  assert.fixture(machineNetns(), baseline, 'machine netns unchanged');
});

test.run();
