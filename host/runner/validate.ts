// `cni-wasm validate <file|dir>`: the mistakes a runtime would only report
// at ADD time (or never: Go ignores unknown keys), found before any
// container starts. Each config is loaded exactly as the runner (libcni)
// loads it, then every plugin entry is built the way libcni hands it to the
// plugin and checked with the host's own ADD checks (parseNetConf: JSON,
// name, version, type, ipam.type, dns) plus, for the bundled types, the key
// types and ranges their ADD checks, and unknown keys as warnings.
import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { parseNetConf } from '../cni/config.js';
import { Address4, Address6 } from 'ip-address';
import { parseIp } from '../cni/convert.js';
import { CniError } from '../cni/errors.js';
import { SUPPORTED_VERSIONS, compareVersions } from '../cni/versions.js';
import { type ConfList, type PluginConf, confFiles, confListFromConf, confListFromFile, pluginConfFromFile } from './conf.js';
import {
  COMMON_KEYS, DNS_KEYS, IPAM_KEYS, type KeySpec, LIST_KEYS, PLUGIN_KEYS, RANGE_KEYS, ROUTE_KEYS, STATIC_ADDRESS_KEYS, suggest,
} from './keys.js';
import { buildOneConfig } from './runner.js';

/** notes are information (how a type will run) and never count, not even with --strict */
export interface Finding { level: 'error' | 'warning' | 'note'; where: string; message: string }
export interface FileReport { file: string; network?: string; cniVersion?: string; types?: string[]; findings: Finding[] }

export interface TypeResolver {
  /** 'component': runs here; 'exec': an allowed binary; 'binary': a binary the policy does not allow; 'none' */
  (type: string): 'component' | 'exec' | 'binary' | 'none';
  bundled: Set<string>;
}

/** ", did you mean X?" for a type that is a typo of one we know */
function typeGuess(type: string, resolve: TypeResolver): string {
  const known = [...new Set([...resolve.bundled, ...Object.keys(PLUGIN_KEYS), ...Object.keys(IPAM_KEYS), 'dhcp', 'ptp', 'ipvlan', 'vlan', 'host-device'])];
  const g = suggest(type, known);
  return g && g !== type ? ` (did you mean ${g}?)` : '';
}

/** host-local's Range.Canonicalize, with its words: '' when the range is good. */
function rangeError(r: Record<string, unknown>): string {
  const sn = typeof r.subnet === 'string' ? parseIp(r.subnet, true) : null;
  if (!sn || sn.prefix === undefined) return 'IP <nil> not v4 nor v6';
  const bits = sn.family === 4 ? 32 : 128;
  if (sn.prefix > bits - 2) return `Network ${sn.text} too small to allocate from`;
  const A = sn.family === 4 ? Address4 : Address6;
  const net = new A(`${sn.address}/${sn.prefix}`);
  const start = net.startAddress().correctForm();
  if (start !== new A(sn.address).correctForm()) {
    return `Network has host bits set. For a subnet mask of length ${sn.prefix} the network address is ${start}`;
  }
  for (const [key, label] of [['rangeStart', 'RangeStart'], ['rangeEnd', 'RangeEnd']] as const) {
    const v = r[key];
    if (typeof v !== 'string' || v === '') continue;
    const ip = parseIp(v, false);
    if (!ip) continue; // reported as an invalid IP address
    if (ip.family !== sn.family || !new A(ip.address).isInSubnet(net)) return `${label} ${ip.address} not in network ${start}/${sn.prefix}`;
  }
  return '';
}

/** A good range's [start, end] as host-local fills them in (start: network + 1; end: the last, for IPv4 before broadcast). */
function rangeBounds(r: Record<string, unknown>): { family: number; start: bigint; end: bigint; text: string } {
  const sn = parseIp(r.subnet as string, true)!;
  const A = sn.family === 4 ? Address4 : Address6;
  const net = new A(`${sn.address}/${sn.prefix}`);
  const ipOf = (v: unknown) => (typeof v === 'string' && v ? parseIp(v, false) : null);
  const rs = ipOf(r.rangeStart), re = ipOf(r.rangeEnd);
  const start = rs ? new A(rs.address).bigInt() : net.startAddress().bigInt() + 1n;
  const end = re ? new A(re.address).bigInt() : net.endAddress().bigInt() - (sn.family === 4 ? 1n : 0n);
  const show = (n: bigint) => (sn.family === 4 ? Address4.fromBigInt(n).correctForm() : Address6.fromBigInt(n).correctForm());
  return { family: sn.family, start, end, text: `${show(start)}-${show(end)}` };
}
type Bounds = ReturnType<typeof rangeBounds>;
const overlap = (a: Bounds, b: Bounds) => a.family === b.family && a.start <= b.end && b.start <= a.end;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

