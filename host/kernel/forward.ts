// Forwarding accepts for containers (what the reference firewall plugin's
// iptables backend does with CNI-FORWARD, CNI-ADMIN and the
// CNI-ISOLATION-STAGE chains), in nftables, at flat cost:
//
//   table inet cni_wasm_filter
//     set accept4 { type ipv4_addr; }          attachment addresses
//     set accept6 { type ipv6_addr; }
//     set isolated { type ifname; }            bridges with ingressPolicy same-bridge/isolated
//     set same { type ifname . ifname; }       br . br for each of them
//     chain admin { }                          the operator's; created empty, never flushed
//     chain forward { type filter hook forward priority filter; }
//       iifname @isolated oifname @isolated iifname . oifname != @same drop
//       jump admin
//       ip daddr @accept4 ct state established,related accept
//       ip saddr @accept4 accept
//       ip6 daddr @accept6 ct state established,related accept
//       ip6 saddr @accept6 accept
//   table bridge cni_wasm_isolate                (only once an `isolated` attachment exists)
//     set ports { type ifname; }                 host ports of `isolated` attachments
//     chain forward { type filter hook forward priority filter; }
//       iifname @ports oifname @ports drop
//
// The order is the reference's: isolation first, then the admin chain, then
// the accepts. The forward chain is created without a policy, so it accepts
// what it does not match; an operator who wants forwarding closed by
// default sets `policy drop` on it (`nft add chain inet cni_wasm_filter
// forward '{ type filter hook forward priority filter; policy drop; }'`),
// which the setup below never resets. An accept here cannot override a drop
// in another table (nftables ends only the base chain with an accept), so a
// drop policy in, say, iptables' FORWARD chain stays in force.
//
// ADD and DEL add or delete set elements over nf_tables netlink in one
// batch; `nft -f` runs only when a table or set is missing.
import { KernelError } from './types.js';
import { nftApply, nftList } from './nft.js';
import { ifnameKey, nftElements, nftTableExists, type MapElement } from './nftnl.js';

export const FILTER_TABLE = 'cni_wasm_filter';
export const ISOLATE_TABLE = 'cni_wasm_isolate';
export const ADMIN_CHAIN = 'admin';

export type IngressPolicy = 'open' | 'same-bridge' | 'isolated';

export interface ForwardAccept {
  family: 4 | 6;
  /** plain address, canonical form */
  address: string;
  /** the bridge for same-bridge/isolated, '' for none */
  bridge: string;
  /** the host port (veth) for isolated, '' for none */
  port: string;
  policy: IngressPolicy;
}

const T = `inet ${FILTER_TABLE}`;
const B = `bridge ${ISOLATE_TABLE}`;

/** Table, sets and chains of the inet table; idempotent, keeps the admin chain and the forward policy. */
function filterSetup(): string[] {
  return [
    `add table ${T}`,
    `add set ${T} accept4 { type ipv4_addr; }`,
    `add set ${T} accept6 { type ipv6_addr; }`,
    `add set ${T} isolated { type ifname; }`,
    `add set ${T} same { type ifname . ifname; }`,
    `add chain ${T} ${ADMIN_CHAIN}`,
    `add chain ${T} forward { type filter hook forward priority filter; }`,
    // flush + add in one transaction: concurrent setups cannot leave rules twice
    `flush chain ${T} forward`,
    `add rule ${T} forward iifname @isolated oifname @isolated iifname . oifname != @same drop`,
    `add rule ${T} forward jump ${ADMIN_CHAIN}`,
    `add rule ${T} forward ip daddr @accept4 ct state established,related accept`,
    `add rule ${T} forward ip saddr @accept4 accept`,
    `add rule ${T} forward ip6 daddr @accept6 ct state established,related accept`,
    `add rule ${T} forward ip6 saddr @accept6 accept`,
  ];
}

function isolateSetup(): string[] {
  return [
    `add table ${B}`,
    `add set ${B} ports { type ifname; }`,
    `add chain ${B} forward { type filter hook forward priority filter; }`,
    `flush chain ${B} forward`,
    `add rule ${B} forward iifname @ports oifname @ports drop`,
  ];
}

const IFNAME = /^[A-Za-z0-9_.+@-]{1,15}$/;

