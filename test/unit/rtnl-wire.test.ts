// rtnl.ts without a kernel: every request it builds is byte for byte the one
// the codec-based code sent before (test/helpers/rtnl-legacy.ts; seq
// zeroed), every reply decodes to the same object, and bad input fails the
// same way. The replies are synthetic messages written with the codec;
// test/netns/rtnl-wire.test.ts holds the decoders against a real kernel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from 'netlink/dist/structs.js';
import * as rt from 'netlink/dist/rt/gen_structs.js';
import * as ifla from 'netlink/dist/rt/ifla.js';
import { NlWriter } from '../../host/kernel/nlwire.js';
import { Rtnl, decode, encode } from '../../host/kernel/rtnl.js';
import { LegacyRtnl, toAddress, toLink, toRoute } from '../helpers/rtnl-legacy.js';

const msg = (type: number, ...data: S.StreamData[]): Buffer =>
  Buffer.concat(S.formatMessage({ type, flags: 2, seq: 0, port: 0, data: encode(...data) }));
const info = (kind: string, data?: Buffer) => encode(ifla.formatInfo({ kind, data }));

const LINKS = [
  msg(16, rt.formatLink({ index: 1, flags: { up: true, loopback: true } }), ifla.formatLinkAttrs({ ifname: 'lo', mtu: 65536, txqlen: 1000, address: Buffer.alloc(6) })),
  msg(16, rt.formatLink({ index: 7, flags: { up: true, promisc: true, allmulti: true } }),
    ifla.formatLinkAttrs({ ifname: 'veth1a2b3c4d', mtu: 1500, address: Buffer.from('0a580a000002', 'hex'), master: 3, link: S.putU32(2), linkNetnsid: 0, txqlen: 0, linkinfo: info('veth') })),
  msg(16, rt.formatLink({ index: 3 }), ifla.formatLinkAttrs({ ifname: 'cni0', mtu: 1400, address: Buffer.from('deadbeef0001', 'hex'), linkinfo: info('bridge', encode(ifla.formatBridge({ vlanFiltering: S.putU8(1) }))) })),
  msg(16, rt.formatLink({ index: 9 }), ifla.formatLinkAttrs({ ifname: 'mv0', link: S.putU32(4), linkNetnsid: 3,
    linkinfo: info('macvlan', encode(ifla.formatMacvlan({ mode: 8, flags: 0 }), (out: S.AttrStream) => out.push(7, S.putU32(100)))) })),
  msg(16, rt.formatLink({ index: 10 }), ifla.formatLinkAttrs({ ifname: 'mv1', link: S.putU32(4), linkinfo: info('macvlan', encode(ifla.formatMacvlan({ mode: 16 }))) })),
  msg(16, rt.formatLink({ index: 11 }), ifla.formatLinkAttrs({ ifname: 'vl11', link: S.putU32(11), linkinfo: info('vlan') })),
  msg(16, rt.formatLink({ index: 12 }), ifla.formatLinkAttrs({ ifname: 'bare', address: Buffer.alloc(0), operstate: 6, qdisc: 'noqueue' })),
];
const addrHdr = (family: number, prefixlen: number, flags: number, scope: number, index: number) => {
  const b = Buffer.from([family, prefixlen, flags, scope, 0, 0, 0, 0]);
  b.writeUInt32LE(index, 4);
  return b;
};
const ADDRS = [
  msg(20, addrHdr(2, 24, 0x80, 0, 3), rt.formatAddressAttrs({ address: Buffer.from([10, 1, 2, 3]), local: Buffer.from([10, 1, 2, 3]), label: 'cni0', flags: { permanent: true } })),
  msg(20, addrHdr(10, 64, 0x40, 0, 7), rt.formatAddressAttrs({ address: Buffer.from('fd000000000000000000000000000002', 'hex') })),
  msg(20, addrHdr(10, 64, 0, 253, 7), rt.formatAddressAttrs({ address: Buffer.from('fe800000000000000000000000000001', 'hex'), flags: { dadfailed: true, tentative: true } })),
  msg(20, addrHdr(2, 8, 0, 254, 1), rt.formatAddressAttrs({ local: Buffer.from([127, 0, 0, 1]) })),
  msg(20, addrHdr(2, 32, 0, 77, 1), rt.formatAddressAttrs({})),
];
const routeHdr = (family: number, dstLen: number, table: number, scope: number, type: number, flags: number) => {
  const b = Buffer.from([family, dstLen, 0, 0, table, 3, scope, type, 0, 0, 0, 0]);
  b.writeUInt32LE(flags, 8);
  return b;
};
const ROUTES = [
  msg(24, routeHdr(2, 0, 254, 0, 1, 0), rt.formatRouteAttrs({ table: 254, gateway: Buffer.from([10, 1, 2, 1]), oif: 7, priority: 100 })),
  msg(24, routeHdr(2, 24, 254, 253, 1, 0), rt.formatRouteAttrs({ table: 254, dst: Buffer.from([10, 1, 2, 0]), oif: 3, prefsrc: Buffer.from([10, 1, 2, 1]) })),
  msg(24, routeHdr(2, 32, 254, 0, 6, 0), rt.formatRouteAttrs({ table: 254, dst: Buffer.from([10, 9, 9, 9]) })),
  msg(24, routeHdr(2, 32, 255, 254, 2, 0), rt.formatRouteAttrs({ table: 255, dst: Buffer.from([10, 1, 2, 1]), oif: 3 })),
  msg(24, routeHdr(2, 0, 0, 0, 1, 4), rt.formatRouteAttrs({ table: 1000, gateway: Buffer.from([192, 168, 0, 1]), oif: 7 })),
  msg(24, routeHdr(10, 0, 254, 0, 1, 0x200), rt.formatRouteAttrs({ table: 254, gateway: Buffer.from('fe800000000000000000000000000001', 'hex'), oif: 7 })),
  msg(24, routeHdr(10, 64, 254, 0, 1, 0), rt.formatRouteAttrs({ table: 254, dst: Buffer.from('fd000000000000000000000000000000', 'hex'), oif: 7, priority: 256 })),
  msg(24, routeHdr(10, 128, 254, 0, 99, 0), rt.formatRouteAttrs({ table: 254, dst: Buffer.from('fd000000000000000000000000000009', 'hex') })),
];
const neighHdr = (family: number, ifindex: number, state: number) => {
  const b = Buffer.alloc(12);
  b[0] = family; b.writeUInt32LE(ifindex, 4); b.writeUInt16LE(state, 8);
  return b;
};
const NEIGHS = [
  msg(28, neighHdr(2, 7, 0x80), rt.formatNeighborAttrs({ dst: Buffer.from([10, 1, 2, 9]), lladdr: Buffer.from('0a580a010209', 'hex') })),
  msg(28, neighHdr(10, 7, 0x02), rt.formatNeighborAttrs({ dst: Buffer.from('fd000000000000000000000000000009', 'hex') })),
  msg(28, neighHdr(7, 7, 0x02), rt.formatNeighborAttrs({ lladdr: Buffer.from('0a580a010209', 'hex') })),
];

