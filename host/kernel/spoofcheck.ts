// MAC spoof checking for bridge ports, in nftables, at flat cost: the
// reference bridge makes two chains and a jump rule per container; here every
// attachment is one element in each of two sets, checked by one rule.
//
//   table bridge cni_wasm_spoof
//     set ports   { type ifname; }                 host-side veths under check
//     set allowed { type ifname . ether_addr; }    port . the container's MAC
//     chain prerouting { type filter hook prerouting priority -300; policy accept; }
//       iifname @ports iifname . ether saddr != @allowed drop
//
// A frame entering the bridge from a checked port passes only with the
// container interface's MAC as its source, as the reference's
// `ether saddr <mac> return; drop` does. Both sets are plain hash sets (no
// interval flag), so an ADD or DEL does not grow with the number of elements.
import { KernelError } from './types.js';
import { nftApply } from './nft.js';

export const SPOOF_TABLE = 'cni_wasm_spoof';

export interface SpoofCheck {
  /** host-side port (veth) name; only [A-Za-z0-9_.+@-], so it is safe inside an nft string */
  port: string;
  /** lower-case colon form */
  mac: string;
}

const T = `bridge ${SPOOF_TABLE}`;

// nft's ifname strings: no quotes, backslashes or spaces can reach the script,
// and no '*' (a wildcard in ifname sets).
const PORT = /^[A-Za-z0-9_.+@-]{1,15}$/;
const MAC = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/;

/** Checks and normalises a port name and MAC; null when either is malformed. */
export function normalizeSpoofCheck(port: string, mac: string): SpoofCheck | null {
  if (!PORT.test(port) || !MAC.test(mac) || new Set(mac.replace(/[0-9a-fA-F]/g, '')).size !== 1) return null;
  return { port, mac: mac.replace(/-/g, ':').toLowerCase() };
}

function valid(c: SpoofCheck): SpoofCheck {
  const n = normalizeSpoofCheck(c.port, c.mac);
  if (!n) throw new KernelError('EINVAL', `not a port name and MAC: '${c.port}' '${c.mac}'`);
  return n;
}

const elements = (c: SpoofCheck): string[] => [
  `${T} ports { "${c.port}" }`,
  `${T} allowed { "${c.port}" . ${c.mac} }`,
];

/** Table, sets and the one rule; run only when the fast path finds something missing. */
export function spoofSetupScript(): string[] {
  return [
    `add table ${T}`,
    `add set ${T} ports { type ifname; }`,
    `add set ${T} allowed { type ifname . ether_addr; }`,
    `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    // flush + add in one transaction: a concurrent setup cannot leave the rule twice
    `flush chain ${T} prerouting`,
    `add rule ${T} prerouting iifname @ports iifname . ether saddr != @allowed drop`,
  ];
}

// each element once: two MACs on one port share its `ports` element, and
// deleting an element twice in one batch would fail the whole batch
const elementsOf = (checks: SpoofCheck[]): string[] => [...new Set(checks.map(valid).flatMap(elements))];

export function spoofAddScript(checks: SpoofCheck[]): string[] {
  return elementsOf(checks).map((e) => `add element ${e}`);
}

/** Add-then-delete: removing an element that is already gone is not an error. */
export function spoofDelScript(checks: SpoofCheck[]): string[] {
  const els = elementsOf(checks);
  return [...els.map((e) => `add element ${e}`), ...els.map((e) => `delete element ${e}`)];
}

const missing = (e: unknown) => e instanceof KernelError && /No such file or directory/.test(e.message);

/** Starts checking the ports; the table is set up only when it is missing. Idempotent. */
export function spoofCheckAdd(checks: SpoofCheck[], nsFd: number | null = null): void {
  if (!checks.length) return;
  const add = spoofAddScript(checks);
  try {
    nftApply(add.join('\n') + '\n', nsFd); // usual case: two elements, one transaction
  } catch (e) {
    if (!missing(e)) throw e;
    nftApply([...spoofSetupScript(), ...add].join('\n') + '\n', nsFd);
  }
}

/** Stops checking the ports. What is already gone (elements, the table) is not an error. */
export function spoofCheckDel(checks: SpoofCheck[], nsFd: number | null = null): void {
  if (!checks.length) return;
  try {
    nftApply(spoofDelScript(checks).join('\n') + '\n', nsFd);
  } catch (e) {
    // `destroy element` (nft >= 1.0.8) would do; Debian 12 has 1.0.6. A
    // missing table or set means there is nothing to remove.
    if (!missing(e)) throw e;
  }
}
