// Ours vs the reference plugins (Debian's containernetworking-plugins in
// /usr/lib/cni), side by side in one run: bridge + host-local ADD and DEL
// latency in four configs, ADD latency as attachments pile up, peak RSS, and
// Node's own start-up cost. Prints a table and writes BENCHMARKS.md.
//
//   npm run bench                       (as root; 30 iterations, 200 attachments)
//   npm run bench -- --quick            (5 iterations, 20 attachments: does it work?)
//   npm run bench -- --iterations 50 --attachments 100 --out /tmp/b.md
//
// Every plugin runs as a runtime runs it: the binary exec'd with CNI_* in its
// environment and the config on stdin, from inside a netns that plays the
// host (one per implementation: cw-bench-ours, cw-bench-ref). The timed
// region is exactly that exec: the bench process setns()es its main thread
// into the host netns, spawns the plugin, and goes back; container netns are
// made and deleted outside it. Ours and the reference take turns, iteration by
// iteration, so machine noise hits both. All namespaces and the temp dir are
// removed at the end, also on failure or Ctrl-C. The machine's own network
// namespace is never touched.
import { spawnSync } from 'node:child_process';
import { ensurePackage as installIfMissing, have, netnsWithPrefix } from '../demo/system.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConflistRunner, type Exec, type ExecReply, type NetConfList, type RuntimeConf } from '../demo/conflist.js';
import { closeFd, openNetns, withNetns } from '../host/kernel/native.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CLI = join(ROOT, 'bin/cni-wasm.cjs');
const REFERENCE_BIN = '/usr/lib/cni';
const TIME_BIN = '/usr/bin/time';
const PREFIX = 'cw-bench-';

// ---------------------------------------------------------------- options

interface Options { iterations: number; attachments: number; out: string | null; quick: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { iterations: 30, attachments: 200, out: join(ROOT, 'BENCHMARKS.md'), quick: false };
  let iterSet = false;
  let attSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      return n;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--iterations' || a === '-n') { o.iterations = num(); iterSet = true; }
    else if (a === '--attachments') { o.attachments = num(); attSet = true; }
    else if (a === '--out') o.out = resolve(argv[++i] ?? '');
    else if (a === '--no-write') o.out = null;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [--quick] [--iterations N] [--attachments N] [--out FILE | --no-write]');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  if (o.quick) {
    if (!iterSet) o.iterations = 5;
    if (!attSet) o.attachments = 20;
  }
  if (o.attachments > 1000) throw new Error('--attachments: at most 1000');
  return o;
}

// ---------------------------------------------------------------- processes

interface Run { status: number; stdout: string; stderr: string }

