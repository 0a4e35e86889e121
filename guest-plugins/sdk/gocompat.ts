// How the reference plugins (Go) read their input, reproduced where it shows:
// encoding/json's field matching and type-error text, net.ParseIP /
// net.ParseCIDR / net.IP.String, strings.TrimSpace, %q quoting, and libcni's
// CNI_ARGS loader (types.LoadArgs), and the IPAM `routes` entry (types.Route).
// Shared by the IPAM plugins (host-local, static).
import { IP, parseIP } from "./ip";
import { JSONKind, JSONValue } from "./json";
import { Tuple2 } from "./generated/types";

// ---- encoding/json ----

/** The JSON kind as encoding/json names it in "cannot unmarshal X into ...". */
export function jsonKindName(v: JSONValue): string {
  switch (v.kind) {
    case JSONKind.String: return "string";
    case JSONKind.Number: return "number";
    case JSONKind.Bool: return "bool";
    case JSONKind.Array: return "array";
    case JSONKind.Object: return "object";
    default: return "null";
  }
}

function asciiLower(c: i32): i32 { return c >= 0x41 && c <= 0x5a ? c + 0x20 : c; }

export function equalFold(a: string, b: string): bool {
  if (a.length != b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (asciiLower(a.charCodeAt(i)) != asciiLower(b.charCodeAt(i))) return false;
  }
  return true;
}

/**
 * Which of a struct's JSON field names an object key sets, as encoding/json
 * decides: an exact match first, else a case-insensitive one; "" for none.
 */
export function matchField(key: string, names: Array<string>): string {
  for (let i = 0; i < names.length; i++) if (names[i] == key) return names[i];
  for (let i = 0; i < names.length; i++) if (equalFold(names[i], key)) return names[i];
  return "";
}

/**
 * Collects decoding errors the way encoding/json reports them: a type
 * mismatch is remembered (the first one wins) and decoding goes on; an error
 * from a value's own parser (a bad IP address, say) stops decoding and wins.
 */
export class Decoder {
  saved: string = "";
  aborted: string = "";

  typeError(v: JSONValue, struct: string, path: string, goType: string): void {
    if (this.saved.length == 0) {
      this.saved = "json: cannot unmarshal " + jsonKindName(v) + " into Go struct field " + struct + "." + path + " of type " + goType;
    }
  }
  /** A type mismatch inside a value's own UnmarshalJSON: it stops decoding. */
  typeAbort(v: JSONValue, struct: string, path: string, goType: string): void {
    this.abort("json: cannot unmarshal " + jsonKindName(v) + " into Go struct field " + struct + "." + path + " of type " + goType);
  }
  abort(msg: string): void {
    if (this.aborted.length == 0) this.aborted = msg;
  }
  get stopped(): bool { return this.aborted.length > 0; }
  get failed(): bool { return this.aborted.length > 0 || this.saved.length > 0; }
  error(): string { return this.aborted.length > 0 ? this.aborted : this.saved; }

  /** A Go string field: null leaves it alone; another kind is a type error. */
  str(v: JSONValue, current: string, struct: string, path: string): string {
    if (v.isNull()) return current;
    if (!v.isString()) { this.typeError(v, struct, path, "string"); return current; }
    return v.asString();
  }

  /** A Go bool field. */
  boolean(v: JSONValue, current: bool, struct: string, path: string): bool {
    if (v.isNull()) return current;
    if (!v.isBool()) { this.typeError(v, struct, path, "bool"); return current; }
    return v.asBool();
  }

  /** A Go integer field (int: 64-bit here, uint32, ...) from min to max: a fraction or a number out of range is a type error naming it. */
  integer(v: JSONValue, current: i64, struct: string, path: string, goType: string, min: f64, max: f64): i64 {
    if (v.isNull()) return current;
    if (!v.isNumber()) { this.typeError(v, struct, path, goType); return current; }
    const n = v.asNumber();
    if (n != Math.floor(n) || n < min || n > max) {
      if (this.saved.length == 0) {
        this.saved = "json: cannot unmarshal number " + v.stringify() + " into Go struct field " + struct + "." + path + " of type " + goType;
      }
      return current;
    }
    return <i64>n;
  }

  /** A net.IP field: null or "" clears it; text that is no address stops decoding. */
  netIP(v: JSONValue, struct: string, path: string): IP | null {
    if (v.isNull()) return null;
    if (!v.isString()) { this.typeError(v, struct, path, "net.IP"); return null; }
    const s = v.asString();
    if (s.length == 0) return null;
    const ip = goParseIP(s);
    if (ip === null) this.abort("invalid IP address: " + s);
    return ip;
  }

