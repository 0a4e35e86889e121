// bridge "macspoofchk": our flat nftables sets against the reference's chain
// per container (Debian containernetworking-plugins 1.1.1), side by side, and
// the capability's ownership rule. Needs root. Prefix: sc-.
//
// Each implementation gets its own throwaway world: a netns that plays the
// host (the plugin runs inside it) and two container netns, A and B.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';
import { fakeCall } from '../helpers/gate.js';
import { Ledger } from '../../host/gate/ledger.js';
import { firewall, parseSpoofCheck } from '../../host/capabilities/firewall.js';
import { SPOOF_TABLE, normalizeSpoofCheck, spoofDelScript } from '../../host/kernel/spoofcheck.js';

const P = 'sc-';
type Impl = 'ref' | 'ours';
const IMPLS: Impl[] = ['ref', 'ours'];
type Role = 'host' | 'a' | 'b';
const ns = (impl: Impl, role: Role): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const CID: Record<'a' | 'b', string> = { a: 'sc-container-a', b: 'sc-container-b' };
const IP: Record<'a' | 'b', string> = { a: '10.77.0.2', b: '10.77.0.3' };
const GW = '10.77.0.1';
const SPOOFED = '0a:58:de:ad:be:ef';

let h: Harness;

const CONF = {
  cniVersion: '1.0.0', name: 'scnet', type: 'bridge', bridge: 'scbr0', isGateway: true, macspoofchk: true,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.77.0.0/24' }]] },
};

const dataDir = (impl: Impl) => join(h.dir, `ipam-${impl}`);

function forImpl(conf: any, impl: Impl): any {
  const c = JSON.parse(JSON.stringify(conf));
  if (c.ipam?.type === 'host-local') c.ipam.dataDir = dataDir(impl);
  return c;
}

function run(impl: Impl, command: CniCall['command'], conf: any, c: 'a' | 'b', over: Partial<CniCall> = {}): CniReply {
  const call: CniCall = {
    command, hostNs: ns(impl, 'host'), netns: ns(impl, c), containerId: CID[c], ifname: 'eth0', config: forImpl(conf, impl), ...over,
  };
  return impl === 'ref' ? reference('bridge', { path: REFERENCE_BIN, ...call }) : ours(h, 'bridge', { path: h.bin, ...call });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

function fresh(): void {
  for (const impl of IMPLS) for (const role of ['host', 'a', 'b'] as Role[]) makeNetns(ns(impl, role));
  for (const impl of IMPLS) rmSync(dataDir(impl), { recursive: true, force: true });
  rmSync(h.stateDir, { recursive: true, force: true });
  mkdirSync(h.stateDir, { recursive: true });
}

/** One ping, after forgetting neighbours (a changed MAC must be learnt again). */
function ping(from: string, to: string, tries = 2): boolean {
  nsExec(from, ['ip', 'neigh', 'flush', 'all'], { check: false });
  for (let i = 0; i < tries; i++) {
    if (nsExec(from, ['ping', '-c', '1', '-W', '1', to], { check: false }).status === 0) return true;
  }
  return false;
}

/** Elements of one of our sets: ports as names, allowed as "port . mac". */
function ourSet(impl: Impl, set: 'ports' | 'allowed'): string[] {
  const r = nsExec(ns(impl, 'host'), ['nft', '-j', 'list', 'set', 'bridge', SPOOF_TABLE, set], { check: false });
  if (r.status !== 0) return [];
  const s = (JSON.parse(r.stdout).nftables as any[]).find((x) => x.set)?.set;
  return (s?.elem ?? []).map((e: any) => (typeof e === 'object' && Array.isArray(e.concat) ? e.concat.join(' . ') : String(e))).sort();
}

function ourRules(): string[] {
  const r = nsExec(ns('ours', 'host'), ['nft', 'list', 'chain', 'bridge', SPOOF_TABLE, 'prerouting'], { check: false });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('iifname')) : [];
}

/** The reference's per-container chains in `table bridge nat`. */
function refChains(): string[] {
  const r = nsExec(ns('ref', 'host'), ['nft', 'list', 'table', 'bridge', 'nat'], { check: false });
  return r.status === 0 ? [...r.stdout.matchAll(/chain (cni-br-iface-\S+)/g)].map((m) => m[1]).sort() : [];
}

const containerMac = (impl: Impl, c: 'a' | 'b'): string => ipJson<any[]>(ns(impl, c), ['link', 'show', 'dev', 'eth0'])[0].address;
const hostVeths = (impl: Impl): string[] => ipJson<any[]>(ns(impl, 'host'), ['link', 'show', 'type', 'veth']).map((l) => l.ifname).sort();