function run(cmd: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Run {
  const r = spawnSync(cmd[0], cmd.slice(1), { input: opts.input, env: opts.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000 });
  if (r.error) return { status: -1, stdout: r.stdout ?? '', stderr: r.error.message };
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function must(cmd: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = run(cmd, opts);
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

const log = (s: string): void => { process.stderr.write(s + '\n'); };
const ensurePackage = (pkg: string, present: () => boolean): boolean => installIfMissing(pkg, present, log);


// ---------------------------------------------------------------- cleanup

let tmp: string | null = null;
const fds: number[] = [];
let interrupted: string | null = null;

const listOurNetns = (): string[] => netnsWithPrefix(PREFIX);

let cleanedUp = false;
function cleanup(): number {
  if (cleanedUp) return 0;
  cleanedUp = true;
  for (const fd of fds.splice(0)) { try { closeFd(fd); } catch { /* closed */ } }
  const names = listOurNetns();
  // containers first, then the hosts
  for (const n of names.sort((a, b) => Number(isHostNs(a)) - Number(isHostNs(b)))) run(['ip', 'netns', 'del', n]);
  if (tmp) { rmSync(tmp, { recursive: true, force: true }); tmp = null; }
  return names.length;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = sig;
    log(`${sig}: stopping at the next step and cleaning up`);
    setTimeout(() => { cleanup(); process.exit(130); }, 10_000).unref();
  });
}
process.on('exit', () => { cleanup(); });

async function step(): Promise<void> {
  // a signal's handler runs on the loop turn after the one that reads it
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

// ---------------------------------------------------------------- implementations

type ImplKey = 'ours' | 'ref';

interface Impl {
  key: ImplKey;
  label: string;
  hostNs: string;
  hostFd: number;
  path: string[];
  runner: ConflistRunner;
  /** the same runner, with each exec wrapped in /usr/bin/time */
  rssRunner: ConflistRunner;
}

const HOST_NS: Record<ImplKey, string> = { ours: `${PREFIX}ours`, ref: `${PREFIX}ref` };
const isHostNs = (n: string): boolean => Object.values(HOST_NS).includes(n);

/** The exec a runtime does, from inside the host netns: setns, spawn, setns back. */
function setnsExec(hostFd: number, wrap: (bin: string) => string[] = (b) => [b]): Exec {
  return ({ bin, env, stdin }): ExecReply => withNetns(hostFd, () => {
    const cmd = wrap(bin);
    const r = spawnSync(cmd[0], cmd.slice(1), { input: stdin, env, encoding: 'utf8', timeout: 60_000 });
    if (r.error) return { code: -1, stdout: r.stdout ?? '', stderr: r.error.message };
    if (r.signal) return { code: -1, stdout: r.stdout, stderr: `${r.stderr}killed by ${r.signal}\n` };
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  });
}

// ---------------------------------------------------------------- configs

interface Config { key: string; label: string; dual: boolean; masq: boolean; index: number }

const CONFIGS: Config[] = [
  { key: 'v4', label: 'IPv4', dual: false, masq: false, index: 0 },
  { key: 'v4masq', label: 'IPv4 + ipMasq', dual: false, masq: true, index: 1 },
  { key: 'dual', label: 'dual-stack', dual: true, masq: false, index: 2 },
  { key: 'dualmasq', label: 'dual-stack + ipMasq', dual: true, masq: true, index: 3 },
];
/** the attachment-scaling runs use IPv4 + ipMasq, on their own bridge and a /16 */
const SCALE: Config = { key: 'scale', label: 'IPv4 + ipMasq', dual: false, masq: true, index: 9 };

function conflist(impl: Impl, c: Config, dataDir: string): NetConfList {
  const v4 = c === SCALE ? '10.200.0.0/16' : `10.199.${c.index}.0/24`;
  const v6 = `fde4:8dba:82e1:${c.index}::/64`;
  return {
    cniVersion: '1.0.0',
    name: `bench-${impl.key}-${c.key}`,
    plugins: [{
      type: 'bridge',
      bridge: `cwb-${impl.key[0]}-${c.key}`,
      isGateway: true,
      ipMasq: c.masq,
      ipam: {
        type: 'host-local',
        ranges: c.dual ? [[{ subnet: v4 }], [{ subnet: v6 }]] : [[{ subnet: v4 }]],
        routes: c.dual ? [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] : [{ dst: '0.0.0.0/0' }],
        dataDir,
      },
    }],
  };
}

// ---------------------------------------------------------------- measuring

let seq = 0;

interface Attached { rt: RuntimeConf; ns: string; result: unknown; addMs: number }

function makeContainer(ns: string): RuntimeConf {
  run(['ip', 'netns', 'del', ns]);
  must(['ip', 'netns', 'add', ns]);
  return { containerId: `cw-bench-${process.pid}-${++seq}`, netns: `/run/netns/${ns}`, ifname: 'eth0' };
}

function add(impl: Impl, list: NetConfList, ns: string, runner = impl.runner): Attached {
  const rt = makeContainer(ns);
  const r = runner.add(list, rt);
  return { rt, ns, result: r.result, addMs: r.steps[0].ms };
}

/** DEL, then the container netns goes; returns the DEL's time. */
function del(impl: Impl, list: NetConfList, a: Attached, runner = impl.runner): number {
  const r = runner.del(list, a.rt, a.result);
  run(['ip', 'netns', 'del', a.ns]);
  return r.steps[0].ms;
}

/** Orders the two implementations differently on alternate iterations. */
const turns = (impls: Impl[], i: number): Impl[] => (i % 2 ? [...impls].reverse() : impls);

interface Stats { median: number; p90: number; n: number }

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return { median: NaN, p90: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const p90 = s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)];
  return { median, p90, n: s.length };
}

type Samples = Record<ImplKey, number[]>;
const samples = (): Samples => ({ ours: [], ref: [] });

