// Kernel layer against real namespaces. Needs root. Prefix: kt-.
// Every effect is checked with iproute2/nft/sysctl run inside the netns, not
// only through our own reads. The machine's own netns is only ever read.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  KernelError, Rtnl, bytesToIp, closeFd, flock, funlock, ipToBytes, nftApply, nftList, openNetns, sysctlGet, sysctlSet,
  withNetns,
} from '../../host/kernel/index.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';

const P = 'kt-';
const A = `${P}a`, B = `${P}b`, C = `${P}c`;
let fdA = -1, fdB = -1, fdC = -1;
let ra: Rtnl, rb: Rtnl, rc: Rtnl;
const homeNs = readlinkSync('/proc/thread-self/ns/net');

/** Runs f and returns the KernelError it must throw. */
function kerr(f: () => unknown): KernelError {
  try {
    f();
  } catch (e) {
    assert.instance(e, KernelError);
    return e as KernelError;
  }
  assert.unreachable('expected a KernelError');
  throw new Error('unreachable');
}

const link = (ns: string, name: string) => ipJson<any[]>(ns, ['-d', 'link', 'show', 'dev', name])[0];
const linkNames = (ns: string) => ipJson<any[]>(ns, ['link', 'show']).map((l) => l.ifname as string);

test.before(() => {
  cleanupAll(P);
  makeNetns(A); makeNetns(B); makeNetns(C);
  fdA = openNetns(`/run/netns/${A}`);
  fdB = openNetns(`/run/netns/${B}`);
  fdC = openNetns(`/run/netns/${C}`);
  ra = Rtnl.open(fdA); rb = Rtnl.open(fdB); rc = Rtnl.open(fdC);
});

test.after(() => {
  for (const r of [ra, rb, rc]) try { r?.close(); } catch { /* already closed */ }
  for (const fd of [fdA, fdB, fdC]) if (fd >= 0) try { closeFd(fd); } catch { /* ignore */ }
  cleanupAll(P);
});

