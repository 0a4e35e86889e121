// What a component may declare, checked on its bytes before anything is
// compiled: at approval (the component) and at every load (each core module
// read from the cache or the bundle). Linear memory is not the only thing a
// module can make the host allocate: tables, globals, element and data
// segments, functions and code are all host memory too, and V8 would
// allocate them at compile or instantiation time, before any time limit.
// V8's own wasm limits are set as a second line (applyV8Limits).
import { createRequire } from 'node:module';
import { PackageError } from './errors.js';

/** Each limit, per core module unless it says otherwise. Our bundled
 *  plugins use a small fraction of each (see `cni-wasm plugins --json`). */
export const LIMITS = {
  /** 64 KiB pages of one memory (64 MiB) */
  memoryPages: 1024,
  memories: 1,
  tables: 4,
  /** entries of one table; a table must declare a maximum */
  tableEntries: 10_000,
  globals: 1_000,
  elementSegments: 256,
  dataSegments: 20_000,
  functions: 20_000,
  imports: 500,
  exports: 500,
  types: 2_000,
  /** bytes of the code section */
  codeBytes: 8 * 1024 * 1024,
  /** bytes of one core module */
  moduleBytes: 16 * 1024 * 1024,
  /** bytes of a component file */
  componentBytes: 32 * 1024 * 1024,
  /** core modules in one component (jco: the plugin, its shims) */
  coreModules: 8,
  /** core instances one component creates */
  coreInstances: 16,
  /** nested components */
  components: 0,
} as const;

export interface CoreCounts {
  memories: number; maxMemoryPages: number | 'unbounded';
  tables: number; maxTableEntries: number | 'unbounded';
  globals: number; elementSegments: number; dataSegments: number;
  functions: number; imports: number; exports: number; types: number;
  codeBytes: number; moduleBytes: number;
}

class Reader {
  p: number;
  constructor(readonly b: Uint8Array, start: number, readonly end: number) { this.p = start; }
  byte(): number {
    if (this.p >= this.end) throw new PackageError('truncated module');
    return this.b[this.p++];
  }
  u32(): number {
    let r = 0; let shift = 0; let b: number;
    do {
      b = this.byte();
      if (shift > 28 && b >> (32 - shift) !== 0) throw new PackageError('malformed LEB128 number');
      r |= (b & 0x7f) << shift; shift += 7;
    } while (b & 0x80);
    return r >>> 0;
  }
  /** a LEB128 u64 limit, saturated to Number.MAX_SAFE_INTEGER */
  u64(): number {
    let r = 0; let mul = 1; let b: number; let n = 0;
    do {
      b = this.byte();
      if (++n > 10) throw new PackageError('malformed LEB128 number');
      r += (b & 0x7f) * mul; mul *= 128;
    } while (b & 0x80);
    return Math.min(r, Number.MAX_SAFE_INTEGER);
  }
  skip(n: number): void {
    if (this.p + n > this.end) throw new PackageError('truncated module');
    this.p += n;
  }
  name(): void { this.skip(this.u32()); }
  /** limits: flags, min, [max]; returns the max or 'unbounded' */
  limits(): { min: number; max: number | 'unbounded'; shared: boolean; is64: boolean } {
    const flags = this.byte();
    if (flags & ~0x0f) throw new PackageError(`unknown limits flags 0x${flags.toString(16)}`);
    const is64 = (flags & 4) !== 0;
    const min = is64 ? this.u64() : this.u32();
    const max = flags & 1 ? (is64 ? this.u64() : this.u32()) : 'unbounded';
    return { min, max, shared: (flags & 2) !== 0, is64 };
  }
  reftype(): void {
    const t = this.byte();
    // funcref, externref, or the GC proposal's (ref null? ht) forms
    if (t === 0x63 || t === 0x64) { this.u64(); return; }
    if (t < 0x69 || t > 0x74) throw new PackageError(`unknown reference type 0x${t.toString(16)}`);
  }
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];

