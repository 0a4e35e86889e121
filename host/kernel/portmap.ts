// Port forwarding (the portmap plugin) in nftables, designed like
// masquerade.ts so that neither a packet nor an ADD/DEL costs more as
// containers are added: one table, chains and rules made once, and each
// mapping one map element.
//
//   table inet cni_wasm_portmap
//     map dnat4    { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  hostIP . proto . port
//     map dnat4any { inet_proto . inet_service : ipv4_addr . inet_service }              proto . port (any local address)
//     map dnat4c   { ipv4_addr . ipv4_addr . inet_proto . inet_service : ... ; flags interval }
//                  saddr range . daddr range . proto . port (conditionsV4 -s / -d)
//     map dnat6, dnat6any, dnat6c       the same for IPv6
//     map hairpin4 { ipv4_addr : verdict }  container address -> hp_<subnet>_<mark> (snat)
//     map hairpin6 { ipv6_addr : verdict }
//     chain prerouting, output { nat hooks, dstnat }
//       fib daddr type local jump hostports       only traffic to a local address
//     chain hostports                             conditional first, then host IP, then any
//       meta l4proto { tcp, udp, sctp } dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @dnat4c
//       ...                                       (and @dnat4, @dnat4any, the IPv6 maps)
//     chain mark_pre, mark_out { filter hooks, dstnat + 10: after the DNAT }
//       ct state new ct status dnat ip daddr vmap @hairpin4
//     chain hp_<subnet>_m<bit>     one per container subnet and mark bit, made once:
//       ip saddr <subnet> meta mark set meta mark | 1<<bit     hairpin
//       ip saddr 127.0.0.0/8 meta mark set meta mark | 1<<bit  localhost
//     chain hp_<subnet>_x_<chain>  with externalSetMarkChain: jump <chain> instead
//     chain masq_m<bit> { nat hook postrouting, srcnat }   one per mark bit
//       meta mark & 1<<bit == 1<<bit masquerade
//
// This is the reference's iptables layout (CNI-HOSTPORT-DNAT / -SETMARK /
// -MASQ) without its chain per container. The usual ADD and DEL send one
// nf_tables netlink batch of elements; the nft binary runs only when ADD
// finds the table or a chain missing. A host port already forwarded to
// another address is refused (EBUSY), where the reference lets the last
// writer win silently.
import { nftApply } from './nft.js';
import { Nftnl, type SetElement, field, nftSetElements } from './nftnl.js';
import { ipToBytes, parseCidr } from './rtnl.js';
import { KernelError } from './types.js';

export const PORTMAP_TABLE = 'cni_wasm_portmap';
const T = `inet ${PORTMAP_TABLE}`;

export type Proto = 'tcp' | 'udp' | 'sctp';
export const PROTO_NUMBERS: Record<Proto, number> = { tcp: 6, udp: 17, sctp: 132 };

export interface PortForward {
  family: 4 | 6;
  proto: Proto;
  /** canonical address, '' for every local address */
  hostIp: string;
  hostPort: number;
  /** canonical address */
  containerIp: string;
  containerPort: number;
  /** canonical CIDRs; empty = any */
  sources: string[];
  destinations: string[];
}

export interface Hairpin {
  family: 4 | 6;
  /** canonical address */
  containerIp: string;
  /** the container's subnet, canonical CIDR */
  subnet: string;
  markBit: number;
  /** '' = mark and masquerade here */
  externalChain: string;
}

/** Chain names we make; an externalSetMarkChain may not be one of them. */
export const RESERVED_CHAIN = /^(prerouting|output|postrouting|hostports|mark_pre|mark_out|hp_.*|masq_m\d+)$/;
export const EXTERNAL_CHAIN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

const hpChain = (h: Hairpin): string =>
  `hp_${h.subnet.replace(/[^0-9a-fA-F]/g, '_')}_` + (h.externalChain ? `x_${h.externalChain}` : `m${h.markBit}`);
