// Builds every guest plugin into a WebAssembly component and transpiles it to
// JS once, here, so no CNI call ever pays for transpilation.
//
//   wit/plugin.wit --witgen--> guest-plugins/sdk/generated/*.ts
//   guest-plugins/<type>/index.ts --asc--> core wasm --componentEmbed/New--> component
//   component --jco transpile (sync instantiation)--> dist/plugins/<type>/
//
// Usage: node dist/tools/build-plugins.js [--out DIR] [--src DIR] [type ...]
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { generateFromSource } from './witgen.js';
import { parseWit } from './wit.js';
import { packageComponent } from '../host/sandbox/package.js';
import { validateObjectDecls } from '../host/gate/ownership.js';
import { validateGrants } from '../host/gate/policy.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const witPath = join(root, 'wit/plugin.wit');

/** Pages of 64 KiB. Bundled plugins declare less in their grants.json when they can. */
export const DEFAULT_MAX_PAGES = 256;

export function generateSdk(): void {
  const files = generateFromSource(readFileSync(witPath, 'utf8'));
  const dir = join(root, 'guest-plugins/sdk/generated');
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/** The host names audit arguments and binds imports from these (WIT names, jco's camelCase keys). */
export function writeSignatures(outRoot: string): void {
  const pkg = parseWit(readFileSync(witPath, 'utf8'));
  const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const sigs: Record<string, Record<string, { wit: string; params: string[]; hasResult: boolean }>> = {};
  for (const [name, iface] of pkg.ifaces) {
    if (!iface.funcs.length) continue;
    sigs[name] = {};
    for (const f of iface.funcs) sigs[name][camel(f.name)] = { wit: f.name, params: f.params.map((p) => p.name), hasResult: f.result !== null };
  }
  mkdirSync(outRoot, { recursive: true });
  writeFileSync(join(outRoot, 'signatures.json'), JSON.stringify(sigs, null, 1) + '\n');
}

export function compileCore(pluginDir: string, outWasm: string, maxPages: number): void {
  const asc = join(root, 'node_modules/.bin/asc');
  const args = [
    join(root, 'guest-plugins/sdk/generated/exports.ts'), join(root, 'guest-plugins/sdk/runtime.ts'), join(pluginDir, 'index.ts'),
    '-o', outWasm, '--runtime', 'stub', '-O3', '--noAssert',
    '--use', 'abort=guest-plugins/sdk/runtime/guestAbort',
    '--maximumMemory', String(maxPages),
  ];
  const r = spawnSync(asc, args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`asc failed for ${pluginDir}:\n${r.stdout}${r.stderr}`);
}

async function buildOne(srcDir: string, type: string, outRoot: string, sub = type): Promise<void> {
  const pluginDir = join(srcDir, sub);
  const grantsFile = join(pluginDir, 'grants.json');
  const declared = existsSync(grantsFile) ? JSON.parse(readFileSync(grantsFile, 'utf8')) : {};
  const maxPages = declared.maxMemoryPages ?? DEFAULT_MAX_PAGES;
  const outDir = join(outRoot, type);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const core = join(outDir, 'core.wasm');
  compileCore(pluginDir, core, maxPages);
  const component = await packageComponent(readFileSync(core), readFileSync(witPath, 'utf8'));
  rmSync(core);
  writeFileSync(join(outDir, `${type}.component.wasm`), component);
  const { writeTranspiled } = await import('../host/sandbox/package.js');
  const objects = validateObjectDecls(declared.objects, grantsFile);
  validateGrants(declared.grants ?? {}, grantsFile);
  await writeTranspiled(component, type, outDir, { bundled: true, grants: declared.grants ?? {}, objects });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let outRoot = join(root, 'dist/plugins');
  let srcDir = join(root, 'guest-plugins');
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') outRoot = resolve(argv[++i]);
    else if (argv[i] === '--src') srcDir = resolve(argv[++i]);
    else only.push(argv[i]);
  }
  generateSdk();
  writeSignatures(outRoot);
  const types = only.length ? only.filter((t) => !DAEMON_COMPONENTS.some((c) => c.type === t)) : readdirSync(srcDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(srcDir, d.name, 'index.ts')) && d.name !== 'sdk')
    .map((d) => d.name);
  for (const t of types) {
    const t0 = Date.now();
    await buildOne(srcDir, t, outRoot);
    console.log(`built ${t} (${Date.now() - t0} ms)`);
  }
  // Components the host runs itself (not CNI plugins: no shim, not loadable by type):
  // the DHCP daemon's client, built with the dhcp plugin.
  for (const c of DAEMON_COMPONENTS) {
    if (only.length && !only.includes(c.with) && !only.includes(c.type)) continue;
    const t0 = Date.now();
    await buildOne(srcDir, c.type, join(root, 'dist/components'), c.src);
    console.log(`built ${c.type} (${Date.now() - t0} ms)`);
  }
}

const DAEMON_COMPONENTS = [{ type: 'dhcp-client', src: 'dhcp/client', with: 'dhcp' }];

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
