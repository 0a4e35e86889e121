// Object rights: what one attachment may do to which kernel object. A plugin
// holds rights on
//   (a) what its own attachment created (the ledger): every right, for as
//       long as the ledger holds it, and, for a link an earlier call made,
//       while the link of that name has the ifindex the ledger recorded
//       (checked once per invocation, when a call first acts on it);
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
import { KernelError } from '../kernel/types.js';
import { canonicalIPv6, plainIPv4 } from '../cni/convert.js';
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
  | 'move'
  /** set sysctls keyed by its name (net/ipv4/conf/<it>/forwarding, ...); 'change' implies it */
  | 'sysctl'
  /** lend it to a bridge this attachment created: enslave it and move its address and default
   *  route to that bridge, all given back when the attachment's sweep runs (vpc-bridge L2) */
  | 'lend';

export const RIGHTS: readonly Right[] = ['create', 'parent', 'attach', 'change', 'address', 'delete', 'move', 'sysctl', 'lend'];

/** What may be done with a host path a config key names (kind "file" or "dir"). */
export type PathRight = 'read' | 'write';
export const PATH_RIGHTS: readonly PathRight[] = ['read', 'write'];

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
  /** links named by the key's value followed by this text, '#' standing for
   *  one or more digits (vpc-bridge's "br#": the bridge "<name>br<ENI index>") */
  suffix?: string;
  /** "link" (a network interface), "address" (an IP or CIDR, or a list of them),
   *  "mac" (the link with this MAC address; of several, the one with the shortest name),
   *  "file" (a host file to read: right "read") or "dir" (a host directory to keep files in: right "write") */
  kind: 'link' | 'address' | 'mac' | 'file' | 'dir';
  ns: Role;
  rights: (Right | PathRight)[];
}

