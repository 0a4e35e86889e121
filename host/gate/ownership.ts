// Object rights: what one attachment may do to which kernel object. A plugin
// holds rights on
//   (a) what its own attachment created (the ledger): every right;
//   (b) objects named by the config keys its manifest (or, for a third-party
//       plugin, the operator's policy) declares, with only the rights declared
//       for that key — read from the runtime's own config, never from one a
//       plugin wrote for a delegated call;
//   (c) in the container namespace, CNI_IFNAME and names the manifest declares
//       (loopback's `lo`).
// Addresses follow the same rule: an attachment owns the addresses in its
// prevResult (from the runtime), those its IPAM returned during this call,
// those its ledger holds, and those config keys declare.
// Nothing else — an arbitrary string in the config grants nothing.
import { Address4, Address6 } from 'ip-address';
import type { Role } from './policy.js';

/** What may be done to an object. */
export type Right =
  /** bring a new object of this name into being */
  | 'create'
  /** use it as the lower device of a new link (macvlan master): nothing else */
  | 'parent'
  /** enslave links this attachment owns to it (a bridge's ports) */
  | 'attach'
  /** flags, MTU, MAC, name, sysctls, qdiscs */
  | 'change'
  /** add or remove addresses on it */
  | 'address'
  | 'delete'
  /** move it into the container namespace */
  | 'move';

export const RIGHTS: readonly Right[] = ['create', 'parent', 'attach', 'change', 'address', 'delete', 'move'];

/** One declared object: a config key (or a fixed name) that names a kernel object. */
export interface ObjectDecl {
  /** dotted path of the config key that names the object, e.g. "bridge", "master" */
  key?: string;
  /** a fixed name instead of a key (loopback's "lo") */
  name?: string;
  /** the name when the key is absent (the bridge plugin's "cni0") */
  default?: string;
  /** when the key is absent or empty: the link of the namespace's default
   *  route (the macvlan plugin's master), looked up by the host when first needed */
  defaultRoute?: boolean;
  /** "link" (a network interface) or "address" (an IP or CIDR, or a list of them) */
  kind: 'link' | 'address';
  ns: Role;
  rights: Right[];
}

export function validateObjectDecls(decls: unknown, where: string): ObjectDecl[] {
  if (decls === undefined) return [];
  if (!Array.isArray(decls)) throw new Error(`${where}: "objects" must be a list`);
  return decls.map((d, i) => {
    const at = `${where}: objects[${i}]`;
    if (typeof d !== 'object' || d === null) throw new Error(`${at} must be an object`);
    const o = d as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['key', 'name', 'default', 'defaultRoute', 'kind', 'ns', 'rights'].includes(k)) throw new Error(`${at}: unknown setting "${k}"`);
    }
    if ((o.key === undefined) === (o.name === undefined)) throw new Error(`${at} needs exactly one of "key" and "name"`);
    if (o.kind !== 'link' && o.kind !== 'address') throw new Error(`${at}: "kind" must be "link" or "address"`);
    if (o.ns !== 'host' && o.ns !== 'container') throw new Error(`${at}: "ns" must be "host" or "container"`);
    if (!Array.isArray(o.rights) || !o.rights.every((r) => RIGHTS.includes(r as Right))) {
      throw new Error(`${at}: "rights" must be a list of ${RIGHTS.join(', ')}`);
    }
    for (const s of ['key', 'name', 'default'] as const) if (o[s] !== undefined && typeof o[s] !== 'string') throw new Error(`${at}: "${s}" must be a string`);
    if (o.defaultRoute !== undefined && (typeof o.defaultRoute !== 'boolean' || o.kind !== 'link' || o.key === undefined || o.default !== undefined)) {
      throw new Error(`${at}: "defaultRoute" must be true or false, for a link named by a key without "default"`);
    }
    return o as unknown as ObjectDecl;
  });
}

