// Minimal JSON DOM for CNI config and result documents.
//
// Designed for `--runtime stub` (nothing is ever freed): the parser slices the
// input instead of copying per character, and the serializer collects parts in
// an array and joins once, so memory use stays linear in document size.
// Offsets in error messages are UTF-16 code-unit indexes into the input.

export enum JSONKind { Null, Bool, Number, String, Array, Object }

/** Nesting limit for arrays/objects; a depth of 64 is accepted, 65 is not. */
export const JSON_MAX_DEPTH: i32 = 64;

export class JSONValue {
  kind: JSONKind = JSONKind.Null;
  private b: bool = false;
  private n: f64 = 0;
  private s: string = "";
  // Array elements, or object values parallel to `names` (insertion order).
  private items: Array<JSONValue> | null = null;
  private names: Array<string> | null = null;

  static nul(): JSONValue { return new JSONValue(); }
  static fromBool(b: bool): JSONValue {
    const v = new JSONValue(); v.kind = JSONKind.Bool; v.b = b; return v;
  }
  static fromNumber(n: f64): JSONValue {
    const v = new JSONValue(); v.kind = JSONKind.Number; v.n = n; return v;
  }
  static fromString(s: string): JSONValue {
    const v = new JSONValue(); v.kind = JSONKind.String; v.s = s; return v;
  }
  static newArray(): JSONValue {
    const v = new JSONValue(); v.kind = JSONKind.Array; v.items = []; return v;
  }
  static newObject(): JSONValue {
    const v = new JSONValue(); v.kind = JSONKind.Object;
    v.items = []; v.names = []; return v;
  }

  isNull(): bool { return this.kind == JSONKind.Null; }
  isBool(): bool { return this.kind == JSONKind.Bool; }
  isNumber(): bool { return this.kind == JSONKind.Number; }
  isString(): bool { return this.kind == JSONKind.String; }
  isArray(): bool { return this.kind == JSONKind.Array; }
  isObject(): bool { return this.kind == JSONKind.Object; }

  // Scalar accessors return a zero value on kind mismatch rather than abort.
  asBool(): bool { return this.kind == JSONKind.Bool ? this.b : false; }
  asNumber(): f64 { return this.kind == JSONKind.Number ? this.n : 0; }
  asString(): string { return this.kind == JSONKind.String ? this.s : ""; }
  /** The live element array (mutations are visible); empty copy for non-arrays. */
  asArray(): Array<JSONValue> {
    return this.kind == JSONKind.Array ? this.items! : new Array<JSONValue>();
  }

  /** Element count for arrays, member count for objects, 0 otherwise. */
  get length(): i32 {
    const items = this.items;
    return items ? items.length : 0;
  }

  push(v: JSONValue): JSONValue {
    if (this.kind == JSONKind.Array) this.items!.push(v);
    return this;
  }

  // ---- objects ----

  private indexOf(key: string): i32 {
    if (this.kind != JSONKind.Object) return -1;
    const names = this.names!;
    for (let i = 0, n = names.length; i < n; i++) {
      if (names[i] == key) return i;
    }
    return -1;
  }

  get(key: string): JSONValue | null {
    const i = this.indexOf(key);
    return i < 0 ? null : this.items![i];
  }
  has(key: string): bool { return this.indexOf(key) >= 0; }
  keys(): Array<string> {
    return this.kind == JSONKind.Object ? this.names!.slice(0) : new Array<string>();
  }

  /** Sets a member, replacing in place (keeping its position) if present. No-op on non-objects. */
  set(key: string, v: JSONValue): JSONValue {
    if (this.kind != JSONKind.Object) return this;
    const i = this.indexOf(key);
    if (i >= 0) {
      this.items![i] = v;
    } else {
      this.names!.push(key);
      this.items!.push(v);
    }
    return this;
  }

