// nf_tables over netlink, for the one hot operation: adding and deleting
// elements of a verdict map (address -> jump <chain>). Everything else
// (tables, maps, chains, rules) stays with the nft binary (nft.ts), which is
// only run when something is missing. Saves spawning nft (2-25 ms) per call.
//
// One call = one nfnetlink batch (NFNL_MSG_BATCH_BEGIN, one NEWSETELEM or
// DELSETELEM message per element, NFNL_MSG_BATCH_END), which the kernel
// commits all or nothing, like `nft -f`. A batch is one datagram, so it must
// fit the socket's send buffer (net.core.wmem_default, ~200 KiB: some 2000
// elements); an attachment has a few. Constants: linux/netfilter/nfnetlink.h
// and nf_tables.h; attribute layout as libnftnl builds it.
import * as S from 'netlink/dist/structs.js';
import type { StreamData, AttrStream } from 'netlink/dist/structs.js';
import { NETLINK_NETFILTER, closeFd, kernelError, nlBatch, nlOpen, nlRequest, withNetns } from './native.js';
import { encode, ipToBytes, nested } from './rtnl.js';
import { KernelError } from './types.js';

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_GETTABLE = 1;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_DELSETELEM = 14;
const NFPROTO_UNSPEC = 0;
const NFPROTO_INET = 1;
const NFNETLINK_V0 = 0;
const NFTA_TABLE_NAME = 1;
// enum nft_set_elem_list_attributes
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
// enum nft_set_elem_attributes
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_KEY_END = 10;
// enum nft_data_attributes
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
// enum nft_verdict_attributes
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFT_JUMP = -3;
const NAME_MAX = 255; // NFT_NAME_MAXLEN - 1

/** One element of an inet-family verdict map (or, with `plain`, of a set). */
export interface MapElement {
  op: 'add' | 'delete';
  table: string;
  map: string;
  /** the key: an IPv4 or IPv6 address (the map's key type must match) */
  address: string;
  /** the verdict: jump to this chain (add only; a delete needs the key alone) */
  jump?: string;
  /** a set element: a key and no verdict */
  plain?: boolean;
  /** the key's bytes as the set stores them (ifnameKey, concatenations), instead of `address` */
  key?: Buffer;
  /** the table's family (default inet) */
  family?: 'inet' | 'bridge';
}

const NFPROTO_BRIDGE = 7;
const IFNAMSIZ = 16;

/** An nft `ifname` key: the name, zero-padded to IFNAMSIZ. */
export function ifnameKey(name: string): Buffer {
  const b = Buffer.alloc(IFNAMSIZ);
  if (!name || Buffer.byteLength(name) >= IFNAMSIZ || name.includes('\0')) throw new KernelError('EINVAL', `invalid interface name "${name}"`, 22);
  b.write(name, 'utf8');
  return b;
}

const attr = (type: number, data: Buffer): StreamData => (out: AttrStream) => out.push(type, data);
const all = (...parts: StreamData[]): StreamData => (out: AttrStream) => parts.forEach((p) => out.emit(p));

function name(s: string, what: string): Buffer {
  if (!s || Buffer.byteLength(s) > NAME_MAX || s.includes('\0')) throw new KernelError('EINVAL', `invalid ${what} name "${s}"`, 22);
  return S.putString(s);
}

/** struct nfgenmsg: family, version, res_id (big endian) */
function nfgenmsg(family: number, resId: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = family;
  b[1] = NFNETLINK_V0;
  b.writeUInt16BE(resId, 2);
  return b;
}

function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  return Buffer.concat(S.formatMessage({ type, flags: flags | NLM_F_REQUEST, seq, port: 0, data: body }));
}

/** Messages in one datagram each start 4-aligned. */
const padded = (m: Buffer): Buffer => (S.padding(m.length) ? Buffer.concat([m, Buffer.alloc(S.padding(m.length))]) : m);

function elementBody(e: MapElement): Buffer {
  const key = nested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, e.key ?? ipToBytes(e.address)));
  let elem = key;
  if (e.op === 'add' && !e.plain) {
    if (e.jump === undefined) throw new KernelError('EINVAL', `map element ${e.address}: no verdict`, 22);
    const code = Buffer.alloc(4);
    code.writeInt32BE(NFT_JUMP);
    const verdict = nested(NFTA_DATA_VERDICT, all(attr(NFTA_VERDICT_CODE, code), attr(NFTA_VERDICT_CHAIN, name(e.jump, 'chain'))));
    elem = all(key, nested(NFTA_SET_ELEM_DATA, verdict));
  }
  return encode(
    nfgenmsg(e.family === 'bridge' ? NFPROTO_BRIDGE : NFPROTO_INET, 0),
    attr(NFTA_SET_ELEM_LIST_TABLE, name(e.table, 'table')),
    attr(NFTA_SET_ELEM_LIST_SET, name(e.map, 'map')),
    nested(NFTA_SET_ELEM_LIST_ELEMENTS, nested(NFTA_LIST_ELEM, elem)),
  );
}

