// The WIT contract is the one source of truth: every function it declares has
// a host implementation (under jco's camelCase name) and the host implements
// nothing it does not declare; the guest glue generated from it is
// deterministic and is what the SDK ships.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../helpers/cni.js';
import { parseWit, type Package } from '../../tools/wit.js';
import { generateFromSource } from '../../tools/witgen.js';
import { HOST_INTERFACES } from '../../host/capabilities/index.js';
import { KNOWN_INTERFACES, WIT_PACKAGE, WIT_VERSION } from '../../host/sandbox/interfaces.js';

const WIT = readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8');
const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

let pkg: Package;

test.before(() => {
  pkg = parseWit(WIT);
});

test('the WIT package is the one the host names', () => {
  assert.is(`${pkg.namespace}:${pkg.name}`, WIT_PACKAGE);
  assert.is(pkg.version, WIT_VERSION);
  assert.ok(pkg.worlds.has('plugin'));
});

test('every WIT function has a host implementation', () => {
  const missing: string[] = [];
  let n = 0;
  for (const [name, iface] of pkg.ifaces) {
    for (const f of iface.funcs) {
      n++;
      const impl = HOST_INTERFACES[name]?.[camel(f.name)];
      if (!impl) { missing.push(`${name}.${f.name}`); continue; }
      assert.ok(impl.grant === null || typeof impl.grant === 'function', `${name}.${f.name} declares its grant`);
      assert.type(impl.run, 'function', `${name}.${f.name} run`);
    }
  }
  assert.equal(missing, [], `not implemented: ${missing.join(', ')}`);
  assert.ok(n >= 30, `${n} functions`);
});

test('the host implements nothing the WIT does not declare', () => {
  const extra: string[] = [];
  for (const [name, impl] of Object.entries(HOST_INTERFACES)) {
    const iface = pkg.ifaces.get(name);
    if (!iface) { extra.push(`interface ${name}`); continue; }
    const declared = new Set(iface.funcs.map((f) => camel(f.name)));
    for (const fn of Object.keys(impl)) if (!declared.has(fn)) extra.push(`${name}.${fn}`);
  }
  assert.equal(extra, [], `not in the WIT: ${extra.join(', ')}`);
});

test('the interfaces a component may import are exactly the WIT interfaces', () => {
  assert.equal([...KNOWN_INTERFACES].sort(), [...pkg.ifaces.keys()].sort());
  const world = pkg.worlds.get('plugin')!;
  // every interface with functions is imported by the world; 'types' only through `use`
  const withFuncs = [...pkg.ifaces.values()].filter((i) => i.funcs.length).map((i) => i.name);
  assert.equal([...world.imports].sort(), withFuncs.sort());
  assert.equal(Object.keys(HOST_INTERFACES).sort(), withFuncs.sort());
});

test('the world exports what the host calls', () => {
  const world = pkg.worlds.get('plugin')!;
  assert.equal(world.exports.map((f) => f.name).sort(), ['add', 'check', 'del', 'gc', 'status', 'version']);
});

test('the built signature table matches the WIT (names and parameters for binding and audit)', () => {
  const file = join(ROOT, 'dist/plugins/signatures.json');
  if (!existsSync(file)) { console.log('  (no dist/plugins/signatures.json: build plugins first) skipped'); return; }
  const sigs = JSON.parse(readFileSync(file, 'utf8'));
  for (const [name, iface] of pkg.ifaces) {
    if (!iface.funcs.length) { assert.not.ok(name in sigs, name); continue; }
    assert.equal(Object.keys(sigs[name]).sort(), iface.funcs.map((f) => camel(f.name)).sort(), name);
    for (const f of iface.funcs) {
      assert.equal(sigs[name][camel(f.name)], { wit: f.name, params: f.params.map((p) => p.name), hasResult: f.result !== null }, `${name}.${f.name}`);
    }
  }
});

test('witgen: the same WIT gives the same output, in this process and in another', () => {
  const a = generateFromSource(WIT);
  const b = generateFromSource(WIT);
  assert.equal(Object.keys(a).sort(), ['exports.ts', 'imports.ts', 'types.ts', 'world.ts']);
  assert.equal(a, b);
  const digest = (files: Record<string, string>) =>
    createHash('sha256').update(Object.keys(files).sort().map((k) => `${k}\0${files[k]}`).join('\0')).digest('hex');
  const url = pathToFileURL(join(ROOT, 'dist/tools/witgen.js')).href;
  const script = `
    import { readFileSync } from 'node:fs';
    import { createHash } from 'node:crypto';
    const { generateFromSource } = await import(${JSON.stringify(url)});
    const files = generateFromSource(readFileSync(${JSON.stringify(join(ROOT, 'wit/plugin.wit'))}, 'utf8'));
    process.stdout.write(createHash('sha256').update(Object.keys(files).sort().map((k) => k + '\\0' + files[k]).join('\\0')).digest('hex'));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, digest(a));
});

test('witgen: the SDK ships exactly the generated glue', () => {
  const files = generateFromSource(WIT);
  for (const [name, text] of Object.entries(files)) {
    const shipped = readFileSync(join(ROOT, 'guest-plugins/sdk/generated', name), 'utf8');
    assert.ok(shipped === text, `guest-plugins/sdk/generated/${name} differs from witgen's output: regenerate, never hand-edit`);
    assert.match(text, /^\/\/ GENERATED by tools\/witgen\.ts/);
  }
});

test('witgen: one import per WIT function and one export per world function', () => {
  const { 'imports.ts': imports, 'exports.ts': exports } = generateFromSource(WIT);
  for (const [name, iface] of pkg.ifaces) {
    for (const f of iface.funcs) {
      const ext = `@external("${WIT_PACKAGE}/${name}@${WIT_VERSION}", "${f.name}")`;
      assert.ok(imports.includes(ext), `${ext} in imports.ts`);
    }
  }
  const count = (imports.match(/@external\(/g) ?? []).length;
  assert.is(count, [...pkg.ifaces.values()].reduce((n, i) => n + i.funcs.length, 0));
  for (const f of pkg.worlds.get('plugin')!.exports) {
    assert.match(exports, new RegExp(`export function ${f.name}\\(`));
    assert.match(exports, new RegExp(`export function cabi_post_${f.name}\\(`));
  }
  assert.match(exports, /export function cabi_realloc\(/);
});

test('witgen: a change in the WIT changes the output (it is not cached or canned)', () => {
  const changed = WIT.replace('create-ifb: func(ns: netns, name: string, mtu: u32, txqueuelen: u32)', 'create-ifb: func(ns: netns, name: string, mtu: u32)');
  assert.is.not(changed, WIT);
  const a = generateFromSource(WIT)['imports.ts'];
  const b = generateFromSource(changed)['imports.ts'];
  assert.is.not(a, b);
  assert.match(b, /createIfb\(ns: Netns, name: string, mtu: u32\)/);
});

test.run();
