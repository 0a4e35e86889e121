// type -> component. Bundled plugins come pre-transpiled in dist/plugins;
// third-party ones are `<type>.wasm` files in the policy's plugin dirs, run
// only when the policy pins their sha256, transpiled once into a cache keyed
// by that digest.
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import Module, { createRequire } from 'node:module';
import { packageRoot } from '../paths.js';
import { nodeCrypto } from '../lazy.js';
import { CniError } from '../cni/errors.js';
import type { Grants, Policy } from '../gate/policy.js';
import type { ObjectDecl } from '../gate/ownership.js';
import type { Manifest } from './package.js';
import { PackageError } from './errors.js';
import { FileRefused, checkPrivateDir, lstatOrNull, readRegularFile } from './files.js';
import { LIMITS } from './limits.js';
import { noteRefusedDigest } from '../gate/audit.js';

/** Kept in step with package.ts (not imported: that module is for approval only). */
const LIFT_GUARD_VERSION = 1;
const sha256 = (b: Uint8Array): string => nodeCrypto().createHash('sha256').update(b).digest('hex');
export { PackageError };

export const ERR_PLUGIN_REFUSED = 102;

export const bundledDir = (): string => join(packageRoot(), 'dist/plugins');

export type Instantiate = (
  getCoreModule: (path: string) => WebAssembly.Module, imports: Record<string, unknown>,
  instantiateCore?: (m: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance,
) => Record<string, (...a: unknown[]) => unknown>;

export interface LoadedPlugin {
  manifest: Manifest;
  dir: string;
  grants: Grants;
  /** config keys naming host objects, and the rights each gives (ownership.ts) */
  objects: ObjectDecl[];
  instantiate: Instantiate;
}

const MAX_MANIFEST_BYTES = 256 * 1024;
const MAX_GLUE_BYTES = 16 * 1024 * 1024;

function readManifest(dir: string, ownedByUs = false): Manifest | null {
  let text: Buffer;
  try {
    text = readRegularFile(join(dir, 'manifest.json'), { maxBytes: MAX_MANIFEST_BYTES, what: 'plugin manifest', ownedByUs });
  } catch (e) {
    if (e instanceof FileRefused && e.code === 'ENOENT') return null;
    throw new CniError(ERR_PLUGIN_REFUSED, `cannot load the plugin manifest in ${dir}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text.toString('utf8')) as Manifest;
  } catch {
    return null;
  }
}

/** Refusal that carries the digest of the component it is about (for the audit record). */
export class PluginRefused extends CniError {
  constructor(msg: string, public readonly sha256 = '') { super(ERR_PLUGIN_REFUSED, msg); }
}

const bundledTypes = (): Set<string> => {
  try {
    return new Set(readdirSync(bundledDir(), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name));
  } catch {
    return new Set();
  }
};

/** The component file for a type in the policy's plugin dirs: a regular file
 *  (never a symlink, a FIFO or a directory), or null when there is none. */
function findThirdParty(type: string, policy: Policy): string | null {
  for (const d of policy.pluginDirs) {
    const wasm = join(d, `${type}.wasm`);
    const st = lstatOrNull(wasm);
    if (!st) continue;
    if (st.isSymbolicLink()) throw new PluginRefused(`plugin '${type}': ${wasm} is a symbolic link; a component in a plugin dir must be a regular file (symlinks are not followed)`);
    if (!st.isFile()) throw new PluginRefused(`plugin '${type}': ${wasm} is not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a special file'}); refusing it`);
    return wasm;
  }
  return null;
}

/** The digest of a component file for a refusal record ('' if unreadable). */
function digestOf(wasm: string): string {
  try {
    return sha256(readRegularFile(wasm, { maxBytes: LIMITS.componentBytes, what: 'component' }));
  } catch {
    return '';
  }
}

/** Where a type's component lives, without loading it. Throws PluginRefused
 *  for a plugin-dir file that squats a bundled type's name or shadows an
 *  allowExec binary without a pin. */
export function locatePlugin(type: string, policy: Policy): { dir: string; manifest: Manifest } | { wasm: string } | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type)) return null;
  const bundled = join(bundledDir(), type);
  const m = bundledManifest(bundled);
  const wasm = findThirdParty(type, policy);
  if (m) {
    if (wasm) throw new PluginRefused(`plugin dir file ${wasm} is named like the bundled plugin '${type}'; a third-party component may not take a bundled type's name (rename it and approve it under its own type)`, digestOf(wasm));
    return { dir: bundled, manifest: m };
  }
  if (!wasm) return null;
  if (policy.allowExec.includes(type) && !policy.plugins[type]?.sha256) {
    throw new PluginRefused(`plugin dir file ${wasm} would shadow the '${type}' binary the policy allows to run (allowExec), and it is not pinned; remove it, or pin it in the policy to run it instead`, digestOf(wasm));
  }
  return { wasm };
}

