// The command line as runtimes and operators meet it: CNI protocol errors
// through an installed shim (stdout is always exactly one JSON document, never
// a stack trace), and the operator subcommands. Needs no root: every call
// here fails or finishes before touching a network namespace. Temp dirs: cl-.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, ROOT, type Harness, makeHarness, removeHarness } from '../helpers/cni.js';
import { cli } from '../helpers/fixtures.js';

const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

let h: Harness;
let tmp: string;
let manifest: { sha256: string; imports: string[]; type: string };

interface Reply { status: number | null; stdout: string; stderr: string; json: any }

/** Execs `file` (a shim) as a runtime would, with exactly this environment. */
function run(file: string, args: string[], env: Record<string, string | undefined>, stdin: string): Reply {
  const clean: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v;
  const r = spawnSync(file, args, { env: clean, input: stdin, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  let json: any;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

const ENV = {
  CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'cl-ctr', CNI_NETNS: '/run/netns/cl-does-not-exist', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent',
};
const CONF = JSON.stringify({ cniVersion: '1.0.0', name: 'clnet', type: 'loopback' });

const loopback = (env: Record<string, string | undefined>, stdin = CONF) => run(join(h.bin, 'loopback'), [], { ...ENV, ...env }, stdin);

/** A CNI error: non-zero exit, exactly one JSON document on stdout, no stack trace anywhere on it. */
function cniError(r: Reply, code?: number): { cniVersion: string; code: number; msg: string; details?: string } {
  assert.is.not(r.status, 0, `exit status must be non-zero: ${r.stdout}`);
  const text = r.stdout.trim();
  assert.not.match(text, /\n/, `stdout is one line: ${r.stdout}`);
  assert.not.match(r.stdout, /^\s*at /m, `stack trace on stdout: ${r.stdout}`);
  assert.not.match(r.stdout, /node:internal|file:\/\//, `stack frames on stdout: ${r.stdout}`);
  assert.ok(r.json, `stdout is one JSON document: ${r.stdout} (stderr: ${r.stderr})`);
  assert.type(r.json.code, 'number');
  assert.type(r.json.msg, 'string');
  assert.match(r.json.cniVersion, /^\d+\.\d+\.\d+$/);
  assert.equal(Object.keys(r.json).filter((k) => !['cniVersion', 'code', 'msg', 'details'].includes(k)), [], 'only the spec error fields');
  if (code !== undefined) assert.is(r.json.code, code, `${r.json.msg} ${r.json.details ?? ''}`);
  assert.not.match(r.stderr, /^\s+at /m, `stack trace on stderr: ${r.stderr}`);
  return r.json;
}

test.before(() => {
  try {
    tmp = mkdtempSync(join(tmpdir(), 'cl-'));
    h = makeHarness('cl-');
    manifest = JSON.parse(readFileSync(join(ROOT, 'dist/plugins/loopback/manifest.json'), 'utf8'));
  } catch (e) {
    console.error('cli test setup failed:', e); // uvu does not report a failing before hook
    throw e;
  }
});

test.after(() => {
  if (h) removeHarness(h);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- protocol errors

test('missing CNI_CONTAINERID: code 4 naming the variable', () => {
  const e = cniError(loopback({ CNI_CONTAINERID: undefined }), 4);
  assert.match(e.msg, /CNI_CONTAINERID/);
});

test('several missing variables are named in one code-4 error', () => {
  const e = cniError(loopback({ CNI_CONTAINERID: undefined, CNI_IFNAME: undefined, CNI_PATH: undefined }), 4);
  for (const v of ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']) assert.ok(e.msg.includes(v), `${v} in ${e.msg}`);
});

test('unknown CNI_COMMAND and a bad CNI_IFNAME: code 4', () => {
  cniError(loopback({ CNI_COMMAND: 'FROB' }), 4);
  cniError(loopback({ CNI_IFNAME: 'a/b' }), 4);
  cniError(loopback({ CNI_ARGS: 'novalue' }), 4);
});

test('stdin that is not JSON: code 6', () => {
  const e = cniError(loopback({}, '{"cniVersion": "1.0.0", "name": '), 6);
  assert.match(e.msg, /JSON/);
  cniError(loopback({}, ''), 6);
  cniError(loopback({}, '[1, 2]'), 6);
});

test('an unknown cniVersion: code 1, listing the supported versions', () => {
  const r = loopback({}, JSON.stringify({ cniVersion: '9.9.9', name: 'clnet', type: 'loopback' }));
  const e = cniError(r, 1);
  assert.match(e.msg, /9\.9\.9/);
  const text = `${e.msg} ${e.details ?? ''}`;
  for (const v of ALL_VERSIONS) assert.ok(text.includes(v), `${v} in "${text}"`);
});

test('CHECK on a version without CHECK: code 1', () => {
  const r = loopback({ CNI_COMMAND: 'CHECK' }, JSON.stringify({ cniVersion: '0.3.1', name: 'clnet', type: 'loopback' }));
  const e = cniError(r, 1);
  assert.is(e.cniVersion, '0.3.1', 'the error is in the request version');
});

test('a config without a name: code 7', () => {
  const e = cniError(loopback({}, JSON.stringify({ cniVersion: '1.0.0', type: 'loopback' })), 7);
  assert.match(e.msg, /name/);
  assert.is(e.cniVersion, '1.0.0', 'the error is in the request version');
});

test('an unknown type: an error document, non-zero exit', () => {
  const r = run(process.execPath, [CLI, '--type', 'nosuch', '--policy', h.policyFile], ENV, JSON.stringify({ cniVersion: '1.0.0', name: 'clnet', type: 'nosuch' }));
  const e = cniError(r);
  assert.match(e.msg, /nosuch/);
  assert.is(e.cniVersion, '1.0.0');
  // a type that could walk a path is no plugin at all
  const bad = run(process.execPath, [CLI, '--type', '../loopback', '--policy', h.policyFile], ENV, CONF);
  cniError(bad);
});

test('an unreadable policy: an error document, not a crash', () => {
  const r = run(process.execPath, [CLI, '--type', 'loopback', '--policy', join(tmp, 'no-such-policy.json')], ENV, CONF);
  const e = cniError(r);
  assert.match(`${e.msg} ${e.details ?? ''}`, /no-such-policy\.json/);
});

test('a container netns that does not exist: an error document, not a crash', () => {
  const e = cniError(loopback({}));
  assert.match(`${e.msg} ${e.details ?? ''}`, /cl-does-not-exist|namespace/);
  assert.is(e.cniVersion, '1.0.0');
});

test('VERSION through the shim needs only CNI_COMMAND', () => {
  const r = run(join(h.bin, 'loopback'), [], { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.json, { cniVersion: '0.4.0', supportedVersions: ALL_VERSIONS });
});

// ---------------------------------------------------------------- operator commands

test('cni-wasm plugins lists loopback with its sha256 and imports', () => {
  const r = cli(['plugins']);
  assert.is(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('loopback '));
  assert.ok(line, r.stdout);
  assert.ok(line!.includes(manifest.sha256.slice(0, 12)), line);
  for (const i of manifest.imports) assert.ok(line!.includes(i), `${i} in ${line}`);
  const j = cli(['plugins', '--json']);
  assert.is(j.status, 0, j.stderr);
  const lo = (JSON.parse(j.stdout) as any[]).find((m) => m.type === 'loopback');
  assert.is(lo.sha256, manifest.sha256);
  assert.match(lo.sha256, /^[0-9a-f]{64}$/);
  assert.equal(lo.imports, manifest.imports);
  assert.ok(lo.imports.includes('links'));
  assert.is(lo.bundled, true);
});

test('cni-wasm install --bin-dir writes executable shims that work', () => {
  const dir = join(tmp, 'bin');
  const r = cli(['install', '--bin-dir', dir, '--policy', h.policyFile]);
  assert.is(r.status, 0, r.stderr);
  const shim = join(dir, 'loopback');
  assert.ok(existsSync(shim), r.stdout);
  assert.is(statSync(shim).mode & 0o111, 0o111, 'executable');
  const text = readFileSync(shim, 'utf8');
  assert.match(text, /^#!\/bin\/sh\n/);
  assert.ok(text.includes(CLI), text);
  assert.match(text, /--type 'loopback'/);
  assert.ok(text.includes(h.policyFile), 'the policy is passed on');
  assert.match(r.stdout, /loopback/);
  const v = run(shim, [], { CNI_COMMAND: 'VERSION' }, '');
  assert.is(v.status, 0, v.stdout + v.stderr);
  assert.equal(v.json.supportedVersions, ALL_VERSIONS);
  // the shim really uses the policy: its audit log is where the policy says
  const only = join(tmp, 'only');
  const o = cli(['install', '--bin-dir', only, '--only', 'loopback']);
  assert.is(o.status, 0, o.stderr);
  assert.ok(existsSync(join(only, 'loopback')));
  assert.not.match(readFileSync(join(only, 'loopback'), 'utf8'), /--policy/, 'no policy given, none passed');
});

test('cni-wasm install without --bin-dir fails with a usage message', () => {
  const r = cli(['install']);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /--bin-dir/);
});

test('--help works for the program and each subcommand', () => {
  const top = cli(['--help']);
  assert.is(top.status, 0, top.stderr);
  assert.match(top.stdout, /Usage: cni-wasm/);
  for (const sub of ['install', 'plugins', 'audit', 'approve']) {
    assert.ok(top.stdout.includes(sub), `${sub} listed in --help`);
    const r = cli([sub, '--help']);
    assert.is(r.status, 0, `${sub} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: cni-wasm ${sub}`), r.stdout);
  }
  const audit = cli(['audit', '--help']).stdout;
  for (const opt of ['--file', '--container', '--plugin', '--denied', '--json']) assert.ok(audit.includes(opt), opt);
});

test('cni-wasm audit on a missing file fails cleanly', () => {
  const r = cli(['audit', '--file', join(tmp, 'nope.log')]);
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /nope\.log/);
  assert.not.match(r.stderr, /^\s+at /m);
});

test.run();
