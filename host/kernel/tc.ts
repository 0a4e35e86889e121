// Synchronous traffic control over rtnetlink: the qdiscs and the filter the
// bandwidth plugin needs (tbf, ingress, a u32 match-all filter with a mirred
// egress redirect), and listing them back for CHECK. The `netlink` package
// leaves TCA_OPTIONS as raw bytes, so the encoding here is ours; it is tested
// byte for byte against what iproute2's `tc` and the reference plugin send
// (test/netns/tc.test.ts).
//
// Encodings, and why:
//  - tbf: TCA_OPTIONS { TCA_TBF_PARMS, TCA_TBF_RATE64 when the rate needs 64
//    bits }, the message the reference plugin (Go netlink) sends. iproute2
//    also sends TCA_TBF_BURST and a 1 KiB rate table; with TCA_TBF_BURST the
//    kernel recomputes the buffer from the burst in ns, which can differ by a
//    tick from the buffer the reference asks for, so we keep the reference's
//    buffer exactly (its CHECK compares buffers).
//  - ingress: TCA_KIND only, as `tc qdisc add dev X ingress`.
//  - u32: as `tc filter add dev X parent ffff: protocol all prio 1 u32 match
//    u32 0 0 flowid 1:1 action mirred egress redirect dev IFB` (one action;
//    the reference 1.1.1 installs a second, unreachable mirred action).
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';
import { KernelError } from './types.js';
import type { Rtnl } from './rtnl.js';

export const RTM_NEWQDISC = 36;
export const RTM_DELQDISC = 37;
export const RTM_GETQDISC = 38;
export const RTM_NEWTFILTER = 44;
export const RTM_DELTFILTER = 45;
export const RTM_GETTFILTER = 46;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;
const NLA_F_NESTED = 0x8000;
const HDR = 16;
const TCMSG = 20;

const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;
const TCA_U32_CLASSID = 1;
const TCA_U32_SEL = 5;
const TCA_U32_ACT = 7;
const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
const TC_U32_TERMINAL = 1;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_STOLEN = 4;
const TCA_EGRESS_REDIR = 1;
const TCA_EGRESS_MIRROR = 2;
const TCA_INGRESS_REDIR = 3;
const TCA_INGRESS_MIRROR = 4;
const ETH_P_ALL = 0x0003;

export const TC_H_ROOT = 0xffffffff;
export const TC_H_INGRESS = 0xfffffff1;
/** handle ffff: of the ingress qdisc */
export const INGRESS_HANDLE = 0xffff0000;
/** handle 1: of the root tbf */
export const TBF_HANDLE = 0x00010000;

const LE = endianness() === 'LE';
const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------- TLV writer

function u16(n: number): Buffer { const b = Buffer.alloc(2); if (LE) b.writeUInt16LE(n); else b.writeUInt16BE(n); return b; }
function u32(n: number): Buffer { const b = Buffer.alloc(4); if (LE) b.writeUInt32LE(n >>> 0); else b.writeUInt32BE(n >>> 0); return b; }
function u64(n: bigint): Buffer { const b = Buffer.alloc(8); if (LE) b.writeBigUInt64LE(n); else b.writeBigUInt64BE(n); return b; }
const rd32 = (b: Buffer, o: number): number => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));
const rd16 = (b: Buffer, o: number): number => (LE ? b.readUInt16LE(o) : b.readUInt16BE(o));
const rdS32 = (b: Buffer, o: number): number => (LE ? b.readInt32LE(o) : b.readInt32BE(o));
const rd64 = (b: Buffer, o: number): bigint => (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
const pad4 = (n: number): number => (n + 3) & ~3;

/** One attribute: header, payload, padding to 4. */
export function attr(type: number, ...payload: Buffer[]): Buffer {
  const data = Buffer.concat(payload);
  const len = 4 + data.length;
  const out = Buffer.alloc(pad4(len));
  u16(len).copy(out, 0);
  u16(type).copy(out, 2);
  data.copy(out, 4);
  return out;
}

const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.alloc(1)]);

function tcmsg(ifindex: number, handle: number, parent: number, info: number): Buffer {
  const b = Buffer.alloc(TCMSG); // family AF_UNSPEC, pads
  u32(ifindex).copy(b, 4);
  u32(handle).copy(b, 8);
  u32(parent).copy(b, 12);
  u32(info).copy(b, 16);
  return b;
}

/** A whole netlink message; seq and pid are left 0 for the socket to fill. */
export function message(type: number, flags: number, body: Buffer): Buffer {
  const h = Buffer.alloc(HDR);
  u32(HDR + body.length).copy(h, 0);
  u16(type).copy(h, 4);
  u16(flags | NLM_F_REQUEST).copy(h, 6);
  return Buffer.concat([h, body]);
}

