// firewall.forward-accept-*: the firewall plugin's host functions (accept
// forwarded traffic of an attachment's addresses, isolate its bridge).
// Typed entries, never rule text.
//
// Object rights (for the gate v2 port):
//   entries[].address  names an address; right: accept.    Only an address in the
//                      runtime's prevResult for this call (host-parsed, top-level
//                      config), or, for del, one this attachment's ledger holds.
//   entries[].bridge   names a host bridge; right: isolate. Only an interface of the
//                      prevResult without a sandbox, or a top-level config string.
//   entries[].port     names a host bridge port; right: isolate. Only a link this
//                      attachment created (ledger) or a prevResult host interface.
// Every add is recorded in the ledger before the kernel is touched, so the DEL
// sweep (host/sweep.ts) removes what a crashed or prevResult-less DEL leaves.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError } from '../gate/gate.js';
import type { LedgerEntry } from '../gate/ledger.js';
import { type ForwardAccept, type IngressPolicy, forwardAcceptAdd, forwardAcceptDel, forwardAcceptMissing } from '../kernel/forward.js';

interface WitForwardAccept { address: string; bridge: string; port: string; ingressPolicy: string }

const POLICIES: Record<string, IngressPolicy> = { open: 'open', 'same-bridge': 'same-bridge', sameBridge: 'same-bridge', isolated: 'isolated' };
const IFNAME = /^[A-Za-z0-9_.+@-]{1,15}$/;
const MAX_ENTRIES = 64;

/** "10.1.2.3" or "10.1.2.3/24" to the canonical plain address, or null. */
export function canonicalAddress(s: string): string | null {
  if (typeof s !== 'string' || s.length > 64) return null;
  const a = s.split('/')[0];
  if (Address4.isValid(a) && !a.includes('/')) return new Address4(a).correctForm();
  if (Address6.isValid(a) && !a.includes('/')) return new Address6(a).correctForm();
  return null;
}

/** What a prevResult (1.1.0 shape) says: its addresses and its host-side interfaces. */
export function prevResultFacts(doc: Record<string, unknown>): CallContext['prevResult'] {
  const prev = doc.prevResult as { ips?: { address?: unknown }[]; interfaces?: { name?: unknown; sandbox?: unknown }[] } | undefined;
  if (!prev || typeof prev !== 'object') return undefined;
  const addresses = new Set<string>();
  const hostInterfaces = new Set<string>();
  for (const ip of Array.isArray(prev.ips) ? prev.ips.slice(0, 256) : []) {
    const a = typeof ip?.address === 'string' ? canonicalAddress(ip.address) : null;
    if (a) addresses.add(a);
  }
  for (const i of Array.isArray(prev.interfaces) ? prev.interfaces.slice(0, 256) : []) {
    if (typeof i?.name === 'string' && !i.sandbox) hostInterfaces.add(i.name);
  }
  return { addresses, hostInterfaces };
}

function parse(e: WitForwardAccept): ForwardAccept {
  const address = canonicalAddress(e.address);
  if (!address) throw new HostError('EINVAL', `forward accept needs an IP address, got '${e.address}'`);
  const policy = POLICIES[e.ingressPolicy];
  if (!policy) throw new HostError('EINVAL', `unknown ingress policy '${e.ingressPolicy}'`);
  if (policy !== 'open' && !IFNAME.test(e.bridge)) throw new HostError('EINVAL', `ingress policy ${policy} needs a bridge name, got '${e.bridge}'`);
  if (policy === 'isolated' && !IFNAME.test(e.port)) throw new HostError('EINVAL', `ingress policy isolated needs the host port name, got '${e.port}'`);
  return { family: address.includes(':') ? 6 : 4, address, bridge: policy === 'open' ? '' : e.bridge, port: policy === 'isolated' ? e.port : '', policy };
}

const ledgered = (ctx: CallContext): Extract<LedgerEntry, { kind: 'forward-accept' }>[] =>
  ctx.ledger.entries.filter((x): x is Extract<LedgerEntry, { kind: 'forward-accept' }> => x.kind === 'forward-accept');

