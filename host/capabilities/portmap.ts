// portmap: typed port forwards and hairpin masquerading, never rule text.
//
// Object rights:
//   add    every container-ip (forwards and hairpins) must be the attachment's
//          own address (its prevResult as the runtime gave it); every forward
//          must be a mapping the runtime's own runtimeConfig.portMappings asks
//          for (a host port is shared: one forwarded elsewhere is EBUSY).
//          host-ip, sources, destinations only narrow what matches; the DNAT
//          applies only to traffic for local addresses (fib daddr type local).
//          Side effect: route_localnet=1 on the host interface that routes to
//          an owned IPv4 address with a hairpin (what the reference does).
//   del    only entries this attachment's ledger holds (exactly as recorded).
//   check  owned addresses or ledger entries; list: this attachment's entries.
// Grant: "portmap": true. Entries are recorded before the kernel is touched.
import { Address4, Address6 } from 'ip-address';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { declareUndo } from '../sweep.js';
import type { LedgerEntry } from '../gate/ledger.js';
import type { PortForwards, WitHairpin, WitPortForward } from '../wit.js';
import {
  EXTERNAL_CHAIN, type Hairpin, type PortForward, type Proto, RESERVED_CHAIN,
  portmapAdd, portmapCheck, portmapDel,
} from '../kernel/portmap.js';
import { flushUdpConntrack } from '../kernel/conntrack.js';
import { sysctlGet, sysctlSet } from '../kernel/sysctl.js';

type WitForward = WitPortForward;
type WitForwards = PortForwards;

/** Bounds on what one call may ask for (a podman range of 1000 ports, dual-stack, fits). */
const MAX_FORWARDS = 4096;
const MAX_HAIRPINS = 64;
const MAX_CONDITIONS = 32;
const MAX_ELEMENTS = 8192;

type Canon = { family: 4 | 6; addr: string } | null;

function canonIp(s: string): Canon {
  if (typeof s !== 'string' || s.length > 64 || s.includes('/')) return null;
  if (Address4.isValid(s)) return { family: 4, addr: new Address4(s).correctForm() };
  if (Address6.isValid(s) && !s.includes('%')) return { family: 6, addr: new Address6(s).correctForm() };
  return null;
}

function canonCidr(s: string, family: 4 | 6): string | null {
  if (typeof s !== 'string' || s.length > 64) return null;
  const [ip, len] = s.includes('/') ? s.split('/') : [s, String(family === 4 ? 32 : 128)];
  const c = canonIp(ip);
  if (!c || c.family !== family || !/^\d{1,3}$/.test(len) || Number(len) > (family === 4 ? 32 : 128)) return null;
  const n = family === 4 ? new Address4(`${c.addr}/${len}`) : new Address6(`${c.addr}/${len}`);
  return `${n.startAddress().correctForm()}/${len}`;
}

/** The attachment's own address -> its subnet (from its prevResult), or null. */
function ownSubnet(ctx: CallContext, addr: string): string | null {
  if (ctx.owned.address(addr) !== null) return null;
  const cidr = ctx.owned.subnetOf(addr);
  const c = canonIp(addr);
  return cidr && c ? canonCidr(cidr, c.family) : null;
}

const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

function parseForward(f: WitForward): PortForward {
  const c = canonIp(f.containerIp);
  if (!c) throw new HostError('EINVAL', `container-ip '${f.containerIp}' is not an IP address`);
  if (!(f.protocol in { tcp: 1, udp: 1, sctp: 1 })) throw new HostError('EINVAL', `unknown protocol '${f.protocol}'`);
  if (!isPort(f.hostPort) || !isPort(f.containerPort)) throw new HostError('EINVAL', `ports must be 1-65535, got host-port ${f.hostPort} and container-port ${f.containerPort}`);
  let hostIp = '';
  if (f.hostIp !== '') {
    const h = canonIp(f.hostIp);
    if (!h) throw new HostError('EINVAL', `host-ip '${f.hostIp}' is not an IP address`);
    if (h.family !== c.family) throw new HostError('EINVAL', `host-ip ${f.hostIp} and container-ip ${f.containerIp} are of different families`);
    if (h.addr !== '0.0.0.0' && h.addr !== '::') hostIp = h.addr;
  }
  const cidrs = (xs: string[], what: string) => {
    if (xs.length > MAX_CONDITIONS) throw new HostError('E2BIG', `at most ${MAX_CONDITIONS} ${what}`);
    return xs.map((x) => {
      const n = canonCidr(x, c.family);
      if (!n) throw new HostError('EINVAL', `${what} entry '${x}' is not an IPv${c.family} CIDR`);
      return n;
    });
  };
  return {
    family: c.family, proto: f.protocol, hostIp, hostPort: f.hostPort, containerIp: c.addr, containerPort: f.containerPort,
    sources: cidrs(f.sources, 'sources'), destinations: cidrs(f.destinations, 'destinations'),
  };
}

