// firewall.forward-accept-*: the firewall plugin's host functions (accept
// forwarded traffic of an attachment's addresses, isolate its bridge).
// Typed entries, never rule text.
//
// Object rights: an entry's address must be the attachment's own (its
// prevResult, as the host read it from the runtime's config); its bridge and
// port need the 'change' right (links it created, or host interfaces of its
// prevResult). Deleting removes only what this attachment's ledger holds.
// Every add is recorded in the ledger before the kernel is touched, so the
// sweep removes what a crashed or prevResult-less DEL leaves.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { declareUndo } from '../sweep.js';
import type { LedgerEntry } from '../gate/ledger.js';
import type { WitForwardAccept } from '../wit.js';
import { type ForwardAccept, type IngressPolicy, forwardAcceptAdd, forwardAcceptDel, forwardAcceptMissing } from '../kernel/forward.js';


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

function parse(e: WitForwardAccept): ForwardAccept {
  const address = canonicalAddress(e.address);
  if (!address) throw new HostError('EINVAL', `forward accept needs an IP address, got '${e.address}'`);
  const policy = POLICIES[e.ingressPolicy];
  if (!policy) throw new HostError('EINVAL', `unknown ingress policy '${e.ingressPolicy}'`);
  if (policy !== 'open' && !IFNAME.test(e.bridge)) throw new HostError('EINVAL', `ingress policy ${policy} needs a bridge name, got '${e.bridge}'`);
  if (policy === 'isolated' && !IFNAME.test(e.port)) throw new HostError('EINVAL', `ingress policy isolated needs the host port name, got '${e.port}'`);
  return { family: address.includes(':') ? 6 : 4, address, bridge: policy === 'open' ? '' : e.bridge, port: policy === 'isolated' ? e.port : '', policy };
}

const ledgered = (ctx: CallContext): LedgerEntry[] => ctx.ledger.entries.filter((x) => x.kind === 'forward-accept');
const same = (x: LedgerEntry, f: ForwardAccept) => x.address === f.address && x.port === f.port;

function prepare(_ctx: CallContext, entries: WitForwardAccept[]): [ForwardAccept[]] {
  if (!Array.isArray(entries) || entries.length > MAX_ENTRIES) throw new HostError('EINVAL', `at most ${MAX_ENTRIES} forward accepts per call`);
  return [entries.map(parse)];
}

/** The bridge (same-bridge, isolated) and the port (isolated) must be the attachment's own or its prevResult's. */
const objects = (_ctx: CallContext, fs: ForwardAccept[]) => fs.flatMap((f) => [
  ...(f.bridge ? [{ ns: 'host' as const, name: f.bridge, right: 'change' as const }] : []),
  ...(f.port ? [{ ns: 'host' as const, name: f.port, right: 'change' as const }] : []),
]);
const ownAddresses = (ctx: CallContext, fs: ForwardAccept[]) => fs.reduce<string | null>((r, f) => r ?? ctx.owned.address(f.address), null);
const entry = (ctx: CallContext, f: ForwardAccept): LedgerEntry =>
  ({ kind: 'forward-accept', address: f.address, bridge: f.bridge, port: f.port, policy: f.policy, plugin: ctx.plugin.type });

export const forwardAccept: HostInterface = {
  // Only for the attachment's own addresses (its prevResult, checked by the host).
  forwardAcceptAdd: {
    grant: always('firewall'), prepare, objects, check: ownAddresses,
    creates: (ctx, fs: ForwardAccept[]) => fs.filter((f) => !ledgered(ctx).some((k) => same(k, f))).map((f) => entry(ctx, f)),
    run: (_ctx, fs: ForwardAccept[]) => { forwardAcceptAdd(fs); },
  },
  // Removes what this attachment's ledger holds for these addresses, nothing else.
  forwardAcceptDel: {
    grant: always('firewall'),
    prepare: (ctx, entries: WitForwardAccept[]) => {
      const [fs] = prepare(ctx, entries);
      const mine = ledgered(ctx).filter((x) => fs.some((f) => f.address === x.address));
      return [mine.map((x) => parse({ address: String(x.address), bridge: String(x.bridge), port: String(x.port), ingressPolicy: String(x.policy) as WitForwardAccept['ingressPolicy'] }))];
    },
    removes: (_ctx, fs: ForwardAccept[]) => (x) => x.kind === 'forward-accept' && fs.some((f) => f.address === x.address),
    run: (_ctx, fs: ForwardAccept[]) => { if (fs.length) forwardAcceptDel(fs); },
  },
  forwardAcceptCheck: {
    grant: always('firewall'), prepare, objects, check: ownAddresses, reads: true,
    run: (_ctx, fs: ForwardAccept[]) => {
      const gone = forwardAcceptMissing(fs);
      if (gone) throw new HostError('ENOENT', `nftables element ${gone} not found`);
    },
  },
};

declareUndo('forward-accept', (e) => {
  forwardAcceptDel([parse({ address: String(e.address), bridge: String(e.bridge), port: String(e.port), ingressPolicy: String(e.policy) as WitForwardAccept['ingressPolicy'] })]);
  return `firewall.forward-accept-del ${e.address}`;
});
