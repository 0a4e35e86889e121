// The glue's calls made direct (host/sandbox/directcalls.ts): every bundled
// plugin's trampolines and exports rewritten, packaging a component gives the
// glue that ships, an unexpected shape is caught (the glue left as jco wrote
// it, the build refusing it), and host-local run through the real sandbox,
// gate and store gives the same outcomes, host calls and audit with the
// rewritten glue as with jco's: a result, a host `err` lowered into the
// guest, a guest error thrown as ComponentError, a host exception and the
// time limit trapping the guest. No root, no kernel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cni.js';
import { fakeCall } from '../helpers/gate.js';
import { directCalls } from '../../host/sandbox/directcalls.js';
import { PackageError, prepareGlue, transpiledGlue } from '../../host/sandbox/package.js';
import { type LoadedPlugin, loadPlugin } from '../../host/sandbox/loader.js';
import { instantiate, withTimeLimit } from '../../host/sandbox/sandbox.js';

const PLUGINS = join(ROOT, 'dist/plugins');
const glueOf = (type: string) => readFileSync(join(PLUGINS, type, 'plugin.cjs'), 'utf8');
const instanceCode = (src: string) => src.slice(src.indexOf('_initGenerator'));
const count = (s: string, re: RegExp) => s.match(re)?.length ?? 0;

