// Synchronous rtnetlink for one network namespace: links, addresses, routes.
// Requests are written straight into one reusable buffer and replies read at
// offsets, decoding only the attributes LinkInfo/AddressInfo/RouteInfo carry
// (host/kernel/nlwire.ts); the bytes sent are the ones the `netlink`
// package's codec wrote before (test/unit/rtnl-wire.test.ts compares them).
// Transport is our native addon (the package's own socket is async only).
// `encode`/`nested` (codec StreamData) remain for nftnl.ts; only the codec's
// structs submodule is loaded: the package index also loads its async socket.
import * as S from 'netlink/dist/structs.js';
import type { StreamData, AttrStream as AttrStreamT } from 'netlink/dist/structs.js';
import { closeFd, kernelError, nlDone, nlJoin, nlOpen, nlRequest, nlStart, nlWaitGone, nlWatchOpen, withNetns } from './native.js';
import { HDR, NlWriter, attrS32, attrString, attrU32, eachAttr, readS32, readU16, readU32 } from './nlwire.js';
import {
  NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP, AF_INET, AF_BRIDGE, AF_INET6, IFF_UP, IFF_PROMISC, IFF_ALLMULTI, RTEXT_FILTER_SKIP_STATS, IFLA_PROTINFO, IFLA_AF_SPEC, BRIDGE_FLAGS_SELF, BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED, RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST, RTM_F_CLONED, RTNH_F_ONLINK, NUD_PERMANENT, MACVLAN_MODES, SCOPES, ROUTE_TYPES, IFLA_MACVLAN_BC_QUEUE_LEN,
  type MacvlanMode,
} from './rtconst.js';
import { KernelError, type AddressInfo, type LinkInfo, type RouteInfo } from './types.js';

export type { MacvlanMode };

// message types (linux/rtnetlink.h)
const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18, RTM_SETLINK = 19;
const RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
const RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
const RTM_NEWNEIGH = 28, RTM_DELNEIGH = 29, RTM_GETNEIGH = 30;
// struct sizes
const IFINFOMSG = 16, IFADDRMSG = 8, RTMSG = 12, NDMSG = 12;
// link attributes (linux/if_link.h)
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_MASTER = 10, IFLA_TXQLEN = 13;
const IFLA_LINKINFO = 18, IFLA_NET_NS_FD = 28, IFLA_EXT_MASK = 29, IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_MACVLAN_MODE = 1;
const IFLA_BRPORT_MODE = 4, IFLA_BRPORT_LEARNING = 8, IFLA_BRPORT_ISOLATED = 33;
const IFLA_BRIDGE_FLAGS = 0, IFLA_BRIDGE_VLAN_INFO = 2;
// address, route, neighbour attributes
const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_BROADCAST = 4, IFA_FLAGS = 8;
const IFA_F_NODAD = 0x2, IFA_F_DADFAILED = 0x8, IFA_F_TENTATIVE = 0x40;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_TABLE = 15;
const NDA_DST = 1, NDA_LLADDR = 2;

function checkBcQueueLen(bcQueueLen: number): void {
  if (!Number.isInteger(bcQueueLen) || bcQueueLen < 0 || bcQueueLen > 0xffffffff) throw einval(`invalid bcqueuelen ${bcQueueLen}`);
}

/** The macvlan settings in IFLA_INFO_DATA at m[from, to) (mode; the requested broadcast queue length, attribute 7). */
function parseMacvlanData(m: Buffer, from: number, to: number): { mode?: MacvlanMode; bcQueueLen?: number } {
  let modeNum: number | undefined, bcQueueLen: number | undefined;
  eachAttr(m, from, to, (type, at, len) => {
    if (type === IFLA_MACVLAN_MODE) modeNum = attrU32(m, at, len);
    else if (type === IFLA_MACVLAN_BC_QUEUE_LEN && len >= 4) bcQueueLen = readU32(m, at);
  });
  const mode = (Object.keys(MACVLAN_MODES) as MacvlanMode[]).find((k) => MACVLAN_MODES[k] === modeNum);
  return { mode, bcQueueLen };
}

// ---------------------------------------------------------------- addresses

function einval(msg: string): KernelError {
  return new KernelError('EINVAL', msg, 22);
}

function parse4(s: string): Buffer | null {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return Buffer.from(parts.map(Number));
}

function parse6(s: string): Buffer | null {
  const out = Buffer.alloc(16);
  let text = s;
  if (s.includes('.')) {
    // Embedded IPv4 tail (::ffff:1.2.3.4): parse it, keep two placeholder groups.
    const i = s.lastIndexOf(':');
    const v4 = parse4(s.slice(i + 1));
    if (!v4) return null;
    v4.copy(out, 12);
    text = s.slice(0, i + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const groups = [...head, ...Array<string>(fill).fill('0'), ...tail];
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return null;
    if (i < 6 || !s.includes('.')) out.writeUInt16BE(parseInt(groups[i], 16), i * 2);
  }
  return out;
}

/** "10.0.0.1" / "fd00::1" to 4 / 16 bytes. */
export function ipToBytes(s: string): Buffer {
  const b = s.includes(':') ? parse6(s) : parse4(s);
  if (!b) throw einval(`invalid IP address "${s}"`);
  return b;
}

/** 4 or 16 bytes to text; IPv6 in RFC 5952 form (compressed, lower case). */
export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw einval(`address of ${b.length} bytes`);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return '::ffff:' + Array.from(b.subarray(12)).join('.');
  }
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return hex(g.slice(0, best)) + '::' + hex(g.slice(best + bestLen));
}