  /** A []string field. */
  strings(v: JSONValue, struct: string, path: string): Array<string> | null {
    if (v.isNull()) return null;
    if (!v.isArray()) { this.typeError(v, struct, path, "[]string"); return null; }
    const items = v.asArray();
    const out = new Array<string>();
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.isNull()) { out.push(""); continue; }
      if (!it.isString()) { this.typeError(it, struct, path, "string"); continue; }
      out.push(it.asString());
    }
    return out;
  }
}

// ---- net ----

/** net.ParseIP, canonicalized as the plugins do (IPv4-mapped IPv6 becomes IPv4). */
export function goParseIP(s: string): IP | null {
  const ip = parseIP(s);
  if (ip === null) return null;
  return canonicalIP(ip);
}

export function canonicalIP(ip: IP): IP {
  const v4 = ip.to4();
  return v4 !== null ? v4 : ip;
}

/** net.IP.String(): dotted quad for anything that is IPv4 (mapped included). */
export function goIPString(ip: IP): string {
  const v4 = ip.to4();
  return v4 !== null ? v4.toString() : ip.toString();
}

export class GoCIDR {
  /** the address as written (host bits kept), canonical form */
  ip: IP;
  prefix: i32;
  /** mask length in bits: 32 when the address was written as IPv4, else 128 */
  bits: i32;
  constructor(ip: IP, prefix: i32, bits: i32) { this.ip = ip; this.prefix = prefix; this.bits = bits; }
  /** net.IPNet.String() of {ip, mask} */
  toString(): string { return goIPString(this.ip) + "/" + this.prefix.toString(); }
}

/** net.ParseCIDR: "addr/prefix", where the prefix is decimal digits (leading zeros allowed). */
export function goParseCIDR(s: string): GoCIDR | null {
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const raw = parseIP(s.substring(0, slash));
  if (raw === null) return null;
  const bits = raw.family == 4 ? 32 : 128;
  const m = s.substring(slash + 1);
  if (m.length == 0) return null;
  let n = 0;
  for (let i = 0; i < m.length; i++) {
    const c = m.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return null;
    n = n * 10 + (c - 0x30);
    if (n > 0xffff) return null;
  }
  if (n > bits) return null;
  return new GoCIDR(canonicalIP(raw), n, bits);
}

/** pkg/ip.ParseIP: "addr" or "addr/prefix"; the address, canonical. */
export function cniParseIP(s: string): IP | null {
  if (s.indexOf("/") >= 0) {
    const c = goParseCIDR(s);
    return c === null ? null : c.ip;
  }
  return goParseIP(s);
}

// ---- strings ----

