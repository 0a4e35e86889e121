// Our macvlan against the reference macvlan (Debian containernetworking-plugins
// 1.1.1), side by side. Needs root. Prefix: mvl-.
//
// This kernel has no dummy link type, so each implementation's world is: a
// netns that plays the host (the plugin runs inside it) whose master is a veth
// end (mvup0), its peer (mvlan0) in a "lan" netns with 10.78.0.1/24, and two
// container netns. Both run the same configs (IPAM state in separate dirs);
// results, kernel state seen with iproute2, traffic, errors and what is left
// afterwards are compared.
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, cniWasmIn, hasReference, libcniSequence, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, deleteNetns, ipJson, makeNetns, nsExec } from '../helpers/netns.js';
import { Ledger } from '../../host/gate/ledger.js';

const P = 'mvl-';
type Impl = 'ref' | 'ours';
const IMPLS: Impl[] = ['ref', 'ours'];
type Role = 'host' | 'lan' | 'c1' | 'c2';
type Ctr = 'c1' | 'c2';
const ns = (impl: Impl, role: Role): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const CID: Record<Ctr, string> = { c1: 'mvl-container-1', c2: 'mvl-container-2' };
const MASTER = 'mvup0';
const LAN_IP = '10.78.0.1';

let h: Harness;
const dataDir = (impl: Impl) => join(h.dir, `ipam-${impl}`);

function conf(extra: Record<string, unknown> = {}, version: string | null = '1.0.0'): any {
  return {
    ...(version ? { cniVersion: version } : {}), name: 'mvlnet', type: 'macvlan', master: MASTER,
    ipam: { type: 'host-local', subnet: '10.78.0.0/24', rangeStart: '10.78.0.10', routes: [{ dst: '0.0.0.0/0' }] },
    ...extra,
  };
}

/** The config as one implementation gets it: its own IPAM state dir. */
function forImpl(c: any, impl: Impl): any {
  const d = JSON.parse(JSON.stringify(c));
  if (d.ipam?.type === 'host-local') d.ipam.dataDir = dataDir(impl);
  return d;
}

function run(impl: Impl, command: CniCall['command'], c: any, ctr: Ctr = 'c1', over: Partial<CniCall> = {}): CniReply {
  const call: CniCall = { command, hostNs: ns(impl, 'host'), netns: ns(impl, ctr), containerId: CID[ctr], ifname: 'eth0', config: forImpl(c, impl), ...over };
  return impl === 'ref' ? reference('macvlan', { path: REFERENCE_BIN, ...call }) : ours(h, 'macvlan', call);
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** One implementation's world: host with the master, lan, two containers; fresh state. */
function world(impl: Impl): void {
  for (const role of ['host', 'lan', 'c1', 'c2'] as Role[]) makeNetns(ns(impl, role));
  const host = ns(impl, 'host'), lan = ns(impl, 'lan');
  nsExec(host, ['ip', 'link', 'add', MASTER, 'type', 'veth', 'peer', 'name', 'mvlan0', 'netns', lan]);
  nsExec(host, ['ip', 'link', 'set', MASTER, 'up']);
  nsExec(lan, ['ip', 'addr', 'add', `${LAN_IP}/24`, 'dev', 'mvlan0']);
  nsExec(lan, ['ip', 'link', 'set', 'mvlan0', 'up']);
  rmSync(dataDir(impl), { recursive: true, force: true });
}

function fresh(impls: Impl[] = hasReference() ? IMPLS : ['ours']): void {
  for (const impl of impls) world(impl);
  rmSync(h.stateDir, { recursive: true, force: true });
}

// ---- what is compared ----

/** Random MACs and the namespace names differ by nature; the reference prints an empty "dns" for 1.x. */
function norm(doc: any): any {
  const d = JSON.parse(JSON.stringify(doc));
  if (d.dns && Object.keys(d.dns).length === 0) delete d.dns;
  for (const i of d.interfaces ?? []) {
    if (i.sandbox) i.sandbox = i.sandbox.replace(/\/mvl-[ro]-/, '/mvl-X-');
    if (i.mac) { assert.match(i.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/); i.mac = 'MAC'; }
  }
  return d;
}

const sortJson = (xs: any[]): any[] => xs.map((x) => JSON.stringify(x)).sort().map((s) => JSON.parse(s));

function sysctl(netns: string, key: string): string {
  return nsExec(netns, ['cat', `/proc/sys/${key}`], { check: false }).stdout.trim();
}

/** The container interface as the kernel has it (mac separately: it is random). */
function ctrLink(impl: Impl, ctr: Ctr = 'c1'): any {
  const cn = ns(impl, ctr);
  const l = ipJson<any[]>(cn, ['-d', 'link', 'show', 'dev', 'eth0'])[0];
  if (!l) return null;
  const addrs = (ipJson<any[]>(cn, ['addr', 'show', 'dev', 'eth0'])[0]?.addr_info ?? [])
    .filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);
  const routes = [...ipJson<any[]>(cn, ['-4', 'route', 'show']), ...ipJson<any[]>(cn, ['-6', 'route', 'show'])]
    .filter((r) => !String(r.dst).startsWith('fe80'))
    .map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, scope: r.scope, protocol: r.protocol }));
  return {
    kind: l.linkinfo?.info_kind, mode: l.linkinfo?.info_data?.mode, bcqueuelen: l.linkinfo?.info_data?.bcqueuelen,
    mtu: l.mtu, txqlen: l.txqlen ?? 0, up: l.flags.includes('UP'), addrs: addrs.sort(), routes: sortJson(routes),
    arp_notify: sysctl(cn, 'net/ipv4/conf/eth0/arp_notify'), ndisc_notify: sysctl(cn, 'net/ipv6/conf/eth0/ndisc_notify'),
  };
}