interface Results {
  add: Record<string, Samples>;
  del: Record<string, Samples>;
  node: number[];
  scale0: Samples;
  scaleN: Samples;
  rss: Record<ImplKey, number[]>;
  nodeRss: number[];
}

async function measureConfig(impls: Impl[], c: Config, dataDir: string, n: number, res: Results, nodeToo: boolean): Promise<void> {
  res.add[c.key] = samples();
  res.del[c.key] = samples();
  // warm-up (untimed): creates the bridge, fills the page cache
  for (const impl of impls) {
    const list = conflist(impl, c, dataDir);
    del(impl, list, add(impl, list, `${PREFIX}c-${impl.key}`));
  }
  for (let i = 0; i < n; i++) {
    for (const impl of turns(impls, i)) {
      const list = conflist(impl, c, dataDir);
      const a = add(impl, list, `${PREFIX}c-${impl.key}`);
      res.add[c.key][impl.key].push(a.addMs);
      res.del[c.key][impl.key].push(del(impl, list, a));
    }
    if (nodeToo) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['-e', '0']);
      res.node.push(performance.now() - t0);
      if (r.status !== 0) throw new Error('node -e 0 failed');
    }
    await step();
  }
  const s = (k: ImplKey, m: Record<string, Samples>) => stats(m[c.key][k]).median.toFixed(1);
  log(`  ${c.label}: ADD ours ${s('ours', res.add)} ms / ref ${s('ref', res.add)} ms; DEL ours ${s('ours', res.del)} / ref ${s('ref', res.del)}`);
}

async function measureScale(impls: Impl[], dataDir: string, n: number, m: number, res: Results): Promise<void> {
  const fresh = async (into: Samples): Promise<void> => {
    for (let i = 0; i < n; i++) {
      for (const impl of turns(impls, i)) {
        const list = conflist(impl, SCALE, dataDir);
        const a = add(impl, list, `${PREFIX}f-${impl.key}`);
        into[impl.key].push(a.addMs);
        del(impl, list, a);
      }
      await step();
    }
  };
  for (const impl of impls) {
    const list = conflist(impl, SCALE, dataDir);
    del(impl, list, add(impl, list, `${PREFIX}f-${impl.key}`));
  }
  await fresh(res.scale0);
  log(`  ${m} attachments each: adding (untimed)`);
  const held: { impl: Impl; a: Attached }[] = [];
  for (let k = 0; k < m; k++) {
    for (const impl of impls) held.push({ impl, a: add(impl, conflist(impl, SCALE, dataDir), `${PREFIX}s-${impl.key}-${k}`) });
    if (k % 10 === 9) await step();
  }
  for (const impl of impls) {
    const bridge = `cwb-${impl.key[0]}-${SCALE.key}`;
    const ports = must(['ip', '-n', impl.hostNs, '-br', 'link', 'show', 'master', bridge]).trim().split('\n').length;
    if (ports !== m) throw new Error(`${impl.label}: expected ${m} ports on ${bridge}, found ${ports}`);
  }
  await fresh(res.scaleN);
  // (on failure or Ctrl-C cleanup() deletes the namespaces, which removes all of it at once)
  log(`  removing the ${held.length} attachments (untimed)`);
  for (const { impl, a } of held.reverse()) {
    del(impl, conflist(impl, SCALE, dataDir), a);
    if (seq % 20 === 0) await step();
  }
  const s = (x: Samples, k: ImplKey) => stats(x[k]).median.toFixed(1);
  log(`  ADD at 0: ours ${s(res.scale0, 'ours')} / ref ${s(res.scale0, 'ref')} ms; at ${m}: ours ${s(res.scaleN, 'ours')} / ref ${s(res.scaleN, 'ref')} ms`);
}

/** Peak RSS (KiB, from /usr/bin/time -f %M) of one ADD, several times. */
async function measureRss(impls: Impl[], dataDir: string, rssFile: string, times: number, res: Results): Promise<void> {
  const c = CONFIGS[3];
  const readKb = (): number => {
    const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    if (!Number.isFinite(kb) || kb <= 0) throw new Error(`cannot read ${TIME_BIN} output`);
    return kb;
  };
  for (let i = 0; i < times; i++) {
    for (const impl of turns(impls, i)) {
      const list = conflist(impl, c, dataDir);
      const a = add(impl, list, `${PREFIX}c-${impl.key}`, impl.rssRunner);
      res.rss[impl.key].push(readKb());
      del(impl, list, a);
    }
    must([TIME_BIN, '-o', rssFile, '-f', '%M', process.execPath, '-e', '0']);
    res.nodeRss.push(readKb());
    await step();
  }
}