/** Replies by request type; a GETLINK of one link answers with LINKS[1] (index 7). */
function reply(req: Buffer): Buffer[] {
  const type = req.readUInt16LE(4), dump = (req.readUInt16LE(6) & 0x300) === 0x300;
  if (type === 18) return dump ? LINKS : [LINKS[1]];
  if (type === 22) return ADDRS;
  if (type === 26) return ROUTES;
  if (type === 30) return NEIGHS;
  return [];
}

type Api = Rtnl | LegacyRtnl;
function run(f: (r: any) => unknown, make: (t: (req: Buffer) => Buffer[]) => Api) {
  const sent: string[] = [];
  const r = make((req) => {
    const c = Buffer.from(req);
    c.writeUInt32LE(0, 8); // seq
    sent.push(c.toString('hex'));
    return reply(req);
  });
  try {
    return { sent, value: f(r) };
  } catch (e) {
    const err = e as { name?: string; code?: string; message?: string };
    return { sent, error: { name: err.name, code: err.code, message: err.message } };
  }
}

function same(what: string, f: (r: any) => unknown): void {
  const now = run(f, (t) => Rtnl.over(t));
  const before = run(f, (t) => new LegacyRtnl(t));
  assert.equal(now.sent, before.sent, `${what}: request bytes`);
  assert.equal(now, before, `${what}: result`);
}

