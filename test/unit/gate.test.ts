// The capability gate, the ledger and the sweep on their own: no root, no
// kernel. Host functions are the real declarations with `run` replaced by a
// recorder (test/helpers/gate.ts), so what is checked is exactly what the
// gate decides and records before any kernel code would run.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeCall } from '../helpers/gate.js';
import { links } from '../../host/capabilities/links.js';
import { routes } from '../../host/capabilities/routes.js';
import { sysctl } from '../../host/capabilities/sysctl.js';
import { firewall } from '../../host/capabilities/firewall.js';
import { store } from '../../host/capabilities/store.js';
import { addresses } from '../../host/capabilities/addresses.js';
import { TimeLimitReached, bindInterface, type HostInterface } from '../../host/gate/gate.js';
import { Ledger } from '../../host/gate/ledger.js';
import { intersectGrants, validatePolicy } from '../../host/gate/policy.js';
import { sweep, declareUndo } from '../../host/sweep.js';

const LINKS = { setUp: ['ns', 'name', 'up'], remove: ['ns', 'name'], setMaster: ['ns', 'name', 'master'], createMacvlan: ['spec'], moveToContainer: ['name'], rename: ['ns', 'name', 'new-name'] };
const BRIDGE_OBJECTS = [{ key: 'bridge', default: 'cni0', kind: 'link' as const, ns: 'host' as const, rights: ['create', 'attach', 'change', 'address'] as any }];

test('object rights: a string in the config grants nothing; a declared key grants only its rights', () => {
  const t = fakeCall({ grants: { links: { host: true, container: true } }, objects: BRIDGE_OBJECTS, config: { name: 'eth0', bridge: 'br9', other: 'eth0' } });
  const l = t.bind('links', links, LINKS);
  // "name" and "other" say eth0: that is no right on the host's eth0
  assert.match(l.setUp('host', 'eth0', false).val.message, /host link 'eth0' was not created by this attachment or named by its declared config keys \("bridge"\)/);
  // the declared bridge: change and attach, never delete or move
  assert.is(l.setUp('host', 'br9', true).tag, 'ok');
  assert.match(l.remove('host', 'br9').val.message, /may not be given right 'delete'/);
  assert.match(l.moveToContainer('br9').val.message, /may not be given right 'move'/);
  // cni0 is only the default when the key is absent
  assert.match(l.setUp('host', 'cni0', true).val.message, /not created by this attachment/);
  assert.equal(t.ran, ['links.setUp']);
});

