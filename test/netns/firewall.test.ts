// Our firewall plugin (nftables) against the reference firewall plugin
// (Debian containernetworking-plugins 1.1.1, iptables backend), side by side,
// for the same traffic outcomes. Needs root. Prefix: fw-.
//
// Each implementation gets its own world: a netns playing the host, with
// ip_forward on and forwarding closed by default (the reference world:
// `iptables -P FORWARD DROP`; ours: `policy drop` on our forward chain, the
// nftables equivalent, which our setup keeps), two bridges (networks A and B)
// with containers a1, a2 on A and b1 on B, and an "outside" netns behind an
// uplink veth. The bridge plugin (the same implementation's) runs first, then
// the firewall with the bridge's result as prevResult, exactly as libcni
// chains them. New netns have bridge-nf-call-iptables=1 here (br_netfilter
// is loaded), so traffic between two ports of one bridge passes the forward
// hook too, as on a docker or kubernetes node.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import { fakeCall } from '../helpers/gate.js';
import { Ledger } from '../../host/gate/ledger.js';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, makeNetns, nsExec } from '../helpers/netns.js';
import { forwardAccept } from '../../host/capabilities/forward.js';
import { buildFixtures, componentPath, installThirdParty } from '../helpers/fixtures.js';

const P = 'fw-';
type Impl = 'ref' | 'ours';
const IMPLS: Impl[] = ['ref', 'ours'];
type Role = 'host' | 'a1' | 'a2' | 'b1' | 'out';
const ROLES: Role[] = ['host', 'a1', 'a2', 'b1', 'out'];
type Ctr = 'a1' | 'a2' | 'b1';
const ns = (impl: Impl, role: Role): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const NET = {
  a: { name: 'fwneta', bridge: 'fwbra', subnet: '10.88.1.0/24' },
  b: { name: 'fwnetb', bridge: 'fwbrb', subnet: '10.88.2.0/24' },
};
const netOf = (c: Ctr) => (c === 'b1' ? NET.b : NET.a);
const OUTSIDE = '203.0.113.2';

let h: Harness;

function dataDir(impl: Impl): string { return join(h.dir, `ipam-${impl}`); }

function bridgeConf(impl: Impl, c: Ctr, version: string): any {
  const n = netOf(c);
  return {
    cniVersion: version, name: n.name, type: 'bridge', bridge: n.bridge, isGateway: true, isDefaultGateway: true, ipMasq: true,
    ipam: { type: 'host-local', subnet: n.subnet, dataDir: dataDir(impl) },
  };
}