  /** Removes a member; returns whether it was present. */
  remove(key: string): bool {
    const i = this.indexOf(key);
    if (i < 0) return false;
    this.names!.splice(i, 1);
    this.items!.splice(i, 1);
    return true;
  }

  getString(key: string, def: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == JSONKind.String ? v.s : def;
  }
  getBool(key: string, def: bool = false): bool {
    const v = this.get(key);
    return v != null && v.kind == JSONKind.Bool ? v.b : def;
  }
  getNumber(key: string, def: f64 = 0): f64 {
    const v = this.get(key);
    return v != null && v.kind == JSONKind.Number ? v.n : def;
  }
  getObject(key: string): JSONValue | null {
    const v = this.get(key);
    return v != null && v.kind == JSONKind.Object ? v : null;
  }
  getArray(key: string): Array<JSONValue> | null {
    const v = this.get(key);
    return v != null && v.kind == JSONKind.Array ? v.items : null;
  }

  /** Deep copy. */
  clone(): JSONValue {
    const c = new JSONValue();
    c.kind = this.kind; c.b = this.b; c.n = this.n; c.s = this.s;
    const items = this.items;
    if (items) {
      const copy = new Array<JSONValue>(items.length);
      for (let i = 0, n = items.length; i < n; i++) copy[i] = items[i].clone();
      c.items = copy;
    }
    const names = this.names;
    if (names) c.names = names.slice(0);
    return c;
  }

  /** Compact serialization. */
  stringify(): string {
    const out = new Array<string>();
    this.write(out);
    return out.join("");
  }

  private write(out: Array<string>): void {
    switch (this.kind) {
      case JSONKind.Null: out.push("null"); break;
      case JSONKind.Bool: out.push(this.b ? "true" : "false"); break;
      case JSONKind.Number: out.push(formatNumber(this.n)); break;
      case JSONKind.String: writeString(out, this.s); break;
      case JSONKind.Array: {
        const items = this.items!;
        out.push("[");
        for (let i = 0, n = items.length; i < n; i++) {
          if (i) out.push(",");
          items[i].write(out);
        }
        out.push("]");
        break;
      }
      default: {
        const items = this.items!, names = this.names!;
        out.push("{");
        for (let i = 0, n = items.length; i < n; i++) {
          if (i) out.push(",");
          writeString(out, names[i]);
          out.push(":");
          items[i].write(out);
        }
        out.push("}");
      }
    }
  }
}

// ---- serialization helpers ----

/** JSON number text: integers without ".0"; NaN/Infinity have no JSON form, so "null". */
export function formatNumber(x: f64): string {
  if (!isFinite(x)) return "null";
  // AS's dtoa (Grisu2) always round-trips but may not pick the closest digits,
  // and writes integers as "1500.0".
  const s = x.toString();
  return s.endsWith(".0") ? s.slice(0, s.length - 2) : s;
}

const HEX = "0123456789abcdef";

function writeString(out: Array<string>, s: string): void {
  out.push('"');
  let start = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue; // non-ASCII kept as-is
    if (i > start) out.push(s.substring(start, i));
    start = i + 1;
    if (c == 0x22) out.push('\\"');
    else if (c == 0x5c) out.push("\\\\");
    else if (c == 0x0a) out.push("\\n");
    else if (c == 0x0d) out.push("\\r");
    else if (c == 0x09) out.push("\\t");
    else if (c == 0x08) out.push("\\b");
    else if (c == 0x0c) out.push("\\f");
    else out.push("\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
  }
  if (start == 0) out.push(s);
  else if (start < n) out.push(s.substring(start));
  out.push('"');
}

// ---- decimal → f64 ----
//
// AS's parseFloat is not correctly rounded (e.g. "3.9292734840969677e+49"
// comes back as ~3.9e38), so numbers are converted here: an exact fast path
// for the common case, else an f64 estimate corrected ulp by ulp against exact
// big-integer comparisons with the midpoints between neighbouring doubles.

