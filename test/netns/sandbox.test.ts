// The sandbox against hostile or broken third-party components. Needs root.
// Prefix: sb-. Components come from test/fixtures/guests, built by the real
// build and run through the real third-party flow (plugin dir, approve,
// sha256 pin, policy grants, a shim exec'd like a runtime does), inside a
// throwaway netns that plays the host.
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniCall, type CniReply, type Harness, ROOT, makeHarness, ours, readAudit, removeHarness, writePolicy } from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';
import {
  FIXTURES_SRC, approve, buildFixtures, cli, compileFixtureCore, componentPath, fixtureGrants, installThirdParty, pluginDir,
  placeComponent, witWithExtraImports, writeShim,
} from '../helpers/fixtures.js';
import { PackageError, memoryMaximum, packageComponent, writeTranspiled } from '../../host/sandbox/package.js';

const P = 'sb-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;
const TIMEOUT_MS = 500;

let h: Harness;
let work: string;
let built: string;
let digests: Record<string, string> = {};
let policyExtra: Record<string, unknown> = {};

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function add(type: string, over: Partial<CniCall> = {}): CniReply & { ms: number } {
  const t0 = Date.now();
  const r = ours(h, type, {
    command: 'ADD', hostNs: HOST, netns: CTR, containerId: `sb-${type}`, ifname: 'eth0',
    config: { cniVersion: '1.0.0', name: 'sbnet', type }, ...over,
  });
  return { ...r, ms: Date.now() - t0 };
}

