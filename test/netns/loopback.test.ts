// The bundled loopback plugin, exec'd through the installed shim exactly as
// a runtime does (CNI_* env, config on stdin), from a throwaway netns that
// plays the host. Needs root. Prefix: lo-.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, ROOT, hasReference, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, deleteNetns, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'lo-';
const HOST = `${P}host`;
const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

let h: Harness;
let digest: string;

/** A fresh container netns with lo DOWN, as the kernel creates it. */
function freshNetns(name: string): string {
  makeNetns(name);
  nsExec(name, ['ip', 'link', 'set', 'lo', 'down']);
  assert.not.ok(loUp(name), 'lo starts down');
  return name;
}

const lo = (ns: string) => ipJson<any[]>(ns, ['link', 'show', 'dev', 'lo'])[0];
const loUp = (ns: string): boolean => lo(ns).flags.includes('UP');

const conf = (cniVersion: string, extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'lonet', type: 'loopback', ...extra });

function call(command: CniCall['command'], netns: string, cniVersion: string, over: Partial<CniCall> = {}): CniReply {
  return ours(h, 'loopback', {
    command, hostNs: HOST, netns, containerId: `ctr-${netns}`, ifname: 'lo', config: conf(cniVersion), ...over,
  });
}

function ok(r: CniReply): CniReply {
  assert.is(r.code, 0, `exit ${r.code}: ${r.stdout}${r.stderr}`);
  return r;
}

/** stdout of a successful ADD: exactly one JSON document. */
function result(r: CniReply): any {
  ok(r);
  assert.not.match(r.stdout.trim(), /\n/, 'one line of JSON');
  assert.ok(r.json, `stdout is JSON: ${r.stdout}`);
  return r.json;
}

test.before(() => {
  try {
    cleanupAll(P);
    makeNetns(HOST);
    h = makeHarness('lo-');
    digest = JSON.parse(readFileSync(join(ROOT, 'dist/plugins/loopback/manifest.json'), 'utf8')).sha256;
  } catch (e) {
    console.error('loopback test setup failed:', e); // uvu does not report a failing before hook
    throw e;
  }
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('ADD (1.0.0) brings lo up in a fresh netns and reports it in the 1.x shape', () => {
  const ns = freshNetns(`${P}c100`);
  const res = result(call('ADD', ns, '1.0.0'));
  assert.ok(loUp(ns), 'lo is up');
  assert.is(res.cniVersion, '1.0.0');
  assert.equal(res.interfaces, [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: netnsPath(ns) }]);
  const addrs = res.ips.map((i: any) => i.address);
  assert.ok(addrs.includes('127.0.0.1/8'), addrs.join(','));
  for (const ip of res.ips) {
    assert.is(ip.interface, 0);
    assert.not.ok('version' in ip, '1.x ips carry no version');
  }
  assert.not.ok('ip4' in res);
  // what the kernel says lo has, the result says too
  const kernel = ipJson<any[]>(ns, ['addr', 'show', 'dev', 'lo'])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal([...addrs].sort(), [...kernel].sort());
  assert.ok(loUp(HOST), 'the host netns lo is untouched');
});

test('ADD (0.3.1 and 0.4.0): ips carry their version', () => {
  for (const v of ['0.3.1', '0.4.0']) {
    const ns = freshNetns(`${P}c${v.replace(/\./g, '')}`);
    const res = result(call('ADD', ns, v));
    assert.ok(loUp(ns), `${v}: lo is up`);
    assert.is(res.cniVersion, v);
    assert.equal(res.interfaces, [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: netnsPath(ns) }], v);
    const v4 = res.ips.find((i: any) => i.address === '127.0.0.1/8');
    assert.equal(v4, { version: '4', interface: 0, address: '127.0.0.1/8' }, v);
    for (const ip of res.ips) assert.is(ip.version, ip.address.includes(':') ? '6' : '4', `${v} ${ip.address}`);
    assert.equal(res.dns, {}, `${v}: dns is present in the 0.x shape`);
  }
});

test('ADD (0.2.0 and 1.1.0): the oldest and newest shapes', () => {
  const old = freshNetns(`${P}c020`);
  const r020 = result(call('ADD', old, '0.2.0'));
  assert.ok(loUp(old));
  assert.is(r020.cniVersion, '0.2.0');
  assert.equal(r020.ip4, { ip: '127.0.0.1/8' });
  assert.not.ok('interfaces' in r020 || 'ips' in r020);
  const cur = freshNetns(`${P}c110`);
  const r110 = result(call('ADD', cur, '1.1.0'));
  assert.ok(loUp(cur));
  assert.is(r110.cniVersion, '1.1.0');
  assert.equal(r110.interfaces[0].name, 'lo');
});

test('ADD matches the reference loopback (interfaces and addresses)', () => {
  if (!hasReference()) { console.log('  (no reference plugins in /usr/lib/cni: skipped)'); return; }
  for (const v of ['0.3.1', '1.0.0']) {
    const a = freshNetns(`${P}ra${v.replace(/\./g, '')}`);
    const b = freshNetns(`${P}rb${v.replace(/\./g, '')}`);
    const theirs = ok(reference('loopback', { command: 'ADD', hostNs: HOST, netns: a, containerId: 'ref', ifname: 'lo', config: conf(v) })).json;
    const mine = result(call('ADD', b, v));
    assert.ok(loUp(a) && loUp(b));
    assert.is(mine.cniVersion, theirs.cniVersion);
    const strip = (r: any) => ({
      interfaces: r.interfaces.map((i: any) => ({ ...i, sandbox: undefined })),
      ips: r.ips.map((i: any) => ({ interface: i.interface, address: i.address })),
    });
    assert.equal(strip(mine), strip(theirs), v);
  }
});