/** The reference 1.1.1's link with its later fix: ndisc_notify is set beside arp_notify (1.1.1 sets arp_notify only). */
function withLaterFixes(link: any): any {
  return link && link.arp_notify === '1' ? { ...link, ndisc_notify: '1' } : link;
}

const ctrMac = (impl: Impl, ctr: Ctr = 'c1'): string => ipJson<any[]>(ns(impl, ctr), ['link', 'show', 'dev', 'eth0'])[0]?.address;

/** The master: a macvlan plugin may never change it. */
function masterState(impl: Impl): any {
  const host = ns(impl, 'host');
  const l = ipJson<any[]>(host, ['-d', 'link', 'show', 'dev', MASTER])[0];
  return { mtu: l.mtu, flags: l.flags.filter((f: string) => f !== 'LOWER_UP' && f !== 'PROMISC').sort(), address: l.address, addrs: ipJson<any[]>(host, ['addr', 'show', 'dev', MASTER])[0].addr_info.length };
}

function leases(impl: Impl): string[] {
  const d = join(dataDir(impl), 'mvlnet');
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => /^\d/.test(f)).sort();
}

/** Links in a container other than lo. */
const ctrLinks = (impl: Impl, ctr: Ctr = 'c1'): string[] => ipJson<any[]>(ns(impl, ctr), ['link', 'show']).map((l) => l.ifname).filter((n) => n !== 'lo');

function ping(from: string, to: string, tries = 3): boolean {
  for (let i = 0; i < tries; i++) {
    if (nsExec(from, ['ping', '-c', '1', '-W', '1', to], { check: false }).status === 0) return true;
  }
  return false;
}

/** What our ledger still holds for this network. */
const ourLedger = (): unknown[] => Ledger.all(h.stateDir).filter((e) => e.network === 'mvlnet');

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

// ---------------------------------------------------------------- modes

