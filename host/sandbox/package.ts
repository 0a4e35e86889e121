// Turning guest code into something the host can load: core wasm ->
// component -> transpiled JS + core modules + manifest. Used by the build for
// bundled plugins and by `cni-wasm approve` for third-party components, never
// on the CNI hot path (jco is slow to load and transpile).
import { nodeCrypto } from '../lazy.js';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { KNOWN_INTERFACES, WIT_PACKAGE, WIT_VERSION } from './interfaces.js';
import { importSignatures } from './witsig.js';
import { PackageError } from './errors.js';
import { directCalls } from './directcalls.js';
import { LIMITS, checkComponent, checkCoreModule } from './limits.js';
import type { ObjectDecl } from '../gate/ownership.js';

export interface Manifest {
  type: string;
  /** sha256 of the component binary */
  sha256: string;
  size: number;
  /** interface names the component imports ("links", "store", ...) */
  imports: string[];
  exports: string[];
  /** maximum memory of each core module, in 64 KiB pages */
  maxMemoryPages: number;
  bundled: boolean;
  /** what a bundled plugin asks for; third-party grants come from policy only */
  grants: Record<string, unknown>;
  /** what a bundled plugin's config keys name, with the rights each gives */
  objects?: ObjectDecl[];
  jsFile: string;
  /** sha256 of every file the loader reads from this dir (the glue, the core
   *  modules): checked before any of it is compiled or run */
  files?: Record<string, string>;
  /** the glue reports every string it lifts out of guest memory (lift guard) */
  liftGuard?: number;
  /** the glue calls straight through, without jco's async task machinery (directcalls.ts) */
  directCalls?: boolean;
}

/** Version of the lift guard the glue is rewritten with; the loader refuses
 *  a prepared cache without it (prepared by an older cni-wasm). */
export const LIFT_GUARD_VERSION = 1;

export const MAX_MEMORY_PAGES_LIMIT = LIMITS.memoryPages; // 64 MiB

export async function packageComponent(core: Uint8Array, witSource: string): Promise<Uint8Array> {
  const { componentEmbed, componentNew } = await import('@bytecodealliance/jco');
  const embedded = await componentEmbed({ binary: core, witSource, stringEncoding: 'utf16', world: 'plugin' } as never);
  return componentNew(embedded, []);
}

export function sha256(b: Uint8Array): string {
  return nodeCrypto().createHash('sha256').update(b).digest('hex');
}

export { PackageError };

type Files = Record<string, Uint8Array>;
const TRANSPILE_OPTS = { name: 'plugin', instantiation: 'sync', noNodejsCompat: true, quiet: true };

// ---- full signatures of the imports ------------------------------------------
// jco writes one .d.ts per imported interface, with every function the
// component imports and every type those use (records with their fields,
// enums with their cases). A component's import must match the host's WIT
// declaration by declaration, not by interface name alone: a `links.set-up`
// taking a string where the host has the `netns` enum is refused.

interface Reference { decls: Map<string, Set<string>>; sigs: Map<string, Map<string, string>> }
let reference: Promise<Reference> | undefined;

/** Declarations of each interface of wit/plugin.wit, as jco types them, and
 *  the full component-level signature of each of its functions. */
function referenceDecls(): Promise<Reference> {
  reference ??= (async () => {
    const { componentEmbed, componentNew, transpile } = await import('@bytecodealliance/jco');
    const witSource = readFileSync(join(packageRoot(), 'wit/plugin.wit'), 'utf8');
    const embedded = await componentEmbed({ dummy: true, witSource, world: 'plugin', stringEncoding: 'utf16' } as never);
    const component = await componentNew(embedded, []);
    const { files } = await transpile(component, TRANSPILE_OPTS as never);
    return { decls: declsByInterface(files as Files), sigs: await componentImportSignatures(component) };
  })();
  return reference;
}

/** The component's imported functions with their full types, read from its
 *  type section (printed without its core modules: code is not types). */
export async function componentImportSignatures(component: Uint8Array): Promise<Map<string, Map<string, string>>> {
  const { print } = await import('@bytecodealliance/jco');
  return importSignatures(await print(withoutCoreModules(component)));
}

