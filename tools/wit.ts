// A parser for the subset of WIT this project uses, plus the canonical ABI
// layout rules (size, alignment, flattening) the guest glue generator needs.
// wit-bindgen has no AssemblyScript target, so this is ours.

export type Type =
  | { kind: 'prim'; name: string }
  | { kind: 'string' }
  | { kind: 'list'; elem: Type }
  | { kind: 'option'; some: Type }
  | { kind: 'result'; ok: Type | null; err: Type | null }
  | { kind: 'tuple'; items: Type[] }
  | { kind: 'named'; name: string; iface: string };

export interface Field { name: string; type: Type; docs: string[] }
export type TypeDef =
  | { kind: 'record'; name: string; fields: Field[]; docs: string[] }
  | { kind: 'enum'; name: string; cases: string[]; docs: string[] }
  | { kind: 'variant'; name: string; cases: { name: string; type: Type | null }[]; docs: string[] }
  | { kind: 'alias'; name: string; type: Type; docs: string[] };

export interface Func { name: string; params: Field[]; result: Type | null; docs: string[] }

export interface Iface {
  name: string;
  types: Map<string, TypeDef>;
  /** local name -> interface that defines it */
  uses: Map<string, string>;
  funcs: Func[];
}

export interface World {
  name: string;
  uses: Map<string, string>;
  imports: string[];
  exports: Func[];
}

export interface Package {
  namespace: string;
  name: string;
  version: string;
  ifaces: Map<string, Iface>;
  worlds: Map<string, World>;
}

const PRIMS = new Set(['bool', 'u8', 'u16', 'u32', 'u64', 's8', 's16', 's32', 's64', 'f32', 'f64', 'char']);

function tokenize(src: string): { toks: string[]; docs: Map<number, string[]> } {
  const toks: string[] = [];
  const docs = new Map<number, string[]>();
  let pending: string[] = [];
  const re = /\s+|\/\/\/[^\n]*|\/\/[^\n]*|\/\*[\s\S]*?\*\/|->|[{}()<>,;:=.@\/*_]|[A-Za-z%][A-Za-z0-9-]*|[0-9][0-9.a-z-]*/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < src.length) {
    const at = re.lastIndex;
    m = re.exec(src);
    if (!m) throw new Error(`wit: unexpected character at ${at}: ${src.slice(at, at + 20)}`);
    const t = m[0];
    if (/^\s/.test(t) || t.startsWith('/*')) continue;
    if (t.startsWith('///')) { pending.push(t.slice(3).trim()); continue; }
    if (t.startsWith('//')) continue;
    if (pending.length) { docs.set(toks.length, pending); pending = []; }
    // %name escapes a keyword used as an identifier
    toks.push(t.startsWith('%') ? t.slice(1) : t);
  }
  return { toks, docs };
}