for (const mode of ['bridge', 'private', 'vepa', 'passthru']) {
  test(`mode ${mode}: result, link and traffic as the reference's; DEL leaves the master as it was`, () => {
    fresh();
    const impls: Impl[] = hasReference() ? IMPLS : ['ours'];
    const out: Record<string, any> = {};
    for (const impl of impls) {
      const before = masterState(impl);
      const c = conf({ mode });
      const r1 = ok(run(impl, 'ADD', c, 'c1'), `${impl} ADD c1`);
      assert.is(r1.interfaces[0].mac, ctrMac(impl), `${impl}: the result's MAC is the link's`);
      const r2 = run(impl, 'ADD', c, 'c2');
      const reach = {
        lan: ping(ns(impl, 'c1'), LAN_IP, mode === 'private' || mode === 'vepa' ? 1 : 3),
        c2: r2.code === 0 ? ping(ns(impl, 'c1'), r2.json.ips[0].address.split('/')[0], mode === 'bridge' ? 3 : 1) : null,
      };
      out[impl] = { r1: norm(r1), r2: r2.code === 0 ? norm(r2.json) : { code: r2.code, msg: r2.json?.msg }, link: impl === 'ref' ? withLaterFixes(ctrLink(impl)) : ctrLink(impl), reach, c2Links: ctrLinks(impl, 'c2') };
      for (const ctr of ['c1', 'c2'] as Ctr[]) ok(run(impl, 'DEL', { ...c, prevResult: ctr === 'c1' ? r1 : r2.json }, ctr), `${impl} DEL ${ctr}`);
      assert.equal(ctrLinks(impl, 'c1'), [], `${impl}: DEL removed the macvlan`);
      assert.equal(leases(impl), [], `${impl}: DEL released the leases`);
      assert.equal(masterState(impl), before, `${impl}: the master is as it was`);
    }
    const o = out.ours;
    assert.equal([o.link.kind, o.link.mode, o.link.mtu, o.link.txqlen, o.link.up], ['macvlan', mode, 1500, 0, true]);
    assert.equal(o.link.addrs, ['10.78.0.10/24']);
    assert.equal([o.link.arp_notify, o.link.ndisc_notify], ['1', '1']);
    // bridge mode reaches its neighbour and the lan; passthru takes the master for itself
    if (mode === 'bridge') assert.equal(o.reach, { lan: true, c2: true });
    assert.equal(ourLedger(), [], 'our ledger is empty after DEL');
    if (!out.ref) return;
    assert.equal(o.r1, out.ref.r1, 'ADD result');
    assert.equal(o.link, out.ref.link, 'the link in the container');
    assert.equal(o.reach, out.ref.reach, 'what c1 reaches');
    assert.equal(o.c2Links, out.ref.c2Links, 'the second container');
    if (o.r2.code !== undefined) assert.equal(o.r2.msg, out.ref.r2.msg, 'the second ADD\'s error');
    else assert.equal(o.r2, out.ref.r2, 'the second ADD');
  });
}

test('mtu, mac (config, CNI_ARGS MAC, runtimeConfig.mac) and L2 only (no ipam) as the reference', () => {
  const cases: { name: string; c: any; args?: string; mac: string | null }[] = [
    { name: 'mtu and mac', c: conf({ mtu: 1400, mac: '02:00:00:78:00:01' }), mac: '02:00:00:78:00:01' },
    { name: 'CNI_ARGS MAC over mac', c: conf({ mac: '02:00:00:78:00:01' }), args: 'IgnoreUnknown=1;MAC=02:00:00:78:00:02', mac: '02:00:00:78:00:02' },
    { name: 'runtimeConfig.mac over both', c: conf({ mac: '02:00:00:78:00:01', runtimeConfig: { mac: '02:00:00:78:00:03' } }), args: 'IgnoreUnknown=1;MAC=02:00:00:78:00:02', mac: '02:00:00:78:00:03' },
    { name: 'mtu 0 inherits', c: conf({ mtu: 0 }), mac: null },
    { name: 'L2 only', c: { cniVersion: '1.0.0', name: 'mvlnet', type: 'macvlan', master: MASTER, dns: { nameservers: ['10.78.0.53'] } }, mac: null },
  ];
  for (const k of cases) {
    fresh();
    const got: Record<string, any> = {};
    for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
      const r = ok(run(impl, 'ADD', k.c, 'c1', { args: k.args }), `${impl} ${k.name}`);
      if (k.mac) assert.equal([r.interfaces[0].mac, ctrMac(impl)], [k.mac, k.mac], `${impl} ${k.name}: MAC`);
      got[impl] = { r: norm(r), link: impl === 'ref' ? withLaterFixes(ctrLink(impl)) : ctrLink(impl) };
      ok(run(impl, 'DEL', { ...k.c, prevResult: r }, 'c1', { args: k.args }), `${impl} DEL ${k.name}`);
      assert.equal(ctrLinks(impl), [], `${impl} ${k.name}: nothing left`);
    }
    if (k.name === 'mtu and mac') assert.is(got.ours.link.mtu, 1400);
    if (k.name === 'L2 only') assert.equal([got.ours.link.up, got.ours.link.addrs, got.ours.r.dns], [true, [], { nameservers: ['10.78.0.53'] }]);
    if (got.ref) assert.equal(got.ours, got.ref, k.name);
  }
});