function withoutCoreModules(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [b.subarray(0, 8)];
  let p = 8;
  const u32 = (): number => {
    let r = 0; let sh = 0; let x: number;
    do { x = b[p++]; r |= (x & 0x7f) << sh; sh += 7; } while (x & 0x80 && sh < 35);
    return r >>> 0;
  };
  while (p < b.length) {
    const start = p;
    const id = b[p++];
    const len = u32();
    const end = p + len;
    if (end > b.length) throw new PackageError('truncated component');
    if (id !== 1) parts.push(b.subarray(start, end));
    p = end;
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** "links" -> the set of its normalised declarations; "" -> the world's exports. */
export function declsByInterface(files: Files): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [name, bytes] of Object.entries(files)) {
    let key: string;
    const m = /^interfaces\/cni-wasm-plugin-([a-z0-9-]+)\.d\.ts$/.exec(name);
    if (m) key = m[1];
    else if (name === 'plugin.d.ts') key = '';
    else continue;
    out.set(key, splitDecls(Buffer.from(bytes).toString('utf8'), key === ''));
  }
  return out;
}

function splitDecls(text: string, world: boolean): Set<string> {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const decls = new Set<string>();
  if (world) {
    // only the export signatures of the world (`interface Root { ... }`)
    const m = /export interface \w+ \{([^}]*)\}/g;
    let x: RegExpExecArray | null;
    while ((x = m.exec(src))) {
      if (/^\s*'/.test(x[1])) continue; // the ImportObject
      for (const l of x[1].split('\n').map((s) => s.trim()).filter(Boolean)) decls.add(l);
    }
    return decls;
  }
  // one declaration per `export ...;` line or `export interface X { ... }` block
  const re = /export interface [\w$]+ \{[^}]*\}|export [^\n]*;/g;
  let x: RegExpExecArray | null;
  while ((x = re.exec(src))) decls.add(x[0].replace(/\s+/g, ' '));
  return decls;
}

async function checkSignatures(type: string, component: Uint8Array, files: Files): Promise<void> {
  const ref = await referenceDecls();
  for (const [iface, decls] of declsByInterface(files)) {
    const want = ref.decls.get(iface);
    const what = iface === '' ? 'exports' : `import of ${WIT_PACKAGE}/${iface}`;
    if (!want) throw new PackageError(`component '${type}' imports '${WIT_PACKAGE}/${iface}', which this host does not provide`);
    for (const d of decls) {
      if (!want.has(d)) {
        throw new PackageError(`component '${type}': its ${what} does not match the host's WIT: '${d.length > 200 ? d.slice(0, 200) + '…' : d}' is not declared so by ${WIT_PACKAGE}`);
      }
    }
  }
  // the typings say `number` for every integer width and float: the
  // component's own type section says which
  let sigs: Map<string, Map<string, string>>;
  try {
    sigs = await componentImportSignatures(component);
  } catch (e) {
    throw new PackageError(`component '${type}': cannot read the types of its imports: ${(e as Error).message}`);
  }
  for (const [name, fns] of sigs) {
    const want = ref.sigs.get(name);
    if (!want) throw new PackageError(`component '${type}' imports '${name}', which this host does not provide (it provides ${WIT_PACKAGE}/<interface>@${WIT_VERSION})`);
    for (const [fn, sig] of fns) {
      const w = want.get(fn);
      if (w !== sig) {
        const short = (x: string) => (x.length > 300 ? x.slice(0, 300) + '…' : x);
        throw new PackageError(`component '${type}': its import ${name} function '${fn}' has the type ${short(sig)}, but the host's WIT declares ${w ? short(w) : 'no such function'}`);
      }
    }
  }
}

/** Transpiles and writes the loadable dir; refuses what the host will not run.
 *  Any earlier content of outDir is removed first: a cache is never trusted
 *  because it was there. */