test('links: every request as before, replies decoded as before', () => {
  same('getLink', (r) => r.getLink('eth0'));
  same('getLinkByIndex', (r) => r.getLinkByIndex(12));
  same('listLinks', (r) => r.listLinks());
  same('createVeth', (r) => r.createVeth('eth0', 'veth1234abcd'));
  same('createVeth all options', (r) => r.createVeth('eth0', 'veth1234abcd', { mtu: 1400, mac: '0A:58:0a:00:00:02', peerMac: '0a:58:0a:00:00:03', peerNsFd: 9, txqlen: 0 }));
  same('createVeth peer only options', (r) => r.createVeth('e', 'v', { peerNsFd: 21 }));
  same('createBridge', (r) => r.createBridge('cni0'));
  same('createBridge vlan filtering', (r) => r.createBridge('br-long-name15', { mtu: 9000, vlanFiltering: true, mac: 'de:ad:be:ef:00:01' }));
  same('createBridge filtering off', (r) => r.createBridge('br0', { vlanFiltering: false }));
  for (const mode of ['private', 'vepa', 'bridge', 'passthru']) same(`createMacvlan ${mode}`, (r) => r.createMacvlan('mv0', 4, mode));
  same('createMacvlan all options', (r) => r.createMacvlan('mv0', 4, 'bridge', { mtu: 1450, mac: '0a:00:00:00:00:01', nsFd: 12, txqlen: 0, bcQueueLen: 100 }));
  same('createMacvlan bcqueuelen 0', (r) => r.createMacvlan('mv0', 4, 'bridge', { bcQueueLen: 0 }));
  same('createIfb', (r) => r.createIfb('ifb0'));
  same('createIfb up', (r) => r.createIfb('bwp1234', { mtu: 1500, txqlen: 0, up: true }));
  same('createDummy', (r) => r.createDummy('dummy0', { mtu: 1280 }));
  for (const opts of [{ up: true }, { up: false }, { mtu: 1400 }, { mtu: 0 }, { mac: 'aa:bb:cc:dd:ee:ff' }, { masterIndex: 0 }, { masterIndex: 3 },
    { promisc: true }, { promisc: false }, { allmulti: true }, { allmulti: false }, { txqlen: 0 }, { txqlen: 1000 }, { nsFd: 14 },
    { newName: 'eth1' }, { nsFd: 14, newName: 'net1' }, { up: true, promisc: false, allmulti: true, mtu: 9000, mac: '02:00:00:00:00:01', masterIndex: 5, txqlen: 7 }, {}]) {
    same(`setLink ${JSON.stringify(opts)}`, (r) => r.setLink('veth1', opts));
  }
  for (const opts of [{ hairpin: true }, { hairpin: false }, { isolated: true }, { learning: false }, { hairpin: true, isolated: false, learning: true }, {}]) {
    same(`setBridgePort ${JSON.stringify(opts)}`, (r) => r.setBridgePort('veth1', opts));
  }
  same('bridgeVlanAdd', (r) => r.bridgeVlanAdd('veth1', 100));
  same('bridgeVlanAdd pvid untagged', (r) => r.bridgeVlanAdd('veth1', 4094, { pvid: true, untagged: true }));
  same('bridgeVlanAdd self', (r) => r.bridgeVlanAdd('cni0', 1, { self: true, pvid: true }));
  same('bridgeVlanDel', (r) => r.bridgeVlanDel('veth1', 7, { untagged: true, self: false }));
  same('deleteLink', (r) => r.deleteLink('eth0'));
  same('non-ASCII name', (r) => r.deleteLink('é0'));
  same('astral and lone surrogate names', (r) => { r.deleteLink('a\u{1f600}b'); r.deleteLink('b\ud800'); r.createVeth('\u00e9\u00e9\u00e9', 'x\u{1f600}'); });
});

