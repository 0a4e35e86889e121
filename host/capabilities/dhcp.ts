// dhcp: the dhcp IPAM plugin's three requests to the DHCP daemon (`dhcp
// daemon`, host/dhcp/daemon.ts): acquire, check, release a lease; ready
// (STATUS) and collect (GC: the network's leases no attachment holds).
//
// The host names the attachment (container id, the invocation's network,
// CNI_IFNAME, CNI_NETNS), never the plugin, so a plugin can only ask about
// its own lease. The socket path is the plugin's (ipam.daemonSocketPath),
// but nothing is sent unless the process listening there runs as root
// (SO_PEERCRED) and greets first with the daemon's banner: a hostile plugin
// cannot talk to another service's socket. Waits end at the call's deadline;
// the reply is bounded (MAX_REPLY).
import { normalize } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { unixExchange } from '../kernel/native.js';
import type { Lease, LeaseOptions } from '../wit.js';
import { BANNER, DEFAULT_SOCKET, type DaemonReply, type DaemonRequest } from '../dhcp/protocol.js';

const MAX_REPLY = 64 << 10;
const MAX_PROVIDE = 32;
const MAX_REQUEST = 64;
const MAX_VALID = 4096;

function checkSocket(path: string): string | null {
  if (path === '') return null;
  if (!path.startsWith('/') || normalize(path) !== path || path.includes('\0')) return `daemonSocketPath '${path}' must be an absolute, normalized path`;
  if (Buffer.byteLength(path) > 107) return `daemonSocketPath '${path}' is longer than a unix socket path may be (107 bytes)`;
  return null;
}

function checkOptions(o: LeaseOptions): string | null {
  if (o.provide.length > MAX_PROVIDE) return `at most ${MAX_PROVIDE} provided DHCP options`;
  if (o.request.length > MAX_REQUEST) return `at most ${MAX_REQUEST} requested DHCP options`;
  for (const p of o.provide) {
    if (Buffer.byteLength(p.value) > 255) return `the value of DHCP option ${p.code} is longer than 255 bytes`;
    if ([0, 53, 255].includes(p.code)) return `DHCP option ${p.code} is the client's own and cannot be provided`;
  }
  return null;
}

function call(ctx: CallContext, socketPath: string, req: Omit<DaemonRequest, 'containerId' | 'network' | 'ifname' | 'netns'>): DaemonReply {
  const path = socketPath || DEFAULT_SOCKET;
  const wait = Math.max(50, Math.min(600_000, ctx.deadline - Date.now() - 50));
  const full: DaemonRequest = { ...req, budgetMs: Math.max(50, wait - 300), containerId: ctx.containerId, network: ctx.network, ifname: ctx.ifname, netns: ctx.ns.containerPath };
  let raw: Buffer;
  try {
    raw = unixExchange(path, BANNER, Buffer.from(JSON.stringify(full)), wait, MAX_REPLY);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const code = err.code ?? 'EIO';
    // "<path>: <strerror> (<detail>)" from the addon: the strerror and a detail other than the path
    const why = String(err.message ?? e).replace(/^[^:]*: /, '').replace(` (${path})`, '');
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
      throw new HostError('ENODAEMON', `no DHCP daemon is running on ${path} (${why}); start it with \`dhcp daemon\`${socketPath ? ` -socketpath ${path}` : ''}`);
    }
    throw new HostError(code, `the DHCP daemon on ${path}: ${why}`);
  }
  let reply: DaemonReply;
  try {
    reply = JSON.parse(raw.toString('utf8')) as DaemonReply;
  } catch {
    throw new HostError('EPROTO', `the DHCP daemon on ${path} answered something that is not JSON`);
  }
  if (!reply || typeof reply !== 'object') throw new HostError('EPROTO', `the DHCP daemon on ${path} answered something that is not a reply`);
  if (reply.error) throw new HostError(String(reply.error.code || 'EIO'), String(reply.error.message ?? ''));
  return reply;
}

function leaseOf(r: DaemonReply): Lease {
  const l = r.lease;
  if (!l || typeof l.address !== 'string') throw new HostError('EPROTO', 'the DHCP daemon answered without a lease');
  const routes = Array.isArray(l.routes) ? l.routes.slice(0, 256) : [];
  return {
    address: l.address, gateway: typeof l.gateway === 'string' ? l.gateway : '',
    routes: routes.map((x) => ({ dst: String(x.dst ?? ''), gw: String(x.gw ?? ''), onLink: !!x.onLink })),
  };
}

const grant = always('dhcp');

export const dhcp: HostInterface = {
  acquire: {
    grant,
    check: (_ctx, socketPath: string, opts: LeaseOptions) => checkSocket(socketPath) ?? checkOptions(opts),
    run: (ctx, socketPath: string, opts: LeaseOptions) => leaseOf(call(ctx, socketPath, {
      op: 'add', provide: opts.provide.map((p) => ({ code: p.code, value: p.value })), request: [...opts.request],
    })),
  },
  check: {
    grant, reads: true,
    check: (_ctx, socketPath: string) => checkSocket(socketPath),
    run: (ctx, socketPath: string) => leaseOf(call(ctx, socketPath, { op: 'check', provide: [], request: [] })),
  },
  release: {
    grant,
    check: (_ctx, socketPath: string) => checkSocket(socketPath),
    run: (ctx, socketPath: string) => { call(ctx, socketPath, { op: 'del', provide: [], request: [] }); },
  },
  ready: {
    grant, reads: true,
    check: (_ctx, socketPath: string) => checkSocket(socketPath),
    run: (ctx, socketPath: string) => { call(ctx, socketPath, { op: 'ready', provide: [], request: [] }); },
  },
  collect: {
    grant,
    check: (_ctx, socketPath: string, valid: [string, string][]) => checkSocket(socketPath) ?? (valid.length > MAX_VALID ? `at most ${MAX_VALID} valid attachments` : null),
    // the network is the invocation's: a GC can only collect its own network's leases
    run: (ctx, socketPath: string, valid: [string, string][]) => {
      call(ctx, socketPath, { op: 'gc', provide: [], request: [], valid: valid.map(([c, i]) => [String(c), String(i)] as [string, string]) });
    },
  },
};