export interface Cidr { family: 4 | 6; addr: Buffer; prefix: number }

/** "10.0.0.2/24", "fd00::2/64"; a bare address means a host prefix. */
export function parseCidr(s: string): Cidr {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined) throw einval(`invalid CIDR "${s}"`);
  const addr = ipToBytes(ip);
  const family = addr.length === 4 ? 4 : 6;
  const max = addr.length * 8;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw einval(`invalid prefix length in "${s}"`);
  return { family, addr, prefix };
}

export function parseMac(s: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) throw einval(`invalid MAC address "${s}"`);
  return Buffer.from(s.replace(/:/g, ''), 'hex');
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** m[at, at+len) as aa:bb:..., '' when empty. */
function macAt(m: Buffer, at: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += (i ? ':' : '') + HEX[m[at + i]];
  return s;
}
const formatMac = (b?: Buffer): string => (b && b.length ? macAt(b, 0, b.length) : '');
export const afOf = (family: 4 | 6): number => (family === 4 ? AF_INET : AF_INET6);

export function scopeName(n: number | string | undefined): string {
  if (typeof n === 'string') return n.toLowerCase();
  const e = Object.entries(SCOPES).find(([, v]) => v === n);
  return e ? e[0] : String(n ?? 0);
}

export function scopeNumber(s: string): number {
  if (s in SCOPES) return SCOPES[s];
  if (/^\d+$/.test(s) && Number(s) <= 255) return Number(s);
  throw einval(`invalid scope "${s}"`);
}

// ---------------------------------------------------------------- encoding

/** Serialises codec StreamData to one buffer (for attributes the codec types as Buffer). */
export function encode(...parts: StreamData[]): Buffer {
  const s = new S.AttrStream();
  for (const p of parts) s.emit(p);
  return Buffer.concat(s.bufs);
}

/** An attribute with NLA_F_NESTED set, which the codec's AttrStream.push cannot emit. */
export function nested(type: number, inner: StreamData): StreamData {
  return (out: AttrStreamT) => {
    const pad = S.padding(S.countLength(out.bufs));
    if (pad) out.emit(Buffer.alloc(pad));
    out.emit(S.formatAttribute({ type: type | 0, nested: true, data: encode(inner) }));
  };
}

/** A route's destination, gateway, table and scope as sent (iproute2's defaults filled in). */
export function routeParts(r: RouteInfo, del: boolean): { d: Cidr; gw?: Buffer; table: number; scope: number } {
    const d = parseCidr(r.dst);
    if (d.family !== r.family) throw einval(`route dst ${r.dst} is not IPv${r.family}`);
    const gw = r.gw !== undefined ? ipToBytes(r.gw) : undefined;
    const table = r.table ?? RT_TABLE_MAIN;
    // iproute2's defaults: v6 routes are universe; a v4 route without a
    // gateway is link scope; a delete without a scope matches any scope.
    const scope = r.scope !== undefined ? scopeNumber(r.scope)
      : del ? SCOPES.nowhere : r.family === 6 || gw ? SCOPES.universe : SCOPES.link;
    return { d, gw, table, scope };
}

// ---------------------------------------------------------------- decoding
// Each reply is one whole message (nlmsghdr included), as nlRequest returns it.

/** An address attribute's bytes as text (4 or 16 bytes, else EINVAL as bytesToIp). */
const ipAt = (m: Buffer, at: number, len: number): string => (len === 4 ? `${m[at]}.${m[at + 1]}.${m[at + 2]}.${m[at + 3]}` : bytesToIp(m.subarray(at, at + len)));

function toLink(m: Buffer): LinkInfo {
  // struct ifinfomsg: family, pad, type, index (s32), flags, change
  if (m.length < HDR + IFINFOMSG) throw Error('Unexpected length for Link');
  const index = readS32(m, HDR + 4);
  const flags = readU32(m, HDR + 8);
  let name = '', mtu: number | undefined, mac = '', master: number | undefined, txqlen: number | undefined;
  let linkAt = -1, linkLen = 0, infoAt = -1, infoLen = 0, netnsid: number | undefined;
  eachAttr(m, HDR + IFINFOMSG, m.length, (type, at, len) => {
    switch (type) {
      case IFLA_ADDRESS: mac = macAt(m, at, len); break;
      case IFLA_IFNAME: name = attrString(m, at, len); break;
      case IFLA_MTU: mtu = attrU32(m, at, len); break;
      case IFLA_LINK: linkAt = at; linkLen = len; break;
      case IFLA_MASTER: master = attrU32(m, at, len); break;
      case IFLA_TXQLEN: txqlen = attrU32(m, at, len); break;
      case IFLA_LINKINFO: infoAt = at; infoLen = len; break;
      case IFLA_LINK_NETNSID: netnsid = attrS32(m, at, len); break;
    }
  });
  let kind = '', dataAt = -1, dataLen = 0;
  if (infoAt >= 0) {
    eachAttr(m, infoAt, infoAt + infoLen, (type, at, len) => {
      if (type === IFLA_INFO_KIND) kind = attrString(m, at, len);
      else if (type === IFLA_INFO_DATA) { dataAt = at; dataLen = len; }
    });
  }
  const link = linkAt >= 0 && linkLen >= 4 ? readU32(m, linkAt) : 0;
  const info: LinkInfo = {
    index,
    name,
    kind,
    mtu: mtu ?? 0,
    mac,
    up: (flags & IFF_UP) !== 0,
    masterIndex: master ?? 0,
    promisc: (flags & IFF_PROMISC) !== 0,
    allmulti: (flags & IFF_ALLMULTI) !== 0,
    txqlen: txqlen ?? 0,
    peerIndex: kind === 'veth' ? link : 0,
  };
  if (kind !== 'veth' && link && link !== info.index) info.parentIndex = link;
  if (kind === 'macvlan' && dataAt >= 0) {
    const mv = parseMacvlanData(m, dataAt, dataAt + dataLen);
    if (mv.mode) info.macvlanMode = mv.mode;
    if (mv.bcQueueLen !== undefined) info.bcQueueLen = mv.bcQueueLen;
  }
  if (netnsid !== undefined) info.linkNetnsid = netnsid;
  return info;
}