// ---------------------------------------------------------------- refusals

test('bad input: the reference\'s message, a clear code, nothing left behind (no link, no lease)', () => {
  const cases: { name: string; c: any; args?: string; code: number; msg: RegExp; refMsg?: string }[] = [
    { name: 'mtu above the master\'s', c: conf({ mtu: 9000 }), code: 7, msg: /^invalid MTU 9000, must be \[0, master MTU\(1500\)\]$/, refMsg: 'same' },
    { name: 'negative mtu', c: conf({ mtu: -1 }), code: 7, msg: /^invalid MTU -1, must be \[0, master MTU\(1500\)\]$/, refMsg: 'same' },
    { name: 'unknown mode', c: conf({ mode: 'bridged' }), code: 7, msg: /^unknown macvlan mode: "bridged"$/, refMsg: 'same' },
    { name: 'mtu of the wrong type', c: conf({ mtu: '1400' }), code: 7, msg: /^failed to load netconf: json: cannot unmarshal string into Go struct field NetConf\.mtu of type int$/, refMsg: 'same' },
    { name: 'no such master', c: conf({ master: 'nope0' }), code: 999, msg: /^failed to lookup master "nope0": Link not found$/, refMsg: 'Link not found' },
    { name: 'bad mac', c: conf({ mac: 'zz' }), code: 7, msg: /^invalid MAC address "zz" in "mac"$/ },
    { name: 'bad CNI_ARGS MAC', c: conf(), args: 'MAC=zz', code: 4, msg: /^invalid MAC address "zz" in CNI_ARGS MAC$/ },
    { name: 'unknown CNI_ARGS', c: conf(), args: 'IP=10.78.0.50', code: 4, msg: /^ARGS: unknown args \["IP=10\.78\.0\.50"\]$/, refMsg: 'same' },
  ];
  fresh();
  for (const k of cases) {
    const o = run('ours', 'ADD', k.c, 'c1', { args: k.args });
    assert.is(o.code, 1, k.name);
    assert.is(o.json?.code, k.code, `${k.name}: ${o.stdout}`);
    assert.match(o.json.msg, k.msg, k.name);
    assert.not.match(o.stdout + o.stderr, /\n\s+at /, `${k.name}: no stack trace`);
    assert.equal(ctrLinks('ours'), [], `${k.name}: no link left`);
    assert.equal(leases('ours'), [], `${k.name}: no lease left`);
    if (!hasReference() || !k.refMsg) continue;
    const r = run('ref', 'ADD', k.c, 'c1', { args: k.args });
    assert.is(r.code, 1, `reference ${k.name}`);
    assert.is(r.json.msg, k.refMsg === 'same' ? o.json.msg : k.refMsg, `reference's message for ${k.name}`);
  }
  assert.equal(ourLedger(), [], 'nothing in our ledger');
});

test('ADD twice: the reference\'s error, and the first attachment\'s link and lease are untouched', () => {
  fresh();
  const c = conf();
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const r = ok(run(impl, 'ADD', c), `${impl} ADD`);
    const again = run(impl, 'ADD', c);
    assert.is(again.code, 1, `${impl} second ADD`);
    assert.is(again.json.msg, 'failed to rename macvlan to "eth0": file exists', impl);
    assert.is(ctrMac(impl), r.interfaces[0].mac, `${impl}: the first link is still there`);
    assert.equal(ctrLinks(impl), ['eth0'], `${impl}: and nothing else`);
  }
  assert.equal(Ledger.peek(h.stateDir, 'mvlnet', CID.c1, 'eth0').filter((e) => e.kind === 'link').length, 1, 'one link in our ledger');
});

