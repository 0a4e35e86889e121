// Class 1 of issue 7, resource limits beyond linear memory: components that
// declare too many or too large tables or too many globals are refused at
// approval and at load, naming the limit; host calls whose arguments would
// make the host materialise far more than the guest's memory (a 20M-character
// string, one string referenced 200 000 times in a list, two million empty
// strings), an oversized result, a log flood and a call flood are refused
// before any work, audited, and leave the host as it was. Needs root.
// Prefix: hs-l-.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniReply, type Harness, ROOT, ours, readAudit, writePolicy } from '../helpers/cni.js';
import { ipJson, netnsPath } from '../helpers/netns.js';
import {
  type FixtureSetup, approve, cli, compileFixtureCore, fixtureGrants, pluginDir, placeComponent, writeShim, setUpFixtures, tearDownFixtures,
} from '../helpers/fixtures.js';
import { packageComponent } from '../../host/sandbox/package.js';
import { LIMITS } from '../../host/sandbox/limits.js';
import { MAX_LIFT_CALL_BYTES, MAX_LIFT_STRING_BYTES, MAX_LOG_CHARS, MAX_RESULT_CHARS } from '../../host/sandbox/sandbox.js';
import { AUDIT_QUOTA, AUDIT_RESERVE } from '../../host/gate/audit.js';
import { addGlobals, addTables } from '../helpers/wasm.js';

const P = 'hs-l-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;

let h: Harness;
let work: string;
let built: string;
let digest = '';
let fx: FixtureSetup | undefined;
const wit = () => readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Report { calls: number; results: { call: string; code: string; message: string }[] }

function bomb(mode: string): CniReply & { ms: number; maxRssKiB: number } {
  // like ours(), with /usr/bin/time around the shim to learn the peak memory
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `hs-l-${mode}`,
    CNI_NETNS: netnsPath(CTR), CNI_IFNAME: mode, CNI_PATH: h.bin,
  };
  const t0 = Date.now();
  const r = spawnSync('ip', ['netns', 'exec', HOST, '/usr/bin/time', '-f', 'maxrss=%M', join(h.bin, 'liftbomb')], {
    input: JSON.stringify({ cniVersion: '1.0.0', name: 'hsnet', type: 'liftbomb' }), env, encoding: 'utf8', timeout: 60_000,
  });
  const ms = Date.now() - t0;
  const maxRssKiB = Number(/maxrss=(\d+)/.exec(r.stderr)?.[1] ?? -1);
  let json: any;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json, ms, maxRssKiB };
}

function report(r: CniReply): Report {
  assert.ok(r.json, `one JSON document on stdout: ${r.stdout} ${r.stderr}`);
  assert.is(r.json.code, 150, `${r.json.msg} ${r.json.details ?? ''}`);
  return JSON.parse(r.json.details) as Report;
}

const records = (cid: string) => readAudit(h).filter((x) => x.containerId === cid);
const hostLinks = () => ipJson<any[]>(HOST, ['link', 'show']).map((l) => `${l.ifname}:${l.mtu}:${l.flags}`).join(',');

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['liftbomb']);
    ({ h, work, built } = fx);
    digest = fx.digests.liftbomb;
  } catch (e) {
    console.error('hostile-limits setup failed:', e);
    throw e;
  }
});

test.after(() => tearDownFixtures(P, fx));

// ---------------------------------------------------------------- declarations

async function bombComponent(name: string, alter: (core: Uint8Array) => Uint8Array): Promise<string> {
  const core = compileFixtureCore('nomax', join(work, `${name}.core.wasm`), 16);
  const component = await packageComponent(alter(core), wit());
  const file = join(pluginDir(h), `${name}.wasm`);
  writeFileSync(file, component);
  return file;
}

for (const [name, alter, re] of [
  ['hs-tables', (c: Uint8Array) => addTables(c, 64, 1, 1), new RegExp(`declares 6\\d tables; the limit is ${LIMITS.tables}`)],
  ['hs-hugetable', (c: Uint8Array) => addTables(c, 1, 1, 5_000_000), new RegExp(`table of 5000000 entries; the limit is ${LIMITS.tableEntries}`)],
  ['hs-tablenomax', (c: Uint8Array) => addTables(c, 1, 1, null), /table with no maximum size/],
  ['hs-globals', (c: Uint8Array) => addGlobals(c, 100_000), new RegExp(`declares 1000\\d\\d globals; the limit is ${LIMITS.globals}`)],
] as const) {
  test(`${name}: refused at approval, naming the limit; pinned anyway it never runs`, async () => {
    const file = await bombComponent(name, alter);
    const r = approve(h, file);
    assert.is.not(r.status, 0, r.stdout);
    assert.match(r.stderr, /^refused: component /);
    assert.match(r.stderr, re);
    const d = sha(readFileSync(file));
    assert.not.ok(existsSync(join(h.stateDir, 'components', d)), 'nothing prepared');
    writeShim(h, name);
    writePolicy(h, { pluginDirs: [pluginDir(h)], plugins: { liftbomb: { sha256: digest, grants: fixtureGrants('liftbomb') }, [name]: { sha256: d, grants: {} } } });
    const before = hostLinks();
    const run = ours(h, name, { command: 'ADD', hostNs: HOST, netns: CTR, containerId: `hs-l-${name}`, config: { cniVersion: '1.0.0', name: 'hsnet', type: name } });
    assert.is(run.json?.code, 102, run.stdout);
    assert.match(run.json.msg, /not prepared/);
    const recs = records(`hs-l-${name}`);
    assert.equal(recs.map((x) => [x.call, x.verdict]), [['invoke.load', 'deny']], 'the refusal is audited');
    assert.is(hostLinks(), before, 'nothing changed on the host');
  });
}

