// The daemon's wire format, shared by the daemon, `daemon --check` and tests
// (the native shim, host/shim/shim.c, speaks it too): each message is a
// 4-byte big-endian length and that many bytes of JSON.
//
// Request: {v:1, op:'call', type, policy, netns:{dev, ino}, env:{..}, stdin}
//          {v:1, op:'status'}
// Reply:   {exitCode, stdout}   the call ran: relay these
//          {fallback: why}      not served here (another netns, busy, ...): run it in exec mode
//          {error: why}         the request itself was bad
//          {status: {...}}      for op 'status'
export const MAX_FRAME = 16 << 20;
const MAX_ENV = 4096;
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface CallRequest {
  op: 'call';
  type: string;
  policy: string | null;
  netns: { dev: number; ino: number };
  env: Record<string, string>;
  stdin: string;
}
export type Request = CallRequest | { op: 'status' };

/** The reply of a call that failed in the daemon itself, as a CNI error (code 999). */
export function failedCall(msg: string): { exitCode: number; stdout: string } {
  return { exitCode: 1, stdout: JSON.stringify({ cniVersion: '1.1.0', code: 999, msg }) + '\n' };
}

export function encode(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  if (body.length > MAX_FRAME) throw new Error(`message of ${body.length} bytes exceeds ${MAX_FRAME}`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Collects one frame from a stream; throws when it would exceed MAX_FRAME. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;

  /** Returns the body once complete, else null. */
  push(chunk: Buffer): Buffer | null {
    this.chunks.push(chunk);
    this.have += chunk.length;
    if (this.need < 0 && this.have >= 4) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all];
      this.need = all.readUInt32BE(0);
      if (this.need > MAX_FRAME) throw new Error(`frame of ${this.need} bytes exceeds ${MAX_FRAME}`);
    }
    if (this.need >= 0 && this.have >= 4 + this.need) {
      const all = Buffer.concat(this.chunks);
      if (all.length > 4 + this.need) throw new Error('bytes after the request');
      return all.subarray(4, 4 + this.need);
    }
    return null;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a request body; throws an Error naming what is wrong. */
export function parseRequest(body: Buffer): Request {
  let d: unknown;
  try {
    d = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new Error(`request is not JSON: ${(e as Error).message}`);
  }
  if (!isObj(d)) throw new Error('request must be a JSON object');
  if (d.v !== 1) throw new Error(`unsupported request version ${JSON.stringify(d.v)} (this daemon speaks 1)`);
  if (d.op === 'status') return { op: 'status' };
  if (d.op !== 'call') throw new Error(`unknown op ${JSON.stringify(d.op)}`);
  if (typeof d.type !== 'string' || !TYPE_RE.test(d.type)) throw new Error('type must be a plugin type name');
  if (d.policy !== null && d.policy !== undefined && (typeof d.policy !== 'string' || !d.policy.startsWith('/'))) {
    throw new Error('policy must be an absolute path or null');
  }
  const ns = d.netns;
  if (!isObj(ns) || !Number.isSafeInteger(ns.dev) || !Number.isSafeInteger(ns.ino)) throw new Error('netns must be {dev, ino}');
  if (!isObj(d.env)) throw new Error('env must be an object of strings');
  const keys = Object.keys(d.env);
  if (keys.length > MAX_ENV) throw new Error(`env has more than ${MAX_ENV} variables`);
  const env: Record<string, string> = {};
  for (const k of keys) {
    const v = d.env[k];
    if (typeof v !== 'string') throw new Error(`env ${k} must be a string`);
    env[k] = v;
  }
  if (typeof d.stdin !== 'string') throw new Error('stdin must be a string');
  return {
    op: 'call', type: d.type, policy: (d.policy as string | null | undefined) ?? null,
    netns: { dev: ns.dev as number, ino: ns.ino as number }, env, stdin: d.stdin,
  };
}