export async function writeTranspiled(
  component: Uint8Array, type: string, outDir: string,
  meta: { bundled: boolean; grants: Record<string, unknown>; objects?: ObjectDecl[] },
): Promise<Manifest> {
  // What the component declares, before jco parses it any further.
  const { maxMemoryPages } = checkComponent(component, type);
  const { transpile } = await import('@bytecodealliance/jco');
  const { files, imports, exports } = await transpile(component, TRANSPILE_OPTS as never);

  // Refuse what the host cannot or will not provide.
  const ifaceNames: string[] = [];
  for (const imp of imports) {
    const m = /^([^/]+)\/([^@]+)(@.*)?$/.exec(imp);
    if (!m || m[1] !== WIT_PACKAGE || !KNOWN_INTERFACES.has(m[2])) {
      throw new PackageError(`component '${type}' imports '${imp}', which this host does not provide`);
    }
    ifaceNames.push(m[2]);
  }
  await checkSignatures(type, component, files as Files);

  const out: Record<string, Buffer> = {};
  let maxPages = 0;
  let direct = false;
  for (const [name, bytes] of Object.entries(files as Files)) {
    if (name.endsWith('.d.ts')) continue;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new PackageError(`component '${type}': unexpected file '${name}' from the transpiler`);
    if (name === 'plugin.js') {
      const glue = prepareGlue(Buffer.from(bytes).toString('utf8'), type, meta.bundled);
      direct = glue.direct;
      out['plugin.cjs'] = Buffer.from(glue.src);
      continue;
    }
    if (name.endsWith('.wasm')) {
      const c = checkCoreModule(bytes, `component '${type}' (${name})`);
      maxPages = Math.max(maxPages, c.maxMemoryPages as number);
    }
    out[name] = Buffer.from(bytes);
  }
  if (!out['plugin.cjs']) throw new PackageError(`component '${type}': the transpiler wrote no plugin.js`);
  maxPages = Math.max(maxPages, maxMemoryPages);

  // A fresh dir, root-only, whatever the umask; then the files; the
  // manifest (with every file's digest) last.
  // (the build writes the component itself into a bundled plugin's dir first)
  if (!meta.bundled) rmSync(outDir, { recursive: true, force: true });
  else for (const name of [...Object.keys(out), 'manifest.json', 'plugin.cjs.v8cache']) rmSync(join(outDir, name), { force: true });
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  chmodSync(outDir, meta.bundled ? 0o755 : 0o700);
  const digests: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(out)) {
    writeFileSync(join(outDir, name), bytes, { mode: 0o600, flag: 'wx' });
    if (meta.bundled) chmodSync(join(outDir, name), 0o644);
    digests[name] = sha256(bytes);
  }
  const manifest: Manifest = {
    type, sha256: sha256(component), size: component.length,
    imports: ifaceNames, exports: exports.map(([n]) => n),
    maxMemoryPages: maxPages, bundled: meta.bundled, grants: meta.grants, ...(meta.objects ? { objects: meta.objects } : {}), jsFile: 'plugin.cjs',
    files: digests, liftGuard: LIFT_GUARD_VERSION, directCalls: direct,
  };
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: meta.bundled ? 0o644 : 0o600 });
  return manifest;
}

/** jco's plugin.js -> the plugin.cjs the loader runs: string lifts guarded,
 *  cheap feature probes, CommonJS, calls made direct (directcalls.ts).
 *  Bundled plugins are built with the jco the rewrite knows: glue it cannot
 *  rewrite means jco changed, and the build refuses it; a third-party
 *  component keeps jco's calls as they are (correct, slower). `direct:
 *  false` leaves them so (tests compare the two). */
export function prepareGlue(jcoJs: string, type: string, bundled: boolean, opts: { direct?: boolean } = {}): { src: string; direct: boolean } {
  const cjs = toCommonJs(cheapProbes(guardLifts(jcoJs)));
  if (opts.direct === false) return { src: cjs, direct: false };
  const glue = directCalls(cjs);
  if (glue.skipped && bundled) throw new PackageError(`component '${type}': its glue's calls could not be made direct (${glue.skipped}); see host/sandbox/directcalls.ts`);
  return { src: glue.src, direct: !glue.skipped };
}

/** jco's glue for a component, as writeTranspiled gets it (for tests). */
export async function transpiledGlue(component: Uint8Array): Promise<string> {
  const { transpile } = await import('@bytecodealliance/jco');
  const { files } = await transpile(component, TRANSPILE_OPTS as never);
  return Buffer.from((files as Files)['plugin.js']).toString('utf8');
}

