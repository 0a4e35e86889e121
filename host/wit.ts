// The host's view of the WIT contract: the records and enums of
// wit/plugin.wit, as jco generates them (tools/wit-types.mjs, before tsc).
// Capabilities use these, never their own copies of the WIT's types.
export type { Netns, IpFamily, HostError as WitHostError, CniError as WitCniError, Request } from './generated/interfaces/cni-wasm-plugin-types.js';
export type { Link, VethSpec, VethPair, MacvlanMode, MacvlanSpec, MacvlanInfo, PortOptions, LinkSettings } from './generated/interfaces/cni-wasm-plugin-links.js';
export type { Address } from './generated/interfaces/cni-wasm-plugin-addresses.js';
export type { Route } from './generated/interfaces/cni-wasm-plugin-routes.js';
export type { Masquerade, MacSpoofCheck, ForwardAccept as WitForwardAccept, IngressPolicy } from './generated/interfaces/cni-wasm-plugin-firewall.js';
export type { PortForward as WitPortForward, Hairpin as WitHairpin, PortForwards, Protocol } from './generated/interfaces/cni-wasm-plugin-portmap.js';
export type { Tbf, Qdisc, QdiscParent, Filter } from './generated/interfaces/cni-wasm-plugin-tc.js';
export type { Resolver } from './generated/interfaces/cni-wasm-plugin-dns.js';
export type { Command } from './generated/interfaces/cni-wasm-plugin-delegate.js';
export type { Neighbour } from './generated/interfaces/cni-wasm-plugin-neighbours.js';
export type { Lease, LeaseOptions, DhcpOption, LeaseRoute } from './generated/interfaces/cni-wasm-plugin-dhcp.js';
export type { Datagram } from './generated/interfaces/cni-wasm-plugin-dhcp-wire.js';