/** Resident mode: bundled manifests as last read, with the identity of the file they were read from. */
const warmManifests = new Map<string, { id: string; manifest: Manifest }>();

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A bundled plugin's manifest. In resident mode it is read again only when
 * an lstat of the file (one syscall instead of open, fstat, reads, close and
 * a parse) shows another file or a change: device, inode, size, mtime or
 * ctime. Kept frozen, as a call must not change what later calls read.
 */
function bundledManifest(dir: string): Manifest | null {
  if (!warm) return readManifest(dir);
  const st = lstatSync(join(dir, 'manifest.json'), { throwIfNoEntry: false });
  // absent, a symlink or not a regular file: readManifest says what it says of it
  if (!st?.isFile()) { warmManifests.delete(dir); return readManifest(dir); }
  const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const kept = warmManifests.get(dir);
  if (kept?.id === id) return kept.manifest;
  // changed between the lstat and the read: the next lstat differs from `id` again, and reads it again
  const m = readManifest(dir);
  // Kept only once its times are 2 s old: the kernel stamps them from a
  // coarse clock, so a same-size rewrite within a tick would keep them.
  if (m && Date.now() - Math.max(st.mtimeMs, st.ctimeMs) > 2000) warmManifests.set(dir, { id, manifest: deepFreeze(m) });
  else warmManifests.delete(dir);
  return m;
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

/** A component's core module, from `compile` (which reads and checks the
 *  bytes); kept in resident mode per file version, or per approved digest when
 *  one is given (a module compiled from bytes of that digest is that code). */
export function warmCompile(file: string, digest: string | undefined, compile: () => WebAssembly.Module): WebAssembly.Module {
  if (!warm) return compile();
  let key: string;
  try {
    key = digest ? `${file}\u0000sha256:${digest}` : `${file}\u0000${statSync(file).mtimeMs}`;
  } catch {
    return compile(); // gone: compile() says why
  }
  let m = warmModules.get(key);
  if (!m) { m = compile(); warmModules.set(key, m); }
  return m;
}

/** Synchronous: delegation loads plugins while a guest call is in progress. */
export function loadPlugin(type: string, policy: Policy, where?: ReturnType<typeof locatePlugin>): LoadedPlugin | null {
  try {
    return load(type, policy, where);
  } catch (e) {
    // the invocation's load-refusal record names the component it refused
    if (e instanceof PluginRefused && e.sha256) noteRefusedDigest(type, e.sha256);
    throw e;
  }
}

function load(type: string, policy: Policy, located?: ReturnType<typeof locatePlugin>): LoadedPlugin | null {
  const where = located === undefined ? locatePlugin(type, policy) : located;
  if (!where) return null;
  let dir: string;
  let manifest: Manifest;
  let grants: Grants;
  let objects: ObjectDecl[];
  let mod: { instantiate: Instantiate };
  if ('wasm' in where) {
    ({ dir, manifest } = approvedThirdParty(type, where.wasm, policy));
    // a third-party plugin names host objects only as the operator allows
    grants = policy.plugins[type]?.grants ?? {};
    objects = policy.plugins[type]?.objects ?? [];
    mod = loadGlue(dir, manifest);
  } else {
    ({ dir, manifest } = where);
    grants = policy.plugins[type]?.grants ?? (manifest.grants as Grants);
    objects = policy.plugins[type]?.objects ?? manifest.objects ?? [];
    if (manifest.liftGuard !== LIFT_GUARD_VERSION) {
      throw new PluginRefused(`bundled plugin '${type}' was built by an older cni-wasm (no lift guard); rebuild the plugins (npm run build:plugins)`, manifest.sha256);
    }
    mod = requireCjs(join(dir, manifest.jsFile)) as { instantiate: Instantiate };
  }
  return { manifest, dir, grants, objects, instantiate: mod.instantiate };
}

/** A prepared third-party glue: its bytes checked against the digest the
 *  manifest recorded at approval, compiled from those very bytes (no V8 code
 *  cache: a cache file could carry other code for the same source length). */
function loadGlue(dir: string, manifest: Manifest): { instantiate: Instantiate } {
  const file = join(dir, manifest.jsFile);
  const src = verifiedFile(dir, manifest, manifest.jsFile, MAX_GLUE_BYTES).toString('utf8');
  // resident mode: the glue compiled from bytes of the approved digest (still read and checked every call)
  const key = `${file}\u0000sha256:${manifest.files?.[manifest.jsFile] ?? ''}`;
  const kept = warm?.get(key) as { instantiate: Instantiate } | undefined;
  if (kept) return kept;
  const mod = { exports: {} as { instantiate: Instantiate } };
  const fn = new vm.Script(Module.wrap(src), { filename: file }).runInThisContext() as (...a: unknown[]) => void;
  fn(mod.exports, createRequire(file), mod, file, dir);
  if (typeof mod.exports.instantiate !== 'function') throw new PluginRefused(`plugin '${manifest.type}': the prepared glue in ${dir} has no instantiate()`, manifest.sha256);
  warm?.set(key, mod.exports);
  return mod.exports;
}

/** Reads a file of a prepared plugin dir and checks it against the manifest. */
export function verifiedFile(dir: string, manifest: Manifest, name: string, maxBytes: number): Buffer {
  const want = manifest.files?.[name];
  if (!manifest.bundled && !want) {
    throw new PluginRefused(`plugin '${manifest.type}': ${join(dir, name)} is not listed in the manifest of its prepared cache; run \`cni-wasm approve\` again`, manifest.sha256);
  }
  let bytes: Buffer;
  try {
    bytes = readRegularFile(join(dir, name), { maxBytes, what: 'plugin file', ownedByUs: !manifest.bundled });
  } catch (e) {
    throw new PluginRefused(`plugin '${manifest.type}': ${(e as Error).message}`, manifest.sha256);
  }
  // A bundled plugin is part of the install, trusted like the host bundle
  // itself (hashing it would cost every call ~0.5 ms); third-party caches are checked.
  if (!manifest.bundled && sha256(bytes) !== want) {
    throw new PluginRefused(`plugin '${manifest.type}': ${join(dir, name)} does not match the digest recorded when it was approved; the prepared cache was altered, refusing to run it (run \`cni-wasm approve\` again)`, manifest.sha256);
  }
  return bytes;
}

function approvedThirdParty(type: string, wasm: string, policy: Policy): { dir: string; manifest: Manifest } {
  const pinned = policy.plugins[type]?.sha256;
  let bytes: Buffer;
  try {
    // bounded: the pin is checked on at most LIMITS.componentBytes
    bytes = readRegularFile(wasm, { maxBytes: LIMITS.componentBytes, what: 'component' });
  } catch (e) {
    throw new PluginRefused(`plugin '${type}': ${(e as Error).message}`, pinned ?? '');
  }
  const digest = sha256(bytes);
  if (!pinned) {
    throw new PluginRefused(`plugin '${type}' (${wasm}) is not approved: add it to the policy with "sha256": "${digest}" and the grants it needs`, digest);
  }
  if (pinned !== digest) {
    throw new PluginRefused(`plugin '${type}' (${wasm}) has sha256 ${digest}, but the policy pins ${pinned}; refusing to run it`, digest);
  }
  const root = join(policy.stateDir, 'components');
  const dir = join(root, digest);
  if (!lstatOrNull(join(dir, 'manifest.json'))) {
    throw new PluginRefused(`plugin '${type}' (${wasm}) is pinned but not prepared: run \`cni-wasm approve ${wasm}\` once`, digest);
  }
  try {
    checkPrivateDir(root, 'component cache');
    checkPrivateDir(dir, 'component cache');
  } catch (e) {
    throw new PluginRefused(`plugin '${type}': ${(e as Error).message}`, digest);
  }
  const cached = readManifest(dir, true);
  if (!cached) throw new PluginRefused(`plugin '${type}' (${wasm}) is pinned but its prepared cache has no readable manifest: run \`cni-wasm approve ${wasm}\` again`, digest);
  if (cached.sha256 !== digest || cached.bundled !== false || cached.jsFile !== 'plugin.cjs' || !cached.files || cached.liftGuard !== LIFT_GUARD_VERSION) {
    throw new PluginRefused(`plugin '${type}': the prepared cache ${dir} does not belong to this component or was prepared by an older cni-wasm; run \`cni-wasm approve ${wasm}\` again`, digest);
  }
  return { dir, manifest: cached };
}

/** Transpiles a third-party component into the digest-keyed cache (slow: jco). */
export async function prepareThirdParty(wasm: string, type: string, policy: Policy): Promise<Manifest> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type)) throw new PackageError(`'${type}' is not a plugin type name`);
  if (bundledTypes().has(type)) throw new PackageError(`'${type}' is the type of a bundled plugin; a third-party component may not take its name`);
  let bytes: Buffer;
  try {
    bytes = readRegularFile(wasm, { maxBytes: LIMITS.componentBytes, what: 'component' });
  } catch (e) {
    throw new PackageError((e as Error).message);
  }
  const root = join(policy.stateDir, 'components');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const dir = join(root, sha256(bytes));
  const { writeTranspiled } = await import('./package.js');
  try {
    return await writeTranspiled(bytes, type, dir, { bundled: false, grants: {} });
  } catch (e) {
    if (e instanceof PackageError) throw e;
    throw new PackageError(`${wasm} is not a usable component: ${(e as Error).message}`);
  }
}
