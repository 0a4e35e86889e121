// The command line. With CNI_COMMAND set it is a CNI plugin (the type comes
// from --type or from the name it was invoked as); otherwise it is the
// operator's tool: install shims, list plugins, read the audit log, approve
// third-party components.
import { basename, join, resolve } from 'node:path';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { invoke, readStdin } from './invoke.js';
import { bundledDir, prepareThirdParty } from './sandbox/loader.js';
import { readRegularFile } from './sandbox/files.js';
import { packageRoot } from './paths.js';
import type { Manifest } from './sandbox/package.js';
import { DEFAULT_POLICY_FILE, loadPolicy } from './gate/policy.js';
import { type AuditFilter, type AuditRecord, escapeText, formatRecord, matches, parseSince, safeJson } from './gate/audit.js';

/** The policy the shims `cni-wasm install` wrote into binDir pass (undefined: none found). */
function shimPolicy(binDir: string): string | undefined {
  let names: string[];
  try { names = readdirSync(binDir); } catch { return undefined; }
  for (const n of names.sort()) {
    let text: string;
    try { text = readRegularFile(join(binDir, n), { maxBytes: 4096, what: 'shim' }).toString('utf8'); } catch { continue; }
    if (!text.includes('# cni-wasm shim for')) continue;
    const m = /--policy '((?:[^']|'\\'')*)'/.exec(text);
    return m ? m[1].replace(/'\\''/g, "'") : undefined;
  }
  return undefined;
}

/** The narrowest grant of each interface a component imports. */
function grantsFor(imports: string[], storeDir: string): Record<string, unknown> {
  const g: Record<string, unknown> = {};
  for (const i of imports) {
    if (i === 'links' || i === 'addresses' || i === 'routes') g[i] = { container: true };
    else if (i === 'sysctl') g[i] = { container: true, keys: [] };
    else if (i === 'store') g[i] = { dirs: [storeDir] };
    else if (i === 'delegate') g[i] = { types: [] };
    else if (i === 'dns') g[i] = { paths: [] };
    else if (i === 'files') g[i] = { paths: [], dirs: [] };
    else if (i === 'tc' || i === 'neighbours') g[i] = { container: true };
    else if (i === 'groups' || i === 'uplinks') g[i] = true;
    else if (i === 'firewall' || i === 'portmap' || i === 'log') g[i] = true;
  }
  return g;
}

// the runner and validate: loaded only by the operator CLI, never in CNI mode
type RunnerModule = typeof import('./runner/command.js');
import { SUPPORTED_VERSIONS } from './cni/versions.js';

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function execMode(type: string, policy: string | undefined): never {
  const out = invoke(type, process.env, readStdin, policy);
  // fd 1 directly: process.stdout would load the stream machinery (~2 ms)
  if (out.stdout) writeSync(1, out.stdout);
  process.exit(out.exitCode);
}

function bundledManifests(): Manifest[] {
  if (!existsSync(bundledDir())) return [];
  return readdirSync(bundledDir(), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(bundledDir(), d.name, 'manifest.json')))
    .map((d) => JSON.parse(readFileSync(join(bundledDir(), d.name, 'manifest.json'), 'utf8')) as Manifest)
    .sort((a, b) => a.type.localeCompare(b.type));
}

const NATIVE_SHIM = 'build/cni-wasm-shim';
const SHIM_MARKER = '@@CNI-WASM-SHIM-CONFIG-V1@@\n';
const SHIM_CONFIG_SIZE = 4096;

function nativeShim(): Buffer | null {
  try { return readFileSync(join(packageRoot(), NATIVE_SHIM)); } catch { return null; }
}

/** A copy of the native shim with its settings written into its config block (host/shim/shim.c). */
function writeNativeShim(bin: Buffer, dest: string, conf: Record<string, string>): void {
  const marker = Buffer.from(SHIM_MARKER);
  let at = -1;
  for (let i = bin.indexOf(marker); i >= 0; i = bin.indexOf(marker, i + 1)) {
    // the block, not the literal the shim compares with: the marker then zeros
    if (bin.subarray(i + marker.length, i + SHIM_CONFIG_SIZE).every((b) => b === 0)) { at = i; break; }
  }
  if (at < 0) throw new Error(`${NATIVE_SHIM} has no config block`);
  const text = SHIM_MARKER + Object.entries(conf).map(([k, v]) => {
    if (/[\n\0]/.test(v)) throw new Error(`shim setting ${k} may not contain a newline`);
    return `${k}=${v}\n`;
  }).join('');
  const bytes = Buffer.from(text);
  if (bytes.length >= SHIM_CONFIG_SIZE) throw new Error('shim settings do not fit its config block');
  const out = Buffer.from(bin);
  out.fill(0, at, at + SHIM_CONFIG_SIZE);
  bytes.copy(out, at);
  const tmp = `${dest}.${process.pid}.tmp`;
  writeFileSync(tmp, out, { mode: 0o755 });
  renameSync(tmp, dest);
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** CNI mode is the hot path (a runtime execs it per container): the only
 *  flags a shim passes are read here, without loading commander. */
function execArgs(args: string[]): { type?: string; policy?: string } | null {
  const out: { type?: string; policy?: string } = {};
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--type' && args[i + 1]) out.type = args[i + 1];
    else if (args[i] === '--policy' && args[i + 1]) out.policy = args[i + 1];
    else return null;
  }
  return out;
}

