// rtnl.ts's own decoders against the codec-based ones it replaced
// (test/helpers/rtnl-legacy.ts), on what a real kernel sends: links of every
// kind the plugins make, v4/v6 addresses (tentative ones too), routes in
// several tables and of several types, neighbours. And the changes made
// through the new code leave the state `ip` shows. Needs root. Prefix: rw-.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, nlOpen, nlRequest, openNetns, withNetns } from '../../host/kernel/native.js';
import { Rtnl, decode } from '../../host/kernel/rtnl.js';
import { sysctlEnsure, sysctlGet, sysctlSet } from '../../host/kernel/sysctl.js';
import { LegacyRtnl, toAddress, toLink, toRoute } from '../helpers/rtnl-legacy.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';

const P = 'rw-';
const A = `${P}a`, B = `${P}b`;
let fdA = -1, fdB = -1, sock = -1;
let ra: Rtnl;

test.before(() => {
  cleanupAll(P);
  makeNetns(A); makeNetns(B);
  fdA = openNetns(`/run/netns/${A}`);
  fdB = openNetns(`/run/netns/${B}`);
  sock = withNetns(fdA, () => nlOpen());
  ra = Rtnl.open(fdA);
});

test.after(() => {
  try { ra?.close(); } catch { /* closed */ }
  for (const fd of [fdA, fdB, sock]) if (fd >= 0) try { closeFd(fd); } catch { /* ignore */ }
  cleanupAll(P);
});

const ip = (...args: string[]) => nsExec(A, ['ip', ...args]);

test('state made through the new code, as ip shows it', () => {
  ra.createBridge('rwbr0', { mtu: 1400 });
  ra.createVeth('rwv0', 'rwp0', { peerNsFd: fdB, txqlen: 0, mac: '0a:58:0a:00:00:02' });
  ra.setLink('rwv0', { masterIndex: ra.getLink('rwbr0').index, up: true });
  ra.setBridgePort('rwv0', { hairpin: true });
  ra.setLink('rwbr0', { up: true });
  ra.addAddress(ra.getLink('rwbr0').index, '10.77.0.1/24');
  ra.addAddress(ra.getLink('rwbr0').index, 'fd77::1/64'); // tentative for a while (DAD on)
  ra.addAddress(ra.getLink('rwbr0').index, 'fd78::1/64', { noDad: true });
  ra.createVeth('rwd0', 'rwd1'); // a macvlan master (this kernel may have no dummy driver)
  ra.setLink('rwd0', { up: true });
  ra.createMacvlan('rwm0', ra.getLink('rwd0').index, 'bridge', { bcQueueLen: 100, txqlen: 0 });
  ra.createMacvlan('rwm1', ra.getLink('rwd1').index, 'passthru');
  ra.createIfb('rwifb0', { mtu: 1400, txqlen: 0, up: true });
  ra.addRoute({ family: 4, dst: '10.78.0.0/16', gw: '10.77.0.9', ifindex: ra.getLink('rwbr0').index, metric: 50 });
  ra.addRoute({ family: 4, dst: '10.79.0.0/16', ifindex: ra.getLink('rwbr0').index, table: 1000, src: '10.77.0.1' });
  ra.addRoute({ family: 4, dst: '0.0.0.0/0', gw: '192.168.9.1', ifindex: ra.getLink('rwbr0').index, onlink: true }, { exclusive: false });
  ra.addRoute({ family: 6, dst: 'fd79::/64', gw: 'fd78::9', ifindex: ra.getLink('rwbr0').index });
  ip('route', 'add', 'blackhole', '10.99.0.0/16');
  ip('route', 'add', 'unreachable', 'fd99::/64');
  ra.addNeigh({ ifindex: ra.getLink('rwbr0').index, ip: '10.77.0.9', mac: '0a:58:0a:4d:00:09', permanent: true });
  ra.addNeigh({ ifindex: ra.getLink('rwbr0').index, ip: 'fd78::9', mac: '0a:58:0a:4d:00:0a', permanent: false });
  const v0 = ipJson<any[]>(A, ['-d', 'link', 'show', 'dev', 'rwv0'])[0];
  assert.is(v0.master, 'rwbr0');
  assert.is(v0.address, '0a:58:0a:00:00:02');
  assert.is(v0.linkinfo.info_slave_data.hairpin, true);
  const m0 = ipJson<any[]>(A, ['-d', 'link', 'show', 'dev', 'rwm0'])[0];
  assert.is(m0.linkinfo.info_data.mode, 'bridge');
  assert.is(ipJson<any[]>(A, ['route', 'show', 'table', '1000'])[0].prefsrc, '10.77.0.1');
  assert.ok(ipJson<any[]>(A, ['route', 'show', 'default'])[0].flags.includes('onlink'));
  assert.is(nsExec(B, ['cat', '/sys/class/net/rwp0/tx_queue_len']).stdout.trim(), '0');
});

