// firewall: typed masquerade entries and MAC spoof checks, never rule text
// from the guest.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError } from '../gate/gate.js';
import type { LedgerEntry } from '../gate/ledger.js';
import { type MasqueradeEntry, masqueradeAdd, masqueradeDel } from '../kernel/masquerade.js';
import { type SpoofCheck, normalizeSpoofCheck, spoofCheckAdd, spoofCheckDel } from '../kernel/spoofcheck.js';

interface WitMasquerade { network: string; source: string; exclude: string }

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

interface WitMacSpoofCheck { port: string; mac: string }

export function parseSpoofCheck(c: WitMacSpoofCheck): SpoofCheck {
  const n = normalizeSpoofCheck(c.port, c.mac);
  if (!n) throw new HostError('EINVAL', `a MAC spoof check needs a host interface name and a MAC (six hex pairs), got port '${c.port}' and mac '${c.mac}'`);
  return n;
}

const granted = (ctx: { plugin: { grants: { firewall?: boolean } } }) => (ctx.plugin.grants.firewall ? null : 'no firewall grant');

export const firewall: HostInterface = {
  masqueradeAdd: {
    authorize: granted,
    run: (ctx, entries: WitMasquerade[]) => {
      masqueradeAdd(entries.map(parseMasquerade));
      ctx.ledger.add(...entries.map((m) => ({ kind: 'masquerade' as const, network: m.network, source: m.source, exclude: m.exclude, plugin: ctx.plugin.type })));
    },
  },
  masqueradeDel: {
    authorize: granted,
    run: (ctx, entries: WitMasquerade[]) => {
      masqueradeDel(entries.map(parseMasquerade));
      const gone = new Set(entries.map((m) => m.source));
      ctx.ledger.forget((e) => e.kind === 'masquerade' && gone.has(e.source));
    },
  },
  // Only a port this attachment created: a plugin must not filter (or
  // unfilter) another container's traffic.
  macSpoofCheckAdd: {
    authorize: (ctx, c: WitMacSpoofCheck) => granted(ctx) ?? (ctx.ledger.ownsLink(c.port) ? null
      : `host link '${c.port}' was not created by this attachment`),
    run: (ctx, c: WitMacSpoofCheck) => {
      const sc = parseSpoofCheck(c);
      const mine = (e: LedgerEntry) => e.kind === 'spoofcheck' && e.port === sc.port && e.mac === sc.mac;
      // Recorded first: should the process die after nft, DEL still finds it.
      const known = ctx.ledger.entries.some(mine);
      if (!known) ctx.ledger.add({ kind: 'spoofcheck', port: sc.port, mac: sc.mac, plugin: ctx.plugin.type });
      try {
        spoofCheckAdd([sc]);
      } catch (e) {
        if (!known) ctx.ledger.forget(mine);
        throw e;
      }
    },
  },
  macSpoofCheckDel: {
    authorize: (ctx, c: WitMacSpoofCheck) => granted(ctx) ?? (spoofChecksOn(ctx, c.port).length || ctx.ledger.ownsLink(c.port) ? null
      : `this attachment has no MAC spoof check on '${c.port}' and did not create it`),
    run: (ctx, c: WitMacSpoofCheck) => {
      const sc = parseSpoofCheck(c);
      // The one asked for, and whatever the ledger has for the port (should the MAC differ).
      const all = [sc, ...spoofChecksOn(ctx, sc.port).filter((e) => e.mac !== sc.mac)];
      spoofCheckDel(all);
      ctx.ledger.forget((e) => e.kind === 'spoofcheck' && e.port === sc.port);
    },
  },
};

function spoofChecksOn(ctx: CallContext, port: string): SpoofCheck[] {
  return ctx.ledger.entries.flatMap((e) => (e.kind === 'spoofcheck' && e.port === port ? [{ port: e.port, mac: e.mac }] : []));
}