// ---------------------------------------------------------------- psched clock

/** Ticks per microsecond of the kernel's packet scheduler clock, as iproute2 and Go netlink read /proc/net/psched. */
export function pschedTicksPerUsec(text?: string): number {
  const raw = text ?? readFileSync('/proc/net/psched', 'utf8').slice(0, 256);
  const parts = raw.trim().split(/\s+/).slice(0, 4).map((p) => parseInt(p, 16));
  if (parts.length < 3 || parts.some((p) => !Number.isFinite(p) || p <= 0)) {
    throw new KernelError('EIO', `cannot read the packet scheduler clock from /proc/net/psched: "${raw.trim()}"`, 5);
  }
  let [t2us] = parts;
  const [, us2t, clockRes] = parts;
  if (clockRes === 1000000000) t2us = us2t; // compatibility, as iproute2
  return (t2us / us2t) * (clockRes / 1000000);
}

// ---------------------------------------------------------------- specs

export interface TbfSpec {
  /** bytes per second */
  rate: bigint;
  /** psched ticks: how long a full bucket lasts at `rate` */
  buffer: number;
  /** bytes that may queue */
  limit: number;
}

export type QdiscOp = 'add' | 'replace';

const opFlags = (op: QdiscOp): number => (op === 'add' ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_CREATE | NLM_F_REPLACE);

function checkTbf(s: TbfSpec): void {
  const ok = typeof s.rate === 'bigint' && s.rate > 0n && s.rate < 1n << 63n
    && Number.isInteger(s.buffer) && s.buffer > 0 && s.buffer <= U32_MAX
    && Number.isInteger(s.limit) && s.limit > 0 && s.limit <= U32_MAX;
  if (!ok) throw new KernelError('EINVAL', `invalid tbf: rate ${s.rate} B/s, buffer ${s.buffer} ticks, limit ${s.limit} B (each must be > 0)`, 22);
}

/** RTM_NEWQDISC for a root tbf (handle 1:). */
export function encodeTbf(ifindex: number, s: TbfSpec, op: QdiscOp): Buffer {
  checkTbf(s);
  const parms = Buffer.alloc(36); // tc_tbf_qopt: rate spec, peakrate spec, limit, buffer, mtu
  const rate32 = s.rate >= 1n << 32n ? U32_MAX : Number(s.rate);
  // The reference truncates to 32 bits and adds RATE64; the kernel reads RATE64 then.
  u32(s.rate >= 1n << 32n ? Number(s.rate & 0xffffffffn) : rate32).copy(parms, 8);
  u32(s.limit).copy(parms, 24);
  u32(s.buffer).copy(parms, 28);
  const opts = [attr(TCA_TBF_PARMS, parms)];
  if (s.rate >= 1n << 32n) opts.push(attr(TCA_TBF_RATE64, u64(s.rate)));
  return message(RTM_NEWQDISC, NLM_F_ACK | opFlags(op), Buffer.concat([
    tcmsg(ifindex, TBF_HANDLE, TC_H_ROOT, 0), attr(TCA_KIND, cstr('tbf')), attr(TCA_OPTIONS, ...opts),
  ]));
}

/** RTM_NEWQDISC for the ingress qdisc (handle ffff:). */
export function encodeIngress(ifindex: number, op: QdiscOp): Buffer {
  return message(RTM_NEWQDISC, NLM_F_ACK | opFlags(op), Buffer.concat([
    tcmsg(ifindex, INGRESS_HANDLE, TC_H_INGRESS, 0), attr(TCA_KIND, cstr('ingress')),
  ]));
}

export type QdiscParent = 'root' | 'ingress';

export function encodeQdiscDel(ifindex: number, parent: QdiscParent): Buffer {
  const [handle, p] = parent === 'root' ? [0, TC_H_ROOT] : [INGRESS_HANDLE, TC_H_INGRESS];
  return message(RTM_DELQDISC, NLM_F_ACK, tcmsg(ifindex, handle, p, 0));
}

const htons = (n: number): number => ((n & 0xff) << 8) | ((n >> 8) & 0xff);

export interface RedirectSpec {
  /** filter priority (tc's prio/pref) */
  prio: number;
  /** ifindex to redirect to (egress of that device) */
  target: number;
  /** flowid, e.g. 0x00010001 for 1:1 */
  classid: number;
}

