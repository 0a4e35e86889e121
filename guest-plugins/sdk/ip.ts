// IPv4/IPv6 addresses and prefixes, parsed and formatted like Go's net/netip
// (strict dotted quads, RFC 5952 output) so results match what CNI tools print.

/** An IPv4 or IPv6 address. Treat as immutable: arithmetic returns new IPs. */
export class IP {
  /** 4 or 6. */
  family: i32;
  /** Big-endian, always 16 bytes; IPv4 occupies bytes 12..15 and 0..11 are zero. */
  bytes: StaticArray<u8> = new StaticArray<u8>(16);

  constructor(family: i32) { this.family = family; }

  static v4(a: u8, b: u8, c: u8, d: u8): IP {
    const ip = new IP(4);
    ip.bytes[12] = a; ip.bytes[13] = b; ip.bytes[14] = c; ip.bytes[15] = d;
    return ip;
  }
  static fromU32(x: u32): IP {
    return IP.v4(<u8>(x >> 24), <u8>(x >> 16), <u8>(x >> 8), <u8>x);
  }
  /** 4 bytes → IPv4, 16 bytes → IPv6, anything else → null. */
  static fromBytes(b: Uint8Array): IP | null {
    if (b.length != 4 && b.length != 16) return null;
    const ip = new IP(b.length == 4 ? 4 : 6);
    const off = 16 - b.length;
    for (let i = 0; i < b.length; i++) ip.bytes[off + i] = b[i];
    return ip;
  }

  isV4(): bool { return this.family == 4; }
  isV6(): bool { return this.family == 6; }
  /** Address width in bits: 32 or 128. */
  bitLen(): i32 { return this.family == 4 ? 32 : 128; }

  /** 4 bytes for IPv4, 16 for IPv6. */
  toBytes(): Uint8Array {
    const n = this.family == 4 ? 4 : 16, off = 16 - n;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.bytes[off + i];
    return out;
  }
  /** IPv4 value as u32 (low 32 bits for IPv6). */
  toU32(): u32 {
    const b = this.bytes;
    return (<u32>b[12] << 24) | (<u32>b[13] << 16) | (<u32>b[14] << 8) | <u32>b[15];
  }
  /** IPv4 → itself; IPv4-mapped IPv6 (::ffff:a.b.c.d) → IPv4; otherwise null. */
  to4(): IP | null {
    if (this.family == 4) return this;
    if (!this.isV4Mapped()) return null;
    return IP.fromU32(this.toU32());
  }

  private isV4Mapped(): bool {
    const b = this.bytes;
    for (let i = 0; i < 10; i++) if (b[i] != 0) return false;
    return b[10] == 0xff && b[11] == 0xff;
  }

  equals(o: IP): bool { return this.compare(o) == 0; }

  /** Orders IPv4 before IPv6, then numerically. Returns -1, 0 or 1. */
  compare(o: IP): i32 {
    if (this.family != o.family) return this.family < o.family ? -1 : 1;
    for (let i = 0; i < 16; i++) {
      const a = this.bytes[i], b = o.bytes[i];
      if (a != b) return a < b ? -1 : 1;
    }
    return 0;
  }

  /** this + n, wrapping modulo 2^32 (IPv4) or 2^128 (IPv6). */
  add(n: i64): IP {
    const r = new IP(this.family);
    const lo = this.family == 4 ? 12 : 0;
    let carry: i32 = 0;
    for (let i = 15; i >= lo; i--) {
      const shift = (15 - i) * 8;
      // Bytes above the i64 are its sign extension (0x00 or 0xff).
      const addend = shift < 64 ? <i32>((n >> <i64>shift) & 0xff) : (n < 0 ? 0xff : 0);
      const sum = <i32>this.bytes[i] + addend + carry;
      r.bytes[i] = <u8>sum;
      carry = sum >> 8;
    }
    return r;
  }
  next(): IP { return this.add(1); }
  prev(): IP { return this.add(-1); }

