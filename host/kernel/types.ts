// The kernel layer's contract. Everything here is synchronous: guests call the
// host and wait for the answer, so the host cannot await a promise mid-call.

/** A failed kernel operation. `code` is the errno name (EEXIST, ENODEV, ...). */
export class KernelError extends Error {
  constructor(public readonly code: string, message: string, public readonly errno = 0) {
    super(message);
    this.name = 'KernelError';
  }
}

export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', 'macvlan', 'ifb', ... or '' for plain devices (lo, eth0). */
  kind: string;
  mtu: number;
  /** lower-case colon form, '' when the device has none */
  mac: string;
  /** IFF_UP is set */
  up: boolean;
  /** ifindex of the master (bridge), 0 for none */
  masterIndex: number;
  promisc: boolean;
  /** IFF_ALLMULTI is set */
  allmulti?: boolean;
  /** IFLA_TXQLEN */
  txqlen?: number;
  /** for veth: IFLA_LINK (peer index in the peer's namespace), else 0 */
  peerIndex: number;
  /** for non-veth links with IFLA_LINK (macvlan): the lower device's index */
  parentIndex?: number;
  /** IFLA_LINK_NETNSID: the peer/lower device lives in another netns */
  linkNetnsid?: number;
  /** for macvlan: its mode */
  macvlanMode?: 'private' | 'vepa' | 'bridge' | 'passthru';
  /** for macvlan: the broadcast queue length it asked for (IFLA_MACVLAN_BC_QUEUE_LEN) */
  bcQueueLen?: number;
}

export interface AddressInfo {
  ifindex: number;
  family: 4 | 6;
  /** "10.1.2.3/24" or "fd00::2/64" */
  cidr: string;
  /** 'universe' | 'link' | 'host' | 'site' */
  scope: string;
  /** IPv6 DAD still running (IFA_F_TENTATIVE) */
  tentative?: boolean;
  /** IPv6 DAD found a duplicate (IFA_F_DADFAILED) */
  dadFailed?: boolean;
}

export interface RouteInfo {
  family: 4 | 6;
  /** "0.0.0.0/0", "10.1.0.0/16", "::/0" */
  dst: string;
  gw?: string;
  ifindex?: number;
  src?: string;
  scope?: string;
  table?: number;
  metric?: number;
  /** set by listRoutes for non-unicast routes: 'blackhole', 'local', 'multicast', ... */
  type?: string;
}