/** Live ledger entries, without the digest of the component that made them. */
function ledgerEntries(c: 'a' | 'b'): any[] {
  return Ledger.peek(h.stateDir, CONF.name, CID[c], 'eth0').map(({ sha256: _s, ...e }) => e);
}

const results: Record<Impl, Partial<Record<'a' | 'b', any>>> = { ref: {}, ours: {} };

// ---- hooks ----

test.before(() => {
  cleanupAll(P);
  h = makeHarness('sc-');
  mkdirSync(h.stateDir, { recursive: true });
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

// ---- the capability on its own, through the gate (no kernel) ----

test('spoof check capability: only a port this attachment created may be checked', () => {
  const t = fakeCall({ grants: { firewall: true }, config: { bridge: 'scbr0', name: 'vethvictim00' } });
  try {
    const fw = t.bind('firewall', firewall, { macSpoofCheckAdd: ['c'], macSpoofCheckDel: ['c'] });
    const mine = { port: 'vethmine0000', mac: '0a:58:0a:4d:00:02' };
    const victim = { port: 'vethvictim00', mac: '0a:58:0a:4d:00:03' };
    // nothing owned yet: both denied, even a port a config string names (only created links count)
    assert.match(fw.macSpoofCheckAdd(mine).val.message, /host link 'vethmine0000' was not created by this attachment/);
    assert.match(fw.macSpoofCheckAdd(victim).val.message, /not created by this attachment/);
    assert.match(fw.macSpoofCheckDel(victim).val.message, /no MAC spoof check on 'vethvictim00'/);
    t.ctx.owned.own('host', 'vethmine0000');
    assert.is(fw.macSpoofCheckAdd(mine).tag, 'ok');
    assert.is(fw.macSpoofCheckDel(mine).tag, 'ok');
    assert.match(fw.macSpoofCheckAdd(victim).val.message, /not created by this attachment/);
    assert.equal(t.ran, ['firewall.macSpoofCheckAdd', 'firewall.macSpoofCheckDel'], 'run reached only for the allowed calls');
    // without the firewall grant, not even its own port
    const nogrant = fakeCall({ grants: {} });
    nogrant.ctx.owned.own('host', 'vethmine0000');
    const fw2 = nogrant.bind('firewall', firewall, { macSpoofCheckAdd: ['c'] });
    assert.match(fw2.macSpoofCheckAdd(mine).val.message, /has no "firewall" grant/);
    assert.equal(nogrant.ran, []);
    // every denial is audited with its arguments
    const denied = t.audit.filter((r) => r.verdict === 'deny');
    assert.is(denied.length, 4);
    assert.is(denied[0].call, 'firewall.mac-spoof-check-add');
    assert.equal(denied[0].args, { c: mine });
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test('spoof check arguments: names and MACs that cannot reach nft as anything but data', () => {
  assert.equal(normalizeSpoofCheck('veth1234abcd', '0A-58-0A-4D-00-02'), { port: 'veth1234abcd', mac: '0a:58:0a:4d:00:02' });
  for (const [port, mac] of [
    ['veth"x', '0a:58:0a:4d:00:02'], ['veth*', '0a:58:0a:4d:00:02'], ['a b', '0a:58:0a:4d:00:02'], ['', '0a:58:0a:4d:00:02'],
    ['x'.repeat(16), '0a:58:0a:4d:00:02'], ['veth0', '0a:58:0a:4d:00'], ['veth0', '0a:58-0a:4d:00:02'], ['veth0', 'zz:58:0a:4d:00:02'],
    ['veth0', '0a:58:0a:4d:00:02 }'],
  ]) {
    assert.is(normalizeSpoofCheck(port, mac), null, `${port} ${mac}`);
  }
  assert.throws(() => parseSpoofCheck({ port: 'veth0', mac: 'nope' }), /six hex pairs/);
  // two MACs on one port: the port's element once, so the batch cannot fail on a second delete
  const script = spoofDelScript([{ port: 'veth0', mac: '0a:00:00:00:00:01' }, { port: 'veth0', mac: '0a:00:00:00:00:02' }]);
  assert.is(script.filter((l) => l.startsWith('delete element') && l.includes('ports')).length, 1);
});

// ---- side by side ----

test('the reference plugins are installed', () => {
  assert.ok(hasReference(), `${REFERENCE_BIN}/bridge is missing: apt-get install containernetworking-plugins`);
});

test('ADD with macspoofchk: containers reach each other; one element per attachment in each set, one rule', () => {
  fresh();
  for (const impl of IMPLS) {
    for (const c of ['a', 'b'] as const) results[impl][c] = ok(run(impl, 'ADD', CONF, c), `${impl} ADD ${c}`);
  }
  for (const impl of IMPLS) {
    assert.ok(ping(ns(impl, 'a'), IP.b), `${impl}: a -> b`);
    assert.ok(ping(ns(impl, 'b'), IP.a), `${impl}: b -> a`);
    assert.ok(ping(ns(impl, 'a'), GW), `${impl}: a -> gateway`);
  }
  const o = results.ours;
  const port = (c: 'a' | 'b') => o[c].interfaces[1].name;
  assert.equal(ourSet('ours', 'ports'), [port('a'), port('b')].sort());
  assert.equal(ourSet('ours', 'allowed'), [`${port('a')} . ${containerMac('ours', 'a')}`, `${port('b')} . ${containerMac('ours', 'b')}`].sort());
  assert.is(o.a.interfaces[2].mac, containerMac('ours', 'a'));
  assert.equal(hostVeths('ours'), [port('a'), port('b')].sort());
  // flat: one rule whatever the number of attachments
  assert.equal(ourRules(), ['iifname @ports iifname . ether saddr != @allowed drop']);
  // the reference: two chains per attachment
  assert.is(refChains().length, 4);
  // the ledger records each check with its attachment
  for (const c of ['a', 'b'] as const) {
    assert.equal(ledgerEntries(c).filter((e) => e.kind === 'spoofcheck'), [{ kind: 'spoofcheck', port: port(c), mac: containerMac('ours', c), plugin: 'bridge' }]);
  }
});

test('a container that changes its MAC is cut off (both implementations); the other is not', () => {
  for (const impl of IMPLS) {
    nsExec(ns(impl, 'a'), ['ip', 'link', 'set', 'eth0', 'address', SPOOFED]);
    nsExec(ns(impl, 'b'), ['ip', 'neigh', 'flush', 'all']);
  }
  for (const impl of IMPLS) {
    assert.not.ok(ping(ns(impl, 'a'), IP.b), `${impl}: spoofed a -> b must fail`);
    assert.not.ok(ping(ns(impl, 'a'), GW), `${impl}: spoofed a -> gateway must fail`);
    assert.not.ok(ping(ns(impl, 'b'), IP.a), `${impl}: b -> spoofed a must fail (a's replies are dropped)`);
    assert.ok(ping(ns(impl, 'b'), GW), `${impl}: b -> gateway still works`);
  }
  // our rule did the dropping: the bridge never learnt the spoofed MAC ...
  const fdb = nsExec(ns('ours', 'host'), ['bridge', 'fdb', 'show', 'br', 'scbr0']).stdout;
  assert.not.ok(fdb.includes(SPOOFED), fdb);
  // ... and with a's port out of the set the spoofed frames pass (control)
  const portA = `"${results.ours.a.interfaces[1].name}"`;
  nsExec(ns('ours', 'host'), ['nft', 'delete', 'element', 'bridge', SPOOF_TABLE, 'ports', `{ ${portA} }`]);
  assert.ok(ping(ns('ours', 'a'), IP.b), 'spoofed a -> b passes once its port is not checked');
  nsExec(ns('ours', 'host'), ['nft', 'add', 'element', 'bridge', SPOOF_TABLE, 'ports', `{ ${portA} }`]);
  assert.not.ok(ping(ns('ours', 'a'), IP.b), 'and is dropped again');
  // the real MAC back: traffic flows again
  for (const impl of IMPLS) {
    nsExec(ns(impl, 'a'), ['ip', 'link', 'set', 'eth0', 'address', results[impl].a.interfaces[2].mac]);
    assert.ok(ping(ns(impl, 'a'), IP.b), `${impl}: a -> b with its own MAC again`);
  }
});

test('ADD failing after the check exists takes the check back', () => {
  // A second network on the same bridge whose gateway clashes with the bridge's address: fails after IPAM.
  const CLASH = { ...CONF, ipam: { type: 'host-local', ranges: [[{ subnet: '10.76.0.0/24' }]] } };
  const before = { ports: ourSet('ours', 'ports'), allowed: ourSet('ours', 'allowed') };
  const r = run('ours', 'ADD', CLASH, 'b', { containerId: 'sc-clash', ifname: 'eth1' });
  assert.match(r.json?.msg ?? r.stdout, /already has an IP address different from 10\.76\.0\.1\/24/);
  assert.equal({ ports: ourSet('ours', 'ports'), allowed: ourSet('ours', 'allowed') }, before);
  const f = Ledger.pathOf(h.stateDir, CONF.name, 'sc-clash', 'eth1');
  assert.not.ok(existsSync(f), existsSync(f) ? readFileSync(f, 'utf8') : '');
});

test('DEL removes the check: by prevResult, or by the ledger when the plugin cannot name the port', () => {
  // a: DEL with prevResult (the plugin names port and MAC)
  for (const impl of IMPLS) ok(run(impl, 'DEL', { ...CONF, prevResult: results[impl].a }, 'a'), `${impl} DEL a`);
  const portB = results.ours.b.interfaces[1].name;
  assert.equal(ourSet('ours', 'ports'), [portB]);
  assert.equal(ourSet('ours', 'allowed'), [`${portB} . ${containerMac('ours', 'b')}`]);
  assert.is(refChains().length, 2);
  const calls = readAudit(h).filter((x) => x.containerId === CID.a && x.command === 'DEL').map((x) => `${x.call} ${x.verdict} ${x.outcome}`);
  assert.ok(calls.includes('firewall.mac-spoof-check-del allow ok'), calls.join('\n'));
  // b: DEL without prevResult: the host's sweep removes what the ledger lists
  for (const impl of IMPLS) ok(run(impl, 'DEL', CONF, 'b'), `${impl} DEL b`);
  assert.equal(ourSet('ours', 'ports'), []);
  assert.equal(ourSet('ours', 'allowed'), []);
  assert.ok(readAudit(h).some((x) => x.containerId === CID.b && x.call === 'sweep.firewall.mac-spoof-check-del' && x.outcome === 'ok'));
  assert.equal(ledgerEntries('a'), []);
  assert.equal(ledgerEntries('b'), []);
  // the reference finds its chains by container id: gone as well
  assert.equal(refChains(), []);
  // the table and its one rule stay, like the masquerade table
  assert.equal(ourRules(), ['iifname @ports iifname . ether saddr != @allowed drop']);
  // DEL twice is fine, and touches nothing
  for (const impl of IMPLS) ok(run(impl, 'DEL', { ...CONF, prevResult: results[impl].a }, 'a'), `${impl} DEL a again`);
  for (const impl of IMPLS) assert.equal(hostVeths(impl), []);
});

test('a removed table is set up again by the next ADD', () => {
  nsExec(ns('ours', 'host'), ['nft', 'delete', 'table', 'bridge', SPOOF_TABLE]);
  const r = ok(run('ours', 'ADD', CONF, 'a'), 'ADD after the table was removed');
  assert.equal(ourSet('ours', 'ports'), [r.interfaces[1].name]);
  assert.equal(ourRules().length, 1);
  assert.ok(ping(ns('ours', 'a'), GW));
  ok(run('ours', 'DEL', { ...CONF, prevResult: r }, 'a'), 'DEL');
  assert.equal(ourSet('ours', 'ports'), []);
});

test('GC removes the checks of attachments the runtime no longer lists', () => {
  ok(run('ours', 'ADD', CONF, 'a'), 'ADD a');
  const rb = ok(run('ours', 'ADD', CONF, 'b'), 'ADD b');
  assert.is(ourSet('ours', 'ports').length, 2);
  const gc = { ...CONF, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: CID.b, ifname: 'eth0' }] };
  ok(run('ours', 'GC', gc, 'a', { netns: '' }), 'GC');
  assert.equal(ourSet('ours', 'ports'), [rb.interfaces[1].name]);
  assert.equal(ourSet('ours', 'allowed'), [`${rb.interfaces[1].name} . ${containerMac('ours', 'b')}`]);
  assert.equal(ledgerEntries('a'), []);
  ok(run('ours', 'DEL', CONF, 'a'), 'DEL a');
  ok(run('ours', 'DEL', { ...CONF, prevResult: rb }, 'b'), 'DEL b');
  assert.equal(ourSet('ours', 'ports'), []);
  assert.equal(ourSet('ours', 'allowed'), []);
});

test('every host call of the bridge was allowed', () => {
  const denied = readAudit(h).filter((a) => a.plugin === 'bridge' && a.verdict !== 'allow');
  assert.equal(denied.map((a) => `${a.call} ${a.outcome}`), []);
});

test('namespaces are cleaned up', () => {
  cleanupAll(P);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(P));
  assert.equal(left, []);
});

test.run();