// ---------------------------------------------------------------- report

interface Row { what: string; ours: string; ref: string; ratio: string; target: string; mark: string }

const ms = (s: Stats): string => (Number.isFinite(s.median) ? `${s.median.toFixed(1)} (${s.p90.toFixed(1)})` : 'n/a');
const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');
const mark = (ok: boolean): string => (ok ? 'pass' : 'MISS');

function rows(res: Results, m: number, haveRss: boolean): Row[] {
  const out: Row[] = [];
  for (const c of CONFIGS) {
    for (const [cmd, data] of [['ADD', res.add], ['DEL', res.del]] as const) {
      const o = stats(data[c.key].ours);
      const r = stats(data[c.key].ref);
      const ratio = o.median / r.median;
      let target = '';
      let mk = '';
      if (c.key === 'dualmasq') {
        const limit = cmd === 'ADD' ? 1.0 : 0.5;
        target = `<= ${limit.toFixed(1)}x`;
        mk = mark(ratio <= limit);
      }
      out.push({ what: `${cmd} ${c.label}`, ours: ms(o), ref: ms(r), ratio: x(ratio), target, mark: mk });
    }
  }
  const s0 = { ours: stats(res.scale0.ours), ref: stats(res.scale0.ref) };
  const sN = { ours: stats(res.scaleN.ours), ref: stats(res.scaleN.ref) };
  out.push({ what: `ADD ${SCALE.label}, 0 attachments`, ours: ms(s0.ours), ref: ms(s0.ref), ratio: x(s0.ours.median / s0.ref.median), target: '', mark: '' });
  out.push({ what: `ADD ${SCALE.label}, ${m} attachments`, ours: ms(sN.ours), ref: ms(sN.ref), ratio: x(sN.ours.median / sN.ref.median), target: '', mark: '' });
  const gO = sN.ours.median / s0.ours.median;
  const gR = sN.ref.median / s0.ref.median;
  out.push({ what: `ADD growth, ${m} vs 0 attachments`, ours: x(gO), ref: x(gR), ratio: '', target: 'ours <= 1.10x', mark: mark(gO <= 1.1) });
  const node = stats(res.node);
  out.push({ what: 'node -e 0 start', ours: ms(node), ref: '', ratio: '', target: '', mark: '' });
  for (const cmd of ['ADD', 'DEL'] as const) {
    const data = cmd === 'ADD' ? res.add : res.del;
    const o = stats(data.v4.ours).median - node.median;
    const r = stats(data.v4.ref).median;
    out.push({ what: `${cmd} IPv4, ours minus node start`, ours: o.toFixed(1), ref: r.toFixed(1), ratio: x(o / r), target: '<= 1.5x', mark: mark(o / r <= 1.5) });
  }
  if (haveRss) {
    const mb = (kb: number[]): number => stats(kb).median / 1024;
    const o = mb(res.rss.ours);
    const r = mb(res.rss.ref);
    out.push({ what: 'peak RSS, one ADD dual-stack + ipMasq (MiB)', ours: o.toFixed(1), ref: r.toFixed(1), ratio: x(o / r), target: '', mark: '' });
    out.push({ what: 'peak RSS, node -e 0 (MiB)', ours: mb(res.nodeRss).toFixed(1), ref: '', ratio: '', target: '', mark: '' });
  } else {
    out.push({ what: 'peak RSS', ours: 'n/a', ref: 'n/a', ratio: '', target: '', mark: `no ${TIME_BIN}` });
  }
  return out;
}

const HEAD: Row = { what: 'measurement (ms: median (p90))', ours: 'ours', ref: 'reference', ratio: 'ours/ref', target: 'target', mark: '' };

