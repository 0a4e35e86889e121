// Runs the DHCP client component (guest-plugins/dhcp/client, built into
// dist/components/dhcp-client) for one lease operation. The component gets
// the dhcp-wire interface (and log) only: the daemon opens the UDP socket on
// port 68 of the lease's interface inside the container's namespace (setting
// the link up first, as the reference daemon does) and hands the component
// nothing else. Every host call goes through the gate and is audited under
// plugin "dhcp-client"; the component runs under the operation's time limit.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';
import { AuditLog } from '../gate/audit.js';
import { Ledger } from '../gate/ledger.js';
import { Ownership } from '../gate/ownership.js';
import type { Policy } from '../gate/policy.js';
import type { CallContext } from '../gate/gate.js';
import { Namespaces, openContainerNetns } from '../capabilities/namespaces.js';
import { WIRE_SESSION, WireSocket } from '../capabilities/dhcp-wire.js';
import { closeFd, udpOpen, withNetns } from '../kernel/native.js';
import { Rtnl } from '../kernel/rtnl.js';
import { CniError } from '../cni/errors.js';
import type { LoadedPlugin } from '../sandbox/loader.js';
import type { Manifest } from '../sandbox/package.js';
import { instantiate, withTimeLimit } from '../sandbox/sandbox.js';
import { readRegularFile } from '../sandbox/files.js';

export const CLIENT_TYPE = 'dhcp-client';
const GRACE_MS = 500;
export const componentDir = (): string => join(packageRoot(), 'dist/components', CLIENT_TYPE);

let loaded: LoadedPlugin | undefined;
function clientComponent(): LoadedPlugin {
  if (loaded) return loaded;
  const dir = componentDir();
  const manifest = JSON.parse(readRegularFile(join(dir, 'manifest.json'), { maxBytes: 256 << 10, what: 'component manifest' }).toString('utf8')) as Manifest;
  const mod = createRequire(import.meta.url)(join(dir, manifest.jsFile)) as { instantiate: LoadedPlugin['instantiate'] };
  loaded = { manifest, dir, grants: { dhcpWire: true, log: true }, objects: [], instantiate: mod.instantiate };
  return loaded;
}

/** What a lease operation works on. */
export interface Target { containerId: string; network: string; ifname: string; netns: string }

export class ClientFailure extends Error {
  constructor(public readonly code: string, message: string) { super(message); }
}

/** The UDP socket of the operation, in the container's namespace, the link up. */
function openWire(t: Target): WireSocket {
  let nsFd: number | null;
  try {
    nsFd = openContainerNetns(t.netns);
  } catch (e) {
    throw new ClientFailure('ENETNS', e instanceof CniError ? e.msg : (e as Error).message);
  }
  if (nsFd === null) throw new ClientFailure('ENETNS', `the container network namespace ${t.netns} is gone`);
  try {
    const rt = Rtnl.open(nsFd);
    try {
      let link;
      try { link = rt.getLink(t.ifname); } catch (e) { throw new ClientFailure('ENODEV', `error looking up "${t.ifname}": ${(e as Error).message}`); }
      if (!link.up) rt.setLink(t.ifname, { up: true });
    } finally {
      rt.close();
    }
    const fd = withNetns(nsFd, () => udpOpen(t.ifname));
    return new WireSocket(fd, t.ifname);
  } finally {
    closeFd(nsFd);
  }
}

function linkDown(t: Target): void {
  const nsFd = openContainerNetns(t.netns);
  if (nsFd === null) return;
  try {
    const rt = Rtnl.open(nsFd);
    try { rt.setLink(t.ifname, { up: false }); } finally { rt.close(); }
  } catch {
    // gone already
  } finally {
    closeFd(nsFd);
  }
}

/**
 * One operation of the component: `input` is its request document (op,
 * client id, options, the lease so far); the answer is its JSON document.
 * Throws ClientFailure with the component's CNI error text.
 */
export function runClient(policy: Policy, t: Target, input: Record<string, unknown>, timeoutMs: number): Record<string, unknown> {
  const plugin = clientComponent();
  const wire = openWire(t);
  const audit = new AuditLog(policy.auditLog);
  const ns = new Namespaces('');
  // the component stops waiting at timeoutMs (its budget); the host calls it
  // makes to wind up after that are still allowed for GRACE_MS
  const deadline = Date.now() + timeoutMs + GRACE_MS;
  const op = String(input.op ?? 'op');
  const ctx: CallContext = {
    plugin: { type: CLIENT_TYPE, sha256: plugin.manifest.sha256, grants: plugin.grants },
    command: op.toUpperCase(), containerId: t.containerId, ifname: t.ifname, network: t.network, owner: CLIENT_TYPE,
    owned: new Ownership(t.ifname), ledger: Ledger.detached('the DHCP client creates no objects'), audit, ns, policy,
    cniPath: [], depth: 0, deadline, session: new Map([[WIRE_SESSION, wire]]),
    delegate: () => { throw new ClientFailure('EDENIED', 'the DHCP client delegates to nothing'); },
  };
  try {
    const guest = instantiate(plugin, ctx, timeoutMs + 2 * GRACE_MS);
    const req = { config: JSON.stringify(input), containerId: t.containerId, ifname: t.ifname, args: [], hasNetns: true, netnsPath: t.netns };
    // the host calls' waits end at the deadline; the watchdog leaves room for the last one
    const out = withTimeLimit(ctx, op, timeoutMs + 2 * GRACE_MS, () => guest.add(req));
    const doc = JSON.parse(String(out)) as Record<string, unknown>;
    // as the reference: a lease that expired unrenewed takes its interface down
    if (doc.event === 'expired') linkDown(t);
    return doc;
  } catch (e) {
    if (e instanceof ClientFailure) throw e;
    if (e instanceof CniError) throw new ClientFailure(e.details || `CNI${e.code}`, e.msg);
    throw new ClientFailure('EIO', (e as Error).message);
  } finally {
    for (const s of ctx.session.values()) s.close();
    ns.close();
    audit.close();
  }
}
