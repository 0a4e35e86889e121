// Test-only guest components (test/fixtures/guests/<name>) and the real
// third-party flow for running them: build with build-plugins, copy the
// component into a plugin dir as `<type>.wasm`, `cni-wasm approve` it, pin
// its sha256 and grants in the policy, and exec it through a shim like any
// plugin a runtime runs.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, type Harness, makeHarness, removeHarness, writePolicy } from './cni.js';
import { cleanupAll, makeNetns } from './netns.js';

export const FIXTURES_SRC = join(ROOT, 'test/fixtures/guests');
const BUILD_PLUGINS = join(ROOT, 'dist/tools/build-plugins.js');

export interface Run { status: number | null; stdout: string; stderr: string }

/** `node bin/cni-wasm.cjs ...args` */
export function cli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8', input: opts.input ?? '', env: opts.env ?? process.env, timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Builds fixtures with the real build (`build-plugins --src ... --out ...`).
 *  Each lands in `<outRoot>/<name>/` with `<name>.component.wasm`. */
export function buildFixtures(outRoot: string, names: string[]): void {
  const r = spawnSync(process.execPath, [BUILD_PLUGINS, '--src', FIXTURES_SRC, '--out', outRoot, ...names], {
    cwd: ROOT, encoding: 'utf8', timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`build-plugins ${names.join(' ')} failed:\n${r.stdout}${r.stderr}`);
}

export const componentPath = (outRoot: string, name: string): string => join(outRoot, name, `${name}.component.wasm`);

/** The grants a fixture asks for in its grants.json ({} without one). */
export function fixtureGrants(name: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(join(FIXTURES_SRC, name, 'grants.json'), 'utf8')).grants ?? {};
  } catch {
    return {};
  }
}

/** Compiles a fixture to a core module as build-plugins does, except that
 *  `maxPages: null` leaves the memory without a maximum. */
export function compileFixtureCore(name: string, outWasm: string, maxPages: number | null): Uint8Array {
  const asc = join(ROOT, 'node_modules/.bin/asc');
  const args = [
    join(ROOT, 'guest-plugins/sdk/generated/exports.ts'), join(ROOT, 'guest-plugins/sdk/runtime.ts'),
    join(FIXTURES_SRC, name, 'index.ts'),
    '-o', outWasm, '--runtime', 'stub', '-O3', '--noAssert',
    '--use', 'abort=guest-plugins/sdk/runtime/guestAbort',
    ...(maxPages === null ? [] : ['--maximumMemory', String(maxPages)]),
  ];
  const r = spawnSync(asc, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`asc failed for fixture ${name}:\n${r.stdout}${r.stderr}`);
  return readFileSync(outWasm);
}

/** The real WIT with extra interfaces spliced in and imported by the `plugin` world. */
export function witWithExtraImports(extraWit: string, ifaces: string[]): string {
  const wit = readFileSync(join(ROOT, 'wit/plugin.wit'), 'utf8');
  const at = wit.indexOf('world plugin {');
  if (at < 0) throw new Error('wit/plugin.wit has no `world plugin {`');
  const open = at + 'world plugin {'.length;
  return wit.slice(0, at) + extraWit + '\n' + wit.slice(at, open) + '\n' + ifaces.map((i) => `  import ${i};\n`).join('') + wit.slice(open);
}

// ---- third-party plugins -------------------------------------------------------

export const pluginDir = (h: Harness): string => join(h.dir, 'plugins');

/** Copies a component into the harness's plugin dir as `<type>.wasm`; returns its path. */
export function placeComponent(h: Harness, component: string, type: string): string {
  mkdirSync(pluginDir(h), { recursive: true });
  const dest = join(pluginDir(h), `${type}.wasm`);
  copyFileSync(component, dest);
  return dest;
}

/** `cni-wasm --policy P approve <file>`; on success, the sha256 it tells us to pin. */
export function approve(h: Harness, wasm: string): Run & { sha256?: string } {
  const r = cli(['--policy', h.policyFile, 'approve', wasm]);
  const m = /"sha256":\s*"([0-9a-f]{64})"/.exec(r.stdout);
  return { ...r, sha256: m?.[1] };
}

/** A runtime-facing shim for a third-party type, as `cni-wasm install` writes for bundled ones. */
export function writeShim(h: Harness, type: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const shim = join(h.bin, type);
  writeFileSync(shim, `#!/bin/sh\nexec ${q(process.execPath)} ${q(CLI)} --type ${q(type)} --policy ${q(h.policyFile)} "$@"\n`);
  chmodSync(shim, 0o755);
  return shim;
}

export interface ThirdParty {
  type: string;
  /** the built component (copied to `<pluginDir>/<type>.wasm`) */
  component: string;
  /** the sha256 to pin: true = the one approve printed, a string = that, false = none */
  pin?: boolean | string;
  /** default: the fixture's grants.json */
  grants?: Record<string, unknown>;
  /** the config keys that name objects, with their rights (policy "objects") */
  objects?: unknown[];
}

/** What a test file's fixtures live in: the harness, a temp dir, and the built fixtures in it. */
export interface FixtureSetup { h: Harness; work: string; built: string; digests: Record<string, string> }

/**
 * The setup netns tests of hostile components share: everything under
 * `prefix` removed, the netns made, the fixtures built into a temp dir and
 * installed (approved, pinned, shimmed) as third-party types of a new
 * harness under one policy. Undone by tearDownFixtures.
 */
export function setUpFixtures(prefix: string, netns: string[], fixtures: string[], policy: Record<string, unknown> = {}): FixtureSetup {
  cleanupAll(prefix);
  for (const n of netns) makeNetns(n);
  const work = mkdtempSync(join(tmpdir(), `${prefix}work-`));
  const built = join(work, 'plugins');
  buildFixtures(built, fixtures);
  const h = makeHarness(prefix);
  const digests = installThirdParty(h, fixtures.map((type) => ({ type, component: componentPath(built, type) })), policy);
  return { h, work, built, digests };
}

export function tearDownFixtures(prefix: string, s: FixtureSetup | undefined): void {
  cleanupAll(prefix);
  if (!s) return;
  removeHarness(s.h);
  rmSync(s.work, { recursive: true, force: true });
}

/** The whole third-party flow for each plugin, then one policy for all of them. */
export function installThirdParty(h: Harness, plugins: ThirdParty[], policy: Record<string, unknown> = {}): Record<string, string> {
  const digests: Record<string, string> = {};
  const entries: Record<string, unknown> = {};
  for (const p of plugins) {
    const wasm = placeComponent(h, p.component, p.type);
    const a = approve(h, wasm);
    if (a.status !== 0 || !a.sha256) throw new Error(`cni-wasm approve ${wasm} failed (${a.status}): ${a.stderr}${a.stdout}`);
    digests[p.type] = a.sha256;
    const pin = p.pin ?? true;
    if (pin !== false) entries[p.type] = { sha256: pin === true ? a.sha256 : pin, grants: p.grants ?? fixtureGrants(p.type), ...(p.objects ? { objects: p.objects } : {}) };
    writeShim(h, p.type);
  }
  writePolicy(h, { pluginDirs: [pluginDir(h)], ...policy, plugins: { ...entries, ...(policy.plugins as object ?? {}) } });
  return digests;
}