/** Counts what a core module declares. Throws PackageError on a malformed one. */
export function coreCounts(wasm: Uint8Array): CoreCounts {
  if (wasm.length < 8 || MAGIC.some((m, i) => wasm[i] !== m)) throw new PackageError('not a core wasm module');
  if (wasm[4] !== 1 || wasm[5] !== 0 || wasm[6] !== 0 || wasm[7] !== 0) throw new PackageError('not a core wasm module (version)');
  const c: CoreCounts = {
    memories: 0, maxMemoryPages: 0, tables: 0, maxTableEntries: 0, globals: 0, elementSegments: 0,
    dataSegments: 0, functions: 0, imports: 0, exports: 0, types: 0, codeBytes: 0, moduleBytes: wasm.length,
  };
  const memory = (r: Reader) => {
    const l = r.limits();
    c.memories++;
    if (l.is64) throw new PackageError('declares a 64-bit memory, which this host does not run');
    if (l.max === 'unbounded' || c.maxMemoryPages === 'unbounded') c.maxMemoryPages = 'unbounded';
    else c.maxMemoryPages = Math.max(c.maxMemoryPages, l.max);
  };
  const table = (r: Reader) => {
    r.reftype();
    const l = r.limits();
    c.tables++;
    if (l.is64) throw new PackageError('declares a 64-bit table, which this host does not run');
    if (l.max === 'unbounded' || c.maxTableEntries === 'unbounded') c.maxTableEntries = 'unbounded';
    else c.maxTableEntries = Math.max(c.maxTableEntries, l.max, l.min);
  };
  const top = new Reader(wasm, 8, wasm.length);
  while (top.p < wasm.length) {
    const id = top.byte();
    const len = top.u32();
    const start = top.p;
    top.skip(len);
    const r = new Reader(wasm, start, start + len);
    switch (id) {
      case 1: c.types += r.u32(); break;
      case 2: {
        const n = r.u32();
        c.imports += n;
        if (n > LIMITS.imports) break; // refused below; do not walk a huge vector
        for (let i = 0; i < n; i++) {
          r.name(); r.name();
          const kind = r.byte();
          if (kind === 0) r.u32();
          else if (kind === 1) table(r);
          else if (kind === 2) memory(r);
          else if (kind === 3) { c.globals++; r.byte(); r.byte(); }
          else if (kind === 4) { r.byte(); r.u32(); }
          else throw new PackageError(`unknown import kind ${kind}`);
        }
        break;
      }
      case 3: c.functions += r.u32(); break;
      case 4: {
        const n = r.u32();
        if (n > LIMITS.tables) { c.tables += n; break; }
        for (let i = 0; i < n; i++) {
          // 0x40 0x00: a table with an initializer expression (function-references)
          if (wasm[r.p] === 0x40) throw new PackageError('declares a table with an initializer expression, which this host does not run');
          table(r);
        }
        break;
      }
      case 5: {
        const n = r.u32();
        if (n > LIMITS.memories) { c.memories += n; break; }
        for (let i = 0; i < n; i++) memory(r);
        break;
      }
      case 6: c.globals += r.u32(); break;
      case 7: c.exports += r.u32(); break;
      case 9: c.elementSegments += r.u32(); break;
      case 10: c.functions = Math.max(c.functions, r.u32()); c.codeBytes += len; break;
      case 11: c.dataSegments += r.u32(); break;
      case 12: c.dataSegments = Math.max(c.dataSegments, r.u32()); break;
      default: break; // custom (0), start (8), tags (13): no allocation of note
    }
  }
  return c;
}

const MB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** Throws PackageError naming the first limit the core module exceeds. */
export function checkCoreModule(wasm: Uint8Array, what: string): CoreCounts {
  let c: CoreCounts;
  try {
    c = coreCounts(wasm);
  } catch (e) {
    throw new PackageError(`${what}: ${(e as Error).message}`);
  }
  const over = (n: number, limit: number, noun: string) => {
    if (n > limit) throw new PackageError(`${what} declares ${n} ${noun}; the limit is ${limit}`);
  };
  over(c.moduleBytes, LIMITS.moduleBytes, 'bytes');
  over(c.memories, LIMITS.memories, 'memories');
  if (c.maxMemoryPages === 'unbounded') throw new PackageError(`${what} declares memory with no maximum; rebuild it with a maximum (asc --maximumMemory)`);
  if (c.maxMemoryPages > LIMITS.memoryPages) throw new PackageError(`${what} declares ${c.maxMemoryPages} pages of memory; the limit is ${LIMITS.memoryPages}`);
  over(c.tables, LIMITS.tables, 'tables');
  if (c.maxTableEntries === 'unbounded') throw new PackageError(`${what} declares a table with no maximum size; the limit is ${LIMITS.tableEntries} entries per table`);
  if (c.maxTableEntries > LIMITS.tableEntries) throw new PackageError(`${what} declares a table of ${c.maxTableEntries} entries; the limit is ${LIMITS.tableEntries} entries per table`);
  over(c.globals, LIMITS.globals, 'globals');
  over(c.elementSegments, LIMITS.elementSegments, 'element segments');
  over(c.dataSegments, LIMITS.dataSegments, 'data segments');
  over(c.functions, LIMITS.functions, 'functions');
  over(c.imports, LIMITS.imports, 'imports');
  over(c.exports, LIMITS.exports, 'exports');
  over(c.types, LIMITS.types, 'types');
  if (c.codeBytes > LIMITS.codeBytes) throw new PackageError(`${what} has ${MB(c.codeBytes)} of code; the limit is ${MB(LIMITS.codeBytes)}`);
  return c;
}