/** stdout is exactly one JSON document, and no stack trace leaked into it. */
function oneJsonDocument(r: CniReply): any {
  const text = r.stdout.trim();
  assert.ok(text.length > 0, `stdout is empty (stderr: ${r.stderr})`);
  assert.not.match(text, /\n/, `stdout is more than one line: ${r.stdout}`);
  assert.not.match(r.stdout, /^\s+at /m, 'stack trace on stdout');
  assert.not.match(r.stdout, /\(file:\/\/|node:internal/, 'stack frames on stdout');
  const doc = JSON.parse(text);
  assert.type(doc, 'object');
  return doc;
}

function cniErrorOf(r: CniReply, code: number): { cniVersion: string; code: number; msg: string; details?: string } {
  const doc = oneJsonDocument(r);
  assert.is.not(r.code, 0, 'exit status must be non-zero on error');
  assert.is(doc.code, code, `${doc.msg} ${doc.details ?? ''}`);
  assert.type(doc.msg, 'string');
  return doc;
}

const hostLo = () => ipJson<any[]>(HOST, ['link', 'show', 'dev', 'lo'])[0];
const ipForward = () => nsExec(HOST, ['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.trim();

test.before(() => {
  try {
    cleanupAll(P);
    makeNetns(HOST);
    makeNetns(CTR);
    work = mkdtempSync(join(tmpdir(), 'sb-work-'));
    built = join(work, 'plugins');
    buildFixtures(built, ['spin', 'membomb', 'overreach']);
    h = makeHarness('sb-');
    policyExtra = { timeoutMs: TIMEOUT_MS };
    digests = installThirdParty(h, [
      { type: 'spin', component: componentPath(built, 'spin') },
      { type: 'membomb', component: componentPath(built, 'membomb') },
      { type: 'overreach', component: componentPath(built, 'overreach') },
      // the same component with host links granted: ownership must still stop it
      { type: 'overreach-host', component: componentPath(built, 'overreach'), grants: { links: { host: true, container: true } } },
    ], policyExtra);
  } catch (e) {
    console.error('sandbox test setup failed:', e); // uvu does not report a failing before hook
    throw e;
  }
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the flow

test('fixtures build and approve: digest printed by approve is the file sha256', () => {
  for (const t of ['spin', 'membomb', 'overreach']) {
    assert.is(digests[t], sha(join(pluginDir(h), `${t}.wasm`)), t);
    assert.ok(existsSync(join(h.stateDir, 'components', digests[t], 'manifest.json')), `${t} prepared in the digest-keyed cache`);
  }
  const m = JSON.parse(readFileSync(join(h.stateDir, 'components', digests.overreach, 'manifest.json'), 'utf8'));
  assert.is(m.bundled, false);
  assert.equal(m.grants, {}, 'third-party grants come from the policy only');
  assert.ok(m.maxMemoryPages > 0 && m.maxMemoryPages <= 16, `memory limit ${m.maxMemoryPages} pages`);
  assert.ok(m.imports.includes('links') && m.imports.includes('store'), m.imports.join(','));
});

// ---------------------------------------------------------------- limits

test('spin: stopped at the policy time limit with error 101; the process lives to say so', () => {
  const r = add('spin');
  const e = cniErrorOf(r, 101);
  assert.is(e.cniVersion, '1.0.0');
  assert.match(e.msg, /spin/);
  assert.match(e.msg, new RegExp(`${TIMEOUT_MS} ms`));
  // the whole exec: node start-up + load + the 500 ms limit
  assert.ok(r.ms >= TIMEOUT_MS, `returned after ${r.ms} ms, before the limit`);
  assert.ok(r.ms < TIMEOUT_MS + 4000, `took ${r.ms} ms`);
  const rec = readAudit(h).filter((x) => x.plugin === 'spin' && x.call === 'invoke.add');
  assert.is(rec.length, 1);
  assert.match(rec[0].outcome, /^error: CNI101 /);
  // one budget for the whole call: loading the policy, ledger and plugin come out of it
  assert.ok(rec[0].ms >= TIMEOUT_MS - 100 && rec[0].ms < TIMEOUT_MS + 500, `guest ran ${rec[0].ms} ms`);
  assert.is(rec[0].sha256, digests.spin);
});

test('spin: a shorter limit in the policy is honoured', () => {
  writePolicyWith({ timeoutMs: 200 });
  try {
    const r = add('spin', { containerId: 'sb-spin-200' });
    const e = cniErrorOf(r, 101);
    assert.match(e.msg, /200 ms/);
    const rec = readAudit(h).find((x) => x.containerId === 'sb-spin-200' && x.call === 'invoke.add');
    assert.ok(rec && rec.ms < 200 + 300, `guest ran ${rec?.ms} ms`);
  } finally {
    writePolicyWith({});
  }
});

test('membomb: running out of memory is a clean error 100, not a crash', () => {
  const r = add('membomb');
  const e = cniErrorOf(r, 100);
  assert.match(e.msg, /membomb/);
  assert.match(e.msg, /memory/);
  assert.not.match(r.stderr, /^\s+at /m, `stack trace on stderr: ${r.stderr}`);
  const rec = readAudit(h).filter((x) => x.plugin === 'membomb' && x.call === 'invoke.add');
  assert.is(rec.length, 1);
  assert.match(rec[0].outcome, /^error: CNI100 /);
});

// ---------------------------------------------------------------- capabilities

interface Report { calls: number; results: { call: string; code: string; message: string }[] }

function runOverreach(type: string, containerId: string): Report {
  const before = hostLo();
  const fwd = ipForward();
  const r = add(type, { containerId });
  const e = cniErrorOf(r, 150);
  assert.is(e.msg, 'overreach report');
  const report = JSON.parse(e.details!) as Report;
  // nothing changed on the (throwaway) host
  const after = hostLo();
  assert.ok(after, 'host lo still exists');
  assert.ok(after.flags.includes('UP'), `host lo still up: ${after.flags}`);
  assert.is(after.mtu, before.mtu, 'host lo mtu unchanged');
  assert.is(ipForward(), fwd, 'host ip_forward unchanged');
  assert.ok(!existsSync(join(h.storeDir, 'overreach')), 'no store was created');
  return report;
}

function checkAuditMatches(type: string, containerId: string, report: Report): any[] {
  const recs = readAudit(h).filter((x) => x.containerId === containerId);
  const calls = recs.filter((x) => !x.call.startsWith('invoke.'));
  // every host call the guest made is in the log, in order, and nothing else
  assert.is(calls.length, report.calls, 'one audit record per host call');
  assert.equal(calls.map((x) => x.call), report.results.map((x) => x.call));
  for (const x of recs) {
    assert.is(x.plugin, type);
    assert.is(x.sha256, digests.overreach);
    assert.is(x.command, 'ADD');
    assert.is(x.network, 'sbnet');
    assert.type(x.time, 'string');
    assert.type(x.ms, 'number');
  }
  report.results.forEach((res, i) => {
    const rec = calls[i];
    if (res.code === 'ok') {
      assert.is(rec.verdict, 'allow', rec.call);
      assert.is(rec.outcome, 'ok', rec.call);
    } else {
      assert.is(rec.verdict, 'deny', rec.call);
      assert.match(rec.outcome, /^error: EDENIED \S/, rec.call);
      // the reason in the log is the reason the guest was given
      assert.ok(res.message.endsWith(rec.outcome.slice('error: EDENIED '.length)), `${rec.call}: '${res.message}' vs '${rec.outcome}'`);
    }
  });
  assert.is(recs.filter((x) => x.call === 'invoke.add').length, 1);
  return calls;
}

test('overreach (links: container only): every forbidden call is EDENIED, the host is untouched', () => {
  const report = runOverreach('overreach', 'sb-over-1');
  const by = Object.fromEntries(report.results.map((x) => [x.call, x]));
  assert.is(report.calls, 11);
  assert.is(by['links.get'].code, 'ok', 'reading a container link is granted');
  for (const c of ['links.set-up', 'links.set-mtu', 'links.remove', 'links.begin-remove', 'links.finish-remove', 'links.join-bridge', 'store.open', 'sysctl.set', 'firewall.masquerade-add']) {
    assert.is(by[c].code, 'EDENIED', `${c}: ${by[c].message}`);
    assert.match(by[c].message, /denied: /);
  }
  assert.match(by['links.set-up'].message, /has no "links": \{"host": true\} grant/);
  assert.match(by['store.open'].message, /has no "store" grant/);
  assert.match(by['firewall.masquerade-add'].message, /has no "firewall" grant/);
  // delegate's error type is cni-error: the denial arrives as a CNI error
  assert.is(by['delegate.run'].code, 'CNI999');
  assert.match(by['delegate.run'].message, /denied: plugin 'overreach' has no "delegate" grant/);
  const calls = checkAuditMatches('overreach', 'sb-over-1', report);
  const setUp = calls.find((x) => x.call === 'links.set-up');
  assert.equal(setUp.args, { ns: 'host', name: 'lo', up: false }, 'arguments are recorded by WIT name');
  assert.is(calls.filter((x) => x.verdict === 'deny').length, 10);
});

test('overreach (links: host granted): a host link it did not create and the config does not name is still refused', () => {
  const report = runOverreach('overreach-host', 'sb-over-2');
  const by = Object.fromEntries(report.results.map((x) => [x.call, x]));
  for (const c of ['links.set-up', 'links.set-mtu', 'links.remove', 'links.begin-remove', 'links.finish-remove', 'links.join-bridge']) {
    assert.is(by[c].code, 'EDENIED', `${c}: ${by[c].message}`);
    assert.match(by[c].message, /host link 'lo' was not created by this attachment/);
  }
  checkAuditMatches('overreach-host', 'sb-over-2', report);
});

test('cni-wasm audit --denied prints the denied calls and only those', () => {
  const denied = readAudit(h).filter((x) => x.verdict === 'deny');
  assert.ok(denied.length >= 14, `${denied.length} denied records`);
  const r = cli(['audit', '--denied', '--file', h.auditLog]);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.is(lines.length, denied.length);
  for (const [i, l] of lines.entries()) {
    assert.match(l, / DENY /);
    assert.ok(l.includes(denied[i].call), `${l} names ${denied[i].call}`);
    assert.match(l, /EDENIED/);
  }
  assert.ok(lines.some((l) => l.includes('links.set-up') && l.includes('has no "links": {"host": true} grant')));
  const j = cli(['audit', '--denied', '--json', '--container', 'sb-over-1', '--file', h.auditLog]);
  assert.is(j.status, 0, j.stderr);
  const recs = j.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.is(recs.length, 10);
  assert.ok(recs.every((x) => x.verdict === 'deny' && x.containerId === 'sb-over-1'));
  // the policy's audit log is the default file
  const viaPolicy = cli(['--policy', h.policyFile, 'audit', '--denied']);
  assert.is(viaPolicy.status, 0, viaPolicy.stderr);
  assert.is(viaPolicy.stdout, r.stdout);
});

// ---------------------------------------------------------------- pinning

function writePolicyWith(extra: Record<string, unknown>, plugins: Record<string, unknown> = {}): void {
  const base: Record<string, unknown> = {};
  for (const t of ['spin', 'membomb', 'overreach']) base[t] = { sha256: digests[t], grants: fixtureGrants(t) };
  base['overreach-host'] = { sha256: digests.overreach, grants: { links: { host: true, container: true } } };
  writePolicy(h, { pluginDirs: [pluginDir(h)], ...policyExtra, ...extra, plugins: { ...base, ...plugins } });
}

test('an unpinned component is refused with 102 and the sha256 to pin', () => {
  const wasm = placeComponent(h, componentPath(built, 'spin'), 'unpinned');
  writeShim(h, 'unpinned');
  const r = add('unpinned');
  const e = cniErrorOf(r, 102);
  assert.match(e.msg, /not approved/);
  assert.ok(e.msg.includes(sha(wasm)), `message names the digest: ${e.msg}`);
  assert.ok(e.msg.includes(wasm));
  const recsunpinned = readAudit(h).filter((x) => x.plugin === 'unpinned');
  assert.equal(recsunpinned.map((x) => [x.call, x.verdict]), [['invoke.load', 'deny']], 'it never ran; the refusal is audited');
});

test('a component whose sha256 differs from the pin is refused with 102', () => {
  const wasm = placeComponent(h, componentPath(built, 'overreach'), 'wrongpin');
  writeShim(h, 'wrongpin');
  const pinned = digests.spin; // approved, but not this file
  writePolicyWith({}, { wrongpin: { sha256: pinned, grants: { links: { host: true, container: true } } } });
  try {
    const r = add('wrongpin');
    const e = cniErrorOf(r, 102);
    assert.ok(e.msg.includes(sha(wasm)), e.msg);
    assert.ok(e.msg.includes(pinned), e.msg);
    assert.match(e.msg, /refusing/);
    const recswrongpin = readAudit(h).filter((x) => x.plugin === 'wrongpin');
  assert.equal(recswrongpin.map((x) => [x.call, x.verdict]), [['invoke.load', 'deny']], 'it never ran; the refusal is audited');
    assert.ok(hostLo().flags.includes('UP'));
  } finally {
    writePolicyWith({});
  }
});

test('a component replaced after approval (same name, new bytes) is refused', () => {
  // approve spin under a new name, then swap in different bytes
  const wasm = placeComponent(h, componentPath(built, 'spin'), 'swapped');
  writeShim(h, 'swapped');
  const a = approve(h, wasm);
  assert.is(a.status, 0, a.stderr);
  writePolicyWith({}, { swapped: { sha256: a.sha256, grants: {} } });
  try {
    copyFileSync(componentPath(built, 'overreach'), wasm);
    const e = cniErrorOf(add('swapped'), 102);
    assert.ok(e.msg.includes(a.sha256!), e.msg);
  } finally {
    writePolicyWith({});
  }
});

test('a pinned component that was never approved is refused with 102 and told to run approve', () => {
  const wasm = placeComponent(h, componentPath(built, 'membomb'), 'unprepared');
  // a custom section at the end: a valid component with a digest never approved
  const name = Buffer.from('sb-test');
  const payload = Buffer.concat([Buffer.from([name.length]), name, Buffer.from('not approved')]);
  appendFileSync(wasm, Buffer.concat([Buffer.from([0, payload.length]), payload]));
  const digest = sha(wasm);
  assert.is.not(digest, digests.membomb);
  writeShim(h, 'unprepared');
  writePolicyWith({}, { unprepared: { sha256: digest, grants: {} } });
  try {
    const e = cniErrorOf(add('unprepared'), 102);
    assert.match(e.msg, /not prepared/);
    assert.match(e.msg, /cni-wasm approve/);
  } finally {
    writePolicyWith({});
  }
});

// ---------------------------------------------------------------- refused at approval

test('a component importing an interface the host does not provide is refused, naming it', async () => {
  const dir = join(work, 'unknown-import');
  const core = compileFixtureCore('unknown-import', join(work, 'unknown-import.core.wasm'), 16);
  const wit = witWithExtraImports(readFileSync(join(FIXTURES_SRC, 'unknown-import/raw-socket.wit'), 'utf8'), ['raw-socket']);
  const component = await packageComponent(core, wit);
  let err: unknown;
  try {
    await writeTranspiled(component, 'unknown-import', dir, { bundled: false, grants: {} });
  } catch (e) {
    err = e;
  }
  assert.instance(err, PackageError);
  assert.match((err as Error).message, /cni-wasm:plugin\/raw-socket/);
  assert.match((err as Error).message, /does not provide/);
  assert.not.ok(existsSync(join(dir, 'manifest.json')), 'nothing was written');

  // the operator's path: cni-wasm approve
  const file = join(pluginDir(h), 'unknown-import.wasm');
  writeFileSync(file, component);
  const r = approve(h, file);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /refused/);
  assert.match(r.stderr, /raw-socket/);
  assert.not.ok(existsSync(join(h.stateDir, 'components', sha(file), 'manifest.json')), 'not prepared');

  // and pinned anyway, it still cannot run
  writeShim(h, 'unknown-import');
  writePolicyWith({}, { 'unknown-import': { sha256: sha(file), grants: {} } });
  try {
    const e = cniErrorOf(add('unknown-import'), 102);
    assert.match(e.msg, /not prepared/);
  } finally {
    writePolicyWith({});
  }
});

test('a component whose memory has no maximum is refused', async () => {
  const core = compileFixtureCore('nomax', join(work, 'nomax.core.wasm'), null);
  assert.is(memoryMaximum(core), 'unbounded');
  const realWit = readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8');
  const component = await packageComponent(core, realWit);
  let err: unknown;
  try {
    await writeTranspiled(component, 'nomax', join(work, 'nomax'), { bundled: false, grants: {} });
  } catch (e) {
    err = e;
  }
  assert.instance(err, PackageError);
  assert.match((err as Error).message, /no maximum/);

  const file = join(pluginDir(h), 'nomax.wasm');
  writeFileSync(file, component);
  const r = approve(h, file);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /refused: .*no maximum/);
});

test('a component asking for more memory than the host allows is refused', async () => {
  const core = compileFixtureCore('nomax', join(work, 'big.core.wasm'), 2048);
  assert.is(memoryMaximum(core), 2048);
  const component = await packageComponent(core, readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8'));
  let err: unknown;
  try {
    await writeTranspiled(component, 'big', join(work, 'big'), { bundled: false, grants: {} });
  } catch (e) {
    err = e;
  }
  assert.instance(err, PackageError);
  assert.match((err as Error).message, /2048 pages/);
  // and the same core with a sane limit is accepted
  const ok = compileFixtureCore('nomax', join(work, 'ok.core.wasm'), 16);
  const m = await writeTranspiled(await packageComponent(ok, readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8')), 'ok', join(work, 'ok'), { bundled: false, grants: {} });
  assert.is(m.maxMemoryPages, 16);
});

test.run();
