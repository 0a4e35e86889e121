// Our tuning plugin against the reference tuning plugin (Debian
// containernetworking-plugins 1.1.1), side by side: the resulting link state
// (`ip -j -d link`), sysctls, results, the saved originals and their restore
// on DEL. Needs root. Prefix: tu-.
//
// Each implementation gets a netns playing the host (the plugin runs there)
// and a container netns holding eth0 (one end of a veth pair made by the
// test, as the plugin before tuning in a chain would have made it). The
// prevResult names it, at the config's own cniVersion.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import { fakeCall } from '../helpers/gate.js';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, makeHarness, ours, reference, removeHarness, writePolicy,
} from '../helpers/cni.js';
import { cleanupAll, deleteNetns, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';
import { links } from '../../host/capabilities/links.js';
import { sysctl as sysctlCap } from '../../host/capabilities/sysctl.js';

const P = 'tu-';
type Impl = 'ref' | 'ours';
const IMPLS: Impl[] = ['ref', 'ours'];
const ns = (impl: Impl, role: 'host' | 'ctr'): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const CID = 'tu-container';

let h: Harness;
const dataDir = (impl: Impl) => join(h.dir, `tuning-${impl}`);

function prevResult(impl: Impl, version: string): any {
  const mac = ipJson<any[]>(ns(impl, 'ctr'), ['link', 'show', 'dev', 'eth0'])[0].address;
  const ip: any = { address: '10.77.0.2/24', gateway: '10.77.0.1', interface: 0 };
  if (version === '0.4.0') ip.version = '4';
  return { cniVersion: version, interfaces: [{ name: 'eth0', mac, sandbox: netnsPath(ns(impl, 'ctr')) }], ips: [ip], dns: {} };
}

function conf(impl: Impl, extra: Record<string, unknown>, version = '1.0.0', prev: any = prevResult(impl, version)): any {
  const c: any = { cniVersion: version, name: 'tunet', type: 'tuning', dataDir: dataDir(impl), ...extra };
  if (prev !== null) c.prevResult = prev; // null: none
  return c;
}

function run(impl: Impl, command: CniCall['command'], config: any, over: Partial<CniCall> = {}): CniReply {
  const call: CniCall = { command, hostNs: ns(impl, 'host'), netns: ns(impl, 'ctr'), containerId: CID, ifname: 'eth0', config, ...over };
  return impl === 'ref' ? reference('tuning', { path: REFERENCE_BIN, ...call }) : ours(h, 'tuning', { path: h.bin, ...call });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

function fresh(): void {
  for (const impl of IMPLS) {
    makeNetns(ns(impl, 'host'));
    const c = ns(impl, 'ctr');
    makeNetns(c);
    nsExec(c, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    nsExec(c, ['ip', 'link', 'set', 'eth0', 'up']);
    nsExec(c, ['ip', 'link', 'set', 'peer0', 'up']);
    rmSync(dataDir(impl), { recursive: true, force: true });
  }
}

/** The link state tuning touches. */
function linkState(impl: Impl): any {
  const l = ipJson<any[]>(ns(impl, 'ctr'), ['-d', 'link', 'show', 'dev', 'eth0'])[0];
  return {
    mtu: l.mtu, address: l.address, promiscuity: l.promiscuity, allmulti: l.allmulti, txqlen: l.txqlen ?? 0,
    flags: [...l.flags].sort(),
  };
}

const sysctl = (impl: Impl, key: string): string =>
  nsExec(ns(impl, 'ctr'), ['cat', `/proc/sys/${key.replace(/\./g, '/')}`]).stdout.trim();

/** JSON files left in a data dir (the reference's flat, ours per network). */
function savedFiles(impl: Impl): string[] {
  const d = dataDir(impl);
  if (!existsSync(d)) return [];
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(p, e.name));
      else if (e.name.endsWith('.json')) out.push(join(p, e.name));
    }
  };
  walk(d);
  return out;
}

const normResult = (r: any): any => {
  const d = JSON.parse(JSON.stringify(r));
  for (const i of d.interfaces ?? []) if (i.sandbox) i.sandbox = i.sandbox.replace(/\/tu-[ro]-/, '/tu-X-');
  if (d.dns && Object.keys(d.dns).length === 0) delete d.dns;
  return d;
};