function toAddress(m: Buffer): AddressInfo {
  // struct ifaddrmsg: family, prefixlen, flags, scope, index
  if (m.length < HDR + IFADDRMSG) throw Error('Unexpected length for Address');
  const family = m[HDR], prefixlen = m[HDR + 1], scope = m[HDR + 3];
  let flags = m[HDR + 2];
  let localAt = -1, localLen = 0, addrAt = -1, addrLen = 0;
  eachAttr(m, HDR + IFADDRMSG, m.length, (type, at, len) => {
    if (type === IFA_LOCAL) { localAt = at; localLen = len; }
    else if (type === IFA_ADDRESS) { addrAt = at; addrLen = len; }
    else if (type === IFA_FLAGS) flags = attrU32(m, at, len);
  });
  const ip = localAt >= 0 ? ipAt(m, localAt, localLen) : addrAt >= 0 ? ipAt(m, addrAt, addrLen)
    : bytesToIp(Buffer.alloc(family === AF_INET ? 4 : 16));
  const info: AddressInfo = {
    ifindex: readU32(m, HDR + 4),
    family: family === AF_INET ? 4 : 6,
    cidr: `${ip}/${prefixlen}`,
    scope: scopeName(scope),
  };
  if (flags & IFA_F_TENTATIVE) info.tentative = true;
  if (flags & IFA_F_DADFAILED) info.dadFailed = true;
  return info;
}

function toRoute(m: Buffer): RouteInfo & { cloned: boolean } {
  // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
  if (m.length < HDR + RTMSG) throw Error('Unexpected length for Route');
  const family = m[HDR] === AF_INET ? 4 : 6;
  const dstLen = m[HDR + 1];
  const rtmTable = m[HDR + 4], scope = m[HDR + 6], type = m[HDR + 7];
  const flags = readU32(m, HDR + 8);
  let dst: string | undefined, gw: string | undefined, src: string | undefined;
  let oif: number | undefined, priority: number | undefined, table: number | undefined;
  eachAttr(m, HDR + RTMSG, m.length, (t, at, len) => {
    switch (t) {
      case RTA_DST: dst = ipAt(m, at, len); break;
      case RTA_OIF: oif = attrU32(m, at, len); break;
      case RTA_GATEWAY: gw = ipAt(m, at, len); break;
      case RTA_PRIORITY: priority = attrU32(m, at, len); break;
      case RTA_PREFSRC: src = ipAt(m, at, len); break;
      case RTA_TABLE: table = attrU32(m, at, len); break;
    }
  });
  const r: RouteInfo & { cloned: boolean } = {
    family,
    dst: `${dst ?? (family === 4 ? '0.0.0.0' : '::')}/${dstLen}`,
    table: table ?? rtmTable,
    scope: scopeName(scope),
    cloned: (flags & RTM_F_CLONED) !== 0,
  };
  if (gw !== undefined) r.gw = gw;
  if (oif !== undefined) r.ifindex = oif;
  if (src !== undefined) r.src = src;
  if (priority !== undefined) r.metric = priority;
  if (type !== RTN_UNICAST) r.type = ROUTE_TYPES[type] ?? String(type);
  if (flags & RTNH_F_ONLINK) r.onlink = true;
  return r;
}

function toNeigh(m: Buffer): NeighInfo {
  // struct ndmsg: family, pad1, pad2, ifindex, state (u16), flags, type
  if (m.length < HDR + NDMSG) throw Error('Unexpected length for Neighbor');
  let ip = '', mac = '';
  eachAttr(m, HDR + NDMSG, m.length, (type, at, len) => {
    if (type === NDA_DST) ip = ipAt(m, at, len);
    else if (type === NDA_LLADDR) mac = macAt(m, at, len);
  });
  return { ifindex: readU32(m, HDR + 4), ip, mac, permanent: (readU16(m, HDR + 8) & NUD_PERMANENT) !== 0 };
}

/** The decoders, for tests that hold them against the codec's. */
export const decode = { link: toLink, address: toAddress, route: toRoute, neigh: toNeigh };

// ---------------------------------------------------------------- encoding helpers