const WANT: Record<string, string> = { bool: 'true or false', int: 'a whole number', string: 'a string', object: 'an object', array: 'a list' };

class Checker {
  findings: Finding[] = [];
  /** the list's cniVersion, as plugins get it */
  version = '';
  constructor(readonly resolve: TypeResolver) {}
  error(where: string, message: string): void { this.findings.push({ level: 'error', where, message }); }
  warn(where: string, message: string): void { this.findings.push({ level: 'warning', where, message }); }
  note(where: string, message: string): void { this.findings.push({ level: 'note', where, message }); }

  /** Types and ranges of known keys; unknown keys as warnings (with a guess). */
  keys(doc: Record<string, unknown>, known: Record<string, KeySpec>, where: string, owner: string): void {
    const names = Object.keys(known);
    for (const [key, v] of Object.entries(doc)) {
      const spec = known[key];
      const at = where ? `${where}.${key}` : key;
      if (!spec) {
        const guess = suggest(key, names);
        this.warn(at, `unknown key ${key}${guess ? ` (did you mean ${guess}?)` : ''}: ${owner} ignores it`);
        continue;
      }
      if (spec.ignoredByUs) this.warn(at, `${key} is read by the reference ${owner} but not by cni-wasm's, which ignores it`);
      if (v === null || spec.kind === 'any') continue;
      const ok = spec.kind === 'bool' ? typeof v === 'boolean'
        : spec.kind === 'int' ? typeof v === 'number'
          : spec.kind === 'string' ? typeof v === 'string'
            : spec.kind === 'object' ? isObject(v)
              : Array.isArray(v);
      if (!ok) {
        this.error(at, `failed to load netconf: "${key}" must be ${WANT[spec.kind]}, not ${kindOf(v)}`);
        continue;
      }
      if (spec.kind !== 'int') continue;
      const n = v as number;
      // the bridge's own words for a VLAN out of range
      if (owner === 'the bridge plugin' && key === 'vlan' && Number.isInteger(n) && (n < 0 || n > 4094)) {
        this.error(at, `invalid VLAN ID ${n} (must be between 0 and 4094)`);
      } else if (!Number.isInteger(n) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        this.error(at, spec.min !== undefined && spec.max !== undefined
          ? `failed to load netconf: "${key}" must be a whole number from ${spec.min} to ${spec.max}, not ${n}`
          : `failed to load netconf: "${key}" must be a whole number${spec.min !== undefined ? ` of at least ${spec.min}` : ''}, not ${n}`);
      }
    }
  }

  routes(v: unknown, where: string): void {
    if (!Array.isArray(v)) return;
    v.forEach((r, i) => {
      const at = `${where}[${i}]`;
      if (!isObject(r)) { this.error(at, `a route must be an object, not ${kindOf(r)}`); return; }
      this.keys(r, ROUTE_KEYS, at, 'a route');
      if (typeof r.dst !== 'string' || !parseIp(r.dst, true)) this.error(`${at}.dst`, `invalid CIDR address: ${typeof r.dst === 'string' ? r.dst : JSON.stringify(r.dst ?? null)}`);
      if (typeof r.gw === 'string' && !parseIp(r.gw, false)) this.error(`${at}.gw`, `invalid IP address ${JSON.stringify(r.gw)}`);
    });
  }

  ip(v: unknown, where: string, cidr: boolean): void {
    if (typeof v !== 'string' || v === '') return;
    if (!parseIp(v, cidr)) this.error(where, cidr ? `invalid CIDR address: ${v}` : `invalid IP address: ${v}`);
  }

