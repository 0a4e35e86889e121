// JSON the way Go's encoding/json writes it, so files we share with libcni
// (its result cache) and text we print in cnitool's place read byte for byte
// like theirs: a map's keys sorted, "<", ">", "&", U+2028 and U+2029
// escaped, and MarshalIndent's layout. Objects that Go marshals from a struct
// (a result of 0.x, the cache record itself) keep their given key order:
// pass `sort: false` for those, or wrap them in `Ordered`.

/** An object whose keys keep their order even when the rest is sorted (a Go struct). */
export class Ordered {
  constructor(readonly fields: Record<string, unknown>) {}
}

const ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function str(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => ESCAPES[c]!);
}

function encode(v: unknown, sort: boolean, indent: string, depth: number): string {
  if (v instanceof Ordered) return object(v.fields, false, sort, indent, depth);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) {
    // Go writes an empty slice as [] even when indenting
    if (v.length === 0) return '[]';
    const items = v.map((x) => encode(x, sort, indent, depth + 1));
    if (!indent) return `[${items.join(',')}]`;
    const pad = '\n' + indent.repeat(depth + 1);
    return `[${pad}${items.join(',' + pad)}\n${indent.repeat(depth)}]`;
  }
  if (typeof v === 'object') return object(v as Record<string, unknown>, sort, sort, indent, depth);
  return 'null';
}

function object(o: Record<string, unknown>, sortHere: boolean, sortBelow: boolean, indent: string, depth: number): string {
  let keys = Object.keys(o).filter((k) => o[k] !== undefined);
  // Go sorts map keys by their UTF-8 bytes
  if (sortHere) keys = keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (keys.length === 0) return '{}';
  const items = keys.map((k) => `${str(k)}:${indent ? ' ' : ''}${encode(o[k], sortBelow, indent, depth + 1)}`);
  if (!indent) return `{${items.join(',')}}`;
  const pad = '\n' + indent.repeat(depth + 1);
  return `{${pad}${items.join(',' + pad)}\n${indent.repeat(depth)}}`;
}

/** json.Marshal of a value decoded into interface{} (maps: sorted keys). */
export function goMarshal(v: unknown, opts: { sort?: boolean; indent?: string } = {}): string {
  return encode(v, opts.sort ?? true, opts.indent ?? '', 0);
}