test('no "master": the default route\'s link, as the reference; without a default route the reference\'s error', () => {
  fresh();
  const c = conf();
  delete c.master;
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const none = run(impl, 'ADD', c);
    assert.is(none.code, 1, `${impl} without a default route`);
    assert.is(none.json.msg, 'no default route interface found');
    nsExec(ns(impl, 'host'), ['ip', 'addr', 'add', '10.78.0.2/24', 'dev', MASTER]);
    nsExec(ns(impl, 'host'), ['ip', 'route', 'add', 'default', 'via', LAN_IP]);
    const r = ok(run(impl, 'ADD', c), `${impl} ADD with the default route`);
    // the macvlan's lower device is the default route's (ifindex of mvup0, in the host namespace)
    const l = ipJson<any[]>(ns(impl, 'c1'), ['-d', 'link', 'show', 'dev', 'eth0'])[0];
    assert.is(l.link_index, ipJson<any[]>(ns(impl, 'host'), ['link', 'show', 'dev', MASTER])[0].ifindex, `${impl}: on the default route's link`);
    assert.ok(ping(ns(impl, 'c1'), LAN_IP), `${impl}: reaches the lan`);
    ok(run(impl, 'DEL', { ...c, prevResult: r }), `${impl} DEL`);
  }
  // the audit says which master the host let it use
  const made = readAudit(h).filter((a) => a.call === 'links.create-macvlan' && a.outcome === 'ok');
  assert.is(made.at(-1)?.args.spec.master, MASTER);
});

test('failed IPAM leaves no link behind (the reference 1.1.1 leaks it)', () => {
  fresh();
  // room for one address only
  const c = conf({ ipam: { type: 'host-local', subnet: '10.78.0.0/24', rangeStart: '10.78.0.10', rangeEnd: '10.78.0.10' } });
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    ok(run(impl, 'ADD', c, 'c1'), `${impl} first ADD`);
    const r = run(impl, 'ADD', c, 'c2');
    assert.is(r.code, 1, `${impl}: the second ADD fails in IPAM`);
    assert.match(r.json.msg, /no IP addresses available/);
    if (impl === 'ours') assert.equal(ctrLinks('ours', 'c2'), [], 'ours: no link left in c2');
    else assert.equal(ctrLinks('ref', 'c2'), ['eth0'], 'the reference leaves its macvlan in c2');
    assert.equal(leases(impl), ['10.78.0.10'], `${impl}: only the first lease`);
  }
  // our ledger holds nothing for c2 (the link and the attempted lease were undone), c1's link and lease
  assert.equal(Ledger.peek(h.stateDir, 'mvlnet', CID.c2, 'eth0'), []);
  assert.equal(Ledger.peek(h.stateDir, 'mvlnet', CID.c1, 'eth0').map((e) => [e.kind, e.ns ?? 'host', e.name ?? e.type]), [['link', 'container', 'eth0'], ['delegation', 'host', 'host-local']]);
});

// ---------------------------------------------------------------- the seeds

test('seed 004 as written (master renamed): IP= alone is refused as the reference does; with IgnoreUnknown the address is 172.17.20.20', () => {
  fresh();
  const seed = { name: 'mynet', type: 'macvlan', master: MASTER, ipam: { type: 'host-local', subnet: '172.17.0.0/16', routes: [{ dst: '0.0.0.0/0' }] } };
  const got: Record<string, any> = {};
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const strict = run(impl, 'ADD', seed, 'c1', { args: 'IP=172.17.20.20' });
    assert.is(strict.code, 1, `${impl}: CNI_ARGS IP= without IgnoreUnknown`);
    assert.is(strict.json.msg, 'ARGS: unknown args ["IP=172.17.20.20"]');
    assert.equal(ctrLinks(impl), [], `${impl}: nothing left after the refusal`);
    const r = ok(run(impl, 'ADD', seed, 'c1', { args: 'IgnoreUnknown=1;IP=172.17.20.20' }), `${impl} ADD`);
    const l = impl === 'ref' ? withLaterFixes(ctrLink(impl)) : ctrLink(impl);
    // what the seed's ifconfig shows: UP, mtu 1500, inet 172.17.20.20/16, txqueuelen 0
    assert.equal([l.up, l.mtu, l.addrs, l.txqlen], [true, 1500, ['172.17.20.20/16'], 0], impl);
    got[impl] = { r: norm(r), l };
    // exec-plugins.sh del: the same file, no prevResult
    ok(run(impl, 'DEL', seed, 'c1', { args: 'IgnoreUnknown=1;IP=172.17.20.20' }), `${impl} DEL`);
    assert.equal(ctrLinks(impl), []);
  }
  // no cniVersion: a 0.1.0 result
  assert.equal(got.ours.r, { cniVersion: '0.1.0', ip4: { ip: '172.17.20.20/16', gateway: '172.17.0.1', routes: [{ dst: '0.0.0.0/0' }] } });
  if (got.ref) assert.equal(got.ours, got.ref);
});

