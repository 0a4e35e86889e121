// type -> component. Bundled plugins come pre-transpiled in dist/plugins;
// third-party ones are `<type>.wasm` files in the policy's plugin dirs, run
// only when the policy pins their sha256, transpiled once into a cache keyed
// by that digest.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { createRequire } from 'node:module';
import { CniError } from '../cni/errors.js';
import type { Grants, Policy } from '../gate/policy.js';
import type { ObjectDecl } from '../gate/ownership.js';
import { type Manifest, PackageError, sha256 } from './package.js';
export { PackageError };

export const ERR_PLUGIN_REFUSED = 102;

export const bundledDir = (): string => join(packageRoot(), 'dist/plugins');

export type Instantiate = (getCoreModule: (path: string) => WebAssembly.Module, imports: Record<string, unknown>) => Record<string, (...a: unknown[]) => unknown>;

export interface LoadedPlugin {
  manifest: Manifest;
  dir: string;
  grants: Grants;
  /** config keys naming host objects, and the rights each gives (ownership.ts) */
  objects: ObjectDecl[];
  instantiate: Instantiate;
}

function readManifest(dir: string): Manifest | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

/** Where a type's component lives, without loading it. */
export function locatePlugin(type: string, policy: Policy): { dir: string; manifest: Manifest } | { wasm: string } | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type)) return null;
  const bundled = join(bundledDir(), type);
  const m = readManifest(bundled);
  if (m) return { dir: bundled, manifest: m };
  for (const d of policy.pluginDirs) {
    const wasm = join(d, `${type}.wasm`);
    if (existsSync(wasm)) return { wasm };
  }
  return null;
}

// bin/codecache.cjs: the same V8 code cache the host bundle is loaded with
let cached: ((file: string) => unknown) | undefined;
const requireCjs = (file: string): unknown => {
  const w = warm?.get(file);
  if (w) return w;
  cached ??= (createRequire(import.meta.url)(join(packageRoot(), 'bin/codecache.cjs')) as { requireCached: (f: string) => unknown }).requireCached;
  const mod = cached(file);
  warm?.set(file, mod);
  return mod;
};

// Resident mode (the daemon's workers): a component's glue (its instantiate
// function, which holds no state between calls) and its compiled core
// modules are kept, keyed by file and mtime. Every call still gets a fresh
// instance with imports bound to that call. A reload starts new workers.
let warm: Map<string, unknown> | undefined;
const warmModules = new Map<string, WebAssembly.Module>();
export function keepWarm(): void { warm ??= new Map(); }

/** A component's core module; compiled once per file version in resident mode. */
export function coreModule(file: string): WebAssembly.Module {
  if (!warm) return new WebAssembly.Module(readFileSync(file));
  const key = `${file}\u0000${statSync(file).mtimeMs}`;
  let m = warmModules.get(key);
  if (!m) { m = new WebAssembly.Module(readFileSync(file)); warmModules.set(key, m); }
  return m;
}

/** Synchronous: delegation loads plugins while a guest call is in progress. */
export function loadPlugin(type: string, policy: Policy): LoadedPlugin | null {
  const where = locatePlugin(type, policy);
  if (!where) return null;
  let dir: string;
  let manifest: Manifest;
  let grants: Grants;
  let objects: ObjectDecl[];
  if ('wasm' in where) {
    ({ dir, manifest } = approvedThirdParty(type, where.wasm, policy));
    // a third-party plugin names host objects only as the operator allows
    grants = policy.plugins[type]?.grants ?? {};
    objects = policy.plugins[type]?.objects ?? [];
  } else {
    ({ dir, manifest } = where);
    grants = policy.plugins[type]?.grants ?? (manifest.grants as Grants);
    objects = policy.plugins[type]?.objects ?? manifest.objects ?? [];
  }
  const mod = requireCjs(join(dir, manifest.jsFile)) as { instantiate: Instantiate };
  return { manifest, dir, grants, objects, instantiate: mod.instantiate };
}

function approvedThirdParty(type: string, wasm: string, policy: Policy): { dir: string; manifest: Manifest } {
  const bytes = readFileSync(wasm);
  const digest = sha256(bytes);
  const pinned = policy.plugins[type]?.sha256;
  if (!pinned) {
    throw new CniError(ERR_PLUGIN_REFUSED, `plugin '${type}' (${wasm}) is not approved: add it to the policy with "sha256": "${digest}" and the grants it needs`);
  }
  if (pinned !== digest) {
    throw new CniError(ERR_PLUGIN_REFUSED, `plugin '${type}' (${wasm}) has sha256 ${digest}, but the policy pins ${pinned}; refusing to run it`);
  }
  const dir = join(policy.stateDir, 'components', digest);
  const cached = readManifest(dir);
  if (cached) return { dir, manifest: cached };
  throw new CniError(ERR_PLUGIN_REFUSED, `plugin '${type}' (${wasm}) is pinned but not prepared: run \`cni-wasm approve ${wasm}\` once`);
}

/** Transpiles a third-party component into the digest-keyed cache (slow: jco). */
export async function prepareThirdParty(wasm: string, type: string, policy: Policy): Promise<Manifest> {
  const bytes = readFileSync(wasm);
  const dir = join(policy.stateDir, 'components', sha256(bytes));
  const { writeTranspiled } = await import('./package.js');
  try {
    return await writeTranspiled(bytes, type, dir, { bundled: false, grants: {} });
  } catch (e) {
    if (e instanceof PackageError) throw e;
    throw new PackageError(`${wasm} is not a usable component: ${(e as Error).message}`);
  }
}