const SYS = { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net.ipv4.conf.all.arp_ignore': '2', 'net.ipv6.conf.IFNAME.disable_ipv6': '1' };

test.before(() => {
  cleanupAll(P);
  h = makeHarness('tu-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('the reference tuning is installed', () => {
  assert.ok(existsSync(join(REFERENCE_BIN, 'tuning')), `${REFERENCE_BIN}/tuning is missing: apt-get install containernetworking-plugins`);
});

for (const version of ['0.4.0', '1.0.0']) {
  test(`${version}: mac, mtu, promisc, allmulti and sysctls: same link state, sysctls and result as the reference; CHECK; DEL restores; DEL twice`, () => {
    fresh();
    const before: Record<Impl, any> = { ref: linkState('ref'), ours: linkState('ours') };
    const sysBefore = (impl: Impl) => Object.keys(SYS).map((k) => sysctl(impl, k.replace('IFNAME', 'eth0')));
    const sb: Record<Impl, string[]> = { ref: sysBefore('ref'), ours: sysBefore('ours') };
    const extra = { mac: '02:42:ac:11:00:09', mtu: 1400, promisc: true, allmulti: true, sysctl: SYS };
    const res: Record<Impl, any> = { ref: null, ours: null };
    for (const impl of IMPLS) res[impl] = ok(run(impl, 'ADD', conf(impl, extra, version)), `${impl} ADD`);
    assert.equal(normResult(res.ours), normResult(res.ref), 'results');
    assert.is(res.ours.interfaces[0].mac, '02:42:ac:11:00:09', 'the result carries the new MAC');
    assert.is(res.ours.cniVersion, version);
    assert.equal(linkState('ours'), linkState('ref'), 'link state');
    assert.is(linkState('ours').mtu, 1400);
    assert.ok(linkState('ours').flags.includes('PROMISC') && linkState('ours').flags.includes('ALLMULTI'));
    for (const k of Object.keys(SYS)) {
      const key = k.replace('IFNAME', 'eth0');
      assert.is(sysctl('ours', key), sysctl('ref', key), key);
      assert.is(sysctl('ours', key), (SYS as any)[k], key);
    }
    assert.is(savedFiles('ref').length, 1, 'the reference saved its originals');
    assert.is(savedFiles('ours').length, 1, 'we saved ours');

    // the runtime's CHECK and DEL carry the ADD result as prevResult
    ok(run('ours', 'CHECK', conf('ours', extra, version, res.ours)), 'our CHECK');
    // the reference's CHECK does not put CNI_IFNAME in for IFNAME (ADD does): ours does
    const rc = run('ref', 'CHECK', conf('ref', extra, version, res.ref));
    assert.match(rc.json?.msg ?? '', /\/proc\/sys\/net\/ipv[46]\/conf\/IFNAME\//, `the reference's CHECK: ${rc.stdout}`);
    ok(run('ref', 'CHECK', conf('ref', { ...extra, sysctl: { 'net.ipv4.conf.all.arp_ignore': '2' } }, version, res.ref)), 'reference CHECK without IFNAME keys');
    for (const impl of IMPLS) ok(run(impl, 'DEL', conf(impl, extra, version, res[impl])), `${impl} DEL`);
    assert.equal(linkState('ours'), before.ours, 'our DEL put the link back');
    assert.equal(linkState('ref'), before.ref, 'the reference DEL put the link back');
    // the reference leaves the sysctls as tuned; we put them back too
    assert.equal(sysBefore('ours'), sb.ours, 'our DEL put the sysctls back');
    assert.equal(savedFiles('ref'), []);
    assert.equal(savedFiles('ours'), [], 'no saved file left');
    for (const impl of IMPLS) ok(run(impl, 'DEL', conf(impl, extra, version, res[impl])), `${impl} DEL again`);
  });
}

test('the MAC from CNI_ARGS, runtimeConfig.mac and args.cni.mac, in the reference\'s order', () => {
  const cases: [string, Record<string, unknown>, string | undefined, string][] = [
    ['CNI_ARGS beats the config', { mac: '02:00:00:00:00:01' }, 'IgnoreUnknown=1;MAC=02:00:00:00:00:02', '02:00:00:00:00:02'],
    ['runtimeConfig beats CNI_ARGS', { runtimeConfig: { mac: '02:00:00:00:00:03' } }, 'MAC=02:00:00:00:00:02', '02:00:00:00:00:03'],
    ['args.cni beats runtimeConfig', { runtimeConfig: { mac: '02:00:00:00:00:03' }, args: { cni: { mac: '02:00:00:00:00:04' } } }, undefined, '02:00:00:00:00:04'],
  ];
  for (const [what, extra, args, want] of cases) {
    fresh();
    const res: Record<Impl, any> = { ref: null, ours: null };
    for (const impl of IMPLS) res[impl] = ok(run(impl, 'ADD', conf(impl, extra), args !== undefined ? { args } : {}), `${impl} ADD (${what})`);
    assert.equal(normResult(res.ours), normResult(res.ref), what);
    assert.is(linkState('ours').address, want, what);
    assert.is(linkState('ref').address, want, what);
  }
});

test('txQLen (ours; the reference 1.1.1 ignores it) is set and restored', () => {
  fresh();
  const before = linkState('ours');
  const res = ok(run('ours', 'ADD', conf('ours', { txQLen: 333 })), 'ADD');
  assert.is(linkState('ours').txqlen, 333);
  ok(run('ours', 'CHECK', conf('ours', { txQLen: 333 }, '1.0.0', res)), 'CHECK');
  nsExec(ns('ours', 'ctr'), ['ip', 'link', 'set', 'eth0', 'txqueuelen', '5']);
  const chk = run('ours', 'CHECK', conf('ours', { txQLen: 333 }, '1.0.0', res));
  assert.is(chk.code, 1);
  assert.match(chk.json.msg, /Transmit Queue Length of eth0 is 333, current value is 5/);
  ok(run('ours', 'DEL', conf('ours', { txQLen: 333 }, '1.0.0', res)), 'DEL');
  assert.equal(linkState('ours'), before);
});

test('CHECK notices a change, as the reference does', () => {
  fresh();
  const res: Record<Impl, any> = { ref: null, ours: null };
  for (const impl of IMPLS) res[impl] = ok(run(impl, 'ADD', conf(impl, { mtu: 1300, sysctl: { 'net.ipv4.conf.all.arp_ignore': '1' } })), `${impl} ADD`);
  for (const impl of IMPLS) nsExec(ns(impl, 'ctr'), ['ip', 'link', 'set', 'eth0', 'mtu', '1280']);
  for (const impl of IMPLS) {
    const r = run(impl, 'CHECK', conf(impl, { mtu: 1300, sysctl: { 'net.ipv4.conf.all.arp_ignore': '1' } }, '1.0.0', res[impl]));
    assert.is(r.code, 1, `${impl}`);
    assert.match(r.json.msg, /Tuning configured MTU of eth0 is 1300, current value is 1280/, `${impl}: ${r.stdout}`);
  }
  // promisc is compared always: on where the config says off is a failure
  for (const impl of IMPLS) nsExec(ns(impl, 'ctr'), ['ip', 'link', 'set', 'eth0', 'mtu', '1300', 'promisc', 'on']);
  for (const impl of IMPLS) {
    const r = run(impl, 'CHECK', conf(impl, { mtu: 1300 }, '1.0.0', res[impl]));
    assert.match(r.json?.msg ?? '', /configured promisc is false, current value is 1/, `${impl}: ${r.stdout}`);
  }
});

test('bad input: no prevResult, a sysctl outside net.*, a bad MAC: a clear error and nothing changed or saved', () => {
  fresh();
  const before = { ref: linkState('ref'), ours: linkState('ours') };
  for (const impl of IMPLS) {
    const r = run(impl, 'ADD', conf(impl, { mtu: 1400 }, '1.0.0', null));
    assert.is(r.code, 1);
    assert.is(r.json.msg, 'Required prevResult missing', `${impl}`);
  }
  const k = run('ours', 'ADD', conf('ours', { mtu: 1400, sysctl: { 'kernel.hostname': 'x' } }));
  assert.is(k.json.code, 7);
  assert.match(k.json.msg, /invalid net sysctl key: "kernel.hostname"/);
  assert.is(run('ref', 'ADD', conf('ref', { mtu: 1400, sysctl: { 'kernel.hostname': 'x' } })).code, 1, 'the reference refuses it too');
  const dots = run('ours', 'ADD', conf('ours', { sysctl: { 'net.ipv4/../../../kernel.hostname': 'x' } }));
  assert.is(dots.json.code, 7, 'no way out of net/ with ..');
  const m = run('ours', 'ADD', conf('ours', { mac: 'zz:00:00:00:00:01' }));
  assert.is(m.json.code, 7);
  assert.match(m.json.msg, /invalid MAC address "zz:00:00:00:00:01" in mac/);
  const a = run('ours', 'ADD', conf('ours', { mtu: 1400 }), { args: 'FOO=1' });
  assert.is(a.json.code, 4, 'unknown CNI_ARGS without IgnoreUnknown');
  const t = run('ours', 'ADD', conf('ours', { mtu: 'big' }));
  assert.is(t.json.code, 7);
  assert.match(t.json.msg, /"mtu" must be a whole number/);
  for (const r of [k, dots, m, a, t]) assert.not.match(r.stdout, /at .*\.js:\d+/, 'no stack trace');
  // the runtime's DEL of the refused ADD succeeds: nothing was made
  ok(run('ours', 'DEL', conf('ours', { mtu: 1400, sysctl: { 'kernel.hostname': 'x' } })), 'DEL after a refused sysctl');
  ok(run('ours', 'DEL', conf('ours', { mac: 'zz:00:00:00:00:01' })), 'DEL after a refused MAC');
  assert.equal(linkState('ours'), before.ours, 'nothing changed');
  assert.equal(savedFiles('ours'), [], 'nothing saved');
});

test('a kernel refusal half-way (MTU below the minimum) puts back what ADD had changed', () => {
  fresh();
  const before = linkState('ours');
  const arp = sysctl('ours', 'net.ipv4.conf.eth0.arp_filter');
  const r = run('ours', 'ADD', conf('ours', { mac: '02:00:00:00:00:07', promisc: true, mtu: 50, sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1' } }));
  assert.is(r.code, 1);
  assert.match(r.json.msg, /failed to set MTU 50 on "eth0"/, r.stdout);
  assert.equal(linkState('ours'), before, 'MAC and promisc put back');
  assert.is(sysctl('ours', 'net.ipv4.conf.eth0.arp_filter'), arp, 'sysctl put back');
  assert.equal(savedFiles('ours'), [], 'no saved file left');
});

test('policy: only the sysctls the allowlist (the reference\'s file format) and the grant allow; a refusal changes nothing', () => {
  fresh();
  const allow = join(h.dir, 'allowlist.conf');
  writeFileSync(allow, '^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  ^net\\.ipv4\\.ping_group_range$\n');
  const grants = {
    links: { container: true }, store: { dirs: ['*'] }, log: true,
    sysctl: { container: true, containerAllowlist: allow },
  };
  writePolicy(h, { plugins: { tuning: { grants } } });
  try {
    const before = linkState('ours');
    const arp = sysctl('ours', 'net.ipv4.conf.eth0.arp_filter');
    const denied = run('ours', 'ADD', conf('ours', { mtu: 1400, sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net.core.somaxconn': '10' } }));
    assert.is(denied.code, 1);
    assert.match(denied.json.msg, /net\.core\.somaxconn is not allowed by .*allowlist\.conf/, denied.stdout);
    assert.equal(linkState('ours'), before, 'nothing changed');
    assert.is(sysctl('ours', 'net.ipv4.conf.eth0.arp_filter'), arp, 'not even the allowed sysctl');
    assert.equal(savedFiles('ours'), []);
    const res = ok(run('ours', 'ADD', conf('ours', { sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net.ipv4.ping_group_range': '0 0' } })), 'allowed ADD');
    assert.is(sysctl('ours', 'net.ipv4.conf.eth0.arp_filter'), '1');
    ok(run('ours', 'DEL', conf('ours', {}, '1.0.0', res)), 'DEL');
    // the grant's own key list, in the host's glob form
    writePolicy(h, { plugins: { tuning: { grants: { ...grants, sysctl: { container: true, containerKeys: ['net/ipv4/conf/*/arp_filter'] } } } } });
    ok(run('ours', 'ADD', conf('ours', { sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1' } })), 'a granted key');
    ok(run('ours', 'DEL', conf('ours', {})), 'DEL');
    const r2 = run('ours', 'ADD', conf('ours', { sysctl: { 'net.ipv4.conf.all.arp_ignore': '1' } }));
    assert.match(r2.json.msg, /"containerKeys"/);
  } finally {
    writePolicy(h, {});
  }
});

test('GC removes the saved originals of attachments the runtime no longer lists', () => {
  fresh();
  ok(run('ours', 'ADD', conf('ours', { mtu: 1400 })), 'ADD eth0');
  nsExec(ns('ours', 'ctr'), ['ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'peer1']);
  const prev1 = { cniVersion: '1.1.0', interfaces: [{ name: 'eth1', sandbox: netnsPath(ns('ours', 'ctr')) }], ips: [] };
  ok(run('ours', 'ADD', conf('ours', { mtu: 1400 }, '1.1.0', prev1), { ifname: 'eth1' }), 'ADD eth1');
  assert.is(savedFiles('ours').length, 2);
  const gc = { cniVersion: '1.1.0', name: 'tunet', type: 'tuning', dataDir: dataDir('ours'), mtu: 1400,
    'cni.dev/valid-attachments': [{ containerID: CID, ifname: 'eth0' }] };
  ok(run('ours', 'GC', gc, { netns: '', ifname: '' }), 'GC');
  assert.equal(savedFiles('ours').map((f) => f.split('/').pop()), [`${CID}_eth0.json`]);
});

test('the host: the new link functions act only on CNI_IFNAME in the container; container sysctls follow the grant', () => {
  const grants = { links: { container: true }, sysctl: { container: true, containerKeys: ['net/ipv4/conf/*/arp_filter'] } };
  const t = fakeCall({ type: 'tuning', grants });
  const l = t.bind('links', links, { getSettings: ['name'], setAllmulti: ['name', 'on'], setTxqlen: ['name', 'qlen'] });
  const args: Record<string, unknown[]> = { getSettings: [], setAllmulti: [true], setTxqlen: [100] };
  for (const fn of ['getSettings', 'setAllmulti', 'setTxqlen']) {
    assert.is(l[fn]('eth0', ...args[fn]).tag, 'ok', fn);
    assert.match(l[fn]('eth1', ...args[fn]).val.message, /container link 'eth1' is not this attachment's/, fn);
    const none = fakeCall({ type: 'tuning', grants: {} });
    assert.match(none.bind('links', links, { [fn]: ['name', 'x'] })[fn]('eth0', ...args[fn]).val.message, /has no "links" grant/, fn);
  }
  const s = t.bind('sysctl', sysctlCap, { set: ['ns', 'key', 'value'] });
  assert.is(s.set('container', 'net/ipv4/conf/eth0/arp_filter', '1').tag, 'ok');
  assert.match(s.set('container', 'net/core/somaxconn', '1').val.message, /"containerKeys"/);
  assert.match(s.set('container', 'kernel/hostname', 'x').val.message, /outside net/);
  assert.match(s.set('host', 'net/ipv4/conf/eth0/arp_filter', '1').val.message, /has no "sysctl": \{"host": true\} grant/);
});

test('DEL when the container is gone succeeds and removes the saved originals', () => {
  fresh();
  const res: Record<Impl, any> = { ref: null, ours: null };
  for (const impl of IMPLS) res[impl] = ok(run(impl, 'ADD', conf(impl, { mtu: 1400 })), `${impl} ADD`);
  for (const impl of IMPLS) deleteNetns(ns(impl, 'ctr'));
  for (const impl of IMPLS) ok(run(impl, 'DEL', conf(impl, { mtu: 1400 }, '1.0.0', res[impl])), `${impl} DEL`);
  assert.equal(savedFiles('ours'), [], 'ours removed its file (the reference leaves it)');
});

test.run();