/** null when every entry names only what this attachment may name. */
function authorize(ctx: CallContext, entries: WitForwardAccept[], forDel: boolean): string | null {
  if (!ctx.plugin.grants.firewall) return 'no firewall grant';
  if (!Array.isArray(entries) || entries.length > MAX_ENTRIES) return `at most ${MAX_ENTRIES} forward accepts per call`;
  const prev = ctx.prevResult;
  const mine = ledgered(ctx);
  for (const e of entries) {
    const a = canonicalAddress(e.address);
    if (!a) continue; // run() refuses it with EINVAL
    const inPrev = !!prev?.addresses.has(a);
    if (!inPrev && !(forDel && mine.some((m) => m.address === a))) {
      return `address '${e.address}' is not in this attachment's prevResult${forDel ? ' nor in its ledger' : ''}`;
    }
    if (e.ingressPolicy !== 'open') {
      const known = (n: string) => !!prev?.hostInterfaces.has(n) || ctx.configNames.has(n) || mine.some((m) => m.bridge === n);
      if (!known(e.bridge)) return `bridge '${e.bridge}' is not an interface of this attachment's prevResult nor named in its config`;
    }
    if (e.ingressPolicy === 'isolated') {
      const ok = ctx.ledger.ownsLink(e.port) || !!prev?.hostInterfaces.has(e.port) || mine.some((m) => m.port === e.port);
      if (!ok) return `port '${e.port}' was not created by this attachment and is not in its prevResult`;
    }
  }
  return null;
}

const same = (x: { address: string; port: string }, f: ForwardAccept) => x.address === f.address && x.port === f.port;

export const forwardAccept: HostInterface = {
  forwardAcceptAdd: {
    authorize: (ctx, entries: WitForwardAccept[]) => authorize(ctx, entries, false),
    run: (ctx, entries: WitForwardAccept[]) => {
      const fs = entries.map(parse);
      // Recorded first: should the process die after the kernel change, DEL still finds it.
      const known = ledgered(ctx);
      const fresh = fs.filter((f) => !known.some((k) => same(k, f)));
      if (fresh.length) {
        ctx.ledger.add(...fresh.map((f) => ({
          kind: 'forward-accept' as const, address: f.address, bridge: f.bridge, port: f.port, policy: f.policy, plugin: ctx.plugin.type,
        })));
      }
      try {
        forwardAcceptAdd(fs);
      } catch (e) {
        if (fresh.length) ctx.ledger.forget((x) => x.kind === 'forward-accept' && fresh.some((f) => same(x, f)));
        throw e;
      }
    },
  },
  forwardAcceptDel: {
    authorize: (ctx, entries: WitForwardAccept[]) => authorize(ctx, entries, true),
    run: (ctx, entries: WitForwardAccept[]) => {
      const fs = entries.map(parse);
      // whatever the ledger has for these addresses too (a port the caller did not name)
      const extra = ledgered(ctx).filter((x) => fs.some((f) => f.address === x.address) && !fs.some((f) => same(x, f)))
        .map((x) => parse({ address: x.address, bridge: x.bridge, port: x.port, ingressPolicy: x.policy }));
      forwardAcceptDel([...fs, ...extra]);
      ctx.ledger.forget((x) => x.kind === 'forward-accept' && fs.some((f) => f.address === x.address));
    },
  },
  forwardAcceptCheck: {
    authorize: (ctx, entries: WitForwardAccept[]) => authorize(ctx, entries, false),
    run: (_ctx, entries: WitForwardAccept[]) => {
      const gone = forwardAcceptMissing(entries.map(parse));
      if (gone) throw new HostError('ENOENT', `nftables element ${gone} not found`);
    },
  },
};

/** For the DEL/GC sweep: removes one ledgered forward accept. */
export function sweepForwardAccept(e: { address: string; bridge: string; port: string; policy: string }): void {
  forwardAcceptDel([parse({ address: e.address, bridge: e.bridge, port: e.port, ingressPolicy: e.policy })]);
}