export function parseWit(src: string): Package {
  const { toks, docs } = tokenize(src);
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++];
  const expect = (t: string) => { const g = next(); if (g !== t) throw new Error(`wit: expected '${t}' but found '${g}' (token ${i})`); };
  const docAt = (k: number) => docs.get(k) ?? [];

  expect('package');
  const namespace = next(); expect(':');
  const name = next(); expect('@');
  let version = '';
  while (peek() !== ';') version += next();
  expect(';');
  const pkg: Package = { namespace, name, version, ifaces: new Map(), worlds: new Map() };

  const parseUse = (into: Map<string, string>) => {
    const from = next(); expect('.'); expect('{');
    while (peek() !== '}') { into.set(next(), from); if (peek() === ',') next(); }
    expect('}'); expect(';');
  };
  const parseType = (iface: string, uses: Map<string, string>): Type => {
    const t = next();
    if (PRIMS.has(t)) return { kind: 'prim', name: t };
    if (t === 'string') return { kind: 'string' };
    if (t === 'list') { expect('<'); const elem = parseType(iface, uses); expect('>'); return { kind: 'list', elem }; }
    if (t === 'option') { expect('<'); const some = parseType(iface, uses); expect('>'); return { kind: 'option', some }; }
    if (t === 'tuple') {
      expect('<'); const items: Type[] = [];
      while (peek() !== '>') { items.push(parseType(iface, uses)); if (peek() === ',') next(); }
      expect('>'); return { kind: 'tuple', items };
    }
    if (t === 'result') {
      if (peek() !== '<') return { kind: 'result', ok: null, err: null };
      next();
      let ok: Type | null = null;
      if (peek() === '_') next(); else ok = parseType(iface, uses);
      let err: Type | null = null;
      if (peek() === ',') { next(); err = parseType(iface, uses); }
      expect('>');
      return { kind: 'result', ok, err };
    }
    return { kind: 'named', name: t, iface: uses.get(t) ?? iface };
  };
  const parseFunc = (fname: string, fdocs: string[], iface: string, uses: Map<string, string>): Func => {
    expect(':'); expect('func'); expect('(');
    const params: Field[] = [];
    while (peek() !== ')') {
      const p = next(); expect(':'); params.push({ name: p, type: parseType(iface, uses), docs: [] });
      if (peek() === ',') next();
    }
    expect(')');
    let result: Type | null = null;
    if (peek() === '->') { next(); result = parseType(iface, uses); }
    expect(';');
    return { name: fname, params, result, docs: fdocs };
  };
  const parseTypeDef = (kw: string, d: string[], iface: string, uses: Map<string, string>): TypeDef => {
    const tname = next();
    if (kw === 'type') { expect('='); const type = parseType(iface, uses); expect(';'); return { kind: 'alias', name: tname, type, docs: d }; }
    expect('{');
    let out: TypeDef;
    if (kw === 'record') {
      const fields: Field[] = [];
      while (peek() !== '}') {
        const fd = docAt(i); const f = next(); expect(':');
        fields.push({ name: f, type: parseType(iface, uses), docs: fd });
        if (peek() === ',') next();
      }
      out = { kind: 'record', name: tname, fields, docs: d };
    } else if (kw === 'enum') {
      const cases: string[] = [];
      while (peek() !== '}') { cases.push(next()); if (peek() === ',') next(); }
      out = { kind: 'enum', name: tname, cases, docs: d };
    } else if (kw === 'variant') {
      const cases: { name: string; type: Type | null }[] = [];
      while (peek() !== '}') {
        const c = next(); let type: Type | null = null;
        if (peek() === '(') { next(); type = parseType(iface, uses); expect(')'); }
        cases.push({ name: c, type });
        if (peek() === ',') next();
      }
      out = { kind: 'variant', name: tname, cases, docs: d };
    } else throw new Error(`wit: unsupported type definition '${kw}'`);
    expect('}');
    return out;
  };

  while (i < toks.length) {
    const d = docAt(i);
    const kw = next();
    if (kw === 'interface') {
      const iname = next(); expect('{');
      const iface: Iface = { name: iname, types: new Map(), uses: new Map(), funcs: [] };
      while (peek() !== '}') {
        const idoc = docAt(i); const k = next();
        if (k === 'use') parseUse(iface.uses);
        else if (k === 'record' || k === 'enum' || k === 'variant' || k === 'type') { const td = parseTypeDef(k, idoc, iname, iface.uses); iface.types.set(td.name, td); }
        else iface.funcs.push(parseFunc(k, idoc, iname, iface.uses));
      }
      expect('}');
      pkg.ifaces.set(iname, iface);
    } else if (kw === 'world') {
      const wname = next(); expect('{');
      const world: World = { name: wname, uses: new Map(), imports: [], exports: [] };
      while (peek() !== '}') {
        const wdoc = docAt(i); const k = next();
        if (k === 'use') parseUse(world.uses);
        else if (k === 'import') { world.imports.push(next()); expect(';'); }
        else if (k === 'export') { const fname = next(); world.exports.push(parseFunc(fname, wdoc, '', world.uses)); }
        else throw new Error(`wit: unsupported world item '${k}'`);
      }
      expect('}');
      pkg.worlds.set(wname, world);
    } else throw new Error(`wit: unexpected '${kw}' at top level`);
    void d;
  }
  return pkg;
}

// ---- canonical ABI layout -------------------------------------------------

export type Flat = 'i32' | 'i64' | 'f32' | 'f64';

export class Abi {
  constructor(public readonly pkg: Package) {}

  resolve(t: Type): TypeDef | null {
    if (t.kind !== 'named') return null;
    const def = this.pkg.ifaces.get(t.iface)?.types.get(t.name);
    if (!def) throw new Error(`wit: unknown type '${t.name}' in interface '${t.iface}'`);
    if (def.kind === 'alias') return this.resolve(def.type) ?? def;
    return def;
  }

