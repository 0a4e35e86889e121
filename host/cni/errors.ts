// CNI error results: the JSON document a plugin prints on failure, plus the
// well-known codes from the spec's error table.

export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  // Not in the spec's table, but libcni's skel returns it when CNI_NETNS names
  // the plugin's own namespace; runtimes may see it from reference plugins.
  InvalidNetns: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
} as const;

/** Codes below this are reserved by the spec; plugins may use this and above. */
export const PLUGIN_ERROR_CODE_MIN = 100;

export interface CniErrorDocument {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

// Used when the request's version is not known (yet): errors in the
// environment or in the stdin JSON itself happen before version negotiation.
const FALLBACK_VERSION = '1.1.0';

export class CniError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string;

  constructor(code: number, msg: string, details = '') {
    super(details ? `${msg}; ${details}` : msg);
    this.name = 'CniError';
    this.code = code;
    this.msg = msg;
    this.details = details;
  }

  /**
   * The spec's error document. JSON.stringify calls this with a property key
   * (often ''), so anything that is not a version string falls back.
   */
  toJSON(cniVersion?: string): CniErrorDocument {
    const v = typeof cniVersion === 'string' && /^\d+\.\d+\.\d+$/.test(cniVersion) ? cniVersion : FALLBACK_VERSION;
    const doc: CniErrorDocument = { cniVersion: v, code: this.code, msg: this.msg };
    if (this.details) doc.details = this.details;
    return doc;
  }

  /** Pass CniErrors through untouched; wrap anything else with `code`. */
  static from(e: unknown, code: number, msg?: string): CniError {
    if (e instanceof CniError) return e;
    const text = e instanceof Error ? e.message : String(e);
    return msg ? new CniError(code, msg, text) : new CniError(code, text);
  }
}

/**
 * JSON.parse that fails with code 6 and says where: V8 reports a character
 * offset for most syntax errors, which we turn into line and column.
 */
/** Deeper nesting than any CNI document needs; plugins parse at most this deep. */
export const JSON_MAX_DEPTH = 64;

/** Nesting depth of a parsed value, without recursion (a hostile document may be 10,000 deep). */
function depthOver(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d > max) return true;
    for (const c of Array.isArray(x) ? x : Object.values(x)) if (typeof c === 'object' && c !== null) stack.push([c, d + 1]);
  }
  return false;
}

export function decodeJson(text: string, what: string): unknown {
  if (text.trim() === '') throw new CniError(CniErrorCode.DecodingFailure, `${what} is empty`, 'expected a JSON object');
  try {
    const v = JSON.parse(text);
    if (depthOver(v, JSON_MAX_DEPTH)) {
      throw new CniError(CniErrorCode.DecodingFailure, `${what} is nested more than ${JSON_MAX_DEPTH} levels deep`, 'no CNI configuration needs that; check the document');
    }
    return v;
  } catch (e) {
    if (e instanceof CniError) throw e;
    const reason = e instanceof Error ? e.message : String(e);
    const at = /at position (\d+)/.exec(reason);
    let where = '';
    if (at) {
      const before = text.slice(0, Number(at[1]));
      const line = before.split('\n').length;
      const column = before.length - before.lastIndexOf('\n');
      where = ` (line ${line}, column ${column})`;
    }
    throw new CniError(CniErrorCode.DecodingFailure, `${what} is not valid JSON`, reason + where);
  }
}
