// The network configuration a runtime writes on a plugin's stdin.
//
// Checks run in libcni's order (JSON, then name, then version, then the
// command's version gate, then the rest) so a broken config gets the same
// error code from us as from a reference plugin. The returned NetConf is the
// whole document: plugins get every key, known or not.

import { type CniResult, type Dns, parseIp, parseResult } from './convert.js';
import { type Invocation, cniArg } from './env.js';
import { CniError, CniErrorCode, decodeJson } from './errors.js';
import { type CniVersion, checkCommandVersion, negotiate } from './versions.js';

export interface IpamConf {
  /** Absent or '' means no IPAM (e.g. an L2-only bridge). */
  type?: string;
  [key: string]: unknown;
}

export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export const VALID_ATTACHMENTS = 'cni.dev/valid-attachments';
// The spec's first GC text used this name; libcni still sends both.
const LEGACY_ATTACHMENTS = 'cni.dev/attachments';

export interface NetConf {
  /** Filled in as "0.1.0" when the document has none, as libcni reads it. */
  cniVersion: CniVersion;
  name: string;
  type: string;
  ipam?: IpamConf;
  dns?: Dns;
  args?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  capabilities?: Record<string, boolean>;
  /** Validated and in canonical form, still in its own version. */
  prevResult?: CniResult;
  /** GC only; always an array after parsing. */
  [VALID_ATTACHMENTS]?: GcAttachment[];
  [key: string]: unknown;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

function invalid(msg: string, details = ''): never {
  throw new CniError(CniErrorCode.InvalidNetworkConfig, msg, details);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optObject(doc: Record<string, unknown>, key: string): void {
  if (doc[key] !== undefined && !isObject(doc[key])) invalid(`"${key}" must be a JSON object`);
}

// Types name executables (and here, components): nothing that could walk a path.
function checkPluginType(value: unknown, key: string): void {
  if (typeof value !== 'string' || value === '') invalid(`missing or empty "${key}"`, `"${key}" names the plugin to run, e.g. "bridge"`);
  if (/[/\\\0]/.test(value) || value === '.' || value === '..') {
    invalid(`invalid "${key}" "${value}"`, 'a plugin type is a file name: no "/", "\\" or NUL, and not "." or ".."');
  }
}

function checkDns(v: unknown): void {
  if (v === undefined) return;
  if (!isObject(v)) invalid('"dns" must be a JSON object');
  for (const key of ['nameservers', 'search', 'options']) {
    const list = v[key];
    if (list !== undefined && (!Array.isArray(list) || !list.every((s) => typeof s === 'string'))) {
      invalid(`"dns.${key}" must be a list of strings`);
    }
  }
  if (v.domain !== undefined && typeof v.domain !== 'string') invalid('"dns.domain" must be a string');
}

function readAttachments(doc: Record<string, unknown>): GcAttachment[] {
  const key = VALID_ATTACHMENTS in doc ? VALID_ATTACHMENTS : LEGACY_ATTACHMENTS in doc ? LEGACY_ATTACHMENTS : undefined;
  // Without the list, GC would treat every attachment as stale; refuse rather
  // than release everything because a runtime left the key out.
  if (key === undefined) invalid(`GC needs "${VALID_ATTACHMENTS}"`, 'list the attachments that are still in use (an empty list means none)');
  const v = doc[key];
  // libcni sends null for an empty Go slice.
  if (v === null) return [];
  if (!Array.isArray(v)) invalid(`"${key}" must be a list`);
  return v.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      invalid(`"${key}[${i}]" must be an object with string "containerID" and "ifname"`);
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

/**
 * Decode and validate the stdin configuration of a request. Throws CniError:
 * 6 for JSON that does not decode, 7 for an invalid configuration, 1 for an
 * unsupported cniVersion or a command the version does not have.
 */
export function parseNetConf(stdin: string, inv: Pick<Invocation, 'command'>): NetConf {
  const doc = decodeJson(stdin, 'network configuration on stdin');
  if (!isObject(doc)) throw new CniError(CniErrorCode.DecodingFailure, 'network configuration on stdin must be a JSON object');

  if (doc.name === undefined || doc.name === '') invalid('missing network name');
  if (typeof doc.name !== 'string') invalid('"name" must be a string');
  if (!NAME_RE.test(doc.name)) {
    invalid('invalid characters found in network name', `"${doc.name}": a name starts with a letter or digit, followed by letters, digits, "_", "." or "-"`);
  }

  if (doc.cniVersion !== undefined && typeof doc.cniVersion !== 'string') invalid('"cniVersion" must be a string');
  const version = negotiate(doc.cniVersion);
  checkCommandVersion(inv.command, version);

  checkPluginType(doc.type, 'type');
  optObject(doc, 'ipam');
  if (isObject(doc.ipam) && doc.ipam.type !== undefined && doc.ipam.type !== '') checkPluginType(doc.ipam.type, 'ipam.type');
  checkDns(doc.dns);
  optObject(doc, 'args');
  optObject(doc, 'runtimeConfig');
  optObject(doc, 'capabilities');
  if (isObject(doc.capabilities) && !Object.values(doc.capabilities).every((b) => typeof b === 'boolean')) {
    invalid('"capabilities" must map capability names to true or false');
  }

  const conf = { ...doc, cniVersion: version } as NetConf;

  if (doc.prevResult === null) delete conf.prevResult;
  else if (doc.prevResult !== undefined) {
    try {
      if (!isObject(doc.prevResult)) invalid('"prevResult" must be a JSON object');
      conf.prevResult = parseResult(doc.prevResult, version);
    } catch (e) {
      // DEL must clean up whatever the runtime cached: a prevResult it cannot
      // use (malformed, or of another version) is dropped, not fatal.
      if (inv.command === 'DEL') delete conf.prevResult;
      // A malformed prevResult is a bad config; a version mismatch stays code 1.
      else if (e instanceof CniError && e.code === CniErrorCode.DecodingFailure) invalid(`invalid prevResult: ${e.msg}`, e.details);
      else throw e;
    }
  }

  if (inv.command === 'GC') conf[VALID_ATTACHMENTS] = readAttachments(doc);
  return conf;
}

export interface RequestedIp {
  /** Canonical address, without any prefix length. */
  address: string;
  family: 4 | 6;
  source: 'CNI_ARGS' | 'args' | 'runtimeConfig';
}

/**
 * The addresses a request asks IPAM for, as host-local gathers them: CNI_ARGS
 * "IP=", then `args.cni.ips`, then `runtimeConfig.ips` (the "ips"
 * capability). All are requested, none overrides another; a prefix length is
 * accepted and dropped, and repeats keep their first source.
 */
export function requestedIps(conf: NetConf, inv: Pick<Invocation, 'args'>): RequestedIp[] {
  const out: RequestedIp[] = [];
  const add = (text: string, source: RequestedIp['source'], where: string) => {
    const ip = parseIp(text, text.includes('/'));
    if (!ip) {
      const code = source === 'CNI_ARGS' ? CniErrorCode.InvalidEnvironment : CniErrorCode.InvalidNetworkConfig;
      throw new CniError(code, `invalid IP address in ${where}`, `"${text}" is neither an IP address nor one in CIDR notation`);
    }
    if (!out.some((r) => r.address === ip.address)) out.push({ address: ip.address, family: ip.family, source });
  };
  const addList = (v: unknown, source: RequestedIp['source'], where: string) => {
    if (v === undefined || v === null) return;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) invalid(`"${where}" must be a list of IP address strings`);
    for (const s of v) if (s !== '') add(s, source, where);
  };

  const fromEnv = cniArg(inv, 'IP');
  if (fromEnv) add(fromEnv, 'CNI_ARGS', 'CNI_ARGS IP');
  const cni = isObject(conf.args) ? conf.args.cni : undefined;
  if (cni !== undefined && cni !== null && !isObject(cni)) invalid('"args.cni" must be a JSON object');
  addList(isObject(cni) ? cni.ips : undefined, 'args', 'args.cni.ips');
  addList(conf.runtimeConfig?.ips, 'runtimeConfig', 'runtimeConfig.ips');
  return out;
}
