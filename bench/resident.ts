// Resident mode against exec mode and the reference plugins, side by side in
// one run: bridge + host-local ADD/DEL latency in the four configs, 50
// concurrent ADDs, the native shim's peak RSS, and the daemon's RSS over many
// ADD/DEL cycles. Prints a table and writes its section of BENCHMARKS.md
// (between the "resident" markers; the rest of the file is left alone).
//
//   node dist/bench/resident.js                 (as root; 40 iterations, 1000 cycles, 30 warm-up pairs per config)
//   node dist/bench/resident.js --quick         (5 iterations, 100 cycles, 5 warm-up pairs)
//   node dist/bench/resident.js --no-write      (also: --iterations N --cycles N --concurrent N --bursts N --warmup N --workers N)
//
// Three modes, each in its own netns playing the host:
//   resident  our native shim, served by `cni-wasm daemon` running in that netns
//   exec      the same native shim with CNI_WASM_NO_DAEMON=1: it execs node itself
//   reference Debian's containernetworking-plugins 1.1.1 (/usr/lib/cni)
// The timed region is the exec of the plugin binary (the bench's main thread
// setns()es into the host netns, spawns, and goes back), as bench.ts does.
// The modes take turns every iteration. Everything is removed at the end.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeFd, openNetns, withNetns } from '../host/kernel/native.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CLI = join(ROOT, 'bin/cni-wasm.cjs');
const REF = '/usr/lib/cni';
const TIME_BIN = '/usr/bin/time';
const P = 'cw-res-';
type Mode = 'resident' | 'exec' | 'reference';
const MODES: Mode[] = ['resident', 'exec', 'reference'];

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const write = !args.includes('--no-write');
const num = (flag: string, dflt: number): number => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : dflt; };
const ITER = num('--iterations', quick ? 5 : 40);
const CYCLES = num('--cycles', quick ? 100 : 1000);
const CONC = num('--concurrent', quick ? 10 : 50);
/** Bursts per mode, resident and reference taking turns (one burst alone varies by ±30% here); exec mode, ~5 s a burst, gets one. */
const BURSTS = num('--bursts', quick ? 1 : 7);
/** Untimed ADD/DEL pairs per config before the timed ones, for resident mode and
 *  the reference (a daemon on a node has long been warm: its JIT has compiled
 *  the hot paths; exec mode starts cold on every call whatever one does). */
const WARM = num('--warmup', quick ? 5 : 30);

const log = (s: string): void => { process.stderr.write(s + '\n'); };
const sh = (cmd: string[], check = true): string => {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const mkns = (n: string): void => { sh(['ip', 'netns', 'del', n], false); sh(['ip', 'netns', 'add', n]); sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']); };

const tmp = mkdtempSync(join(tmpdir(), 'cw-res-'));
const bin = join(tmp, 'bin');
const sock = join(tmp, 'run', 'cni-wasm.sock');
const policy = join(tmp, 'policy.json');
let daemon: ChildProcess | null = null;
const fds: number[] = [];
function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  for (const fd of fds.splice(0)) { try { closeFd(fd); } catch { /* closed */ } }
  for (const n of (sh(['ip', 'netns', 'list'], false).match(/^\S+/gm) ?? [])) if (n.startsWith(P)) sh(['ip', 'netns', 'del', n], false);
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => process.exit(130));

interface Cfg { key: string; label: string; dual: boolean; masq: boolean; i: number }
const CFGS: Cfg[] = [
  { key: 'v4', label: 'IPv4', dual: false, masq: false, i: 0 },
  { key: 'v4m', label: 'IPv4 + ipMasq', dual: false, masq: true, i: 1 },
  { key: 'ds', label: 'dual-stack', dual: true, masq: false, i: 2 },
  { key: 'dsm', label: 'dual-stack + ipMasq', dual: true, masq: true, i: 3 },
];
const conf = (m: Mode, c: Cfg, subnetBase = `10.198.${c.i}`): object => ({
  cniVersion: '1.0.0', name: `res-${c.key}`, type: 'bridge', bridge: `cwr-${c.key}`, isGateway: true, ipMasq: c.masq,
  ipam: {
    type: 'host-local', dataDir: join(tmp, `ipam-${m}`), routes: [{ dst: '0.0.0.0/0' }],
    ranges: [[{ subnet: `${subnetBase}.0/24` }], ...(c.dual ? [[{ subnet: `fd5e:11:22:${c.i}::/64` }]] : [])],
  },
});

const hostNs = (m: Mode) => `${P}${m}`;
const hostFd: Partial<Record<Mode, number>> = {};

// CPU time (user + sys, clock ticks of 10 ms) from /proc/<pid>/stat: a process's
// own (all its threads), or that of its waited-for children
function ticks(pid: number | 'self', children: boolean): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return children ? Number(f[13]) + Number(f[14]) : Number(f[11]) + Number(f[12]);
}
/** CPU ms spent by each mode's calls: the plugin processes, and for resident mode the daemon too */
const cpuMs: Record<Mode, number> = { resident: 0, exec: 0, reference: 0 };
let cpuCounting = false;

