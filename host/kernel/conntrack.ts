// Deleting conntrack entries over ctnetlink (NETLINK_NETFILTER, subsystem
// CTNETLINK), for portmap: a UDP flow that reached a host port before the
// forward existed keeps its (un-NATed) entry, and with it the traffic, until
// it times out. The reference deletes those entries on ADD; so do we.
//
// When the netns has conntrack entries at all: one filtered dump per family (CTA_FILTER, Linux >= 5.8: the kernel returns
// only UDP entries to the port), then one delete per entry found, by its
// original tuple (and zone). Kernels without CTA_FILTER answer EOPNOTSUPP or
// EINVAL: then the conntrack tool does it (package conntrack), if present.
// Constants: linux/netfilter/nfnetlink_conntrack.h and
// net/netfilter/nf_conntrack_netlink.c (CTA_FILTER_F_*).
import { existsSync } from 'node:fs';
import { childProcess } from '../lazy.js';
import { NETLINK_NETFILTER, closeFd, nlOpen, nlRequest, withNetns } from './native.js';
import { sysctlGet } from './sysctl.js';

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_FILTER = 25;
const CTA_FILTER_ORIG_FLAGS = 1;
const CTA_FILTER_REPLY_FLAGS = 2;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
const CTA_FILTER_F_CTA_PROTO_NUM = 1 << 3;
const CTA_FILTER_F_CTA_PROTO_DST_PORT = 1 << 5;
const NLA_F_NESTED = 0x8000;
const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_UDP = 17;
/** bound on what one dump may hand back (entries to one UDP port) */
const MAX_ENTRIES = 65536;

function nla(type: number, data: Buffer, nestedFlag = false): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type | (nestedFlag ? NLA_F_NESTED : 0), 2);
  data.copy(b, 4);
  return b;
}

function msg(type: number, flags: number, seq: number, family: number, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([family, 0, 0, 0]), ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE((NFNL_SUBSYS_CTNETLINK << 8) | type, 4);
  h.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  h.writeUInt32LE(seq >>> 0, 8);
  return Buffer.concat([h, body]);
}

/** Attributes of a ctnetlink message (after nlmsghdr + nfgenmsg), whole (header included), by type. */
function rawAttrs(m: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = 20; off + 4 <= m.length; ) {
    const len = m.readUInt16LE(off);
    if (len < 4 || off + len > m.length) break;
    const type = m.readUInt16LE(off + 2) & 0x3fff;
    if (!out.has(type)) out.set(type, m.subarray(off, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

const u8 = (n: number) => Buffer.from([n]);
const be16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

/** Deletes the UDP entries to `port` of one family; returns how many. Throws the kernel's error. */
function flushPort(fd: number, family: 4 | 6, port: number, seq: () => number): number {
  const af = family === 4 ? AF_INET : AF_INET6;
  const tuple = nla(CTA_TUPLE_ORIG, nla(CTA_TUPLE_PROTO, Buffer.concat([nla(CTA_PROTO_NUM, u8(IPPROTO_UDP)), nla(CTA_PROTO_DST_PORT, be16(port))]), true), true);
  const filter = nla(CTA_FILTER, Buffer.concat([
    nla(CTA_FILTER_ORIG_FLAGS, u32(CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT)),
    nla(CTA_FILTER_REPLY_FLAGS, u32(0)),
  ]), true);
  // NLM_F_ACK too: the addon recognises only rtnetlink dumps by type; it reads
  // this one to its NLMSG_DONE all the same (the kernel acks no dump).
  const entries = nlRequest(fd, msg(IPCTNL_MSG_CT_GET, NLM_F_DUMP | NLM_F_ACK, seq(), af, [tuple, filter]));
  let n = 0;
  for (const m of entries.slice(0, MAX_ENTRIES)) {
    const a = rawAttrs(m);
    const orig = a.get(CTA_TUPLE_ORIG);
    if (!orig) continue;
    const zone = a.get(CTA_ZONE);
    try {
      nlRequest(fd, msg(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq(), af, zone ? [Buffer.from(orig), Buffer.from(zone)] : [Buffer.from(orig)]));
      n++;
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e; // gone meanwhile
    }
  }
  return n;
}

let toolPath: string | undefined | null;

function viaTool(ports: { family: 4 | 6; port: number }[], nsFd: number | null): string | null {
  toolPath ??= ['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].find((p) => existsSync(p)) ?? null;
  if (!toolPath) return 'this kernel has no filtered ctnetlink dump and conntrack (package conntrack) is not installed';
  const problems: string[] = [];
  for (const p of ports) {
    const r = withNetns(nsFd, () => childProcess().spawnSync(toolPath!, ['-D', '-f', p.family === 4 ? 'ipv4' : 'ipv6', '-p', 'udp', '--orig-port-dst', String(p.port)], { encoding: 'utf8', timeout: 2000 }));
    // exit 1 with "0 flow entries have been deleted" is the usual case
    if (r.error) problems.push(`conntrack: ${r.error.message}`);
    else if (r.status !== 0 && !/0 flow entries/.test(r.stderr)) problems.push(`conntrack -D udp port ${p.port}: ${r.stderr.trim()}`);
  }
  return problems.length ? problems.join('; ') : null;
}

/**
 * Deletes conntrack entries of UDP traffic to these host ports in netns nsFd.
 * Returns null, or why it could not (informative: the forwards are in place).
 */
export function flushUdpConntrack(ports: { family: 4 | 6; port: number }[], nsFd: number | null = null): string | null {
  const uniq = [...new Map(ports.map((p) => [`${p.family}/${p.port}`, p])).values()];
  if (!uniq.length) return null;
  // A dump walks the kernel's whole conntrack hash table (all namespaces'
  // buckets: ~10 ms of CPU per family at 262144 buckets). With no entry in
  // this netns (or no conntrack at all) there is nothing to flush.
  try {
    if (sysctlGet(nsFd, 'net/netfilter/nf_conntrack_count').trim() === '0') return null;
  } catch {
    return null; // nf_conntrack is not loaded: no entries
  }
  let fd: number;
  try {
    fd = withNetns(nsFd, () => nlOpen(NETLINK_NETFILTER));
  } catch (e) {
    return `ctnetlink: ${(e as Error).message}`;
  }
  let s = Math.floor(Math.random() * 0x7fffffff);
  const problems: string[] = [];
  const fallback: typeof uniq = [];
  try {
    for (const p of uniq) {
      try {
        flushPort(fd, p.family, p.port, () => ++s);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'EOPNOTSUPP' || code === 'EINVAL') fallback.push(p);
        else problems.push(`ctnetlink udp port ${p.port}: ${(e as Error).message}`);
      }
    }
  } finally {
    closeFd(fd);
  }
  if (fallback.length) {
    const t = viaTool(fallback, nsFd);
    if (t) problems.push(t);
  }
  return problems.length ? problems.join('; ') : null;
}
