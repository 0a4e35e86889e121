// neighbours: permanent (or reachable) ARP/NDP entries, declared for the gate.
// A change needs the 'change' right on the link: in the container that is
// CNI_IFNAME (vpc-bridge's gateway entry), in the host a link this
// attachment created. Host entries are written to the ledger first and the
// sweep removes them; container entries go with the container's interface.
import { type CallContext, type HostInterface, HostError, onNs } from '../gate/gate.js';
import { declareUndo } from '../sweep.js';
import { KernelError } from '../kernel/types.js';
import { ipToBytes } from '../kernel/rtnl.js';
import { checkName } from './links.js';
import type { Role } from './namespaces.js';
import type { Neighbour } from '../wit.js';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function prepare(_ctx: CallContext, ns: Role, n: Neighbour): [Role, Neighbour] {
  checkName(n.link);
  try { ipToBytes(n.ip); } catch { throw new HostError('EINVAL', `'${n.ip}' is not an IP address`); }
  const mac = n.mac.toLowerCase();
  if (mac !== '' && !MAC.test(mac)) throw new HostError('EINVAL', `'${n.mac}' is not a MAC address`);
  return [ns, { ...n, mac }];
}

const grant = onNs('neighbours');
const objects = (_ctx: CallContext, ns: Role, n: Neighbour) => [{ ns, name: n.link, right: 'change' as const }];
const same = (n: Neighbour) => (e: { kind: string; link?: unknown; ip?: unknown }) => e.kind === 'neighbour' && e.link === n.link && e.ip === n.ip;

export const neighbours: HostInterface = {
  add: {
    grant, prepare, objects,
    check: (ctx, ns: Role, n: Neighbour) => (ns === 'host' && !ctx.ledger.ownsLink(n.link, 'host') ? `host link '${n.link}' was not created by this attachment` : null),
    creates: (ctx, ns: Role, n: Neighbour) => (ns === 'host' ? [{ kind: 'neighbour', link: n.link, ip: n.ip, plugin: ctx.plugin.type }] : []),
    run: (ctx, ns: Role, n: Neighbour) => {
      const r = ctx.ns.rtnl(ns);
      if (n.mac === '') throw new HostError('EINVAL', 'a neighbour entry needs a MAC address');
      r.addNeigh({ ifindex: r.getLink(n.link).index, ip: n.ip, mac: n.mac, permanent: n.permanent });
    },
  },
  del: {
    grant, prepare, objects,
    removes: (_ctx, ns: Role, n: Neighbour) => (e) => ns === 'host' && same(n)(e),
    run: (ctx, ns: Role, n: Neighbour) => {
      const r = ctx.ns.rtnl(ns);
      r.delNeigh({ ifindex: r.getLink(n.link).index, ip: n.ip, mac: '', permanent: false });
    },
  },
  list: {
    grant, reads: true,
    prepare: (_ctx, ns: Role, link: string) => { checkName(link); return [ns, link]; },
    run: (ctx, ns: Role, link: string) => {
      const r = ctx.ns.rtnl(ns);
      const index = r.getLink(link).index;
      return r.listNeigh().filter((x) => x.ifindex === index).slice(0, 4096)
        .map((x) => ({ link, ip: x.ip, mac: x.mac, permanent: x.permanent }));
    },
  },
};

declareUndo('neighbour', (e, k) => {
  try {
    const r = k.rtnl('host');
    r.delNeigh({ ifindex: r.getLink(String(e.link)).index, ip: String(e.ip), mac: '', permanent: false });
    return `neighbours.del ${e.ip}`;
  } catch (err) {
    if (err instanceof KernelError && (err.code === 'ENODEV' || err.code === 'ENOENT')) return null;
    throw err;
  }
});
