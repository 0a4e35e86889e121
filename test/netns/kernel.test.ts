// Kernel layer against real namespaces. Needs root. Prefix: kt-.
// Every effect is checked with iproute2/nft/sysctl run inside the netns, not
// only through our own reads. The machine's own netns is only ever read.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  KernelError, Nftnl, Rtnl, bytesToIp, closeFd, flock, funlock, ipToBytes, nftApply, nftElements, nftList, openNetns,
  sysctlGet, sysctlSet, withNetns, type MapElement,
} from '../../host/kernel/index.js';
import { NAT_TABLE, masqueradeAdd, masqueradeDel, type MasqueradeEntry } from '../../host/kernel/masquerade.js';
import { lingeringDeletions, reapBackground } from '../../host/kernel/rtnl.js';
import { NETLINK_NETFILTER, nlBatch, nlOpen } from '../../host/kernel/native.js';
import { encodeBatch, nftTableExists } from '../../host/kernel/nftnl.js';
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

test('a deletion begun from its own thread: gone once finish returns, the kernel\'s late answer collected after', () => {
  ra.createVeth('veth-bg', 'eth9', { peerNsFd: fdB });
  const del = ra.beginDeleteLink('veth-bg');
  // the socket of the netns keeps serving while the kernel works on the deletion
  assert.is(ra.getLink('br0').kind, 'bridge');
  del.finish();
  del.finish(); // twice is once
  assert.not.ok(linkNames(A).includes('veth-bg'), 'out of the tables when finish returns');
  assert.not.ok(linkNames(B).includes('eth9'), 'the peer too');
  // the kernel's refusal comes back from finish, as deleteLink throws it
  const missing = ra.beginDeleteLink('nope0');
  const e = kerr(() => missing.finish());
  assert.is(e.code, 'ENODEV');
  assert.match(e.message, /delete link nope0/);
  // many at once, each on its own socket and thread
  for (let i = 0; i < 6; i++) ra.createVeth(`vbg${i}`, `pbg${i}`, {});
  const all = Array.from({ length: 6 }, (_, i) => ra.beginDeleteLink(`vbg${i}`));
  for (const d of all) d.finish();
  assert.equal(linkNames(A).filter((n) => n.startsWith('vbg') || n.startsWith('pbg')), []);
  // the late answers: collected once the kernel gives them (no thread, no socket left)
  const fds = () => readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 100 && lingeringDeletions() > 0; i++) { reapBackground(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); }
  assert.is(lingeringDeletions(), 0);
  const before = fds();
  ra.createVeth('veth-bg2', 'eth8', {});
  ra.beginDeleteLink('veth-bg2').finish();
  for (let i = 0; i < 100 && lingeringDeletions() > 0; i++) { reapBackground(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); }
  assert.is(fds(), before, 'the sockets are closed');
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

// ---------------------------------------------------------------- nf_tables map elements over netlink

/** Elements of an inet map in netns ns, as "address : chain" (nft's own view); [] when the map is missing. */
function mapElems(ns: string, map: string, table = NAT_TABLE): string[] {
  const r = nsExec(ns, ['nft', '-j', 'list', 'map', 'inet', table, map], { check: false });
  if (r.status !== 0) return [];
  const m = (JSON.parse(r.stdout).nftables as any[]).find((x) => x.map)?.map;
  return (m?.elem ?? []).map((e: any) => `${e[0]} : ${e[1].jump.target}`).sort();
}

const hostTables = () => nftList(null, ['list', 'tables']);

// nft.ts runs nft through the CommonJS child_process object: count those spawns.
const cp = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
function nftRuns<T>(f: () => T): number {
  const orig = cp.spawnSync;
  let n = 0;
  cp.spawnSync = ((cmd: string, ...rest: any[]) => {
    if (cmd.endsWith('/nft') || cmd === 'nft') n++;
    return (orig as any)(cmd, ...rest);
  }) as typeof cp.spawnSync;
  try {
    f();
  } finally {
    cp.spawnSync = orig;
  }
  return n;
}

test('nf_tables map elements over netlink', () => {
  const before = hostTables();
  nftApply(`
    table inet kt-nat {
      map m4 { type ipv4_addr : verdict; }
      map m6 { type ipv6_addr : verdict; }
      chain to_a { }
      chain to_b { }
    }
  `, fdA);
  const el = (op: MapElement['op'], address: string, jump = 'to_a'): MapElement =>
    ({ op, table: 'kt-nat', map: address.includes(':') ? 'm6' : 'm4', address, jump });
  const nl = Nftnl.open(fdA);
  try {
    nl.apply([el('add', '10.30.0.2'), el('add', 'fd30::2', 'to_b')]);
    assert.equal(mapElems(A, 'm4', 'kt-nat'), ['10.30.0.2 : to_a']);
    assert.equal(mapElems(A, 'm6', 'kt-nat'), ['fd30::2 : to_b']);
    // the same element again is fine; many in one batch
    nl.apply([el('add', '10.30.0.2'), ...Array.from({ length: 50 }, (_, i) => el('add', `10.30.1.${i}`))]);
    assert.is(mapElems(A, 'm4', 'kt-nat').length, 51);
    // the address mapped to another chain is a clash, as with nft
    assert.is(kerr(() => nl.apply([el('add', '10.30.0.2', 'to_b')])).code, 'EEXIST');
    // delete (key only)
    nl.apply(Array.from({ length: 50 }, (_, i) => el('delete', `10.30.1.${i}`)));
    assert.equal(mapElems(A, 'm4', 'kt-nat'), ['10.30.0.2 : to_a']);
    // missing element / chain / map / table: ENOENT, and the batch changes nothing
    const e = kerr(() => nl.apply([el('add', '10.30.0.3'), el('delete', '10.30.0.99')]));
    assert.is(e.code, 'ENOENT');
    assert.match(e.message, /10\.30\.0\.3.*No such file or directory/);
    assert.equal(mapElems(A, 'm4', 'kt-nat'), ['10.30.0.2 : to_a'], 'all or nothing');
    assert.is(kerr(() => nl.apply([el('add', '10.30.0.4', 'to_nochain')])).code, 'ENOENT');
    assert.is(kerr(() => nl.apply([{ ...el('add', '10.30.0.4'), map: 'nomap' }])).code, 'ENOENT');
    assert.is(kerr(() => nl.apply([{ ...el('add', '10.30.0.4'), table: 'kt-notable' }])).code, 'ENOENT');
    // a key of the wrong size
    assert.is(kerr(() => nl.apply([{ ...el('add', 'fd30::3'), map: 'm4' }])).code, 'EINVAL');
    // the socket still works after errors (their late replies are skipped)
    nl.apply([el('delete', '10.30.0.2'), el('delete', 'fd30::2')]);
    assert.equal(mapElems(A, 'm4', 'kt-nat'), []);
    assert.equal(mapElems(A, 'm6', 'kt-nat'), []);
  } finally {
    nl.close();
  }
  // nftElements opens its socket in the given netns, not here
  nftElements(fdA, [el('add', '10.30.0.5')]);
  assert.equal(mapElems(A, 'm4', 'kt-nat'), ['10.30.0.5 : to_a']);
  assert.is(kerr(() => nftElements(fdB, [el('add', '10.30.0.5')])).code, 'ENOENT', 'no such table in B');
  assert.ok(nftTableExists(fdA, 'kt-nat'));
  assert.not.ok(nftTableExists(fdB, 'kt-nat'));
  assert.not.ok(nftTableExists(fdA, 'kt-test'), 'an ip table of that name is not an inet one');
  assert.is(hostTables(), before, 'host untouched');
  assert.is(readlinkSync('/proc/thread-self/ns/net'), homeNs);
  nftApply('delete table inet kt-nat\n', fdA);
});

test('nlBatch refuses batches the kernel would not answer', () => {
  const fd = withNetns(fdA, () => nlOpen(NETLINK_NETFILTER));
  try {
    const good = encodeBatch([{ op: 'delete', table: 'kt-none', map: 'm4', address: '10.0.0.1' }], 1000);
    // intact: the kernel answers (no such table)
    assert.throws(() => nlBatch(fd, good), (e: any) => e.code === 'ENOENT');
    const typeError = (b: Buffer) => assert.throws(() => nlBatch(fd, b), (e: any) => e instanceof TypeError);
    const beginLen = 20, elemLen = good.readUInt32LE(beginLen);
    typeError(good.subarray(0, beginLen + elemLen)); // no BATCH_END
    typeError(good.subarray(beginLen)); // no BATCH_BEGIN
    typeError(Buffer.concat([good.subarray(0, beginLen), good.subarray(beginLen + elemLen)])); // no change
    const noAck = Buffer.from(good);
    noAck.writeUInt16LE(noAck.readUInt16LE(beginLen + 6) & ~0x4, beginLen + 6);
    typeError(noAck);
    const badSeq = Buffer.from(good);
    badSeq.writeUInt32LE(7, beginLen + 8);
    typeError(badSeq);
    typeError(good.subarray(0, good.length - 3)); // truncated
  } finally {
    closeFd(fd);
  }
});

test('masqueradeAdd and masqueradeDel: netlink, nft only to create what is missing', () => {
  const e4: MasqueradeEntry = { family: 4, source: '10.40.0.2', exclude: '10.40.0.0/24' };
  const e6: MasqueradeEntry = { family: 6, source: 'fd40::2', exclude: 'fd40::/64' };
  const f4: MasqueradeEntry = { family: 4, source: '10.40.0.3', exclude: '10.40.0.0/24' };
  const g4: MasqueradeEntry = { family: 4, source: '10.41.0.2', exclude: '10.41.0.0/24' };
  const before = hostTables();
  // no table yet: one nft run makes table, maps, chains and the elements
  assert.is(nftRuns(() => masqueradeAdd([e4, e6], fdB)), 1);
  assert.equal(mapElems(B, 'masq4'), ['10.40.0.2 : to_10_40_0_0_24']);
  assert.equal(mapElems(B, 'masq6'), ['fd40::2 : to_fd40___64']);
  assert.match(nsExec(B, ['nft', 'list', 'chain', 'inet', NAT_TABLE, 'to_10_40_0_0_24']).stdout, /ip daddr 10\.40\.0\.0\/24 return[\s\S]*masquerade/);
  // the usual case: no nft at all; twice is fine
  assert.is(nftRuns(() => masqueradeAdd([f4], fdB)), 0);
  assert.is(nftRuns(() => masqueradeAdd([e4, e6, f4], fdB)), 0);
  assert.equal(mapElems(B, 'masq4'), ['10.40.0.2 : to_10_40_0_0_24', '10.40.0.3 : to_10_40_0_0_24']);
  // a new subnet has no chain yet: nft once more
  assert.is(nftRuns(() => masqueradeAdd([g4], fdB)), 1);
  assert.equal(mapElems(B, 'masq4'), ['10.40.0.2 : to_10_40_0_0_24', '10.40.0.3 : to_10_40_0_0_24', '10.41.0.2 : to_10_41_0_0_24']);
  // DEL: no nft, idempotent
  assert.is(nftRuns(() => masqueradeDel([e4, e6], fdB)), 0);
  assert.equal(mapElems(B, 'masq4'), ['10.40.0.3 : to_10_40_0_0_24', '10.41.0.2 : to_10_41_0_0_24']);
  assert.equal(mapElems(B, 'masq6'), []);
  assert.is(nftRuns(() => masqueradeDel([e4, e6], fdB)), 0, 'again: nothing to do, no error');
  // one entry's chain is gone: the others are still removed
  masqueradeDel([f4, { family: 4, source: '10.42.0.2', exclude: '10.42.0.0/24' }], fdB);
  assert.equal(mapElems(B, 'masq4'), ['10.41.0.2 : to_10_41_0_0_24']);
  masqueradeDel([g4], fdB);
  assert.equal(mapElems(B, 'masq4'), []);
  // the table still exists, the maps are empty: set-up stays
  assert.match(nsExec(B, ['nft', 'list', 'tables']).stdout, new RegExp(NAT_TABLE));
  // no table at all: DEL is a no-op
  nftApply(`delete table inet ${NAT_TABLE}\n`, fdB);
  assert.is(nftRuns(() => masqueradeDel([e4, e6], fdB)), 0);
  assert.not.match(nsExec(B, ['nft', 'list', 'tables']).stdout, new RegExp(NAT_TABLE));
  // a family mismatch is refused before anything is sent
  assert.is(kerr(() => masqueradeAdd([{ family: 4, source: 'fd40::9', exclude: '10.40.0.0/24' }], fdB)).code, 'EINVAL');
  assert.is(hostTables(), before, 'host untouched');
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
