// dhcp-wire: what the DHCP daemon's client component (guest-plugins/dhcp/client)
// may do. The daemon opens one UDP socket on port 68 of the lease's
// container interface, inside the container's namespace, and puts it in the
// call's session before the component runs; the component can only send to
// port 67 (broadcast, or one unicast address), receive what comes to port 68
// on that socket, and read the interface's MAC and the clock. No session
// socket (any CNI invocation) means ENODEV: plugins run by a runtime never
// get packet I/O, whatever their grants say.
//
// Bounds: a datagram sent is at most MAX_DATAGRAM bytes; a datagram received
// is cut to MAX_DATAGRAM; one recv waits at most MAX_WAIT_MS and never past
// the call's deadline.
import { randomBytes } from 'node:crypto';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { closeFd, ifHwaddr, udpRecv, udpSend } from '../kernel/native.js';

export const WIRE_SESSION = 'dhcp-wire';
export const MAX_DATAGRAM = 1500;
export const MAX_WAIT_MS = 10_000;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The socket the daemon opened for one lease operation. */
export class WireSocket {
  constructor(public readonly fd: number, public readonly ifname: string) {}
  close(): void { try { closeFd(this.fd); } catch { /* already closed */ } }
}

function socketOf(ctx: CallContext): WireSocket {
  const s = ctx.session.get(WIRE_SESSION);
  if (!(s instanceof WireSocket)) throw new HostError('ENODEV', 'dhcp-wire is only offered to the DHCP daemon\'s client component');
  return s;
}

const grant = always('dhcpWire');

export const dhcpWire: HostInterface = {
  send: {
    grant,
    check: (_ctx, data: Uint8Array, to: string) => {
      if (!data || data.length < 240 || data.length > MAX_DATAGRAM) return `a DHCP message has 240 to ${MAX_DATAGRAM} bytes (this one ${data?.length ?? 0})`;
      if (to !== '' && (!IPV4.test(to) || to === '0.0.0.0' || to === '255.255.255.255')) return `'${to}' is not a unicast IPv4 address`;
      return null;
    },
    run: (ctx, data: Uint8Array, to: string) => {
      const s = socketOf(ctx);
      udpSend(s.fd, Buffer.from(data), to || '255.255.255.255', 67);
    },
  },
  recv: {
    grant, reads: true,
    run: (ctx, timeoutMs: number) => {
      const s = socketOf(ctx);
      const wait = Math.max(0, Math.min(timeoutMs >>> 0, MAX_WAIT_MS, ctx.deadline - Date.now()));
      const got = udpRecv(s.fd, MAX_DATAGRAM, wait);
      return got ? { data: new Uint8Array(got.data), source: got.source } : undefined;
    },
  },
  hwaddr: {
    grant, reads: true,
    run: (ctx) => { const s = socketOf(ctx); return new Uint8Array(ifHwaddr(s.fd, s.ifname)); },
  },
  nowMs: { grant, reads: true, run: () => BigInt(Date.now()) },
  random: { grant, reads: true, run: () => randomBytes(4).readUInt32BE(0) },
};