interface Reply { code: number; stdout: string; ms: number; stderr: string }
function exec(m: Mode, command: string, config: object, netns: string, cid: string, wrap: string[] = []): Reply {
  if (!cpuCounting) return execOnce(m, command, config, netns, cid, wrap);
  const c0 = ticks('self', true), d0 = m === 'resident' ? ticks(daemon!.pid!, false) : 0;
  const r = execOnce(m, command, config, netns, cid, wrap);
  cpuMs[m] += (ticks('self', true) - c0 + (m === 'resident' ? ticks(daemon!.pid!, false) - d0 : 0)) * 10;
  return r;
}
function execOnce(m: Mode, command: string, config: object, netns: string, cid: string, wrap: string[] = []): Reply {
  const path = m === 'reference' ? REF : bin;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: path,
    ...(m === 'exec' ? { CNI_WASM_NO_DAEMON: '1' } : {}),
  };
  const cmd = [...wrap, join(path, 'bridge')];
  return withNetns(hostFd[m]!, () => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd[0], cmd.slice(1), { input: JSON.stringify(config), env, encoding: 'utf8', timeout: 60_000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms };
  });
}
function ok(r: Reply, what: string): any {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

const med = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const p90 = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)]; };
const fmt = (xs: number[]): string => `${med(xs).toFixed(1)} (${p90(xs).toFixed(1)})`;

/**
 * The burst's children are started by bench/launch.c (posix_spawn, as a
 * runtime's Go code starts plugins), built here with cc; without a compiler,
 * by this process's spawn(), which forks all of this Node process (~1.5 ms of
 * CPU per child, the same in every mode) and starts the 50th child ~75 ms
 * after the first.
 */
let launcher: string | null = null;
function buildLauncher(): void {
  const out = join(tmp, 'launch');
  const r = spawnSync('cc', ['-O2', '-o', out, join(ROOT, 'bench', 'launch.c')], { encoding: 'utf8' });
  if (r.status === 0) launcher = out;
  else log(`cc did not build bench/launch.c (${(r.stderr ?? r.error?.message ?? '').trim()}); the burst is started by spawn()`);
}

let firstFailure = '';
function concurrent(m: Mode, c: Cfg, n: number): Promise<{ ms: number; failed: number }> {
  const cfg = conf(m, { ...c, key: `cc${c.key}`, i: 7 });
  for (let i = 0; i < n; i++) mkns(`${P}k${m[0]}${i}`);
  const path = m === 'reference' ? REF : bin;
  const env = (i: number) => ({
    PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `conc-${i}`, CNI_NETNS: `/run/netns/${P}k${m[0]}${i}`, CNI_IFNAME: 'eth0', CNI_PATH: path,
    ...(m === 'exec' ? { CNI_WASM_NO_DAEMON: '1' } : {}),
  });
  const burst = launcher ? launched(m, path, cfg, n, env(0)) : spawned(m, path, cfg, n, env);
  return burst.then(({ ms, codes }) => {
    const bad = codes.filter((x) => x !== 0).length;
    if (bad) log(`${bad} of ${n} concurrent ADDs failed in ${m} mode; the first: ${firstFailure.trim()}`);
    firstFailure = '';
    // a runtime DELs every attachment, a failed ADD's too
    for (let i = 0; i < n; i++) ok(exec(m, 'DEL', cfg, `${P}k${m[0]}${i}`, `conc-${i}`), `${m} DEL`);
    for (let i = 0; i < n; i++) sh(['ip', 'netns', 'del', `${P}k${m[0]}${i}`], false);
    return { ms, failed: bad };
  });
}

