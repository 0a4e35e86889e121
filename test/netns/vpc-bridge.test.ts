// vpc-bridge (aws amazon-vpc-cni-plugins semantics) against a real kernel.
// Needs root. Prefix: vpc-.
//
// The world: "vpc-host" plays the instance (the plugin runs in it). Its ENI
// `eth10` is one end of a veth whose peer `gw0` sits in "vpc-gw", the VPC,
// holding the subnet's gateway 192.168.1.1/24. The VPC fabric delivers a
// secondary IP to the ENI that owns it; here a static neighbour entry in
// vpc-gw plays that part. Containers are vpc-c1, vpc-c2, vpc-c3. There is no
// reference vpc-bridge binary on this machine, so what is checked is aws's
// documented behaviour (plugins/vpc-bridge/network/bridge_linux.go).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, type CniCall, type CniReply, type Harness, libcniSequence, makeHarness, ours, readAudit, removeHarness } from '../helpers/cni.js';
import { cleanupAll, deleteNetns, ipJson, makeNetns, nsExec } from '../helpers/netns.js';
import { Ledger } from '../../host/gate/ledger.js';

const P = 'vpc-';
const HOST = `${P}host`, GW = `${P}gw`;
const C = { c1: `${P}c1`, c2: `${P}c2`, c3: `${P}c3` } as const;
const CID = { c1: 'a1b2c3d4e5f60001', c2: 'b1b2c3d4e5f60002', c3: 'c1b2c3d4e5f60003' } as const;
const ENI_MAC = '12:34:56:78:9a:bc';

/** Seed 003's config, as written. */
const SEED = {
  cniVersion: '0.3.1', name: 'vpc', type: 'vpc-bridge', eniName: 'eth10', eniMACAddress: '12:34:56:78:9a:bc',
  eniIPAddresses: ['192.168.1.42/24'], vpcCIDRs: ['192.168.0.0/16'], bridgeNetNSPath: '', ipAddresses: ['192.168.1.43/24'],
  gatewayIPAddress: '192.168.1.1', bridgeType: 'L3',
};
const conf = (over: Record<string, unknown> = {}) => ({ ...SEED, ...over });

let h: Harness;
let eniIndex = 0;

