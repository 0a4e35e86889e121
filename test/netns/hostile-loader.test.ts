// Class 8 of issue 7, loader and cache integrity, and class 2 for component
// files: the transpiled cache is checked against the digests recorded at
// approval before any of its JS runs; a cache pre-seeded by someone else is
// refused, and approval never trusts what was there; imports are compared
// by full signature; a plugin-dir file may not squat a bundled type or shadow
// an allowExec binary; a component file that is a FIFO, a directory, a
// symlink or huge is refused at once. Needs root. Prefix: hs-c-.
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniReply, type Harness, ROOT, ours, readAudit, writePolicy } from '../helpers/cni.js';
import { ipJson } from '../helpers/netns.js';
import { type FixtureSetup, setUpFixtures, tearDownFixtures, approve, compileFixtureCore, componentPath, fixtureGrants, pluginDir, placeComponent, writeShim } from '../helpers/fixtures.js';
import { packageComponent } from '../../host/sandbox/package.js';

const P = 'hs-c-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;

let h: Harness;
let work: string;
let built: string;
let digest = '';
let marker = '';
let fx: FixtureSetup | undefined;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const wit = () => readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8');

function add(type: string, containerId: string, config: Record<string, unknown> = {}): CniReply {
  return ours(h, type, {
    command: 'ADD', hostNs: HOST, netns: CTR, containerId, ifname: 'eth0',
    config: { cniVersion: '1.0.0', name: 'hsnet', type, ...config },
  });
}

function refused(r: CniReply, re: RegExp, code = 102): any {
  assert.ok(r.json, `one JSON document: ${r.stdout} ${r.stderr}`);
  assert.is(r.json.code, code, `${r.json.msg} ${r.json.details ?? ''}`);
  assert.match(r.json.msg, re);
  assert.not.match(r.stdout, /^\s+at /m);
  return r.json;
}

const loadRefusals = (type: string) => readAudit(h).filter((x) => x.plugin === type && x.call === 'invoke.load');
const hostLinks = () => ipJson<any[]>(HOST, ['link', 'show']).map((l) => `${l.ifname}:${l.mtu}:${l.flags}`).join(',');
const basePlugins = () => ({ overreach: { sha256: digest, grants: fixtureGrants('overreach') } });
function policy(extra: Record<string, unknown> = {}, plugins: Record<string, unknown> = {}): void {
  writePolicy(h, { pluginDirs: [pluginDir(h)], ...extra, plugins: { ...basePlugins(), ...plugins } });
}

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['overreach']);
    ({ h, work, built } = fx);
    marker = join(work, 'pwned');
    digest = fx.digests.overreach;
  } catch (e) {
    console.error('hostile-loader setup failed:', e);
    throw e;
  }
});

test.after(() => tearDownFixtures(P, fx));

const cacheDir = () => join(h.stateDir, 'components', digest);

test('approve writes a root-only cache with every file\'s digest, and prints the grants the imports need', () => {
  const st = statSync(cacheDir());
  assert.is(st.mode & 0o777, 0o700);
  assert.is(statSync(join(h.stateDir, 'components')).mode & 0o777, 0o700);
  const m = JSON.parse(readFileSync(join(cacheDir(), 'manifest.json'), 'utf8'));
  for (const f of readdirSync(cacheDir()).filter((x) => x !== 'manifest.json')) {
    assert.is(m.files[f], sha(readFileSync(join(cacheDir(), f))), f);
    assert.is(statSync(join(cacheDir(), f)).mode & 0o777, 0o600, f);
  }
  assert.ok(m.files['plugin.cjs'] && m.files['plugin.core.wasm']);
  const r = approve(h, join(pluginDir(h), 'overreach.wasm'));
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  assert.equal(doc.overreach.grants.links, { container: true });
  assert.equal(doc.overreach.grants.store, { dirs: [h.storeDir] });
  assert.equal(doc.overreach.grants.delegate, { types: [] });
  assert.is(doc.overreach.grants.log, true);
  // and it runs
  const ok = add('overreach', 'hs-c-ok');
  assert.is(ok.json?.code, 150, ok.stdout);
  assert.not.ok(existsSync(join(cacheDir(), 'plugin.cjs.v8cache')), 'no V8 code cache for third-party glue');
});

test('a tampered glue in the cache is refused before it runs: nothing it would do happens', () => {
  const glue = join(cacheDir(), 'plugin.cjs');
  const saved = readFileSync(glue);
  appendFileSync(glue, `\nrequire('fs').writeFileSync(${JSON.stringify(marker)}, 'ran as root');\n`);
  try {
    const before = hostLinks();
    const e = refused(add('overreach', 'hs-c-tamper'), /plugin\.cjs does not match the digest recorded when it was approved/);
    assert.match(e.msg, /cni-wasm approve/);
    assert.not.ok(existsSync(marker), 'the planted code never ran');
    assert.is(hostLinks(), before);
    const recs = readAudit(h).filter((x) => x.containerId === 'hs-c-tamper');
    assert.equal(recs.map((x) => [x.call, x.verdict]), [['invoke.load', 'deny']]);
    assert.match(recs[0].outcome, /does not match the digest/);
    assert.is(recs[0].sha256, digest, 'the load refusal names the component');
  } finally {
    writeFileSync(glue, saved);
  }
});