// ---- the lift guard ----------------------------------------------------------
// jco's glue turns every string argument of a host call into a JS string
// (TextDecoder.decode over guest memory) before our host function runs; a
// list holding the same (ptr, len) 100 000 times becomes 100 000 copies. The
// glue's decoders are replaced by ones that first report the size to the
// host (imports[LIFT_GUARD_KEY]): over its budget the host gets an empty
// string and refuses the call (host/sandbox/sandbox.ts).
export const LIFT_GUARD_KEY = '__cniWasmLiftGuard';

export function guardLifts(src: string): string {
  const header = /^(?:export )?function instantiate\(getCoreModule, imports, [^\n]*\) \{$/m.exec(src);
  if (!header) throw new PackageError('unexpected transpiled component: no instantiate(getCoreModule, imports, ...) function');
  const decoders = src.split('new TextDecoder(').length - 1;
  let out = src.replace(/new TextDecoder\(/g, '__cniGuardedDecoder(');
  const guard = `\nconst __cniGuardedDecoder = imports[${JSON.stringify(LIFT_GUARD_KEY)}];\n` +
    `if (typeof __cniGuardedDecoder !== 'function') throw new Error('cni-wasm: instantiated without the lift guard');\n`;
  const at = header.index + header[0].length;
  out = out.slice(0, at) + guard + out.slice(at);
  if (decoders > 0 && /new TextDecoder\(/.test(out)) throw new PackageError('unexpected transpiled component: a string decoder was left unguarded');
  if (/\bTextDecoder\b/.test(out)) throw new PackageError('unexpected transpiled component: it uses TextDecoder in a way the lift guard does not cover');
  return out;
}

// ---- cheap feature probes -----------------------------------------------------
// The glue probes for JSPI with `try { x = WebAssembly.promising(f) } catch
// { x = f }` twice per instantiation. Where JSPI is absent (Node 20), the
// TypeError "WebAssembly.promising is not a function" makes V8 re-parse the
// enclosing function to print the call site: the whole ~6000-line
// instantiation body, ~4.5 ms each time, 9 of bridge's ~10 ms of
// instantiation (a CPU profile of the daemon's workers showed it). The probe
// is replaced by one that throws a TypeError made once, which costs nothing:
// the same outcome on every Node.
export function cheapProbes(src: string): string {
  const header = /^(?:export )?function instantiate\(getCoreModule, imports, [^\n]*\) \{$/m.exec(src);
  if (!header || !src.includes('WebAssembly.promising(')) return src;
  const out = src.replace(/WebAssembly\.promising\(/g, '__cniPromising(');
  // one error object, thrown where JSPI is absent: not even a stack trace to capture
  const helper = `\nconst __cniNoJspi = new TypeError('no JSPI');\nconst __cniPromising = (f) => { if (typeof WebAssembly.promising !== 'function') throw __cniNoJspi; return WebAssembly.promising(f); };\n`;
  const at = header.index + header[0].length;
  return out.slice(0, at) + helper + out.slice(at);
}

/** jco emits an ES module; as CommonJS it can be loaded with require(), so a
 *  plugin can be loaded in the middle of a synchronous guest call (delegation). */
function toCommonJs(src: string): string {
  const names: string[] = [];
  const out = src.replace(/^export (function|const|let|class) ([A-Za-z_$][\w$]*)/gm, (_m, kw: string, name: string) => {
    names.push(name);
    return `${kw} ${name}`;
  });
  if (/^\s*(import|export)\s/m.test(out)) throw new PackageError('unexpected import/export left in the transpiled component');
  return `${out}\nmodule.exports = { ${names.join(', ')} };\n`;
}

/** The largest declared maximum of the module's own memories (0 if none). */
export function memoryMaximum(wasm: Uint8Array): number | 'unbounded' {
  let p = 8;
  const u32 = (): number => {
    let r = 0; let shift = 0; let b: number;
    do { b = wasm[p++]; r |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
    return r >>> 0;
  };
  let max = 0;
  while (p < wasm.length) {
    const id = wasm[p++];
    const len = u32();
    const end = p + len;
    if (id === 5) {
      const n = u32();
      for (let i = 0; i < n; i++) {
        const flags = u32();
        u32(); // minimum
        if (!(flags & 1)) return 'unbounded';
        max = Math.max(max, u32());
      }
    }
    p = end;
  }
  return max;
}
