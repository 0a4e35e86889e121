// Network configuration lookup as libcni does it (libcni/conf.go), so
// `cni-wasm add mynet ...` picks the same file and builds the same list as
// cnitool, podman or containerd would from the same directory:
//   1. every *.conflist in the dir, sorted by name; the first whose "name"
//      matches wins (its inline "plugins", then <dir>/<name>/*.conf unless
//      loadOnlyInlinedPlugins);
//   2. else every *.conf and *.json, sorted; the first whose "name" matches
//      is turned into a one-plugin list.
// A file that does not parse stops the search with an error, as in libcni,
// even when it is not the network asked for.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CniError, decodeJson } from '../cni/errors.js';
import { CURRENT_VERSION, compareVersions } from '../cni/versions.js';
import { goMarshal } from './gojson.js';

/** An error of the runner itself (not a plugin's): printed as is, exit 1. */
export class RunnerError extends Error {}

/** One entry of a list: its JSON as written, and the fields libcni reads. */
export interface PluginConf {
  /** the entry's JSON bytes (libcni re-marshals inline entries: sorted keys) */
  bytes: Buffer;
  doc: Record<string, unknown>;
  type: string;
  name: string;
  capabilities: Record<string, boolean>;
}

export interface ConfList {
  name: string;
  /** as libcni settles it (cniVersions considered); '' when none is given */
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: PluginConf[];
  /** the list's bytes, as libcni caches them */
  bytes: Buffer;
  /** the file it came from */
  file?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function goType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return '[]interface {}';
  if (typeof v === 'object') return 'map[string]interface {}';
  if (typeof v === 'number') return 'float64';
  return typeof v;
}

function decode(bytes: Buffer, what: string): unknown {
  try {
    return decodeJson(bytes.toString('utf8'), what);
  } catch (e) {
    if (e instanceof CniError) throw new RunnerError(`${e.msg}${e.details ? `: ${e.details}` : ''}`);
    throw e;
  }
}

/** libcni's NetworkPluginConfFromBytes: an object with a string "type". */
export function pluginConfFromBytes(bytes: Buffer, doc?: unknown): PluginConf {
  const d = doc === undefined ? decode(bytes, 'plugin configuration') : doc;
  const fail = (why: string): never => { throw new RunnerError(`error parsing configuration: ${why}`); };
  if (!isObject(d)) fail(`the configuration must be a JSON object, not ${goType(d)}`);
  const o = d as Record<string, unknown>;
  for (const k of ['cniVersion', 'name', 'type']) {
    if (o[k] !== undefined && o[k] !== null && typeof o[k] !== 'string') fail(`"${k}" must be a string, not ${goType(o[k])}`);
  }
  if (o.capabilities !== undefined && o.capabilities !== null) {
    if (!isObject(o.capabilities) || !Object.values(o.capabilities).every((b) => typeof b === 'boolean')) {
      fail('"capabilities" must map capability names to true or false');
    }
  }
  if (o.ipam !== undefined && o.ipam !== null && !isObject(o.ipam)) fail(`"ipam" must be an object, not ${goType(o.ipam)}`);
  if (!o.type) fail(`missing 'type'`);
  return {
    bytes, doc: o, type: o.type as string, name: typeof o.name === 'string' ? o.name : '',
    capabilities: (isObject(o.capabilities) ? o.capabilities : {}) as Record<string, boolean>,
  };
}

function checkVersion(v: string, what: string): void {
  try {
    compareVersions(v, CURRENT_VERSION);
  } catch (e) {
    throw new RunnerError(`error parsing configuration list: invalid ${what} ${v}: ${(e as CniError).msg}`);
  }
}

/** libcni's NetworkConfFromBytes (ConfListFromBytes). */
export function confListFromBytes(bytes: Buffer): ConfList {
  const raw = decode(bytes, 'configuration list');
  const fail = (why: string): never => { throw new RunnerError(`error parsing configuration list: ${why}`); };
  if (!isObject(raw)) fail(`the configuration must be a JSON object, not ${goType(raw)}`);
  const doc = raw as Record<string, unknown>;
  if (!('name' in doc)) fail('no name');
  if (typeof doc.name !== 'string') fail(`invalid name type ${goType(doc.name)}`);
  let cniVersion = '';
  if ('cniVersion' in doc) {
    if (typeof doc.cniVersion !== 'string') fail(`invalid cniVersion type ${goType(doc.cniVersion)}`);
    cniVersion = doc.cniVersion as string;
  }
  if ('cniVersions' in doc) {
    const rvs = doc.cniVersions;
    if (!Array.isArray(rvs)) fail(`invalid type for cniVersions: ${goType(rvs)}`);
    const vs: string[] = [];
    (rvs as unknown[]).forEach((v, i) => {
      if (typeof v !== 'string') fail(`invalid type for cniVersions index ${i}: ${goType(v)}`);
      checkVersion(v as string, `cniVersions entry at index ${i}:`);
      // versions newer than the spec this implements are skipped
      if (compareVersions(v as string, CURRENT_VERSION) <= 0) vs.push(v as string);
    });
    if (cniVersion !== '') {
      checkVersion(cniVersion, 'cniVersion');
      if (compareVersions(cniVersion, CURRENT_VERSION) <= 0) vs.push(cniVersion);
    }
    vs.sort(compareVersions);
    if (vs.length) cniVersion = vs[vs.length - 1]!;
  }
  const readBool = (key: string): boolean => {
    if (!(key in doc)) return false;
    const v = doc[key];
    if (typeof v === 'boolean') return v;
    if (typeof v !== 'string') fail(`invalid type ${goType(v)} for ${key}`);
    const s = (v as string).toLowerCase();
    if (s === 'true') return true;
    if (s === 'false') return false;
    return fail(`invalid value "${s}" for ${key}`);
  };
  const list: ConfList = {
    name: doc.name as string, cniVersion,
    disableCheck: readBool('disableCheck'), disableGC: readBool('disableGC'),
    loadOnlyInlinedPlugins: readBool('loadOnlyInlinedPlugins'),
    plugins: [], bytes,
  };
  if (!('plugins' in doc)) {
    if (list.loadOnlyInlinedPlugins) fail(`\`loadOnlyInlinedPlugins\` is true, and no 'plugins' key`);
    return list;
  }
  if (!Array.isArray(doc.plugins)) fail(`invalid 'plugins' type ${goType(doc.plugins)}`);
  const plugins = doc.plugins as unknown[];
  if (plugins.length === 0) fail('no plugins in list');
  plugins.forEach((p, i) => {
    try {
      list.plugins.push(pluginConfFromBytes(Buffer.from(goMarshal(p)), p));
    } catch (e) {
      throw new RunnerError(`failed to parse plugin config ${i}: ${(e as Error).message}`);
    }
  });
  return list;
}