  ipam(ipam: Record<string, unknown>, where: string, owner: string): void {
    const type = typeof ipam.type === 'string' ? ipam.type : '';
    if (type === '') return; // no IPAM: L2 only
    const how = this.resolve(type);
    if (how === 'none') { this.error(`${where}.type`, `unknown IPAM plugin type "${type}"${typeGuess(type, this.resolve)}: not a cni-wasm component and no "${type}" binary in CNI_PATH; ${owner} ADD fails with "failed to find plugin"`); return; }
    if (how === 'binary') this.note(`${where}.type`, `IPAM type "${type}" is a binary in CNI_PATH, not a cni-wasm component: ${owner} may run it only if the policy lists it in "allowExec"`);
    const known = IPAM_KEYS[type];
    if (!known) return;
    this.keys(ipam, known, where, `the ${type} IPAM plugin`);
    this.routes(ipam.routes, `${where}.routes`);
    if (type === 'host-local') {
      for (const f of ['rangeStart', 'rangeEnd', 'gateway']) this.ip(ipam[f], `${where}.${f}`, false);
      this.ip(ipam.subnet, `${where}.subnet`, true);
      // the range sets host-local builds: the top-level subnet first, then "ranges"
      const sets: Array<{ at: string; ranges: unknown[] }> = [];
      if (ipam.subnet) sets.push({ at: where, ranges: [ipam] });
      if (Array.isArray(ipam.ranges)) {
        ipam.ranges.forEach((set, i) => {
          if (!Array.isArray(set)) { this.error(`${where}.ranges[${i}]`, `a range set must be a list of ranges, not ${kindOf(set)}`); return; }
          set.forEach((r, j) => {
            const at = `${where}.ranges[${i}][${j}]`;
            if (!isObject(r)) { this.error(at, `a range must be an object, not ${kindOf(r)}`); return; }
            this.keys(r, RANGE_KEYS, at, 'a host-local range');
            this.ip(r.subnet, `${at}.subnet`, true);
            for (const f of ['rangeStart', 'rangeEnd', 'gateway']) this.ip(r[f], `${at}.${f}`, false);
          });
          sets.push({ at: `${where}.ranges[${i}]`, ranges: set });
        });
      }
      if (sets.length === 0) this.error(where, 'no IP ranges specified');
      const good: Bounds[][] = [];
      sets.forEach((set, i) => {
        if (set.ranges.length === 0) { this.error(set.at, `invalid range set ${i}: empty range set`); return; }
        const bounds: Bounds[] = [];
        for (const r of set.ranges) {
          if (!isObject(r)) return;
          const e = rangeError(r);
          if (e) { this.error(set.at, `invalid range set ${i}: ${e}`); return; }
          bounds.push(rangeBounds(r));
          if (bounds[0]!.family !== bounds[bounds.length - 1]!.family) { this.error(set.at, `invalid range set ${i}: mixed address families`); return; }
        }
        for (let a = 0; a < bounds.length - 1; a++) {
          for (let b = a + 1; b < bounds.length; b++) {
            if (overlap(bounds[a]!, bounds[b]!)) { this.error(set.at, `invalid range set ${i}: subnets ${bounds[a]!.text} and ${bounds[b]!.text} overlap`); return; }
          }
        }
        good[i] = bounds;
      });
      if (good.filter(Boolean).length === sets.length) {
        const per = (f: number) => good.filter((b) => b[0]!.family === f).length;
        if ((per(4) > 1 || per(6) > 1) && compareVersions(this.version || '0.1.0', '0.3.0') < 0) {
          this.error(where, `CNI version ${this.version} does not support more than 1 address per family`);
        }
        for (let a = 0; a < good.length - 1; a++) {
          for (let b = a + 1; b < good.length; b++) {
            if (good[a]!.some((x) => good[b]!.some((y) => overlap(x, y)))) this.error(where, `range set ${a} overlaps with ${b}`);
          }
        }
      }
    }
    if (type === 'static' && Array.isArray(ipam.addresses)) {
      ipam.addresses.forEach((a, i) => {
        const at = `${where}.addresses[${i}]`;
        if (!isObject(a)) { this.error(at, `an address must be an object, not ${kindOf(a)}`); return; }
        this.keys(a, STATIC_ADDRESS_KEYS, at, 'a static address');
        if (typeof a.address !== 'string' || !parseIp(a.address, true)) this.error(`${at}.address`, `the 'address' field is expected to be in CIDR notation, got: '${typeof a.address === 'string' ? a.address : ''}'`);
        this.ip(a.gateway, `${at}.gateway`, false);
      });
    }
    if (type === 'static' && isObject(ipam.dns)) this.keys(ipam.dns, DNS_KEYS, `${where}.dns`, 'dns');
  }

