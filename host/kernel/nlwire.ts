// Netlink message building and attribute walking without intermediate
// objects: one reusable buffer per request, attributes written in place, and
// replies read at offsets (only the attributes a caller uses are decoded).
// Host byte order, like every netlink header and attribute.
//
// The layout is the one the `netlink` package's AttrStream writes (rtnl.ts
// used it before): padding goes BEFORE an attribute that starts unaligned, a
// message or a nest ends right after its last attribute's data (no trailing
// padding), and a nest's length covers exactly its content.
import { endianness } from 'node:os';

const LE = endianness() === 'LE';
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

export const HDR = 16; // sizeof(struct nlmsghdr)

export const readU16 = LE ? (b: Buffer, o: number) => b.readUInt16LE(o) : (b: Buffer, o: number) => b.readUInt16BE(o);
export const readU32 = LE ? (b: Buffer, o: number) => b.readUInt32LE(o) : (b: Buffer, o: number) => b.readUInt32BE(o);
export const readS32 = LE ? (b: Buffer, o: number) => b.readInt32LE(o) : (b: Buffer, o: number) => b.readInt32BE(o);

/**
 * Builds one netlink message at a time into a buffer it keeps (grown when a
 * message needs more). `finish` returns a view of the buffer: send it before
 * the next `begin`.
 */
export class NlWriter {
  private buf: Buffer;
  private off = 0;

  constructor(size = 2048) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n + 256));
    this.buf.copy(bigger, 0, 0, this.off);
    this.buf = bigger;
  }

  private pad(): void {
    this.room(3);
    while (this.off & 3) this.buf[this.off++] = 0;
  }

  /** nlmsghdr (length written by finish); the payload follows. */
  begin(type: number, flags: number, seq: number): this {
    this.off = 0;
    this.room(HDR);
    this.raw16(0, 0); // nlmsg_len: written by finish()
    this.raw16(0, 2);
    this.raw16(type, 4);
    this.raw16(flags, 6);
    this.u32At(seq, 8);
    this.raw16(0, 12); // nlmsg_pid: the kernel's
    this.raw16(0, 14);
    this.off = HDR;
    return this;
  }

  /** n zero bytes (a fixed header such as ifinfomsg); returns where they start. */
  zeros(n: number): number {
    const at = this.reserve(n);
    for (let i = at; i < at + n; i++) this.buf[i] = 0; // short runs: cheaper than Buffer.fill
    return at;
  }

  /** A 16-bit length or type this writer computed (in range by construction): plain byte stores. */
  private raw16(v: number, at: number): void {
    if (LE) { this.buf[at] = v; this.buf[at + 1] = v >>> 8; } else { this.buf[at] = v >>> 8; this.buf[at + 1] = v; }
  }

  /** A plain store (buf[at] = v): no range check. */
  setByte(v: number, at: number): this { this.buf[at] = v; return this; }
  u8At(v: number, at: number): this { this.buf.writeUInt8(v, at); return this; }
  u16At(v: number, at: number): this { if (LE) this.buf.writeUInt16LE(v, at); else this.buf.writeUInt16BE(v, at); return this; }
  u32At(v: number, at: number): this { if (LE) this.buf.writeUInt32LE(v, at); else this.buf.writeUInt32BE(v, at); return this; }
  s32At(v: number, at: number): this { if (LE) this.buf.writeInt32LE(v, at); else this.buf.writeInt32BE(v, at); return this; }

  /** Starts an attribute (or a nest); its data follows. Returns the token for end(). */
  start(type: number, nested = false): number {
    this.pad();
    this.room(4);
    const at = this.off;
    this.raw16((type & NLA_TYPE_MASK) | (nested ? NLA_F_NESTED : 0), at + 2);
    this.off += 4;
    return at;
  }

  end(at: number): this {
    const len = this.off - at;
    if (len >= 0x10000) throw Error(`Maximum attribute length exceeded (${len})`);
    this.raw16(len, at);
    return this;
  }

  bytes(data: Uint8Array): this {
    this.room(data.length);
    this.buf.set(data, this.off);
    this.off += data.length;
    return this;
  }

  attr(type: number, data: Uint8Array): this {
    const at = this.start(type);
    return this.bytes(data).end(at);
  }

  /** Reserves n bytes for a fixed-size value; returns where they start. */
  private reserve(n: number): number {
    this.room(n);
    const at = this.off;
    this.off += n;
    return at;
  }

  attrU8(type: number, v: number): this {
    const at = this.start(type);
    return this.u8At(v, this.reserve(1)).end(at);
  }

  attrU16(type: number, v: number): this {
    const at = this.start(type);
    return this.u16At(v, this.reserve(2)).end(at);
  }

  attrU32(type: number, v: number): this {
    const at = this.start(type);
    return this.u32At(v, this.reserve(4)).end(at);
  }

  /** A NUL-terminated UTF-8 string (ASCII copied directly: interface names). */
  attrStr(type: number, s: string): this {
    const at = this.start(type);
    this.room(s.length * 3 + 1);
    const b = this.buf;
    let o = this.off;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) { o = this.off + b.write(s, this.off); break; }
      b[o++] = c;
    }
    b[o] = 0;
    this.off = o + 1;
    return this.end(at);
  }

  /** The whole message, nlmsg_len set: a view valid until the next begin(). */
  finish(): Buffer {
    this.u32At(this.off, 0);
    return this.buf.subarray(0, this.off);
  }
}

/**
 * Calls fn(type, dataStart, dataLength) for each attribute in b[from, to),
 * type without the NESTED/BYTEORDER flags. Throws on a malformed stream,
 * as the codec did.
 */
export function eachAttr(b: Buffer, from: number, to: number, fn: (type: number, at: number, len: number) => void): void {
  let o = from;
  while (o < to) {
    if (to - o < 4) throw Error('Not enough data');
    const len = readU16(b, o);
    if (len < 4 || to - o < len) throw Error(`Invalid attribute length (${len})`);
    fn(readU16(b, o + 2) & NLA_TYPE_MASK, o + 4, len - 4);
    o += (len + 3) & ~3;
  }
}

/** An attribute's NUL-terminated string (the codec's getString). */
export function attrString(b: Buffer, at: number, len: number): string {
  if (b[at + len - 1] !== 0) throw Error('Not null terminated');
  return b.toString('utf8', at, at + len - 1);
}

/** An attribute's u32, which must be exactly 4 bytes (the codec's getU32). */
export function attrU32(b: Buffer, at: number, len: number): number {
  if (len !== 4) throw Error(`Unexpected length (got ${len}, expected 4)`);
  return readU32(b, at);
}

export function attrS32(b: Buffer, at: number, len: number): number {
  if (len !== 4) throw Error(`Unexpected length (got ${len}, expected 4)`);
  return readS32(b, at);
}