  /** Dotted quad for IPv4; RFC 5952 for IPv6 (IPv4-mapped as ::ffff:a.b.c.d). */
  toString(): string {
    if (this.family == 4) return dotted(this.bytes, 12);
    if (this.isV4Mapped()) return "::ffff:" + dotted(this.bytes, 12);
    const g = new StaticArray<i32>(8);
    for (let i = 0; i < 8; i++) g[i] = (<i32>this.bytes[2 * i] << 8) | this.bytes[2 * i + 1];
    // Longest run of >= 2 zero groups; strict '>' keeps the first on ties.
    let bestAt = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      if (g[i] != 0) { i++; continue; }
      let j = i;
      while (j < 8 && g[j] == 0) j++;
      if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
      i = j;
    }
    const parts = new Array<string>();
    for (let i = 0; i < 8; i++) {
      if (i == bestAt) {
        parts.push(i == 0 ? "::" : ":");
        i += bestLen - 1;
        continue;
      }
      parts.push(hex16(g[i]));
      if (i < 7) parts.push(":");
    }
    return parts.join("");
  }
}

const HEX = "0123456789abcdef";

function hex16(v: i32): string {
  let s = "";
  let started = false;
  for (let shift = 12; shift >= 0; shift -= 4) {
    const d = (v >> shift) & 15;
    if (d != 0 || started || shift == 0) { s += HEX.charAt(d); started = true; }
  }
  return s;
}

function dotted(b: StaticArray<u8>, off: i32): string {
  return b[off].toString() + "." + b[off + 1].toString() + "." +
    b[off + 2].toString() + "." + b[off + 3].toString();
}