  plugin(list: ConfList, p: PluginConf, where: string): void {
    const doc = p.doc;
    const type = p.type;
    const how = this.resolve(type);
    if (how === 'none') this.error(`${where}.type`, `unknown plugin type "${type}"${typeGuess(type, this.resolve)}: not a cni-wasm component and no "${type}" binary in CNI_PATH`);
    else if (how === 'binary') this.note(`${where}.type`, `"${type}" is a binary in CNI_PATH, not a cni-wasm component: runtimes exec it directly; cni-wasm add runs it only if the policy lists it in "allowExec"`);
    // the host's own ADD checks, on the config as libcni builds it
    try {
      parseNetConf(buildOneConfig(list, p, null, null), { command: 'ADD' });
    } catch (e) {
      // the list's name and version are reported once, for the list
      const listLevel = /^(unsupported CNI version|missing network name)/.test(e instanceof CniError ? e.msg : '');
      if (e instanceof CniError && !listLevel) this.error(where, `${e.msg}${e.details ? `; ${e.details}` : ''} (code ${e.code})`);
      else if (!(e instanceof CniError)) throw e;
    }
    const own = PLUGIN_KEYS[type];
    if (own) this.keys(doc, { ...COMMON_KEYS, ...own }, where, `the ${type} plugin`);
    if (isObject(doc.dns)) this.keys(doc.dns, DNS_KEYS, `${where}.dns`, 'dns');
    if (isObject(doc.ipam)) this.ipam(doc.ipam, `${where}.ipam`, `the ${type} plugin's`);
    else if ((type === 'host-local' || type === 'static') && !doc.ipam) this.error(where, `IPAM config missing 'ipam' key`);
    if (type === 'bridge' && doc.isDefaultGateway === true && doc.isGateway === false) {
      this.warn(`${where}.isDefaultGateway`, 'isDefaultGateway implies isGateway (the bridge sets both)');
    }
  }

  list(list: ConfList, single: boolean): void {
    const v = list.cniVersion;
    this.version = v;
    if (v === '') {
      this.warn('cniVersion', 'no cniVersion: plugins read it as 0.1.0, which has no CHECK and gets no cached result on DEL; set "cniVersion": "1.0.0" (or the newest your runtime speaks)');
    } else if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
      let why = `supported versions are ${SUPPORTED_VERSIONS.join(', ')}`;
      try { if (compareVersions(v, '1.1.0') > 0) why = `newer than 1.1.0, the newest cni-wasm speaks; ${why}`; } catch { /* invalid */ }
      this.error('cniVersion', `unsupported CNI version "${v}": ${why}`);
    }
    if (!single) {
      const top = JSON.parse(list.bytes.toString('utf8')) as Record<string, unknown>;
      this.keys(top, LIST_KEYS, '', 'a configuration list');
    }
    list.plugins.forEach((p, i) => this.plugin(list, p, single ? '' : `plugins[${i}]`));
  }
}

function tidy(findings: Finding[]): Finding[] {
  return findings.map((f) => ({ ...f, where: f.where.replace(/^\./, '') }));
}

export function validateFile(file: string, resolve: TypeResolver): FileReport {
  const c = new Checker(resolve);
  const report: FileReport = { file, findings: [] };
  let list: ConfList;
  const single = extname(file) !== '.conflist';
  try {
    if (!single) list = confListFromFile(file);
    else {
      const p = pluginConfFromFile(file);
      list = confListFromConf(p, file);
    }
  } catch (e) {
    let msg = (e as Error).message.replace(`${file}: `, '');
    if (single && /missing 'type'/.test(msg)) msg += ` (a file with "plugins" is a configuration list: name it *.conflist)`;
    c.error('', msg);
    report.findings = tidy(c.findings);
    return report;
  }
  report.network = list.name;
  report.cniVersion = list.cniVersion;
  report.types = list.plugins.map((p) => p.type);
  if (list.name === '') c.error('name', 'missing network name: runtimes look networks up by "name", so this file is never used');
  c.list(list, single);
  report.findings = tidy(c.findings);
  return report;
}

/** A file, or every config in a directory (in libcni's order, with shadowed names reported). */
export function validatePath(path: string, resolve: TypeResolver): FileReport[] {
  if (!existsSync(path)) return [{ file: path, findings: [{ level: 'error', where: '', message: 'no such file or directory' }] }];
  if (!statSync(path).isDirectory()) return [validateFile(path, resolve)];
  const files = [...confFiles(path, ['.conflist']), ...confFiles(path, ['.conf', '.json'])];
  if (files.length === 0) return [{ file: path, findings: [{ level: 'error', where: '', message: `no net configurations found in ${path} (*.conflist, *.conf, *.json)` }] }];
  const reports = files.map((f) => validateFile(f, resolve));
  const seen = new Map<string, string>();
  for (const r of reports) {
    if (!r.network) continue;
    const first = seen.get(r.network);
    if (first) r.findings.push({ level: 'warning', where: 'name', message: `network "${r.network}" is also defined in ${first}, which runtimes use instead of this file` });
    else seen.set(r.network, r.file);
  }
  // libcni stops at the first file that does not parse, whatever network is asked for
  for (const r of reports) {
    const e = r.findings.find((f) => f.level === 'error' && f.where === '' && r.network === undefined);
    if (e) e.message += '; runtimes stop their lookup at this file, so networks defined in files sorted after it cannot be loaded either';
  }
  return reports;
}
