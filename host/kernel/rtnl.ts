// Synchronous rtnetlink for one network namespace: links, addresses, routes.
// Encoding/decoding uses the `netlink` package's codec; transport is our
// native addon (the package's own socket is async only).
// Only the codec submodules: the package index also loads its async socket.
// The exec path runs from one esbuild bundle, so these cost no module lookups.
import * as S from 'netlink/dist/structs.js';
import type { StreamData, AttrStream as AttrStreamT } from 'netlink/dist/structs.js';
import * as rt from 'netlink/dist/rt/gen_structs.js';
import * as ifla from 'netlink/dist/rt/ifla.js';
import { closeFd, kernelError, nlJoin, nlOpen, nlRequest, nlStart, withNetns } from './native.js';
import { KernelError, type AddressInfo, type LinkInfo, type RouteInfo } from './types.js';

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_DUMP = 0x300;
const AF_INET = 2;
const AF_BRIDGE = 7;
const AF_INET6 = 10;
const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;
const IFF_ALLMULTI = 0x200;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const IFLA_PROTINFO = 12;
const IFLA_AF_SPEC = 26;
const BRIDGE_FLAGS_SELF = 2;
const BRIDGE_VLAN_INFO_PVID = 2;
const BRIDGE_VLAN_INFO_UNTAGGED = 4;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RTM_F_CLONED = 0x200;
const RTNH_F_ONLINK = 4;
const NUD_PERMANENT = 0x80;
const HDR = 16; // sizeof(struct nlmsghdr)

const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
const SCOPES: Record<string, number> = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole',
  'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

export type MacvlanMode = keyof typeof MACVLAN_MODES;
/** IFLA_MACVLAN_BC_QUEUE_LEN (the codec knows attributes 1-6 only) */
const IFLA_MACVLAN_BC_QUEUE_LEN = 7;

function macvlanData(mode: number, bcQueueLen?: number): StreamData {
  const base = ifla.formatMacvlan({ mode });
  if (bcQueueLen === undefined) return base;
  if (!Number.isInteger(bcQueueLen) || bcQueueLen < 0 || bcQueueLen > 0xffffffff) throw einval(`invalid bcqueuelen ${bcQueueLen}`);
  return (out: AttrStreamT) => { out.emit(base); out.push(IFLA_MACVLAN_BC_QUEUE_LEN, S.putU32(bcQueueLen)); };
}

/** The macvlan settings in IFLA_INFO_DATA (mode; the requested broadcast queue length, attribute 7). */
function parseMacvlanData(data: Buffer): { mode?: MacvlanMode; bcQueueLen?: number } {
  const m = ifla.parseMacvlan(data);
  const mode = (Object.keys(MACVLAN_MODES) as MacvlanMode[]).find((k) => MACVLAN_MODES[k] === m.mode);
  let bcQueueLen: number | undefined;
  S.parseAttributes(data, (a) => { if (a.type === IFLA_MACVLAN_BC_QUEUE_LEN && a.data.length >= 4) bcQueueLen = S.getU32(a.data.subarray(0, 4)); });
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
  if (b.length === 4) return Array.from(b).join('.');
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

function parseMac(s: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) throw einval(`invalid MAC address "${s}"`);
  return Buffer.from(s.replace(/:/g, ''), 'hex');
}

const formatMac = (b?: Buffer): string => (b && b.length ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : '');
const afOf = (family: 4 | 6): number => (family === 4 ? AF_INET : AF_INET6);

function scopeName(n: number | string | undefined): string {
  if (typeof n === 'string') return n.toLowerCase();
  const e = Object.entries(SCOPES).find(([, v]) => v === n);
  return e ? e[0] : String(n ?? 0);
}