function textTable(rs: Row[]): string {
  const all = [HEAD, ...rs];
  const cols: (keyof Row)[] = ['what', 'ours', 'ref', 'ratio', 'target', 'mark'];
  const w = cols.map((c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: Row): string => cols.map((c, i) => (i === 0 ? r[c].padEnd(w[i]) : r[c].padStart(w[i]))).join('  ').trimEnd();
  return [line(HEAD), w.map((n) => '-'.repeat(n)).join('  '), ...rs.map(line)].join('\n');
}

function mdTable(rs: Row[]): string {
  const cols: (keyof Row)[] = ['what', 'ours', 'ref', 'ratio', 'target', 'mark'];
  const line = (r: Row): string => `| ${cols.map((c) => r[c]).join(' | ')} |`;
  return [line(HEAD), `|${cols.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rs.map(line)].join('\n');
}

function machine(): Record<string, string> {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  const refVersion = run(['dpkg-query', '-W', '-f', '${Version}', 'containernetworking-plugins']).stdout.trim() || 'unknown';
  return {
    cpus: String(availableParallelism()),
    cpu,
    kernel: release(),
    node: process.version,
    reference: `containernetworking-plugins ${refVersion} (${REFERENCE_BIN})`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the bench makes network namespaces: run it as root');
  if (!have('ip')) throw new Error("'ip' is missing (apt-get install -y iproute2)");
  if (!ensurePackage('containernetworking-plugins', () => existsSync(join(REFERENCE_BIN, 'bridge')) && existsSync(join(REFERENCE_BIN, 'host-local')))) {
    throw new Error(`no reference plugins in ${REFERENCE_BIN} and apt-get install containernetworking-plugins failed`);
  }
  if (!ensurePackage('nftables', () => have('nft'))) throw new Error('nft is missing (apt-get install -y nftables): our ipMasq needs it');
  if (!ensurePackage('iptables', () => have('iptables'))) throw new Error('iptables is missing: the reference ipMasq needs it');
  const haveRss = ensurePackage('time', () => existsSync(TIME_BIN));
  if (!haveRss) log(`no ${TIME_BIN}: peak RSS is not measured`);
  for (const t of ['bridge', 'host-local']) {
    if (!existsSync(join(ROOT, 'dist/plugins', t, 'manifest.json'))) throw new Error(`plugin '${t}' is not built (npm run build)`);
  }
  const mtime = (p: string): number => { try { return statSync(p).mtimeMs; } catch { return 0; } };
  const stale = mtime(join(ROOT, 'dist/cni-wasm.cjs')) < mtime(join(ROOT, 'dist/host/cli.js'));
  if (stale) log('WARNING: dist/cni-wasm.cjs is older than dist/host (run npm run build): measuring the slower unbundled path');

  for (const n of listOurNetns()) run(['ip', 'netns', 'del', n]); // leftovers of an interrupted run
  tmp = mkdtempSync(join(tmpdir(), 'cw-bench-'));
  const bin = join(tmp, 'bin');
  const policyFile = join(tmp, 'policy.json');
  const dataDir = join(tmp, 'ipam');
  const rssFile = join(tmp, 'rss');
  writeFileSync(policyFile, JSON.stringify({ auditLog: join(tmp, 'audit.log'), stateDir: join(tmp, 'state'), storeDir: dataDir, pluginDirs: [] }, null, 2));
  must([process.execPath, CLI, 'install', '--bin-dir', bin, '--policy', policyFile, '--only', 'bridge,host-local']);
  const sha = (t: string): string => (JSON.parse(readFileSync(join(ROOT, 'dist/plugins', t, 'manifest.json'), 'utf8')) as { sha256: string }).sha256.slice(0, 12);

  const impls: Impl[] = [];
  for (const [key, label, path] of [['ours', 'cni-wasm', [bin]], ['ref', 'reference', [REFERENCE_BIN]]] as const) {
    const hostNs = HOST_NS[key];
    must(['ip', 'netns', 'add', hostNs]);
    must(['ip', '-n', hostNs, 'link', 'set', 'lo', 'up']);
    const hostFd = openNetns(`/run/netns/${hostNs}`);
    fds.push(hostFd);
    impls.push({
      key, label, hostNs, hostFd, path: [...path],
      runner: new ConflistRunner({ path: [...path], exec: setnsExec(hostFd) }),
      rssRunner: new ConflistRunner({ path: [...path], exec: setnsExec(hostFd, (b) => [TIME_BIN, '-o', rssFile, '-f', '%M', b]) }),
    });
  }

  const res: Results = { add: {}, del: {}, node: [], scale0: samples(), scaleN: samples(), rss: { ours: [], ref: [] }, nodeRss: [] };
  const load0 = loadavg()[0];
  const t0 = Date.now();
  log(`bench: ${o.iterations} iterations per config, ${o.attachments} attachments; ours (bridge ${sha('bridge')}, host-local ${sha('host-local')}) vs ${REFERENCE_BIN}`);
  for (const c of CONFIGS) await measureConfig(impls, c, dataDir, o.iterations, res, c.key === 'v4');
  await measureScale(impls, dataDir, o.iterations, o.attachments, res);
  if (haveRss) await measureRss(impls, dataDir, rssFile, Math.min(5, o.iterations), res);
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  const load1 = loadavg()[0];

  const rs = rows(res, o.attachments, haveRss);
  console.log();
  console.log(textTable(rs));
  const misses = rs.filter((r) => r.mark === 'MISS').length;
  console.log();
  console.log(`${rs.filter((r) => r.mark === 'pass').length} targets met, ${misses} missed (${secs} s, load average ${load0.toFixed(2)} -> ${load1.toFixed(2)})`);

  if (o.out) {
    const m = machine();
    const md = [
      '# Benchmarks',
      '',
      `cni-wasm (bridge + host-local, WebAssembly components on Node) against the reference Go plugins, measured by \`npm run bench${o.quick ? ' -- --quick' : ''}\`${o.quick ? ' (a QUICK run: too few samples to judge by)' : ''}.`,
      '',
      `- machine: ${m.cpus} CPUs, ${m.cpu}; kernel ${m.kernel}; Node ${m.node}`,
      `- reference: ${m.reference}`,
      `- ours: bridge ${sha('bridge')}, host-local ${sha('host-local')}${stale ? ' (UNBUNDLED host: dist/cni-wasm.cjs was stale)' : ''}`,
      `- run: ${m.date}, ${o.iterations} iterations per row, ${o.attachments} attachments, ${secs} s, load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}`,
      '',
      '## Method',
      '',
      '1. Each number is the wall time of exec\'ing the plugin binary as a runtime does (CNI_* env, config on stdin, cniVersion 1.0.0), from inside a throwaway netns playing the host; container netns are made and removed outside the timed region, after one untimed warm-up.',
      `2. Ours and the reference take turns every iteration (the order alternates), so noise hits both; DEL gets the ADD result as prevResult, as libcni sends it. "Attachments": ${o.attachments} containers are attached (untimed) to one ${SCALE.label} bridge per implementation, then fresh ADDs are timed.`,
      `3. Peak RSS is \`${TIME_BIN} -f %M\` of one ADD (the plugin and any child it waits for), median of ${Math.min(5, o.iterations)}; "ours minus node start" subtracts the median \`node -e 0\` time from our median.`,
      '',
      '## Results',
      '',
      mdTable(rs),
      '',
      `${rs.filter((r) => r.mark === 'pass').length} targets met, ${misses} missed.`,
      '',
    ].join('\n');
    // Hand-written analysis below the marker survives a re-run.
    const MARKER = '<!-- analysis: kept across bench runs -->';
    const old = existsSync(o.out) ? readFileSync(o.out, 'utf8') : '';
    const kept = old.includes(MARKER) ? old.slice(old.indexOf(MARKER)) : '';
    writeFileSync(o.out, kept ? `${md}\n${kept}` : md);
    console.log(`wrote ${o.out}`);
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  console.error(interrupted ? `bench interrupted (${interrupted})` : `bench FAILED: ${(e as Error).message}`);
  const steps = (e as { steps?: { stderr: string }[] }).steps;
  const last = steps?.[steps.length - 1];
  if (!interrupted && last?.stderr.trim()) console.error(last.stderr.trim().split('\n').slice(-15).map((l) => '    ' + l).join('\n'));
} finally {
  const n = cleanup();
  const left = listOurNetns();
  log(`cleanup: deleted ${n} namespaces, removed the temp dir${left.length ? `; LEFT: ${left.join(' ')}` : ''}`);
  if (left.length) code = 1;
}
process.exit(code);