function parseHairpin(ctx: CallContext, h: WitHairpin): Hairpin {
  const c = canonIp(h.containerIp);
  const subnet = c && ownSubnet(ctx, c.addr);
  if (!c || !subnet) throw new HostError('EINVAL', `hairpin container-ip '${h.containerIp}' is not an address of this attachment`);
  if (!Number.isInteger(h.markBit) || h.markBit < 0 || h.markBit > 31) throw new HostError('EINVAL', `mark-bit must be 0-31, got ${h.markBit}`);
  const x = h.externalSetMarkChain;
  if (x !== '' && (!EXTERNAL_CHAIN.test(x) || RESERVED_CHAIN.test(x))) {
    throw new HostError('EINVAL', `external-set-mark-chain '${x}' is not a chain name this host allows (letters, digits, _ and -, not one of its own chains)`);
  }
  return { family: c.family, containerIp: c.addr, subnet, markBit: h.markBit, externalChain: x };
}

// ---------------------------------------------------------------- ledger

const fwdEntry = (ctx: CallContext, f: PortForward): LedgerEntry => ({ kind: 'portforward', ...f, plugin: ctx.plugin.type });
const hpEntry = (ctx: CallContext, h: Hairpin): LedgerEntry => ({ kind: 'hairpin', ...h, plugin: ctx.plugin.type });

function fwdKey(f: PortForward | LedgerEntry): string {
  return JSON.stringify([f.family, f.proto, f.hostIp, f.hostPort, f.containerIp, f.containerPort, f.sources, f.destinations]);
}
function hpKey(h: Hairpin | LedgerEntry): string {
  return JSON.stringify([h.family, h.containerIp, h.subnet, h.markBit, h.externalChain]);
}
export function ledgerKey(e: LedgerEntry): string | null {
  if (e.kind === 'portforward') return 'f' + fwdKey(e);
  if (e.kind === 'hairpin') return 'h' + hpKey(e);
  return null;
}

function recorded(ctx: CallContext): Set<string> {
  return new Set(ctx.ledger.entries.map(ledgerKey).filter((k): k is string => k !== null));
}

export function forwardOf(e: LedgerEntry): PortForward {
  return { family: e.family as 4 | 6, proto: e.proto as Proto, hostIp: String(e.hostIp), hostPort: Number(e.hostPort), containerIp: String(e.containerIp),
    containerPort: Number(e.containerPort), sources: (e.sources ?? []) as string[], destinations: (e.destinations ?? []) as string[] };
}
export function hairpinOf(e: LedgerEntry): Hairpin {
  return { family: e.family as 4 | 6, containerIp: String(e.containerIp), subnet: String(e.subnet), markBit: Number(e.markBit), externalChain: String(e.externalChain) };
}

// ---------------------------------------------------------------- authorize

function sized(f: WitForwards): string | null {
  if (!Array.isArray(f?.ports) || !Array.isArray(f?.hairpins)) return 'malformed port-forwards';
  if (f.ports.length > MAX_FORWARDS) return `at most ${MAX_FORWARDS} forwards per call`;
  if (f.hairpins.length > MAX_HAIRPINS) return `at most ${MAX_HAIRPINS} hairpins per call`;
  // conditions multiply: each forward is |sources| x |destinations| elements
  let n = 0;
  for (const p of f.ports) n += Math.max(1, Math.min(p.sources.length, MAX_CONDITIONS + 1)) * Math.max(1, Math.min(p.destinations.length, MAX_CONDITIONS + 1));
  if (n > MAX_ELEMENTS) return `at most ${MAX_ELEMENTS} map elements per call (forwards x source x destination conditions), asked for ${n}`;
  return null;
}

