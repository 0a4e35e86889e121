// What an operator writes to decide what plugins may do, and where cni-wasm
// keeps its own files. Modelled on Deno's permissions and Extism's manifest:
// a plugin gets nothing it was not granted, and a third-party plugin is
// pinned by the sha256 of its component. The file is validated when it is
// read: an unknown or misspelled key is an error that names it.
import { readFileSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { type ObjectDecl, validateObjectDecls } from './ownership.js';

export type Role = 'host' | 'container';

/** Per-namespace access for links, addresses and routes. Which objects in a
 *  namespace a plugin may change is decided by object rights (ownership.ts). */
export interface NsGrant { host?: boolean; container?: boolean }

export interface Grants {
  /** names: host links the plugin may change without its config naming them
   *  (kept for older policies; prefer "objects" with a default) */
  links?: NsGrant & { names?: string[] };
  addresses?: NsGrant;
  routes?: NsGrant;
  /** keys are slash-form sysctl paths; '*' matches one path component, and
   *  in an interface position (net/ipv4/conf/* /...) only links the
   *  attachment may change.
   *  containerKeys: when given, the only container-side keys allowed (same form).
   *  containerAllowlist: a file in the reference tuning plugin's allowlist
   *  format (/etc/cni/tuning/allowlist.conf: one regular expression a line,
   *  matched against the dotted key, "IFNAME" standing for CNI_IFNAME); when
   *  the file exists, container-side keys must match one line. */
  sysctl?: NsGrant & { keys?: string[]; containerKeys?: string[]; containerAllowlist?: string };
  firewall?: boolean;
  /** port forwards (the portmap interface) to this attachment's addresses */
  portmap?: boolean;
  /** traffic control (qdiscs, filters) on links the attachment may shape (host/capabilities/tc.ts) */
  tc?: NsGrant;
  /** dirs: where the plugin's store may live ("*" = anywhere but cni-wasm's own dirs) */
  store?: boolean | { dirs?: string[] };
  /** types: plugins it may run (["*"] = any component) */
  delegate?: boolean | { types?: string[] };
  /** paths: resolv.conf files the plugin may read the DNS settings of ("*" = any) */
  dns?: boolean | { paths?: string[] };
  log?: boolean;
  /** a meta-plugin's files (host/capabilities/files.ts): paths: env files it may read,
   *  dirs: where it may keep saved documents ("*" = anywhere but cni-wasm's own dirs);
   *  either way only what the runtime's config names under a declared key */
  files?: boolean | { paths?: string[]; dirs?: string[] };
  /** neighbour entries (host: on links the attachment created; container: on CNI_IFNAME) */
  neighbours?: NsGrant;
  /** host objects shared by the attachments of a network, removed with the last (host/capabilities/groups.ts) */
  groups?: boolean;
  /** lending a declared uplink (right 'lend') to a bridge of the attachment, and its layer-2 rewrites (host/capabilities/uplinks.ts) */
  uplinks?: boolean;
  /** the dhcp IPAM plugin's calls to the DHCP daemon (host/capabilities/dhcp.ts) */
  dhcp?: boolean;
  /** packet I/O of the DHCP daemon's client component (only the daemon offers it) */
  dhcpWire?: boolean;
}

export const GRANT_KEYS: Record<keyof Grants, readonly string[] | 'bool'> = {
  links: ['host', 'container', 'names'],
  addresses: ['host', 'container'],
  routes: ['host', 'container'],
  sysctl: ['host', 'container', 'keys', 'containerKeys', 'containerAllowlist'],
  firewall: 'bool',
  portmap: 'bool',
  tc: ['host', 'container'],
  store: ['dirs'],
  delegate: ['types'],
  dns: ['paths'],
  log: 'bool',
  files: ['paths', 'dirs'],
  neighbours: ['host', 'container'],
  groups: 'bool',
  uplinks: 'bool',
  dhcp: 'bool',
  dhcpWire: 'bool',
};

export interface PluginPolicy {
  /** required for third-party components: the component's sha256 */
  sha256?: string;
  /** replaces the bundled plugin's own grants when given */
  grants?: Grants;
  /** replaces the bundled plugin's declared objects when given */
  objects?: ObjectDecl[];
}

export interface Policy {
  auditLog: string;
  stateDir: string;
  /** default directory for host-local's store (the reference's /var/lib/cni/networks) */
  storeDir: string;
  /** extra directories holding third-party `<type>.wasm` components */
  pluginDirs: string[];
  timeoutMs: number;
  /** how long an external plugin run through allowExec (the reference dhcp) may take, on top of timeoutMs */
  execTimeoutMs: number;
  /** plugin types that may be run as external binaries from CNI_PATH (e.g. "dhcp") */
  allowExec: string[];
  plugins: Record<string, PluginPolicy>;
}

export const DEFAULT_POLICY_FILE = '/etc/cni-wasm/policy.json';

export function defaultPolicy(): Policy {
  return {
    auditLog: '/var/log/cni-wasm/audit.log',
    stateDir: '/var/lib/cni-wasm',
    storeDir: '/var/lib/cni/networks',
    pluginDirs: ['/etc/cni-wasm/plugins'],
    timeoutMs: 5000,
    execTimeoutMs: 60000,
    allowExec: [],
    plugins: {},
  };
}

const POLICY_KEYS = Object.keys(defaultPolicy());

/** Reads the policy file; a missing default file means defaults. */
// The last policy validated, by path and text: a resident worker reads the
// file on every call (an edit takes effect at once) but validates it again
// only when its text changed. Nothing mutates a Policy.
let lastPolicy: { path: string; text: string; policy: Policy } | null = null;

export function loadPolicy(file: string | undefined): Policy {
  const path = file ?? process.env.CNI_WASM_POLICY ?? DEFAULT_POLICY_FILE;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path === DEFAULT_POLICY_FILE) return defaultPolicy();
    throw new Error(`cannot read the cni-wasm policy ${path}: ${(e as Error).message}`);
  }
  if (lastPolicy && lastPolicy.path === path && lastPolicy.text === text) return lastPolicy.policy;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`the cni-wasm policy ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const policy = validatePolicy(doc, path);
  lastPolicy = { path, text, policy };
  return policy;
}

function fail(where: string, msg: string): never {
  throw new Error(`the cni-wasm policy ${where}: ${msg}`);
}

export function validateGrants(g: unknown, where: string): Grants {
  if (typeof g !== 'object' || g === null || Array.isArray(g)) fail(where, 'grants must be an object');
  for (const [k, v] of Object.entries(g as object)) {
    const shape = GRANT_KEYS[k as keyof Grants];
    if (!shape) fail(where, `unknown grant "${k}" (known: ${Object.keys(GRANT_KEYS).join(', ')})`);
    if (typeof v === 'boolean') continue;
    if (shape === 'bool') fail(where, `grant "${k}" must be true or false`);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, `grant "${k}" must be true, false or an object`);
    for (const [sk, sv] of Object.entries(v as object)) {
      if (!shape.includes(sk)) fail(where, `unknown setting "${k}.${sk}" (known: ${shape.join(', ')})`);
      const isList = ['names', 'keys', 'dirs', 'types', 'paths', 'containerKeys'].includes(sk);
      if (sk === 'containerAllowlist') { if (typeof sv !== 'string' || !isAbsolute(sv)) fail(where, `"${k}.${sk}" must be an absolute path`); continue; }
      if (isList && !(Array.isArray(sv) && sv.every((x) => typeof x === 'string'))) fail(where, `"${k}.${sk}" must be a list of strings`);
      if (!isList && typeof sv !== 'boolean') fail(where, `"${k}.${sk}" must be true or false`);
    }
  }
  return g as Grants;
}

export function validatePolicy(doc: unknown, path: string): Policy {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail(path, 'must be a JSON object');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!POLICY_KEYS.includes(k)) fail(path, `unknown key "${k}" (known: ${POLICY_KEYS.join(', ')})`);
  const p = { ...defaultPolicy(), ...d } as Policy;
  for (const k of ['auditLog', 'stateDir', 'storeDir'] as const) {
    if (typeof p[k] !== 'string' || !isAbsolute(p[k])) fail(path, `"${k}" must be an absolute path`);
  }
  if (!Array.isArray(p.pluginDirs) || !p.pluginDirs.every((x) => typeof x === 'string' && isAbsolute(x))) fail(path, '"pluginDirs" must be a list of absolute paths');
  if (typeof p.timeoutMs !== 'number' || !(p.timeoutMs > 0) || p.timeoutMs > 600_000) fail(path, '"timeoutMs" must be a number of milliseconds between 1 and 600000');
  if (typeof p.execTimeoutMs !== 'number' || !(p.execTimeoutMs > 0) || p.execTimeoutMs > 600_000) fail(path, '"execTimeoutMs" must be a number of milliseconds between 1 and 600000');
  if (!Array.isArray(p.allowExec) || !p.allowExec.every((x) => typeof x === 'string')) fail(path, '"allowExec" must be a list of plugin types');
  if (typeof p.plugins !== 'object' || p.plugins === null || Array.isArray(p.plugins)) fail(path, '"plugins" must be an object');
  for (const [type, pp] of Object.entries(p.plugins)) {
    const where = `${path}, plugin "${type}"`;
    if (typeof pp !== 'object' || pp === null) fail(where, 'must be an object');
    for (const k of Object.keys(pp)) if (!['sha256', 'grants', 'objects'].includes(k)) fail(where, `unknown key "${k}" (known: sha256, grants, objects)`);
    if (pp.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(pp.sha256)) fail(where, '"sha256" must be 64 lower-case hex digits');
    if (pp.grants !== undefined) validateGrants(pp.grants, where);
    if (pp.objects !== undefined) {
      try { validateObjectDecls(pp.objects, where); } catch (e) { throw new Error(`the cni-wasm policy ${(e as Error).message}`); }
    }
  }
  return p;
}

export function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  const p = pattern.split('/');
  const v = value.split('/');
  if (p.length !== v.length) return false;
  return p.every((seg, i) => seg === '*' || seg === v[i]);
}

// ---- delegation attenuates -------------------------------------------------

function bothNs<T extends NsGrant>(a: T | undefined, b: T | undefined): NsGrant | undefined {
  if (!a || !b) return undefined;
  return { host: !!(a.host && b.host), container: !!(a.container && b.container) };
}

/** Entries allowed by both lists ('*' in one list lets the other's through). */
function bothLists(a: string[] | undefined, b: string[] | undefined): string[] {
  const x = a ?? [], y = b ?? [];
  if (x.includes('*')) return [...y];
  if (y.includes('*')) return [...x];
  return x.filter((v) => y.includes(v));
}

const listOf = (g: boolean | { [k: string]: string[] | undefined } | undefined, k: string): string[] | undefined =>
  g === true ? ['*'] : g ? g[k] : undefined;

/**
 * A delegated plugin runs with what both it and its caller were granted: a
 * plugin cannot reach, through another, anything it could not reach itself.
 */
export function intersectGrants(caller: Grants, callee: Grants): Grants {
  const out: Grants = {};
  const links = bothNs(caller.links, callee.links);
  if (links) out.links = { ...links, names: bothLists(caller.links?.names, callee.links?.names) };
  const addresses = bothNs(caller.addresses, callee.addresses);
  if (addresses) out.addresses = addresses;
  const routes = bothNs(caller.routes, callee.routes);
  if (routes) out.routes = routes;
  const sysctl = bothNs(caller.sysctl, callee.sysctl);
  if (sysctl) {
    out.sysctl = { ...sysctl, keys: bothLists(caller.sysctl?.keys, callee.sysctl?.keys) };
    const ck = [caller.sysctl?.containerKeys, callee.sysctl?.containerKeys].filter((x): x is string[] => !!x);
    if (ck.length) out.sysctl.containerKeys = ck.length === 2 ? bothLists(ck[0], ck[1]) : ck[0];
    // either side's allowlist applies; the callee's is checked (a caller with one delegates to no tuner)
    const al = callee.sysctl?.containerAllowlist ?? caller.sysctl?.containerAllowlist;
    if (al) out.sysctl.containerAllowlist = al;
  }
  if (caller.firewall && callee.firewall) out.firewall = true;
  if (caller.portmap && callee.portmap) out.portmap = true;
  const tc = bothNs(caller.tc, callee.tc);
  if (tc) out.tc = tc;
  if (caller.store && callee.store) out.store = { dirs: bothLists(listOf(caller.store, 'dirs'), listOf(callee.store, 'dirs')) };
  if (caller.delegate && callee.delegate) out.delegate = { types: bothLists(listOf(caller.delegate, 'types'), listOf(callee.delegate, 'types')) };
  if (caller.dns && callee.dns) out.dns = { paths: bothLists(listOf(caller.dns, 'paths'), listOf(callee.dns, 'paths')) };
  if (caller.log && callee.log) out.log = true;
  if (caller.files && callee.files) out.files = { paths: bothLists(listOf(caller.files, 'paths'), listOf(callee.files, 'paths')), dirs: bothLists(listOf(caller.files, 'dirs'), listOf(callee.files, 'dirs')) };
  const neighbours = bothNs(caller.neighbours, callee.neighbours);
  if (neighbours) out.neighbours = neighbours;
  if (caller.groups && callee.groups) out.groups = true;
  if (caller.uplinks && callee.uplinks) out.uplinks = true;
  if (caller.dhcp && callee.dhcp) out.dhcp = true;
  if (caller.dhcpWire && callee.dhcpWire) out.dhcpWire = true;
  return out;
}

// ---- cni-wasm's own files ---------------------------------------------------

/** Paths no grant may ever reach: the ledger and caches (stateDir), the audit log, the components. */
export function protectedDirs(p: Policy): string[] {
  return [p.stateDir, p.auditLog, ...p.pluginDirs].map((d) => normalize(d).replace(/\/+$/, '') || '/');
}

/** Is `path` one of `dirs`, inside one, or does it contain one? */
export function overlaps(path: string, dirs: string[]): string | null {
  const p = normalize(path).replace(/\/+$/, '') || '/';
  for (const d of dirs) {
    const inside = (a: string, b: string) => a === b || a.startsWith(b === '/' ? '/' : b + '/');
    if (inside(p, d) || inside(d, p)) return d;
  }
  return null;
}