test('every bundled plugin: each core import is its trampoline, no task is made anywhere in the instance', () => {
  const types = readdirSync(PLUGINS).filter((t) => { try { return !!readFileSync(join(PLUGINS, t, 'manifest.json')); } catch { return false; } });
  assert.ok(types.length >= 10, types.join(' '));
  for (const type of types) {
    const manifest = JSON.parse(readFileSync(join(PLUGINS, type, 'manifest.json'), 'utf8'));
    assert.is(manifest.directCalls, true, type);
    const inst = instanceCode(glueOf(type));
    // the core instance takes trampolineN; each is _trampolineN itself
    const wired = new Set(inst.match(/Object\.assign\(trampoline\d+, /g)).size;
    assert.ok(wired > 0, type);
    assert.is(count(inst, /\blet (trampoline\d+) = _\1;/g), wired, type);
    assert.is(count(inst, /\bconst _trampoline\d+ = function\([^)]*\) \{\n[ \t]*_checkMayLeave\(0\);/g), wired, type);
    for (const gone of ['_lowerImportBackwardsCompat', 'createNewCurrentTask(', '_withGlobalCurrentTaskMeta(', '_trackHostOperation(', 'task.', 'callingWasmExport']) {
      assert.not.ok(inst.includes(gone), `${type}: ${gone}`);
    }
    // each export: no task, the trapped-instance check first
    assert.is(count(inst, /function [\w$]+\([\w$, ]*\) \{\s*getOrCreateAsyncState\(0\)\.throwIfTrapped\(\);\n/g), manifest.exports.length, type);
  }
});

// jco's glue for bridge and host-local, transpiled again from their components
const raw: Record<string, string> = {};
for (const type of ['bridge', 'host-local']) {
  raw[type] = await transpiledGlue(readFileSync(join(PLUGINS, type, `${type}.component.wasm`)));
}

test('packaging bridge and host-local rewrites every trampoline and every export, and gives the glue that ships', () => {
  for (const type of ['bridge', 'host-local']) {
    const trampolines = count(raw[type], /\bconst _trampoline\d+ = function/g);
    const lowered = count(raw[type], /_lowerImportBackwardsCompat\.bind\(/g);
    assert.ok(trampolines > 0, type);
    assert.is(lowered, 2 * trampolines, type); // the Suspending branch and the sync one
    const jco = prepareGlue(raw[type], type, true, { direct: false });
    const r = directCalls(jco.src);
    assert.is(r.skipped, undefined, `${type}: ${r.skipped}`);
    assert.is(r.imports, trampolines, type);
    assert.is(r.exports, 6, type);
    assert.is(prepareGlue(raw[type], type, true).src, glueOf(type), type);
    // what is not task bookkeeping is all still there
    for (const kept of ['.decode(', '_utf16AllocateAndEncode(', 'markTrapped(', 'getErrorPayload(', 'ComponentError(', 'postReturn0(', '__cniGuardedDecoder']) {
      assert.is(r.src.split(kept).length, jco.src.split(kept).length, `${type}: ${kept}`);
    }
  }
});

test('an unexpected shape: jco\'s glue is left unmodified with the reason, the build refuses it, a third-party component keeps it', () => {
  const src = raw.bridge;
  const once = (s: string, from: string, to: string) => {
    const at = s.indexOf(from);
    assert.ok(at >= 0, from);
    return s.slice(0, at) + to + s.slice(at + from.length);
  };
  const last = (s: string, from: string, to: string) => {
    const at = s.lastIndexOf(from);
    assert.ok(at >= 0, from);
    return s.slice(0, at) + to + s.slice(at + from.length);
  };
  const shapes: Record<string, [string, RegExp]> = {
    'an async host call': [once(src, 'fn: () => _trackHostOperation(() => ', 'fn: () => _trackHostOperation(async () => '), /host call: unexpected call/],
    'a trampoline ending its task twice': [once(src, '    task.resolve([ret]);\n    task.exit();\n', '    task.resolve([ret]);\n    task.exit();\n    task.exit();\n'), /task machinery left \(task\)/],
    'an async-lowered import': [last(src, '    isAsync: false,\n    isManualAsync: _trampoline', '    isAsync: true,\n    isManualAsync: _trampoline'), /without 'isAsync: false,'/],
    'an async function type': [once(src, 'funcTypeIsAsync: false,', 'funcTypeIsAsync: true,'), /without 'funcTypeIsAsync: false,'/],
    'an import with a flat result': [last(src, 'hasResultPointer: true,', 'hasResultPointer: false,'), /an import with a flat result/],
    'an export with a callback': [once(src, "entryFnName: 'exports1Add',\n      getCallbackFn: () => null,", "entryFnName: 'exports1Add',\n      getCallbackFn: () => exports1Add,"), /add\$1: export task without 'getCallbackFn/],
    'an export without its task': [once(src, "const hostProvided = false;\n    getOrCreateAsyncState(0).throwIfTrapped();\n", 'getOrCreateAsyncState(0).throwIfTrapped();\n'), /5 exports rewritten, 1 left/],
    'a trampoline of another kind': [once(src, '  let trampoline0 = ', '  let trampoline0 = 1 ? _trampoline0 : '), /trampoline0: unexpected import lowering/],
    'an import marked manually async': [once(src, "_trampoline0.fnName = '", "_trampoline0.manuallyAsync = false;\n  _trampoline0.fnName = '"), /an import marked manually async/],
    'a host call taking a hidden extra step': [once(src, 'fn: () => _trackHostOperation(() => write(enum0, result1)),', 'fn: () => _trackHostOperation(() => write(enum0, result1) || write(enum0, result1)),'), /host call: not a single call/],
    'no task machinery at all': [src.replace(/function _lowerImportBackwardsCompat\(/g, 'function _lowerImportOtherwise('), /no task machinery in this glue/],
  };
  for (const [what, [changed, reason]] of Object.entries(shapes)) {
    assert.is.not(changed, src, what);
    const cjs = prepareGlue(changed, 'bridge', false, { direct: false }).src;
    const r = directCalls(cjs);
    assert.ok(r.skipped, `${what}: not detected`);
    assert.match(r.skipped!, reason, what);
    assert.is(r.src, cjs, what);
    assert.is(r.imports + r.exports, 0, what);
    assert.throws(() => prepareGlue(changed, 'bridge', true), (e: Error) => e instanceof PackageError && /could not be made direct/.test(e.message), what);
    const third = prepareGlue(changed, 'rogue', false);
    assert.is(third.direct, false, what);
    assert.is(third.src, cjs, what);
  }
});

// ---- host-local through the sandbox, with either glue --------------------------
function withJcoGlue(): { plugin: LoadedPlugin; dir: string } {
  const bundled = loadPlugin('host-local', fakeCall({ grants: {} }).ctx.policy)!;
  const dir = mkdtempSync(join(tmpdir(), 'direct-calls-'));
  for (const f of readdirSync(bundled.dir)) if (/\.(wasm|json)$/.test(f)) copyFileSync(join(bundled.dir, f), join(dir, f));
  writeFileSync(join(dir, 'plugin.cjs'), prepareGlue(raw['host-local'], 'host-local', true, { direct: false }).src);
  const { instantiate: inst } = createRequire(import.meta.url)(join(dir, 'plugin.cjs'));
  return { plugin: { ...bundled, dir, instantiate: inst }, dir };
}

interface Outcome { out: string; audit: string[] }

function scenario(plugin: LoadedPlugin): Outcome[] {
  const f = fakeCall({ type: 'host-local', grants: plugin.grants, objects: plugin.objects });
  const audit: string[] = [];
  const full = { write: (r: any) => audit.push(`${r.call} ${r.verdict} ${r.outcome}`), hasRoomForCalls: () => true, quotaText: () => '' };
  f.ctx.audit = full as never;
  f.ctx.plugin = { type: 'host-local', sha256: plugin.manifest.sha256, grants: plugin.grants };
  const config = (subnet: string) => JSON.stringify({ cniVersion: '1.0.0', name: 'unitnet', ipam: { type: 'host-local', dataDir: join(f.dir, 'ipam'), ranges: [[{ subnet }]] } });
  const req = (cmd: string, containerId = 'unit-container', subnet = '10.9.0.0/24') => ({ cmd, req: { config: config(subnet), containerId, ifname: 'eth0', args: [] as [string, string][], hasNetns: false, netnsPath: '' } });
  const closeSessions = () => { for (const s of f.ctx.session.values()) (s as { close(): void }).close(); f.ctx.session.clear(); };
  const results: Outcome[] = [];
  const run = (x: { cmd: string; req: object }, after?: () => void) => {
    audit.length = 0;
    f.ctx.command = x.cmd.toUpperCase();
    let out: string;
    try {
      const guest = instantiate(plugin, f.ctx, 5000);
      const val = withTimeLimit(f.ctx, x.cmd, 5000, () => guest[x.cmd](x.req));
      out = val === undefined ? '(no value)' : String(val);
    } catch (e) {
      const c = e as { code?: number; msg?: string; details?: string };
      out = `error ${c.code} ${c.msg} ${c.details ?? ''}`;
    }
    after?.();
    results.push({ out, audit: audit.map((l) => l.replace(/\d+(\.\d+)? ?ms/g, 'N ms')) });
  };
  run(req('add'), closeSessions); // a result
  run(req('add', 'second'));
  run(req('add', 'third'), closeSessions); // the store still open from the call before: the host's err, lowered into the guest
  run(req('add', 'bad', 'nonsense'), closeSessions); // the guest's own error: ComponentError
  run(req('del'), closeSessions);
  f.ctx.audit = { write: full.write } as never; // a host function that throws (TypeError): a trap
  run(req('add', 'fourth'), closeSessions);
  f.ctx.audit = full as never;
  f.ctx.deadline = Date.now() - 1; // the time limit has passed: TimeLimitReached from the first host call
  run(req('add', 'fifth'), closeSessions);
  rmSync(f.dir, { recursive: true, force: true });
  return results;
}

test('host-local through the sandbox: the same results, errors, traps and host calls with the rewritten glue as with jco\'s', () => {
  const direct = loadPlugin('host-local', fakeCall({ grants: {} }).ctx.policy)!;
  assert.is(direct.manifest.directCalls, true);
  const { plugin: jco, dir } = withJcoGlue();
  try {
    const a = scenario(direct);
    const b = scenario(jco);
    assert.equal(a, b);
    const outs = a.map((x) => x.out);
    assert.equal(JSON.parse(outs[0]).ips, [{ address: '10.9.0.2/24', gateway: '10.9.0.1' }]);
    assert.equal(JSON.parse(outs[1]).ips, [{ address: '10.9.0.3/24', gateway: '10.9.0.1' }]);
    assert.match(outs[2], /^error 999 .*already open in this call EBUSY$/);
    assert.match(outs[3], /^error 7 invalid CIDR address: nonsense/);
    assert.is(outs[4], '(no value)');
    assert.match(outs[5], /^error 100 plugin 'host-local' crashed during add: host error: .*hasRoomForCalls/);
    assert.match(outs[6], /^error 101 plugin 'host-local' did not finish add within its time limit/);
    assert.ok(a[0].audit.some((l) => /^store\.\S+ allow ok$/.test(l)), a[0].audit.join('\n'));
    assert.ok(a[2].audit.some((l) => /^store\.open allow error: EBUSY/.test(l)), a[2].audit.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