// One writer for every socket: a request is built and sent before the next one begins.
const W = new NlWriter();
/** IFLA_LINKINFO content: IFLA_INFO_KIND "ifb" without its NUL (len 7, padded) */
const IFB_KIND = Buffer.from([7, 0, 1, 0, 0x69, 0x66, 0x62, 0]);

/** struct ifinfomsg with family, index (s32), flags and change. */
function ifinfo(w: NlWriter, family = 0, index = 0, flags = 0, change = 0): void {
  const at = w.zeros(IFINFOMSG);
  if (family) w.u8At(family, at);
  if (index) w.s32At(index, at + 4);
  if (flags) w.u32At(flags, at + 8);
  if (change) w.u32At(change, at + 12);
}

const optU32 = (w: NlWriter, type: number, v: number | undefined): void => { if (v !== undefined) w.attrU32(type, v); };
const optBytes = (w: NlWriter, type: number, v: Buffer | undefined): void => { if (v !== undefined) w.attr(type, v); };

/** IFLA_LINKINFO { IFLA_INFO_KIND kind, IFLA_INFO_DATA written by data } */
function linkinfo(w: NlWriter, kind: string, data?: (w: NlWriter) => void): void {
  const li = w.start(IFLA_LINKINFO);
  w.attrStr(IFLA_INFO_KIND, kind);
  if (data) { const d = w.start(IFLA_INFO_DATA); data(w); w.end(d); }
  w.end(li);
}

export interface VethOptions { mtu?: number; mac?: string; peerMac?: string; peerNsFd?: number; txqlen?: number }
export interface BridgeOptions { mtu?: number; vlanFiltering?: boolean; mac?: string }
export interface IfbOptions { mtu?: number; txqlen?: number; up?: boolean }
export interface MacvlanOptions { mtu?: number; mac?: string; nsFd?: number; txqlen?: number; /** IFLA_MACVLAN_BC_QUEUE_LEN, sent only when set */ bcQueueLen?: number }
export interface SetLinkOptions {
  up?: boolean; mtu?: number; mac?: string;
  /** 0 = nomaster */
  masterIndex?: number;
  promisc?: boolean; newName?: string;
  allmulti?: boolean; txqlen?: number;
  /** move the link into this netns */
  nsFd?: number;
}
export interface BridgePortOptions { hairpin?: boolean; isolated?: boolean; learning?: boolean }
export interface BridgeVlanOptions {
  pvid?: boolean; untagged?: boolean;
  /** apply to the bridge device itself (required when `name` is the bridge) */
  self?: boolean;
}

/** Where a request goes: the socket normally; a function in tests. Returns the reply messages. */
export type Transport = (req: Buffer) => Buffer[];

/** ifi_flags and ifi_change for the flags a SetLinkOptions sets. */
export function linkFlags(opts: SetLinkOptions): { flags: number; change: number } {
    let flags = 0, change = 0;
    if (opts.up !== undefined) { change |= IFF_UP; if (opts.up) flags |= IFF_UP; }
    if (opts.promisc !== undefined) { change |= IFF_PROMISC; if (opts.promisc) flags |= IFF_PROMISC; }
    if (opts.allmulti !== undefined) { change |= IFF_ALLMULTI; if (opts.allmulti) flags |= IFF_ALLMULTI; }
    return { flags, change };
}

/** Deletions announced done whose kernel answer is still to come (beginDeleteLink). */
const lingering: { handle: object; fd: number }[] = [];

/** How many deletions still wait for the kernel's answer (tests). */
export const lingeringDeletions = (): number => lingering.length;

/** Collects the kernel's answers to deletions already announced done, and closes their sockets. */
export function reapBackground(): void {
  for (let i = lingering.length - 1; i >= 0; i--) {
    const l = lingering[i];
    if (!nlDone(l.handle)) continue;
    lingering.splice(i, 1);
    try { nlJoin(l.handle); } catch { /* announced gone: the link is gone whatever the late answer says */ }
    closeFd(l.fd);
  }
}

/** fn, run at most once (a second call does nothing). */
function once(fn: () => void): () => void {
  let done = false;
  return () => { if (!done) { done = true; fn(); } };
}

/** Waits for a request nlStart sent and closes its socket; throws what the kernel answered. */
function joinBackground(fd: number, handle: object, what: string): void {
  try {
    nlJoin(handle);
  } catch (e) {
    throw kernelError(e, what);
  } finally {
    closeFd(fd);
  }
}

export class Rtnl {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private fd: number;
  private readonly transport: Transport | null;

  private constructor(fd: number, transport: Transport | null = null, private readonly nsFd: number | null = null) {
    this.fd = fd;
    this.transport = transport;
  }

  /**
   * A socket in netns nsFd (null: the process's current netns). The socket
   * stays bound to that netns for life, so the thread switches back at once.
   */
  static open(nsFd: number | null): Rtnl {
    return new Rtnl(withNetns(nsFd, () => nlOpen()), null, nsFd);
  }

  /** No socket: every request goes to transport (tests compare the bytes, or replay replies). */
  static over(transport: Transport): Rtnl {
    return new Rtnl(0, transport);
  }

  close(): void {
    if (this.fd >= 0 && !this.transport) closeFd(this.fd);
    this.fd = -1;
  }

  /** Starts the next request in the shared writer; send it with send() before any other request. */
  private begin(what: string, type: number, flags: number): NlWriter {
    if (this.fd < 0) throw new KernelError('EBADF', `${what}: socket closed`, 9);
    this.seq = (this.seq + 1) >>> 0 || 1;
    return W.begin(type, flags | NLM_F_REQUEST, this.seq);
  }

