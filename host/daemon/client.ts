// A synchronous client of `cni-wasm daemon`, for callers that run CNI calls
// synchronously in their own process (the cnitool-compatible runner): the
// same request the native shim sends (protocol.ts), over a blocking unix
// socket. The daemon serves only callers in its own network namespace and
// says "fallback" otherwise; like the shim, the caller then runs the call
// itself.
import { closeSync, readSync, statSync, writeSync } from 'node:fs';
import { FrameReader, encode } from './protocol.js';
import { unixConnect } from '../kernel/native.js';

export const DEFAULT_SOCKET = '/run/cni-wasm/cni-wasm.sock';
/** Longer than any call's own limits (the daemon's hard limit is 300 s). */
const REPLY_TIMEOUT_MS = 330_000;

export type DaemonAnswer =
  | { served: true; exitCode: number; stdout: string }
  /** not served, nothing ran: run it here */
  | { served: false; why: string }
  /** the request went out and no answer came back: the call may have run in part */
  | { served: false; lost: true; why: string };

export function callDaemon(socket: string, type: string, policy: string | undefined, env: Record<string, string>, stdin: string): DaemonAnswer {
  let fd: number;
  try {
    fd = unixConnect(socket, REPLY_TIMEOUT_MS);
  } catch (e) {
    return { served: false, why: `no daemon at ${socket}: ${(e as Error).message}` };
  }
  try {
    let req: Buffer;
    try {
      const ns = statSync('/proc/self/ns/net');
      req = encode({ v: 1, op: 'call', type, policy: policy ?? null, netns: { dev: ns.dev, ino: ns.ino }, env, stdin });
    } catch (e) {
      return { served: false, why: `request not sent: ${(e as Error).message}` };
    }
    try {
      for (let off = 0; off < req.length;) off += writeSync(fd, req, off, req.length - off);
    } catch (e) {
      return { served: false, why: `the daemon closed the connection before the request was sent: ${(e as Error).message}` };
    }
    const reader = new FrameReader();
    const chunk = Buffer.alloc(65536);
    let body: Buffer | null = null;
    try {
      while (!body) {
        const n = readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        body = reader.push(Buffer.from(chunk.subarray(0, n)));
      }
    } catch (e) {
      return { served: false, lost: true, why: `no answer from the daemon: ${(e as Error).message}` };
    }
    if (!body) return { served: false, lost: true, why: 'the daemon went away during the call' };
    let m: { exitCode?: unknown; stdout?: unknown; fallback?: unknown; error?: unknown };
    try {
      m = JSON.parse(body.toString('utf8'));
    } catch {
      return { served: false, lost: true, why: 'the daemon\'s reply did not decode' };
    }
    if (typeof m.fallback === 'string') return { served: false, why: m.fallback };
    if (typeof m.error === 'string') return { served: true, exitCode: 1, stdout: JSON.stringify({ code: 999, msg: m.error }) + '\n' };
    if (typeof m.exitCode !== 'number' || typeof m.stdout !== 'string') return { served: false, lost: true, why: 'the daemon\'s reply did not decode' };
    return { served: true, exitCode: m.exitCode, stdout: m.stdout };
  } finally {
    closeSync(fd);
  }
}
