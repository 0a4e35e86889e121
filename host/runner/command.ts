// The runner's and validate's subcommands, registered on the operator CLI
// (host/cli.ts). Errors: one clear line on stderr (with --json also a JSON
// document on stdout) and exit status 1, as cnitool does.
import { writeSync } from 'node:fs';
import type { Command } from 'commander';
import { loadPolicy } from '../gate/policy.js';
import { locatePlugin } from '../sandbox/loader.js';
import { type ConfList, RunnerError, confListFromBytes, loadAll } from './conf.js';
import { DEFAULT_CACHE_DIR, cacheFile, readRecord } from './cache.js';
import { cnitoolResult, summarize } from './format.js';
export { loadAll } from './conf.js';
export { DEFAULT_CNI_PATH, DEFAULT_NETCONFPATH } from './runner.js';
import { DEFAULT_CNI_PATH, DEFAULT_NETCONFPATH, PluginError, type RunCommand, Runner, runtimeFromEnv } from './runner.js';
import { type FileReport, type TypeResolver, validatePath } from './validate.js';

interface RunFlags { ifname?: string; containerId?: string; cacheDir?: string; confDir?: string; json?: boolean; socket?: string }

const out = (s: string) => { if (s) writeSync(1, s); };
const err = (s: string) => { if (s) writeSync(2, s); };

function fail(e: unknown, json: boolean | undefined): never {
  const msg = e instanceof Error ? e.message : String(e);
  if (json) {
    const doc: Record<string, unknown> = { error: msg };
    if (e instanceof PluginError) {
      doc.plugin = e.plugin.type;
      if (e.plugin.name) doc.pluginName = e.plugin.name;
      doc.command = e.command;
      if (e.code) doc.code = e.code;
      doc.msg = e.msg;
      if (e.details) doc.details = e.details;
    }
    out(JSON.stringify(doc) + '\n');
  }
  err(msg + '\n');
  for (const note of (e as { undoErrors?: string[] })?.undoErrors ?? []) err(`cni-wasm: ${note}\n`);
  process.exit(1);
}

const ENV_HELP = `
Environment (as cnitool):
  NETCONFPATH  directory of network configs (default ${DEFAULT_NETCONFPATH}); --conf-dir overrides
  CNI_PATH     where non-bundled plugin binaries are found (default ${DEFAULT_CNI_PATH})
  CAP_ARGS     capability arguments, JSON (e.g. {"portMappings":[...]}); each plugin gets
               only those its config declares in "capabilities"
  CNI_ARGS     KEY=VALUE;... passed to every plugin
  CNI_IFNAME   interface name in the container (default eth0); --ifname overrides

The container id is "cnitool-" and 20 hex digits of sha512(netns path), as cnitool
makes it, unless --container-id is given. Results are cached where libcni caches
them (<cache-dir>/results/<network>-<container id>-<ifname>), so podman, cnitool
and cni-wasm read each other's cache. Bundled plugin types run inside this one
process; other types are run from CNI_PATH only if the policy lists them in
"allowExec".`;

const DESCRIPTIONS: Record<RunCommand, string> = {
  ADD: 'add the container in <netns> to <network>, run every plugin of the list in order, cache the result and print it (cnitool add)',
  CHECK: 'check the attachment with each plugin, in order, against the cached result (cnitool check; cniVersion 0.4.0 or later)',
  DEL: 'remove the attachment: every plugin in reverse order, the cached result as prevResult; then drop the cache entry (cnitool del)',
  GC: 'garbage-collect the network: plugins release what no cached attachment uses (cniVersion 1.1.0 or later)',
  STATUS: 'ask every plugin of the network whether it is ready to ADD (cniVersion 1.1.0 or later)',
};

/** The list the cache record of this attachment holds (libcni's GetNetworkListCachedConfig), if any. */
function cachedList(runner: Runner, net: string): ConfList | null {
  try {
    const rec = readRecord(cacheFile(runner.o.cacheDir, net, runner.o.rt));
    if (!rec || rec.networkName !== net || !rec.config.length) return null;
    const l = confListFromBytes(rec.config);
    return l.name === net && l.plugins.length ? l : null;
  } catch {
    return null;
  }
}

