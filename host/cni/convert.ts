// CNI results in every spec version, and conversion between them.
//
// Every result is decoded into one version-neutral model and encoded again
// in the target version, which reproduces libcni's converters (types 020,
// 040, 100): up-conversion loses nothing, down-conversion drops what the
// older shape cannot hold. Output keys follow libcni's field order so our
// stdout reads like the reference plugins'.

import { Address4, Address6 } from 'ip-address';
import { CniError, CniErrorCode, decodeJson } from './errors.js';
import { type CniVersion, type ResultFamily, CURRENT_VERSION, isSupportedVersion, resultFamily, SUPPORTED_VERSIONS } from './versions.js';

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Interface {
  name: string;
  mac?: string;
  /** 1.x only. */
  mtu?: number;
  sandbox?: string;
  /** 1.x only. */
  socketPath?: string;
  /** 1.x only. */
  pciID?: string;
}

export interface IpConfig020 {
  ip: string;
  gateway?: string;
  routes?: Route[];
}

/** 0.1.0 and 0.2.0. */
export interface Result020 {
  cniVersion: string;
  ip4?: IpConfig020;
  ip6?: IpConfig020;
  dns: Dns;
}

export interface IpConfig040 {
  version: '4' | '6';
  interface?: number;
  address: string;
  gateway?: string;
}

/** 0.3.0, 0.3.1 and 0.4.0. */
export interface Result040 {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig040[];
  routes?: Route[];
  dns: Dns;
}

export interface IpConfig100 {
  interface?: number;
  address: string;
  gateway?: string;
}

/** 1.0.0 and 1.1.0. */
export interface Result100 {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig100[];
  routes?: Route[];
  dns?: Dns;
}

export type CniResult = Result020 | Result040 | Result100;

// ---------------------------------------------------------------- addresses

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  /** Canonical text (RFC 5952 for IPv6), with "/prefix" when one was given. */
  text: string;
  /** The address without its prefix. */
  address: string;
  prefix?: number;
}

/** A dotted quad as ip-address prints it (each part 0-255, no leading zero): its own canonical form. */
const PLAIN_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** The canonical form of a plain IPv4 address without asking ip-address (~8 us a parse), or null. */
export const plainIPv4 = (s: string): string | null => (PLAIN_V4.test(s) ? s : null);

/** IPv6 texts already canonicalized (~30 us each by ip-address): gateways and routes repeat every call. */
const v6Seen = new Map<string, string | null>();

/** RFC 5952 text of an IPv6 address (ip-address's correctForm), or null when it is not one. */
export function canonicalIPv6(s: string): string | null {
  let c = v6Seen.get(s);
  if (c !== undefined) return c;
  c = Address6.isValid(s) ? new Address6(s).correctForm() : null;
  if (v6Seen.size >= 256) v6Seen.clear(); // bounded: a hostile result's addresses never pile up
  if (s.length <= 64) v6Seen.set(s, c);
  return c;
}

/**
 * Parse an IP address, or with `withPrefix` an address in CIDR notation
 * (host bits kept, as libcni keeps them). Zones ("%eth0") are refused: no
 * CNI field carries one. Returns null when the text is not valid.
 */
export function parseIp(text: string, withPrefix: boolean): ParsedIp | null {
  let host = text;
  let prefix: number | undefined;
  if (withPrefix) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
    if (!m) return null;
    host = m[1]!;
    prefix = Number(m[2]);
  } else if (text.includes('/')) {
    return null;
  }
  if (host.includes('%')) return null;
  let family: Family;
  let address: string;
  let v6: string | null = null;
  if (plainIPv4(host) !== null) {
    family = 4;
    address = host;
  } else if (!host.includes(':') && Address4.isValid(host)) { // (never with a colon: spares v6 a thrown AddressError)
    family = 4;
    address = new Address4(host).correctForm();
  } else if ((v6 = canonicalIPv6(host)) !== null) {
    family = 6;
    address = v6;
  } else {
    return null;
  }
  if (prefix !== undefined && prefix > (family === 4 ? 32 : 128)) return null;
  return { family, address, prefix, text: prefix === undefined ? address : `${address}/${prefix}` };
}

// ------------------------------------------------------------------ reading

type Json = Record<string, unknown>;

