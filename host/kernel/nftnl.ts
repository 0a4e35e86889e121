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

/** The whole batch for elements, seqs seq, seq+1, ... (exported for tests). */
export function encodeBatch(elements: MapElement[], seq: number): Buffer {
  const msgs = [message(NFNL_MSG_BATCH_BEGIN, 0, seq, nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES))];
  for (const e of elements) {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (e.op === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    // no NLM_F_EXCL: adding an element that is there with the same verdict is fine (`nft add element`)
    const flags = NLM_F_ACK | (e.op === 'add' ? NLM_F_CREATE : 0);
    msgs.push(message(type, flags, (seq + msgs.length) >>> 0, elementBody(e)));
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
    if (this.fd < 0) throw new KernelError('EBADF', `${what}: socket closed`, 9);
    const batch = encodeBatch(elements, this.seq);
    this.seq = (this.seq + elements.length + 2) >>> 0;
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
