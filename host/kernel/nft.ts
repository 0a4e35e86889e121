// nftables through the nft binary: one `nft -f -` batch per call, which the
// kernel applies atomically. spawnSync forks from the main thread, so the
// child starts in whatever netns the thread is switched into.
import { existsSync } from 'node:fs';
import { childProcess } from '../lazy.js';
import { withNetns } from './native.js';
import { KernelError } from './types.js';

let nftPath: string | undefined;

// Runtimes often exec plugins with a PATH lacking /usr/sbin.
function nft(): string {
  nftPath ??= ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => existsSync(p)) ?? 'nft';
  return nftPath;
}

function run(nsFd: number | null, args: string[], input: string | undefined, what: string): string {
  const r = withNetns(nsFd, () => childProcess().spawnSync(nft(), args, { input, encoding: 'utf8', maxBuffer: 64 << 20 }));
  if (r.error) throw new KernelError('ENFT', `${what}: cannot run nft: ${r.error.message}`);
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout || `nft exited with ${r.status ?? r.signal}`).trim();
    throw new KernelError('ENFT', msg);
  }
  return r.stdout;
}

/** Applies an nft script atomically (all or nothing); throws ENFT with nft's stderr. */
export function nftApply(script: string, nsFd: number | null): void {
  run(nsFd, ['-f', '-'], script, 'nft -f -');
}

/** Runs `nft <args>` (e.g. ['list', 'table', 'ip', 'cni-wasm-nat']) and returns its stdout. */
export function nftList(nsFd: number | null, args: string[]): string {
  return run(nsFd, args, undefined, `nft ${args.join(' ')}`);
}