const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
// Beyond ~770 significant digits only "is anything non-zero left" matters.
const MAX_DIGITS = 800;
const INF_BITS: u64 = 0x7ff0000000000000;

/** Converts s[start, end), which must match the JSON number grammar; correctly rounded. */
function decimalToF64(s: string, start: i32, end: i32): f64 {
  let i = start;
  const neg = s.charCodeAt(i) == 0x2d;
  if (neg) i++;
  const digits = new Array<u8>();
  let e10 = 0;           // value = digits × 10^e10
  let sticky = false;    // a non-zero digit was dropped
  let inFraction = false;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x2e) { inFraction = true; continue; }
    if (!isDigit(c)) break;
    if (c == 0x30 && digits.length == 0) { if (inFraction) e10--; continue; } // leading zeros
    if (digits.length < MAX_DIGITS) {
      digits.push(<u8>(c - 0x30));
      if (inFraction) e10--;
    } else {
      if (c != 0x30) sticky = true;
      if (!inFraction) e10++;
    }
  }
  if (i < end) { // exponent; saturate, anything this large is out of range anyway
    i++;
    let eneg = false;
    const sc = s.charCodeAt(i);
    if (sc == 0x2b || sc == 0x2d) { eneg = sc == 0x2d; i++; }
    let ev = 0;
    for (; i < end; i++) ev = min(ev * 10 + (s.charCodeAt(i) - 0x30), 100000);
    e10 += eneg ? -ev : ev;
  }
  if (sticky) {
    digits.push(1); e10--; // one digit past the kept ones stands in for the dropped tail
  } else {
    while (digits.length > 0 && digits[digits.length - 1] == 0) { digits.pop(); e10++; }
  }
  const n = digits.length;
  const sign: f64 = neg ? -1 : 1;
  if (n == 0 || n + e10 < -324) return sign * 0;         // below half the smallest subnormal
  if (n - 1 + e10 > 309) return sign * Infinity;         // above 1e309

  let w: u64 = 0;
  const lead = min(n, 19);
  for (let k = 0; k < lead; k++) w = w * 10 + digits[k];
  if (n <= 15 && e10 >= -22 && e10 <= 22) {
    // Exact operands, one rounding: correctly rounded (Clinger's fast path).
    return sign * (e10 < 0 ? <f64>w / POW10[-e10] : <f64>w * POW10[e10]);
  }
  // Estimate within a few ulps, then correct.
  let x = <f64>w;
  let ee = e10 + (n - lead);
  while (ee > 22) { x *= 1e22; ee -= 22; }
  while (ee < -22) { x /= 1e22; ee += 22; }
  x = ee < 0 ? x / POW10[-ee] : x * POW10[ee];

  // Exact value X = D × 10^e10 = D × 5^e10 × 2^e10; fold the 5^|e10| into one side.
  let d = Big.fromU64(0);
  for (let k = 0; k < n; k++) d = d.mulSmall(10, digits[k]);
  const dSide = e10 > 0 ? d.mulPow5(e10) : d;
  const mSide = e10 < 0 ? Big.fromU64(1).mulPow5(-e10) : Big.fromU64(1);
  let bits = reinterpret<u64>(x);
  while (true) {
    if (bits < INF_BITS) {
      const c = compareMid(dSide, mSide, e10, bits);
      if (c > 0 || (c == 0 && (bits & 1) != 0)) { bits++; continue; } // ties to even
    }
    if (bits > 0) {
      const c = compareMid(dSide, mSide, e10, bits - 1);
      if (c < 0 || (c == 0 && (bits & 1) != 0)) { bits--; continue; }
    }
    break;
  }
  return sign * reinterpret<f64>(bits);
}