const markHex = (bit: number): string => '0x' + (2 ** bit).toString(16).padStart(8, '0');

// ---------------------------------------------------------------- elements

const port = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return field(b); };
const proto = (p: Proto): Buffer => field(Buffer.from([PROTO_NUMBERS[p]]));
const addr = (a: string): Buffer => field(ipToBytes(a));

/** First and last address of a CIDR, as bytes. */
function range(cidr: string): [Buffer, Buffer] {
  const c = parseCidr(cidr);
  const lo = Buffer.from(c.addr), hi = Buffer.from(c.addr);
  for (let bit = c.prefix; bit < c.addr.length * 8; bit++) {
    const i = bit >> 3, m = 0x80 >> (bit & 7);
    lo[i] &= ~m;
    hi[i] |= m;
  }
  return [lo, hi];
}

function contains(cidr: string, ip: string): boolean {
  const [lo, hi] = range(cidr);
  const a = ipToBytes(ip);
  return a.length === lo.length && Buffer.compare(a, lo) >= 0 && Buffer.compare(a, hi) <= 0;
}

interface Keyed { set: string; key: Buffer; keyEnd?: Buffer; data: Buffer | { jump: string }; what: string }

const anyOf = (f: 4 | 6): string => (f === 4 ? '0.0.0.0/0' : '::/0');

/** The elements one forward is made of (several with conditions: each source x destination). */
export function forwardElements(f: PortForward): Keyed[] {
  const data = Buffer.concat([addr(f.containerIp), port(f.containerPort)]);
  const what = `${f.proto}/${f.hostIp ? (f.family === 6 ? `[${f.hostIp}]` : f.hostIp) + ':' : ''}${f.hostPort} -> ${f.family === 6 ? `[${f.containerIp}]` : f.containerIp}:${f.containerPort}`;
  const tail = Buffer.concat([proto(f.proto), port(f.hostPort)]);
  if (!f.sources.length && !f.destinations.length) {
    if (!f.hostIp) return [{ set: `dnat${f.family}any`, key: tail, data, what }];
    return [{ set: `dnat${f.family}`, key: Buffer.concat([addr(f.hostIp), tail]), data, what }];
  }
  let dsts = f.destinations.length ? f.destinations : [anyOf(f.family)];
  if (f.hostIp) {
    const host = `${f.hostIp}/${f.family === 4 ? 32 : 128}`;
    dsts = dsts.some((d) => contains(d, f.hostIp)) ? [host] : [];
    if (!dsts.length) throw new KernelError('EINVAL', `${what}: host IP ${f.hostIp} is outside every destination condition (${f.destinations.join(', ')})`, 22);
  }
  const out: Keyed[] = [];
  for (const s of f.sources.length ? f.sources : [anyOf(f.family)]) {
    for (const d of dsts) {
      const [slo, shi] = range(s), [dlo, dhi] = range(d);
      out.push({
        set: `dnat${f.family}c`, data, what: `${what} (from ${s} to ${d})`,
        key: Buffer.concat([field(slo), field(dlo), tail]),
        keyEnd: Buffer.concat([field(shi), field(dhi), tail]),
      });
    }
  }
  return out;
}

export function hairpinElement(h: Hairpin): Keyed {
  return { set: `hairpin${h.family}`, key: addr(h.containerIp), data: { jump: hpChain(h) }, what: `hairpin ${h.containerIp} (${hpChain(h)})` };
}

const toSet = (op: 'add' | 'delete', k: Keyed): SetElement => ({ op, table: PORTMAP_TABLE, set: k.set, key: k.key, keyEnd: k.keyEnd, data: k.data });

// ---------------------------------------------------------------- set-up