test('every reply decodes as the codec decoded it', () => {
  const replies: Buffer[] = [];
  const rn = Rtnl.over((req) => { const r = nlRequest(sock, req); replies.push(...r); return r; });
  const legacy = new LegacyRtnl((req) => nlRequest(sock, req));
  const links = rn.listLinks();
  assert.ok(links.length >= 8, String(links.length));
  assert.equal(links, legacy.listLinks());
  for (const l of links) {
    assert.equal(rn.getLink(l.name), legacy.getLink(l.name), l.name);
    assert.equal(rn.getLinkByIndex(l.index), legacy.getLinkByIndex(l.index), l.name);
  }
  assert.equal(rn.getLink('rwm0').bcQueueLen, 100);
  assert.equal(rn.getLink('rwm1').macvlanMode, 'passthru');
  assert.is(rn.getLink('rwv0').linkNetnsid, 0);
  for (const opts of [{}, { family: 4 as const }, { family: 6 as const }, { ifindex: rn.getLink('rwbr0').index }]) {
    assert.equal(rn.listAddresses(opts), legacy.listAddresses(opts), JSON.stringify(opts));
  }
  for (const [f, t] of [[undefined, undefined], [4, undefined], [6, undefined], [4, 1000], [4, 255], [6, 255]] as const) {
    assert.equal(rn.listRoutes(f, t), legacy.listRoutes(f, t), `${f} ${t}`);
  }
  for (const f of [undefined, 4, 6] as const) assert.equal(rn.listNeigh(f), legacy.listNeigh(f));
  assert.ok(rn.listRoutes(4).some((r) => r.type === 'blackhole'));
  // and message by message, whatever was in the replies
  let n = 0;
  for (const m of replies) {
    const type = m.readUInt16LE(4);
    if (type === 16) { assert.equal(decode.link(m), toLink(m)); n++; }
    if (type === 20) { assert.equal(decode.address(m), toAddress(m)); n++; }
    if (type === 24 && (m[16] === 2 || m[16] === 10)) { assert.equal(decode.route(m), toRoute(m)); n++; }
  }
  assert.ok(n > 50, `${n} messages compared`);
});

test('errors from the kernel: the same codes and messages', () => {
  const legacy = new LegacyRtnl((req) => nlRequest(sock, req));
  const err = (f: (r: any) => unknown) => { try { f(ra); } catch (e) { const x = e as any; try { f(legacy); } catch (e2) { const y = e2 as any; return [[x.code, x.errno, x.message], [y.code, y.errno, y.message]]; } } return null; };
  for (const f of [
    (r: any) => r.getLink('rwnope0'), (r: any) => r.getLinkByIndex(99999), (r: any) => r.createBridge('rwbr0'),
    (r: any) => r.setLink('rwnope0', { up: true }), (r: any) => r.setLink('rwbr0', { mtu: 10 }), (r: any) => r.deleteLink('rwnope0'),
    (r: any) => r.addAddress(ra.getLink('rwbr0').index, '10.77.0.1/24'), (r: any) => r.delAddress(99999, '10.1.1.1/24'),
    (r: any) => r.addRoute({ family: 4, dst: '10.78.0.0/16', gw: '10.77.0.9', ifindex: ra.getLink('rwbr0').index, metric: 50 }),
    (r: any) => r.setBridgePort('rwd0', { hairpin: true }), (r: any) => r.bridgeVlanAdd('rwd0', 5),
    (r: any) => r.setLink('rwv0', { newName: 'rwbr0' }),
  ]) {
    const pair = err(f);
    assert.ok(pair, String(f));
    assert.equal(pair![0], pair![1], String(f));
  }
});

test('sysctlEnsure: writes only a different value, returns the one before, fails as get and set fail', () => {
  const cat = (key: string) => nsExec(A, ['cat', `/proc/sys/${key}`]).stdout.trim();
  const key = 'net/ipv6/conf/rwv0/accept_ra';
  assert.is(cat(key), '1');
  assert.is(sysctlEnsure(fdA, key, '0'), '1');
  assert.is(cat(key), '0');
  assert.is(sysctlEnsure(fdA, key, '0'), '0');
  assert.is(sysctlEnsure(fdA, 'net.ipv4.conf.rwv0.arp_notify', '1'), '0');
  assert.is(cat('net/ipv4/conf/rwv0/arp_notify'), '1');
  // read-only for everyone (0444): fine while it holds the value, the write's own error otherwise
  const ro = 'net/ipv4/conf/all/mc_forwarding';
  assert.is(sysctlEnsure(fdA, ro, cat(ro)), cat(ro));
  const fail = (f: () => unknown) => { try { f(); } catch (e) { const x = e as any; return [x.name, x.code, x.errno, x.message]; } return null; };
  for (const [k, v] of [[ro, '1'], [key, 'nope'], [key, '99999999999999999999'], ['net/ipv4/conf/rwnope0/arp_notify', '1'], ['net/ipv4/conf/rwv0', '1'], ['kernel/hostname', 'x']]) {
    const want = fail(() => { if (sysctlGet(fdA, k).trim() !== v) sysctlSet(fdA, k, v); });
    assert.ok(want, `${k}=${v} fails`);
    assert.equal(fail(() => sysctlEnsure(fdA, k, v)), want, `${k}=${v}`);
  }
  assert.is(cat(key), '0');
});

test.run();