/** Files in `dir` with one of `exts`; none (not an error) when the dir does not exist. */
export function confFiles(dir: string, exts: string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new RunnerError(`cannot read ${dir}: ${(e as Error).message}`);
  }
  return names
    .filter((n) => exts.includes(extname(n)))
    .map((n) => join(dir, n))
    .filter((p) => { try { return !statSync(p).isDirectory(); } catch { return true; } })
    .sort();
}

/** configs of several MB are real (10,000 port mappings); far beyond that is a mistake */
export const MAX_CONFIG_FILE = 64 * 1024 * 1024;

function readFile(file: string): Buffer {
  try {
    const size = statSync(file).size;
    if (size > MAX_CONFIG_FILE) throw new RunnerError(`${file} is larger than ${MAX_CONFIG_FILE} bytes`);
    return readFileSync(file);
  } catch (e) {
    if (e instanceof RunnerError) throw e;
    throw new RunnerError(`error reading ${file}: ${(e as Error).message}`);
  }
}

/** libcni's NetworkConfFromFile: the list, plus <dir>/<name>/*.conf entries. */
export function confListFromFile(file: string): ConfList {
  let list: ConfList;
  try {
    list = confListFromBytes(readFile(file));
  } catch (e) {
    if (e instanceof RunnerError) throw new RunnerError(`${file}: ${e.message}`);
    throw e;
  }
  list.file = file;
  if (!list.loadOnlyInlinedPlugins) {
    for (const f of confFiles(join(file, '..', list.name), ['.conf'])) {
      try {
        list.plugins.push(pluginConfFromBytes(readFile(f)));
      } catch (e) {
        throw new RunnerError(`${f}: ${(e as Error).message}`);
      }
    }
  }
  if (list.plugins.length === 0) throw new RunnerError(`${file}: no plugin configs found`);
  return list;
}

/** libcni's ConfListFromConf: a single-plugin file as a one-entry list. */
export function confListFromConf(p: PluginConf, file?: string): ConfList {
  const cniVersion = typeof p.doc.cniVersion === 'string' ? p.doc.cniVersion : '';
  const list = confListFromBytes(Buffer.from(goMarshal({ name: p.name, cniVersion, plugins: [p.doc] })));
  list.file = file;
  return list;
}

export function pluginConfFromFile(file: string): PluginConf {
  try {
    return pluginConfFromBytes(readFile(file));
  } catch (e) {
    if (e instanceof RunnerError) throw new RunnerError(`${file}: ${e.message}`);
    throw e;
  }
}

/** libcni's LoadNetworkConf (cnitool's lookup). */
export function loadNetworkConf(dir: string, name: string): ConfList {
  const lists = confFiles(dir, ['.conflist']);
  for (const f of lists) {
    const l = confListFromFile(f);
    if (l.name === name) return l;
  }
  const singles = confFiles(dir, ['.conf', '.json']);
  if (singles.length === 0) {
    if (lists.length) throw new RunnerError(`no net configuration with name "${name}" in ${dir}`);
    throw new RunnerError(`no net configurations found in ${dir}`);
  }
  for (const f of singles) {
    const p = pluginConfFromFile(f);
    if (p.name === name) return confListFromConf(p, f);
  }
  throw new RunnerError(`no net configuration with name "${name}" in ${dir}`);
}

/** Every configuration in `dir` as libcni would load it, for `validate` and `install`. */
export function loadAll(dir: string): Array<{ file: string; list?: ConfList; error?: string }> {
  const out: Array<{ file: string; list?: ConfList; error?: string }> = [];
  for (const f of confFiles(dir, ['.conflist'])) {
    try { out.push({ file: f, list: confListFromFile(f) }); } catch (e) { out.push({ file: f, error: (e as Error).message }); }
  }
  for (const f of confFiles(dir, ['.conf', '.json'])) {
    try { out.push({ file: f, list: confListFromConf(pluginConfFromFile(f), f) }); } catch (e) { out.push({ file: f, error: (e as Error).message }); }
  }
  return out;
}