function fwConf(c: Ctr, version: string, prevResult: any, extra: Record<string, unknown> = {}): any {
  const conf: any = { cniVersion: version, name: netOf(c).name, type: 'firewall', backend: '', ...extra };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

function run(impl: Impl, type: string, command: CniCall['command'], conf: any, c: Ctr): CniReply {
  const call: CniCall = { command, hostNs: ns(impl, 'host'), netns: ns(impl, c), containerId: `fw-${c}`, ifname: 'eth0', config: conf };
  return impl === 'ref' ? reference(type, { path: REFERENCE_BIN, ...call }) : ours(h, type, { path: h.bin, ...call });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** The containers' bridge results, by container. */
const bridged: Record<Impl, Partial<Record<Ctr, any>>> = { ref: {}, ours: {} };

function addBridge(impl: Impl, c: Ctr, version = '0.4.0'): any {
  const r = ok(run(impl, 'bridge', 'ADD', bridgeConf(impl, c, version), c), `${impl} bridge ADD ${c}`);
  bridged[impl][c] = r;
  return r;
}

function addFirewall(impl: Impl, c: Ctr, extra: Record<string, unknown> = {}, version = '0.4.0'): any {
  return ok(run(impl, 'firewall', 'ADD', fwConf(c, version, bridged[impl][c], extra), c), `${impl} firewall ADD ${c}`);
}

function delFirewall(impl: Impl, c: Ctr, extra: Record<string, unknown> = {}, version = '0.4.0'): void {
  ok(run(impl, 'firewall', 'DEL', fwConf(c, version, bridged[impl][c], extra), c), `${impl} firewall DEL ${c}`);
}

const ipOf = (impl: Impl, c: Ctr): string => bridged[impl][c].ips[0].address.split('/')[0];

function ping(from: string, to: string): boolean {
  return nsExec(from, ['ping', '-c', '1', '-W', '1', to], { check: false }).status === 0;
}

/** Fresh namespaces, state, forwarding on and closed by default. */
function fresh(): void {
  for (const impl of IMPLS) for (const role of ROLES) makeNetns(ns(impl, role));
  for (const impl of IMPLS) rmSync(dataDir(impl), { recursive: true, force: true });
  rmSync(h.stateDir, { recursive: true, force: true });
  bridged.ref = {};
  bridged.ours = {};
  for (const impl of IMPLS) {
    const host = ns(impl, 'host'), out = ns(impl, 'out');
    nsExec(host, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    nsExec(host, ['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'out0', 'netns', out]);
    nsExec(host, ['ip', 'addr', 'add', '203.0.113.1/24', 'dev', 'up0']);
    nsExec(host, ['ip', 'link', 'set', 'up0', 'up']);
    nsExec(out, ['ip', 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'out0']);
    nsExec(out, ['ip', 'link', 'set', 'out0', 'up']);
    // so that the outside can try new connections into the containers
    nsExec(out, ['ip', 'route', 'add', '10.88.0.0/16', 'via', '203.0.113.1']);
  }
  nsExec(ns('ref', 'host'), ['iptables', '-P', 'FORWARD', 'DROP']);
  nsExec(ns('ref', 'host'), ['ip6tables', '-P', 'FORWARD', 'DROP']);
  nsExec(ns('ours', 'host'), ['nft', '-f', '-'], {
    input: 'add table inet cni_wasm_filter\nadd chain inet cni_wasm_filter forward { type filter hook forward priority filter; policy drop; }\n',
  });
}

interface Outcome { [what: string]: boolean }

/** The traffic matrix, for one world. */
function traffic(impl: Impl, cases: [Role, Ctr | 'outside' | 'gw-a'][]): Outcome {
  const out: Outcome = {};
  for (const [from, to] of cases) {
    const dst = to === 'outside' ? OUTSIDE : to === 'gw-a' ? '10.88.1.1' : ipOf(impl, to);
    out[`${from} -> ${to}`] = ping(ns(impl, from), dst);
  }
  return out;
}

const CASES: [Role, Ctr | 'outside' | 'gw-a'][] = [['a1', 'a2'], ['a1', 'outside'], ['b1', 'a1'], ['a1', 'b1'], ['out', 'a1']];

/** Both worlds give the same outcomes, and they are the expected ones. */
function sameTraffic(expected: Outcome, cases = CASES): void {
  const r = traffic('ref', cases);
  const o = traffic('ours', cases);
  assert.equal(r, expected, 'reference outcomes');
  assert.equal(o, expected, 'our outcomes');
}

function nftJson(impl: Impl, args: string[]): any {
  const r = nsExec(ns(impl, 'host'), ['nft', '-j', ...args], { check: false });
  return r.status === 0 ? JSON.parse(r.stdout) : null;
}

function setElements(set: string, table = 'inet cni_wasm_filter'): unknown[] {
  const j = nftJson('ours', ['list', 'set', ...table.split(' '), set]);
  if (!j) return [];
  const s = j.nftables.find((x: any) => x.set)?.set;
  return s?.elem ?? [];
}

function ledgerEntries(kind: string): any[] {
  return Ledger.all(h.stateDir).filter((e) => e.kind === kind).map(({ containerId: _c, ifname: _i, network: _n, ...e }) => e);
}

/** The reference's per-address rules left in CNI-FORWARD (the admin jump is the chain's own). */
function refForwardRules(): string[] {
  const r = nsExec(ns('ref', 'host'), ['iptables', '-S', 'CNI-FORWARD'], { check: false });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l.startsWith('-A') && !l.includes('CNI-ADMIN')) : [];
}

// ---- hooks ----

test.before(() => {
  cleanupAll(P);
  h = makeHarness('fw-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

// ---- tests ----

test('the reference plugins are installed', () => {
  assert.ok(hasReference() && existsSync(join(REFERENCE_BIN, 'firewall')), `${REFERENCE_BIN}/firewall is missing: apt-get install containernetworking-plugins`);
});

test('forwarding closed: without the firewall nothing is forwarded; with it the same traffic passes as with the reference', () => {
  fresh();
  for (const impl of IMPLS) for (const c of ['a1', 'a2', 'b1'] as Ctr[]) addBridge(impl, c);
  sameTraffic({ 'a1 -> a2': false, 'a1 -> outside': false, 'b1 -> a1': false, 'a1 -> b1': false, 'out -> a1': false });

  for (const impl of IMPLS) {
    for (const c of ['a1', 'a2', 'b1'] as Ctr[]) {
      const res = addFirewall(impl, c);
      // a chained plugin passes its prevResult on
      assert.equal(res, bridged[impl][c], `${impl} firewall ADD result is the prevResult`);
    }
  }
  // new connections from outside stay closed: only established/related traffic comes in
  sameTraffic({ 'a1 -> a2': true, 'a1 -> outside': true, 'b1 -> a1': true, 'a1 -> b1': true, 'out -> a1': false });
  assert.is(setElements('accept4').length, 3, 'one element per address');
  assert.is(ledgerEntries('forward-accept').length, 3, 'each recorded in its attachment\'s ledger');

  for (const impl of IMPLS) for (const c of ['a1', 'a2', 'b1'] as Ctr[]) delFirewall(impl, c);
  sameTraffic({ 'a1 -> a2': false, 'a1 -> outside': false }, [['a1', 'a2'], ['a1', 'outside']]);
  assert.equal(setElements('accept4'), [], 'no element left');
  assert.equal(ledgerEntries('forward-accept'), [], 'nothing left in the ledger');
  assert.equal(refForwardRules(), [], 'the reference removed its rules too');
  // the operator's admin chain is there, empty, and jumped to
  const chain = nftJson('ours', ['list', 'chain', 'inet', 'cni_wasm_filter', 'forward']);
  assert.ok(JSON.stringify(chain).includes('"jump":{"target":"admin"}'), 'forward jumps to admin');
  assert.is(nftJson('ours', ['list', 'chain', 'inet', 'cni_wasm_filter', 'forward']).nftables.find((x: any) => x.chain).chain.policy, 'drop',
    'the operator\'s drop policy on our chain was kept by the setup');
});

test('the admin chain: an operator\'s rule there wins over the accepts, and ADD never flushes it', () => {
  fresh();
  for (const c of ['a1', 'a2'] as Ctr[]) { addBridge('ours', c); addFirewall('ours', c); }
  assert.ok(ping(ns('ours', 'a1'), OUTSIDE), 'a1 reaches the outside');
  nsExec(ns('ours', 'host'), ['nft', 'add', 'rule', 'inet', 'cni_wasm_filter', 'admin', 'ip', 'saddr', ipOf('ours', 'a1'), 'drop']);
  assert.not.ok(ping(ns('ours', 'a1'), OUTSIDE), 'the admin rule drops a1');
  addBridge('ours', 'b1');
  addFirewall('ours', 'b1', { ingressPolicy: 'isolated' }); // a first isolated ADD runs the setup again
  const admin = nftJson('ours', ['list', 'chain', 'inet', 'cni_wasm_filter', 'admin']).nftables.filter((x: any) => x.rule);
  assert.is(admin.length, 1, 'the operator\'s rule is still there');
  assert.not.ok(ping(ns('ours', 'a1'), OUTSIDE), 'and still in force');
  assert.ok(ping(ns('ours', 'a2'), OUTSIDE), 'a2 is not affected');
});

test('same-bridge: two isolated bridges cannot reach each other; the bridge itself and the outside can be reached (as the reference)', () => {
  fresh();
  for (const impl of IMPLS) {
    for (const c of ['a1', 'a2', 'b1'] as Ctr[]) { addBridge(impl, c); addFirewall(impl, c, { ingressPolicy: 'same-bridge' }); }
  }
  sameTraffic({ 'a1 -> a2': true, 'a1 -> outside': true, 'b1 -> a1': false, 'a1 -> b1': false, 'out -> a1': false });
  // DEL keeps the bridge's isolation (the reference keeps its chains), removes the addresses
  for (const impl of IMPLS) for (const c of ['a1', 'a2', 'b1'] as Ctr[]) delFirewall(impl, c, { ingressPolicy: 'same-bridge' });
  assert.equal(setElements('accept4'), [], 'no address element left');
  assert.is(setElements('isolated').length, 2, 'the two bridges stay isolated');
  assert.equal(refForwardRules(), []);
});

test('same-bridge on one bridge only: traffic between it and an open bridge passes (as the reference)', () => {
  fresh();
  for (const impl of IMPLS) {
    for (const c of ['a1', 'a2'] as Ctr[]) { addBridge(impl, c); addFirewall(impl, c, { ingressPolicy: 'same-bridge' }); }
    addBridge(impl, 'b1');
    addFirewall(impl, 'b1');
  }
  sameTraffic({ 'b1 -> a1': true, 'a1 -> b1': true }, [['b1', 'a1'], ['a1', 'b1']]);
});

test('isolated (ours; 1.1.1 has no such policy): ports of the bridge cannot reach each other, the gateway and the outside can', () => {
  fresh();
  for (const c of ['a1', 'a2', 'b1'] as Ctr[]) { addBridge('ours', c); addFirewall('ours', c, { ingressPolicy: 'isolated' }); }
  assert.equal(traffic('ours', [['a1', 'a2'], ['a2', 'a1'], ['a1', 'gw-a'], ['a1', 'outside'], ['b1', 'a1']]),
    { 'a1 -> a2': false, 'a2 -> a1': false, 'a1 -> gw-a': true, 'a1 -> outside': true, 'b1 -> a1': false });
  assert.is(setElements('ports', 'bridge cni_wasm_isolate').length, 3, 'one port element per attachment');
  const r = run('ref', 'firewall', 'ADD', fwConf('a1', '0.4.0', bridged.ours.a1, { ingressPolicy: 'isolated' }), 'a1');
  assert.is(r.code, 1, 'the reference 1.1.1 does not know it');
  for (const c of ['a1', 'a2', 'b1'] as Ctr[]) delFirewall('ours', c, { ingressPolicy: 'isolated' });
  assert.equal(setElements('ports', 'bridge cni_wasm_isolate'), [], 'DEL removes the port elements');
  assert.equal(setElements('accept4'), []);
});

test('dual-stack: IPv6 is forwarded (and closed) like IPv4, as the reference does it', () => {
  fresh();
  const OUT6 = '2001:db8:ff::2';
  const dual = (impl: Impl) => ({
    cniVersion: '1.0.0', name: 'fwnet6', type: 'bridge', bridge: 'fwbr6', isGateway: true, isDefaultGateway: true, ipMasq: true,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.6.0/24' }], [{ subnet: 'fd88:6::/64' }]], dataDir: dataDir(impl) },
  });
  for (const impl of IMPLS) {
    nsExec(ns(impl, 'host'), ['ip', 'addr', 'add', '2001:db8:ff::1/64', 'dev', 'up0', 'nodad']);
    nsExec(ns(impl, 'out'), ['ip', 'addr', 'add', `${OUT6}/64`, 'dev', 'out0', 'nodad']);
    bridged[impl].a1 = ok(run(impl, 'bridge', 'ADD', dual(impl), 'a1'), `${impl} dual-stack bridge`);
  }
  const ping6 = (impl: Impl) => nsExec(ns(impl, 'a1'), ['ping', '-6', '-c', '1', '-W', '2', OUT6], { check: false }).status === 0;
  for (const impl of IMPLS) assert.not.ok(ping6(impl), `${impl}: closed without the firewall`);
  for (const impl of IMPLS) ok(run(impl, 'firewall', 'ADD', { cniVersion: '1.0.0', name: 'fwnet6', type: 'firewall', prevResult: bridged[impl].a1 }, 'a1'), `${impl} firewall`);
  for (const impl of IMPLS) assert.ok(ping6(impl), `${impl}: open with the firewall`);
  assert.is(setElements('accept6').length, 1);
  assert.is(setElements('accept4').length, 1);
  for (const impl of IMPLS) ok(run(impl, 'firewall', 'DEL', { cniVersion: '1.0.0', name: 'fwnet6', type: 'firewall', prevResult: bridged[impl].a1 }, 'a1'), `${impl} firewall DEL`);
  assert.equal(setElements('accept6'), []);
  assert.equal(setElements('accept4'), []);
});

for (const version of ['0.4.0', '1.0.0']) {
  test(`the runtime's sequence at ${version}: ADD, CHECK, DEL, DEL with the ADD result as prevResult`, () => {
    fresh();
    for (const impl of IMPLS) {
      addBridge(impl, 'a1', version);
      const res = addFirewall(impl, 'a1', {}, version);
      assert.is(res.cniVersion, version, `${impl}: the result speaks the config's version`);
      const conf = fwConf('a1', version, res);
      ok(run(impl, 'firewall', 'CHECK', conf, 'a1'), `${impl} CHECK`);
      ok(run(impl, 'firewall', 'DEL', conf, 'a1'), `${impl} DEL`);
      ok(run(impl, 'firewall', 'DEL', conf, 'a1'), `${impl} DEL again`);
    }
    assert.equal(setElements('accept4'), []);
    assert.equal(refForwardRules(), []);
    assert.equal(ledgerEntries('forward-accept'), []);
  });
}

test('CHECK fails when the element is gone; DEL without prevResult leaves it to the ledger sweep', () => {
  fresh();
  addBridge('ours', 'a1');
  const res = addFirewall('ours', 'a1');
  nsExec(ns('ours', 'host'), ['nft', 'delete', 'element', 'inet', 'cni_wasm_filter', 'accept4', `{ ${ipOf('ours', 'a1')} }`]);
  const chk = run('ours', 'firewall', 'CHECK', fwConf('a1', '0.4.0', res), 'a1');
  assert.is(chk.code, 1);
  assert.match(chk.json.msg, /firewall check failed.*accept4/);
  addFirewall('ours', 'a1');
  ok(run('ours', 'firewall', 'CHECK', fwConf('a1', '0.4.0', res), 'a1'), 'CHECK after ADD again');
  ok(run('ours', 'firewall', 'DEL', fwConf('a1', '0.4.0', undefined), 'a1'), 'DEL without prevResult');
  assert.equal(setElements('accept4'), [], 'the sweep removed the element');
  assert.equal(ledgerEntries('forward-accept'), []);
});

test('GC: an attachment the runtime no longer lists loses its elements (the host\'s ledger sweep)', () => {
  fresh();
  for (const c of ['a1', 'a2'] as Ctr[]) { addBridge('ours', c, '1.1.0'); addFirewall('ours', c, { ingressPolicy: 'isolated' }, '1.1.0'); }
  assert.is(setElements('accept4').length, 2);
  const gc = { cniVersion: '1.1.0', name: NET.a.name, type: 'firewall', 'cni.dev/valid-attachments': [{ containerID: 'fw-a2', ifname: 'eth0' }] };
  ok(ours(h, 'firewall', { command: 'GC', hostNs: ns('ours', 'host'), netns: '', ifname: '', containerId: '', config: gc, path: h.bin }), 'GC');
  assert.equal(setElements('accept4').map((e: any) => e), [ipOf('ours', 'a2')], 'only a2 is left');
  assert.is(setElements('ports', 'bridge cni_wasm_isolate').length, 1);
});

test('bad input: no prevResult at ADD, an old cniVersion, an unknown ingress policy (like the reference, nothing left)', () => {
  fresh();
  for (const impl of IMPLS) addBridge(impl, 'a1');
  for (const impl of IMPLS) {
    const noPrev = run(impl, 'firewall', 'ADD', fwConf('a1', '0.4.0', undefined), 'a1');
    assert.is(noPrev.code, 1);
    assert.is(noPrev.json.msg, 'missing prevResult from earlier plugin', `${impl}: ${noPrev.stdout}`);
    const old = run(impl, 'firewall', 'ADD', fwConf('a1', '0.3.1', bridged[impl].a1), 'a1');
    assert.is(old.json.code, 1, `${impl}: incompatible version: ${old.stdout}`);
    const bad = run(impl, 'firewall', 'ADD', fwConf('a1', '0.4.0', bridged[impl].a1, { ingressPolicy: 'nope' }), 'a1');
    assert.is(bad.code, 1);
    assert.match(bad.json.msg, /unknown ingress policy: "nope"/, `${impl}: ${bad.stdout}`);
    assert.not.match(bad.stdout, /at .*\.js:\d+/, 'no stack trace');
  }
  assert.equal(setElements('accept4'), []);
  assert.equal(ledgerEntries('forward-accept'), []);
});

test('the host allows only the prevResult\'s addresses, bridges and ports', () => {
  const t = fakeCall({ type: 'firewall', grants: { firewall: true }, config: { name: 'fwnet' } });
  t.ctx.owned.ownResult({ ips: [{ address: '10.88.1.2/24' }, { address: '2001:db8::2/64' }], interfaces: [{ name: 'fwbra' }, { name: 'vethprev' }] }, true);
  t.ctx.owned.own('host', 'vethmine');
  const fw = t.bind('firewall', forwardAccept, { forwardAcceptAdd: ['entries'], forwardAcceptDel: ['entries'] });
  const e = (address: string, ingressPolicy = 'open', bridge = '', port = '') => [{ address, bridge, port, ingressPolicy }];
  assert.is(fw.forwardAcceptAdd(e('10.88.1.2')).tag, 'ok');
  assert.is(fw.forwardAcceptAdd(e('2001:db8:0::2')).tag, 'ok', 'any spelling of an own address');
  assert.match(fw.forwardAcceptAdd(e('10.88.1.3')).val.message, /10\.88\.1\.3 is not this attachment's/);
  assert.match(fw.forwardAcceptAdd(e('10.88.1.2', 'same-bridge', 'eth0')).val.message, /host link 'eth0'/);
  assert.is(fw.forwardAcceptAdd(e('10.88.1.2', 'same-bridge', 'fwbra')).tag, 'ok');
  assert.is(fw.forwardAcceptAdd(e('10.88.1.2', 'isolated', 'fwbra', 'vethmine')).tag, 'ok', 'a port this attachment created');
  assert.is(fw.forwardAcceptAdd(e('10.88.1.2', 'isolated', 'fwbra', 'vethprev')).tag, 'ok', 'a port of the prevResult');
  assert.match(fw.forwardAcceptAdd(e('10.88.1.2', 'isolated', 'fwbra', 'vethother')).val.message, /host link 'vethother'/);
  const bare = fakeCall({ type: 'firewall', grants: { firewall: true } });
  assert.match(bare.bind('firewall', forwardAccept, { forwardAcceptAdd: ['entries'] }).forwardAcceptAdd(e('10.88.1.2')).val.message, /not this attachment's/,
    'no prevResult (or a delegated call): nothing');
  const nogrant = fakeCall({ type: 'firewall', grants: {} });
  assert.match(nogrant.bind('firewall', forwardAccept, { forwardAcceptAdd: ['entries'] }).forwardAcceptAdd(e('10.88.1.2')).val.message, /has no "firewall" grant/);
  assert.match(fw.forwardAcceptAdd(Array.from({ length: 65 }, () => e('10.88.1.2')[0])).val.message, /at most 64/);
  // DEL removes what the ledger holds for the address, and nothing of another's
  assert.is(fw.forwardAcceptDel(e('10.88.1.8')).tag, 'ok');
  assert.equal(t.audit.filter((r) => r.call === 'firewall.forward-accept-del').pop().args.entries, [], 'nothing of another\'s to remove');
  const held = t.ctx.ledger.entries.filter((x) => x.kind === 'forward-accept').length;
  assert.ok(held >= 1);
  assert.is(fw.forwardAcceptDel([...e('10.88.1.2'), ...e('2001:db8::2')]).tag, 'ok');
  assert.is(t.ctx.ledger.entries.filter((x) => x.kind === 'forward-accept').length, 0);
});

test('a hostile component granted the firewall: only its prevResult\'s address goes in; the rest is denied and audited', () => {
  fresh();
  const built = join(h.dir, 'fixtures');
  buildFixtures(built, ['fw-overreach']);
  installThirdParty(h, [{ type: 'fw-overreach', component: componentPath(built, 'fw-overreach') }]);
  addBridge('ours', 'a1', '1.0.0');
  assert.is(ipOf('ours', 'a1'), '10.88.1.2', 'the address the fixture calls its own');
  const conf = { cniVersion: '1.0.0', name: NET.a.name, type: 'fw-overreach', prevResult: bridged.ours.a1 };
  const r = run('ours', 'fw-overreach', 'ADD', conf, 'a1');
  assert.is(r.json?.code, 150, r.stdout + r.stderr);
  const report: Record<string, { code: string; message: string }> = {};
  for (const e of JSON.parse(r.json.details)) report[e.call] = e;
  assert.is(report.own.code, 'ok');
  for (const k of ['foreign-address', 'foreign-bridge', 'foreign-port', 'get-settings-lo', 'set-txqlen-lo', 'set-allmulti-lo']) {
    assert.is(report[k].code, 'EDENIED', `${k}: ${report[k].message}`);
  }
  // removing another's element is not refused: it removes nothing of another's
  assert.is(report['foreign-del'].code, 'ok');
  assert.match(report['foreign-address'].message, /10\.88\.1\.99 is not this attachment's/);
  assert.match(report['get-settings-lo'].message, /container link 'lo' is not this attachment's/);
  // the bundled firewall, run by delegation with a prevResult the component wrote, names nothing
  assert.is(report.delegated.code, 'CNI999');
  assert.match(report.delegated.message, /10\.88\.1\.55 is not this attachment's/);
  assert.is(setElements('isolated').length, 0, 'no bridge isolated');
  const lo = JSON.parse(nsExec(ns('ours', 'a1'), ['ip', '-j', '-d', 'link', 'show', 'lo']).stdout)[0];
  assert.not.ok(lo.flags.includes('ALLMULTI'), 'container lo untouched');
  const denied = readAudit(h).filter((x) => x.verdict === 'deny' && x.call.startsWith('firewall.forward-accept'));
  assert.is(denied.length, 4, 'every refusal audited (3 by the component, 1 by the delegated firewall)');
  // its ADD failed: the host swept at once what it had let it add
  assert.equal(setElements('accept4'), [], 'even its own element is gone with its failed ADD');
  assert.ok(readAudit(h).some((x) => x.call === 'sweep.firewall.forward-accept-del' && x.args.entry.address === '10.88.1.2'));
  ok(run('ours', 'fw-overreach', 'DEL', conf, 'a1'), 'DEL');
  assert.equal(setElements('accept4'), []);
});

/**
 * The conflist `podman network create` writes (podman 4.3, CNI backend), made
 * in a temp config dir with temp storage: nothing of the machine's is used.
 * null when podman is not installed.
 */
function podmanConflist(): any | null {
  if (spawnSync('sh', ['-c', 'command -v podman']).status !== 0) return null;
  const d = join(h.dir, 'podman');
  for (const sub of ['net', 'root', 'run', 'tmp']) mkdirSync(join(d, sub), { recursive: true });
  writeFileSync(join(d, 'containers.conf'), `[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "${d}/net"\n` +
    `cni_plugin_dirs = ["${h.bin}"]\n[engine]\ntmp_dir = "${d}/tmp"\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n`);
  writeFileSync(join(d, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${d}/root"\nrunroot = "${d}/run"\n`);
  // in our host netns (podman looks at the host's routes for a free subnet); not 10.88/16, podman's default network
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns('ours', 'host')}`, 'podman', 'network', 'create', '--subnet', '10.89.1.0/24', NET.a.name], {
    encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, CONTAINERS_CONF: join(d, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(d, 'storage.conf') },
  });
  assert.is(r.status, 0, `podman network create: ${r.stderr}`);
  return JSON.parse(readFileSync(join(d, 'net', `${NET.a.name}.conflist`), 'utf8'));
}

test('podman\'s own conflist (podman network create): its firewall and tuning entries, verbatim, at its 0.4.0', () => {
  fresh();
  // tuning's default data dir: a tuning entry that tunes nothing must not create it
  const runCni = existsSync('/run/cni/tuning');
  const podman = podmanConflist();
  const fwEntry = { type: 'firewall', backend: '' };
  const tuEntry = { type: 'tuning' };
  let version = '0.4.0';
  if (podman) {
    assert.equal(podman.plugins.map((p: any) => p.type), ['bridge', 'portmap', 'firewall', 'tuning']);
    assert.equal(podman.plugins[2], fwEntry, 'podman\'s firewall entry');
    assert.equal(podman.plugins[3], tuEntry, 'podman\'s tuning entry');
    version = podman.cniVersion;
  } else {
    console.log('  (podman is not installed: using the entries podman 4.3 writes)');
  }
  assert.is(version, '0.4.0');
  const base = { cniVersion: version, name: NET.a.name };
  for (const impl of IMPLS) {
    // podman's bridge entry too, with the IPAM state in our temp dir (portmap is another plugin's business)
    const bridgeEntry = podman ? { ...podman.plugins[0], ipam: { ...podman.plugins[0].ipam, dataDir: dataDir(impl) } } : bridgeConf(impl, 'a1', version);
    const brConf = { ...base, ...bridgeEntry };
    const br = ok(run(impl, 'bridge', 'ADD', brConf, 'a1'), `${impl} bridge`);
    const fw = ok(run(impl, 'firewall', 'ADD', { ...base, ...fwEntry, prevResult: br }, 'a1'), `${impl} firewall`);
    const tu = ok(run(impl, 'tuning', 'ADD', { ...base, ...tuEntry, prevResult: fw }, 'a1'), `${impl} tuning`);
    assert.equal(tu, br, `${impl}: the chain's result is the bridge's`);
    ok(run(impl, 'tuning', 'CHECK', { ...base, ...tuEntry, prevResult: tu }, 'a1'), `${impl} tuning CHECK`);
    ok(run(impl, 'firewall', 'CHECK', { ...base, ...fwEntry, prevResult: tu }, 'a1'), `${impl} firewall CHECK`);
    assert.ok(ping(ns(impl, 'a1'), OUTSIDE), `${impl}: a1 reaches the outside through the closed forward chain`);
    // DEL in reverse order, each with the cached result
    ok(run(impl, 'tuning', 'DEL', { ...base, ...tuEntry, prevResult: tu }, 'a1'), `${impl} tuning DEL`);
    ok(run(impl, 'firewall', 'DEL', { ...base, ...fwEntry, prevResult: tu }, 'a1'), `${impl} firewall DEL`);
    ok(run(impl, 'bridge', 'DEL', { ...brConf, prevResult: tu }, 'a1'), `${impl} bridge DEL`);
  }
  assert.equal(setElements('accept4'), []);
  assert.equal(refForwardRules(), []);
  assert.equal(ledgerEntries('forward-accept'), []);
  assert.is(existsSync('/run/cni/tuning'), runCni, 'nothing created in /run/cni/tuning');
});

test.run();