test('limits are checked at load too: a prepared core module swapped for a table bomb is refused, naming the limit', async () => {
  // the cache of an approved component, as an older or buggy approve might
  // have left it: its manifest lists the bomb's digest, so only the limit check stops it
  const core = addTables(compileFixtureCore('nomax', join(work, 'load.core.wasm'), 16), 1, 1, 5_000_000);
  const dir = join(h.stateDir, 'components', digest);
  const manifestFile = join(dir, 'manifest.json');
  const saved = readFileSync(manifestFile);
  const savedCore = readFileSync(join(dir, 'plugin.core.wasm'));
  const m = JSON.parse(saved.toString());
  m.files['plugin.core.wasm'] = sha(core);
  writeFileSync(join(dir, 'plugin.core.wasm'), core);
  writeFileSync(manifestFile, JSON.stringify(m));
  try {
    const r = bomb('lo');
    assert.is(r.json?.code, 102, r.stdout);
    assert.match(r.json.msg, new RegExp(`plugin 'liftbomb' \\(plugin.core.wasm\\) declares a table of 5000000 entries; the limit is ${LIMITS.tableEntries}`));
  } finally {
    writeFileSync(join(dir, 'plugin.core.wasm'), savedCore);
    writeFileSync(manifestFile, saved);
  }
});

// ---------------------------------------------------------------- arguments

function checkDenyRecord(cid: string, call: string, code: string, re: RegExp): any {
  const rec = records(cid).find((x) => x.call === call && x.verdict === 'deny');
  assert.ok(rec, `${call} refusal audited (${JSON.stringify(records(cid).map((x) => x.call))})`);
  assert.is(rec.sha256, digest, 'the record names the component');
  assert.match(rec.outcome, new RegExp(`^error: ${code} `));
  assert.match(rec.outcome, re);
  assert.ok(JSON.stringify(rec.args).length < 4096, `arguments shortened in the record: ${JSON.stringify(rec.args).length} chars`);
  return rec;
}