/** Compares X with the midpoint of the doubles with bit patterns lo and lo+1 (lo+1 may be +Inf = 2^1024). */
function compareMid(dSide: Big, mSide: Big, e10: i32, lo: u64): i32 {
  // A double (or +Inf) is m × 2^e; neighbours differ in e by at most one.
  const ea = <i32>(lo >> 52), eb = <i32>((lo + 1) >> 52);
  const ma = ea == 0 ? lo : (lo & 0xfffffffffffff) | (<u64>1 << 52);
  const mb = eb == 0 ? lo + 1 : ((lo + 1) & 0xfffffffffffff) | (<u64>1 << 52);
  const xa = (ea == 0 ? 1 : ea) - 1075, xb = (eb == 0 ? 1 : eb) - 1075;
  const mid = ma + (mb << <u64>(xb - xa)); // midpoint = mid × 2^(xa - 1)
  const f = xa - 1;
  // X = dSide × 2^e10 / (mSide) vs mid × 2^f  ⇔  dSide × 2^e10 vs mid × mSide × 2^f
  let sl = e10, sr = f;
  const base = sl < sr ? sl : sr;
  sl -= base; sr -= base;
  return Big.compare(dSide.shl(sl), mSide.mulU64(mid).shl(sr));
}

/** Minimal unsigned big integer (little-endian u32 limbs) for decimalToF64. */
class Big {
  constructor(public limbs: Array<u32>) {}

  static fromU64(v: u64): Big {
    const l = new Array<u32>();
    while (v != 0) { l.push(<u32>v); v >>= 32; }
    return new Big(l);
  }

  /** this × m + add */
  mulSmall(m: u32, add: u32): Big {
    const l = this.limbs, out = new Array<u32>(l.length);
    let carry: u64 = add;
    for (let i = 0; i < l.length; i++) {
      const t = <u64>l[i] * m + carry;
      out[i] = <u32>t;
      carry = t >> 32;
    }
    if (carry) out.push(<u32>carry);
    return new Big(out);
  }

  mulPow5(k: i32): Big {
    let r: Big = this;
    for (; k >= 13; k -= 13) r = r.mulSmall(1220703125, 0); // 5^13 fits in u32
    for (; k > 0; k--) r = r.mulSmall(5, 0);
    return r;
  }

  mulU64(v: u64): Big {
    return this.mulSmall(<u32>(v >> 32), 0).shl(32).add(this.mulSmall(<u32>v, 0));
  }

  add(o: Big): Big {
    const a = this.limbs, b = o.limbs;
    const n = max(a.length, b.length), out = new Array<u32>(n);
    let carry: u64 = 0;
    for (let i = 0; i < n; i++) {
      const t = <u64>(i < a.length ? a[i] : 0) + <u64>(i < b.length ? b[i] : 0) + carry;
      out[i] = <u32>t;
      carry = t >> 32;
    }
    if (carry) out.push(<u32>carry);
    return new Big(out);
  }

  shl(bits: i32): Big {
    const l = this.limbs;
    if (bits == 0 || l.length == 0) return this;
    const words = bits >> 5, r = bits & 31;
    const out = new Array<u32>(words + l.length + 1);
    for (let i = 0; i < l.length; i++) {
      const v = <u64>l[i] << r;
      out[words + i] |= <u32>v;
      out[words + i + 1] |= <u32>(v >> 32);
    }
    while (out.length > 0 && out[out.length - 1] == 0) out.pop();
    return new Big(out);
  }