function baseScript(): string[] {
  const lines = [`add table ${T}`];
  for (const f of [4, 6] as const) {
    const a = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
    lines.push(
      `add map ${T} dnat${f} { type ${a} . inet_proto . inet_service : ${a} . inet_service; }`,
      `add map ${T} dnat${f}any { type inet_proto . inet_service : ${a} . inet_service; }`,
      `add map ${T} dnat${f}c { type ${a} . ${a} . inet_proto . inet_service : ${a} . inet_service; flags interval; }`,
      `add map ${T} hairpin${f} { type ${a} : verdict; }`,
    );
  }
  lines.push(`add chain ${T} hostports`, `flush chain ${T} hostports`);
  for (const f of [4, 6] as const) {
    const ip = f === 4 ? 'ip' : 'ip6';
    const l4 = `meta nfproto ipv${f} meta l4proto { tcp, udp, sctp }`;
    lines.push(
      `add rule ${T} hostports ${l4} dnat ${ip} to ${ip} saddr . ${ip} daddr . meta l4proto . th dport map @dnat${f}c`,
      `add rule ${T} hostports ${l4} dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @dnat${f}`,
      `add rule ${T} hostports ${l4} dnat ${ip} to meta l4proto . th dport map @dnat${f}any`,
    );
  }
  for (const [chain, hook] of [['prerouting', 'prerouting'], ['output', 'output']]) {
    lines.push(
      `add chain ${T} ${chain} { type nat hook ${hook} priority -100; policy accept; }`,
      `flush chain ${T} ${chain}`,
      `add rule ${T} ${chain} fib daddr type local jump hostports`,
    );
  }
  for (const [chain, hook] of [['mark_pre', 'prerouting'], ['mark_out', 'output']]) {
    lines.push(
      `add chain ${T} ${chain} { type filter hook ${hook} priority -90; policy accept; }`,
      `flush chain ${T} ${chain}`,
      `add rule ${T} ${chain} ct state new ct status dnat ip daddr vmap @hairpin4`,
      `add rule ${T} ${chain} ct state new ct status dnat ip6 daddr vmap @hairpin6`,
    );
  }
  return lines;
}

function hairpinScript(h: Hairpin): string[] {
  const c = hpChain(h);
  const ip = h.family === 4 ? 'ip' : 'ip6';
  const action = h.externalChain ? `jump ${h.externalChain}` : `meta mark set meta mark | ${markHex(h.markBit)}`;
  const lines: string[] = [];
  if (h.externalChain) lines.push(`add chain ${T} ${h.externalChain}`); // the operator's; never flushed
  else {
    lines.push(
      `add chain ${T} masq_m${h.markBit} { type nat hook postrouting priority 100; policy accept; }`,
      `flush chain ${T} masq_m${h.markBit}`,
      `add rule ${T} masq_m${h.markBit} meta mark & ${markHex(h.markBit)} == ${markHex(h.markBit)} masquerade`,
    );
  }
  lines.push(`add chain ${T} ${c}`, `flush chain ${T} ${c}`, `add rule ${T} ${c} ${ip} saddr ${h.subnet} ${action}`);
  if (h.family === 4) lines.push(`add rule ${T} ${c} ip saddr 127.0.0.0/8 ${action}`);
  return lines;
}

const missing = (e: unknown) => e instanceof KernelError && e.code === 'ENOENT';
// The key is there with other data (our adds carry no NLM_F_EXCL): EEXIST on
// recent kernels, EBUSY on older ones.
const busy = (e: unknown) => e instanceof KernelError && (e.code === 'EEXIST' || e.code === 'EBUSY');

function elementsOf(forwards: PortForward[], hairpins: Hairpin[]): Keyed[] {
  return [...forwards.flatMap(forwardElements), ...hairpins.map(hairpinElement)];
}

/**
 * Adds forwards and hairpins in one transaction. EBUSY names the mapping
 * whose host port is forwarded elsewhere already.
 */
