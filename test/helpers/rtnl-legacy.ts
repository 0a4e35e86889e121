// The rtnetlink encoders and decoders as host/kernel/rtnl.ts had them before
// it wrote and read messages itself (issue 12): built on the `netlink`
// package's codec. Tests only: the new code must send the same bytes and
// return the same objects (test/unit/rtnl-wire.test.ts, test/netns/rtnl-wire.test.ts).
import * as S from 'netlink/dist/structs.js';
import type { StreamData, AttrStream as AttrStreamT } from 'netlink/dist/structs.js';
import * as rt from 'netlink/dist/rt/gen_structs.js';
import * as ifla from 'netlink/dist/rt/ifla.js';
import { kernelError } from '../../host/kernel/native.js';
import {
  AF_BRIDGE, AF_INET, AF_INET6, BRIDGE_FLAGS_SELF, BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED, IFF_UP,
  IFLA_AF_SPEC, IFLA_MACVLAN_BC_QUEUE_LEN, IFLA_PROTINFO, MACVLAN_MODES, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
  NUD_PERMANENT, ROUTE_TYPES, RTEXT_FILTER_SKIP_STATS, RTM_F_CLONED, RTNH_F_ONLINK, RTN_UNICAST, RTPROT_BOOT, RT_TABLE_MAIN, SCOPES,
} from '../../host/kernel/rtconst.js';
import {
  afOf, bytesToIp, encode, ipToBytes, nested, parseCidr, linkFlags, parseMac, routeParts, scopeName, type MacvlanMode, type NeighInfo,
} from '../../host/kernel/rtnl.js';
import type { BridgePortOptions, BridgeVlanOptions, BridgeOptions, IfbOptions, MacvlanOptions, SetLinkOptions, VethOptions } from '../../host/kernel/rtnl.js';
import { KernelError, type AddressInfo, type LinkInfo, type RouteInfo } from '../../host/kernel/types.js';

const einval = (msg: string): KernelError => new KernelError('EINVAL', msg, 22);
const HDR = 16;

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

const formatMac = (b?: Buffer): string => (b && b.length ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : '');

// ---------------------------------------------------------------- decoding

export function toLink(msg: Buffer): LinkInfo {
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

export function toAddress(msg: Buffer): AddressInfo {
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

export function toRoute(msg: Buffer): RouteInfo & { cloned: boolean } {
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

export class LegacyRtnl {
  private seq = 0;

  constructor(private readonly transport: (req: Buffer) => Buffer[]) {}

  private request(what: string, type: number, flags: number, ...body: StreamData[]): Buffer[] {
    this.seq = (this.seq + 1) >>> 0 || 1;
    const req = Buffer.concat(S.formatMessage({ type, flags: flags | NLM_F_REQUEST, seq: this.seq, port: 0, data: encode(...body) }));
    try {
      return this.transport(req);
    } catch (e) {
      throw kernelError(e, what);
    }
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
    const { flags, change } = linkFlags(opts);
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
    const { d, gw, table, scope } = routeParts(r, del);
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


