// The full component-level type of every function a component imports, from
// the component's own type section (printed by jco as WAT): each function as
// one structural string, types resolved through instance exports and outer
// aliases, so `u32` and `s32`, `f32` and `u32`, swapped enum cases or record
// fields all differ. Compared with the same strings of the host's WIT: the
// glue lifts arguments as the *component* declares them, so a function the
// host implements for `u32` must never be called with an `s32` a guest chose.
import { PackageError } from './errors.js';

type Node = string | Node[];

/** WAT s-expressions; `(;N;)` index comments kept as "#N" atoms, `(@...)` annotations dropped. */
export function parseSexp(text: string): Node[] {
  const out: Node[] = [];
  const stack: Node[][] = [out];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === ' ' || c === '\n' || c === '\t' || c === '\r') { i++; continue; }
    if (text.startsWith('(;', i)) {
      const end = text.indexOf(';)', i + 2);
      if (end < 0) throw new PackageError('unterminated comment in the component type');
      const body = text.slice(i + 2, end);
      if (/^\d+$/.test(body)) stack[stack.length - 1].push(`#${body}`);
      i = end + 2;
      continue;
    }
    if (text.startsWith(';;', i)) { const e = text.indexOf('\n', i); i = e < 0 ? n : e + 1; continue; }
    if (c === '(') {
      if (text.startsWith('(@', i)) { // annotation: skip to its matching paren
        let depth = 0;
        for (; i < n; i++) {
          if (text[i] === '"') { i++; while (i < n && text[i] !== '"') { if (text[i] === '\\') i++; i++; } continue; }
          if (text[i] === '(') depth++;
          else if (text[i] === ')' && --depth === 0) { i++; break; }
        }
        continue;
      }
      const list: Node[] = [];
      stack[stack.length - 1].push(list);
      stack.push(list);
      i++;
      continue;
    }
    if (c === ')') {
      if (stack.length === 1) throw new PackageError('unbalanced component type');
      stack.pop();
      i++;
      continue;
    }
    // an atom, possibly a string or a $"quoted id"
    let j = i;
    if (c === '"' || (c === '$' && text[i + 1] === '"')) {
      j = c === '$' ? i + 2 : i + 1;
      while (j < n && text[j] !== '"') { if (text[j] === '\\') j++; j++; }
      j++;
    } else {
      while (j < n && !' \n\t\r()'.includes(text[j])) j++;
    }
    stack[stack.length - 1].push(text.slice(i, j));
    i = j;
  }
  return out;
}