test('addresses, routes, neighbours: every request as before, replies decoded as before', () => {
  for (const cidr of ['10.1.2.3/24', '10.1.2.3/31', '10.1.2.3/32', '10.1.2.3/0', '10.1.2.3/8', '10.1.2.3', 'fd00::2/64', '::/0', '::ffff:1.2.3.4/96']) {
    same(`addAddress ${cidr}`, (r) => r.addAddress(7, cidr));
    same(`addAddress ${cidr} nodad`, (r) => r.addAddress(7, cidr, { noDad: true }));
    same(`delAddress ${cidr}`, (r) => r.delAddress(7, cidr));
  }
  same('addAddress index 0', (r) => r.addAddress(0, '10.0.0.1/24'));
  for (const opts of [{}, { family: 4 }, { family: 6 }, { ifindex: 7 }, { ifindex: 7, family: 6 }, { ifindex: 99 }]) {
    same(`listAddresses ${JSON.stringify(opts)}`, (r) => r.listAddresses(opts));
  }
  const routes = [
    { family: 4, dst: '0.0.0.0/0', gw: '10.1.2.1', ifindex: 7 },
    { family: 4, dst: '0.0.0.0/0', gw: '10.1.2.1', ifindex: 7, scope: 'universe' },
    { family: 4, dst: '10.1.2.0/24', ifindex: 3, src: '10.1.2.1', metric: 100 },
    { family: 4, dst: '10.1.2.9/32', ifindex: 3, scope: 'host', table: 1000 },
    { family: 4, dst: '10.1.2.9/32', ifindex: 3, scope: '17', table: 100 },
    { family: 4, dst: '0.0.0.0/0', gw: '192.168.0.1', ifindex: 7, onlink: true },
    { family: 4, dst: '10.9.0.0/16', gw: '10.1.2.1', table: 0 },
    { family: 6, dst: '::/0', gw: 'fe80::1', ifindex: 7 },
    { family: 6, dst: 'fd00::/64', ifindex: 7, metric: 256, src: 'fd00::2', scope: 'link' },
    { family: 6, dst: 'fd00::9/128', ifindex: 7, onlink: true, gw: 'fd00::1' },
  ];
  for (const r0 of routes) {
    same(`addRoute ${JSON.stringify(r0)}`, (r) => r.addRoute(r0));
    same(`addRoute ${JSON.stringify(r0)} not exclusive`, (r) => r.addRoute(r0, { exclusive: false }));
    same(`delRoute ${JSON.stringify(r0)}`, (r) => r.delRoute(r0));
  }
  for (const args of [[], [4], [6], [4, 255], [4, 1000], [6, 254]]) same(`listRoutes ${args}`, (r) => r.listRoutes(...args));
  const neigh = { ifindex: 7, ip: '10.1.2.9', mac: '0a:58:0a:01:02:09', permanent: true };
  same('addNeigh', (r) => r.addNeigh(neigh));
  same('addNeigh v6 reachable', (r) => r.addNeigh({ ifindex: 7, ip: 'fd00::9', mac: '0a:58:0a:01:02:09', permanent: false }));
  same('addNeigh no mac', (r) => r.addNeigh({ ...neigh, mac: '' }));
  same('delNeigh', (r) => r.delNeigh(neigh));
  for (const f of [undefined, 4, 6]) same(`listNeigh ${f}`, (r) => r.listNeigh(f));
});