export interface ComponentCounts { coreModules: Uint8Array[]; coreInstances: number; components: number }

/** Walks a component's top level: its core modules, core instances and nested components. */
export function componentParts(bytes: Uint8Array): ComponentCounts {
  if (bytes.length < 8 || MAGIC.some((m, i) => bytes[i] !== m) || bytes[6] !== 1 || bytes[7] !== 0) {
    throw new PackageError('not a WebAssembly component');
  }
  const out: ComponentCounts = { coreModules: [], coreInstances: 0, components: 0 };
  const top = new Reader(bytes, 8, bytes.length);
  while (top.p < bytes.length) {
    const id = top.byte();
    const len = top.u32();
    const start = top.p;
    top.skip(len);
    if (id === 1) out.coreModules.push(bytes.subarray(start, start + len));
    else if (id === 2) out.coreInstances += new Reader(bytes, start, start + len).u32();
    else if (id === 4) out.components++;
  }
  return out;
}

/** Every check a component must pass before it is transpiled. */
export function checkComponent(bytes: Uint8Array, type: string): { maxMemoryPages: number } {
  const what = `component '${type}'`;
  if (bytes.length > LIMITS.componentBytes) throw new PackageError(`${what} is ${MB(bytes.length)}; the limit is ${MB(LIMITS.componentBytes)}`);
  let parts: ComponentCounts;
  try {
    parts = componentParts(bytes);
  } catch (e) {
    throw new PackageError(`${what}: ${(e as Error).message}`);
  }
  if (parts.components > LIMITS.components) throw new PackageError(`${what} nests ${parts.components} components; this host runs flat components only`);
  if (parts.coreModules.length > LIMITS.coreModules) throw new PackageError(`${what} declares ${parts.coreModules.length} core modules; the limit is ${LIMITS.coreModules}`);
  if (parts.coreInstances > LIMITS.coreInstances) throw new PackageError(`${what} declares ${parts.coreInstances} core instances; the limit is ${LIMITS.coreInstances}`);
  let maxMemoryPages = 0;
  parts.coreModules.forEach((m, i) => {
    const c = checkCoreModule(m, `${what} (core module ${i})`);
    maxMemoryPages = Math.max(maxMemoryPages, c.maxMemoryPages as number);
  });
  return { maxMemoryPages };
}

/** V8's own limits, below its defaults: a second line behind the checks
 *  above, for the compile and instantiation of a third-party component. */
export const V8_LIMIT_FLAGS = [
  `--wasm-max-mem-pages=${LIMITS.memoryPages}`,
  `--wasm-max-table-size=${LIMITS.tableEntries}`,
  `--wasm-max-module-size=${LIMITS.moduleBytes}`,
  '--wasm-max-committed-code-mb=256',
  '--wasm-max-code-space-size-mb=256',
];
/** V8's defaults for the same flags (Node 20, V8 11.3; `node --v8-options`).
 *  Restoring them restores V8's flag hash, which keys every code cache. */
export const V8_DEFAULT_FLAGS = [
  '--wasm-max-mem-pages=4294967295',
  '--wasm-max-table-size=10000000',
  '--wasm-max-module-size=1073741824',
  '--wasm-max-committed-code-mb=4095',
  '--wasm-max-code-space-size-mb=1024',
];

// loaded only when needed: node:v8 pulls in the stream machinery (~2 ms)
const setFlag = (f: string): void => (createRequire(import.meta.url)('node:v8') as typeof import('node:v8')).setFlagsFromString(f);

/**
 * Lowers V8's wasm limits around fn (compiling and instantiating a
 * component), then puts V8's defaults back. Measured: any V8 flag that
 * differs from its default while JS loads costs ~14 ms of CPU per process
 * (V8 rejects Node's built-in code cache, keyed by the flags), and a code
 * cache written at exit under other flags is rejected at the next start; so
 * the flags are lowered only for this window, where no JS is loaded, and
 * only for third-party components (bundled ones are our build, held to the
 * same declared limits by the checks above, which V8 enforces on growth).
 */
export function withV8Limits<T>(fn: () => T): T {
  for (const f of V8_LIMIT_FLAGS) setFlag(f);
  try {
    return fn();
  } finally {
    for (const f of V8_DEFAULT_FLAGS) setFlag(f);
  }
}
