// Turning guest code into something the host can load: core wasm ->
// component -> transpiled JS + core modules + manifest. Used by the build for
// bundled plugins and by `cni-wasm approve` for third-party components, never
// on the CNI hot path (jco is slow to load and transpile).
import { nodeCrypto } from '../lazy.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KNOWN_INTERFACES, WIT_PACKAGE } from './interfaces.js';
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
}

export const MAX_MEMORY_PAGES_LIMIT = 1024; // 64 MiB

export async function packageComponent(core: Uint8Array, witSource: string): Promise<Uint8Array> {
  const { componentEmbed, componentNew } = await import('@bytecodealliance/jco');
  const embedded = await componentEmbed({ binary: core, witSource, stringEncoding: 'utf16', world: 'plugin' } as never);
  return componentNew(embedded, []);
}

export function sha256(b: Uint8Array): string {
  return nodeCrypto().createHash('sha256').update(b).digest('hex');
}

/** A refusal at load/approval time: the component is not run at all. */
export class PackageError extends Error {}

export async function writeTranspiled(
  component: Uint8Array, type: string, outDir: string,
  meta: { bundled: boolean; grants: Record<string, unknown>; objects?: ObjectDecl[] },
): Promise<Manifest> {
  const { transpile } = await import('@bytecodealliance/jco');
  const { files, imports, exports } = await transpile(component, {
    name: 'plugin', instantiation: 'sync', noTypescript: true, noNodejsCompat: true, quiet: true,
  } as never);

  // Refuse what the host cannot or will not provide.
  const ifaceNames: string[] = [];
  for (const imp of imports) {
    const m = /^([^/]+)\/([^@]+)(@.*)?$/.exec(imp);
    if (!m || m[1] !== WIT_PACKAGE || !KNOWN_INTERFACES.has(m[2])) {
      throw new PackageError(`component '${type}' imports '${imp}', which this host does not provide`);
    }
    ifaceNames.push(m[2]);
  }
  let maxPages = 0;
  mkdirSync(outDir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    if (name.endsWith('.d.ts')) continue;
    if (name === 'plugin.js') {
      writeFileSync(join(outDir, 'plugin.cjs'), toCommonJs(Buffer.from(bytes).toString('utf8')));
      continue;
    }
    if (name.endsWith('.wasm')) {
      const limit = memoryMaximum(bytes);
      if (limit === 'unbounded') throw new PackageError(`component '${type}' declares memory with no maximum; rebuild it with a maximum (asc --maximumMemory)`);
      if (limit > MAX_MEMORY_PAGES_LIMIT) throw new PackageError(`component '${type}' declares ${limit} pages of memory; the limit is ${MAX_MEMORY_PAGES_LIMIT}`);
      maxPages = Math.max(maxPages, limit);
    }
    writeFileSync(join(outDir, name), bytes);
  }
  const manifest: Manifest = {
    type, sha256: sha256(component), size: component.length,
    imports: ifaceNames, exports: exports.map(([n]) => n),
    maxMemoryPages: maxPages, bundled: meta.bundled, grants: meta.grants, ...(meta.objects ? { objects: meta.objects } : {}), jsFile: 'plugin.cjs',
  };
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
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