  private primSize(n: string): number {
    return { bool: 1, u8: 1, s8: 1, u16: 2, s16: 2, u32: 4, s32: 4, f32: 4, char: 4, u64: 8, s64: 8, f64: 8 }[n]!;
  }

  discSize(n: number): number { return n <= 256 ? 1 : n <= 65536 ? 2 : 4; }

  /** payload types of a variant-like type, in case order */
  cases(t: Type): (Type | null)[] | null {
    if (t.kind === 'option') return [null, t.some];
    if (t.kind === 'result') return [t.ok, t.err];
    const d = this.resolve(t);
    if (d?.kind === 'variant') return d.cases.map((c) => c.type);
    return null;
  }

  align(t: Type): number {
    switch (t.kind) {
      case 'prim': return this.primSize(t.name);
      case 'string': case 'list': return 4;
      case 'tuple': return Math.max(1, ...t.items.map((x) => this.align(x)));
      default: break;
    }
    const cs = this.cases(t);
    if (cs) return Math.max(this.discSize(cs.length), ...cs.map((c) => (c ? this.align(c) : 1)));
    const d = this.resolve(t)!;
    if (d.kind === 'record') return Math.max(1, ...d.fields.map((f) => this.align(f.type)));
    if (d.kind === 'enum') return this.discSize(d.cases.length);
    throw new Error('wit: cannot align ' + JSON.stringify(t));
  }

  size(t: Type): number {
    switch (t.kind) {
      case 'prim': return this.primSize(t.name);
      case 'string': case 'list': return 8;
      case 'tuple': return this.fieldOffsets(t.items).size;
      default: break;
    }
    const cs = this.cases(t);
    if (cs) {
      const off = this.payloadOffset(t);
      const max = Math.max(0, ...cs.map((c) => (c ? this.size(c) : 0)));
      return alignTo(off + max, this.align(t));
    }
    const d = this.resolve(t)!;
    if (d.kind === 'record') return this.fieldOffsets(d.fields.map((f) => f.type)).size;
    if (d.kind === 'enum') return this.discSize(d.cases.length);
    throw new Error('wit: cannot size ' + JSON.stringify(t));
  }

  payloadOffset(t: Type): number {
    const cs = this.cases(t)!;
    const maxAlign = Math.max(1, ...cs.map((c) => (c ? this.align(c) : 1)));
    return alignTo(this.discSize(cs.length), maxAlign);
  }

  fieldOffsets(types: Type[]): { offsets: number[]; size: number } {
    let at = 0; let maxAlign = 1;
    const offsets = types.map((ft) => {
      const a = this.align(ft); maxAlign = Math.max(maxAlign, a);
      at = alignTo(at, a); const o = at; at += this.size(ft); return o;
    });
    return { offsets, size: alignTo(at, maxAlign) };
  }

  flat(t: Type): Flat[] {
    switch (t.kind) {
      case 'prim': return t.name === 'u64' || t.name === 's64' ? ['i64'] : t.name === 'f32' ? ['f32'] : t.name === 'f64' ? ['f64'] : ['i32'];
      case 'string': case 'list': return ['i32', 'i32'];
      case 'tuple': return t.items.flatMap((x) => this.flat(x));
      default: break;
    }
    const cs = this.cases(t);
    if (cs) {
      const joined: Flat[] = [];
      for (const c of cs) {
        (c ? this.flat(c) : []).forEach((f, k) => { joined[k] = joined[k] === undefined ? f : join(joined[k], f); });
      }
      return ['i32', ...joined];
    }
    const d = this.resolve(t)!;
    if (d.kind === 'record') return d.fields.flatMap((f) => this.flat(f.type));
    if (d.kind === 'enum') return ['i32'];
    throw new Error('wit: cannot flatten ' + JSON.stringify(t));
  }
}

function join(a: Flat, b: Flat): Flat {
  if (a === b) return a;
  if ((a === 'i32' && b === 'f32') || (a === 'f32' && b === 'i32')) return 'i32';
  return 'i64';
}

export function alignTo(n: number, a: number): number { return Math.ceil(n / a) * a; }
