// The dhcp IPAM plugin's host function and the DHCP daemon speak this over a
// root-only unix socket: the daemon greets with BANNER; the client sends one
// JSON request and closes its side; the daemon answers one JSON reply and
// closes. Requests are bounded (MAX_REQUEST), as are replies (the client's).
export const BANNER = 'cni-wasm-dhcp 1\n';
export const DEFAULT_SOCKET = '/run/cni/dhcp.sock';
export const MAX_REQUEST = 64 << 10;

export interface DaemonRequest {
  op: 'add' | 'check' | 'del' | 'ready' | 'gc';
  containerId: string;
  network: string;
  ifname: string;
  netns: string;
  provide: { code: number; value: string }[];
  request: number[];
  /** how long the caller waits for the answer (the CNI call's time left) */
  budgetMs?: number;
  /** gc: the attachments (container id, ifname) of the network that stay */
  valid?: [string, string][];
}

export interface LeaseRoute { dst: string; gw: string; onLink: boolean }
export interface DaemonLease { address: string; gateway: string; routes: LeaseRoute[] }

export interface DaemonReply {
  lease?: DaemonLease;
  error?: { code: string; message: string };
}
