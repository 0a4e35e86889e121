// Source NAT for containers, in nftables. One table for the purpose, with
// sets keyed by address: an attachment adds two set elements and removes
// them on DEL, so the cost of a packet and of an ADD stays flat however many
// containers there are (no chain per container, unlike iptables-based CNI).
//
//   table inet cni_wasm_nat
//     set masq4      { ipv4_addr }                    sources to masquerade
//     set skip4      { ipv4_addr . ipv4_addr, interval } (source . own subnet)
//     chain postrouting { nat hook, srcnat priority }
//       ip saddr . ip daddr @skip4 return
//       ip daddr 224.0.0.0/4 return
//       ip saddr @masq4 masquerade
//   (and the same for IPv6 with masq6 / skip6, ff00::/8)
import { nftApply } from './nft.js';

export const NAT_TABLE = 'cni_wasm_nat';

export interface MasqueradeEntry {
  family: 4 | 6;
  /** plain address, no prefix */
  source: string;
  /** the network's own subnet, CIDR */
  exclude: string;
}

// Re-declares the table each time (idempotent), and rebuilds the chain's
// three rules inside the same atomic batch: sets and their elements survive.
function skeleton(): string {
  return [
    `add table inet ${NAT_TABLE}`,
    `add set inet ${NAT_TABLE} masq4 { type ipv4_addr; }`,
    `add set inet ${NAT_TABLE} masq6 { type ipv6_addr; }`,
    `add set inet ${NAT_TABLE} skip4 { type ipv4_addr . ipv4_addr; flags interval; }`,
    `add set inet ${NAT_TABLE} skip6 { type ipv6_addr . ipv6_addr; flags interval; }`,
    `add chain inet ${NAT_TABLE} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain inet ${NAT_TABLE} postrouting`,
    `add rule inet ${NAT_TABLE} postrouting ip saddr . ip daddr @skip4 return`,
    `add rule inet ${NAT_TABLE} postrouting ip daddr 224.0.0.0/4 return`,
    `add rule inet ${NAT_TABLE} postrouting ip saddr @masq4 masquerade`,
    `add rule inet ${NAT_TABLE} postrouting ip6 saddr . ip6 daddr @skip6 return`,
    `add rule inet ${NAT_TABLE} postrouting ip6 daddr ff00::/8 return`,
    `add rule inet ${NAT_TABLE} postrouting ip6 saddr @masq6 masquerade`,
  ].join('\n');
}

function elements(e: MasqueradeEntry): string[] {
  const f = e.family;
  return [
    `inet ${NAT_TABLE} masq${f} { ${e.source} }`,
    `inet ${NAT_TABLE} skip${f} { ${e.source} . ${e.exclude} }`,
  ];
}

export function masqueradeAdd(e: MasqueradeEntry, nsFd: number | null = null): void {
  nftApply(skeleton() + '\n' + elements(e).map((x) => `add element ${x}`).join('\n') + '\n', nsFd);
}

/** Removing what is already gone is not an error (DEL is idempotent). */
export function masqueradeDel(e: MasqueradeEntry, nsFd: number | null = null): void {
  // `destroy element` (nft >= 1.0.8) would ignore missing elements; Debian 12
  // has 1.0.6, so add-then-delete in one batch gives the same effect.
  const els = elements(e);
  nftApply(skeleton() + '\n' + els.map((x) => `add element ${x}`).join('\n') + '\n' + els.map((x) => `delete element ${x}`).join('\n') + '\n', nsFd);
}
