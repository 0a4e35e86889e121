// firewall: typed masquerade entries and MAC spoof checks, never rule text
// from the guest.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import type { LedgerEntry } from '../gate/ledger.js';
import type { MacSpoofCheck, Masquerade } from '../wit.js';
import { type MasqueradeEntry, masqueradeAdd, masqueradeDel } from '../kernel/masquerade.js';
import { type SpoofCheck, normalizeSpoofCheck, spoofCheckAdd, spoofCheckDel } from '../kernel/spoofcheck.js';

type WitMasquerade = Masquerade;

export function parseMasquerade(m: WitMasquerade): MasqueradeEntry {
  const v6 = m.source.includes(':');
  const src = m.source.split('/')[0];
  const ok = v6 ? Address6.isValid(src) && Address6.isValid(m.exclude) && m.exclude.includes('/')
    : Address4.isValid(src) && Address4.isValid(m.exclude) && m.exclude.includes('/');
  if (!ok) throw new HostError('EINVAL', `masquerade needs an address and a subnet of one family, got source '${m.source}' and exclude '${m.exclude}'`);
  if (v6) {
    const n = new Address6(m.exclude);
    return { family: 6, source: new Address6(src).correctForm(), exclude: `${n.startAddress().correctForm()}/${n.subnetMask}` };
  }
  const n = new Address4(m.exclude);
  return { family: 4, source: new Address4(src).correctForm(), exclude: `${n.startAddress().correctForm()}/${n.subnetMask}` };
}

type WitMacSpoofCheck = MacSpoofCheck;

export function parseSpoofCheck(c: WitMacSpoofCheck): SpoofCheck {
  const n = normalizeSpoofCheck(c.port, c.mac);
  if (!n) throw new HostError('EINVAL', `a MAC spoof check needs a host interface name and a MAC (six hex pairs), got port '${c.port}' and mac '${c.mac}'`);
  return n;
}

const grant = always('firewall');
const masqEntry = (ctx: CallContext, m: WitMasquerade): LedgerEntry =>
  ({ kind: 'masquerade', network: m.network, source: m.source, exclude: m.exclude, plugin: ctx.plugin.type });
const sameMasq = (m: WitMasquerade) => (e: LedgerEntry) => e.kind === 'masquerade' && e.source === m.source && e.exclude === m.exclude;

export const firewall: HostInterface = {
  // Only for the attachment's own addresses (its IPAM result, its prevResult).
  masqueradeAdd: {
    grant,
    prepare: (_ctx, entries: WitMasquerade[]) => { entries.forEach(parseMasquerade); return [entries]; },
    check: (ctx, entries: WitMasquerade[]) => entries.reduce<string | null>((r, m) => r ?? ctx.owned.address(m.source), null),
    creates: (ctx, entries: WitMasquerade[]) => entries.map((m) => masqEntry(ctx, m)),
    run: (_ctx, entries: WitMasquerade[]) => { masqueradeAdd(entries.map(parseMasquerade)); },
  },
  // Removes only entries this attachment made; asking for others removes nothing
  // (DEL twice, or a container whose NAT another implementation set up).
  masqueradeDel: {
    grant,
    prepare: (ctx, entries: WitMasquerade[]) => [entries.filter((m) => ctx.ledger.entries.some(sameMasq(m)))],
    removes: (_ctx, entries: WitMasquerade[]) => (e) => entries.some((m) => sameMasq(m)(e)),
    run: (_ctx, entries: WitMasquerade[]) => { masqueradeDel(entries.map(parseMasquerade)); },
  },
  // Only a port this attachment may change (one it created): a plugin must not
  // filter (or unfilter) another container's traffic.
  macSpoofCheckAdd: {
    grant,
    prepare: (_ctx, c: WitMacSpoofCheck) => [parseSpoofCheck(c)],
    objects: (_ctx, c: SpoofCheck) => [{ ns: 'host', name: c.port, right: 'change' }],
    creates: (ctx, c: SpoofCheck) => (ctx.ledger.entries.some(sameCheck(c)) ? [] : [{ kind: 'spoofcheck', port: c.port, mac: c.mac, plugin: ctx.plugin.type }]),
    run: (_ctx, c: SpoofCheck) => { spoofCheckAdd([c]); },
  },
  macSpoofCheckDel: {
    grant,
    prepare: (_ctx, c: WitMacSpoofCheck) => [parseSpoofCheck(c)],
    check: (ctx, c: SpoofCheck) => (spoofChecksOn(ctx, c.port).length || ctx.owned.has('host', c.port, 'change') ? null
      : `this attachment has no MAC spoof check on '${c.port}' and did not create it`),
    removes: (_ctx, c: SpoofCheck) => (e) => e.kind === 'spoofcheck' && e.port === c.port,
    run: (ctx, c: SpoofCheck) => {
      // The one asked for, and whatever the ledger has for the port (should the MAC differ).
      spoofCheckDel([c, ...spoofChecksOn(ctx, c.port).filter((e) => e.mac !== c.mac)]);
    },
  },
};

const sameCheck = (c: SpoofCheck) => (e: LedgerEntry) => e.kind === 'spoofcheck' && e.port === c.port && e.mac === c.mac;

function spoofChecksOn(ctx: CallContext, port: string): SpoofCheck[] {
  return ctx.ledger.entries.flatMap((e) => (e.kind === 'spoofcheck' && e.port === port ? [{ port: String(e.port), mac: String(e.mac) }] : []));
}