  private send(what: string, req: Buffer, dump: boolean): Buffer[] {
    for (let tries = 0; ; tries++) {
      try {
        return this.transport ? this.transport(req) : nlRequest(this.fd, req);
      } catch (e) {
        // A dump raced a change (NLM_F_DUMP_INTR): the kernel says retry.
        if ((e as { code?: string }).code === 'EINTR' && dump && tries < 3) continue;
        throw kernelError(e, what);
      }
    }
  }

  /** A request whose reply is an ACK (or the error). */
  private ack(what: string, w: NlWriter): void {
    this.send(what, w.finish(), false);
  }

  private dump(what: string, w: NlWriter): Buffer[] {
    return this.send(what, w.finish(), true);
  }

  /**
   * Sends one complete message built elsewhere (host/kernel/tc.ts), with
   * this socket's next seq written in; returns the reply messages.
   */
  requestRaw(what: string, msg: Buffer): Buffer[] {
    if (this.fd < 0) throw new KernelError('EBADF', `${what}: socket closed`, 9);
    this.seq = (this.seq + 1) >>> 0 || 1;
    const req = Buffer.from(msg);
    S.writeU32.call(req, this.seq, 8);
    return this.send(what, req, (S.readU16.call(req, 6) & NLM_F_DUMP) === NLM_F_DUMP);
  }

  /**
   * The id this netns gives the netns open at nsFd (what IFLA_LINK_NETNSID of
   * a link whose peer lives there says), or -1 when it has none.
   */
  netnsId(nsFd: number): number {
    const RTM_GETNSID = 90, NETNSA_NSID = 1, NETNSA_FD = 3;
    const body = Buffer.alloc(4 + 8); // rtgenmsg (padded), NETNSA_FD
    S.writeU16.call(body, 8, 4);
    S.writeU16.call(body, NETNSA_FD, 6);
    S.writeU32.call(body, nsFd, 8);
    const hdr = Buffer.alloc(HDR);
    S.writeU32.call(hdr, HDR + body.length, 0);
    S.writeU16.call(hdr, RTM_GETNSID, 4);
    S.writeU16.call(hdr, NLM_F_REQUEST | NLM_F_ACK, 6);
    const msgs = this.requestRaw('get netns id', Buffer.concat([hdr, body]));
    for (const m of msgs) {
      for (let o = HDR + 4; o + 8 <= m.length; ) {
        const len = S.readU16.call(m, o), type = S.readU16.call(m, o + 2);
        if (len < 4) break;
        if ((type & 0x3fff) === NETNSA_NSID && len >= 8) return S.readU32.call(m, o + 4) | 0;
        o += (len + 3) & ~3;
      }
    }
    return -1;
  }

  // ---------------------------------------------------------------- links

  getLink(name: string): LinkInfo {
    const what = `get link ${name}`;
    const w = this.begin(what, RTM_GETLINK, NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name).attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    const msgs = this.send(what, w.finish(), false);
    if (!msgs.length) throw new KernelError('ENODEV', `get link ${name}: no such device`, 19);
    return toLink(msgs[0]);
  }

  getLinkByIndex(index: number): LinkInfo {
    const what = `get link #${index}`;
    const w = this.begin(what, RTM_GETLINK, NLM_F_ACK);
    ifinfo(w, 0, index);
    w.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    const msgs = this.send(what, w.finish(), false);
    if (!msgs.length) throw new KernelError('ENODEV', `get link #${index}: no such device`, 19);
    return toLink(msgs[0]);
  }

  listLinks(): LinkInfo[] {
    const w = this.begin('list links', RTM_GETLINK, NLM_F_DUMP);
    ifinfo(w);
    w.attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    return this.dump('list links', w).map(toLink);
  }

  /**
   * Creates name here and peerName in peerNsFd (default: here) in one request,
   * so neither end ever exists under its name in the other netns. mtu applies
   * to both ends.
   */
  createVeth(name: string, peerName: string, opts: VethOptions = {}): void {
    const what = `create veth ${name}/${peerName}`;
    this.ack(what, this.vethRequest(what, name, peerName, opts));
  }

  /**
   * createVeth from a thread of its own (on a socket of its own in this
   * socket's netns), so the caller works while the kernel makes the pair
   * (~0.6-1 ms); finish() waits for the kernel's answer and throws what
   * createVeth would have.
   */
  beginCreateVeth(name: string, peerName: string, opts: VethOptions = {}): { finish(): void } {
    const what = `create veth ${name}/${peerName}`;
    const w = this.vethRequest(what, name, peerName, opts);
    if (this.transport) {
      // a recorded or test transport answers at once: the same outcome, later
      let err: unknown = null;
      try { this.ack(what, w); } catch (e) { err = e; }
      return { finish: () => { if (err) throw err; } };
    }
    reapBackground();
    const { fd, handle } = this.startBackground(what, w);
    return { finish: once(() => joinBackground(fd, handle, what)) };
  }