function hexVal(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * Strict decimal in [0, max] for s[start, end): digits only, no sign, and no
 * leading zeros (Go rejects "010" as ambiguous octal). Returns -1 if invalid.
 */
function parseDec(s: string, start: i32, end: i32, max: i32): i32 {
  const len = end - start;
  if (len < 1 || len > 3) return -1;
  if (len > 1 && s.charCodeAt(start) == 0x30) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v <= max ? v : -1;
}

/** Parses a dotted quad in s[start, end) into out[off..off+3]. */
function parseV4Into(s: string, start: i32, end: i32, out: StaticArray<u8>, off: i32): bool {
  let p = start;
  for (let k = 0; k < 4; k++) {
    let q = p;
    while (q < end && s.charCodeAt(q) != 0x2e) q++;
    if ((k < 3) != (q < end)) return false; // exactly three dots
    const v = parseDec(s, p, q, 255);
    if (v < 0) return false;
    out[off + k] = <u8>v;
    p = q + 1;
  }
  return true;
}

function parseV6(s: string): IP | null {
  const n = s.length;
  const ip = new IP(6);
  const b = ip.bytes;
  let ng = 0;         // 16-bit groups written so far
  let ellipsis = -1;  // group index where "::" sits
  let i = 0;
  if (n >= 2 && s.charCodeAt(0) == 0x3a && s.charCodeAt(1) == 0x3a) {
    ellipsis = 0;
    i = 2;
  }
  while (i < n) {
    if (ng == 8) return null;
    let j = i;
    while (j < n && hexVal(s.charCodeAt(j)) >= 0) j++;
    if (j < n && s.charCodeAt(j) == 0x2e) {
      // Embedded IPv4 tail (e.g. ::ffff:1.2.3.4) fills the last two groups.
      if (ng > 6 || !parseV4Into(s, i, n, b, ng * 2)) return null;
      ng += 2;
      break;
    }
    if (j == i || j - i > 4) return null;
    let v = 0;
    for (let k = i; k < j; k++) v = (v << 4) | hexVal(s.charCodeAt(k));
    b[ng * 2] = <u8>(v >> 8);
    b[ng * 2 + 1] = <u8>v;
    ng++;
    i = j;
    if (i == n) break;
    if (s.charCodeAt(i) != 0x3a) return null;
    i++;
    if (i < n && s.charCodeAt(i) == 0x3a) {
      if (ellipsis >= 0) return null; // at most one "::"
      ellipsis = ng;
      i++;
    } else if (i == n) {
      return null; // trailing single ':'
    }
  }
  if (ellipsis < 0) return ng == 8 ? ip : null;
  if (ng == 8) return null; // "::" must stand for at least one zero group
  // Slide groups after the ellipsis to the end, zero-filling the gap.
  const tail = (ng - ellipsis) * 2, shift = (8 - ng) * 2;
  for (let k = tail - 1; k >= 0; k--) {
    b[ellipsis * 2 + shift + k] = b[ellipsis * 2 + k];
    b[ellipsis * 2 + k] = 0;
  }
  return ip;
}

/** Parses "a.b.c.d" or an IPv6 address (no zone, no brackets); null if invalid. */
export function parseIP(s: string): IP | null {
  if (s.indexOf(":") >= 0) return parseV6(s);
  const ip = new IP(4);
  return parseV4Into(s, 0, s.length, ip.bytes, 12) ? ip : null;
}

/** An address with a prefix length, e.g. 10.1.2.3/24 (host bits are kept as written). */
export class IPNet {
  constructor(public ip: IP, public prefix: i32) {}

  isV4(): bool { return this.ip.family == 4; }
  isV6(): bool { return this.ip.family == 6; }
  /** Number of host bits (32/128 minus prefix). */
  hostBits(): i32 { return this.ip.bitLen() - this.prefix; }
  /** Addresses in the range, saturating at u64.MAX_VALUE for huge IPv6 ranges. */
  size(): u64 {
    const h = this.hostBits();
    return h >= 64 ? u64.MAX_VALUE : (<u64>1 << <u64>h);
  }

  /** Mask byte for bytes[i]: IPv4 bit positions start at byte 12. */
  private maskByte(i: i32): u8 {
    const bit = (i - (this.ip.family == 4 ? 12 : 0)) * 8;
    if (bit < 0) return 0;
    const ones = this.prefix - bit;
    if (ones >= 8) return 0xff;
    if (ones <= 0) return 0;
    return <u8>(<i32>0xff << (8 - ones));
  }

  mask(): IP {
    const m = new IP(this.ip.family);
    for (let i = 0; i < 16; i++) m.bytes[i] = this.maskByte(i);
    return m;
  }
  /** First address (host bits cleared). */
  network(): IP {
    const r = new IP(this.ip.family);
    for (let i = 0; i < 16; i++) r.bytes[i] = this.ip.bytes[i] & this.maskByte(i);
    return r;
  }
  /** Last address (host bits set); for IPv6 simply the end of the range. */
  broadcast(): IP {
    const r = new IP(this.ip.family);
    const lo = this.ip.family == 4 ? 12 : 0;
    for (let i = lo; i < 16; i++) r.bytes[i] = this.ip.bytes[i] | ~this.maskByte(i);
    return r;
  }
  /** Whether ip is inside this prefix; addresses of the other family never are. */
  contains(ip: IP): bool {
    if (ip.family != this.ip.family) return false;
    for (let i = 0; i < 16; i++) {
      const m = this.maskByte(i);
      if ((ip.bytes[i] & m) != (this.ip.bytes[i] & m)) return false;
    }
    return true;
  }
  /** Whether the two prefixes share any address. */
  overlaps(o: IPNet): bool {
    return this.contains(o.network()) || o.contains(this.network());
  }

  /** "255.255.255.0" for IPv4, address form ("ffff:ffff:ffff:ffff::") for IPv6. */
  maskString(): string { return this.mask().toString(); }
  /** As written: "10.1.2.3/24". */
  toString(): string { return this.ip.toString() + "/" + this.prefix.toString(); }
  /** Canonical network: "10.1.2.0/24". */
  networkCIDR(): string { return this.network().toString() + "/" + this.prefix.toString(); }
}

/** Parses "addr/prefix"; the prefix is required and must fit the family. */
export function parseCIDR(s: string): IPNet | null {
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIP(s.substring(0, slash));
  if (ip == null) return null;
  const prefix = parseDec(s, slash + 1, s.length, ip.bitLen());
  if (prefix < 0) return null;
  return new IPNet(ip, prefix);
}