/**
 * An element of any inet-family set or map, its key (and data) already in
 * the kernel's register layout: each field of a concatenation padded to 4
 * bytes, in network byte order (see `field`).
 */
export interface SetElement {
  op: 'add' | 'delete';
  table: string;
  set: string;
  key: Buffer;
  /** the end of the range, for sets with the interval flag over a concatenation */
  keyEnd?: Buffer;
  /** a map's data (add only): a value, or a jump verdict */
  data?: Buffer | { jump: string };
}

/** One field of a concatenated key or value: the bytes, zero-padded to a 4-byte register. */
export function field(b: Buffer): Buffer {
  const pad = (4 - (b.length % 4)) % 4;
  return pad ? Buffer.concat([b, Buffer.alloc(pad)]) : b;
}

function verdictJump(chain: string): StreamData {
  const code = Buffer.alloc(4);
  code.writeInt32BE(NFT_JUMP);
  return nested(NFTA_DATA_VERDICT, all(attr(NFTA_VERDICT_CODE, code), attr(NFTA_VERDICT_CHAIN, name(chain, 'chain'))));
}

function setElementAttrs(e: Pick<SetElement, 'key' | 'keyEnd' | 'data'>, withData: boolean): StreamData {
  const parts: StreamData[] = [nested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, e.key))];
  if (e.keyEnd) parts.push(nested(NFTA_SET_ELEM_KEY_END, attr(NFTA_DATA_VALUE, e.keyEnd)));
  if (withData && e.data !== undefined) {
    parts.push(nested(NFTA_SET_ELEM_DATA, Buffer.isBuffer(e.data) ? attr(NFTA_DATA_VALUE, e.data) : verdictJump(e.data.jump)));
  }
  return all(...parts);
}

function setElementBody(table: string, set: string, elem: StreamData): Buffer {
  return encode(
    nfgenmsg(NFPROTO_INET, 0),
    attr(NFTA_SET_ELEM_LIST_TABLE, name(table, 'table')),
    attr(NFTA_SET_ELEM_LIST_SET, name(set, 'set')),
    nested(NFTA_SET_ELEM_LIST_ELEMENTS, nested(NFTA_LIST_ELEM, elem)),
  );
}

/** A batch of generic set elements (exported for tests). */
export function encodeSetBatch(elements: SetElement[], seq: number): Buffer {
  return batchOf(elements.map((e) => ({ op: e.op, body: setElementBody(e.table, e.set, setElementAttrs(e, e.op === 'add')) })), seq);
}

/** The whole batch for elements, seqs seq, seq+1, ... (exported for tests). */
export function encodeBatch(elements: MapElement[], seq: number): Buffer {
  return batchOf(elements.map((e) => ({ op: e.op, body: elementBody(e) })), seq);
}

function batchOf(changes: { op: 'add' | 'delete'; body: Buffer }[], seq: number): Buffer {
  const msgs = [message(NFNL_MSG_BATCH_BEGIN, 0, seq, nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES))];
  for (const e of changes) {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (e.op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    // no NLM_F_EXCL: adding an element that is there with the same verdict is fine (`nft add element`)
    const flags = NLM_F_ACK | (e.op === 'add' ? NLM_F_CREATE : 0);
    msgs.push(message(type, flags, (seq + msgs.length) >>> 0, e.body));
  }
  msgs.push(message(NFNL_MSG_BATCH_END, 0, (seq + msgs.length) >>> 0, nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES)));
  return Buffer.concat(msgs.map(padded));
}

export class Nftnl {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** A NETLINK_NETFILTER socket in netns nsFd (null: the current one), bound there for life. */
  static open(nsFd: number | null): Nftnl {
    return new Nftnl(withNetns(nsFd, () => nlOpen(NETLINK_NETFILTER)));
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }

  /**
   * Adds and deletes map elements in one transaction, in order, all or none.
   * Throws a KernelError with the kernel's errno: ENOENT for a missing table,
   * map, chain or (delete) element; EEXIST for an address mapped elsewhere.
   */
  apply(elements: MapElement[]): void {
    if (!elements.length) return;
    const what = `nf_tables ${elements[0].op} element ${elements[0].address} in ${elements[0].table} ${elements[0].map}` +
      (elements.length > 1 ? ` (+${elements.length - 1})` : '');
    this.send(what, encodeBatch(elements, this.seq), elements.length);
  }