  /** w's request sent from a thread of its own, on a socket of its own in this socket's netns (nlStart). */
  private startBackground(what: string, w: NlWriter): { fd: number; handle: object } {
    const req = Buffer.from(w.finish()); // a copy: the writer's buffer serves the next request
    let fd = -1;
    try {
      fd = withNetns(this.nsFd, () => nlOpen());
      return { fd, handle: nlStart(fd, req) };
    } catch (e) {
      if (fd >= 0) closeFd(fd);
      throw kernelError(e, what);
    }
  }

  private vethRequest(what: string, name: string, peerName: string, opts: VethOptions): NlWriter {
    const peerMac = opts.peerMac !== undefined ? parseMac(opts.peerMac) : undefined;
    const mac = opts.mac !== undefined ? parseMac(opts.mac) : undefined;
    const w = this.begin(what, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name);
    optU32(w, IFLA_MTU, opts.mtu);
    optU32(w, IFLA_TXQLEN, opts.txqlen);
    optBytes(w, IFLA_ADDRESS, mac);
    linkinfo(w, 'veth', () => {
      const peer = w.start(VETH_INFO_PEER);
      ifinfo(w);
      w.attrStr(IFLA_IFNAME, peerName);
      optU32(w, IFLA_MTU, opts.mtu);
      optU32(w, IFLA_TXQLEN, opts.txqlen);
      optBytes(w, IFLA_ADDRESS, peerMac);
      optU32(w, IFLA_NET_NS_FD, opts.peerNsFd);
      w.end(peer);
    });
    return w;
  }

  createBridge(name: string, opts: BridgeOptions = {}): void {
    const mac = opts.mac !== undefined ? parseMac(opts.mac) : undefined;
    const what = `create bridge ${name}`;
    const w = this.begin(what, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name);
    optU32(w, IFLA_MTU, opts.mtu);
    optBytes(w, IFLA_ADDRESS, mac);
    // Sent only to turn filtering on (it is off by default): a kernel built
    // without CONFIG_BRIDGE_VLAN_FILTERING rejects the attribute whatever its value.
    linkinfo(w, 'bridge', opts.vlanFiltering ? () => { w.attrU8(IFLA_BR_VLAN_FILTERING, 1); } : undefined);
    this.ack(what, w);
  }

