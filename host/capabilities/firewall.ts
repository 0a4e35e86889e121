// firewall: typed masquerade entries, never rule text from the guest.
import { Address4, Address6 } from 'ip-address';
import { type HostInterface, HostError } from '../gate/gate.js';
import { type MasqueradeEntry, masqueradeAdd, masqueradeDel } from '../kernel/masquerade.js';

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
};