const PRIMITIVES = new Set(['bool', 's8', 'u8', 's16', 'u16', 's32', 'u32', 's64', 'u64', 'f32', 'f64', 'float32', 'float64', 'char', 'string', 'error-context']);
const isList = (x: Node): x is Node[] => Array.isArray(x);
const head = (x: Node): string => (isList(x) && typeof x[0] === 'string' ? x[0] : '');
const idxOf = (x: Node[]): number | null => {
  for (const e of x) if (typeof e === 'string' && /^#\d+$/.test(e)) return Number(e.slice(1));
  return null;
};
const unquote = (s: string): string => (s.startsWith('"') ? JSON.parse(s) : s);

/** One instance type (or the top level): its type index space. */
class Scope {
  readonly types = new Map<number, () => string>();
  readonly named = new Map<string, number>();
  readonly exports = new Map<string, number>(); // exported type name -> index
  readonly funcs = new Map<string, Node>(); // exported func name -> its (type N) node
  constructor(readonly outer: Scope | null) {}
  resolve(ref: Node, depth = 0): string {
    if (depth > 64) throw new PackageError('component types nest too deep');
    if (typeof ref === 'string') {
      if (PRIMITIVES.has(ref)) return ref === 'float32' ? 'f32' : ref === 'float64' ? 'f64' : ref;
      const k = /^\d+$/.test(ref) ? Number(ref) : this.named.get(ref);
      const f = k === undefined ? undefined : this.types.get(k);
      if (!f) throw new PackageError(`unknown type ${ref} in the component type`);
      return f();
    }
    return this.structure(ref, depth + 1);
  }
  structure(t: Node[], depth: number): string {
    const h = head(t);
    const args = t.slice(1).filter((x) => !(typeof x === 'string' && /^#\d+$/.test(x)));
    const r = (x: Node) => this.resolve(x, depth);
    switch (h) {
      case 'record': return `record{${args.map((f) => { const fl = f as Node[]; return `${unquote(fl[1] as string)}:${r(fl[2])}`; }).join(',')}}`;
      case 'enum': return `enum{${args.map((x) => unquote(x as string)).join(',')}}`;
      case 'flags': return `flags{${args.map((x) => unquote(x as string)).join(',')}}`;
      case 'variant': return `variant{${args.map((c) => { const cl = c as Node[]; return `${unquote(cl[1] as string)}${cl.length > 2 && !(isList(cl[2]) && head(cl[2]) === 'refines') ? `(${r(cl[2])})` : ''}`; }).join(',')}}`;
      case 'list': return `list<${r(args[0])}${args.length > 1 ? `,${args[1]}` : ''}>`;
      case 'tuple': return `tuple<${args.map(r).join(',')}>`;
      case 'option': return `option<${r(args[0])}>`;
      case 'result': {
        let ok = '_'; let err = '_';
        for (const a of args) {
          if (isList(a) && head(a) === 'error') err = r(a[1]);
          else ok = r(a);
        }
        return `result<${ok},${err}>`;
      }
      case 'func': {
        const params: string[] = [];
        let result = '';
        for (const a of args) {
          if (head(a) === 'param') { const p = a as Node[]; params.push(`${unquote(p[1] as string)}:${r(p[2])}`); }
          else if (head(a) === 'result') { const p = a as Node[]; result = p.slice(1).map(r).join(','); }
        }
        return `func(${params.join(',')})->${result || '()'}`;
      }
      case 'own': case 'borrow': case 'resource': case 'stream': case 'future':
        throw new PackageError(`the component uses ${h} types, which this host's WIT has none of`);
      default:
        throw new PackageError(`unexpected type form (${h}) in the component type`);
    }
  }
}

/** Fills a scope from the declarations of an instance type or of the component. */
function declare(scope: Scope, decls: Node[], instances: Map<string, Scope>, top: boolean): void {
  for (const d of decls) {
    if (!isList(d)) continue;
    const h = head(d);
    const k = idxOf(d);
    const name = typeof d[1] === 'string' && d[1].startsWith('$') ? d[1] : undefined;
    if (h === 'type' && k !== null) {
      const def = d.find((x, i) => i > 0 && isList(x)) as Node[] | undefined;
      if (!def) continue;
      if (head(def) === 'instance') {
        const inner = new Scope(scope);
        declare(inner, def.slice(1), instances, false);
        instanceTypes.set(String(k), inner);
        if (name) instanceTypes.set(name, inner);
        scope.types.set(k, () => { throw new PackageError('an instance type used as a value type'); });
      } else {
        scope.types.set(k, () => scope.structure(def, 0));
      }
      if (name) scope.named.set(name, k);
    } else if (h === 'alias') {
      const target = d.find((x, i) => i > 0 && isList(x) && head(x) === 'type') as Node[] | undefined;
      if (!target) continue;
      const tk = idxOf(target);
      const tname = typeof target[1] === 'string' && target[1].startsWith('$') ? target[1] : undefined;
      if (tk === null) continue;
      if (d[1] === 'outer') {
        const ref = d[3] as string;
        const outer = scope.outer;
        if (!outer) throw new PackageError('an outer alias at the top of the component');
        scope.types.set(tk, () => outer.resolve(ref));
      } else if (d[1] === 'export') {
        const inst = instances.get(d[2] as string);
        const ex = unquote(d[3] as string);
        if (!inst) throw new PackageError(`alias of an export of unknown instance ${String(d[2])}`);
        scope.types.set(tk, () => {
          const ik = inst.exports.get(ex);
          if (ik === undefined) throw new PackageError(`instance ${String(d[2])} has no type ${ex}`);
          return inst.resolve(String(ik));
        });
      }
      if (tname) scope.named.set(tname, tk);
    } else if (h === 'export' && !top) {
      const ex = unquote(d[2] as string);
      const what = d.find((x, i) => i > 1 && isList(x)) as Node[] | undefined;
      if (!what) continue;
      if (head(what) === 'type') {
        const eq = what.find((x) => isList(x) && head(x) === 'eq') as Node[] | undefined;
        if (k !== null && eq) {
          const ref = eq[1];
          scope.types.set(k, () => scope.resolve(ref));
          scope.exports.set(ex, k);
        }
      } else if (head(what) === 'func') {
        const t = what.find((x) => isList(x) && head(x) === 'type') as Node[] | undefined;
        if (t) scope.funcs.set(ex, t[1]);
      }
    } else if (h === 'import' && top) {
      const what = d.find((x, i) => i > 1 && isList(x)) as Node[] | undefined;
      if (!what || head(what) !== 'instance') continue;
      const iname = what[1] as string;
      const t = what.find((x) => isList(x) && head(x) === 'type') as Node[] | undefined;
      const inst = t ? instanceTypes.get(String(t[1])) : undefined;
      if (!inst) throw new PackageError(`import ${String(d[1])} has an instance type this host cannot read`);
      instances.set(iname, inst);
      importedAs.set(unquote(d[1] as string), inst);
    }
  }
}

// per call of importSignatures (module state, reset each time)
let instanceTypes = new Map<string, Scope>();
let importedAs = new Map<string, Scope>();

/** "cni-wasm:plugin/links@0.1.0" -> function name -> its full structural signature. */
export function importSignatures(wat: string): Map<string, Map<string, string>> {
  const doc = parseSexp(wat);
  const comp = doc.find((x) => head(x) === 'component') as Node[] | undefined;
  if (!comp) throw new PackageError('not a component (no type section to read)');
  instanceTypes = new Map();
  importedAs = new Map();
  const top = new Scope(null);
  try {
    declare(top, comp.slice(1), new Map(), true);
    const out = new Map<string, Map<string, string>>();
    for (const [name, inst] of importedAs) {
      const fns = new Map<string, string>();
      for (const [fn, t] of inst.funcs) fns.set(fn, inst.resolve(t));
      out.set(name, fns);
    }
    return out;
  } finally {
    instanceTypes = new Map();
    importedAs = new Map();
  }
}