  /** Like apply, for generic set elements. */
  applySet(elements: SetElement[]): void {
    if (!elements.length) return;
    const what = `nf_tables ${elements[0].op} element in ${elements[0].table} ${elements[0].set}` +
      (elements.length > 1 ? ` (+${elements.length - 1})` : '');
    this.send(what, encodeSetBatch(elements, this.seq), elements.length);
  }

  /**
   * The element with this key (and key end), or null when the set has none:
   * `data` is its value bytes, `jump` its verdict chain. ENOENT when the
   * table or set is missing is reported as null as well.
   */
  getElement(table: string, set: string, key: Buffer, keyEnd?: Buffer): { data?: Buffer; jump?: string } | null {
    if (this.fd < 0) throw new KernelError('EBADF', `get element in ${table} ${set}: socket closed`, 9);
    this.seq = (this.seq + 1) >>> 0;
    const body = setElementBody(table, set, setElementAttrs({ key, keyEnd }, false));
    let msgs: Buffer[];
    try {
      msgs = nlRequest(this.fd, message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, NLM_F_ACK, this.seq, body));
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return null;
      throw kernelError(e, `get element in inet ${table} ${set}`);
    }
    if (!msgs.length) return null;
    // nlmsghdr (16) + nfgenmsg (4), then the element list's attributes
    const list = attrs(msgs[0].subarray(20)).get(NFTA_SET_ELEM_LIST_ELEMENTS);
    const elem = list && attrs(list).get(NFTA_LIST_ELEM);
    const data = elem && attrs(elem).get(NFTA_SET_ELEM_DATA);
    if (!data) return {};
    const d = attrs(data);
    if (d.has(NFTA_DATA_VALUE)) return { data: d.get(NFTA_DATA_VALUE) };
    const v = d.get(NFTA_DATA_VERDICT);
    const chain = v && attrs(v).get(NFTA_VERDICT_CHAIN);
    return chain ? { jump: chain.toString('utf8').replace(/\0+$/, '') } : {};
  }

  private send(what: string, batch: Buffer, n: number): void {
    if (this.fd < 0) throw new KernelError('EBADF', `${what}: socket closed`, 9);
    this.seq = (this.seq + n + 2) >>> 0;
    try {
      nlBatch(this.fd, batch);
    } catch (e) {
      throw kernelError(e, what);
    }
  }

  /** Whether inet table `table` exists. */
  hasTable(table: string): boolean {
    if (this.fd < 0) throw new KernelError('EBADF', `get table ${table}: socket closed`, 9);
    this.seq = (this.seq + 1) >>> 0;
    const body = encode(nfgenmsg(NFPROTO_INET, 0), attr(NFTA_TABLE_NAME, name(table, 'table')));
    try {
      nlRequest(this.fd, message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_ACK, this.seq, body));
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return false;
      throw kernelError(e, `get table inet ${table}`);
    }
  }
}

/** The attributes of one netlink attribute stream, by type (nested flag masked; the first of a type wins). */
function attrs(b: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = 0; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > b.length) break;
    if (!out.has(type)) out.set(type, b.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

// Closing a netfilter socket makes the kernel finish freeing what recent
// transactions deleted (nft_rcv_nl_event flushes the destroy work, which
// waits for an RCU grace period): 5-15 ms right after a delete. So the socket
// of a batch that deleted something is left open, and closed by the next call
// or by the process exit, by when that wait has mostly passed (measured: a
// DEL process ends ~5 ms sooner). At most one socket is left open so.
let lingering: Nftnl | null = null;

/** Whether inet table `table` exists in netns nsFd (a lookup, not a transaction: nothing to undo). */
export function nftTableExists(nsFd: number | null, table: string): boolean {
  const nl = Nftnl.open(nsFd);
  try {
    return nl.hasTable(table);
  } finally {
    nl.close();
  }
}

/** Applies elements in one transaction through a new socket in netns nsFd (null: the current one). */
export function nftElements(nsFd: number | null, elements: MapElement[]): void {
  lingering?.close();
  lingering = null;
  const nl = Nftnl.open(nsFd);
  try {
    nl.apply(elements);
  } catch (e) {
    nl.close(); // a failed batch was undone, and waited for, in the kernel already
    throw e;
  }
  if (elements.some((e) => e.op === 'delete')) lingering = nl;
  else nl.close();
}

/** Like nftElements, for generic set elements. */
export function nftSetElements(nsFd: number | null, elements: SetElement[]): void {
  lingering?.close();
  lingering = null;
  const nl = Nftnl.open(nsFd);
  try {
    nl.applySet(elements);
  } catch (e) {
    nl.close();
    throw e;
  }
  if (elements.some((e) => e.op === 'delete')) lingering = nl;
  else nl.close();
}