test('CHECK after ADD succeeds; CHECK with lo down fails', () => {
  const ns = freshNetns(`${P}chk`);
  const res = result(call('ADD', ns, '1.0.0'));
  const chk = call('CHECK', ns, '1.0.0', { config: conf('1.0.0', { prevResult: res }) });
  ok(chk);
  assert.is(chk.stdout.trim(), '', 'CHECK prints nothing on success');
  nsExec(ns, ['ip', 'link', 'set', 'lo', 'down']);
  const bad = call('CHECK', ns, '1.0.0', { config: conf('1.0.0', { prevResult: res }) });
  assert.is.not(bad.code, 0);
  assert.ok(bad.json && typeof bad.json.code === 'number', bad.stdout);
  assert.match(bad.json.msg, /lo/);
});

test('DEL brings lo down; DEL twice is fine', () => {
  const ns = freshNetns(`${P}del`);
  result(call('ADD', ns, '1.0.0'));
  assert.ok(loUp(ns));
  const d1 = ok(call('DEL', ns, '1.0.0'));
  assert.is(d1.stdout.trim(), '', 'DEL prints nothing on success');
  assert.not.ok(loUp(ns), 'lo is down after DEL');
  ok(call('DEL', ns, '1.0.0'));
  assert.not.ok(loUp(ns));
  assert.ok(loUp(HOST), 'the host netns lo is untouched');
});

test('DEL after the netns is gone, or with no netns at all, is fine', () => {
  const ns = freshNetns(`${P}gone`);
  result(call('ADD', ns, '0.4.0'));
  deleteNetns(ns);
  const d = call('DEL', ns, '0.4.0');
  assert.is(d.code, 0, d.stdout + d.stderr);
  assert.is(d.stdout.trim(), '');
  const empty = call('DEL', '', '0.4.0', { containerId: 'ctr-no-netns' });
  assert.is(empty.code, 0, empty.stdout + empty.stderr);
  assert.ok(loUp(HOST));
});

test('VERSION lists every supported spec version', () => {
  for (const v of ['0.3.1', '1.0.0', '1.1.0']) {
    const r = ok(ours(h, 'loopback', { command: 'VERSION', hostNs: HOST, config: { cniVersion: v } }));
    assert.equal(r.json, { cniVersion: v, supportedVersions: ALL_VERSIONS }, v);
  }
  // no stdin at all: the newest
  const bare = ok(ours(h, 'loopback', { command: 'VERSION', config: '' }));
  assert.equal(bare.json.supportedVersions, ALL_VERSIONS);
});

test('every host call is in the audit log with plugin, sha256, command and container', () => {
  const ns = freshNetns(`${P}aud`);
  const id = 'ctr-audit-1';
  const res = result(call('ADD', ns, '1.0.0', { containerId: id }));
  ok(call('CHECK', ns, '1.0.0', { containerId: id, config: conf('1.0.0', { prevResult: res }) }));
  ok(call('DEL', ns, '1.0.0', { containerId: id }));
  const all = readAudit(h).filter((r) => r.containerId === id);
  // a change is recorded before it is made ("pending"), then with its outcome
  const pending = all.filter((r) => r.outcome === 'pending');
  assert.equal(pending.map((r) => r.call), ['links.set-up', 'links.set-up'], 'write-ahead records of the two changes');
  for (const p of pending) assert.ok(all.indexOf(p) < all.findIndex((r, i) => i > all.indexOf(p) && r.call === p.call && r.outcome === 'ok'));
  const recs = all.filter((r) => r.outcome !== 'pending');
  for (const r of recs) {
    assert.is(r.plugin, 'loopback');
    assert.is(r.sha256, digest);
    assert.is(r.network, 'lonet');
    assert.ok(['ADD', 'CHECK', 'DEL'].includes(r.command), r.command);
    assert.is(r.verdict, 'allow');
    assert.is(r.outcome, 'ok', `${r.call}: ${r.outcome}`);
    assert.type(r.ms, 'number');
    assert.ok(!Number.isNaN(Date.parse(r.time)), r.time);
  }
  const seq = (cmd: string) => recs.filter((r) => r.command === cmd).map((r) => r.call);
  // loopback's ADD: set lo up, list its v4 and v6 addresses; then the invocation itself
  assert.equal(seq('ADD'), ['links.set-up', 'addresses.list', 'addresses.list', 'invoke.add']);
  assert.equal(seq('CHECK'), ['links.get', 'invoke.check']);
  assert.equal(seq('DEL'), ['links.set-up', 'invoke.del']);
  const up = recs.find((r) => r.command === 'ADD' && r.call === 'links.set-up');
  assert.equal(up.args, { ns: 'container', name: 'lo', up: true });
  const down = recs.find((r) => r.command === 'DEL' && r.call === 'links.set-up');
  assert.equal(down.args, { ns: 'container', name: 'lo', up: false });
  const fams = recs.filter((r) => r.call === 'addresses.list').map((r) => r.args.family);
  assert.equal(fams, ['v4', 'v6']);
});

test.run();