function checkName(n: string, what: string): void {
  if (!IFNAME.test(n)) throw new KernelError('EINVAL', `invalid ${what} name "${n}"`, 22);
}

/** The per-attachment elements: the address, and for isolated the port. */
function ownElements(op: MapElement['op'], e: ForwardAccept): MapElement[] {
  if ((e.family === 6) !== e.address.includes(':')) throw new KernelError('EINVAL', `forward accept address ${e.address} is not IPv${e.family}`, 22);
  const out: MapElement[] = [{ op, table: FILTER_TABLE, map: `accept${e.family}`, address: e.address, plain: true }];
  if (e.policy === 'isolated') {
    checkName(e.port, 'port');
    out.push({ op, table: ISOLATE_TABLE, map: 'ports', address: e.port, key: ifnameKey(e.port), plain: true, family: 'bridge' });
  }
  return out;
}

/** The per-bridge elements (shared by every attachment on the bridge; never deleted, as the reference keeps its isolation rules). */
function bridgeElements(e: ForwardAccept): MapElement[] {
  if (e.policy === 'open') return [];
  checkName(e.bridge, 'bridge');
  const k = ifnameKey(e.bridge);
  return [
    { op: 'add', table: FILTER_TABLE, map: 'isolated', address: e.bridge, key: k, plain: true },
    { op: 'add', table: FILTER_TABLE, map: 'same', address: `${e.bridge} . ${e.bridge}`, key: Buffer.concat([k, k]), plain: true },
  ];
}

const missing = (e: unknown) => e instanceof KernelError && e.code === 'ENOENT';

const dedupe = (els: MapElement[]): MapElement[] => {
  const seen = new Set<string>();
  return els.filter((x) => {
    const id = `${x.op} ${x.family ?? 'inet'} ${x.map} ${x.address}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
};

/** Accepts forwarding for the entries (and isolates their bridges); one transaction. Idempotent. */
export function forwardAcceptAdd(entries: ForwardAccept[], nsFd: number | null = null): void {
  if (!entries.length) return;
  const els = dedupe(entries.flatMap((e) => [...bridgeElements(e), ...ownElements('add', e)]));
  try {
    nftElements(nsFd, els); // usual case: one netlink batch
    return;
  } catch (e) {
    if (!missing(e)) throw e;
  }
  const script = [...filterSetup()];
  if (entries.some((e) => e.policy === 'isolated')) script.push(...isolateSetup());
  nftApply(script.join('\n') + '\n', nsFd);
  nftElements(nsFd, els);
}

/** Removes the entries' own elements; what is already gone is not an error. */
export function forwardAcceptDel(entries: ForwardAccept[], nsFd: number | null = null): void {
  if (!entries.length) return;
  // add-then-delete in one batch: deleting a missing element would fail the batch
  const own = (es: ForwardAccept[]) => {
    const add = dedupe(es.flatMap((e) => ownElements('add', e)));
    return [...add, ...add.map((x) => ({ ...x, op: 'delete' as const }))];
  };
  try {
    nftElements(nsFd, own(entries));
  } catch (e) {
    if (!missing(e)) throw e;
    // a table is missing: the inet one means nothing is there; the bridge one
    // (never an isolated attachment here) still leaves the addresses to remove
    if (!nftTableExists(nsFd, FILTER_TABLE)) return;
    for (const one of entries) {
      try {
        nftElements(nsFd, own([{ ...one, policy: one.policy === 'isolated' ? 'open' : one.policy }]));
      } catch (e2) {
        if (!missing(e2)) throw e2;
      }
    }
  }
}

/** The first element of the entries that is not in place, or null when all are (CHECK). */
export function forwardAcceptMissing(entries: ForwardAccept[], nsFd: number | null = null): string | null {
  const want: string[] = [];
  for (const e of entries) {
    want.push(`${T} accept${e.family} { ${e.address} }`);
    if (e.policy !== 'open') want.push(`${T} isolated { "${e.bridge}" }`, `${T} same { "${e.bridge}" . "${e.bridge}" }`);
    if (e.policy === 'isolated') want.push(`${B} ports { "${e.port}" }`);
  }
  for (const w of want) {
    try {
      nftList(nsFd, ['get', 'element', ...w.split(' ')]);
    } catch {
      return w;
    }
  }
  return null;
}