test('seed 004 through cni-wasm add/del (in place of priv-net-run.sh and exec-plugins.sh) with the conf file as written', () => {
  fresh(['ours']);
  const d = join(h.dir, 'conf-004');
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  const seed = { name: 'mynet', type: 'macvlan', master: MASTER, ipam: { type: 'host-local', subnet: '172.17.0.0/16', dataDir: dataDir('ours'), routes: [{ dst: '0.0.0.0/0' }] } };
  writeFileSync(join(d, '10-mynet.conf'), JSON.stringify(seed, null, 4));
  const env = { NETCONFPATH: d, CNI_ARGS: 'IgnoreUnknown=1;IP=172.17.20.20' };
  const cache = ['--cache-dir', join(h.dir, 'cache-004')];
  const add = cniWasmIn(h, ns('ours', 'host'), ['add', 'mynet', `/run/netns/${ns('ours', 'c1')}`, ...cache, '--json'], env);
  assert.is(add.status, 0, add.stdout + add.stderr);
  assert.is(JSON.parse(add.stdout).ip4.ip, '172.17.20.20/16');
  assert.equal(ctrLink('ours').addrs, ['172.17.20.20/16']);
  const del = cniWasmIn(h, ns('ours', 'host'), ['del', 'mynet', `/run/netns/${ns('ours', 'c1')}`, ...cache], env);
  assert.is(del.status, 0, del.stdout + del.stderr);
  assert.equal(ctrLinks('ours'), [], 'the macvlan is gone');
  assert.equal(readdirSync(join(dataDir('ours'), 'mynet')).filter((f) => /^\d/.test(f)), [], 'the lease is released');
});

for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  test(`${version}: libcni's sequence (VERSION, ADD, CHECK, DEL with the cached result, DEL again) as the reference`, () => {
    fresh();
    const c = conf({}, version);
    const trace: Record<string, any> = {};
    const impls: Impl[] = hasReference() && version !== '1.1.0' ? IMPLS : ['ours'];
    for (const impl of impls) {
      const seq = libcniSequence((command, config) => run(impl, command, config), c);
      assert.equal(seq.errors, [], `${impl} at ${version}`);
      assert.ok(seq.version.json?.supportedVersions?.includes(version), `${impl} VERSION lists ${version}`);
      assert.is(seq.add.json?.cniVersion, version, `${impl}: result at the config's version`);
      trace[impl] = { codes: seq.codes, add: norm(seq.add.json), links: ctrLinks(impl), leases: leases(impl) };
    }
    assert.equal(trace.ours.codes.every((x: number) => x === 0), true, JSON.stringify(trace.ours.codes));
    assert.equal([trace.ours.links, trace.ours.leases], [[], []]);
    if (trace.ref) assert.equal(trace.ours, trace.ref);
  });
}