function lookup(doc: unknown, path: string): unknown {
  let v: unknown = doc;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** "10.1.2.3", "10.1.2.3/24", "fd00::1/64" -> canonical address text, or null. */
export function canonicalIp(text: string): string | null {
  const ip = text.split('/')[0];
  if (Address4.isValid(ip) && !ip.includes(':')) return new Address4(ip).correctForm();
  if (Address6.isValid(ip)) return new Address6(ip).correctForm();
  return null;
}

interface ResultLike { ips?: { address?: unknown; gateway?: unknown }[] }

/** Rights of one attachment, built once per invocation and shared with its delegates. */
export class Ownership {
  private readonly links = { host: new Map<string, Set<Right>>(), container: new Map<string, Set<Right>>() };
  /** addresses the attachment owns (canonical) */
  private readonly addrs = new Set<string>();
  /** gateways of IPAM results: the bridge may put them on its bridge */
  private readonly gateways = new Set<string>();
  /** the subnets of its addresses: a bridge's gateway address lies in one */
  private readonly subnets: (Address4 | Address6)[] = [];
  /** config-declared address rights, by namespace */
  private readonly declaredAddrs = { host: new Set<string>(), container: new Set<string>() };
  /** why a name is held, for denial messages */
  readonly declaredKeys: string[] = [];
  /** declared links that are the default route's, not yet looked up */
  private readonly pendingDefaultRoute: { ns: Role; rights: Right[] }[] = [];
  /** the host's lookup of a namespace's default-route link (set by the invocation) */
  defaultRouteLink?: (ns: Role) => string | null;

  constructor(public readonly ifname: string) {
    this.grantLink('container', ifname, RIGHTS);
  }

  /** (b) and (c): the manifest's declarations resolved against the runtime's config. */
  static fromConfig(ifname: string, decls: ObjectDecl[], runtimeConfig: unknown): Ownership {
    const o = new Ownership(ifname);
    for (const d of decls) {
      const value = d.name ?? lookup(runtimeConfig, d.key!) ?? d.default;
      const values = Array.isArray(value) ? value : [value];
      o.declaredKeys.push(d.key ? `"${d.key}"` : `"${d.name}"`);
      if (d.defaultRoute && (value === undefined || value === null || value === '')) o.pendingDefaultRoute.push({ ns: d.ns, rights: d.rights });
      for (const v of values) {
        if (typeof v !== 'string' || v === '') continue;
        if (d.kind === 'link') o.grantLink(d.ns, v, d.rights);
        else {
          const ip = canonicalIp(v);
          if (ip) o.declaredAddrs[d.ns].add(ip);
        }
      }
    }
    return o;
  }

  grantLink(ns: Role, name: string, rights: readonly Right[]): void {
    let s = this.links[ns].get(name);
    if (!s) this.links[ns].set(name, (s = new Set()));
    for (const r of rights) s.add(r);
  }

  /** A link this attachment created (or renamed): every right. */
  own(ns: Role, name: string): void { this.grantLink(ns, name, RIGHTS); }

  renamed(ns: Role, from: string, to: string): void {
    const s = this.links[ns].get(from);
    if (s) this.links[ns].set(to, s);
  }

  moved(name: string, to: Role): void {
    const s = this.links.host.get(name);
    if (s) this.links[to].set(name, s);
  }

  has(ns: Role, name: string, right: Right): boolean {
    if (this.links[ns].get(name)?.has(right)) return true;
    this.resolveDefaultRoute(ns);
    return this.links[ns].get(name)?.has(right) ?? false;
  }

  /** Grants what a defaultRoute declaration gives to the default route's link of `ns`, once. */
  private resolveDefaultRoute(ns: Role): void {
    for (let i = this.pendingDefaultRoute.length - 1; i >= 0; i--) {
      const p = this.pendingDefaultRoute[i];
      if (p.ns !== ns) continue;
      this.pendingDefaultRoute.splice(i, 1);
      let name: string | null = null;
      try { name = this.defaultRouteLink?.(ns) ?? null; } catch { name = null; }
      if (name) this.grantLink(ns, name, p.rights);
    }
  }

  /** null if allowed, else the reason (for the denial message). */
  link(ns: Role, name: string, right: Right): string | null {
    if (this.has(ns, name, right)) return null;
    const held = this.links[ns].get(name);
    if (held) return `${ns} link '${name}' may not be given right '${right}' (this attachment holds ${[...held].join(', ')})`;
    if (ns === 'container') {
      return `container link '${name}' is not this attachment's: only CNI_IFNAME ('${this.ifname}'), links this attachment created and names its manifest declares`;
    }
    const keys = this.declaredKeys.length ? ` or named by its declared config keys (${this.declaredKeys.join(', ')})` : '';
    return `host link '${name}' was not created by this attachment${keys}`;
  }

  /** Addresses of a CNI result the host has seen for this attachment (prevResult, IPAM).
   *  With hostLinks (the runtime's own prevResult only), its host-side
   *  interfaces (no sandbox: the bridge, the host veth) get the 'change' right,
   *  so chained plugins may shape, isolate or tune them. */
  ownResult(r: unknown, hostLinks = false): void {
    const ifs = (r as { interfaces?: { name?: unknown; sandbox?: unknown }[] } | null)?.interfaces;
    if (hostLinks && Array.isArray(ifs)) {
      for (const i of ifs.slice(0, 256)) if (typeof i?.name === 'string' && !i.sandbox && i.name) this.grantLink('host', i.name, ['change']);
    }
    const ips = (r as ResultLike | null)?.ips;
    if (!Array.isArray(ips)) return;
    for (const ip of ips) {
      if (typeof ip?.address === 'string') {
        const a = canonicalIp(ip.address);
        if (a) this.addrs.add(a);
        if (a && ip.address.includes('/')) this.subnets.push(a.includes(':') ? new Address6(ip.address) : new Address4(ip.address));
      }
      if (typeof ip?.gateway === 'string') { const g = canonicalIp(ip.gateway); if (g) this.gateways.add(g); }
    }
  }

  /** The subnet (CIDR, as the result gave it) an own address came with, or null. */
  subnetOf(text: string): string | null {
    const a = canonicalIp(text);
    if (a === null) return null;
    const n = this.subnets.find((x) => canonicalIp(x.address) === a);
    return n ? `${n.addressMinusSuffix}/${n.subnetMask}` : null;
  }

  ownAddress(text: string): void {
    const a = canonicalIp(text);
    if (a) this.addrs.add(a);
  }

  /** An address the attachment may use as its own (a container's IP: NAT, port maps, host routes). */
  address(text: string, ns: Role = 'host'): string | null {
    const a = canonicalIp(text);
    if (a === null) return `'${text}' is not an IP address`;
    if (this.addrs.has(a) || this.declaredAddrs[ns].has(a)) return null;
    return `address ${a} is not this attachment's (not in its prevResult, its IPAM result or a declared config key)`;
  }

  /** An address the attachment may put on a host link: its own, its IPAM result's gateway,
   *  or one in the subnet of its own addresses (the bridge plugin's computed gateway). */
  hostAddress(text: string): string | null {
    const a = canonicalIp(text);
    if (a !== null && this.gateways.has(a)) return null;
    if (a !== null) {
      const ip = a.includes(':') ? new Address6(a) : new Address4(a);
      if (this.subnets.some((n) => n.v4 === ip.v4 && ip.isInSubnet(n as never))) return null;
    }
    return this.address(text, 'host');
  }
}