function scopeNumber(s: string): number {
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

// ---------------------------------------------------------------- decoding

function toLink(msg: Buffer): LinkInfo {
  const body = msg.subarray(HDR);
  const h = rt.parseLink(body.subarray(0, rt.__LENGTH_Link));
  const a = ifla.parseLinkAttrs(body.subarray(rt.__LENGTH_Link));
  const kind = a.linkinfo ? ifla.parseInfo(a.linkinfo).kind ?? '' : '';
  const link = a.link && a.link.length >= 4 ? S.getU32(a.link.subarray(0, 4)) : 0;
  const info: LinkInfo = {
    index: h.index ?? 0,
    name: a.ifname ?? '',
    kind,
    mtu: a.mtu ?? 0,
    mac: formatMac(a.address),
    up: !!h.flags?.up,
    masterIndex: a.master ?? 0,
    promisc: !!h.flags?.promisc,
    allmulti: !!h.flags?.allmulti,
    txqlen: a.txqlen ?? 0,
    peerIndex: kind === 'veth' ? link : 0,
  };
  if (kind !== 'veth' && link && link !== info.index) info.parentIndex = link;
  if (kind === 'macvlan' && a.linkinfo) {
    const data = ifla.parseInfo(a.linkinfo).data;
    if (data) {
      const mv = parseMacvlanData(data);
      if (mv.mode) info.macvlanMode = mv.mode;
      if (mv.bcQueueLen !== undefined) info.bcQueueLen = mv.bcQueueLen;
    }
  }
  if (a.linkNetnsid !== undefined) info.linkNetnsid = a.linkNetnsid;
  return info;
}

function toAddress(msg: Buffer): AddressInfo {
  const body = msg.subarray(HDR);
  const h = rt.parseAddress(body.subarray(0, rt.__LENGTH_Address));
  const a = rt.parseAddressAttrs(body.subarray(rt.__LENGTH_Address));
  const ip = a.local ?? a.address ?? Buffer.alloc(h.family === AF_INET ? 4 : 16);
  const flags = a.flags ?? h.flags ?? {};
  const info: AddressInfo = {
    ifindex: h.index ?? 0,
    family: h.family === AF_INET ? 4 : 6,
    cidr: `${bytesToIp(ip)}/${h.prefixlen ?? 0}`,
    scope: scopeName(h.scope),
  };
  if (flags.tentative) info.tentative = true;
  if (flags.dadfailed) info.dadFailed = true;
  return info;
}

function toRoute(msg: Buffer): RouteInfo & { cloned: boolean } {
  const body = msg.subarray(HDR);
  // The codec maps known enum values to names; we want the raw numbers.
  const family = body[0] === AF_INET ? 4 : 6;
  const dstLen = body[1];
  const rtmTable = body[4], scope = body[6], type = body[7];
  const flags = S.readU32.call(body, 8); // host byte order, like all netlink structs
  const a = rt.parseRouteAttrs(body.subarray(rt.__LENGTH_Route));
  const r: RouteInfo & { cloned: boolean } = {
    family,
    dst: `${a.dst ? bytesToIp(a.dst) : family === 4 ? '0.0.0.0' : '::'}/${dstLen}`,
    table: a.table ?? rtmTable,
    scope: scopeName(scope),
    cloned: (flags & RTM_F_CLONED) !== 0,
  };
  if (a.gateway) r.gw = bytesToIp(a.gateway);
  if (a.oif !== undefined) r.ifindex = a.oif;
  if (a.prefsrc) r.src = bytesToIp(a.prefsrc);
  if (a.priority !== undefined) r.metric = a.priority;
  if (type !== RTN_UNICAST) r.type = ROUTE_TYPES[type] ?? String(type);
  if (flags & RTNH_F_ONLINK) r.onlink = true;
  return r;
}

// ---------------------------------------------------------------- the socket

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

export class Rtnl {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private fd: number;

  private constructor(fd: number, private readonly nsFd: number | null) {
    this.fd = fd;
  }

  /**
   * A socket in netns nsFd (null: the process's current netns). The socket
   * stays bound to that netns for life, so the thread switches back at once.
   */
  static open(nsFd: number | null): Rtnl {
    return new Rtnl(withNetns(nsFd, () => nlOpen()), nsFd);
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }

  private request(what: string, type: number, flags: number, ...body: StreamData[]): Buffer[] {
    if (this.fd < 0) throw new KernelError('EBADF', `${what}: socket closed`, 9);
    this.seq = (this.seq + 1) >>> 0 || 1;
    const req = Buffer.concat(S.formatMessage({ type, flags: flags | NLM_F_REQUEST, seq: this.seq, port: 0, data: encode(...body) }));
    for (let tries = 0; ; tries++) {
      try {
        return nlRequest(this.fd, req);
      } catch (e) {
        // A dump raced a change (NLM_F_DUMP_INTR): the kernel says retry.
        if ((e as { code?: string }).code === 'EINTR' && (flags & NLM_F_DUMP) === NLM_F_DUMP && tries < 3) continue;
        throw kernelError(e, what);
      }
    }
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
    const dump = (S.readU16.call(req, 6) & NLM_F_DUMP) === NLM_F_DUMP;
    for (let tries = 0; ; tries++) {
      try {
        return nlRequest(this.fd, req);
      } catch (e) {
        if ((e as { code?: string }).code === 'EINTR' && dump && tries < 3) continue;
        throw kernelError(e, what);
      }
    }
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

  private ack(what: string, type: number, flags: number, ...body: StreamData[]): void {
    this.request(what, type, flags | NLM_F_ACK, ...body);
  }

  // ---------------------------------------------------------------- links

  getLink(name: string): LinkInfo {
    const msgs = this.request(`get link ${name}`, rt.MessageType.GETLINK, NLM_F_ACK, rt.formatLink({}),
      ifla.formatLinkAttrs({ ifname: name, extMask: S.putU32(RTEXT_FILTER_SKIP_STATS) }));
    if (!msgs.length) throw new KernelError('ENODEV', `get link ${name}: no such device`, 19);
    return toLink(msgs[0]);
  }

  getLinkByIndex(index: number): LinkInfo {
    const msgs = this.request(`get link #${index}`, rt.MessageType.GETLINK, NLM_F_ACK, rt.formatLink({ index }),
      ifla.formatLinkAttrs({ extMask: S.putU32(RTEXT_FILTER_SKIP_STATS) }));
    if (!msgs.length) throw new KernelError('ENODEV', `get link #${index}: no such device`, 19);
    return toLink(msgs[0]);
  }

  listLinks(): LinkInfo[] {
    return this.request('list links', rt.MessageType.GETLINK, NLM_F_DUMP, rt.formatLink({}),
      ifla.formatLinkAttrs({ extMask: S.putU32(RTEXT_FILTER_SKIP_STATS) })).map(toLink);
  }

  private newLink(what: string, attrs: ifla.LinkAttrs): void {
    this.ack(what, rt.MessageType.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, rt.formatLink({}), ifla.formatLinkAttrs(attrs));
  }

  /**
   * Creates name here and peerName in peerNsFd (default: here) in one request,
   * so neither end ever exists under its name in the other netns. mtu applies
   * to both ends.
   */
  createVeth(name: string, peerName: string, opts: VethOptions = {}): void {
    const peer = Buffer.concat([rt.formatLink({}), encode(ifla.formatLinkAttrs({
      ifname: peerName,
      mtu: opts.mtu,
      txqlen: opts.txqlen,
      address: opts.peerMac !== undefined ? parseMac(opts.peerMac) : undefined,
      netNsFd: opts.peerNsFd,
    }))]);
    this.newLink(`create veth ${name}/${peerName}`, {
      ifname: name,
      mtu: opts.mtu,
      txqlen: opts.txqlen,
      address: opts.mac !== undefined ? parseMac(opts.mac) : undefined,
      linkinfo: encode(ifla.formatInfo({ kind: 'veth', data: encode(ifla.formatVethInfo({ peer })) })),
    });
  }

  createBridge(name: string, opts: BridgeOptions = {}): void {
    // Sent only to turn filtering on (it is off by default): a kernel built
    // without CONFIG_BRIDGE_VLAN_FILTERING rejects the attribute whatever its value.
    const data = opts.vlanFiltering ? encode(ifla.formatBridge({ vlanFiltering: S.putU8(1) })) : undefined;
    this.newLink(`create bridge ${name}`, {
      ifname: name,
      mtu: opts.mtu,
      address: opts.mac !== undefined ? parseMac(opts.mac) : undefined,
      linkinfo: encode(ifla.formatInfo({ kind: 'bridge', data })),
    });
  }

  /** The master is looked up here; with nsFd the new link is born in that netns. */
  createMacvlan(name: string, masterIndex: number, mode: MacvlanMode, opts: MacvlanOptions = {}): void {
    if (!(mode in MACVLAN_MODES)) throw einval(`invalid macvlan mode "${mode}"`);
    this.newLink(`create macvlan ${name}`, {
      ifname: name,
      link: S.putU32(masterIndex),
      mtu: opts.mtu,
      address: opts.mac !== undefined ? parseMac(opts.mac) : undefined,
      netNsFd: opts.nsFd,
      txqlen: opts.txqlen,
      linkinfo: encode(ifla.formatInfo({ kind: 'macvlan', data: encode(macvlanData(MACVLAN_MODES[mode], opts.bcQueueLen)) })),
    });
  }

  /** With opts as the reference bandwidth plugin creates its IFB: up, the veth's MTU, txqueuelen 0. */
  createIfb(name: string, opts: IfbOptions = {}): void {
    // IFLA_INFO_KIND "ifb" without a NUL, as iproute2 and Go netlink send it
    const kind = Buffer.from([7, 0, 1, 0, 0x69, 0x66, 0x62, 0]);
    const attrs: ifla.LinkAttrs = { ifname: name, mtu: opts.mtu, txqlen: opts.txqlen, linkinfo: kind };
    if (!opts.up) {
      this.newLink(`create ifb ${name}`, attrs);
      return;
    }
    const hdr = rt.formatLink({});
    S.writeU32.call(hdr, IFF_UP, 8);
    S.writeU32.call(hdr, IFF_UP, 12);
    this.ack(`create ifb ${name}`, rt.MessageType.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, hdr, ifla.formatLinkAttrs(attrs));
  }

  /** A dummy link; EOPNOTSUPP when the kernel has no dummy driver. */
  createDummy(name: string, opts: { mtu?: number } = {}): void {
    this.newLink(`create dummy ${name}`, { ifname: name, mtu: opts.mtu, linkinfo: encode(ifla.formatInfo({ kind: 'dummy' })) });
  }

  /** One RTM_SETLINK; the kernel applies a netns move first, then the rest. */
  setLink(name: string, opts: SetLinkOptions): void {
    let flags = 0, change = 0;
    if (opts.up !== undefined) { change |= IFF_UP; if (opts.up) flags |= IFF_UP; }
    if (opts.promisc !== undefined) { change |= IFF_PROMISC; if (opts.promisc) flags |= IFF_PROMISC; }
    if (opts.allmulti !== undefined) { change |= IFF_ALLMULTI; if (opts.allmulti) flags |= IFF_ALLMULTI; }
    // A rename needs the index: IFLA_IFNAME then carries the new name.
    const index = opts.newName !== undefined ? this.getLink(name).index : 0;
    const hdr = rt.formatLink({ index });
    S.writeU32.call(hdr, flags, 8);
    S.writeU32.call(hdr, change, 12);
    this.ack(`set link ${name}`, rt.MessageType.SETLINK, 0, hdr, ifla.formatLinkAttrs({
      ifname: opts.newName ?? name,
      mtu: opts.mtu,
      address: opts.mac !== undefined ? parseMac(opts.mac) : undefined,
      master: opts.masterIndex,
      netNsFd: opts.nsFd,
      txqlen: opts.txqlen,
    }));
  }

  /** Bridge-port flags (like `bridge link set`); name must be enslaved to a bridge. */
  setBridgePort(name: string, opts: BridgePortOptions): void {
    const index = this.getLink(name).index;
    const port: ifla.BridgePort = {};
    if (opts.hairpin !== undefined) port.mode = opts.hairpin ? 1 : 0;
    if (opts.learning !== undefined) port.learning = opts.learning ? 1 : 0;
    if (opts.isolated !== undefined) port.isolated = S.putU8(opts.isolated ? 1 : 0);
    // The kernel reads IFLA_PROTINFO as nested port attributes only when
    // NLA_F_NESTED is set (otherwise as a bare STP state byte).
    this.ack(`set bridge port ${name}`, rt.MessageType.SETLINK, 0, rt.formatLink({ family: AF_BRIDGE, index }),
      nested(IFLA_PROTINFO, ifla.formatBridgePort(port)));
  }

  private bridgeVlan(what: string, type: number, name: string, vid: number, opts: BridgeVlanOptions): void {
    if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw einval(`invalid VLAN id ${vid}`);
    const index = this.getLink(name).index;
    let vflags = 0;
    if (opts.pvid) vflags |= BRIDGE_VLAN_INFO_PVID;
    if (opts.untagged) vflags |= BRIDGE_VLAN_INFO_UNTAGGED;
    const info = Buffer.alloc(4);
    S.writeU16.call(info, vflags, 0);
    S.writeU16.call(info, vid, 2);
    this.ack(`${what} ${name} vid ${vid}`, type, 0, rt.formatLink({ family: AF_BRIDGE, index }),
      nested(IFLA_AF_SPEC, ifla.formatBridgeSpec({ flags: opts.self ? BRIDGE_FLAGS_SELF : undefined, vlanInfo: info })));
  }

  bridgeVlanAdd(name: string, vid: number, opts: BridgeVlanOptions = {}): void {
    this.bridgeVlan('bridge vlan add', rt.MessageType.SETLINK, name, vid, opts);
  }

  bridgeVlanDel(name: string, vid: number, opts: BridgeVlanOptions = {}): void {
    this.bridgeVlan('bridge vlan del', rt.MessageType.DELLINK, name, vid, opts);
  }

  deleteLink(name: string): void {
    this.ack(`delete link ${name}`, rt.MessageType.DELLINK, 0, rt.formatLink({}), ifla.formatLinkAttrs({ ifname: name }));
  }

  /**
   * deleteLink from a thread of its own, on a socket of its own in this
   * socket's netns: the link is gone from the kernel's tables within a
   * millisecond or so, but the kernel answers only after RCU grace periods
   * (~15-25 ms), which the caller can spend on other work. join() waits for
   * the answer and throws what deleteLink would have.
   */
  beginDeleteLink(name: string): { join(): void } {
    const what = `delete link ${name}`;
    const req = Buffer.concat(S.formatMessage({
      type: rt.MessageType.DELLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 1, port: 0,
      data: encode(rt.formatLink({}), ifla.formatLinkAttrs({ ifname: name })),
    }));
    const fd = withNetns(this.nsFd, () => nlOpen());
    let handle: object;
    try {
      handle = nlStart(fd, req);
    } catch (e) {
      closeFd(fd);
      throw kernelError(e, what);
    }
    let joined = false;
    return {
      join: () => {
        if (joined) return;
        joined = true;
        try {
          nlJoin(handle);
        } catch (e) {
          throw kernelError(e, what);
        } finally {
          closeFd(fd);
        }
      },
    };
  }

  // ---------------------------------------------------------------- addresses

  private addrMsg(ifindex: number, cidr: string, noDad: boolean): StreamData[] {
    const c = parseCidr(cidr);
    const attrs: rt.AddressAttrs = { local: c.addr, address: c.addr };
    // Like the Go netlink library the reference plugins use: a v4 address
    // gets its subnet's broadcast address.
    if (c.family === 4 && c.prefix < 31) {
      const bcast = Buffer.from(c.addr);
      bcast.writeUInt32BE((bcast.readUInt32BE(0) | (0xffffffff >>> c.prefix)) >>> 0, 0);
      attrs.broadcast = bcast;
    }
    if (noDad) attrs.flags = { nodad: true };
    return [rt.formatAddress({ family: afOf(c.family), prefixlen: c.prefix, index: ifindex, flags: noDad ? { nodad: true } : undefined }),
      rt.formatAddressAttrs(attrs)];
  }

  /** noDad sets IFA_F_NODAD so an IPv6 address is usable at once (no tentative phase). */
  addAddress(ifindex: number, cidr: string, opts: { noDad?: boolean } = {}): void {
    this.ack(`add address ${cidr} on #${ifindex}`, rt.MessageType.NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
      ...this.addrMsg(ifindex, cidr, !!opts.noDad));
  }

  delAddress(ifindex: number, cidr: string): void {
    this.ack(`delete address ${cidr} on #${ifindex}`, rt.MessageType.DELADDR, 0, ...this.addrMsg(ifindex, cidr, false));
  }

  listAddresses(opts: { ifindex?: number; family?: 4 | 6 } = {}): AddressInfo[] {
    const family = opts.family ? afOf(opts.family) : 0;
    return this.request('list addresses', rt.MessageType.GETADDR, NLM_F_DUMP, rt.formatAddress({ family }))
      .map(toAddress)
      .filter((a) => (opts.ifindex === undefined || a.ifindex === opts.ifindex) && (!opts.family || a.family === opts.family));
  }

  // ---------------------------------------------------------------- routes

  private routeMsg(r: RouteInfo, del: boolean): StreamData[] {
    const d = parseCidr(r.dst);
    if (d.family !== r.family) throw einval(`route dst ${r.dst} is not IPv${r.family}`);
    const gw = r.gw !== undefined ? ipToBytes(r.gw) : undefined;
    const table = r.table ?? RT_TABLE_MAIN;
    // iproute2's defaults: v6 routes are universe; a v4 route without a
    // gateway is link scope; a delete without a scope matches any scope.
    const scope = r.scope !== undefined ? scopeNumber(r.scope)
      : del ? SCOPES.nowhere : r.family === 6 || gw ? SCOPES.universe : SCOPES.link;
    const hdr = rt.formatRoute({
      family: afOf(r.family), dstLen: d.prefix, table: table < 256 ? table : 0,
      protocol: del ? undefined : RTPROT_BOOT, type: RTN_UNICAST,
    });
    hdr[6] = scope; // written directly: the codec skips a zero (universe) scope but not 255
    if (r.onlink && !del) S.writeU32.call(hdr, RTNH_F_ONLINK, 8); // rtm_flags: the gateway is on the link, whatever the subnets say
    return [hdr, rt.formatRouteAttrs({
      dst: d.prefix > 0 ? d.addr : undefined,
      gateway: gw,
      oif: r.ifindex,
      prefsrc: r.src !== undefined ? ipToBytes(r.src) : undefined,
      priority: r.metric,
      table,
    })];
  }

  /** exclusive: false adds beside other routes to the same destination (no NLM_F_EXCL). */
  addRoute(r: RouteInfo, opts: { exclusive?: boolean } = {}): void {
    const flags = opts.exclusive === false ? NLM_F_CREATE : NLM_F_CREATE | NLM_F_EXCL;
    this.ack(`add route ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`, rt.MessageType.NEWROUTE, flags, ...this.routeMsg(r, false));
  }

  delRoute(r: RouteInfo): void {
    this.ack(`delete route ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`, rt.MessageType.DELROUTE, 0, ...this.routeMsg(r, true));
  }

  /** Routes of one table (main by default), without cached clones. */
  listRoutes(family?: 4 | 6, table: number = RT_TABLE_MAIN): RouteInfo[] {
    return this.request('list routes', rt.MessageType.GETROUTE, NLM_F_DUMP, rt.formatRoute({ family: family ? afOf(family) : 0 }))
      .filter((m) => m[HDR] === AF_INET || m[HDR] === AF_INET6)
      .map(toRoute)
      .filter((r) => !r.cloned && r.table === table && (!family || r.family === family))
      .map(({ cloned: _c, ...r }) => r);
  }

  // ---------------------------------------------------------------- neighbours

  private neighMsg(n: NeighInfo): StreamData[] {
    const ip = ipToBytes(n.ip);
    const family = ip.length === 4 ? 4 : 6;
    const hdr = Buffer.alloc(rt.__LENGTH_Neighbor);
    hdr[0] = afOf(family);
    S.writeU32.call(hdr, n.ifindex, 4);
    S.writeU16.call(hdr, n.permanent ? NUD_PERMANENT : 0x02 /* NUD_REACHABLE */, 8);
    return [hdr, rt.formatNeighborAttrs({ dst: ip, lladdr: n.mac ? parseMac(n.mac) : undefined })];
  }

  /** A neighbour entry (ip neigh add): EEXIST when one is there already. */
  addNeigh(n: NeighInfo): void {
    this.ack(`add neighbour ${n.ip}`, rt.MessageType.NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, ...this.neighMsg(n));
  }

  delNeigh(n: NeighInfo): void {
    this.ack(`delete neighbour ${n.ip}`, rt.MessageType.DELNEIGH, 0, ...this.neighMsg({ ...n, mac: '' }));
  }

  listNeigh(family?: 4 | 6): NeighInfo[] {
    const hdr = Buffer.alloc(rt.__LENGTH_Neighbor);
    hdr[0] = family ? afOf(family) : 0;
    return this.request('list neighbours', rt.MessageType.GETNEIGH, NLM_F_DUMP, hdr).map((m) => {
      const body = m.subarray(HDR);
      const a = rt.parseNeighborAttrs(body.subarray(rt.__LENGTH_Neighbor));
      return {
        ifindex: S.readU32.call(body, 4), ip: a.dst ? bytesToIp(a.dst) : '', mac: formatMac(a.lladdr),
        permanent: (S.readU16.call(body, 8) & NUD_PERMANENT) !== 0,
      };
    }).filter((n) => n.ip !== '' && (!family || n.ip.includes(':') === (family === 6)));
  }
}

export interface NeighInfo { ifindex: number; ip: string; mac: string; permanent: boolean }