/** [--type dhcp] [--policy P] daemon FLAGS...: the DHCP daemon's arguments, else null. */
function dhcpDaemonArgs(args: string[], invokedAs: string): { args: string[]; policy?: string } | null {
  let type = invokedAs;
  let policy: string | undefined;
  let i = 0;
  for (; i + 1 < args.length && (args[i] === '--type' || args[i] === '--policy'); i += 2) {
    if (args[i] === '--type') type = args[i + 1];
    else policy = args[i + 1];
  }
  if (type !== 'dhcp' || args[i] !== 'daemon') return null;
  return { args: args.slice(i + 1), policy: policy ?? process.env.CNI_WASM_POLICY };
}

export function main(argv: string[]): void {
  const invokedAs = basename(argv[1] ?? '').replace(/\.c?js$/, '');
  const fast = process.env.CNI_COMMAND ? execArgs(argv.slice(2)) : null;
  if (fast) execMode(fast.type ?? invokedAs, fast.policy);
  if (!process.env.CNI_COMMAND) {
    // `dhcp daemon [flags]`: the dhcp shim run as the reference's daemon is (host/dhcp/daemon.ts)
    const d = dhcpDaemonArgs(argv.slice(2), invokedAs);
    if (d) {
      import('./dhcp/daemon.js').then((m) => m.runDhcpDaemon(d.args, d.policy)).catch((e) => {
        console.error(`dhcp daemon: ${(e as Error).message}`);
        process.exit(1);
      });
      return;
    }
  }
  if (!process.env.CNI_COMMAND && argv[2] === '--type' && argv[3]) {
    // A shim (it always starts with --type) run by hand, without
    // CNI_COMMAND, whatever else it is given: what the reference plugins
    // (libcni's skel) do: their "about" text on stderr, nothing on stdout, exit 0.
    writeSync(2, `CNI ${argv[3]} plugin cni-wasm v${packageVersion()}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    process.exit(0);
  }
  Promise.all([import('commander'), import('./runner/command.js')])
    .then(([{ Command }, runner]) => operatorCli(Command, runner, argv, invokedAs));
}

function operatorCli(Command: typeof import('commander').Command, runner: RunnerModule, argv: string[], invokedAs: string): void {
  const program = new Command('cni-wasm')
    .description('CNI plugins that run as sandboxed WebAssembly components.\n' +
      'With CNI_COMMAND set this is a CNI plugin: the runtime execs it as /opt/cni/bin/<type>.')
    .option('--type <type>', 'plugin type to run in CNI mode (default: the name this was invoked as)')
    .option('--policy <file>', 'policy file (default: $CNI_WASM_POLICY or /etc/cni-wasm/policy.json)')
    .version(packageVersion(), '-V, --version', 'print the cni-wasm version')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError();

  program.action((opts: { type?: string; policy?: string }) => {
    if (process.env.CNI_COMMAND) execMode(opts.type ?? invokedAs, opts.policy);
    program.help();
  });

  program.command('install')
    .description('write one executable shim per bundled plugin type (and per third-party type the policy pins) into a CNI bin dir')
    .requiredOption('--bin-dir <dir>', 'where runtimes look for plugins, e.g. /opt/cni/bin')
    .option('--policy <file>', 'policy file the shims pass on')
    .option('--only <types>', 'comma-separated types to install (default: all bundled)')
    .option('--conf-dir <dir>', 'network configs to check for plugin types we do not provide (default: $NETCONFPATH or /etc/cni/net.d)')
    .option('--native', 'write the native shim (build/cni-wasm-shim): it forwards calls to `cni-wasm daemon` and runs them itself when none serves it')
    .option('--socket <path>', 'the daemon socket native shims use (implies --native; default /run/cni-wasm/cni-wasm.sock)')
    .action((o: { binDir: string; policy?: string; only?: string; confDir?: string; native?: boolean; socket?: string }) => {
      o.policy ??= program.opts().policy;
      const dir = resolve(o.binDir);
      const only = o.only ? new Set(o.only.split(',').map((t) => t.trim()).filter(Boolean)) : null;
      const provided = new Set(bundledManifests().map((m) => m.type));
      const approved = o.policy ? Object.keys(loadPolicy(o.policy).plugins).filter((t) => loadPolicy(o.policy).plugins[t].sha256) : [];
      const unknown = only ? [...only].filter((t) => !provided.has(t) && !approved.includes(t)) : [];
      if (unknown.length) {
        console.error(`unknown plugin type${unknown.length > 1 ? 's' : ''} in --only: ${unknown.join(', ')} (bundled: ${[...provided].join(', ')})`);
        process.exit(1);
      }
      runner.warnUnprovided(o.confDir || process.env.NETCONFPATH || runner.DEFAULT_NETCONFPATH, only ?? provided, o.policy, dir);
      mkdirSync(dir, { recursive: true });
      const entry = join(packageRoot(), 'bin/cni-wasm.cjs');
      let native: Buffer | null = null;
      if (o.native || o.socket) {
        native = nativeShim();
        if (!native) console.error(`cni-wasm: the native shim ${join(packageRoot(), NATIVE_SHIM)} is not built (npm run build:shim needs a C compiler); writing script shims`);
      }
      // the bundled types, and the third-party types the policy approves (pinned, present in a plugin dir)
      const types: { type: string; sha256: string; thirdParty: boolean }[] = bundledManifests().map((m) => ({ type: m.type, sha256: m.sha256, thirdParty: false }));
      if (o.policy) {
        const pol = loadPolicy(o.policy);
        for (const [type, pp] of Object.entries(pol.plugins)) {
          if (!pp.sha256 || provided.has(type) || (only && !only.has(type))) continue;
          if (!pol.pluginDirs.some((d) => existsSync(join(d, `${type}.wasm`)))) {
            console.error(`cni-wasm: the policy pins '${type}', but no ${type}.wasm is in its pluginDirs (${pol.pluginDirs.join(', ')}); no shim written`);
            continue;
          }
          types.push({ type, sha256: pp.sha256, thirdParty: true });
        }
      }
      for (const m of types) {
        if (only && !only.has(m.type)) continue;
        if (native) {
          const shim = join(dir, m.type);
          const conf = { socket: resolve(o.socket ?? '/run/cni-wasm/cni-wasm.sock'), node: process.execPath, entry, type: m.type, policy: o.policy ? resolve(o.policy) : '' };
          writeNativeShim(native, shim, conf);
          console.log(`${shim} -> ${m.type} (sha256 ${m.sha256.slice(0, 12)}; native shim, daemon socket ${conf.socket})`);
          continue;
        }
        const args = [shQuote(process.execPath), shQuote(entry), '--type', shQuote(m.type)];
        if (o.policy) args.push('--policy', shQuote(resolve(o.policy)));
        const shim = join(dir, m.type);
        writeFileSync(shim, `#!/bin/sh\n# cni-wasm shim for the '${m.type}' plugin (written by cni-wasm install)\nexec ${args.join(' ')} "$@"\n`);
        chmodSync(shim, 0o755);
        console.log(`${shim} -> ${m.type} (sha256 ${m.sha256.slice(0, 12)}${m.thirdParty ? ', third-party, approved by the policy' : ''})`);
      }
    });

  program.command('daemon')
    .description('serve CNI calls from native shims over a root-only unix socket (resident mode); --check: is one serving?')
    .option('--socket <path>', 'unix socket (default /run/cni-wasm/cni-wasm.sock)')
    .option('--workers <n>', 'worker threads (default: twice the machine\'s parallelism, at least 4)')
    .option('--check', 'exit 0 if a daemon answers on the socket (prints its status), else 1')
    .action(async (o: { socket?: string; workers?: string; check?: boolean }) => {
      const d = await import('./daemon/server.js');
      if (o.check) {
        const r = await d.checkDaemon(o.socket);
        if (r.ok) console.log(JSON.stringify(r.status));
        else console.error(`not serving: ${r.why}`);
        process.exit(r.ok ? 0 : 1);
      }
      const workers = o.workers === undefined ? undefined : Number(o.workers);
      if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 256)) {
        console.error('--workers must be an integer from 1 to 256');
        process.exit(1);
      }
      try {
        await d.runDaemon({ socket: o.socket, policy: program.opts().policy, workers });
      } catch (e) {
        console.error(`cni-wasm daemon: ${(e as Error).message}`);
        process.exit(1);
      }
    });

  runner.registerRunner(program, () => bundledManifests().map((m) => m.type));

  program.command('plugins')
    .description('list the bundled plugin components: type, digest, size, imported interfaces')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const ms = bundledManifests();
      if (o.json) { console.log(JSON.stringify(ms, null, 2)); return; }
      console.log(['TYPE'.padEnd(12), 'SHA256'.padEnd(14), 'SIZE'.padStart(8), '  MEM', '  IMPORTS'].join(' '));
      for (const m of ms) {
        console.log([m.type.padEnd(12), m.sha256.slice(0, 12).padEnd(14), String(m.size).padStart(8),
          `${(m.maxMemoryPages * 64) / 1024}M`.padStart(5), ' ', m.imports.join(', ')].join(' '));
      }
    });

  program.command('audit')
    .description('read the audit log: what each plugin asked the host to do, and what it was told')
    .option('--file <file>', 'audit log (default: the one of the policy; without --policy, of the policy the shims in --bin-dir pass)')
    .option('--bin-dir <dir>', 'where `cni-wasm install` put the shims, to find their policy', '/opt/cni/bin')
    .option('--container <id>', 'only this container id (or id prefix)')
    .option('--plugin <type>', 'only this plugin type')
    .option('--command <cmd>', 'only this CNI command (ADD, DEL, CHECK, GC, STATUS)')
    .option('--call <call>', 'only this host call ("links.remove"), or a prefix ("links." or "links.*")')
    .option('--since <when>', 'only records since a time (2026-12-01T08:00:00Z) or a duration back from now (10m, 2h, 1d)')
    .option('--denied', 'only calls the policy denied (allowExec refusals included)')
    .option('--json', 'print the records as JSON lines')
    .action((o: { file?: string; binDir: string; container?: string; plugin?: string; command?: string; call?: string; since?: string; denied?: boolean; json?: boolean }) => {
      let file = o.file;
      if (!file) {
        const explicit: string | undefined = program.opts().policy || process.env.CNI_WASM_POLICY || undefined;
        file = loadPolicy(explicit ?? shimPolicy(o.binDir) ?? DEFAULT_POLICY_FILE).auditLog;
      }
      let since: number | undefined;
      try { since = o.since ? parseSince(o.since) : undefined; } catch (e) { console.error((e as Error).message); process.exit(2); }
      const filter: AuditFilter = { container: o.container, plugin: o.plugin, denied: o.denied, since, command: o.command, call: o.call };
      let text = '';
      try { text = readFileSync(file, 'utf8'); } catch (e) { console.error(`cannot read ${file}: ${escapeText((e as Error).message)}`); process.exit(1); }
      let bad = 0;
      const out: string[] = [];
      for (const line of text.split('\n')) {
        if (!line) continue;
        let r: AuditRecord;
        try { r = JSON.parse(line); } catch { bad++; continue; }
        if (!r || typeof r !== 'object' || typeof r.call !== 'string') { bad++; continue; }
        if (!matches(r, filter)) continue;
        out.push(o.json ? safeJson(r) : formatRecord(r));
      }
      if (out.length) writeSync(1, out.join('\n') + '\n');
      if (bad) console.error(`${file}: ${bad} line(s) are not audit records and were skipped`);
    });

  program.command('approve')
    .description('prepare a third-party component (checks its imports and memory limit, transpiles it once) and print the policy entry that pins it')
    .argument('<component>', 'the component file, named <type>.wasm')
    .option('--type <type>', 'plugin type (default: the file name without .wasm)')
    .action(async (file: string, o: { type?: string }) => {
      const policy = loadPolicy(program.opts().policy);
      const type = o.type ?? basename(file).replace(/\.wasm$/, '');
      try {
        const m = await prepareThirdParty(resolve(file), type, policy);
        console.log(`component '${type}' imports: ${m.imports.join(', ') || '(nothing)'}; memory limit ${(m.maxMemoryPages * 64) / 1024} MiB`);
        console.log('add to the policy "plugins"; these are the grants its imports can use at the least');
        console.log('(container namespace only, no names, keys, paths or types: widen only what it needs):');
        console.log(JSON.stringify({ [type]: { sha256: m.sha256, grants: grantsFor(m.imports, policy.storeDir) } }, null, 2));
      } catch (e) {
        console.error(`refused: ${escapeText((e as Error).message)}`);
        process.exit(1);
      }
    });

  program.parseAsync(argv).catch((e) => { console.error((e as Error).message); process.exit(1); });
}