/** RTM_NEWTFILTER: u32 match-all on the ingress qdisc, mirred egress redirect to `target`. */
export function encodeRedirect(ifindex: number, r: RedirectSpec): Buffer {
  if (!Number.isInteger(r.prio) || r.prio < 1 || r.prio > 0xffff) throw new KernelError('EINVAL', `invalid filter priority ${r.prio}`, 22);
  const mirred = Buffer.alloc(28); // tc_gen { index, capab, action, refcnt, bindcnt }, eaction, ifindex
  u32(TC_ACT_STOLEN).copy(mirred, 8);
  u32(TCA_EGRESS_REDIR).copy(mirred, 20);
  u32(r.target).copy(mirred, 24);
  const action = attr(1, attr(TCA_ACT_KIND, cstr('mirred')), attr(TCA_ACT_OPTIONS | NLA_F_NESTED, attr(TCA_MIRRED_PARMS, mirred)));
  const sel = Buffer.alloc(16 + 16); // tc_u32_sel + one all-zero key (match u32 0 0 at 0)
  sel[0] = TC_U32_TERMINAL;
  sel[2] = 1;
  const info = ((r.prio << 16) | htons(ETH_P_ALL)) >>> 0;
  return message(RTM_NEWTFILTER, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([
    tcmsg(ifindex, 0, INGRESS_HANDLE, info), attr(TCA_KIND, cstr('u32')),
    attr(TCA_OPTIONS, attr(TCA_U32_CLASSID, u32(r.classid)), attr(TCA_U32_ACT, action), attr(TCA_U32_SEL, sel)),
  ]));
}

// ---------------------------------------------------------------- decoding

interface Attr { type: number; data: Buffer }

/** Attributes of a buffer; at most `max` (a bound on what a dump can make us hold). */
export function parseAttrs(b: Buffer, max = 512): Attr[] {
  const out: Attr[] = [];
  let o = 0;
  while (o + 4 <= b.length && out.length < max) {
    const len = rd16(b, o);
    if (len < 4 || o + len > b.length) break;
    out.push({ type: rd16(b, o + 2) & ~NLA_F_NESTED & 0x3fff, data: b.subarray(o + 4, o + len) });
    o += pad4(len);
  }
  return out;
}

const kindOf = (attrs: Attr[]): string => {
  const k = attrs.find((a) => a.type === TCA_KIND)?.data;
  return k ? k.subarray(0, Math.max(0, k.indexOf(0) >= 0 ? k.indexOf(0) : k.length)).toString('latin1') : '';
};

export interface TbfState { rate: bigint; limit: number; buffer: number }

export interface QdiscInfo {
  ifindex: number;
  kind: string;
  handle: number;
  parent: number;
  tbf?: TbfState;
}

function toQdisc(msg: Buffer): QdiscInfo | null {
  if (msg.length < HDR + TCMSG) return null;
  const t = msg.subarray(HDR, HDR + TCMSG);
  const attrs = parseAttrs(msg.subarray(HDR + TCMSG));
  const q: QdiscInfo = { ifindex: rd32(t, 4), kind: kindOf(attrs), handle: rd32(t, 8), parent: rd32(t, 12) };
  const opts = attrs.find((a) => a.type === TCA_OPTIONS)?.data;
  if (q.kind === 'tbf' && opts) {
    const o = parseAttrs(opts);
    const p = o.find((a) => a.type === TCA_TBF_PARMS)?.data;
    if (p && p.length >= 36) {
      const r64 = o.find((a) => a.type === TCA_TBF_RATE64)?.data;
      q.tbf = { rate: r64 && r64.length >= 8 ? rd64(r64, 0) : BigInt(rd32(p, 8)), limit: rd32(p, 24), buffer: rd32(p, 28) };
    }
  }
  return q;
}

export interface MirredInfo { eaction: 'egress-redirect' | 'egress-mirror' | 'ingress-redirect' | 'ingress-mirror' | 'other'; ifindex: number; action: string }

export interface FilterInfo {
  kind: string;
  prio: number;
  protocol: number;
  handle: number;
  parent: number;
  /** u32: flowid */
  classid: number;
  /** u32: number of match keys, and whether every key matches anything (mask 0) */
  keys: number;
  matchAll: boolean;
  actions: MirredInfo[];
}

const EACTIONS: Record<number, MirredInfo['eaction']> = {
  [TCA_EGRESS_REDIR]: 'egress-redirect', [TCA_EGRESS_MIRROR]: 'egress-mirror',
  [TCA_INGRESS_REDIR]: 'ingress-redirect', [TCA_INGRESS_MIRROR]: 'ingress-mirror',
};
const CONTROL: Record<number, string> = { [TC_ACT_OK]: 'pass', [TC_ACT_SHOT]: 'drop', [TC_ACT_STOLEN]: 'stolen' };

