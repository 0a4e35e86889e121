// rtnetlink constants rtnl.ts uses (linux/netlink.h, rtnetlink.h, if_link.h,
// if_bridge.h, neighbour.h), shared with the codec-based reference
// encoders the tests keep (test/helpers/rtnl-legacy.ts).
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP = 0x300;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;
export const IFF_ALLMULTI = 0x200;
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;
export const IFLA_PROTINFO = 12;
export const IFLA_AF_SPEC = 26;
export const BRIDGE_FLAGS_SELF = 2;
export const BRIDGE_VLAN_INFO_PVID = 2;
export const BRIDGE_VLAN_INFO_UNTAGGED = 4;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
export const RTM_F_CLONED = 0x200;
export const RTNH_F_ONLINK = 4;
export const NUD_PERMANENT = 0x80;
export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
export const SCOPES: Record<string, number> = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
export const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole',
  'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

export type MacvlanMode = keyof typeof MACVLAN_MODES;
/** IFLA_MACVLAN_BC_QUEUE_LEN (the codec knows attributes 1-6 only) */
export const IFLA_MACVLAN_BC_QUEUE_LEN = 7;