test('bad input: the same errors as before, nothing sent', () => {
  same('bad mac', (r) => r.setLink('veth1', { mac: 'zz:00:00:00:00:00' }));
  same('bad peer mac', (r) => r.createVeth('a', 'b', { mac: 'x', peerMac: 'y' }));
  same('bad bridge mac', (r) => r.createBridge('br0', { mac: '00:11' }));
  same('bad macvlan mode', (r) => r.createMacvlan('mv0', 4, 'source'));
  same('bad bcqueuelen', (r) => r.createMacvlan('mv0', 4, 'bridge', { bcQueueLen: -1 }));
  same('bad bcqueuelen and mac', (r) => r.createMacvlan('mv0', 4, 'bridge', { bcQueueLen: 1.5, mac: 'nope' }));
  same('bad vid', (r) => r.bridgeVlanAdd('veth1', 4095));
  same('bad cidr', (r) => r.addAddress(7, '10.1.2/24'));
  same('bad prefix', (r) => r.addAddress(7, '10.1.2.3/33'));
  same('route family', (r) => r.addRoute({ family: 6, dst: '10.0.0.0/8' }));
  same('route gw', (r) => r.addRoute({ family: 4, dst: '10.0.0.0/8', gw: '10.0.0.256' }));
  same('route scope', (r) => r.addRoute({ family: 4, dst: '10.0.0.0/8', scope: 'planet' }));
  same('route src', (r) => r.delRoute({ family: 4, dst: '10.0.0.0/8', src: 'x' }));
  same('neigh ip', (r) => r.addNeigh({ ifindex: 7, ip: 'nope', mac: '', permanent: false }));
  same('neigh mac', (r) => r.addNeigh({ ifindex: 7, ip: '10.0.0.1', mac: '0a', permanent: false }));
  const closed = (r: Rtnl) => { r.close(); return r.getLink('eth0'); };
  const e = run(closed, (t) => Rtnl.over(t));
  assert.equal(e.sent, []);
  assert.is((e as { error?: { code?: string } }).error?.code, 'EBADF');
});

test('decoders: the codec decoders\' objects for every synthetic reply', () => {
  for (const m of LINKS) assert.equal(decode.link(m), toLink(m));
  for (const m of ADDRS) assert.equal(decode.address(m), toAddress(m));
  for (const m of ROUTES) assert.equal(decode.route(m), toRoute(m));
});

test('writer: grows past its buffer, pads before attributes, nests', () => {
  const w = new NlWriter(8);
  w.begin(18, 5, 0x01020304);
  w.zeros(16);
  w.attrStr(3, 'x'.repeat(300)).attrU8(7, 1).attrU16(8, 0xbeef).attrU32(9, 0xdeadbeef);
  const n = w.start(18, true);
  w.attr(1, Buffer.from('abc'));
  w.end(n);
  const m = w.finish();
  const want = encode(rt.formatLink({}), (out: S.AttrStream) => {
    out.push(3, S.putString('x'.repeat(300))); out.push(7, S.putU8(1)); out.push(8, S.putU16(0xbeef)); out.push(9, S.putU32(0xdeadbeef));
  });
  const nest = Buffer.concat(S.formatAttribute({ type: 18, nested: true, data: encode((out: S.AttrStream) => out.push(1, Buffer.from('abc'))) }));
  const body = Buffer.concat([want, Buffer.alloc(S.padding(want.length)), nest]);
  assert.is(m.toString('hex'), Buffer.concat(S.formatMessage({ type: 18, flags: 5, seq: 0x01020304, port: 0, data: body })).toString('hex'));
  assert.throws(() => { const x = new NlWriter(); x.begin(1, 0, 0); const a = x.start(1); x.bytes(Buffer.alloc(0x10000)); x.end(a); }, /Maximum attribute length/);
});

test.run();
