// Layer-2 rewrites for a bridge whose uplink is an ENI (vpc-bridge L2), the
// nftables form of aws's ebtables rules, in one bridge table per uplink:
//
//   table bridge cni_wasm_vpc_<uplink>
//     map endpoints { type ipv4_addr : ether_addr; }      endpoint IP -> its MAC
//     chain prerouting  { type filter hook prerouting priority dstnat; }
//       iifname <uplink> arp operation reply ether daddr set ff:ff:ff:ff:ff:ff accept
//       iifname <uplink> ether type ip ether daddr set ip daddr map @endpoints accept
//     chain postrouting { type filter hook postrouting priority srcnat; }
//       oifname <uplink> ether type arp <unicast source> ether saddr set <mac> arp saddr ether set <mac> accept
//       oifname <uplink> <unicast source> ether saddr set <mac> accept
//
// (ebtables' `-s unicast`: the group bit of the source MAC is clear.) An
// endpoint is one map element; the table goes with the uplink's rules.
import { nftApply } from './nft.js';
import { KernelError } from './types.js';

const IFNAME = /^[A-Za-z0-9_.+@-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function check(what: string, re: RegExp, v: string): string {
  if (!re.test(v)) throw new KernelError('EINVAL', `not ${what}: '${v}'`, 22);
  return v;
}

/** The table of one uplink; names other than [A-Za-z0-9_] are hex-encoded. */
export function natTable(uplink: string): string {
  check('an interface name', IFNAME, uplink);
  return 'bridge cni_wasm_vpc_' + (/^[A-Za-z0-9_]+$/.test(uplink) ? uplink : 'x' + Buffer.from(uplink).toString('hex'));
}

const UNICAST = 'ether saddr & 01:00:00:00:00:00 == 00:00:00:00:00:00';

export function uplinkScript(uplink: string, mac: string): string[] {
  const T = natTable(uplink), m = check('a MAC address', MAC, mac), i = `"${uplink}"`;
  return [
    `add table ${T}`,
    `add map ${T} endpoints { type ipv4_addr : ether_addr; }`,
    `add chain ${T} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${T} postrouting { type filter hook postrouting priority 300; policy accept; }`,
    `flush chain ${T} prerouting`,
    `flush chain ${T} postrouting`,
    `add rule ${T} prerouting iifname ${i} arp operation reply ether daddr set ff:ff:ff:ff:ff:ff accept`,
    `add rule ${T} prerouting iifname ${i} ether type ip ether daddr set ip daddr map @endpoints accept`,
    `add rule ${T} postrouting oifname ${i} ether type arp ${UNICAST} ether saddr set ${m} arp saddr ether set ${m} accept`,
    `add rule ${T} postrouting oifname ${i} ${UNICAST} ether saddr set ${m} accept`,
  ];
}

export function uplinkNatAdd(uplink: string, mac: string, nsFd: number | null = null): void {
  nftApply(uplinkScript(uplink, mac).join('\n') + '\n', nsFd);
}

const missing = (e: unknown) => e instanceof KernelError && /No such file or directory/.test(e.message);

/** Removes the uplink's table (and any endpoint left in it); a table already gone is not an error. */
export function uplinkNatDel(uplink: string, nsFd: number | null = null): void {
  try {
    nftApply(`delete table ${natTable(uplink)}\n`, nsFd);
  } catch (e) {
    if (!missing(e)) throw e;
  }
}

export function endpointNatAdd(uplink: string, ip: string, mac: string, nsFd: number | null = null): void {
  const T = natTable(uplink);
  nftApply(`add element ${T} endpoints { ${check('an IPv4 address', IPV4, ip)} : ${check('a MAC address', MAC, mac)} }\n`, nsFd);
}

export function endpointNatDel(uplink: string, ip: string, nsFd: number | null = null): void {
  const T = natTable(uplink);
  const a = check('an IPv4 address', IPV4, ip);
  try {
    nftApply(`delete element ${T} endpoints { ${a} }\n`, nsFd);
  } catch (e) {
    // an element (or the table) already gone is not an error (nft 1.0.6 has no destroy)
    if (!missing(e)) throw e;
  }
}