function runCommand(command: RunCommand, network: string, netns: string, flags: RunFlags, policy: string | undefined): void {
  let runner: Runner;
  try {
    runner = new Runner(runtimeFromEnv(process.env, netns, { ...flags, policy }));
  } catch (e) {
    fail(e, flags.json);
  }
  let list: ConfList;
  try {
    list = runner.load(network);
  } catch (e) {
    // DEL of a network whose config is gone: the config cached at ADD, as podman does
    const cached = command === 'DEL' && e instanceof RunnerError ? cachedList(runner, network) : null;
    if (!cached) fail(e, flags.json);
    err(`cni-wasm: ${(e as Error).message}; using the configuration cached at ADD time\n`);
    list = cached;
  }
  const tty = !flags.json && !!process.stdout.isTTY;
  const rt = runner.o.rt;
  const who = `${network}: ${rt.ifname} of ${rt.containerId} (${rt.netns})`;
  try {
    if (command === 'ADD') {
      const { result, cacheFile } = runner.add(list);
      if (tty) out(summarize(network, rt.netns, rt.containerId, result, cacheFile));
      else out(cnitoolResult(result));
      if (flags.json) out('\n');
    } else if (command === 'CHECK') {
      const how = runner.check(list);
      if (flags.json) out(JSON.stringify({ network, containerId: rt.containerId, ifname: rt.ifname, checked: how === 'checked' }) + '\n');
      else if (tty) out(how === 'checked' ? `${who}: ok\n` : `${network}: disableCheck is set; nothing checked\n`);
    } else if (command === 'DEL') {
      runner.del(list);
      if (flags.json) out(JSON.stringify({ network, containerId: rt.containerId, ifname: rt.ifname, deleted: true }) + '\n');
      else if (tty) out(`${who}: deleted\n`);
    } else if (command === 'GC') {
      const r = runner.gc(list);
      if (flags.json) out(JSON.stringify({ network, ran: r.ran, validAttachments: r.valid }) + '\n');
      else if (tty) {
        out(r.ran ? `${network}: garbage-collected; ${r.valid.length} attachment(s) in the cache kept\n`
          : list.disableGC ? `${network}: disableGC is set; nothing done\n`
            : `${network}: cniVersion ${list.cniVersion || '0.1.0'} has no GC (1.1.0 or later); nothing done\n`);
      }
    } else {
      const ran = runner.status(list);
      if (flags.json) out(JSON.stringify({ network, ready: true, checked: ran }) + '\n');
      else if (tty) out(ran ? `${network}: ready\n` : `${network}: cniVersion ${list.cniVersion || '0.1.0'} has no STATUS (1.1.0 or later); assumed ready\n`);
    }
  } catch (e) {
    if (e instanceof PluginError || e instanceof RunnerError) fail(e, flags.json);
    fail(new Error(`cni-wasm: ${command.toLowerCase()} failed: ${(e as Error)?.message ?? String(e)}`), flags.json);
  }
  process.exit(0);
}

/** How a plugin type would run, for validate and install. */
export function typeResolver(policyFile: string | undefined, cniPath: string[], bundled: string[]): TypeResolver {
  const policy = loadPolicy(policyFile);
  const r = new Runner({ confDir: '', cniPath, cacheDir: DEFAULT_CACHE_DIR, policyFile, rt: { containerId: '', netns: '', ifname: '', args: [], capabilityArgs: {} } });
  const f = ((type: string) => {
    if (locatePlugin(type, policy)) return 'component';
    const bin = r.findInPath(type);
    if (!bin) return 'none';
    return policy.allowExec.includes(type) ? 'exec' : 'binary';
  }) as TypeResolver;
  f.bundled = new Set(bundled);
  return f;
}

function printReports(reports: FileReport[], strict: boolean, json: boolean): number {
  let errors = 0;
  let warnings = 0;
  for (const r of reports) {
    for (const f of r.findings) {
      if (f.level === 'note') continue;
      if (f.level === 'error' || strict) errors++;
      else warnings++;
    }
  }
  if (json) {
    out(JSON.stringify({ files: reports, errors, warnings }, null, 2) + '\n');
    return errors ? 1 : 0;
  }
  for (const r of reports) {
    const what = r.network !== undefined ? ` network "${r.network}"${r.cniVersion ? `, cniVersion ${r.cniVersion}` : ''}${r.types?.length ? `, ${r.types.join(' -> ')}` : ''}` : '';
    out(`${r.file}:${what}${r.findings.some((f) => f.level !== 'note') ? '' : ' ok'}\n`);
    for (const f of r.findings) {
      const level = f.level === 'note' ? 'note' : f.level === 'error' || strict ? 'error' : 'warning';
      out(`  ${level}: ${f.where ? f.where + ': ' : ''}${f.message}\n`);
    }
  }
  out(`${errors} error(s), ${warnings} warning(s)${strict ? ' (--strict: warnings count as errors)' : ''}\n`);
  return errors ? 1 : 0;
}