export function validateObjectDecls(decls: unknown, where: string): ObjectDecl[] {
  if (decls === undefined) return [];
  if (!Array.isArray(decls)) throw new Error(`${where}: "objects" must be a list`);
  return decls.map((d, i) => {
    const at = `${where}: objects[${i}]`;
    if (typeof d !== 'object' || d === null) throw new Error(`${at} must be an object`);
    const o = d as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['key', 'name', 'default', 'defaultRoute', 'suffix', 'kind', 'ns', 'rights'].includes(k)) throw new Error(`${at}: unknown setting "${k}"`);
    }
    if ((o.key === undefined) === (o.name === undefined)) throw new Error(`${at} needs exactly one of "key" and "name"`);
    if (!['link', 'address', 'mac', 'file', 'dir'].includes(o.kind as string)) throw new Error(`${at}: "kind" must be "link", "address", "mac", "file" or "dir"`);
    if (o.ns !== 'host' && o.ns !== 'container') throw new Error(`${at}: "ns" must be "host" or "container"`);
    const isPath = o.kind === 'file' || o.kind === 'dir';
    if (isPath && o.ns !== 'host') throw new Error(`${at}: a "${o.kind}" is a host path ("ns": "host")`);
    const allowed: readonly string[] = isPath ? [o.kind === 'file' ? 'read' : 'write'] : RIGHTS;
    if (!Array.isArray(o.rights) || !o.rights.every((r) => allowed.includes(r as string))) {
      throw new Error(`${at}: "rights" must be a list of ${allowed.join(', ')}`);
    }
    if (o.suffix !== undefined && (o.kind !== 'link' || typeof o.suffix !== 'string' || !/^[A-Za-z0-9#_.-]{1,15}$/.test(o.suffix))) {
      throw new Error(`${at}: "suffix" must be up to 15 of A-Z a-z 0-9 _ . - and # (digits), on a link`);
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
  if (plainIPv4(ip) !== null) return ip;
  if (!ip.includes(':') && Address4.isValid(ip)) return new Address4(ip).correctForm();
  return canonicalIPv6(ip);
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
  /** host paths config keys declare: "file:/path" -> rights */
  private readonly paths = new Map<string, Set<PathRight>>();
  private readonly pathKeys = { file: [] as string[], dir: [] as string[] };
  /** declared name patterns (a key's value and a suffix) */
  private readonly patterns: { ns: Role; re: RegExp; rights: readonly Right[] }[] = [];
  /** declared links named by MAC address, resolved against the kernel's links (resolveMacs) */
  private readonly macs: { ns: Role; mac: string; rights: readonly Right[] }[] = [];
  /**
   * (a) links the attachment's ledger holds: every right. Each with the
   * ifindex the kernel gave it in an earlier call, still to be checked
   * against the link of that name now (0: made in this invocation, or
   * checked already, or made before ifindexes were recorded; -1: a removal
   * under way takes it, -2: its own removal is under way, see suspend).
   */
  private readonly made = { host: new Map<string, number>(), container: new Map<string, number>() };
  /** made links found to be gone or someone else's now: why they are not held */
  private readonly stale = new Map<string, string>();
  /** the host's lookup of the ifindex of the link of this name now, null for none (set by the invocation) */
  currentIndex?: (ns: Role, name: string) => number | null;

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
      if (d.defaultRoute && (value === undefined || value === null || value === '')) o.pendingDefaultRoute.push({ ns: d.ns, rights: d.rights as Right[] });
      if (d.kind === 'file' || d.kind === 'dir') o.pathKeys[d.kind].push(d.key ? `"${d.key}"` : `"${d.name}"`);
      for (const v of values) {
        if (typeof v !== 'string' || v === '') continue;
        if (d.kind === 'file' || d.kind === 'dir') o.grantPath(d.kind, v, d.rights as PathRight[]);
        else if (d.kind === 'link' && d.suffix !== undefined) {
          const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          o.patterns.push({ ns: d.ns, rights: d.rights as Right[], re: new RegExp('^' + esc(v) + d.suffix.split('#').map(esc).join('[0-9]+') + '$') });
        } else if (d.kind === 'link') o.grantLink(d.ns, v, d.rights as Right[]);
        else if (d.kind === 'mac') {
          const mac = v.toLowerCase().replace(/-/g, ':');
          if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) o.macs.push({ ns: d.ns, mac, rights: d.rights as Right[] });
        }
        else {
          const ip = canonicalIp(v);
          if (ip) o.declaredAddrs[d.ns].add(ip);
        }
      }
    }
    return o;
  }

  wantsMacs(ns: Role): boolean { return this.macs.some((m) => m.ns === ns); }

  /** Grants the declared rights on the link each declared MAC names (the shortest name of several). */
  resolveMacs(ns: Role, links: { name: string; mac: string }[]): void {
    for (const m of this.macs) {
      if (m.ns !== ns) continue;
      const hit = links.filter((l) => l.mac === m.mac).sort((a, b) => a.name.length - b.name.length)[0];
      if (hit) this.grantLink(ns, hit.name, m.rights);
    }
  }

  grantLink(ns: Role, name: string, rights: readonly Right[]): void {
    let s = this.links[ns].get(name);
    if (!s) this.links[ns].set(name, (s = new Set()));
    for (const r of rights) s.add(r);
  }

  grantPath(kind: 'file' | 'dir', path: string, rights: readonly PathRight[]): void {
    let s = this.paths.get(`${kind}:${path}`);
    if (!s) this.paths.set(`${kind}:${path}`, (s = new Set()));
    for (const r of rights) s.add(r);
  }

  /** null if the runtime's config names `path` under a key declared with this right, else the reason. */
  path(kind: 'file' | 'dir', path: string, right: PathRight): string | null {
    if (this.paths.get(`${kind}:${path}`)?.has(right)) return null;
    const keys = this.pathKeys[kind];
    return `${kind} '${path}' is not named by the runtime's config${keys.length ? ` under the declared key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}` : ' (the manifest declares no ' + kind + ' key)'} with right '${right}'`;
  }

  /**
   * A link this attachment created (or renamed): every right. `index`, the
   * ifindex an earlier call recorded in the ledger, is checked against the
   * link of that name the first time a call acts on it (stillMade); a link
   * made in this invocation has none to check.
   */
  own(ns: Role, name: string, index = 0): void {
    this.stale.delete(`${ns}/${name}`);
    const had = this.made[ns].get(name);
    this.made[ns].set(name, had === 0 ? 0 : index);
  }

  /** The ledger no longer holds it (removed, or gone with a link removed): its rights go too. */
  disown(ns: Role, name: string): void {
    this.made[ns].delete(name);
    this.stale.delete(`${ns}/${name}`);
  }

  /**
   * A removal begun (links.begin-remove) takes this link, or its veth peer
   * with it: the name may be free, and someone else's, before the removal
   * is finished and the ledger forgets it. No right on it meanwhile, but
   * `delete` on the link being removed itself (`own`): finish-remove needs
   * it, and remove and begin-remove of it are EBUSY while it is under way.
   */
  suspend(ns: Role, name: string, own: boolean, why: string): void {
    if (!this.made[ns].has(name)) return;
    this.made[ns].set(name, own && this.made[ns].get(name) !== -1 ? -2 : -1);
    this.stale.set(`${ns}/${name}`, why);
  }

  renamed(ns: Role, from: string, to: string): void {
    const s = this.links[ns].get(from);
    if (s) this.links[ns].set(to, s);
    const m = this.made[ns].get(from);
    if (m !== undefined) { this.made[ns].delete(from); this.made[ns].set(to, m); }
  }

  moved(name: string, to: Role): void {
    const s = this.links.host.get(name);
    if (s) this.links[to].set(name, s);
    // the name is free in the host now; in the container it is this invocation's move
    if (this.made.host.delete(name)) this.made[to].set(name, 0);
  }

  has(ns: Role, name: string, right: Right): boolean {
    if (this.links[ns].get(name)?.has(right)) return true;
    this.resolveDefaultRoute(ns);
    const s = this.links[ns].get(name);
    if (s?.has(right) || (right === 'sysctl' && s?.has('change'))) return true;
    if (this.patterns.some((p) => p.ns === ns && p.re.test(name) && (p.rights.includes(right) || (right === 'sysctl' && p.rights.includes('change'))))) return true;
    return this.made[ns].has(name) && this.stillMade(ns, name, right);
  }

  /**
   * A made link with an ifindex recorded by an earlier call: one lookup, the
   * first time a call acts on it in this invocation. The name stands for the
   * link the attachment made only while the link of that name has its
   * ifindex; else (the kernel removed it with its veth peer or its
   * namespace, an operator deleted it, and someone else's link may have the
   * name now) the rights go. Gone, the call is told so as the kernel would
   * (ENODEV), except that the name, free, may be made anew (the kernel
   * refuses that with EEXIST should another link take it first).
   */
  private stillMade(ns: Role, name: string, right: Right): boolean {
    const want = this.made[ns].get(name)!;
    if (want < 0) return want === -2 && right === 'delete';
    if (want === 0 || !this.currentIndex) return true;
    const now = this.currentIndex(ns, name);
    if (now === want) { this.made[ns].set(name, 0); return true; }
    if (now === null) {
      if (right === 'create') return true;
      throw new KernelError('ENODEV', `${ns} link '${name}' this attachment created (ifindex ${want}) is gone: no such device`, 19);
    }
    this.made[ns].delete(name);
    this.stale.set(`${ns}/${name}`, `${ns} link '${name}' is not the link this attachment created: that one had ifindex ${want}, the link named so now has ${now}`);
    return false;
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
    const stale = this.stale.get(`${ns}/${name}`);
    if (stale) return stale;
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