test('CHECK finds what changed, with the reference\'s words: mode, MAC, address, route, sandbox', () => {
  fresh();
  const c = conf();
  const prev: Record<string, any> = {};
  const impls: Impl[] = hasReference() ? IMPLS : ['ours'];
  for (const impl of impls) prev[impl] = ok(run(impl, 'ADD', c), `${impl} ADD`);
  const msgs = (impl: Impl) => {
    const p = prev[impl];
    const check = (cfg: any) => run(impl, 'CHECK', cfg).json?.msg ?? 'ok';
    return {
      fine: check({ ...c, prevResult: p }),
      mode: check({ ...c, mode: 'private', prevResult: p }),
      mac: check({ ...c, prevResult: { ...p, interfaces: [{ ...p.interfaces[0], mac: '02:00:00:00:00:99' }] } }),
      addr: check({ ...c, prevResult: { ...p, ips: [{ ...p.ips[0], address: '10.78.0.99/24' }] } }),
      route: check({ ...c, prevResult: { ...p, routes: [{ dst: '10.99.0.0/16', gw: '10.78.0.1' }] } }),
      sandbox: check({ ...c, prevResult: { ...p, interfaces: [{ ...p.interfaces[0], sandbox: '/run/netns/elsewhere' }] } }),
      none: check(c),
    };
  };
  const o = msgs('ours');
  assert.equal(o, {
    fine: 'ok',
    mode: 'Container macvlan mode bridge does not match expected value: private',
    mac: `Interface eth0 Mac 02:00:00:00:00:99 doesn't match container Mac: ${prev.ours.interfaces[0].mac}`,
    addr: 'Failed to match addr 10.78.0.99/24 on interface eth0',
    route: 'Expected Route 10.99.0.0/16 via 10.78.0.1 not found in routing table',
    sandbox: `Sandbox in prevResult  doesn't match configured netns: /run/netns/${ns('ours', 'c1')}`,
    none: 'Required prevResult missing',
  });
  if (!prev.ref) return;
  const r = msgs('ref');
  assert.equal([r.fine, r.mode, r.addr, r.sandbox.replace(/mvl-r-/, 'mvl-o-'), r.none], [o.fine, o.mode, o.addr, o.sandbox, o.none]);
  assert.is(r.mac, o.mac.replace(prev.ours.interfaces[0].mac, prev.ref.interfaces[0].mac));
  assert.match(r.route, /^Expected Route \{Dst:\{IP:10\.99\.0\.0 Mask:ffff0000\} GW:10\.78\.0\.1\} not found in routing table$/, `the reference prints the Go struct: ${r.route}`);
});

// ---------------------------------------------------------------- DEL when things are gone

test('DEL after the master is gone succeeds (the reference 1.1.1 fails: the pod is stuck); DEL after the netns is gone succeeds', () => {
  fresh();
  const c = conf();
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const r = ok(run(impl, 'ADD', c, 'c1'), `${impl} ADD c1`);
    nsExec(ns(impl, 'host'), ['ip', 'link', 'del', MASTER]); // takes the macvlan with it
    const d = run(impl, 'DEL', { ...c, prevResult: r }, 'c1');
    if (impl === 'ours') {
      assert.is(d.code, 0, `ours DEL without the master: ${d.stdout}`);
      assert.equal(leases('ours'), [], 'ours released the lease');
    } else {
      assert.is(d.code, 1, 'the reference 1.1.1 cannot DEL without its master');
      assert.is(d.json.msg, 'Link not found');
    }
  }
  fresh();
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const r = ok(run(impl, 'ADD', c, 'c2'), `${impl} ADD c2`);
    deleteNetns(ns(impl, 'c2'));
    const d = run(impl, 'DEL', { ...c, prevResult: r }, 'c2');
    assert.is(d.code, 0, `${impl} DEL without the netns: ${d.stdout}`);
    assert.equal(leases(impl), [], `${impl} released the lease`);
    // and again, without CNI_NETNS at all
    assert.is(run(impl, 'DEL', { ...c, prevResult: r }, 'c2', { netns: '' }).code, 0, `${impl} DEL with no CNI_NETNS`);
  }
  assert.equal(ourLedger(), [], 'nothing left in our ledger');
});

// ---------------------------------------------------------------- beyond the reference 1.1.1