export function portmapAdd(forwards: PortForward[], hairpins: Hairpin[], nsFd: number | null = null): void {
  const els = elementsOf(forwards, hairpins);
  if (!els.length) return;
  // A batch is one datagram (net.core.wmem_default, ~200 KiB): a large port
  // range goes in several. Should a later one fail, the caller's undo
  // (portmapDel of everything it asked for) takes the earlier ones back.
  const batch = () => { for (const part of chunks(els)) nftSetElements(nsFd, part.map((k) => toSet('add', k))); };
  try {
    batch();
    return;
  } catch (e) {
    if (missing(e)) {
      // the table or a hairpin chain is missing: make it all (idempotent), then again
      const seen = new Set<string>();
      const hp = hairpins.filter((h) => !seen.has(hpChain(h)) && !!seen.add(hpChain(h))).flatMap(hairpinScript);
      nftApply([...baseScript(), ...hp].join('\n') + '\n', nsFd);
      try {
        batch();
        return;
      } catch (e2) {
        if (!busy(e2)) throw e2;
      }
    } else if (!busy(e)) {
      throw e;
    }
  }
  throw new KernelError('EBUSY', `host port ${busyOne(els, nsFd)} is already forwarded to another container`, 16);
}

/** Which element of a failed batch holds a key with other data (the kernel does not say). */
function busyOne(els: Keyed[], nsFd: number | null): string {
  const nl = Nftnl.open(nsFd);
  try {
    for (const k of els) {
      const got = nl.getElement(PORTMAP_TABLE, k.set, k.key, k.keyEnd);
      if (got && !sameData(got, k.data)) return k.what.split(' -> ')[0];
    }
  } catch {
    // fall through to the general answer
  } finally {
    nl.close();
  }
  return 'a host port of these mappings';
}

function sameData(got: { data?: Buffer; jump?: string }, want: Keyed['data']): boolean {
  return Buffer.isBuffer(want) ? !!got.data && got.data.equals(want) : got.jump === want.jump;
}

/**
 * Removes forwards and hairpins; what is gone already is not an error, and
 * a key that now belongs to someone else (other data) is left alone.
 */
export function portmapDel(forwards: PortForward[], hairpins: Hairpin[], nsFd: number | null = null): void {
  const els = elementsOf(forwards, hairpins);
  if (!els.length) return;
  // Deleting a missing element fails the batch (ENOENT): add each first (a
  // no-op when it is there), then delete, as masquerade.ts does. Adding a
  // key that holds other data fails with EBUSY: then one by one.
  const batch = (ks: Keyed[]) => nftSetElements(nsFd, [...ks.map((k) => toSet('add', k)), ...ks.map((k) => toSet('delete', k))]);
  try {
    for (const part of chunks(els, CHUNK / 2)) batch(part);
  } catch (e) {
    if (!missing(e) && !busy(e)) throw e;
    if (!tableExists(nsFd)) return;
    for (const k of els) {
      try {
        batch([k]);
      } catch (e2) {
        if (!missing(e2) && !busy(e2)) throw e2;
      }
    }
  }
}

/** Elements per netlink batch: well under the socket's send buffer (an element is ~100-150 bytes). */
const CHUNK = 1000;

function chunks<T>(xs: T[], n: number = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function tableExists(nsFd: number | null): boolean {
  const nl = Nftnl.open(nsFd);
  try {
    return nl.hasTable(PORTMAP_TABLE);
  } finally {
    nl.close();
  }
}

/** One line per forward or hairpin the kernel does not have as given; [] when all are there. */
export function portmapCheck(forwards: PortForward[], hairpins: Hairpin[], nsFd: number | null = null): string[] {
  const els = elementsOf(forwards, hairpins);
  if (!els.length) return [];
  const nl = Nftnl.open(nsFd);
  try {
    if (!nl.hasTable(PORTMAP_TABLE)) return els.map((k) => `${k.what}: table ${T} is missing`);
    const out: string[] = [];
    for (const k of els) {
      const got = nl.getElement(PORTMAP_TABLE, k.set, k.key, k.keyEnd);
      if (!got) out.push(`${k.what}: no element in map ${k.set}`);
      else if (!sameData(got, k.data)) out.push(`${k.what}: map ${k.set} forwards it elsewhere`);
    }
    return out;
  } finally {
    nl.close();
  }
}