export function registerRunner(program: Command, bundledTypes: () => string[]): void {
  program.option('-i, --ifname <name>', 'interface name for add/check/del (as cnitool\'s global -i)');
  for (const command of ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'] as RunCommand[]) {
    program.command(command.toLowerCase())
      .description(DESCRIPTIONS[command])
      .argument('<network>', 'the network\'s "name" in a config file of the config dir')
      .argument('<netns>', 'path of the container\'s network namespace, e.g. /var/run/netns/testing')
      .option('-i, --ifname <name>', 'interface name in the container (default: $CNI_IFNAME or eth0)')
      .option('--container-id <id>', 'container id (default: cnitool-<sha512 of the netns path>)')
      .option('--cache-dir <dir>', 'libcni result cache', DEFAULT_CACHE_DIR)
      .option('--conf-dir <dir>', 'network config dir (default: $NETCONFPATH or /etc/cni/net.d)')
      .option('--json', 'machine-readable output, also on a terminal')
      .option('--socket <path>', 'the `cni-wasm daemon` to run components in when one serves it (default /run/cni-wasm/cni-wasm.sock; CNI_WASM_NO_DAEMON=1: never)')
      .addHelpText('after', ENV_HELP)
      .action((network: string, netns: string, flags: RunFlags) => {
        // cnitool's -i is a global flag: `cni-wasm -i eth1 add ...` works too
        const ifname = flags.ifname ?? (program.opts() as { ifname?: string }).ifname;
        runCommand(command, network, netns, { ...flags, ifname }, program.opts().policy);
      });
  }

  program.command('validate')
    .description('check network configs before a runtime uses them: unknown plugin types, unsupported versions, bad values with the errors ADD would give, unknown keys (typos) as warnings')
    .argument('[path]', 'a config file or a config dir (default: $NETCONFPATH or /etc/cni/net.d)')
    .option('--strict', 'treat warnings as errors')
    .option('--json', 'print the findings as JSON')
    .addHelpText('after', '\nExit status 1 when there is an error (or, with --strict, a warning). Plugin types are looked up\nas cni-wasm add runs them: bundled components, then binaries in $CNI_PATH (default /opt/cni/bin).')
    .action((path: string | undefined, o: { strict?: boolean; json?: boolean }) => {
      let code: number;
      try {
        const resolver = typeResolver(program.opts().policy, (process.env.CNI_PATH || DEFAULT_CNI_PATH).split(':').filter(Boolean), bundledTypes());
        code = printReports(validatePath(path ?? (process.env.NETCONFPATH || DEFAULT_NETCONFPATH), resolver), !!o.strict, !!o.json);
      } catch (e) {
        fail(e, o.json);
      }
      process.exit(code);
    });
}

/** install: the plugin types the configs in `confDir` use that these shims will not provide. */
export function warnUnprovided(confDir: string, installing: Set<string>, policy: string | undefined, binDir: string): void {
  const used = new Map<string, Set<string>>();
  const topLevel = new Set<string>();
  const note = (type: string, file: string) => used.set(type, (used.get(type) ?? new Set()).add(file));
  for (const c of loadAll(confDir)) {
    for (const p of c.list?.plugins ?? []) {
      note(p.type, c.file);
      topLevel.add(p.type);
      const ipam = p.doc.ipam as { type?: unknown } | undefined;
      if (ipam && typeof ipam.type === 'string' && ipam.type) note(ipam.type, c.file);
    }
  }
  const cniPath = [binDir, ...(process.env.CNI_PATH || DEFAULT_CNI_PATH).split(':').filter(Boolean)];
  let resolveType: ((t: string) => string) | null = null;
  try { resolveType = typeResolver(policy, cniPath, [...installing]); } catch { resolveType = null; }
  for (const [type, files] of used) {
    if (installing.has(type)) continue;
    const how = resolveType?.(type) ?? 'none';
    const who = `warning: ${[...files].join(', ')} use${files.size > 1 ? '' : 's'} plugin type '${type}'`;
    // an IPAM component runs inside our bridge; a runtime needs a shim only for list entries
    if (how === 'component') {
      if (topLevel.has(type)) console.error(`${who}, a cni-wasm component whose shim --only leaves out: runtimes will not find it in ${binDir}`);
      continue;
    }
    if (how === 'none') console.error(`${who}, which cni-wasm does not provide, and there is no '${type}' binary in ${cniPath.join(':')}: ADD will fail unless the runtime finds one elsewhere`);
    else console.error(`${who}, which cni-wasm does not provide: runtimes will run the '${type}' binary already there${how === 'binary' ? ' (our plugins may delegate to it only if the policy lists it in allowExec)' : ''}`);
  }
}