function isSpace(c: i32): bool {
  return c == 0x20 || (c >= 0x09 && c <= 0x0d) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/** strings.TrimSpace */
export function trimSpace(s: string): string {
  let a = 0, b = s.length;
  while (a < b && isSpace(s.charCodeAt(a))) a++;
  while (b > a && isSpace(s.charCodeAt(b - 1))) b--;
  return a == 0 && b == s.length ? s : s.substring(a, b);
}

const HEX = "0123456789abcdef";

/** fmt's %q for a string (printable text kept, the rest escaped). */
export function goQuote(s: string): string {
  const out = new Array<string>();
  out.push('"');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out.push('\\"');
    else if (c == 0x5c) out.push("\\\\");
    else if (c == 0x0a) out.push("\\n");
    else if (c == 0x0d) out.push("\\r");
    else if (c == 0x09) out.push("\\t");
    else if (c < 0x20 || c == 0x7f) out.push("\\x" + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
    else out.push(String.fromCharCode(c));
  }
  out.push('"');
  return out.join("");
}

/** "a.b.c" semver-ish comparison of CNI versions: a >= b. */
export function versionAtLeast(a: string, b: string): bool {
  const x = a.split("."), y = b.split(".");
  for (let i = 0; i < 3; i++) {
    const p = i < x.length ? I32.parseInt(x[i]) : 0;
    const q = i < y.length ? I32.parseInt(y[i]) : 0;
    if (p != q) return p > q;
  }
  return true;
}

// ---- libcni's CNI_ARGS loader (types.LoadArgs) ----

/** A CNI_ARGS field holding any text (types.UnmarshallableString). */
export const ARG_STRING: i32 = 0;
/** A CNI_ARGS field holding an address, optionally with a prefix (pkg/ip.IP). */
export const ARG_IP: i32 = 1;

export class EnvArgs {
  /** per known field: its value ("" when absent; a later pair replaces an earlier one) */
  values: Array<string>;
  /** the reference's error text, "" when the pairs load */
  error: string = "";
  constructor(n: i32) {
    this.values = new Array<string>(n);
    for (let i = 0; i < n; i++) this.values[i] = "";
  }
}

/**
 * Loads CNI_ARGS into a plugin's args struct as types.LoadArgs does: pairs in
 * order, each value parsed as its field's type (the first bad one is the
 * error); "IgnoreUnknown" is a boolean; a key with no field is an error
 * unless IgnoreUnknown ends up true.
 */
export function loadEnvArgs(pairs: Array<Tuple2<string, string>>, known: Array<string>, kinds: Array<i32>): EnvArgs {
  const out = new EnvArgs(known.length);
  const unknown = new Array<string>();
  let ignoreUnknown = false;
  for (let i = 0; i < pairs.length; i++) {
    const k = pairs[i].f0, v = pairs[i].f1;
    const pair = k + "=" + v;
    if (k == "IgnoreUnknown") {
      const l = v.toLowerCase();
      if (l == "1" || l == "true") ignoreUnknown = true;
      else if (l == "0" || l == "false") ignoreUnknown = false;
      else {
        out.error = "ARGS: error parsing value of pair " + goQuote(pair) + ": boolean unmarshal error: invalid input " + l;
        return out;
      }
      continue;
    }
    if (k == "CommonArgs") {
      out.error = "ARGS: cannot unmarshal into field 'CommonArgs' - type '*types.CommonArgs' does not implement encoding.TextUnmarshaler";
      return out;
    }
    const idx = known.indexOf(k);
    if (idx < 0) { unknown.push(pair); continue; }
    if (kinds[idx] == ARG_IP && v.length > 0 && cniParseIP(v) === null) {
      out.error = "ARGS: error parsing value of pair " + goQuote(pair) + ": invalid IP address " + v;
      return out;
    }
    out.values[idx] = v;
  }
  if (unknown.length > 0 && !ignoreUnknown) {
    const q = new Array<string>();
    for (let i = 0; i < unknown.length; i++) q.push(goQuote(unknown[i]));
    out.error = "ARGS: unknown args [" + q.join(" ") + "]";
  }
  return out;
}

// ---- IPAM routes (types.Route) ----

export class ConfRoute {
  /** as Go prints the parsed route: "<nil>" when the config gave no dst */
  dst: string = "<nil>";
  gw: string = "";
}

/** A types.IPNet value (its UnmarshalJSON): null reads as "", which is no CIDR. */
export function decodeSubnet(d: Decoder, v: JSONValue, struct: string, path: string): GoCIDR | null {
  if (!v.isNull() && !v.isString()) {
    d.typeAbort(v, struct, path, "string");
    return null;
  }
  const s = v.asString();
  const c = goParseCIDR(s);
  if (c === null) d.abort("invalid CIDR address: " + s);
  return c;
}

const ROUTE_FIELDS: Array<string> = ["dst", "gw"];

/** types.Route (its own UnmarshalJSON: any error in it stops decoding). */
export function decodeRoute(d: Decoder, v: JSONValue, routes: Array<ConfRoute>): void {
  if (v.isNull()) return; // Go keeps a nil route and prints null; there is nothing to give
  if (!v.isObject()) {
    d.typeAbort(v, "IPAMConfig", "ipam.routes", "types.route");
    return;
  }
  const rt = new ConfRoute();
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], ROUTE_FIELDS);
    const f = v.get(keys[i])!;
    if (name == "dst") {
      const c = decodeSubnet(d, f, "IPAMConfig", "ipam.routes");
      if (c !== null) rt.dst = c.toString();
    } else if (name == "gw") {
      if (f.isNull()) { rt.gw = ""; continue; }
      if (!f.isString()) {
        d.typeAbort(f, "IPAMConfig", "ipam.routes", "net.IP");
        continue;
      }
      const gw = d.netIP(f, "IPAMConfig", "ipam.routes");
      rt.gw = gw === null ? "" : goIPString(gw);
    }
  }
  routes.push(rt);
}

/**
 * A route without "dst" would reach the result as "<nil>" in the reference
 * (which no runtime can read). ADD refuses it up front, before anything is
 * leased; DEL and CHECK take the config as the reference does.
 */
export function checkRoutes(routes: Array<ConfRoute>): string {
  for (let i = 0; i < routes.length; i++) {
    if (routes[i].dst == "<nil>") return "route " + i.toString() + " has no \"dst\"";
  }
  return "";
}