test('a tampered core module in the cache is refused', () => {
  const core = join(cacheDir(), 'plugin.core.wasm');
  const saved = readFileSync(core);
  const bad = Buffer.from(saved);
  bad[bad.length - 1] ^= 1;
  writeFileSync(core, bad);
  try {
    refused(add('overreach', 'hs-c-core'), /plugin\.core\.wasm does not match the digest/);
  } finally {
    writeFileSync(core, saved);
  }
});

test('a cache pre-seeded with a consistent manifest by another user, or left writable, is refused; approve replaces it', () => {
  // the attacker's cache for a digest the operator is about to pin: its own
  // JS, a manifest listing that JS's digest
  const wasm = placeComponent(h, componentPath(built, 'overreach'), 'seeded');
  appendFileSync(wasm, Buffer.from([0, 8, 7, ...Buffer.from('hs-seed')]));
  const d = sha(readFileSync(wasm));
  const dir = join(h.stateDir, 'components', d);
  cpSync(cacheDir(), dir, { recursive: true });
  const evil = readFileSync(join(dir, 'plugin.cjs'), 'utf8') + `\nrequire('fs').writeFileSync(${JSON.stringify(marker)}, 'seeded');\n`;
  writeFileSync(join(dir, 'plugin.cjs'), evil);
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  m.sha256 = d;
  m.files['plugin.cjs'] = sha(Buffer.from(evil));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
  writeShim(h, 'seeded');
  policy({}, { seeded: { sha256: d, grants: {} } });
  try {
    chownSync(dir, 65534, 65534);
    refused(add('seeded', 'hs-c-seed1'), /owned by uid 65534, not by this host/);
    chownSync(dir, 0, 0);
    chmodSync(dir, 0o777);
    refused(add('seeded', 'hs-c-seed2'), /writable by group or others/);
    chmodSync(dir, 0o700);
    chownSync(join(dir, 'plugin.cjs'), 65534, 65534);
    refused(add('seeded', 'hs-c-seed3'), /owned by uid 65534/);
    assert.not.ok(existsSync(marker), 'the seeded code never ran');
    // approval rebuilds the cache from the component: the seeded JS is gone
    const a = approve(h, wasm);
    assert.is(a.status, 0, a.stderr);
    assert.not.match(readFileSync(join(dir, 'plugin.cjs'), 'utf8'), /seeded/);
    assert.is(add('seeded', 'hs-c-seed4').json?.code, 150);
    assert.not.ok(existsSync(marker));
  } finally {
    policy();
  }
});

async function confusedComponent(name: string, edit: (wit: string) => string): Promise<string> {
  const core = compileFixtureCore('overreach', join(work, `${name}.core.wasm`), 16);
  const file = join(pluginDir(h), `${name}.wasm`);
  writeFileSync(file, await packageComponent(core, edit(wit())));
  return file;
}