test('object rights: in the container only CNI_IFNAME and what the attachment made; never another attachment\'s interface', () => {
  const t = fakeCall({ grants: { links: { host: true, container: true } }, ifname: 'eth1' });
  const l = t.bind('links', links, LINKS);
  assert.is(l.setUp('container', 'eth1', true).tag, 'ok');
  assert.match(l.setUp('container', 'eth0', false).val.message, /container link 'eth0' is not this attachment's/);
  assert.match(l.remove('container', 'eth0').val.message, /not this attachment's/);
  assert.match(l.rename('container', 'eth1', 'eth0').val.message, /eth0/);
});

test('object rights: a macvlan master is a parent only', () => {
  const t = fakeCall({
    grants: { links: { host: true, container: true } }, ifname: 'eth0',
    objects: [{ key: 'master', kind: 'link', ns: 'host', rights: ['parent'] }], config: { master: 'uplink0' },
  });
  const l = t.bind('links', links, LINKS);
  assert.is(l.createMacvlan(mvSpec('eth0', 'uplink0')).tag, 'ok');
  for (const r of [l.setUp('host', 'uplink0', false), l.remove('host', 'uplink0'), l.moveToContainer('uplink0'), l.setMaster('host', 'uplink0', ''),
    l.rename('host', 'uplink0', 'x0')]) {
    assert.is(r.val.code, 'EDENIED');
  }
  assert.match(l.createMacvlan(mvSpec('eth0', 'eth9')).val.message, /host link 'eth9' was not created/);
  // the master named for the host is no right on a container link of that name, and vice versa
  assert.match(l.createMacvlan(mvSpec('eth0', 'uplink0', 'container')).val.message, /container link 'uplink0' is not this attachment's/);
  // only CNI_IFNAME may be created in the container
  assert.match(l.createMacvlan(mvSpec('eth1', 'uplink0')).val.message, /container link 'eth1' is not this attachment's/);
  assert.equal(t.ran, ['links.createMacvlan']);
  // what it created is recorded before it exists, in the container namespace
  assert.equal(t.ctx.ledger.entries.map((e) => [e.kind, e.ns, e.name]), [['link', 'container', 'eth0']]);
});

const mvSpec = (name: string, master: string, masterNs = 'host') => ({ name, master, masterNs, mode: 'bridge', mtu: 0, mac: undefined, bcqueuelen: 0 });

test('object rights: without "master" the parent right is on the default route\'s link only, looked up by the host', () => {
  const decl = [{ key: 'master', defaultRoute: true, kind: 'link' as const, ns: 'host' as const, rights: ['parent'] as any }];
  const t = fakeCall({ grants: { links: { host: true, container: true } }, objects: decl, config: {} });
  let lookups = 0;
  t.ctx.owned.defaultRouteLink = (ns) => { lookups++; return ns === 'host' ? 'wan0' : null; };
  const l = t.bind('links', links, LINKS);
  assert.is(l.createMacvlan(mvSpec('eth0', 'wan0')).tag, 'ok');
  assert.match(l.createMacvlan(mvSpec('eth0', 'lan0')).val.message, /host link 'lan0' was not created/);
  assert.is(l.remove('host', 'wan0').val.code, 'EDENIED');
  assert.is(lookups, 1);
  // a configured master: the default route's link gets nothing, and is never looked up
  const t2 = fakeCall({ grants: { links: { host: true, container: true } }, objects: decl, config: { master: 'lan0' } });
  t2.ctx.owned.defaultRouteLink = () => { throw new Error('looked up'); };
  const l2 = t2.bind('links', links, LINKS);
  assert.match(l2.createMacvlan(mvSpec('eth0', 'wan0')).val.message, /host link 'wan0' was not created/);
  assert.is(l2.createMacvlan(mvSpec('eth0', 'lan0')).tag, 'ok');
});

test('kernel-chosen names are refused: no %d templates, no bad names', () => {
  const t = fakeCall({ grants: { links: { host: true, container: true } } });
  const l = t.bind('links', { createIfb: links.createIfb }, { createIfb: ['ns', 'name', 'mtu', 'txqueuelen'] });
  for (const n of ['ifb%d', 'a/b', '', 'x'.repeat(16), 'a b']) assert.is(l.createIfb('host', n, 0, 0).tag, 'err', n);
  assert.equal(t.ran, []);
  assert.equal(t.ctx.ledger.entries, []);
});

test('host routes: only to the attachment\'s own addresses, and only its own may be deleted', () => {
  const t = fakeCall({ grants: { routes: { host: true, container: true } } });
  t.ctx.owned.own('host', 'veth1');
  t.ctx.owned.ownResult({ ips: [{ address: '10.9.0.5/24' }] });
  const r = t.bind('routes', routes, { add: ['ns', 'r'], del: ['ns', 'r'] });
  const route = (dst: string, dev = 'veth1') => ({ dst, gw: '', dev, src: '', metric: 0, scope: '' });
  assert.match(r.add('host', route('0.0.0.0/0')).val.message, /only host routes/);
  assert.match(r.add('host', route('10.9.0.6/32')).val.message, /10\.9\.0\.6 is not this attachment's/);
  assert.match(r.add('host', route('10.9.0.5/32', 'eth0')).val.message, /host link 'eth0'/);
  assert.is(r.add('host', route('10.9.0.5/32')).tag, 'ok');
  assert.match(r.del('host', route('10.9.0.7/32')).val.message, /was not added by this attachment/);
  assert.is(r.del('host', route('10.9.0.5/32')).tag, 'ok');
  assert.is(r.add('container', route('0.0.0.0/0', 'eth0')).tag, 'ok', 'the container\'s own routes are its business');
});

test('sysctl: an interface in a key needs the right on that interface, also through a "*" grant', () => {
  const t = fakeCall({ grants: { sysctl: { host: true, container: true, keys: ['net/ipv6/conf/*/accept_ra', 'net/ipv4/ip_forward'] } } });
  t.ctx.owned.own('host', 'veth1');
  const s = t.bind('sysctl', sysctl, { set: ['ns', 'key', 'value'] });
  assert.is(s.set('host', 'net/ipv6/conf/veth1/accept_ra', '0').tag, 'ok');
  assert.match(s.set('host', 'net/ipv6/conf/eth0/accept_ra', '2').val.message, /host link 'eth0'/);
  assert.match(s.set('host', 'net/ipv6/conf/all/accept_ra', '2').val.message, /not in the plugin's granted/);
  assert.match(s.set('host', 'net/ipv4/../../kernel/x', '1').val.message, /outside net/);
  assert.match(s.set('container', 'net/ipv4/conf/eth5/forwarding', '1').val.message, /container link 'eth5'/);
  assert.is(s.set('container', 'net/ipv4/conf/eth0/arp_notify', '1').tag, 'ok');
});

test('NAT and spoof checks: only for the attachment\'s own addresses; removing others\' removes nothing', () => {
  const t = fakeCall({ grants: { firewall: true } });
  t.ctx.owned.ownResult({ ips: [{ address: '10.9.0.5/24' }] });
  const f = t.bind('firewall', firewall, { masqueradeAdd: ['entries'], masqueradeDel: ['entries'] });
  const m = (source: string) => ({ network: 'n', source, exclude: '10.9.0.0/24' });
  assert.match(f.masqueradeAdd([m('10.9.0.5'), m('10.9.0.77')]).val.message, /10\.9\.0\.77 is not this attachment's/);
  assert.equal(t.ran, []);
  assert.is(f.masqueradeAdd([m('10.9.0.5')]).tag, 'ok');
  // another container's entry: the call succeeds and touches nothing of it
  const before = t.ran.length;
  assert.is(f.masqueradeDel([m('10.9.0.77')]).tag, 'ok');
  assert.is(t.ran.length, before + 1);
  const delRec = t.audit.filter((r) => r.call === 'firewall.masquerade-del').pop();
  assert.equal(delRec.args.entries, [], 'the call reached the kernel with nothing to remove');
});

test('write-ahead: the audit intent and the ledger intent exist before run; no record, no action', () => {
  const t = fakeCall({ grants: { links: { host: true, container: true } } });
  const seen: string[] = [];
  const impl: HostInterface = {
    createIfb: { ...links.createIfb, run: () => { seen.push(`audit:${t.audit.map((r) => r.outcome).join(',')} ledger:${t.ctx.ledger.liveEntries.map((l) => l.state).join(',')}`); } },
  };
  const sig = { createIfb: { wit: 'create-ifb', params: ['ns', 'name', 'mtu', 'txqueuelen'], hasResult: true } };
  const l = bindInterface(t.ctx, 'links', impl, sig) as any;
  assert.is(l.createIfb('host', 'ifbtest0', 0, 0).tag, 'ok');
  assert.equal(seen, ['audit:pending ledger:intent']);
  assert.equal(t.ctx.ledger.liveEntries.map((x) => x.state), ['done']);
  assert.equal(t.audit.map((r) => r.outcome), ['pending', 'ok']);

  // an audit log that cannot be written refuses the call
  let ran = 0;
  const failing = { ...t.ctx, audit: { write: () => { throw new Error('ENOSPC: no space left'); } } as any };
  const l2 = bindInterface(failing, 'links', { createIfb: { ...links.createIfb, run: () => { ran++; } } }, sig) as any;
  const r2 = l2.createIfb('host', 'ifbtest1', 0, 0);
  assert.is(r2.val.code, 'ERECORD');
  assert.is(ran, 0);
  assert.not.ok(t.ctx.ledger.entries.some((e) => e.name === 'ifbtest1'), 'nothing recorded as made');

  // a ledger that cannot be written refuses it too
  const t3 = fakeCall({ grants: { links: { host: true, container: true } } });
  const detached = { ...t3.ctx, ledger: Ledger.detached('no ledger here') };
  const l3 = bindInterface(detached, 'links', { createIfb: { ...links.createIfb, run: () => { ran++; } } }, sig) as any;
  assert.match(l3.createIfb('host', 'ifbtest2', 0, 0).val.message, /cannot record the call, so it was not made: no ledger here/);
  assert.is(ran, 0);
  assert.equal(t3.audit.map((r) => r.outcome.split(' ')[0]), ['pending', 'error:']);
});

test('a host call after the deadline is never started; the guest is stopped', () => {
  const t = fakeCall({ grants: { links: { host: true, container: true } }, deadline: Date.now() - 1 });
  const l = t.bind('links', links, LINKS);
  assert.throws(() => l.setUp('container', 'eth0', true), (e: unknown) => e instanceof TimeLimitReached);
  assert.equal(t.ran, []);
  assert.equal(t.audit, []);
});

test('arguments are bounded before any work: a 20M-character string, a 200,000-item list', () => {
  const t = fakeCall({ grants: { firewall: true, links: { host: true, container: true } } });
  const l = t.bind('links', links, LINKS);
  const r = l.setUp('container', 'x'.repeat(20_000_000), true);
  assert.is(r.val.code, 'E2BIG');
  assert.match(r.val.message, /arguments too large/);
  const f = t.bind('firewall', firewall, { masqueradeAdd: ['entries'] });
  const many = Array.from({ length: 200_000 }, () => ({ network: 'n', source: '10.0.0.1', exclude: '10.0.0.0/8' }));
  assert.match(f.masqueradeAdd(many).val.message, /arguments too large/);
  assert.equal(t.ran, []);
  // and the audit record of a long argument is shortened, not copied whole
  assert.ok(JSON.stringify(t.audit).length < 10_000);
});

test('store: only the invocation\'s network, never cni-wasm\'s own directories, never another plugin\'s store', () => {
  const t = fakeCall({ type: 'evil', grants: { store: { dirs: ['*'] } }, network: 'mine' });
  const s = t.bind('store', store, { open: ['network', 'data-dir'] });
  assert.match(s.open('theirs', '').val.message, /network 'theirs' is not this invocation's/);
  assert.match(s.open('mine', t.ctx.policy.stateDir).val.message, /reaches cni-wasm's own directory/);
  mkdirSync(t.ctx.policy.stateDir, { recursive: true });
  const link = join(t.dir, 'innocent');
  symlinkSync(t.ctx.policy.stateDir, link);
  assert.match(s.open('mine', link).val.message, /reaches cni-wasm's own directory/, 'a symlink does not lead around the check');
  assert.match(s.open('mine', t.ctx.policy.storeDir).val.message, /host-local's store/);
  assert.match(s.open('mine', 'relative/dir').val.message, /absolute/);
  const t2 = fakeCall({ type: 'evil', grants: { store: { dirs: ['/var/lib/evil'] } }, network: 'mine' });
  assert.match(t2.bind('store', store, { open: ['network', 'data-dir'] }).open('mine', '/tmp/x').val.message, /outside the plugin's granted "store"/);
  assert.equal(t.ran.concat(t2.ran), []);
});

test('delegation attenuates: the delegate gets what both it and its caller hold', () => {
  const caller = { links: { host: true, container: true }, store: { dirs: ['/var/lib/cni/networks'] }, log: true };
  const callee = { store: { dirs: ['*'] }, dns: { paths: ['*'] }, log: true, firewall: true };
  assert.equal(intersectGrants(caller, callee), { store: { dirs: ['/var/lib/cni/networks'] }, log: true });
  assert.equal(intersectGrants({}, callee), {});
  assert.equal(intersectGrants({ delegate: true }, { delegate: { types: ['host-local'] } }), { delegate: { types: ['host-local'] } });
});

test('policy: an unknown or misspelled key is an error naming it', () => {
  assert.throws(() => validatePolicy({ timeoutMS: 10 }, 'p.json'), /unknown key "timeoutMS"/);
  assert.throws(() => validatePolicy({ plugins: { x: { grant: {} } } }, 'p.json'), /unknown key "grant"/);
  assert.throws(() => validatePolicy({ plugins: { x: { grants: { link: { host: true } } } } }, 'p.json'), /unknown grant "link"/);
  assert.throws(() => validatePolicy({ plugins: { x: { grants: { links: { hots: true } } } } }, 'p.json'), /unknown setting "links.hots"/);
  assert.throws(() => validatePolicy({ plugins: { x: { objects: [{ key: 'master', kind: 'link', ns: 'host', rights: ['own'] }] } } }, 'p.json'), /rights/);
  assert.throws(() => validatePolicy({ stateDir: 'relative' }, 'p.json'), /stateDir/);
  assert.ok(validatePolicy({ timeoutMs: 100, plugins: { x: { sha256: 'a'.repeat(64), grants: { log: true } } } }, 'p.json'));
});

test('ledger: one journal per attachment, unambiguous names, locked, validated on read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-unit-'));
  try {
    const soon = () => Date.now() + 300;
    // cid "a-b" + ifname "c" and cid "a" + ifname "b-c" were one file before
    assert.is.not(Ledger.pathOf(dir, 'n', 'a-b', 'c'), Ledger.pathOf(dir, 'n', 'a', 'b-c'));
    // a 240-character container id and a long network name still get a file
    const long = Ledger.open(dir, 'n'.repeat(200), 'c'.repeat(240), 'eth0', soon());
    long.intend([{ kind: 'link', name: 'veth1', plugin: 'bridge' }]);
    long.close();
    assert.is(Ledger.peek(dir, 'n'.repeat(200), 'c'.repeat(240), 'eth0').length, 1);

    const a = Ledger.open(dir, 'n', 'ctr', 'eth0', soon());
    const [id] = a.intend([{ kind: 'link', name: 'veth1', plugin: 'bridge' }]);
    // a racing call on the same attachment waits for the lock, then gives up clearly
    const t0 = Date.now();
    assert.throws(() => Ledger.open(dir, 'n', 'ctr', 'eth0', Date.now() + 100), /locked by another CNI call/);
    assert.ok(Date.now() - t0 >= 90);
    a.confirm(id);
    a.close();
    // forged and torn lines are never obeyed
    const f = Ledger.pathOf(dir, 'n', 'ctr', 'eth0');
    appendFileSync(f, '{"op":"intend","id":99,"entry":{"kind":"link","name":{"$":1},"plugin":"x"}}\n{"op":"intend","id":98,"entry":{"kind"');
    assert.equal(Ledger.peek(dir, 'n', 'ctr', 'eth0').map((e) => e.name), ['veth1']);
    // the journal names its attachment: one moved over another's is refused
    writeFileSync(Ledger.pathOf(dir, 'n', 'ctr2', 'eth0'), readFileSync(f));
    assert.throws(() => Ledger.open(dir, 'n', 'ctr2', 'eth0', soon()), /belongs to another attachment/);
    // root only
    assert.is(statSync(join(dir, 'ledger')).mode & 0o777, 0o700);
    assert.is(statSync(f).mode & 0o777, 0o600);
    // a journal with nothing live is removed
    const b = Ledger.open(dir, 'n', 'ctr', 'eth0', soon());
    b.forget(() => true);
    b.close();
    assert.equal(Ledger.peek(dir, 'n', 'ctr', 'eth0'), []);
    // an empty journal (a call killed before its header) is removed by GC's
    // removeEmpty, unless a call holds it; a journal with a header is left alone
    const empty = Ledger.pathOf(dir, 'n', 'killed', 'eth0');
    writeFileSync(empty, '');
    const held = Ledger.open(dir, 'n', 'busy', 'eth0', soon()); // holds its lock
    const busy = Ledger.pathOf(dir, 'n', 'busy', 'eth0');
    writeFileSync(busy, ''); // as if just made, before its header: same inode, still locked
    assert.is(Ledger.removeEmpty(dir, 'n'), 1);
    assert.not.ok(existsSync(empty));
    assert.ok(existsSync(busy), 'the journal a call holds stays');
    assert.ok(existsSync(Ledger.pathOf(dir, 'n', 'ctr2', 'eth0')), 'a journal with a header stays');
    held.close();
    assert.is(Ledger.removeEmpty(dir, 'n'), 0, 'closed with nothing live: already removed');
    assert.is(Ledger.removeEmpty(dir, 'no-such-network'), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sweep: newest first, shared objects forgotten at DEL, a failed undo kept for the next try', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-unit-'));
  try {
    const done: string[] = [];
    declareUndo('fake', (e) => { if (e.fail) throw new Error('busy'); done.push(String(e.name)); return `fake.remove ${e.name}`; });
    const l = Ledger.open(dir, 'n', 'ctr', 'eth0', Date.now() + 300);
    l.intend([
      { kind: 'fake', name: 'first', plugin: 'p' },
      { kind: 'fake', name: 'stuck', plugin: 'p', fail: true },
      { kind: 'link', name: 'br0', plugin: 'p', keep: true, linkKind: 'bridge' },
      { kind: 'fake', name: 'last', plugin: 'p' },
      { kind: 'fake', name: 'other-plugin', plugin: 'q' },
    ]);
    const audit: any[] = [];
    sweep(l, (e) => e.plugin === 'p', 'del', { rtnl: () => { throw new Error('no kernel in this test'); } }, { write: (r: any) => audit.push(r) } as any,
      { containerId: 'ctr', network: 'n', command: 'DEL' });
    assert.equal(done, ['last', 'first']);
    assert.equal(l.entries.map((e) => e.name), ['stuck', 'other-plugin']);
    assert.ok(audit.some((r) => r.outcome.startsWith('error: busy')), 'the failed undo is recorded');
    l.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host addresses: only the attachment\'s own, its gateway, or one in its subnet', () => {
  const t = fakeCall({ grants: { addresses: { host: true, container: true } }, objects: BRIDGE_OBJECTS, config: { bridge: 'br9' } });
  t.ctx.owned.ownResult({ ips: [{ address: '10.9.0.5/24', gateway: '10.9.0.1' }] });
  const a = t.bind('addresses', addresses, { add: ['ns', 'link', 'cidr', 'no-dad'] });
  assert.is(a.add('host', 'br9', '10.9.0.1/24', false).tag, 'ok');
  assert.match(a.add('host', 'br9', '192.168.1.1/24', false).val.message, /192\.168\.1\.1 is not this attachment's/);
  assert.match(a.add('host', 'eth0', '10.9.0.1/24', false).val.message, /host link 'eth0'/);
});

test.run();