function toFilter(msg: Buffer): FilterInfo | null {
  if (msg.length < HDR + TCMSG) return null;
  const t = msg.subarray(HDR, HDR + TCMSG);
  const info = rd32(t, 16);
  const attrs = parseAttrs(msg.subarray(HDR + TCMSG));
  const f: FilterInfo = {
    kind: kindOf(attrs), prio: info >>> 16, protocol: htons(info & 0xffff), handle: rd32(t, 8), parent: rd32(t, 12),
    classid: 0, keys: 0, matchAll: false, actions: [],
  };
  const opts = attrs.find((a) => a.type === TCA_OPTIONS)?.data;
  if (f.kind !== 'u32' || !opts) return f;
  for (const a of parseAttrs(opts)) {
    if (a.type === TCA_U32_CLASSID && a.data.length >= 4) f.classid = rd32(a.data, 0);
    if (a.type === TCA_U32_SEL && a.data.length >= 16) {
      const n = Math.min(a.data[2], Math.floor((a.data.length - 16) / 16));
      f.keys = n;
      let all = true;
      for (let i = 0; i < n; i++) if (a.data.readUInt32BE(16 + i * 16) !== 0) all = false;
      f.matchAll = all;
    }
    if (a.type === TCA_U32_ACT) {
      for (const tab of parseAttrs(a.data, 32)) {
        const ta = parseAttrs(tab.data);
        if (kindOf(ta) !== 'mirred') continue;
        const ao = ta.find((x) => x.type === TCA_ACT_OPTIONS)?.data;
        const p = ao ? parseAttrs(ao).find((x) => x.type === TCA_MIRRED_PARMS)?.data : undefined;
        if (!p || p.length < 28) continue;
        f.actions.push({ eaction: EACTIONS[rdS32(p, 20)] ?? 'other', ifindex: rd32(p, 24), action: CONTROL[rdS32(p, 8)] ?? String(rdS32(p, 8)) });
      }
    }
  }
  return f;
}

// ---------------------------------------------------------------- operations

/** tc operations on one netns's rtnetlink socket. */
export class Tc {
  constructor(private readonly rtnl: Rtnl) {}

  private send(what: string, msg: Buffer): Buffer[] {
    return this.rtnl.requestRaw(what, msg);
  }

  setTbf(link: string, s: TbfSpec, op: QdiscOp = 'add'): void {
    const i = this.rtnl.getLink(link).index;
    this.send(`${op} tbf qdisc on ${link}`, encodeTbf(i, s, op));
  }

  addIngress(link: string, op: QdiscOp = 'add'): void {
    const i = this.rtnl.getLink(link).index;
    this.send(`${op} ingress qdisc on ${link}`, encodeIngress(i, op));
  }

  deleteQdisc(link: string, parent: QdiscParent): void {
    const i = this.rtnl.getLink(link).index;
    this.send(`delete ${parent} qdisc on ${link}`, encodeQdiscDel(i, parent));
  }

  /** Every qdisc of the link (the kernel's default ones included). */
  listQdiscs(link: string): QdiscInfo[] {
    const i = this.rtnl.getLink(link).index;
    return this.listQdiscsByIndex(i);
  }

  listQdiscsByIndex(ifindex: number): QdiscInfo[] {
    const msgs = this.send('list qdiscs', message(RTM_GETQDISC, NLM_F_DUMP, tcmsg(ifindex, 0, 0, 0)));
    return msgs.slice(0, 4096).map(toQdisc).filter((q): q is QdiscInfo => q !== null && q.ifindex === ifindex);
  }

  addRedirect(link: string, target: string, prio = 1, classid = 0x00010001): void {
    const i = this.rtnl.getLink(link).index;
    const t = this.rtnl.getLink(target).index;
    this.send(`add redirect filter ${link} -> ${target}`, encodeRedirect(i, { prio, target: t, classid }));
  }

  /** Filters under the ingress qdisc of link (u32 hash tables included; see keys). */
  listIngressFilters(link: string): FilterInfo[] {
    const i = this.rtnl.getLink(link).index;
    const msgs = this.send(`list filters of ${link}`, message(RTM_GETTFILTER, NLM_F_DUMP, tcmsg(i, 0, INGRESS_HANDLE, 0)));
    return msgs.slice(0, 4096).map(toFilter).filter((f): f is FilterInfo => f !== null);
  }
}

/** tbf buffer in ticks for `burst` bytes at `rate` bytes/s, computed as the reference (and tc) do. */
export function tbfBuffer(rate: bigint, burst: number, ticksPerUsec: number): number {
  const usec = Math.trunc((burst * 1000000) / Number(rate)) >>> 0;
  return Math.trunc(usec * ticksPerUsec) >>> 0;
}
