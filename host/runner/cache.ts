// libcni's result cache (libcni/api.go: cachedInfo), shared with podman,
// cnitool and anything else built on libcni:
//   <cacheDir>/results/<network>-<containerId>-<ifname>
// one JSON record, written with Go's encoding/json: fields in the struct's
// order, "config" as base64 of the list's bytes, "result" re-marshalled
// from a map (sorted keys), empty optional fields left out, mode 0600 in a
// 0700 dir, no trailing newline.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Ordered, goMarshal } from './gojson.js';
import { RunnerError } from './conf.js';

export const CACHE_KIND = 'cniCacheV1';
export const DEFAULT_CACHE_DIR = '/var/lib/cni';
/** a cache record is a config and a result: far below this */
const MAX_CACHE_FILE = 64 * 1024 * 1024;

export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs */
  args: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
}

export interface CacheRecord {
  kind: string;
  containerId: string;
  /** the list's bytes, decoded from base64 */
  config: Buffer;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export function cacheFile(cacheDir: string, network: string, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): string {
  if (!network || !rt.containerId || !rt.ifname) {
    throw new RunnerError(`cache file path requires network name ("${network}"), container ID ("${rt.containerId}"), and interface name ("${rt.ifname}")`);
  }
  // the three make one file name under results/: nothing that could leave it
  for (const [what, v] of [['network name', network], ['container ID', rt.containerId], ['interface name', rt.ifname]] as const) {
    if (v.includes('/') || v.includes('\0') || v.startsWith('.')) throw new RunnerError(`invalid ${what} "${v}" for the result cache: no "/", and not starting with "."`);
  }
  return join(cacheDir, 'results', `${network}-${rt.containerId}-${rt.ifname}`);
}

/** The record's bytes exactly as libcni's cacheAdd writes them. */
export function encodeRecord(result: object, config: Buffer, network: string, rt: RuntimeConf): string {
  const fields: Record<string, unknown> = {
    kind: CACHE_KIND,
    containerId: rt.containerId,
    config: config.toString('base64'),
    ifName: rt.ifname,
    networkName: network,
  };
  if (rt.netns) fields.netns = rt.netns;
  if (rt.args.length) fields.cniArgs = rt.args;
  if (Object.keys(rt.capabilityArgs).length) fields.capabilityArgs = rt.capabilityArgs;
  // result is omitempty: a nil or empty map is left out
  if (Object.keys(result).length) fields.result = result;
  return goMarshal(new Ordered(fields));
}

export function writeRecord(cacheDir: string, result: object, config: Buffer, network: string, rt: RuntimeConf): string {
  const file = cacheFile(cacheDir, network, rt);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // a reader (podman) never sees half a record
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, encodeRecord(result, config, network, rt), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (e) {
    throw new RunnerError(`failed to set network "${network}" cached result: ${(e as Error).message}`);
  }
  return file;
}

export function deleteRecord(cacheDir: string, network: string, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): void {
  try {
    rmSync(cacheFile(cacheDir, network, rt), { force: true });
  } catch {
    // libcni ignores this too
  }
}

function readBounded(file: string): string | null {
  try {
    const b = readFileSync(file);
    if (b.length > MAX_CACHE_FILE) throw new RunnerError(`cached result ${file} is larger than ${MAX_CACHE_FILE} bytes`);
    return b.toString('utf8');
  } catch (e) {
    if (e instanceof RunnerError) throw e;
    return null; // libcni: a missing or unreadable cache file means no cached result
  }
}

function decodeRecord(text: string): CacheRecord | null {
  let doc: any;
  try { doc = JSON.parse(text); } catch { return null; }
  if (typeof doc !== 'object' || doc === null || doc.kind !== CACHE_KIND) return null;
  return {
    ...doc,
    config: Buffer.from(typeof doc.config === 'string' ? doc.config : '', 'base64'),
  } as CacheRecord;
}

/**
 * The cached result of an attachment, as libcni's getCachedResult finds it:
 * null when there is no file; a cniCacheV1 record's "result"; or, for the
 * legacy cache (before cniCacheV1), the whole file is the result. Throws
 * when the file holds neither.
 */
export function readCachedResult(cacheDir: string, network: string, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): Record<string, unknown> | null {
  const text = readBounded(cacheFile(cacheDir, network, rt));
  if (text === null) return null;
  const rec = decodeRecord(text);
  if (rec) {
    if (rec.result === undefined || rec.result === null) throw new RunnerError(`cached network "${network}" has no result`);
    return rec.result;
  }
  try {
    const legacy = JSON.parse(text);
    if (typeof legacy === 'object' && legacy !== null && !Array.isArray(legacy)) return legacy;
  } catch {
    // fall through
  }
  throw new RunnerError(`cached result of network "${network}" is neither a ${CACHE_KIND} record nor a result`);
}

export interface Attachment {
  containerId: string;
  network: string;
  ifname: string;
  netns?: string;
  file: string;
}

/** libcni's GetCachedAttachments(""): every well-formed record, sorted by file name. */
export function cachedAttachments(cacheDir: string): Attachment[] {
  const dir = join(cacheDir, 'results');
  let names: string[];
  try { names = readdirSync(dir).sort(); } catch { return []; }
  const out: Attachment[] = [];
  for (const n of names) {
    const file = join(dir, n);
    const text = readBounded(file);
    if (text === null) continue;
    const rec = decodeRecord(text);
    if (!rec || !rec.ifName || !rec.networkName || typeof rec.containerId !== 'string') continue;
    out.push({ containerId: rec.containerId, network: rec.networkName, ifname: rec.ifName, netns: rec.netns, file });
  }
  return out;
}

export function readRecord(file: string): CacheRecord | null {
  const text = readBounded(file);
  return text === null ? null : decodeRecord(text);
}