/** Every container address named must be this attachment's (the runtime's prevResult). */
function ownsAddresses(ctx: CallContext, f: WitForwards): string | null {
  for (const x of [...f.ports, ...f.hairpins]) {
    const why = ctx.owned.address(String(x.containerIp));
    if (why) return `container address '${x.containerIp}': ${why}`;
  }
  return null;
}

/** The mappings the runtime asked for, as keys "proto hostIp hostPort containerPort" (hostIp canonical, '' for any). */
function runtimeMappings(ctx: CallContext): Set<string> {
  const out = new Set<string>();
  // the runtime's own config only: a config a plugin wrote for a delegate asks for nothing
  const list = ctx.depth === 0 ? (ctx.runtimeConf?.runtimeConfig as { portMappings?: unknown } | undefined)?.portMappings : undefined;
  if (!Array.isArray(list)) return out;
  for (const m of list.slice(0, 65536 * 3)) {
    if (typeof m !== 'object' || m === null) continue;
    const { hostPort, containerPort, protocol, hostIP } = m as Record<string, unknown>;
    if (typeof protocol !== 'string' || !isPort(hostPort) || !isPort(containerPort)) continue;
    let ip = '';
    if (typeof hostIP === 'string' && hostIP !== '') {
      const c = canonIp(hostIP);
      if (!c) continue;
      if (c.addr !== '0.0.0.0' && c.addr !== '::') ip = c.addr;
    }
    out.add(`${protocol.toLowerCase()} ${ip} ${hostPort} ${containerPort}`);
  }
  return out;
}

/** Every forward must be a mapping the runtime asked for. */
function runtimeAsked(ctx: CallContext, f: WitForwards): string | null {
  if (!f.ports.length) return null;
  const asked = runtimeMappings(ctx);
  for (const p of f.ports) {
    const h = p.hostIp === '' ? null : canonIp(p.hostIp);
    const ip = h === null || h.addr === '0.0.0.0' || h.addr === '::' ? '' : h.addr;
    if (p.hostIp !== '' && h === null) return `host-ip '${p.hostIp}' is not an IP address`;
    if (!asked.has(`${p.protocol} ${ip} ${p.hostPort} ${p.containerPort}`)) {
      return `the runtime's portMappings do not ask for ${p.protocol}/${p.hostIp ? p.hostIp + ':' : ''}${p.hostPort} -> ${p.containerPort}`;
    }
  }
  return null;
}

/** Every entry must be one this attachment's ledger holds. */
function inLedger(ctx: CallContext, f: WitForwards): string | null {
  const have = recorded(ctx);
  for (const p of f.ports) {
    let k: string;
    try { k = 'f' + fwdKey(parseForward(p)); } catch (e) { return (e as Error).message; }
    if (!have.has(k)) return `this attachment did not add the forward ${p.protocol}/${p.hostPort} -> ${p.containerIp}:${p.containerPort}`;
  }
  for (const h of f.hairpins) {
    const c = canonIp(h.containerIp);
    const ok = c && ctx.ledger.entries.some((e) => e.kind === 'hairpin' && e.containerIp === c.addr && e.markBit === h.markBit && e.externalChain === h.externalSetMarkChain);
    if (!ok) return `this attachment did not add a hairpin for ${h.containerIp}`;
  }
  return null;
}

// ---------------------------------------------------------------- route_localnet

/** route_localnet=1 on the interface that routes to `ip` (the bridge), so 127/8 sources can leave through it. */
function enableLocalnet(ctx: CallContext, ip: string): void {
  const rtnl = ctx.ns.rtnl('host');
  let best: { prefix: number; ifindex: number } | null = null;
  for (const r of rtnl.listRoutes(4)) {
    if (!r.ifindex || (r.type && r.type !== 'unicast')) continue;
    const [net, len] = r.dst.split('/');
    const prefix = Number(len ?? 32);
    if (!new Address4(`${ip}/32`).isInSubnet(new Address4(`${net}/${prefix}`))) continue;
    if (!best || prefix > best.prefix) best = { prefix, ifindex: r.ifindex };
  }
  if (!best) return; // the reference, too, does nothing when no route is found
  const name = rtnl.getLinkByIndex(best.ifindex).name;
  const key = `net/ipv4/conf/${name}/route_localnet`;
  if (sysctlGet(null, key).trim() !== '1') sysctlSet(null, key, '1');
}

// ---------------------------------------------------------------- the interface

