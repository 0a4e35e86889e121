// masqueradeAdd / masqueradeDel latency with a full map, inside a throwaway
// netns (cw-masq-bench; the machine's own netns is never touched).
//
//   node dist/bench/masq.js [--elements 200] [--iterations 30] [--processes 20]
//
// MASQ_MODULE=<path of a built masquerade.js> measures another version of it
// (e.g. the nft-only one from an older commit) with the same harness.
//
// "warm": the same process calls ADD then DEL for one dual-stack attachment,
// iterations times. "cold": each sample is a fresh node process (as every CNI
// call is) that loads the addon (as the links calls of a real ADD have done
// by then) and makes one masqueradeAdd or masqueradeDel call: "call" is that
// call's own time, "process" is the whole process's wall time minus that of
// a process that makes no call, so it includes what the kernel makes the
// process wait for at exit.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MasqueradeEntry } from '../host/kernel/masquerade.js';
import { homeNetnsFd } from '../host/kernel/native.js';
import '../host/kernel/rtnl.js'; // loaded in every variant, as in the CLI (the netlink codec)
import { nowMs } from '../host/lazy.js';

const { masqueradeAdd, masqueradeDel } = (await import(process.env.MASQ_MODULE || '../host/kernel/masquerade.js')) as
  typeof import('../host/kernel/masquerade.js');
const NS = 'cw-masq-bench';
const SELF = fileURLToPath(import.meta.url);

const entries = (i: number): MasqueradeEntry[] => [
  { family: 4, source: `10.88.${i >> 8}.${i & 255}`, exclude: '10.88.0.0/16' },
  { family: 6, source: `fd88::${i.toString(16)}`, exclude: 'fd88::/64' },
];

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(2)} ms, p90 ${q(0.9).toFixed(2)} ms, min ${s[0].toFixed(2)} ms (n=${s.length})`;
}

function timed(f: () => void): number {
  const t = nowMs();
  f();
  return nowMs() - t;
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
}

const mode = process.argv[2];
if (mode === '--once') {
  // inside the netns, fresh process: --once add|del|none <i>
  homeNetnsFd(); // loads the addon
  const e = entries(Number(process.argv[4]));
  const op = process.argv[3];
  const t = op === 'add' ? timed(() => masqueradeAdd(e)) : op === 'del' ? timed(() => masqueradeDel(e)) : 0;
  process.stdout.write(JSON.stringify(t));
} else if (mode === '--inside') {
  const elements = arg('--elements', 200), iterations = arg('--iterations', 30);
  const t0 = nowMs();
  masqueradeAdd(Array.from({ length: elements }, (_, i) => entries(i + 1)).flat());
  console.log(`setup: ${elements} attachments (${2 * elements} elements) in ${(nowMs() - t0).toFixed(1)} ms`);
  const add: number[] = [], del: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const e = entries(50000 + i);
    add.push(timed(() => masqueradeAdd(e)));
    del.push(timed(() => masqueradeDel(e)));
  }
  console.log(`warm masqueradeAdd (dual-stack): ${stats(add)}`);
  console.log(`warm masqueradeDel (dual-stack): ${stats(del)}`);
  // The kernel's wait after a delete lands on whichever call closes the socket: compare pairs.
  console.log(`warm ADD + DEL pair:             ${stats(add.map((a, i) => a + del[i]))}`);
  const once = (op: string, i: number) => {
    const t = nowMs();
    const r = spawnSync(process.execPath, [SELF, '--once', op, String(i)], { encoding: 'utf8' });
    const wall = nowMs() - t;
    if (r.status !== 0) throw new Error(r.stderr);
    return { call: JSON.parse(r.stdout) as number, wall };
  };
  const cold: Record<'none' | 'add' | 'del', { call: number[]; wall: number[] }> =
    { none: { call: [], wall: [] }, add: { call: [], wall: [] }, del: { call: [], wall: [] } };
  for (let i = 0; i < arg('--processes', 20); i++) {
    // interleaved, so that machine noise hits all three alike
    for (const op of ['none', 'add', 'del'] as const) {
      const r = once(op, 60000 + i);
      cold[op].call.push(r.call);
      cold[op].wall.push(r.wall);
    }
  }
  const base = [...cold.none.wall].sort((a, b) => a - b)[cold.none.wall.length >> 1];
  console.log(`cold: a process making no call takes ${base.toFixed(1)} ms (median)`);
  for (const op of ['add', 'del'] as const) {
    const name = op === 'add' ? 'masqueradeAdd' : 'masqueradeDel';
    console.log(`cold ${name} (dual-stack), call:    ${stats(cold[op].call)}`);
    console.log(`cold ${name} (dual-stack), process: ${stats(cold[op].wall.map((w) => w - base))}`);
  }
} else {
  const run = (cmd: string[], check = true) => {
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', check ? 'inherit' : 'ignore'] });
    if (check && r.status !== 0) throw new Error(`${cmd.join(' ')} failed`);
  };
  run(['ip', 'netns', 'del', NS], false);
  run(['ip', 'netns', 'add', NS]);
  try {
    run(['ip', 'netns', 'exec', NS, process.execPath, SELF, '--inside', ...process.argv.slice(2)]);
  } finally {
    run(['ip', 'netns', 'del', NS], false);
  }
}