/** The burst through the launcher: its own clock, from the first spawn to the last exit. */
function launched(m: Mode, path: string, cfg: object, n: number, env: NodeJS.ProcessEnv): Promise<{ ms: number; codes: number[] }> {
  const dir = join(tmp, `burst-${m}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const { CNI_CONTAINERID: _c, CNI_NETNS: _n, ...common } = env;
  return new Promise((res, rej) => {
    let out = '';
    // spawn() forks from the main thread while it is in the host netns: the launcher and its children are there
    const p = withNetns(hostFd[m]!, () => spawn(launcher!, [join(path, 'bridge'), String(n), `/run/netns/${P}k${m[0]}`, 'conc-', join(dir, 'config.json'), dir], {
      env: common, stdio: ['ignore', 'pipe', 'inherit'],
    }));
    p.stdout!.on('data', (d) => { out += d; });
    p.on('close', (code) => {
      const f = out.trim().split(' ');
      if (code !== 0 || f.length !== n + 1) return rej(new Error(`the burst launcher failed (${code}): ${out}`));
      const codes = f.slice(1).map(Number);
      const bad = codes.findIndex((x) => x !== 0);
      if (bad >= 0) firstFailure = readFileSync(join(dir, String(bad)), 'utf8');
      res({ ms: Number(f[0]), codes });
    });
  });
}

/** The burst by spawn() from this process (no C compiler). */
function spawned(m: Mode, path: string, cfg: object, n: number, env: (i: number) => NodeJS.ProcessEnv): Promise<{ ms: number; codes: number[] }> {
  const t0 = process.hrtime.bigint();
  // spawn() forks from the main thread while it is in the host netns
  const all = withNetns(hostFd[m]!, () => Array.from({ length: n }, (_, i) => new Promise<number>((res) => {
    const p = spawn(join(path, 'bridge'), [], { env: env(i), stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout!.on('data', (d) => { out += d; });
    p.on('close', (code) => { if (code !== 0 && !firstFailure) firstFailure = out; res(code ?? -1); });
    p.stdin!.end(JSON.stringify(cfg));
  })));
  return Promise.all(all).then((codes) => ({ ms: Number(process.hrtime.bigint() - t0) / 1e6, codes }));
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function peakRss(m: Mode, c: Cfg): number {
  const out = join(tmp, 'rss');
  const kb: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = exec(m, 'ADD', conf(m, c), `${P}c-${m}`, 'rss', [TIME_BIN, '-o', out, '-f', '%M']);
    ok(r, `${m} ADD (rss)`);
    kb.push(Number(readFileSync(out, 'utf8').trim().split('\n').pop()));
    ok(exec(m, 'DEL', { ...conf(m, c), prevResult: JSON.parse(r.stdout) }, `${P}c-${m}`, 'rss'), `${m} DEL (rss)`);
  }
  return med(kb);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const load0 = loadavg()[0];
  buildLauncher();
  writeFileSync(policy, JSON.stringify({ auditLog: join(tmp, 'audit.log'), stateDir: join(tmp, 'state'), storeDir: join(tmp, 'store'), pluginDirs: [] }));
  const inst = spawnSync(process.execPath, [CLI, 'install', '--bin-dir', bin, '--policy', policy, '--socket', sock, '--only', 'bridge,host-local', '--conf-dir', tmp], { encoding: 'utf8' });
  if (inst.status !== 0 || !/native shim/.test(inst.stdout)) throw new Error(`install --socket: ${inst.stdout}${inst.stderr}`);
  for (const m of MODES) { mkns(hostNs(m)); mkns(`${P}c-${m}`); hostFd[m] = openNetns(`/run/netns/${hostNs(m)}`); fds.push(hostFd[m]!); }
  let dlog = '';
  const wopt = args.includes('--workers') ? ['--workers', String(num('--workers', 2))] : [];
  daemon = spawn('ip', ['netns', 'exec', hostNs('resident'), process.execPath, CLI, '--policy', policy, 'daemon', '--socket', sock, ...wopt], { stdio: ['ignore', 'ignore', 'pipe'] });
  daemon.stderr!.on('data', (d) => { dlog += d; });
  for (let i = 0; i < 600 && !/serving/.test(dlog); i++) await new Promise((r) => setTimeout(r, 50));
  if (!/serving/.test(dlog)) throw new Error(`daemon did not start: ${dlog}`);
  const workers = /with (\d+) workers/.exec(dlog)?.[1] ?? '?';
  log(`daemon up (${workers} workers); ${ITER} iterations x ${CFGS.length} configs x ${MODES.length} modes`);

  const add: Record<string, Record<Mode, number[]>> = {};
  const del: Record<string, Record<Mode, number[]>> = {};
  for (const c of CFGS) {
    add[c.key] = { resident: [], exec: [], reference: [] };
    del[c.key] = { resident: [], exec: [], reference: [] };
    for (let it = -1; it < ITER; it++) { // -1: untimed warm-up
      const order = it % 2 ? MODES : [...MODES].reverse();
      if (it === -1) {
        for (let w = 0; w < WARM; w++) {
          for (const m of ['resident', 'reference'] as Mode[]) {
            const cid = `warm-${c.key}-${w}`;
            const result = ok(exec(m, 'ADD', conf(m, c), `${P}c-${m}`, cid), `${m} warm-up ADD ${c.label}`);
            ok(exec(m, 'DEL', { ...conf(m, c), prevResult: result }, `${P}c-${m}`, cid), `${m} warm-up DEL ${c.label}`);
          }
        }
      }
      cpuCounting = it >= 0;
      for (const m of order) {
        const cid = `res-${c.key}-${it + 1}`;
        const a = exec(m, 'ADD', conf(m, c), `${P}c-${m}`, cid);
        const result = ok(a, `${m} ADD ${c.label}`);
        const d = exec(m, 'DEL', { ...conf(m, c), prevResult: result }, `${P}c-${m}`, cid);
        ok(d, `${m} DEL ${c.label}`);
        if (it >= 0) { add[c.key][m].push(a.ms); del[c.key][m].push(d.ms); }
      }
    }
    log(`${c.label}: ADD ${MODES.map((m) => `${m} ${med(add[c.key][m]).toFixed(1)}`).join(', ')}`);
  }
  cpuCounting = false;
  const pairs = CFGS.length * ITER;
  // the resident numbers are the daemon's: check that it served them
  const st = spawnSync(process.execPath, [CLI, 'daemon', '--socket', sock, '--check'], { encoding: 'utf8' });
  const served = JSON.parse(st.stdout).served as number;
  if (served < CFGS.length * (ITER + 1) * 2) throw new Error(`the daemon served only ${served} calls`);

  const conc: Record<Mode, number> = { resident: 0, exec: 0, reference: 0 };
  const concFailed: Record<Mode, number> = { resident: 0, exec: 0, reference: 0 };
  const bursts: Record<Mode, number[]> = { resident: [], exec: [], reference: [] };
  for (let b = 0; b < BURSTS; b++) {
    for (const m of (b % 2 ? ['reference', 'resident', 'exec'] : MODES) as Mode[]) {
      if (m === 'exec' && b > 0) continue;
      const r = await concurrent(m, CFGS[0], CONC);
      bursts[m].push(r.ms);
      concFailed[m] += r.failed;
    }
  }
  for (const m of MODES) {
    conc[m] = med(bursts[m]);
    log(`${CONC} concurrent ADDs, ${m}: median ${conc[m].toFixed(0)} ms of ${bursts[m].map((x) => x.toFixed(0)).join(', ')}; ${concFailed[m]} failed`);
  }

  const rss: Record<Mode, number> = { resident: peakRss('resident', CFGS[0]), exec: peakRss('exec', CFGS[0]), reference: peakRss('reference', CFGS[0]) };

  // daemon RSS over many ADD/DEL cycles
  const samples: number[] = [rssKb(daemon.pid!)];
  const cyc0 = Date.now();
  for (let i = 1; i <= CYCLES; i++) {
    const a = exec('resident', 'ADD', conf('resident', CFGS[0]), `${P}c-resident`, `cyc-${i}`);
    const r = ok(a, 'cycle ADD');
    ok(exec('resident', 'DEL', { ...conf('resident', CFGS[0]), prevResult: r }, `${P}c-resident`, `cyc-${i}`), 'cycle DEL');
    if (i % Math.max(1, Math.floor(CYCLES / 10)) === 0) samples.push(rssKb(daemon.pid!));
  }
  const cycMs = Date.now() - cyc0;
  log(`daemon RSS over ${CYCLES} cycles (MiB): ${samples.map((k) => (k / 1024).toFixed(0)).join(' ')}`);

  const rows: string[][] = [];
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const target = (what: string, r: number, t: number): string => `${what} <= ${t}x: ${r <= t ? 'pass' : 'MISS'}`;
  for (const c of CFGS) {
    const [ra, ea, fa] = MODES.map((m) => add[c.key][m]);
    const [rd, ed, fd] = MODES.map((m) => del[c.key][m]);
    rows.push([`ADD ${c.label}`, fmt(ra), fmt(ea), fmt(fa), ratio(med(ra), med(fa)), ratio(med(ea), med(fa)), target('ADD', med(ra) / med(fa), 0.7)]);
    const dt = c.key === 'dsm' ? 0.5 : 0.8;
    rows.push([`DEL ${c.label}`, fmt(rd), fmt(ed), fmt(fd), ratio(med(rd), med(fd)), ratio(med(ed), med(fd)), target('DEL', med(rd) / med(fd), dt)]);
  }
  rows.push(['CPU per ADD+DEL pair, all four configs (ms; user+sys of the plugin processes, resident: shim + daemon)',
    ...MODES.map((m) => (cpuMs[m] / pairs).toFixed(1)), ratio(cpuMs.resident, cpuMs.reference), ratio(cpuMs.exec, cpuMs.reference), '']);
  const cw = (m: Mode) => `${conc[m].toFixed(0)}${concFailed[m] ? ` (${concFailed[m]} failed)` : ''}`;
  rows.push([`${CONC} concurrent ADDs, wall (IPv4; median of ${BURSTS} bursts, exec mode 1; started by ${launcher ? 'bench/launch.c' : 'spawn()'})`, cw('resident'), cw('exec'), cw('reference'), ratio(conc.resident, conc.reference), ratio(conc.exec, conc.reference), target('wall', conc.resident / conc.reference, 0.7)]);
  rows.push(['peak RSS of one ADD (MiB; resident: the shim only)', (rss.resident / 1024).toFixed(1), (rss.exec / 1024).toFixed(1), (rss.reference / 1024).toFixed(1), '', '', `shim <= 8 MiB: ${rss.resident <= 8192 ? 'pass' : 'MISS'}`]);
  const growth = samples[samples.length - 1] - samples[0];
  rows.push([`daemon RSS over ${CYCLES} ADD/DEL cycles (MiB: start -> max -> end)`, `${(samples[0] / 1024).toFixed(0)} -> ${(Math.max(...samples) / 1024).toFixed(0)} -> ${(samples[samples.length - 1] / 1024).toFixed(0)}`, '', '', '', '', `growth ${(growth / 1024).toFixed(1)} MiB`]);

  const head = '| measurement (ms: median (p90)) | resident | exec | reference | resident/ref | exec/ref | target |';
  const table = [head, '|---|---:|---:|---:|---:|---:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  console.log(table);
  const load1 = loadavg()[0];
  const md = [
    '<!-- resident: begin (written by bench/resident.ts) -->',
    '## Resident mode (`cni-wasm daemon` + native shim)',
    '',
    `- machine: ${availableParallelism()} CPUs, ${cpus()[0]?.model ?? '?'}; kernel ${release()}; Node ${process.version}; daemon with ${workers} worker threads`,
    `- run: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${ITER} iterations per row, ${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}`,
    `- resident: our native shim (host/shim/shim.c) forwarding to the daemon in the same host netns; exec: the same shim with CNI_WASM_NO_DAEMON=1 (it execs node, as the script shims do); reference: /usr/lib/cni. Same method as above: the exec of the plugin binary from inside a netns playing the host, modes taking turns, DEL gets prevResult; before each config's timed pairs, ${WARM} untimed ADD/DEL pairs for resident mode and the reference (a node's daemon is long warm) and one for exec mode (every exec-mode call starts cold anyway). CPU: user + sys of the timed calls only.`,
    `- peak RSS: \`${TIME_BIN} -f %M\` of one IPv4 ADD, median of 5 (for resident mode that is the shim alone: the work happens in the daemon). Daemon RSS: VmRSS of the daemon process (main thread + workers), sampled every ${Math.max(1, Math.floor(CYCLES / 10))} cycles (${(cycMs / 1000).toFixed(0)} s for ${CYCLES} cycles).`,
    '',
    table,
    '',
    `Daemon RSS samples (MiB): ${samples.map((k) => (k / 1024).toFixed(1)).join(', ')}.`,
    '',
    '<!-- resident: end -->',
  ].join('\n');
  if (write) {
    const f = join(ROOT, 'BENCHMARKS.md');
    const old = existsSync(f) ? readFileSync(f, 'utf8') : '# Benchmarks\n';
    const a = old.indexOf('<!-- resident: begin'), b = old.indexOf('<!-- resident: end -->');
    const next = a >= 0 && b > a ? old.slice(0, a) + md + old.slice(b + '<!-- resident: end -->'.length) : `${old.trimEnd()}\n\n${md}\n`;
    writeFileSync(f, next);
    log(`wrote the resident section of ${f}`);
  }
}

main().then(() => process.exit(0), (e) => { log(`bench failed: ${(e as Error).stack ?? e}`); process.exit(1); });