  static compare(a: Big, b: Big): i32 {
    const x = a.limbs, y = b.limbs;
    let n = x.length, m = y.length;
    while (n > 0 && x[n - 1] == 0) n--;
    while (m > 0 && y[m - 1] == 0) m--;
    if (n != m) return n < m ? -1 : 1;
    for (let i = n - 1; i >= 0; i--) {
      if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
  }
}

// ---- parser ----

let lastError = "";

/** Message describing why the most recent parseJSON call failed ("" after success). */
export function lastJSONError(): string { return lastError; }

/** Parses a complete JSON document; returns null (see lastJSONError) on any error. */
export function parseJSON(text: string): JSONValue | null {
  const p = new Parser(text);
  lastError = "";
  p.skipWs();
  const v = p.value(0);
  if (v == null) { lastError = p.err; return null; }
  p.skipWs();
  if (p.pos < text.length) {
    lastError = "unexpected character " + describe(text.charCodeAt(p.pos)) +
      " after end of document at offset " + p.pos.toString();
    return null;
  }
  return v;
}

/** 'x' for printable ASCII, U+XXXX otherwise (keeps messages one-line and readable). */
function describe(c: i32): string {
  if (c >= 0x20 && c < 0x7f) return "'" + String.fromCharCode(c) + "'";
  let h = "";
  for (let shift = 12; shift >= 0; shift -= 4) h += HEX.charAt((c >> shift) & 15);
  return "U+" + h.toUpperCase();
}

function isDigit(c: i32): bool { return c >= 0x30 && c <= 0x39; }

function hexVal(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

class Parser {
  pos: i32 = 0;
  err: string = "";
  constructor(public text: string) {}

  private fail(msg: string, at: i32): JSONValue | null {
    if (this.err.length == 0) this.err = msg + " at offset " + at.toString();
    return null;
  }

  private unexpected(): JSONValue | null {
    if (this.pos >= this.text.length) return this.fail("unexpected end of input", this.pos);
    return this.fail("unexpected character " + describe(this.text.charCodeAt(this.pos)), this.pos);
  }

  private peek(): i32 {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  skipWs(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  value(depth: i32): JSONValue | null {
    const c = this.peek();
    if (c == 0x7b /* { */) return this.object(depth + 1);
    if (c == 0x5b /* [ */) return this.array(depth + 1);
    if (c == 0x22 /* " */) {
      const s = this.str();
      return s == null ? null : JSONValue.fromString(s);
    }
    if (c == 0x2d /* - */ || isDigit(c)) return this.number();
    if (this.literal("true")) return JSONValue.fromBool(true);
    if (this.literal("false")) return JSONValue.fromBool(false);
    if (this.literal("null")) return JSONValue.nul();
    return this.unexpected();
  }

  private literal(word: string): bool {
    const t = this.text, n = word.length;
    if (this.pos + n > t.length) return false;
    for (let i = 0; i < n; i++) {
      if (t.charCodeAt(this.pos + i) != word.charCodeAt(i)) return false;
    }
    this.pos += n; // "truex" is caught by the caller as a stray 'x'
    return true;
  }

  private object(depth: i32): JSONValue | null {
    if (depth > JSON_MAX_DEPTH) return this.fail("nesting deeper than " + JSON_MAX_DEPTH.toString(), this.pos);
    this.pos++; // {
    const obj = JSONValue.newObject();
    this.skipWs();
    if (this.peek() == 0x7d) { this.pos++; return obj; }
    while (true) {
      if (this.peek() != 0x22) return this.unexpected();
      const key = this.str();
      if (key == null) return null;
      this.skipWs();
      if (this.peek() != 0x3a /* : */) return this.unexpected();
      this.pos++;
      this.skipWs();
      const v = this.value(depth);
      if (v == null) return null;
      obj.set(key, v); // duplicate keys: last one wins, like Go's encoding/json
      this.skipWs();
      const c = this.peek();
      this.pos++;
      if (c == 0x7d /* } */) return obj;
      if (c != 0x2c /* , */) { this.pos--; return this.unexpected(); }
      this.skipWs();
    }
  }

  private array(depth: i32): JSONValue | null {
    if (depth > JSON_MAX_DEPTH) return this.fail("nesting deeper than " + JSON_MAX_DEPTH.toString(), this.pos);
    this.pos++; // [
    const arr = JSONValue.newArray();
    this.skipWs();
    if (this.peek() == 0x5d) { this.pos++; return arr; }
    while (true) {
      const v = this.value(depth);
      if (v == null) return null;
      arr.push(v);
      this.skipWs();
      const c = this.peek();
      this.pos++;
      if (c == 0x5d /* ] */) return arr;
      if (c != 0x2c /* , */) { this.pos--; return this.unexpected(); }
      this.skipWs();
    }
  }

  // Strict JSON number grammar is checked here, then converted by decimalToF64.
  private number(): JSONValue | null {
    const t = this.text, start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (isDigit(this.peek())) {
      while (isDigit(this.peek())) this.pos++;
    } else {
      return this.unexpected();
    }
    if (this.peek() == 0x2e /* . */) {
      this.pos++;
      if (!isDigit(this.peek())) return this.unexpected();
      while (isDigit(this.peek())) this.pos++;
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.peek();
      if (sign == 0x2b || sign == 0x2d) this.pos++;
      if (!isDigit(this.peek())) return this.unexpected();
      while (isDigit(this.peek())) this.pos++;
    }
    // "01", "1.5.2" etc. would otherwise surface as a vaguer trailing-garbage error.
    const next = this.peek();
    if (isDigit(next) || next == 0x2e) return this.unexpected();
    const x = decimalToF64(t, start, this.pos);
    if (!isFinite(x)) return this.fail("number out of range", start);
    return JSONValue.fromNumber(x);
  }

  /** Parses a string literal at pos (which is '"'); null on error. */
  str(): string | null {
    const t = this.text, n = t.length;
    this.pos++; // opening quote
    let parts: Array<string> | null = null; // only allocated when escapes appear
    let start = this.pos;
    while (true) {
      if (this.pos >= n) { this.fail("unterminated string", this.pos); return null; }
      const c = t.charCodeAt(this.pos);
      if (c == 0x22) {
        const tail = t.substring(start, this.pos);
        this.pos++;
        if (parts == null) return tail;
        parts.push(tail);
        return parts.join("");
      }
      if (c < 0x20) {
        this.fail("control character " + describe(c) + " in string", this.pos);
        return null;
      }
      if (c != 0x5c) { this.pos++; continue; }
      if (parts == null) parts = new Array<string>();
      parts.push(t.substring(start, this.pos));
      const escAt = this.pos;
      this.pos++;
      if (this.pos >= n) { this.fail("unterminated string", this.pos); return null; }
      const e = t.charCodeAt(this.pos);
      this.pos++;
      if (e == 0x22) parts.push('"');
      else if (e == 0x5c) parts.push("\\");
      else if (e == 0x2f) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75 /* u */) {
        let u = this.hex4();
        if (u < 0) { this.fail("invalid \\u escape", escAt); return null; }
        if (u >= 0xd800 && u < 0xdc00) {
          // High surrogate: keep it only if a \u low surrogate follows.
          const save = this.pos;
          let lo = -1;
          if (this.pos + 1 < n && t.charCodeAt(this.pos) == 0x5c && t.charCodeAt(this.pos + 1) == 0x75) {
            this.pos += 2;
            lo = this.hex4();
          }
          if (lo >= 0xdc00 && lo < 0xe000) {
            parts.push(String.fromCharCode(u, lo));
            start = this.pos;
            continue;
          }
          this.pos = save;
          u = 0xfffd; // lone surrogate → U+FFFD, as Go's encoding/json does
        } else if (u >= 0xdc00 && u < 0xe000) {
          u = 0xfffd;
        }
        parts.push(String.fromCharCode(u));
      } else {
        this.fail("invalid escape '\\" + (e >= 0x20 && e < 0x7f ? String.fromCharCode(e) : describe(e)) + "'", escAt);
        return null;
      }
      start = this.pos;
    }
  }

  /** Reads 4 hex digits at pos; -1 (pos unspecified) if malformed. */
  private hex4(): i32 {
    const t = this.text;
    if (this.pos + 4 > t.length) return -1;
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const h = hexVal(t.charCodeAt(this.pos + i));
      if (h < 0) return -1;
      v = (v << 4) | h;
    }
    this.pos += 4;
    return v;
  }
}