test('passthru: a MAC change on the container\'s interface would change the master\'s, so the host refuses it (the reference\'s tuning changes the host link)', () => {
  fresh();
  const c = conf({ mode: 'passthru' });
  const tuning = (prev: any) => ({ cniVersion: '1.0.0', name: 'mvlnet', type: 'tuning', mac: '02:00:00:78:00:09', prevResult: prev });
  for (const impl of hasReference() ? IMPLS : ['ours'] as Impl[]) {
    const before = masterState(impl).address;
    const r = ok(run(impl, 'ADD', c), `${impl} ADD`);
    const call: CniCall = { command: 'ADD', hostNs: ns(impl, 'host'), netns: ns(impl, 'c1'), containerId: CID.c1, ifname: 'eth0', config: tuning(r) };
    const t = impl === 'ref' ? reference('tuning', { path: REFERENCE_BIN, ...call }) : ours(h, 'tuning', call);
    if (impl === 'ours') {
      assert.is(t.code, 1, `our tuning: ${t.stdout}`);
      assert.match(t.json.msg, /passthru macvlan: its MAC is its master's/);
      assert.is(masterState(impl).address, before, 'the master keeps its MAC');
      assert.is(ctrMac(impl), before, 'so does the passthru macvlan');
    } else {
      assert.is(t.code, 0, t.stdout);
      assert.is(masterState(impl).address, '02:00:00:78:00:09', 'the reference changed the host link\'s MAC');
    }
    ok(run(impl, 'DEL', { ...c, prevResult: r }), `${impl} DEL`);
  }
});


test('linkInContainer: the master is looked up in the container; bcqueuelen; the reference 1.1.1 ignores both', () => {
  fresh(['ours']);
  const cn = ns('ours', 'c1');
  // a master inside the container: a veth whose peer is in the lan
  nsExec(cn, ['ip', 'link', 'add', 'cup0', 'type', 'veth', 'peer', 'name', 'mvlan1', 'netns', ns('ours', 'lan')]);
  nsExec(cn, ['ip', 'link', 'set', 'cup0', 'up']);
  nsExec(ns('ours', 'lan'), ['ip', 'link', 'set', 'mvlan1', 'up']);
  const c = conf({ master: 'cup0', linkInContainer: true, bcqueuelen: 77, mode: 'vepa' });
  const r = ok(run('ours', 'ADD', c), 'ADD');
  const l = ipJson<any[]>(cn, ['-d', 'link', 'show', 'dev', 'eth0'])[0];
  assert.equal([l.linkinfo.info_kind, l.linkinfo.info_data.mode, l.linkinfo.info_data.bcqueuelen, l.link], ['macvlan', 'vepa', 77, 'cup0']);
  ok(run('ours', 'CHECK', { ...c, prevResult: r }), 'CHECK');
  // a host link of that name is not what it means
  const wrong = run('ours', 'ADD', conf({ master: 'cup0' }), 'c2');
  assert.is(wrong.json?.msg, 'failed to lookup master "cup0": Link not found');
  ok(run('ours', 'DEL', { ...c, prevResult: r }), 'DEL');
  assert.equal(ctrLinks('ours'), ['cup0'], 'the master stays');
  // the default route inside the container, with linkInContainer and no master
  nsExec(cn, ['ip', 'addr', 'add', '10.78.0.3/24', 'dev', 'cup0']);
  nsExec(cn, ['ip', 'route', 'add', 'default', 'via', LAN_IP]);
  const d = conf({ linkInContainer: true });
  delete d.master;
  const r2 = ok(run('ours', 'ADD', d, 'c1', { ifname: 'eth1' }), 'ADD on the container\'s default route link');
  assert.is(ipJson<any[]>(cn, ['-d', 'link', 'show', 'dev', 'eth1'])[0].link, 'cup0');
  ok(run('ours', 'DEL', { ...d, prevResult: r2 }, 'c1', { ifname: 'eth1' }), 'DEL');
});

test('STATUS and GC are the IPAM plugin\'s (host-local): GC releases the leases of attachments no longer listed', () => {
  fresh(['ours']);
  const c = conf({}, '1.1.0');
  ok(run('ours', 'ADD', c, 'c1'), 'ADD c1');
  ok(run('ours', 'ADD', c, 'c2'), 'ADD c2');
  assert.is(leases('ours').length, 2);
  assert.is(run('ours', 'STATUS', c).code, 0, 'STATUS');
  const gc = run('ours', 'GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: CID.c1, ifname: 'eth0' }] }, 'c1', { netns: '' });
  assert.is(gc.code, 0, gc.stdout);
  assert.equal(leases('ours'), ['10.78.0.10'], 'c2\'s lease is gone, c1\'s stays');
});

test.run();