function run(command: CniCall['command'], config: object, c: keyof typeof C, over: Partial<CniCall> = {}): CniReply {
  return ours(h, 'vpc-bridge', { command, hostNs: HOST, netns: C[c], containerId: CID[c], ifname: 'eth0', config, ...over });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

const ping = (from: string, to: string) => nsExec(from, ['ping', '-c', '1', '-W', '2', to], { check: false }).status === 0;

function sysctl(key: string): string {
  return nsExec(HOST, ['cat', `/proc/sys/${key}`], { check: false }).stdout.trim();
}

const SYSCTLS = [
  'net/ipv4/conf/eth10/forwarding', 'net/ipv4/conf/eth10/proxy_arp', 'net/ipv6/conf/eth10/accept_ra',
  'net/ipv4/conf/all/forwarding', 'net/ipv4/conf/default/forwarding', 'net/ipv4/ip_forward',
  'net/ipv6/conf/all/forwarding', 'net/ipv4/conf/all/proxy_arp', 'net/ipv6/conf/default/accept_ra',
];

/** The host namespace as far as vpc-bridge could have changed it. Dynamic ARP cache entries are left out. */
function snapshot(): string {
  const links = ipJson<any[]>(HOST, ['-d', 'link', 'show']).map((l) => ({
    ifname: l.ifname, mtu: l.mtu, master: l.master, address: l.address, flags: l.flags, kind: l.linkinfo?.info_kind,
  }));
  const addrs = ipJson<any[]>(HOST, ['addr', 'show']).map((l) => ({ ifname: l.ifname, addrs: (l.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen} ${a.scope}`) }));
  const routes = [...ipJson<any[]>(HOST, ['-4', 'route', 'show', 'table', 'all']), ...ipJson<any[]>(HOST, ['-6', 'route', 'show', 'table', 'all'])]
    .map((r) => `${r.table ?? ''} ${r.type ?? ''} ${r.dst} ${r.gateway ?? ''} ${r.dev ?? ''} ${r.scope ?? ''} ${(r.flags ?? []).join(',')}`).sort();
  const neigh = ipJson<any[]>(HOST, ['neigh', 'show', 'nud', 'permanent']).map((n) => `${n.dst} ${n.dev} ${n.lladdr}`).sort();
  const nft = nsExec(HOST, ['nft', 'list', 'ruleset']).stdout;
  return JSON.stringify({ links, addrs, routes, neigh, nft, sysctls: SYSCTLS.map((k) => `${k}=${sysctl(k)}`) }, null, 1);
}

function world(): void {
  for (const n of [HOST, GW, C.c1, C.c2, C.c3]) makeNetns(n);
  rmSync(h.stateDir, { recursive: true, force: true }); // a failed test's ledgers do not reach into the next
  nsExec(HOST, ['ip', 'link', 'add', 'eth10', 'address', ENI_MAC, 'type', 'veth', 'peer', 'name', 'gw0', 'netns', GW]);
  nsExec(HOST, ['ip', 'addr', 'add', '192.168.1.42/24', 'dev', 'eth10']);
  nsExec(HOST, ['ip', 'link', 'set', 'eth10', 'up']);
  nsExec(GW, ['ip', 'addr', 'add', '192.168.1.1/24', 'dev', 'gw0']);
  nsExec(GW, ['ip', 'link', 'set', 'gw0', 'up']);
  // the VPC fabric: the containers' addresses are the ENI's secondary IPs
  for (const ip of ['192.168.1.43', '192.168.1.44', '192.168.1.45']) nsExec(GW, ['ip', 'neigh', 'add', ip, 'lladdr', ENI_MAC, 'dev', 'gw0', 'nud', 'permanent']);
  eniIndex = ipJson<any[]>(HOST, ['link', 'show', 'eth10'])[0].ifindex;
  settleEni();
}

/** The ENI's IPv6 link-local address comes a moment after it is up: wait, so snapshots agree. */
function settleEni(): void {
  for (let i = 0; i < 100; i++) {
    const a = ipJson<any[]>(HOST, ['-6', 'addr', 'show', 'dev', 'eth10'])[0]?.addr_info ?? [];
    if (a.some((x: any) => x.scope === 'link' && !x.tentative)) break;
    nsExec(HOST, ['sleep', '0.05']);
  }
}

const BR = () => `vpcbr${eniIndex}`;

test.before(() => {
  cleanupAll(P);
  h = makeHarness('vpc-bridge-test-');
});

test.after(() => {
  cleanupAll(P);
  removeHarness(h);
});

test('seed 003 as written: L3 network part, endpoint, result at 0.3.1, traffic, CHECK, DEL twice, host as before', () => {
  world();
  const before = snapshot();

  // ---- ADD c1 with the seed's config (0.3.1)
  const r1 = ok(run('ADD', SEED, 'c1', { args: 'K8S_POD_NAME=web' }), 'ADD c1'); // podman sends K8S_POD_NAME alone
  assert.equal(r1.cniVersion, '0.3.1');
  assert.equal(r1.interfaces.length, 1);
  assert.equal(r1.interfaces[0].name, 'eth0');
  assert.equal(r1.interfaces[0].sandbox, `/run/netns/${C.c1}`);
  assert.match(r1.interfaces[0].mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  assert.equal(r1.ips, [{ version: '4', interface: 0, address: '192.168.1.43/24', gateway: '192.168.1.1' }]);

  // the network part
  const br = ipJson<any[]>(HOST, ['-d', 'link', 'show', BR()])[0];
  assert.ok(br, `bridge ${BR()} exists`);
  assert.is(br.linkinfo.info_kind, 'bridge');
  assert.is(br.mtu, 9001);
  assert.ok(br.flags.includes('UP'));
  const comp = ipJson<any[]>(HOST, ['-d', 'link', 'show', `${BR()}dummy`])[0];
  assert.ok(comp, 'companion link exists');
  assert.ok(['dummy', 'ifb'].includes(comp.linkinfo.info_kind), comp.linkinfo.info_kind);
  assert.is(comp.mtu, 9001);
  assert.is(comp.master, BR());
  assert.is(br.address, comp.address, 'the bridge MAC is pinned to the companion link');
  assert.is(sysctl(`net/ipv4/conf/${BR()}/proxy_arp`), '1');
  assert.is(sysctl(`net/ipv4/neigh/${BR()}/proxy_delay`), '0');
  assert.is(sysctl(`net/ipv4/conf/${BR()}/forwarding`), '1');
  assert.is(sysctl('net/ipv4/conf/eth10/forwarding'), '1');

  // the endpoint
  const veth = ipJson<any[]>(HOST, ['-d', 'link', 'show', `veth${CID.c1.slice(0, 8)}`])[0];
  assert.ok(veth, 'host veth veth<cid[:8]>');
  assert.is(veth.master, BR());
  assert.is(veth.mtu, 9001);
  const hroutes = ipJson<any[]>(HOST, ['route', 'show', '192.168.1.43/32']);
  assert.equal(hroutes.map((r) => [r.dst, r.dev, r.scope]), [['192.168.1.43', BR(), 'link']]);
  const ceth = ipJson<any[]>(C.c1, ['addr', 'show', 'eth0'])[0];
  assert.is(ceth.mtu, 9001);
  assert.is(ceth.address, r1.interfaces[0].mac);
  assert.ok(ceth.addr_info.some((a: any) => a.local === '192.168.1.43' && a.prefixlen === 24));
  const def = ipJson<any[]>(C.c1, ['route', 'show', 'default']);
  assert.equal(def.map((r) => [r.gateway, r.dev, r.flags]), [['192.168.1.1', 'eth0', ['onlink']]]);
  const neigh = ipJson<any[]>(C.c1, ['neigh', 'show', 'dev', 'eth0']);
  assert.equal(neigh.map((n) => [n.dst, n.lladdr, n.state]), [['192.168.1.1', br.address, ['PERMANENT']]]);

  // traffic: the container reaches the VPC's gateway
  assert.ok(ping(C.c1, '192.168.1.1'), 'c1 reaches the gateway namespace');

  // ---- a second container on the same ENI, at 1.0.0, with libcni's CHECK
  const c2conf = conf({ cniVersion: '1.0.0', ipAddresses: ['192.168.1.44/24'] });
  const r2 = ok(run('ADD', c2conf, 'c2', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=db;K8S_POD_INFRA_CONTAINER_ID=x' }), 'ADD c2');
  assert.equal(r2.ips, [{ interface: 0, address: '192.168.1.44/24', gateway: '192.168.1.1' }]);
  assert.is(ipJson<any[]>(HOST, ['link', 'show', 'type', 'bridge']).length, 1, 'one bridge per ENI');
  assert.ok(ping(C.c2, '192.168.1.1'), 'c2 reaches the gateway');
  assert.ok(ping(C.c1, '192.168.1.44'), 'c1 reaches c2');
  assert.ok(ping(C.c2, '192.168.1.43'), 'c2 reaches c1');
  ok(run('CHECK', { ...c2conf, prevResult: r2 }, 'c2'), 'CHECK c2');

  // CHECK checks: without the gateway's neighbour entry it fails, naming it
  nsExec(C.c2, ['ip', 'neigh', 'del', '192.168.1.1', 'dev', 'eth0']);
  const bad = run('CHECK', { ...c2conf, prevResult: r2 }, 'c2');
  assert.is.not(bad.code, 0);
  assert.match(bad.json.msg, /neighbour entry 192\.168\.1\.1/);
  nsExec(C.c2, ['ip', 'neigh', 'add', '192.168.1.1', 'lladdr', br.address, 'dev', 'eth0', 'nud', 'permanent']);
  // ... and with the host route gone
  nsExec(HOST, ['ip', 'route', 'del', '192.168.1.44/32', 'dev', BR()]);
  assert.match(run('CHECK', { ...c2conf, prevResult: r2 }, 'c2').json.msg, /host route 192\.168\.1\.44\/32/);
  nsExec(HOST, ['ip', 'route', 'add', '192.168.1.44/32', 'dev', BR(), 'scope', 'link']);
  ok(run('CHECK', { ...c2conf, prevResult: r2 }, 'c2'), 'CHECK c2 again');

  // ---- DEL c1 (0.3.1, cached prevResult): the network part stays for c2
  ok(run('DEL', { ...SEED, prevResult: r1 }, 'c1'), 'DEL c1');
  assert.not.ok(ipJson<any[]>(HOST, ['link', 'show']).some((l) => l.ifname === `veth${CID.c1.slice(0, 8)}`), 'c1 veth gone');
  assert.equal(ipJson<any[]>(HOST, ['route', 'show', '192.168.1.43/32']), []);
  assert.ok(ipJson<any[]>(HOST, ['link', 'show', BR()]).length === 1, 'bridge kept while c2 uses it');
  assert.is(sysctl('net/ipv4/conf/eth10/forwarding'), '1');
  assert.ok(ping(C.c2, '192.168.1.1'), 'c2 still reaches the gateway');

  // ---- DEL c2 with its netns already gone: the last endpoint takes the network part
  deleteNetns(C.c2);
  ok(run('DEL', { ...c2conf, prevResult: r2 }, 'c2'), 'DEL c2 (netns gone)');
  assert.equal(ipJson<any[]>(HOST, ['link', 'show', 'type', 'bridge']), []);

  // ---- DEL twice
  ok(run('DEL', { ...SEED, prevResult: r1 }, 'c1'), 'DEL c1 again');
  ok(run('DEL', c2conf, 'c2'), 'DEL c2 again');
  ok(run('DEL', c2conf, 'c2', { netns: '' }), 'DEL c2 without CNI_NETNS');

  assert.fixture(snapshot(), before);
  assert.equal(Ledger.all(h.stateDir), [], 'the ledger holds nothing');
  makeNetns(C.c2);
});

test('libcni\'s sequence through the cnitool-like runner: ADD/DEL at 0.3.1, ADD/CHECK/DEL at 1.0.0, with its result cache', () => {
  world();
  const before = snapshot();
  const dir = join(h.dir, 'net.d'), cache = join(h.dir, 'cache');
  for (const version of ['0.3.1', '1.0.0']) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10-vpc.conf'), JSON.stringify({ ...SEED, cniVersion: version }));
    const cli = (args: string[]) => spawnSync('ip', ['netns', 'exec', HOST, process.execPath, CLI, '--policy', h.policyFile, ...args, '--cache-dir', cache, '--json', '--container-id', CID.c1], {
      encoding: 'utf8', env: { ...process.env, NETCONFPATH: dir, CNI_PATH: h.bin },
    });
    const add = cli(['add', 'vpc', `/run/netns/${C.c1}`]);
    assert.is(add.status, 0, add.stdout + add.stderr);
    assert.is(JSON.parse(add.stdout).cniVersion, version);
    assert.ok(ping(C.c1, '192.168.1.1'), `c1 reaches the gateway (${version})`);
    if (version !== '0.3.1') {
      const chk = cli(['check', 'vpc', `/run/netns/${C.c1}`]);
      assert.is(chk.status, 0, chk.stdout + chk.stderr);
    }
    const del = cli(['del', 'vpc', `/run/netns/${C.c1}`]);
    assert.is(del.status, 0, del.stdout + del.stderr);
    assert.fixture(snapshot(), before);
  }
});

test('dual stack (L3): IPv6 as /128 without DAD, default route via the bridge\'s link-local onlink, IPv6 forwarding and accept_ra as aws, all put back', () => {
  world();
  const before = snapshot();
  const c = conf({ cniVersion: '1.0.0', eniIPAddresses: ['192.168.1.42/24', '2001:db8:1::42/64'], ipAddresses: ['192.168.1.43/24', '2001:db8:1::43/64'] });
  const r = ok(run('ADD', c, 'c1'), 'ADD dual stack');
  assert.equal(r.ips, [
    { interface: 0, address: '192.168.1.43/24', gateway: '192.168.1.1' },
    { interface: 0, address: '2001:db8:1::43/64' },
  ]);
  assert.is(sysctl('net/ipv6/conf/all/forwarding'), '1');
  assert.is(sysctl(`net/ipv6/conf/${BR()}/accept_ra`), '2');
  assert.is(sysctl('net/ipv6/conf/eth10/accept_ra'), '2');
  const a6 = ipJson<any[]>(C.c1, ['-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])[0].addr_info.filter((a: any) => a.local);
  assert.equal(a6.map((a: any) => [a.local, a.prefixlen, !!a.tentative]), [['2001:db8:1::43', 128, false]]);
  assert.is(nsExec(C.c1, ['cat', '/proc/sys/net/ipv6/conf/eth0/accept_dad']).stdout.trim(), '0');
  const ll = ipJson<any[]>(HOST, ['-6', 'addr', 'show', 'dev', BR(), 'scope', 'link'])[0].addr_info.find((a: any) => a.local).local;
  const def6 = ipJson<any[]>(C.c1, ['-6', 'route', 'show', 'default']);
  assert.equal(def6.map((x) => [x.gateway, x.dev, x.flags]), [[ll, 'eth0', ['onlink']]]);
  assert.equal(ipJson<any[]>(HOST, ['-6', 'route', 'show', '2001:db8:1::43/128']).map((x) => [x.dev, x.metric !== undefined]), [[BR(), true]]);
  ok(run('CHECK', { ...c, prevResult: r }, 'c1'), 'CHECK dual stack');
  ok(run('DEL', { ...c, prevResult: r }, 'c1'), 'DEL dual stack');
  settleEni();
  assert.fixture(snapshot(), before);
});

test('the sysctls come back to the values they had, not to defaults', () => {
  world();
  nsExec(HOST, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/eth10/forwarding']);
  nsExec(HOST, ['sh', '-c', 'echo 0 > /proc/sys/net/ipv4/conf/all/forwarding']);
  const before = snapshot();
  ok(run('ADD', SEED, 'c1'), 'ADD');
  ok(run('DEL', SEED, 'c1'), 'DEL');
  assert.fixture(snapshot(), before);
  // and 0 stays 0 when it was 0
  nsExec(HOST, ['sh', '-c', 'echo 0 > /proc/sys/net/ipv4/conf/eth10/forwarding']);
  const before0 = snapshot();
  ok(run('ADD', SEED, 'c1'), 'ADD');
  assert.is(sysctl('net/ipv4/conf/eth10/forwarding'), '1');
  ok(run('DEL', SEED, 'c1'), 'DEL');
  assert.is(sysctl('net/ipv4/conf/eth10/forwarding'), '0');
  assert.fixture(snapshot(), before0);
});

test('the ENI found by eniMACAddress alone (the rights follow the MAC to its link)', () => {
  world();
  const before = snapshot();
  const c = conf({ eniName: undefined, eniMACAddress: '12-34-56-78-9A-BC' });
  ok(run('ADD', c, 'c1'), 'ADD by MAC');
  assert.is(sysctl('net/ipv4/conf/eth10/forwarding'), '1');
  assert.ok(ping(C.c1, '192.168.1.1'), 'c1 reaches the gateway');
  ok(run('DEL', c, 'c1'), 'DEL by MAC');
  assert.fixture(snapshot(), before);
});

test('L2: the ENI lent to the bridge with its address and default route, layer-2 rewrites, traffic, all given back', () => {
  world();
  nsExec(HOST, ['ip', 'route', 'add', 'default', 'via', '192.168.1.1', 'dev', 'eth10']);
  const before = snapshot();
  const l2 = (ip: string) => conf({ cniVersion: '1.0.0', bridgeType: 'L2', ipAddresses: [ip] });
  const r1 = ok(run('ADD', l2('192.168.1.43/24'), 'c1'), 'ADD c1 L2');
  const r2 = ok(run('ADD', l2('192.168.1.44/24'), 'c2'), 'ADD c2 L2');
  const eni = ipJson<any[]>(HOST, ['-d', 'addr', 'show', 'eth10'])[0];
  assert.is(eni.master, BR(), 'the ENI is a port of the bridge');
  assert.is(eni.mtu, 9001);
  assert.not.ok(eni.addr_info.some((a: any) => a.family === 'inet'), 'the ENI has no IPv4 address any more');
  const br = ipJson<any[]>(HOST, ['addr', 'show', BR()])[0];
  assert.ok(br.addr_info.some((a: any) => a.local === '192.168.1.42' && a.prefixlen === 24), 'the bridge has the ENI address');
  assert.equal(ipJson<any[]>(HOST, ['route', 'show', 'default']).map((r) => [r.gateway, r.dev]), [['192.168.1.1', BR()]]);
  assert.is(sysctl(`net/ipv4/conf/${BR()}/proxy_arp`), '0', 'no proxy ARP in L2');
  const nft = nsExec(HOST, ['nft', 'list', 'table', 'bridge', 'cni_wasm_vpc_eth10']).stdout;
  assert.match(nft, /iifname "eth10" arp operation reply ether daddr set ff:ff:ff:ff:ff:ff accept/);
  assert.match(nft, new RegExp(`oifname "eth10" ether saddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 ether saddr set ${ENI_MAC} accept`));
  assert.match(nft, new RegExp(`192\\.168\\.1\\.43 : ${r1.interfaces[0].mac}`));
  assert.match(nft, new RegExp(`192\\.168\\.1\\.44 : ${r2.interfaces[0].mac}`));
  assert.ok(ipJson<any[]>(C.c1, ['addr', 'show', 'eth0'])[0].addr_info.some((a: any) => a.local === '192.168.1.43'), 'L2 assigns the container address');
  assert.ok(ping(C.c1, '192.168.1.1'), 'c1 reaches the gateway through the bridged ENI');
  assert.ok(ping(C.c2, '192.168.1.1'), 'c2 reaches the gateway');
  assert.ok(ping(C.c1, '192.168.1.44'), 'c1 reaches c2');
  assert.ok(ping(HOST, '192.168.1.1'), 'the host still reaches the gateway from the bridge');
  // what the VPC sees: every frame from the ENI carries the ENI's MAC
  const seen = ipJson<any[]>(GW, ['neigh', 'show', '192.168.1.42']);
  assert.ok(seen.every((n) => n.lladdr === ENI_MAC), JSON.stringify(seen));
  ok(run('CHECK', { ...l2('192.168.1.44/24'), prevResult: r2 }, 'c2'), 'CHECK c2 L2');
  ok(run('DEL', { ...l2('192.168.1.43/24'), prevResult: r1 }, 'c1'), 'DEL c1');
  assert.not.match(nsExec(HOST, ['nft', 'list', 'table', 'bridge', 'cni_wasm_vpc_eth10']).stdout, /192\.168\.1\.43/);
  assert.ok(ping(C.c2, '192.168.1.1'), 'c2 still reaches the gateway');
  deleteNetns(C.c2);
  ok(run('DEL', { ...l2('192.168.1.44/24'), prevResult: r2 }, 'c2'), 'DEL c2 (netns gone)');
  ok(run('DEL', l2('192.168.1.44/24'), 'c2'), 'DEL c2 again');
  settleEni();
  assert.fixture(snapshot(), before);
  assert.equal(Ledger.all(h.stateDir), []);
  makeNetns(C.c2);
});

test('the first holder leaving first hands the network part on; GC removes endpoints not in valid-attachments', () => {
  world();
  const before = snapshot();
  ok(run('ADD', conf({ cniVersion: '1.1.0' }), 'c1'), 'ADD c1');
  ok(run('ADD', conf({ cniVersion: '1.1.0', ipAddresses: ['192.168.1.45/24'] }), 'c3'), 'ADD c3');
  // GC keeps c3 only: c1's endpoint goes, the network part stays for c3
  ok(run('GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: CID.c3, ifname: 'eth0' }] }), 'c1', { netns: '' }), 'GC');
  assert.not.ok(ipJson<any[]>(HOST, ['link', 'show']).some((l) => l.ifname === `veth${CID.c1.slice(0, 8)}`), 'c1 veth collected');
  assert.equal(ipJson<any[]>(HOST, ['route', 'show', '192.168.1.43/32']), []);
  assert.ok(ping(C.c3, '192.168.1.1'), 'c3 still reaches the gateway');
  // GC with nothing valid: everything goes
  ok(run('GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }), 'c1', { netns: '' }), 'GC all');
  assert.fixture(snapshot(), before);
  assert.equal(Ledger.all(h.stateDir), []);
});

test('bad configs: clear errors with the right codes, nothing left behind', () => {
  world();
  const before = snapshot();
  const unknown = run('ADD', conf({ eniName: 'eth99' }), 'c1');
  assert.is(unknown.code, 1);
  assert.is(unknown.json.code, 999);
  assert.match(unknown.json.msg, /"eth99" \("eniName"\): no such network interface/);
  const missing = run('ADD', { cniVersion: '0.3.1', name: 'vpc', type: 'vpc-bridge', ipAddresses: ['192.168.1.43/24'] }, 'c1');
  assert.is(missing.json.code, 7);
  assert.is(missing.json.msg, 'missing required parameter ENIName or ENIMACAddress');
  assert.is(run('ADD', conf({ bridgeType: 'L4' }), 'c1').json.msg, 'invalid BridgeType L4');
  assert.is(run('ADD', conf({ ipAddresses: ['192.168.1.300/24'] }), 'c1').json.msg, 'invalid IPAddress 192.168.1.300/24');
  assert.is(run('ADD', conf({ eniMACAddress: 'zz' }), 'c1').json.msg, 'invalid ENIMACAddress zz');
  assert.is(run('ADD', conf({ gatewayIPAddress: 'x' }), 'c1').json.msg, 'invalid GatewayIPAddress x');
  const typed = run('ADD', conf({ eniName: 10 }), 'c1');
  assert.is(typed.json.code, 7);
  assert.match(typed.json.msg, /cannot unmarshal number into Go struct field netConfigJSON\.eniName of type string/);
  const v = run('ADD', conf({ cniVersion: '0.2.0' }), 'c1');
  assert.is(v.json.code, 1);
  // a MAC that no link has
  const noMac = run('ADD', conf({ eniName: undefined, eniMACAddress: '02:00:00:00:00:99' }), 'c1');
  assert.match(noMac.json.msg, /failed to find ENI by "eniMACAddress" 02:00:00:00:00:99/);
  // a failed ADD in the middle of the network part (a veth name taken) leaves nothing either
  nsExec(HOST, ['ip', 'link', 'add', `veth${CID.c1.slice(0, 8)}`, 'type', 'veth', 'peer', 'name', 'vpcx0']);
  const before2 = snapshot();
  const clash = run('ADD', SEED, 'c1');
  assert.is(clash.json.code, 999);
  assert.match(clash.json.msg, /already exists/);
  assert.fixture(snapshot(), before2);
  nsExec(HOST, ['ip', 'link', 'del', `veth${CID.c1.slice(0, 8)}`]);
  assert.fixture(snapshot(), before);
  assert.equal(Ledger.all(h.stateDir), []);
  assert.ok(!readAudit(h).some((r) => /stack|at Object\./.test(String(r.outcome))), 'no stack traces');
  assert.ok(existsSync(h.auditLog));
});

test('libcni\'s sequence (VERSION, ADD, CHECK from 0.4.0, DEL with the cached result, DEL again) at every version vpc-bridge claims; 0.2.0 refused', () => {
  world();
  const before = snapshot();
  for (const cniVersion of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    const seq = libcniSequence((command, config) => run(command, config, 'c1'), conf({ cniVersion }), (add) => {
      assert.is(add.json?.cniVersion, cniVersion, `${cniVersion}: the result is at the config's version`);
      assert.ok(ping(C.c1, '192.168.1.1'), `${cniVersion}: c1 reaches the gateway`);
    });
    assert.equal(seq.errors, [], cniVersion);
    assert.ok((seq.version.json?.supportedVersions ?? []).includes(cniVersion), `${cniVersion}: VERSION lists it`);
    assert.is(snapshot(), before, `${cniVersion}: the host as before`);
  }
  const old = run('ADD', conf({ cniVersion: '0.2.0' }), 'c1');
  assert.is(old.code, 1, old.stdout);
  assert.is(old.json?.code, 1);
  assert.is(snapshot(), before, '0.2.0: nothing made');
});

test.run();