test('address text conversions', () => {
  const cases: [string, string][] = [
    ['10.1.2.3', '10.1.2.3'], ['::', '::'], ['::1', '::1'], ['FD00::2', 'fd00::2'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'], ['::ffff:1.2.3.4', '::ffff:1.2.3.4'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [inp, out] of cases) assert.is(bytesToIp(ipToBytes(inp)), out, inp);
  for (const bad of ['1.2.3', '256.1.1.1', '1::2::3', '1:2:3:4:5:6:7:8:9', 'x::1', '']) {
    assert.is(kerr(() => ipToBytes(bad)).code, 'EINVAL', bad);
  }
});

test('socket is bound to the netns it was opened for', () => {
  assert.equal(ra.listLinks().map((l) => l.name), ['lo']);
  assert.equal(linkNames(A), ['lo']);
  assert.is(readlinkSync('/proc/thread-self/ns/net'), homeNs, 'thread is back home');
});

// Kernels built without CONFIG_BRIDGE_VLAN_FILTERING (this CI's) refuse it.
function vlanFilteringSupported(): boolean {
  const ok = nsExec(A, ['ip', 'link', 'add', 'kt-probe', 'type', 'bridge', 'vlan_filtering', '1'], { check: false }).status === 0;
  if (ok) nsExec(A, ['ip', 'link', 'del', 'kt-probe']);
  return ok;
}

test('bridge', () => {
  ra.createBridge('br0', { mtu: 1450, mac: '02:00:00:00:00:01' });
  const l = link(A, 'br0');
  assert.is(l.mtu, 1450);
  assert.is(l.address, '02:00:00:00:00:01');
  assert.is(l.linkinfo.info_kind, 'bridge');
  assert.is(l.linkinfo.info_data.vlan_filtering, 0);
  if (vlanFilteringSupported()) {
    ra.createBridge('brv', { vlanFiltering: true });
    assert.is(link(A, 'brv').linkinfo.info_data.vlan_filtering, 1);
    ra.deleteLink('brv');
  } else {
    assert.is(kerr(() => ra.createBridge('brv', { vlanFiltering: true })).code, 'EOPNOTSUPP');
  }
  const ours = ra.getLink('br0');
  assert.is(ours.kind, 'bridge');
  assert.is(ours.index, l.ifindex);
  assert.is(ours.mac, '02:00:00:00:00:01');
});

test('veth with its peer born in another netns', () => {
  ra.createVeth('veth-h', 'eth0', { mtu: 1450, peerNsFd: fdB, peerMac: '02:00:00:00:00:02' });
  // The same peer name again, into a third netns: no clash with kt-b's eth0.
  ra.createVeth('veth-h2', 'eth0', { peerNsFd: fdC });
  assert.ok(linkNames(A).includes('veth-h'));
  assert.not.ok(linkNames(A).includes('eth0'));
  const peer = link(B, 'eth0');
  assert.is(peer.address, '02:00:00:00:00:02');
  assert.is(peer.mtu, 1450);
  assert.is(peer.linkinfo.info_kind, 'veth');
  assert.is(link(A, 'veth-h').mtu, 1450);
  assert.ok(linkNames(C).includes('eth0'));
  const h = ra.getLink('veth-h');
  assert.is(h.kind, 'veth');
  assert.is(h.peerIndex, peer.ifindex);
  assert.type(h.linkNetnsid, 'number');
  assert.is(rb.getLink('eth0').peerIndex, h.index);
});

test('setLink: up, mtu, master, promisc', () => {
  const br = ra.getLink('br0');
  ra.setLink('veth-h', { up: true, mtu: 1400, masterIndex: br.index, promisc: true });
  ra.setLink('br0', { up: true });
  rb.setLink('eth0', { up: true });
  const l = link(A, 'veth-h');
  assert.is(l.mtu, 1400);
  assert.is(l.master, 'br0');
  assert.ok(l.flags.includes('UP'));
  assert.ok(l.flags.includes('PROMISC'));
  const ours = ra.getLink('veth-h');
  assert.ok(ours.up && ours.promisc);
  assert.is(ours.masterIndex, br.index);
  ra.setLink('veth-h', { promisc: false });
  assert.not.ok(link(A, 'veth-h').flags.includes('PROMISC'));
  // nomaster and back
  ra.setLink('veth-h', { masterIndex: 0 });
  assert.is(link(A, 'veth-h').master, undefined);
  ra.setLink('veth-h', { masterIndex: br.index });
  assert.is(link(A, 'veth-h').master, 'br0');
});

test('bridge port: hairpin, isolated, learning', () => {
  ra.setBridgePort('veth-h', { hairpin: true, isolated: true, learning: false });
  let d = link(A, 'veth-h').linkinfo.info_slave_data;
  assert.is(d.hairpin, true);
  assert.is(d.isolated, true);
  assert.is(d.learning, false);
  ra.setBridgePort('veth-h', { hairpin: false, learning: true });
  d = link(A, 'veth-h').linkinfo.info_slave_data;
  assert.is(d.hairpin, false);
  assert.is(d.isolated, true);
  assert.is(d.learning, true);
});

test('bridge vlans', () => {
  if (!vlanFilteringSupported()) {
    // Same answer iproute2 gets here; the request itself is exercised.
    assert.is(kerr(() => ra.bridgeVlanAdd('veth-h', 100, { pvid: true, untagged: true })).code, 'EOPNOTSUPP');
    assert.is(kerr(() => ra.bridgeVlanAdd('br0', 200, { self: true })).code, 'EOPNOTSUPP');
    console.log('  (bridge vlans: kernel lacks CONFIG_BRIDGE_VLAN_FILTERING, checked EOPNOTSUPP only)');
    return;
  }
  ra.bridgeVlanAdd('veth-h', 100, { pvid: true, untagged: true });
  ra.bridgeVlanAdd('br0', 200, { self: true });
  const vlans = (ifname: string) => {
    const all = JSON.parse(nsExec(A, ['bridge', '-j', 'vlan', 'show']).stdout) as { ifname: string; vlans: { vlan: number; flags?: string[] }[] }[];
    return all.find((e) => e.ifname === ifname)?.vlans ?? [];
  };
  const v100 = vlans('veth-h').find((v) => v.vlan === 100);
  assert.ok(v100, 'vlan 100 on veth-h');
  assert.ok(v100!.flags?.includes('PVID'));
  assert.ok(v100!.flags?.includes('Egress Untagged'));
  assert.ok(vlans('br0').some((v) => v.vlan === 200), 'vlan 200 on br0 self');
  ra.bridgeVlanDel('veth-h', 100);
  assert.not.ok(vlans('veth-h').some((v) => v.vlan === 100));
});

test('addresses v4 and v6', () => {
  const eth0 = rb.getLink('eth0').index;
  rb.addAddress(eth0, '10.22.0.2/24');
  rb.addAddress(eth0, 'fd00:22::2/64', { noDad: true });
  rb.addAddress(eth0, '10.22.0.3/24');
  rb.addAddress(eth0, 'fd00:22:0:0:0:0:0:3/64', { noDad: true });
  const info = ipJson<any[]>(B, ['addr', 'show', 'dev', 'eth0'])[0].addr_info as any[];
  const v4 = info.find((a) => a.local === '10.22.0.2');
  assert.is(v4.prefixlen, 24);
  assert.is(v4.broadcast, '10.22.0.255');
  const v6 = info.find((a) => a.local === 'fd00:22::2');
  assert.is(v6.prefixlen, 64);
  assert.not.ok(v6.tentative, 'nodad: not tentative');
  const ours = rb.listAddresses({ ifindex: eth0 }).map((a) => a.cidr);
  for (const c of ['10.22.0.2/24', '10.22.0.3/24', 'fd00:22::2/64', 'fd00:22::3/64']) assert.ok(ours.includes(c), c);
  assert.ok(rb.listAddresses({ family: 4 }).every((a) => a.family === 4));
  assert.ok(rb.listAddresses({ ifindex: eth0, family: 6 }).some((a) => a.scope === 'link'), 'fe80:: is link scope');
  rb.delAddress(eth0, '10.22.0.3/24');
  rb.delAddress(eth0, 'fd00:22::3/64');
  const left = (ipJson<any[]>(B, ['addr', 'show', 'dev', 'eth0'])[0].addr_info as any[]).map((a) => a.local);
  assert.not.ok(left.includes('10.22.0.3'));
  assert.not.ok(left.includes('fd00:22::3'));
  assert.ok(left.includes('10.22.0.2'));
  assert.is(kerr(() => rb.addAddress(eth0, '10.22.0.2/24')).code, 'EEXIST');
  assert.is(kerr(() => rb.delAddress(eth0, '10.22.0.9/24')).code, 'EADDRNOTAVAIL');
});

test('routes: default via gw, prefix with metric, link scope, other table', () => {
  const eth0 = rb.getLink('eth0').index;
  rb.addRoute({ family: 4, dst: '0.0.0.0/0', gw: '10.22.0.1', ifindex: eth0 });
  rb.addRoute({ family: 4, dst: '10.99.0.0/16', gw: '10.22.0.1', metric: 50 });
  rb.addRoute({ family: 4, dst: '10.98.0.0/16', ifindex: eth0, src: '10.22.0.2' });
  rb.addRoute({ family: 6, dst: '::/0', gw: 'fd00:22::1', ifindex: eth0 });
  rb.addRoute({ family: 4, dst: '10.97.0.0/16', ifindex: eth0, table: 100 });
  rb.addRoute({ family: 4, dst: '10.96.0.0/16', ifindex: eth0, table: 1000 });

  const r4 = ipJson<any[]>(B, ['-4', 'route', 'show']);
  const def = r4.find((r) => r.dst === 'default');
  assert.is(def.gateway, '10.22.0.1');
  assert.is(def.dev, 'eth0');
  assert.is(r4.find((r) => r.dst === '10.99.0.0/16').metric, 50);
  const linkRoute = r4.find((r) => r.dst === '10.98.0.0/16');
  assert.is(linkRoute.scope, 'link');
  assert.is(linkRoute.prefsrc, '10.22.0.2');
  assert.is(ipJson<any[]>(B, ['-6', 'route', 'show']).find((r) => r.dst === 'default').gateway, 'fd00:22::1');
  assert.ok(ipJson<any[]>(B, ['route', 'show', 'table', '100']).some((r) => r.dst === '10.97.0.0/16'));
  assert.ok(ipJson<any[]>(B, ['route', 'show', 'table', '1000']).some((r) => r.dst === '10.96.0.0/16'));

  const ours = rb.listRoutes(4);
  const d = ours.find((r) => r.dst === '0.0.0.0/0')!;
  assert.is(d.gw, '10.22.0.1');
  assert.is(d.ifindex, eth0);
  assert.is(d.scope, 'universe');
  assert.is(ours.find((r) => r.dst === '10.99.0.0/16')?.metric, 50);
  assert.is(ours.find((r) => r.dst === '10.98.0.0/16')?.src, '10.22.0.2');
  assert.not.ok(ours.some((r) => r.dst === '10.97.0.0/16'), 'main table only');
  assert.is(rb.listRoutes(6).find((r) => r.dst === '::/0')?.gw, 'fd00:22::1');
  assert.ok(rb.listRoutes(4, 100).some((r) => r.dst === '10.97.0.0/16'));
  assert.ok(rb.listRoutes(4, 1000).some((r) => r.dst === '10.96.0.0/16'));
  assert.ok(rb.listRoutes().some((r) => r.family === 6) && rb.listRoutes().some((r) => r.family === 4));

  assert.is(kerr(() => rb.addRoute({ family: 4, dst: '0.0.0.0/0', gw: '10.22.0.1' })).code, 'EEXIST');
  assert.is(kerr(() => rb.addRoute({ family: 4, dst: '10.95.0.0/16', gw: '10.55.0.1' })).code, 'ENETUNREACH');

  rb.delRoute({ family: 4, dst: '0.0.0.0/0', gw: '10.22.0.1' });
  rb.delRoute({ family: 4, dst: '10.99.0.0/16' });
  rb.delRoute({ family: 6, dst: '::/0', gw: 'fd00:22::1', ifindex: eth0 });
  rb.delRoute({ family: 4, dst: '10.97.0.0/16', table: 100 });
  const after = ipJson<any[]>(B, ['-4', 'route', 'show']).map((r) => r.dst);
  assert.not.ok(after.includes('default'));
  assert.not.ok(after.includes('10.99.0.0/16'));
  assert.ok(after.includes('10.98.0.0/16'));
  assert.not.ok(ipJson<any[]>(B, ['-6', 'route', 'show']).some((r) => r.dst === 'default'));
  assert.equal(ipJson<any[]>(B, ['route', 'show', 'table', '100']), []);
  assert.is(kerr(() => rb.delRoute({ family: 4, dst: '10.99.0.0/16' })).code, 'ESRCH');
});

test('rename a link', () => {
  ra.createVeth('tmp0', 'tmp1');
  ra.setLink('tmp0', { newName: 'renamed0' });
  const names = linkNames(A);
  assert.ok(names.includes('renamed0'));
  assert.not.ok(names.includes('tmp0'));
  assert.is(kerr(() => ra.getLink('tmp0')).code, 'ENODEV');
});

test('move a link to another netns (and rename it on the way)', () => {
  ra.setLink('tmp1', { nsFd: fdC });
  assert.not.ok(linkNames(A).includes('tmp1'));
  assert.ok(linkNames(C).includes('tmp1'));
  ra.setLink('renamed0', { nsFd: fdC, newName: 'moved0', up: true });
  assert.not.ok(linkNames(A).includes('renamed0'));
  const m = link(C, 'moved0');
  assert.ok(m.flags.includes('UP'));
  assert.is(rc.getLink('moved0').peerIndex, rc.getLink('tmp1').index);
  // name clash in the target netns
  ra.createVeth('eth0', 'tmp2');
  assert.is(kerr(() => ra.setLink('eth0', { nsFd: fdC })).code, 'EEXIST');
  ra.deleteLink('eth0');
});

test('macvlan born in another netns, ifb', () => {
  ra.createVeth('up0', 'up1'); // stand-in uplink: no dummy on this kernel
  const master = ra.getLink('up0').index;
  ra.createMacvlan('mv0', master, 'bridge', { nsFd: fdC, mtu: 1400 });
  const mv = link(C, 'mv0');
  assert.is(mv.linkinfo.info_kind, 'macvlan');
  assert.is(mv.linkinfo.info_data.mode, 'bridge');
  assert.is(mv.mtu, 1400);
  assert.is(rc.getLink('mv0').kind, 'macvlan');
  ra.createMacvlan('mv1', master, 'private');
  assert.is(link(A, 'mv1').linkinfo.info_data.mode, 'private');
  assert.is(ra.getLink('mv1').parentIndex, master);
  ra.createIfb('ifb0');
  assert.is(link(A, 'ifb0').linkinfo.info_kind, 'ifb');
  assert.is(ra.getLink('ifb0').kind, 'ifb');
});

test('delete a link (veth takes its peer with it)', () => {
  ra.deleteLink('veth-h');
  assert.not.ok(linkNames(A).includes('veth-h'));
  assert.not.ok(linkNames(B).includes('eth0'));
});

test('errno names', () => {
  const e1 = kerr(() => ra.createBridge('br0'));
  assert.is(e1.code, 'EEXIST');
  assert.is(e1.errno, 17);
  assert.match(e1.message, /br0/);
  const e2 = kerr(() => ra.getLink('nope0'));
  assert.is(e2.code, 'ENODEV');
  assert.is(e2.errno, 19);
  assert.is(kerr(() => ra.deleteLink('nope0')).code, 'ENODEV');
  assert.is(kerr(() => ra.setLink('nope0', { up: true })).code, 'ENODEV');
  assert.is(kerr(() => ra.getLinkByIndex(9999)).code, 'ENODEV');
  assert.is(kerr(() => ra.setLink('br0', { mtu: 10 })).code, 'EINVAL');
  assert.is(kerr(() => openNetns(`/run/netns/${P}missing`)).code, 'ENOENT');
});

test('sysctl inside a netns', () => {
  const hostFwd = sysctlGet(null, 'net/ipv4/ip_forward'); // read only
  sysctlSet(fdA, 'net/ipv4/ip_forward', 1);
  assert.is(sysctlGet(fdA, 'net.ipv4.ip_forward'), '1');
  assert.is(nsExec(A, ['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '1');
  sysctlSet(fdA, 'net.ipv4.ip_forward', '0');
  assert.is(nsExec(A, ['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '0');
  assert.is(sysctlGet(null, 'net/ipv4/ip_forward'), hostFwd, 'host untouched');
  // A dot inside an interface name: '/' in the dotted form, as sysctl(8) does.
  ra.createBridge('br.5');
  sysctlSet(fdA, 'net.ipv6.conf.br/5.disable_ipv6', 1);
  assert.is(nsExec(A, ['cat', '/proc/sys/net/ipv6/conf/br.5/disable_ipv6']).stdout.trim(), '1');
  assert.is(sysctlGet(fdA, 'net/ipv6/conf/br.5/disable_ipv6'), '1');
  for (const bad of ['kernel/hostname', 'net/../kernel/hostname', '../net/x', 'net.ipv4..ip_forward', '/proc/sys/net/ipv4/ip_forward']) {
    assert.is(kerr(() => sysctlGet(fdA, bad)).code, 'EPERM', bad);
  }
  assert.is(kerr(() => sysctlGet(fdA, 'net/ipv4/no_such_key')).code, 'ENOENT');
  assert.is(readlinkSync('/proc/thread-self/ns/net'), homeNs);
});

test('nft batch inside a netns', () => {
  nftApply(`
    table ip kt-test {
      set pods { type ipv4_addr; }
      chain post { type nat hook postrouting priority 100; policy accept; ip saddr @pods masquerade; }
    }
    add element ip kt-test pods { 10.22.0.2 }
  `, fdA);
  assert.match(nftList(fdA, ['list', 'table', 'ip', 'kt-test']), /10\.22\.0\.2/);
  const tables = JSON.parse(nsExec(A, ['nft', '-j', 'list', 'tables']).stdout).nftables as any[];
  assert.ok(tables.some((t) => t.table?.name === 'kt-test'));
  assert.not.match(nftList(null, ['list', 'tables']), /kt-test/, 'host untouched');
  // A failing batch changes nothing and reports nft's error.
  const e = kerr(() => nftApply('add element ip kt-test pods { 10.22.0.3 }\nadd element ip kt-test nosuchset { 1.2.3.4 }\n', fdA));
  assert.is(e.code, 'ENFT');
  assert.match(e.message, /nosuchset|No such file/);
  assert.not.match(nftList(fdA, ['list', 'set', 'ip', 'kt-test', 'pods']), /10\.22\.0\.3/);
  assert.is(readlinkSync('/proc/thread-self/ns/net'), homeNs);
});

test('multi-datagram dumps', () => {
  for (let i = 0; i < 150; i++) rc.createIfb(`ifb${i}`);
  const ours = rc.listLinks().map((l) => l.name).sort();
  assert.is(ours.length, linkNames(C).length);
  assert.equal(ours, linkNames(C).sort());
});

test('withNetns nests and always returns home', () => {
  const inoA = nsExec(A, ['readlink', '/proc/self/ns/net']).stdout.trim();
  const inoB = nsExec(B, ['readlink', '/proc/self/ns/net']).stdout.trim();
  withNetns(fdA, () => {
    assert.is(readlinkSync('/proc/thread-self/ns/net'), inoA);
    withNetns(fdB, () => assert.is(readlinkSync('/proc/thread-self/ns/net'), inoB));
    assert.is(readlinkSync('/proc/thread-self/ns/net'), inoA, 'back in the outer netns');
    try {
      withNetns(fdB, () => { throw new Error('boom'); });
    } catch { /* expected */ }
    assert.is(readlinkSync('/proc/thread-self/ns/net'), inoA);
  });
  assert.is(readlinkSync('/proc/thread-self/ns/net'), homeNs);
});

test('flock exclusive and shared', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kt-lock-'));
  const file = join(dir, 'lock');
  const fd = openSync(file, 'w');
  const other = (...args: string[]) => spawnSync('flock', ['-n', ...args, file, 'true']).status;
  try {
    flock(fd, true);
    assert.is(other(), 1, 'exclusive held: others fail');
    assert.is(other('-s'), 1);
    funlock(fd);
    assert.is(other(), 0);
    flock(fd, false);
    assert.is(other('-s'), 0, 'shared: others may share');
    assert.is(other(), 1, 'shared: no exclusive');
    funlock(fd);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
