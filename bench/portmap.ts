// portmap ADD + DEL wall time with 0 and N existing attachments, ours
// (nftables map elements) beside the reference (iptables chain per
// container), each exec'd as a runtime does, inside throwaway netns
// (cw-pm-bench-*; the machine's own netns is never touched).
//
//   node dist/bench/portmap.js [--attachments 100] [--iterations 20]
//
// Every attachment publishes tcp/<port> and udp/<port> on a dual-stack
// prevResult (the addresses need no real container: portmap only writes
// host-side rules), so "N attachments" means 4N forwards already there.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nowMs } from '../host/lazy.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CLI = join(ROOT, 'bin/cni-wasm.cjs');
const REF = '/usr/lib/cni/portmap';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
}

const N = arg('--attachments', 100);
const ITER = arg('--iterations', 20);
const dir = mkdtempSync(join(tmpdir(), 'cw-pm-bench-'));
const policy = join(dir, 'policy.json');
spawnSync('sh', ['-c', `cat > ${policy} <<'EOF'\n${JSON.stringify({ auditLog: join(dir, 'audit.log'), stateDir: join(dir, 'state'), storeDir: join(dir, 'ipam'), pluginDirs: [] })}\nEOF`]);

type Impl = 'ours' | 'ref';
const hostNs = (impl: Impl) => `cw-pm-bench-${impl}`;
const CONTAINER_NS = 'cw-pm-bench-c';

function sh(args: string[]): void {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

const prev = (i: number) => ({
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: `/run/netns/${CONTAINER_NS}` }],
  ips: [{ address: `10.90.${i >> 8}.${i & 255}/16`, interface: 0 }, { address: `fd90::${(i + 2).toString(16)}/64`, interface: 0 }],
});

function run(impl: Impl, command: 'ADD' | 'DEL', i: number): number {
  const conf = {
    cniVersion: '1.0.0', name: 'pmbench', type: 'portmap', capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }, { hostPort: 20000 + i, containerPort: 53, protocol: 'udp' }] },
    prevResult: prev(i),
  };
  const bin = impl === 'ours' ? [process.execPath, CLI, '--type', 'portmap', '--policy', policy] : [REF];
  const t0 = nowMs();
  const r = spawnSync('ip', ['netns', 'exec', hostNs(impl), '/usr/bin/time', '-f', '%U %S', '-o', timeFile, ...bin], {
    input: JSON.stringify(conf), encoding: 'utf8',
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `bench-${i}`, CNI_NETNS: `/run/netns/${CONTAINER_NS}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
  const ms = nowMs() - t0;
  if (r.status !== 0) throw new Error(`${impl} ${command} ${i}: ${r.stdout} ${r.stderr}`);
  const [u, sy] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).map(Number);
  lastCpu = (u + sy) * 1000;
  return ms;
}
let lastCpu = 0;
const timeFile = join(dir, 'time.txt');

/** Medians of our audited host calls (the kernel work) for the probe container, since line `from`. */
function hostCalls(from: number): { lines: number; add: number; del: number } {
  let lines: string[] = [];
  try { lines = readFileSync(join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean); } catch { /* none yet */ }
  const recs = lines.slice(from).map((l) => JSON.parse(l)).filter((a) => a.containerId === 'bench-5000');
  const ms = (c: string) => recs.filter((a) => a.call === c).map((a) => a.ms as number);
  return { lines: lines.length, add: median(ms('portmap.add')), del: median(ms('portmap.del')) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
try {
  sh(['ip', 'netns', 'add', CONTAINER_NS]);
  for (const impl of ['ours', 'ref'] as Impl[]) sh(['ip', 'netns', 'add', hostNs(impl)]);
  const rows: string[] = [];
  const at: Record<string, number> = {};
  for (const existing of [0, N]) {
    // bring both to `existing` attachments (untimed)
    for (const impl of ['ours', 'ref'] as Impl[]) for (let i = existing === 0 ? 0 : 1; i <= existing; i++) if (existing) run(impl, 'ADD', i);
    const add: Record<Impl, number[]> = { ours: [], ref: [] };
    const del: Record<Impl, number[]> = { ours: [], ref: [] };
    const addCpu: Record<Impl, number[]> = { ours: [], ref: [] };
    const delCpu: Record<Impl, number[]> = { ours: [], ref: [] };
    const probe = 5000;
    const from = hostCalls(0).lines;
    for (let k = 0; k < ITER + 1; k++) {
      for (const impl of (k % 2 ? ['ours', 'ref'] : ['ref', 'ours']) as Impl[]) {
        const a = run(impl, 'ADD', probe), ac = lastCpu;
        const d = run(impl, 'DEL', probe), dc = lastCpu;
        if (k > 0) { add[impl].push(a); del[impl].push(d); addCpu[impl].push(ac); delCpu[impl].push(dc); } // first one is the warm-up
      }
    }
    const hc = hostCalls(from);
    for (const impl of ['ours', 'ref'] as Impl[]) {
      at[`${impl}-add-${existing}`] = median(add[impl]);
      at[`${impl}-del-${existing}`] = median(del[impl]);
      at[`${impl}-addcpu-${existing}`] = median(addCpu[impl]);
      at[`${impl}-delcpu-${existing}`] = median(delCpu[impl]);
      const kernel = impl === 'ours' ? `${hc.add.toFixed(1)} / ${hc.del.toFixed(1)}` : '';
      rows.push(`| ${impl === 'ours' ? 'ours' : 'reference'} | ${existing} | ${median(add[impl]).toFixed(1)} | ${median(del[impl]).toFixed(1)} | ${median(addCpu[impl]).toFixed(0)} | ${median(delCpu[impl]).toFixed(0)} | ${kernel} |`);
    }
  }
  console.log(`portmap, ${ITER} iterations, medians in ms (each attachment: tcp + udp, dual-stack); CPU = user + sys of the process`);
  console.log(`load average before: ${load0}, after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  console.log('| impl | existing attachments | ADD wall | DEL wall | ADD CPU | DEL CPU | portmap.add / .del host calls |\n|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  const g = (impl: Impl, k: string) => (at[`${impl}-${k}-${N}`] / at[`${impl}-${k}-0`]).toFixed(2);
  for (const impl of ['ours', 'ref'] as Impl[]) {
    console.log(`${impl}: ${N} vs 0 attachments: ADD wall ${g(impl, 'add')}x, DEL wall ${g(impl, 'del')}x, ADD CPU ${g(impl, 'addcpu')}x, DEL CPU ${g(impl, 'delcpu')}x`);
  }
} finally {
  for (const n of [CONTAINER_NS, hostNs('ours'), hostNs('ref')]) spawnSync('ip', ['netns', 'del', n]);
  rmSync(dir, { recursive: true, force: true });
}