test('a 20M-character argument is refused before the glue copies it: E2BIG, audited, the host stays small', () => {
  const before = hostLinks();
  const r = bomb('huge');
  const rep = report(r);
  const by = rep.results;
  assert.is(by[0].call, 'links.get');
  assert.is(by[0].code, 'E2BIG', by[0].message);
  assert.match(by[0].message, new RegExp(`40000000 bytes in guest memory; the limit is ${MAX_LIFT_STRING_BYTES}`));
  assert.is(by[2].code, 'ok', 'later calls within bounds still work');
  checkDenyRecord('hs-l-huge', 'links.get', 'E2BIG', /string of 40000000 bytes/);
  checkDenyRecord('hs-l-huge', 'log.write', 'E2BIG', /string of 40000000 bytes/);
  assert.ok(statSync(h.auditLog).size < 1024 * 1024, `audit log ${statSync(h.auditLog).size} bytes`);
  assert.is(hostLinks(), before);
  console.log(`    huge: ${r.ms} ms, peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
  assert.ok(r.maxRssKiB > 0 && r.maxRssKiB < 400 * 1024, `peak RSS ${r.maxRssKiB} KiB`);
});

test('one string referenced 200 000 times in a list (26 GB if copied) is refused: E2BIG, audited', () => {
  const r = bomb('repeat');
  const rep = report(r);
  assert.is(rep.results[0].call, 'store.find');
  assert.is(rep.results[0].code, 'E2BIG', rep.results[0].message);
  assert.match(rep.results[0].message, new RegExp(`totalling more than ${MAX_LIFT_CALL_BYTES} bytes`));
  checkDenyRecord('hs-l-repeat', 'store.find', 'E2BIG', /totalling more than/);
  console.log(`    repeat: ${r.ms} ms, peak RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB`);
  assert.ok(r.maxRssKiB > 0 && r.maxRssKiB < 400 * 1024, `peak RSS ${r.maxRssKiB} KiB`);
});

test('two million empty strings in a list are refused too (each string counts)', () => {
  const r = bomb('empty');
  const rep = report(r);
  assert.is(rep.results[0].code, 'E2BIG', rep.results[0].message);
  checkDenyRecord('hs-l-empty', 'store.find', 'E2BIG', /count at least 32 bytes each|list items per call/);
  assert.ok(r.maxRssKiB < 400 * 1024, `peak RSS ${r.maxRssKiB} KiB`);
});

test('an oversized result is refused with a clear error 100 and audited', () => {
  const r = bomb('result');
  assert.is(r.json?.code, 100, r.stdout);
  assert.match(r.json.msg, new RegExp(`returned a result of 3000\\d\\d characters; the limit is ${MAX_RESULT_CHARS}`));
  const inv = records('hs-l-result').find((x) => x.call === 'invoke.add');
  assert.ok(inv && /^error: CNI100 /.test(inv.outcome), JSON.stringify(inv));
  assert.is(inv.sha256, digest);
  assert.ok(r.stdout.length < 2000, 'the result is not echoed');
});

test('a log flood stops at the per-invocation log quota; every later call is refused (fail closed)', () => {
  const r = bomb('logflood');
  const rep = report(r);
  assert.is(rep.results[0].call, 'links.get');
  assert.is(rep.results[0].code, 'EQUOTA', rep.results[0].message);
  const recs = records('hs-l-logflood');
  const logs = recs.filter((x) => x.call === 'log.write');
  const allowed = logs.filter((x) => x.verdict === 'allow').length;
  assert.is(allowed, Math.floor(MAX_LOG_CHARS / 4096), `${allowed} log messages got through`);
  const refusals = recs.filter((x) => /^error: EQUOTA/.test(x.outcome));
  assert.is(refusals.length, 1, 'one refusal recorded, then every call refused unrecorded');
  assert.match(refusals[0].outcome, /more than 262144 characters of log messages/);
  assert.is(recs.filter((x) => x.call === 'links.get').length, 0, 'the call after the flood never reached the gate');
});

test('a call flood stops at the audit quota; the refusal and the invocation are still recorded', () => {
  const r = bomb('callflood');
  const rep = report(r);
  assert.is(rep.calls, 5000);
  const recs = records('hs-l-callflood');
  const gets = recs.filter((x) => x.call === 'links.get');
  assert.is(gets.filter((x) => x.verdict === 'allow').length, AUDIT_QUOTA.records, 'calls up to the quota ran, each recorded');
  const refusals = gets.filter((x) => x.verdict === 'deny');
  assert.is(refusals.length, 1);
  assert.match(refusals[0].outcome, /^error: EQUOTA .*audit quota/);
  assert.is(recs.filter((x) => x.call === 'invoke.add').length, 1, 'the invocation record fits in the reserve');
  console.log(`    callflood: ${r.ms} ms for 5000 calls`);
});

test('refusals count against the quota too: 5000 oversized calls end in one EQUOTA, the log stays bounded', () => {
  const before = statSync(h.auditLog).size;
  const r = bomb('bigflood');
  const rep = report(r);
  assert.is(rep.calls, 5000);
  assert.is(rep.results[0].code, 'E2BIG', rep.results[0].message);
  assert.match(rep.results[0].message, /a string of 18000000 bytes in guest memory/);
  const recs = records('hs-l-bigflood');
  const quota = recs.filter((x) => /^error: EQUOTA/.test(x.outcome));
  assert.is(quota.length, 1, 'one quota refusal');
  const grew = statSync(h.auditLog).size - before;
  assert.ok(grew <= AUDIT_QUOTA.bytes + AUDIT_RESERVE.bytes, `audit log grew ${grew} bytes`);
  assert.is(recs.filter((x) => x.call === 'invoke.add').length, 1);
});

test('forged lines and terminal escapes from a plugin are escaped by cni-wasm audit, one record per line', () => {
  const r = bomb('forge');
  report(r);
  const recs = records('hs-l-forge');
  const a = cli(['audit', '--file', h.auditLog, '--container', 'hs-l-forge']);
  assert.is(a.status, 0, a.stderr);
  const lines = a.stdout.split('\n').filter(Boolean);
  assert.is(lines.length, recs.length, 'one line per record');
  assert.not.match(a.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no raw control characters');
  assert.ok(lines.every((l) => l.startsWith('20') && l.includes(digest.slice(0, 12))), 'every line is a record, with the digest');
  assert.ok(lines.some((l) => l.includes('\\n{\\"time\\"') || l.includes('\\n{"time"')), 'the forged line stays inside its record');
  assert.ok(lines.some((l) => l.includes('\\x1b[2J')), 'escape sequences are shown, not sent');
  // the shim's policy is found without --policy (install wrote it into the shim)
  const viaShims = cli(['audit', '--bin-dir', h.bin, '--container', 'hs-l-forge'], { env: { ...process.env, CNI_WASM_POLICY: '' } });
  assert.is(viaShims.status, 0, viaShims.stderr);
  assert.is(viaShims.stdout, a.stdout);
});

test.run();