function at(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function invalid(path: string, problem: string): never {
  throw new CniError(CniErrorCode.DecodingFailure, 'invalid CNI result', `${path}: ${problem}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(v: unknown, path: string): Json {
  if (!isObject(v)) invalid(path, 'must be a JSON object');
  return v;
}

function list(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) invalid(path, 'must be a JSON array');
  return v;
}

function optString(o: Json, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') invalid(at(path, key), 'must be a string');
  return v;
}

function optUint(o: Json, key: string, path: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) invalid(at(path, key), 'must be a non-negative integer');
  return v;
}

function optStringList(o: Json, key: string, path: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const items = list(v, at(path, key));
  items.forEach((s, i) => {
    if (typeof s !== 'string') invalid(`${at(path, key)}[${i}]`, 'must be a string');
  });
  return items as string[];
}

function cidrField(o: Json, key: string, path: string): ParsedIp {
  const v = o[key];
  if (v === undefined || v === null) invalid(at(path, key), 'is required');
  const ip = typeof v === 'string' ? parseIp(v, true) : null;
  if (!ip) invalid(at(path, key), `${JSON.stringify(v)} is not an IP address in CIDR notation`);
  return ip;
}

function optIpField(o: Json, key: string, path: string, family: Family): string | undefined {
  const v = optString(o, key, path);
  if (v === undefined || v === '') return undefined;
  const ip = parseIp(v, false);
  if (!ip) invalid(at(path, key), `"${v}" is not an IP address`);
  // 0.3.x spec: every address in one entry belongs to the entry's family.
  if (ip.family !== family) invalid(at(path, key), `"${v}" is IPv${ip.family} but the entry is IPv${family}`);
  return ip.text;
}

interface ModelIp {
  family: Family;
  interface?: number;
  address: string;
  gateway?: string;
}

interface Model {
  interfaces: Interface[];
  ips: ModelIp[];
  routes: Route[];
  dns: Dns;
}

function readDns(v: unknown, path: string): Dns {
  if (v === undefined || v === null) return {};
  const o = object(v, path);
  const dns: Dns = {};
  const nameservers = optStringList(o, 'nameservers', path);
  const domain = optString(o, 'domain', path);
  const search = optStringList(o, 'search', path);
  const options = optStringList(o, 'options', path);
  if (nameservers?.length) dns.nameservers = [...nameservers];
  if (domain) dns.domain = domain;
  if (search?.length) dns.search = [...search];
  if (options?.length) dns.options = [...options];
  return dns;
}

function readRoute(v: unknown, path: string, family?: Family): Route {
  const o = object(v, path);
  const dst = cidrField(o, 'dst', path);
  if (family !== undefined && dst.family !== family) invalid(`${path}.dst`, `"${dst.text}" is not IPv${family}`);
  const route: Route = { dst: dst.text };
  const gw = optIpField(o, 'gw', path, dst.family);
  if (gw !== undefined) route.gw = gw;
  for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const n = optUint(o, key, path);
    // table and scope are meaningful at 0 (libcni keeps them as pointers).
    if (n !== undefined && (n !== 0 || key === 'table' || key === 'scope')) route[key] = n;
  }
  return route;
}

function readRoutes(o: Json, key: string, path: string, family?: Family): Route[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  return list(v, at(path, key)).map((r, i) => readRoute(r, `${at(path, key)}[${i}]`, family));
}

function readInterface(v: unknown, path: string): Interface {
  const o = object(v, path);
  const name = optString(o, 'name', path);
  if (name === undefined) invalid(`${path}.name`, 'is required');
  const intf: Interface = { name };
  const mac = optString(o, 'mac', path);
  const mtu = optUint(o, 'mtu', path);
  const sandbox = optString(o, 'sandbox', path);
  const socketPath = optString(o, 'socketPath', path);
  const pciID = optString(o, 'pciID', path);
  if (mac) intf.mac = mac;
  if (mtu) intf.mtu = mtu;
  if (sandbox) intf.sandbox = sandbox;
  if (socketPath) intf.socketPath = socketPath;
  if (pciID) intf.pciID = pciID;
  return intf;
}

function read020(o: Json): Model {
  const model: Model = { interfaces: [], ips: [], routes: [], dns: readDns(o.dns, 'dns') };
  for (const [key, family] of [['ip4', 4], ['ip6', 6]] as const) {
    if (o[key] === undefined || o[key] === null) continue;
    const c = object(o[key], key);
    const ip = cidrField(c, 'ip', key);
    if (ip.family !== family) invalid(`${key}.ip`, `"${ip.text}" is not IPv${family}`);
    const entry: ModelIp = { family, address: ip.text };
    const gateway = optIpField(c, 'gateway', key, family);
    if (gateway !== undefined) entry.gateway = gateway;
    model.ips.push(entry);
    model.routes.push(...readRoutes(c, 'routes', key, family));
  }
  return model;
}

// 0.3.x/0.4.0 and 1.x differ only in the ips' "version" key (and the
// interface fields 1.x added), so one reader serves both.
function readList(o: Json, family: ResultFamily): Model {
  const interfaces =
    o.interfaces === undefined || o.interfaces === null
      ? []
      : list(o.interfaces, 'interfaces').map((v, i) => readInterface(v, `interfaces[${i}]`));
  const ips =
    o.ips === undefined || o.ips === null
      ? []
      : list(o.ips, 'ips').map((v, i): ModelIp => {
          const path = `ips[${i}]`;
          const c = object(v, path);
          const address = cidrField(c, 'address', path);
          // 1.x dropped "version"; a stray one there is ignored, as libcni does.
          if (family === '040') {
            const version = optString(c, 'version', path);
            if (version !== undefined && version !== '4' && version !== '6') invalid(`${path}.version`, 'must be "4" or "6"');
            if (version !== undefined && Number(version) !== address.family) {
              invalid(`${path}.version`, `is "${version}" but the address ${address.text} is IPv${address.family}`);
            }
          }
          const entry: ModelIp = { family: address.family, address: address.text };
          const index = optUint(c, 'interface', path);
          if (index !== undefined) {
            if (index >= interfaces.length) {
              invalid(`${path}.interface`, `index ${index} is out of range: the result lists ${interfaces.length} interface(s)`);
            }
            entry.interface = index;
          }
          const gateway = optIpField(c, 'gateway', path, address.family);
          if (gateway !== undefined) entry.gateway = gateway;
          return entry;
        });
  return { interfaces, ips, routes: readRoutes(o, 'routes', ''), dns: readDns(o.dns, 'dns') };
}

function sourceVersion(o: Json, fallback?: string): string {
  if (typeof o.cniVersion === 'string' && o.cniVersion !== '') return o.cniVersion;
  if (o.cniVersion !== undefined && o.cniVersion !== null && o.cniVersion !== '') invalid('cniVersion', 'must be a string');
  if (fallback !== undefined) return fallback;
  // No version at all: go by the shape, newest shape first.
  if ('ip4' in o || 'ip6' in o) return '0.2.0';
  if (Array.isArray(o.ips) && o.ips.some((ip) => isObject(ip) && 'version' in ip)) return '0.4.0';
  return CURRENT_VERSION;
}

function requireVersion(v: string, what: string): CniVersion {
  if (!isSupportedVersion(v)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `unsupported CNI version "${v}" ${what}`,
      `supported versions are ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  return v;
}

function decode(result: unknown, fallbackVersion?: string): { version: CniVersion; model: Model } {
  const o = object(result, 'result');
  const version = requireVersion(sourceVersion(o, fallbackVersion), 'in result');
  const family = resultFamily(version);
  return { version, model: family === '020' ? read020(o) : readList(o, family) };
}

// ------------------------------------------------------------------ writing

function copyDns(dns: Dns): Dns {
  const out: Dns = {};
  if (dns.nameservers) out.nameservers = [...dns.nameservers];
  if (dns.domain) out.domain = dns.domain;
  if (dns.search) out.search = [...dns.search];
  if (dns.options) out.options = [...dns.options];
  return out;
}

function copyRoute(r: Route): Route {
  const out: Route = { dst: r.dst };
  if (r.gw !== undefined) out.gw = r.gw;
  if (r.mtu !== undefined) out.mtu = r.mtu;
  if (r.advmss !== undefined) out.advmss = r.advmss;
  if (r.priority !== undefined) out.priority = r.priority;
  if (r.table !== undefined) out.table = r.table;
  if (r.scope !== undefined) out.scope = r.scope;
  return out;
}

function write020(m: Model, version: CniVersion, fromList: boolean): Result020 {
  const out: Omit<Result020, 'dns'> = { cniVersion: version };
  // 0.2.0 holds one address per family: libcni keeps the first of each.
  for (const [key, family] of [['ip4', 4], ['ip6', 6]] as const) {
    const ip = m.ips.find((i) => i.family === family);
    if (!ip) continue;
    const c: IpConfig020 = { ip: ip.address };
    if (ip.gateway !== undefined) c.gateway = ip.gateway;
    // Routes go with the address of their family; with none, they are lost.
    const routes = m.routes
      .filter((r) => parseIp(r.dst, true)?.family === family)
      .map((r) => (r.gw !== undefined ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
    if (routes.length) c.routes = routes;
    out[key] = c;
  }
  // libcni refuses to turn an address-less 0.3+ result into 0.1/0.2, but
  // takes one that is 0.1/0.2 already (an empty prevResult on DEL).
  if (fromList && !out.ip4 && !out.ip6) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `cannot convert result to CNI version ${version}`,
      'results before 0.3.0 must carry at least one IP address and this one has none; use cniVersion 0.3.0 or later',
    );
  }
  // 0.x results always print "dns", even empty, as libcni's structs do.
  return { ...out, dns: copyDns(m.dns) };
}

function writeList(m: Model, version: CniVersion, family: '040' | '100'): Result040 | Result100 {
  const out: Result040 | Result100 = { cniVersion: version };
  if (m.interfaces.length) {
    out.interfaces = m.interfaces.map((i) => {
      // 0.3.x/0.4.0 interfaces have only name, mac and sandbox.
      const intf: Interface = { name: i.name };
      if (i.mac !== undefined) intf.mac = i.mac;
      if (family === '100' && i.mtu !== undefined) intf.mtu = i.mtu;
      if (i.sandbox !== undefined) intf.sandbox = i.sandbox;
      if (family === '100' && i.socketPath !== undefined) intf.socketPath = i.socketPath;
      if (family === '100' && i.pciID !== undefined) intf.pciID = i.pciID;
      return intf;
    });
  }
  if (m.ips.length) {
    out.ips = m.ips.map((ip) => {
      const c: Partial<IpConfig040> = {};
      if (family === '040') c.version = ip.family === 4 ? '4' : '6';
      if (ip.interface !== undefined) c.interface = ip.interface;
      c.address = ip.address;
      if (ip.gateway !== undefined) c.gateway = ip.gateway;
      return c as IpConfig040;
    });
  }
  if (m.routes.length) out.routes = m.routes.map(copyRoute);
  const dns = copyDns(m.dns);
  // Always printed, empty or not, as the reference's Go types do (a struct
  // field is never omitted by omitempty).
  out.dns = dns;
  return out;
}

function encode(m: Model, version: CniVersion, fromList: boolean): CniResult {
  const family = resultFamily(version);
  return family === '020' ? write020(m, version, fromList) : writeList(m, version, family);
}

// ------------------------------------------------------------------- public

/**
 * Convert a result to `toVersion`. The source version is the result's
 * cniVersion; a result without one is judged by its shape (ip4/ip6 means
 * 0.2.0, ips carrying "version" mean 0.4.0, otherwise the newest). The output
 * is always rebuilt, so unknown keys are dropped and addresses canonical.
 *
 * Throws CniError 1 for an unsupported version or a result the target cannot
 * express (before 0.3.0 a result needs an IP), 6 for a malformed result.
 */
export function convertResult(result: object, toVersion: string): CniResult {
  const target = requireVersion(toVersion, 'requested for result');
  const { version, model } = decode(result);
  return encode(model, target, resultFamily(version) !== '020');
}

/**
 * Parse and validate a result given in a request whose cniVersion is
 * `version` (a prevResult). As libcni does, a result without cniVersion takes
 * the request's, and its version must be of the same result shape as the
 * request's (0.1/0.2, 0.3/0.4 or 1.x); within that it keeps its own version.
 */
export function parseResult(json: string | object, version: string): CniResult {
  const confVersion = requireVersion(version, 'for result');
  const value = typeof json === 'string' ? decodeJson(json, 'CNI result') : json;
  const { version: own, model } = decode(value, confVersion);
  if (resultFamily(own) !== resultFamily(confVersion)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `result version ${own} does not match configuration version ${confVersion}`,
      `a ${confVersion} request takes results of versions ${SUPPORTED_VERSIONS.filter((v) => resultFamily(v) === resultFamily(confVersion)).join(', ')}`,
    );
  }
  return encode(model, own, false);
}