test('imports are compared by full signature: swapped enum cases, a changed parameter type, u32 made s32 are refused', async () => {
  // the same core ABI (so the component is valid), other meaning
  const swapped = await confusedComponent('hs-swapped', (w) => w.replace('enum netns { host, container }', 'enum netns { container, host }'));
  const a = approve(h, swapped);
  assert.is.not(a.status, 0, a.stdout);
  assert.match(a.stderr, /refused: component 'hs-swapped': its import of cni-wasm:plugin\/types does not match the host's WIT: 'export type Netns = 'container' \| 'host';'/);
  const retyped = await confusedComponent('hs-retyped', (w) => w.replace('  remove: func(ns: netns, name: string) -> result<_, host-error>;', '  remove: func(ns: netns, name: list<u8>) -> result<_, host-error>;'));
  const b = approve(h, retyped);
  assert.is.not(b.status, 0, b.stdout);
  assert.match(b.stderr, /its import of cni-wasm:plugin\/links does not match the host's WIT: 'export function remove\(ns: Netns, name: Uint8Array\): void;'/);
  // u32 -> s32: the same core ABI and the same typings (`number`); only the component's type section tells
  const signed = await confusedComponent('hs-signed', (w) => w.replace('  set-mtu: func(ns: netns, name: string, mtu: u32) -> result<_, host-error>;', '  set-mtu: func(ns: netns, name: string, mtu: s32) -> result<_, host-error>;'));
  const c = approve(h, signed);
  assert.is.not(c.status, 0, c.stdout);
  assert.match(c.stderr, /its import cni-wasm:plugin\/links@0\.1\.0 function 'set-mtu' has the type func\(ns:enum\{host,container\},name:string,mtu:s32\)->result<_,record\{code:string,message:string\}>, but the host's WIT declares func\(ns:enum\{host,container\},name:string,mtu:u32\)/);
  for (const f of [swapped, retyped, signed]) assert.not.ok(existsSync(join(h.stateDir, 'components', sha(readFileSync(f)))), 'nothing prepared');
});

test('a plugin-dir file named like a bundled type is refused, at approval and at run time', () => {
  const wasm = placeComponent(h, componentPath(built, 'overreach'), 'bridge');
  try {
    const a = approve(h, wasm);
    assert.is.not(a.status, 0);
    assert.match(a.stderr, /'bridge' is the type of a bundled plugin/);
    const before = hostLinks();
    const e = refused(ours(h, 'bridge', {
      command: 'ADD', hostNs: HOST, netns: CTR, containerId: 'hs-c-squat', config: { cniVersion: '1.0.0', name: 'hsnet', type: 'bridge', bridge: 'hsbr0' },
    }), /named like the bundled plugin 'bridge'/);
    assert.ok(e.msg.includes(wasm));
    assert.is(hostLinks(), before, 'the bundled bridge did not run either');
    assert.is(loadRefusals('bridge').length, 1);
    assert.is(loadRefusals('bridge')[0].sha256, sha(readFileSync(wasm)), 'the refusal names the squatting file\'s digest');
  } finally {
    rmSync(wasm);
  }
});

test('an unpinned component that would shadow an allowExec binary is refused, directly and when delegated to', () => {
  const wasm = placeComponent(h, componentPath(built, 'overreach'), 'hs-exec');
  writeShim(h, 'hs-exec');
  policy({ allowExec: ['hs-exec'] });
  try {
    refused(add('hs-exec', 'hs-c-shadow1'), /would shadow the 'hs-exec' binary the policy allows to run \(allowExec\), and it is not pinned/);
    assert.is(loadRefusals('hs-exec')[0]?.sha256, sha(readFileSync(wasm)));
    // through delegation: bridge asks for IPAM type hs-exec
    const r = ours(h, 'bridge', {
      command: 'ADD', hostNs: HOST, netns: CTR, containerId: 'hs-c-shadow2',
      config: { cniVersion: '1.0.0', name: 'hsnet', type: 'bridge', bridge: 'hsbr1', ipam: { type: 'hs-exec' } },
    });
    assert.ok(r.json && r.json.code !== 0 && /would shadow the 'hs-exec' binary/.test(r.json.msg), r.stdout);
    assert.not.ok(ipJson<any[]>(HOST, ['link', 'show']).some((l) => l.ifname === 'hsbr1'), 'bridge undid its work');
  } finally {
    rmSync(wasm);
    policy();
  }
});

test('component files that are a FIFO, a directory, a symlink out or huge are refused at once', () => {
  const dir = pluginDir(h);
  const fifo = join(dir, 'hs-fifo.wasm');
  execFileSync('mkfifo', [fifo]);
  mkdirSync(join(dir, 'hs-dir.wasm'));
  symlinkSync(join(pluginDir(h), 'overreach.wasm'), join(dir, 'hs-link.wasm'));
  const huge = join(dir, 'hs-huge.wasm');
  writeFileSync(huge, '');
  truncateSync(huge, 4 * 1024 * 1024 * 1024);
  const types = ['hs-fifo', 'hs-dir', 'hs-link', 'hs-huge'];
  for (const t of types) writeShim(h, t);
  policy({}, Object.fromEntries(types.map((t) => [t, { sha256: digest, grants: {} }])));
  try {
    for (const [t, re] of [
      ['hs-fifo', /hs-fifo\.wasm is not a regular file \(a FIFO\)/],
      ['hs-dir', /hs-dir\.wasm is not a regular file \(a directory\)/],
      ['hs-link', /hs-link\.wasm is a symbolic link; a component in a plugin dir must be a regular file/],
      ['hs-huge', /hs-huge\.wasm is 4294967296 bytes; the limit is 33554432/],
    ] as const) {
      const t0 = Date.now();
      refused(add(t, `hs-c-${t}`), re);
      assert.ok(Date.now() - t0 < 5000, `${t}: ${Date.now() - t0} ms`);
      assert.is(loadRefusals(t).length, 1, `${t} refusal audited`);
    }
    const a = approve(h, fifo);
    assert.is.not(a.status, 0);
    assert.match(a.stderr, /is a FIFO, not a regular file/);
  } finally {
    for (const f of [fifo, huge, join(dir, 'hs-link.wasm')]) rmSync(f, { force: true });
    rmSync(join(dir, 'hs-dir.wasm'), { recursive: true, force: true });
    policy();
  }
});

test.run();
