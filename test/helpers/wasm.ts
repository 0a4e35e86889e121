// Hand-made and hand-altered core wasm modules for the hostile-module tests:
// a real fixture's core module with extra tables or globals spliced in (still
// valid, so wit-component packages it), and header-only modules that declare
// counts the parser must refuse before anything compiles them.

export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

interface Section { id: number; payload: Uint8Array }

function readLeb(b: Uint8Array, p: number): [number, number] {
  let r = 0; let mul = 1; let x: number;
  do { x = b[p++]; r += (x & 0x7f) * mul; mul *= 128; } while (x & 0x80);
  return [r, p];
}

export function sections(wasm: Uint8Array): Section[] {
  const out: Section[] = [];
  let p = 8;
  while (p < wasm.length) {
    const id = wasm[p++];
    let len: number;
    [len, p] = readLeb(wasm, p);
    out.push({ id, payload: wasm.subarray(p, p + len) });
    p += len;
  }
  return out;
}

export function assemble(secs: Section[]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])];
  for (const s of secs) parts.push(Uint8Array.from([s.id, ...leb(s.payload.length)]), s.payload);
  return new Uint8Array(Buffer.concat(parts));
}

// the binary order of the known sections (tags, 13, sit between memory and global)
const ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

/** Adds entries to a vector section (creating it in order when absent). */
export function appendToVector(wasm: Uint8Array, id: number, entries: number[][]): Uint8Array {
  const secs = sections(wasm);
  const at = secs.findIndex((s) => s.id === id);
  const body = entries.flat();
  if (at >= 0) {
    const [n, p] = readLeb(secs[at].payload, 0);
    secs[at] = { id, payload: Uint8Array.from([...leb(n + entries.length), ...secs[at].payload.subarray(p), ...body]) };
  } else {
    const rank = ORDER.indexOf(id);
    let ins = secs.length;
    for (let i = 0; i < secs.length; i++) if (secs[i].id !== 0 && ORDER.indexOf(secs[i].id) > rank) { ins = i; break; }
    secs.splice(ins, 0, { id, payload: Uint8Array.from([...leb(entries.length), ...body]) });
  }
  return assemble(secs);
}

/** funcref tables; max null = no maximum */
export const addTables = (wasm: Uint8Array, n: number, min: number, max: number | null): Uint8Array =>
  appendToVector(wasm, 4, Array.from({ length: n }, () => max === null ? [0x70, 0x00, ...leb(min)] : [0x70, 0x01, ...leb(min), ...leb(max)]));

/** immutable i32 globals initialised to 0 */
export const addGlobals = (wasm: Uint8Array, n: number): Uint8Array =>
  appendToVector(wasm, 6, Array.from({ length: n }, () => [0x7f, 0x00, 0x41, 0x00, 0x0b]));

/** A module made only of section headers that declare `count` entries (for
 *  the parser: it must refuse on the count, before reading any entry). */
export function declaring(id: number, count: number, extraBytes = 0): Uint8Array {
  return assemble([{ id, payload: new Uint8Array(Buffer.concat([Uint8Array.from(leb(count)), new Uint8Array(extraBytes)])) }]);
}
