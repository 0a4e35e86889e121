// The kernel layer: synchronous netlink (rtnetlink, nf_tables map elements), netns switching, sysctl, nftables, locks.
export { KernelError, type LinkInfo, type AddressInfo, type RouteInfo } from './types.js';
export {
  Rtnl, ipToBytes, bytesToIp, parseCidr,
  type Cidr, type MacvlanMode, type VethOptions, type BridgeOptions, type MacvlanOptions,
  type SetLinkOptions, type BridgePortOptions, type BridgeVlanOptions, type IfbOptions,
} from './rtnl.js';
export { openNetns, closeFd, withNetns, homeNetnsFd, flock, funlock } from './native.js';
export { sysctlGet, sysctlSet, sysctlPath } from './sysctl.js';
export { nftApply, nftList } from './nft.js';
export { Nftnl, nftElements, type MapElement } from './nftnl.js';
export { Tc, pschedTicksPerUsec, tbfBuffer, type TbfSpec, type QdiscInfo, type FilterInfo, type QdiscParent } from './tc.js';