const grant = always('portmap');
const parsed = (ctx: CallContext, f: WitForwards) => ({ fwds: f.ports.map(parseForward), hps: f.hairpins.map((h) => parseHairpin(ctx, h)) });
const entriesOf = (ctx: CallContext, fwds: PortForward[], hps: Hairpin[]) => [...fwds.map((x) => fwdEntry(ctx, x)), ...hps.map((x) => hpEntry(ctx, x))];

export const portmap: HostInterface = {
  add: {
    grant,
    check: (ctx, f: WitForwards) => sized(f) ?? ownsAddresses(ctx, f) ?? runtimeAsked(ctx, f),
    // what is new to the ledger, recorded before the kernel is touched
    creates: (ctx, f: WitForwards) => {
      const { fwds, hps } = parsed(ctx, f);
      const have = recorded(ctx);
      return entriesOf(ctx, fwds, hps).filter((e) => { const k = ledgerKey(e)!; if (have.has(k)) return false; have.add(k); return true; });
    },
    run: (ctx, f: WitForwards) => {
      const { fwds, hps } = parsed(ctx, f);
      portmapAdd(fwds, hps);
      for (const h of hps) if (h.family === 4) enableLocalnet(ctx, h.containerIp);
      const udp = fwds.filter((x) => x.proto === 'udp').map((x) => ({ family: x.family, port: x.hostPort }));
      // best effort, as in the reference: a stale entry only delays the new mapping
      if (udp.length) flushUdpConntrack(udp);
    },
  },
  del: {
    grant,
    check: (ctx, f: WitForwards) => sized(f) ?? inLedger(ctx, f),
    removes: (ctx, f: WitForwards) => {
      const fwds = f.ports.map(parseForward);
      const gone = new Set([...fwds.map((x) => 'f' + fwdKey(x)), ...heldHairpins(ctx, f).map((x) => 'h' + hpKey(x))]);
      return (e) => { const k = ledgerKey(e); return k !== null && gone.has(k); };
    },
    run: (ctx, f: WitForwards) => { portmapDel(f.ports.map(parseForward), heldHairpins(ctx, f)); },
  },
  list: {
    grant, reads: true,
    run: (ctx): WitForwards => ({
      ports: ctx.ledger.entries.flatMap((e) => (e.kind === 'portforward' && e.plugin === ctx.owner ? [{
        protocol: e.proto as Proto, hostIp: String(e.hostIp), hostPort: Number(e.hostPort), containerIp: String(e.containerIp), containerPort: Number(e.containerPort),
        sources: (e.sources ?? []) as string[], destinations: (e.destinations ?? []) as string[],
      }] : [])),
      hairpins: ctx.ledger.entries.flatMap((e) => (e.kind === 'hairpin' && e.plugin === ctx.owner ? [{
        containerIp: String(e.containerIp), markBit: Number(e.markBit), externalSetMarkChain: String(e.externalChain),
      }] : [])),
    }),
  },
  check: {
    grant, reads: true,
    check: (ctx, f: WitForwards) => sized(f) ?? (ownsAddresses(ctx, f) === null ? null : inLedger(ctx, f)),
    run: (ctx, f: WitForwards) => {
      const hps = f.hairpins.map((h) => {
        const c = canonIp(h.containerIp);
        const rec = ctx.ledger.entries.find((e) => e.kind === 'hairpin' && e.containerIp === c?.addr);
        return rec && c && !ownSubnet(ctx, c.addr) ? hairpinOf(rec) : parseHairpin(ctx, h);
      });
      return portmapCheck(f.ports.map(parseForward), hps);
    },
  },
};

/** Hairpins as recorded (their subnet came from the prevResult at ADD). */
function heldHairpins(ctx: CallContext, f: WitForwards): Hairpin[] {
  return ctx.ledger.entries.flatMap((e) => (e.kind === 'hairpin' && f.hairpins.some((h) => canonIp(h.containerIp)?.addr === e.containerIp
    && h.markBit === e.markBit && h.externalSetMarkChain === e.externalChain) ? [hairpinOf(e)] : []));
}

declareUndo('portforward', (e) => { portmapDel([forwardOf(e)], []); return `portmap.del ${e.proto}/${e.hostPort}`; });
declareUndo('hairpin', (e) => { portmapDel([], [hairpinOf(e)]); return `portmap.del hairpin ${e.containerIp}`; });