  /** The master is looked up here; with nsFd the new link is born in that netns. */
  createMacvlan(name: string, masterIndex: number, mode: MacvlanMode, opts: MacvlanOptions = {}): void {
    if (!(mode in MACVLAN_MODES)) throw einval(`invalid macvlan mode "${mode}"`);
    const mac = opts.mac !== undefined ? parseMac(opts.mac) : undefined;
    if (opts.bcQueueLen !== undefined) checkBcQueueLen(opts.bcQueueLen);
    const what = `create macvlan ${name}`;
    const w = this.begin(what, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name).attrU32(IFLA_LINK, masterIndex);
    optU32(w, IFLA_MTU, opts.mtu);
    optBytes(w, IFLA_ADDRESS, mac);
    optU32(w, IFLA_NET_NS_FD, opts.nsFd);
    optU32(w, IFLA_TXQLEN, opts.txqlen);
    linkinfo(w, 'macvlan', () => {
      w.attrU32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode]);
      optU32(w, IFLA_MACVLAN_BC_QUEUE_LEN, opts.bcQueueLen);
    });
    this.ack(what, w);
  }

  /** With opts as the reference bandwidth plugin creates its IFB: up, the veth's MTU, txqueuelen 0. */
  createIfb(name: string, opts: IfbOptions = {}): void {
    const what = `create ifb ${name}`;
    const w = this.begin(what, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    ifinfo(w, 0, 0, opts.up ? IFF_UP : 0, opts.up ? IFF_UP : 0);
    w.attrStr(IFLA_IFNAME, name);
    optU32(w, IFLA_MTU, opts.mtu);
    optU32(w, IFLA_TXQLEN, opts.txqlen);
    // IFLA_INFO_KIND "ifb" without a NUL, as iproute2 and Go netlink send it
    w.attr(IFLA_LINKINFO, IFB_KIND);
    this.ack(what, w);
  }

  /** A dummy link; EOPNOTSUPP when the kernel has no dummy driver. */
  createDummy(name: string, opts: { mtu?: number } = {}): void {
    const what = `create dummy ${name}`;
    const w = this.begin(what, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name);
    optU32(w, IFLA_MTU, opts.mtu);
    linkinfo(w, 'dummy');
    this.ack(what, w);
  }

  /** One RTM_SETLINK; the kernel applies a netns move first, then the rest. */
  setLink(name: string, opts: SetLinkOptions): void {
    const { flags, change } = linkFlags(opts);
    // A rename needs the index: IFLA_IFNAME then carries the new name.
    const index = opts.newName !== undefined ? this.getLink(name).index : 0;
    const mac = opts.mac !== undefined ? parseMac(opts.mac) : undefined;
    const what = `set link ${name}`;
    const w = this.begin(what, RTM_SETLINK, NLM_F_ACK);
    ifinfo(w, 0, index, flags, change);
    w.attrStr(IFLA_IFNAME, opts.newName ?? name);
    optU32(w, IFLA_MTU, opts.mtu);
    optBytes(w, IFLA_ADDRESS, mac);
    optU32(w, IFLA_MASTER, opts.masterIndex);
    optU32(w, IFLA_NET_NS_FD, opts.nsFd);
    optU32(w, IFLA_TXQLEN, opts.txqlen);
    this.ack(what, w);
  }

  /** Bridge-port flags (like `bridge link set`); name must be enslaved to a bridge. */
  setBridgePort(name: string, opts: BridgePortOptions): void {
    const index = this.getLink(name).index;
    const what = `set bridge port ${name}`;
    const w = this.begin(what, RTM_SETLINK, NLM_F_ACK);
    ifinfo(w, AF_BRIDGE, index);
    // The kernel reads IFLA_PROTINFO as nested port attributes only when
    // NLA_F_NESTED is set (otherwise as a bare STP state byte).
    const p = w.start(IFLA_PROTINFO, true);
    if (opts.hairpin !== undefined) w.attrU8(IFLA_BRPORT_MODE, opts.hairpin ? 1 : 0);
    if (opts.learning !== undefined) w.attrU8(IFLA_BRPORT_LEARNING, opts.learning ? 1 : 0);
    if (opts.isolated !== undefined) w.attrU8(IFLA_BRPORT_ISOLATED, opts.isolated ? 1 : 0);
    w.end(p);
    this.ack(what, w);
  }

  private bridgeVlan(what: string, type: number, name: string, vid: number, opts: BridgeVlanOptions): void {
    if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw einval(`invalid VLAN id ${vid}`);
    const index = this.getLink(name).index;
    const vflags = (opts.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (opts.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0);
    const full = `${what} ${name} vid ${vid}`;
    const w = this.begin(full, type, NLM_F_ACK);
    ifinfo(w, AF_BRIDGE, index);
    const spec = w.start(IFLA_AF_SPEC, true);
    if (opts.self) w.attrU16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF);
    const vi = w.start(IFLA_BRIDGE_VLAN_INFO); // struct bridge_vlan_info { u16 flags; u16 vid; }
    const at = w.zeros(4);
    w.u16At(vflags, at).u16At(vid, at + 2).end(vi);
    w.end(spec);
    this.ack(full, w);
  }

  bridgeVlanAdd(name: string, vid: number, opts: BridgeVlanOptions = {}): void {
    this.bridgeVlan('bridge vlan add', RTM_SETLINK, name, vid, opts);
  }

  bridgeVlanDel(name: string, vid: number, opts: BridgeVlanOptions = {}): void {
    this.bridgeVlan('bridge vlan del', RTM_DELLINK, name, vid, opts);
  }

  /** With `index`, the link of that ifindex is deleted (the kernel then ignores the name, given for its messages). */
  deleteLink(name: string, index = 0): void {
    const what = `delete link ${name}`;
    const w = this.begin(what, RTM_DELLINK, NLM_F_ACK);
    ifinfo(w, 0, index);
    w.attrStr(IFLA_IFNAME, name);
    this.ack(what, w);
  }

  /**
   * deleteLink from a thread of its own, on a socket of its own in this
   * socket's netns. The kernel unregisters the link (announcing RTM_DELLINK)
   * within a millisecond or so, but answers only after RCU grace periods
   * (~15-25 ms) in which it frees what the link used, invisibly. finish()
   * returns once the link is announced gone (or throws what deleteLink
   * would have: the kernel refuses before it unregisters anything); the
   * answer is collected later (reapBackground), the thread closing up.
   */
  beginDeleteLink(name: string): { finish(): void } {
    reapBackground();
    const what = `delete link ${name}`;
    const w = this.begin(what, RTM_DELLINK, NLM_F_ACK);
    ifinfo(w);
    w.attrStr(IFLA_IFNAME, name);
    // the watch first, so the announcement cannot come before it listens
    const watch = withNetns(this.nsFd, () => nlWatchOpen());
    let started: { fd: number; handle: object };
    try {
      started = this.startBackground(what, w);
    } catch (e) {
      closeFd(watch);
      throw e;
    }
    const { fd, handle } = started;
    return {
      finish: once(() => {
        try {
          if (nlWaitGone(watch, handle, name, 30_000) === 1) {
            lingering.push({ handle, fd });
            return;
          }
          joinBackground(fd, handle, what);
        } finally {
          closeFd(watch);
        }
      }),
    };
  }

  // ---------------------------------------------------------------- addresses

  private addrMsg(what: string, type: number, flags: number, ifindex: number, cidr: string, noDad: boolean): NlWriter {
    const c = parseCidr(cidr);
    const w = this.begin(what, type, flags);
    const at = w.zeros(IFADDRMSG);
    w.u8At(afOf(c.family), at);
    if (c.prefix) w.u8At(c.prefix, at + 1);
    if (noDad) w.u8At(IFA_F_NODAD, at + 2);
    if (ifindex) w.u32At(ifindex, at + 4);
    w.attr(IFA_LOCAL, c.addr).attr(IFA_ADDRESS, c.addr);
    // Like the Go netlink library the reference plugins use: a v4 address
    // gets its subnet's broadcast address.
    if (c.family === 4 && c.prefix < 31) {
      const bcast = Buffer.from(c.addr);
      bcast.writeUInt32BE((bcast.readUInt32BE(0) | (0xffffffff >>> c.prefix)) >>> 0, 0);
      w.attr(IFA_BROADCAST, bcast);
    }
    if (noDad) w.attrU32(IFA_FLAGS, IFA_F_NODAD);
    return w;
  }

  /** noDad sets IFA_F_NODAD so an IPv6 address is usable at once (no tentative phase). */
  addAddress(ifindex: number, cidr: string, opts: { noDad?: boolean } = {}): void {
    const what = `add address ${cidr} on #${ifindex}`;
    this.ack(what, this.addrMsg(what, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, ifindex, cidr, !!opts.noDad));
  }

  delAddress(ifindex: number, cidr: string): void {
    const what = `delete address ${cidr} on #${ifindex}`;
    this.ack(what, this.addrMsg(what, RTM_DELADDR, NLM_F_ACK, ifindex, cidr, false));
  }

  listAddresses(opts: { ifindex?: number; family?: 4 | 6 } = {}): AddressInfo[] {
    const family = opts.family ? afOf(opts.family) : 0;
    const w = this.begin('list addresses', RTM_GETADDR, NLM_F_DUMP);
    const at = w.zeros(IFADDRMSG);
    if (family) w.u8At(family, at);
    return this.dump('list addresses', w)
      .map(toAddress)
      .filter((a) => (opts.ifindex === undefined || a.ifindex === opts.ifindex) && (!opts.family || a.family === opts.family));
  }

  // ---------------------------------------------------------------- routes

  private routeMsg(what: string, type: number, flags: number, r: RouteInfo, del: boolean): NlWriter {
    const { d, gw, table, scope } = routeParts(r, del);
    const src = r.src !== undefined ? ipToBytes(r.src) : undefined;
    const w = this.begin(what, type, flags);
    const at = w.zeros(RTMSG);
    w.u8At(afOf(r.family), at);
    if (d.prefix) w.u8At(d.prefix, at + 1);
    if (table < 256 && table) w.u8At(table, at + 4);
    if (!del) w.u8At(RTPROT_BOOT, at + 5);
    w.setByte(scope, at + 6); // a plain byte store, as before: a zero (universe) scope included
    w.u8At(RTN_UNICAST, at + 7);
    if (r.onlink && !del) w.u32At(RTNH_F_ONLINK, at + 8); // rtm_flags: the gateway is on the link, whatever the subnets say
    if (d.prefix > 0) w.attr(RTA_DST, d.addr);
    optBytes(w, RTA_GATEWAY, gw);
    optU32(w, RTA_OIF, r.ifindex);
    optBytes(w, RTA_PREFSRC, src);
    optU32(w, RTA_PRIORITY, r.metric);
    w.attrU32(RTA_TABLE, table);
    return w;
  }

  /** exclusive: false adds beside other routes to the same destination (no NLM_F_EXCL). */
  addRoute(r: RouteInfo, opts: { exclusive?: boolean } = {}): void {
    const flags = opts.exclusive === false ? NLM_F_CREATE : NLM_F_CREATE | NLM_F_EXCL;
    const what = `add route ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`;
    this.ack(what, this.routeMsg(what, RTM_NEWROUTE, flags | NLM_F_ACK, r, false));
  }

  delRoute(r: RouteInfo): void {
    const what = `delete route ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`;
    this.ack(what, this.routeMsg(what, RTM_DELROUTE, NLM_F_ACK, r, true));
  }

  /** Routes of one table (main by default), without cached clones. */
  listRoutes(family?: 4 | 6, table: number = RT_TABLE_MAIN): RouteInfo[] {
    const w = this.begin('list routes', RTM_GETROUTE, NLM_F_DUMP);
    const at = w.zeros(RTMSG);
    if (family) w.u8At(afOf(family), at);
    return this.dump('list routes', w)
      .filter((m) => m[HDR] === AF_INET || m[HDR] === AF_INET6)
      .map(toRoute)
      .filter((r) => !r.cloned && r.table === table && (!family || r.family === family))
      .map(({ cloned: _c, ...r }) => r);
  }

  // ---------------------------------------------------------------- neighbours

  private neighMsg(what: string, type: number, flags: number, n: NeighInfo): NlWriter {
    const ip = ipToBytes(n.ip);
    const mac = n.mac ? parseMac(n.mac) : undefined;
    const w = this.begin(what, type, flags);
    const at = w.zeros(NDMSG);
    w.u8At(afOf(ip.length === 4 ? 4 : 6), at);
    w.u32At(n.ifindex, at + 4);
    w.u16At(n.permanent ? NUD_PERMANENT : 0x02 /* NUD_REACHABLE */, at + 8);
    w.attr(NDA_DST, ip);
    optBytes(w, NDA_LLADDR, mac);
    return w;
  }

  /** A neighbour entry (ip neigh add): EEXIST when one is there already. */
  addNeigh(n: NeighInfo): void {
    const what = `add neighbour ${n.ip}`;
    this.ack(what, this.neighMsg(what, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, n));
  }

  delNeigh(n: NeighInfo): void {
    const what = `delete neighbour ${n.ip}`;
    this.ack(what, this.neighMsg(what, RTM_DELNEIGH, NLM_F_ACK, { ...n, mac: '' }));
  }

  listNeigh(family?: 4 | 6): NeighInfo[] {
    const w = this.begin('list neighbours', RTM_GETNEIGH, NLM_F_DUMP);
    const at = w.zeros(NDMSG);
    if (family) w.u8At(afOf(family), at);
    return this.dump('list neighbours', w).map(toNeigh)
      .filter((n) => n.ip !== '' && (!family || n.ip.includes(':') === (family === 6)));
  }
}

export interface NeighInfo { ifindex: number; ip: string; mac: string; permanent: boolean }
