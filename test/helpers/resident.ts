// The test suite in resident mode (CNI_WASM_TEST_MODE=resident; .ci/run runs
// the suite a second time so). Every call a test makes through execPlugin()
// (test/helpers/cni.ts) to our shims, from a netns playing the host, goes
// instead through native shims to a `cni-wasm daemon` this process starts in
// that netns (its own socket in a temp dir, one daemon per host netns, a new
// one when the netns is made anew), with the same policy the test's shim
// names. What cannot go that way runs as before, in exec mode: a call
// without a host netns (the daemon would serve the machine's own netns), a
// type the daemon cannot serve (an unpinned third-party script shim), or a
// daemon that did not start. With CNI_WASM_TEST_RESIDENT_STATS=<file>, each
// test process appends a line saying how many calls the daemons served and
// why others did not, so a run shows that resident mode really was tested.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESIDENT = process.env.CNI_WASM_TEST_MODE === 'resident';
const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const CLI = join(ROOT, 'bin/cni-wasm.cjs');
const SHIM_NOTE = /^cni-wasm-shim: (served by the daemon at .*|exec mode \((.*)\))\n/gm;

interface Daemon { ns: string; ino: number; proc: ChildProcess; sock: string; dir: string; up: boolean }
const daemons = new Map<string, Daemon>();
const bins = new Map<string, string>();
let work: string | undefined;
const stats = { served: 0, exec: 0, why: {} as Record<string, number> };
const pause = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => Atomics.wait(pause, 0, 0, ms);

function note(why: string): void {
  stats.exec++;
  const k = why.replace(/\/tmp\/\S+/g, '<tmp>').slice(0, 120);
  stats.why[k] = (stats.why[k] ?? 0) + 1;
}

function nsIno(ns: string): number | null {
  try { return statSync(`/run/netns/${ns}`).ino; } catch { return null; }
}

function stop(d: Daemon): void {
  if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
}

/** The daemon serving host netns `ns`, started (synchronously) if there is none. */
function daemonFor(ns: string): Daemon | null {
  const ino = nsIno(ns);
  if (ino === null) return null;
  const old = daemons.get(ns);
  if (old && old.ino === ino && old.up && old.proc.exitCode === null && old.proc.signalCode === null) return old;
  if (old) { stop(old); daemons.delete(ns); }
  work ??= mkdtempSync(join(tmpdir(), 'cw-resident-'));
  const dir = join(work, `d${daemons.size}-${ns}-${ino}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sock = join(dir, 'run', 'cni-wasm.sock');
  const logFile = join(dir, 'daemon.log');
  const fd = openSync(logFile, 'w');
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'daemon', '--socket', sock, '--workers', '2'], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  proc.unref();
  const d: Daemon = { ns, ino, proc, sock, dir, up: false };
  daemons.set(ns, d);
  for (let t = 0; t < 600; t++) {
    const log = readFileSync(logFile, 'utf8');
    if (/serving/.test(log)) { d.up = true; return d; }
    if (proc.exitCode !== null || /\berror\b|Error/.test(log)) break;
    sleep(50);
  }
  stop(d);
  return null;
}

/** `--type T --policy P` of one of our script shims (null: not one of ours). */
function scriptShim(file: string): { type: string; policy: string | null } | null {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return null; }
  if (!text.startsWith('#!/bin/sh') || !text.includes(CLI)) return null;
  const type = /--type '([^']*)'/.exec(text)?.[1];
  if (!type) return null;
  return { type, policy: /--policy '([^']*)'/.exec(text)?.[1] ?? null };
}

/**
 * The binary to exec for this call in resident mode: a native shim of the
 * same type and policy, forwarding to the daemon in hostNs. Null: exec the
 * test's own shim (exec mode).
 */
export function residentBinary(binDir: string, type: string, hostNs: string | undefined): string | null {
  if (!RESIDENT) return null;
  const shim = scriptShim(join(binDir, type));
  if (!shim) return null; // the reference plugins, or a file a test wrote itself
  if (!hostNs) { note('no host netns (the call runs in the test process\'s own netns)'); return null; }
  const d = daemonFor(hostNs);
  if (!d) { note(`no daemon could start in ${hostNs}`); return null; }
  const key = `${binDir}\u0000${shim.policy ?? ''}\u0000${d.sock}`;
  let rbin = bins.get(key);
  if (!rbin || !existsSync(join(rbin, shim.type))) {
    rbin ??= join(d.dir, `bin${bins.size}`);
    const r = spawnSync(process.execPath, [CLI, 'install', '--bin-dir', rbin, '--socket', d.sock, '--conf-dir', d.dir,
      ...(shim.policy ? ['--policy', shim.policy] : [])], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) { note(`install --socket failed: ${(r.stderr || r.stdout).trim().split('\n')[0]}`); return null; }
    bins.set(key, rbin);
  }
  const bin = join(rbin, shim.type);
  if (!existsSync(bin)) { note(`no native shim for ${shim.type} (not bundled, not pinned by the policy)`); return null; }
  return bin;
}

/** The shim's own note about who served the call, counted and taken out of stderr. */
export function residentStderr(stderr: string, askedForNotes: boolean): string {
  if (!RESIDENT) return stderr;
  for (const m of stderr.matchAll(SHIM_NOTE)) {
    if (m[1].startsWith('served')) stats.served++;
    else note(`shim: ${m[2]}`);
  }
  return askedForNotes ? stderr : stderr.replace(SHIM_NOTE, '');
}

if (RESIDENT) {
  process.on('exit', () => {
    for (const d of daemons.values()) stop(d);
    if (work) rmSync(work, { recursive: true, force: true });
    const file = process.env.CNI_WASM_TEST_RESIDENT_STATS;
    if (file) appendFileSync(file, JSON.stringify({ test: basename(process.argv[1] ?? '?'), ...stats }) + '\n');
  });
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => process.exit(130));
}
