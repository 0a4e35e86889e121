// The keys each plugin type reads, from the reference plugins' config
// structs (containernetworking/plugins: bridge.go, allocator/config.go,
// static/main.go, bandwidth, portmap, firewall, tuning, macvlan), with the
// JSON kind each must have. `validate` warns about any other key: Go's
// decoder ignores unknown keys, so a typo ("isGatway") silently turns a
// setting off.

export type Kind = 'bool' | 'int' | 'string' | 'object' | 'array' | 'any';

export interface KeySpec {
  kind: Kind;
  /** inclusive range for ints */
  min?: number;
  max?: number;
  /** the reference reads it; our component does not (yet) */
  ignoredByUs?: boolean;
}

const k = (kind: Kind, extra: Partial<KeySpec> = {}): KeySpec => ({ kind, ...extra });

/** Keys every plugin entry may carry (the spec's and libcni's). */
export const COMMON_KEYS: Record<string, KeySpec> = {
  cniVersion: k('string'), name: k('string'), type: k('string'),
  capabilities: k('object'), ipam: k('object'), dns: k('object'),
  args: k('object'), runtimeConfig: k('object'), prevResult: k('object'),
};

/** Keys of a .conflist's top level. */
export const LIST_KEYS: Record<string, KeySpec> = {
  cniVersion: k('string'), cniVersions: k('array'), name: k('string'), plugins: k('array'),
  disableCheck: k('any'), disableGC: k('any'), loadOnlyInlinedPlugins: k('any'),
};

export const PLUGIN_KEYS: Record<string, Record<string, KeySpec>> = {
  bridge: {
    bridge: k('string'), isGateway: k('bool'), isDefaultGateway: k('bool'), forceAddress: k('bool'),
    ipMasq: k('bool'), ipMasqBackend: k('string', { ignoredByUs: true }), mtu: k('int', { min: 0, max: 65535 }),
    hairpinMode: k('bool'), promiscMode: k('bool'), vlan: k('int', { min: 0, max: 4094 }),
    vlanTrunk: k('array', { ignoredByUs: true }), preserveDefaultVlan: k('bool', { ignoredByUs: true }),
    macspoofchk: k('bool'), enabledad: k('bool'), disableContainerInterface: k('bool'), portIsolation: k('bool'),
  },
  loopback: {},
  // IPAM plugins: their keys live in "ipam"
  'host-local': {},
  static: {},
  bandwidth: { ingressRate: k('int', { min: 0 }), ingressBurst: k('int', { min: 0 }), egressRate: k('int', { min: 0 }), egressBurst: k('int', { min: 0 }) },
  portmap: {
    snat: k('bool'), conditionsV4: k('array'), conditionsV6: k('array'), masqAll: k('bool'),
    markMasqBit: k('int', { min: 0, max: 31 }), externalSetMarkChain: k('string'), backend: k('string'),
  },
  firewall: { backend: k('string'), iptablesAdminChainName: k('string'), firewalldZone: k('string'), ingressPolicy: k('string') },
  tuning: {
    sysctl: k('object'), mac: k('string'), promisc: k('bool'), mtu: k('int', { min: 0 }), txQLen: k('int', { min: 0 }),
    allmulti: k('bool'), dataDir: k('string'),
  },
  flannel: { subnetFile: k('string'), dataDir: k('string'), delegate: k('object') },
  macvlan: { master: k('string'), mode: k('string'), mtu: k('int', { min: 0 }), mac: k('string'), linkInContainer: k('bool'), bcqueuelen: k('int', { min: 0 }) },
};

/** Keys inside "ipam" per IPAM type. */
export const IPAM_KEYS: Record<string, Record<string, KeySpec>> = {
  'host-local': {
    type: k('string'), name: k('string'), routes: k('array'), dataDir: k('string'), resolvConf: k('string'),
    ranges: k('array'), rangeStart: k('string'), rangeEnd: k('string'), subnet: k('string'), gateway: k('string'),
  },
  static: { type: k('string'), routes: k('array'), addresses: k('array'), dns: k('object') },
  dhcp: { type: k('string'), daemonSocketPath: k('string'), provide: k('array'), request: k('array'), priority: k('int') },
};

export const RANGE_KEYS: Record<string, KeySpec> = { subnet: k('string'), rangeStart: k('string'), rangeEnd: k('string'), gateway: k('string') };
export const STATIC_ADDRESS_KEYS: Record<string, KeySpec> = { address: k('string'), gateway: k('string') };
export const ROUTE_KEYS: Record<string, KeySpec> = {
  dst: k('string'), gw: k('string'), mtu: k('int'), advmss: k('int'), priority: k('int'), table: k('int'), scope: k('int'),
};
export const DNS_KEYS: Record<string, KeySpec> = { nameservers: k('array'), domain: k('string'), search: k('array'), options: k('array') };

/** Edit distance, for "did you mean". */
export function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The known key a typo most likely meant, if any is close. */
const ALIASES: Record<string, string> = { gateway: 'gw', destination: 'dst', dest: 'dst', isgw: 'isGateway', masquerade: 'ipMasq', ipmasquerade: 'ipMasq' };

export function suggest(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase();
  const alias = ALIASES[lower];
  if (alias && known.includes(alias)) return alias;
  const exact = known.find((x) => x.toLowerCase() === lower);
  if (exact) return exact;
  let best: string | undefined;
  let bestD = Infinity;
  for (const x of known) {
    const dd = distance(lower, x.toLowerCase());
    if (dd < bestD) { bestD = dd; best = x; }
  }
  return best !== undefined && bestD <= Math.max(1, Math.min(3, Math.floor(key.length / 4))) ? best : undefined;
}
