// What an operator writes to decide what plugins may do, and where cni-wasm
// keeps its own files. Modelled on Deno's permissions and Extism's manifest:
// a plugin gets nothing it was not granted, and a third-party plugin is
// pinned by the sha256 of its component.
import { readFileSync } from 'node:fs';

/** Per-namespace access for links, addresses and routes. In the host
 *  namespace a plugin may read, create, and change only what this attachment
 *  created or what its network config names (the bridge, the macvlan master). */
export interface NsGrant { host?: boolean; container?: boolean }

export interface Grants {
  /** names: host links the plugin may change without its config naming them
   *  (its built-in default device, e.g. the bridge plugin's "cni0") */
  links?: NsGrant & { names?: string[] };
  addresses?: NsGrant;
  routes?: NsGrant;
  /** keys are slash-form sysctl paths; '*' matches one path component */
  sysctl?: NsGrant & { keys?: string[] };
  firewall?: boolean;
  /** traffic control (qdiscs, filters); ownership as host/capabilities/tc.ts says */
  tc?: NsGrant;
  /** dirs: where the plugin's store may live ("*" = anywhere) */
  store?: boolean | { dirs?: string[] };
  /** types: plugins it may run (["*"] = any component) */
  delegate?: boolean | { types?: string[] };
  /** paths: resolv.conf files the plugin may read the DNS settings of ("*" = any) */
  dns?: boolean | { paths?: string[] };
  log?: boolean;
}

export interface PluginPolicy {
  /** required for third-party components: the component's sha256 */
  sha256?: string;
  /** replaces the bundled plugin's own grants when given */
  grants?: Grants;
}

export interface Policy {
  auditLog: string;
  stateDir: string;
  /** default directory for plugin stores (host-local's /var/lib/cni/networks) */
  storeDir: string;
  /** extra directories holding third-party `<type>.wasm` components */
  pluginDirs: string[];
  timeoutMs: number;
  /** plugin types that may be run as external binaries from CNI_PATH (e.g. "dhcp") */
  allowExec: string[];
  plugins: Record<string, PluginPolicy>;
}

export const DEFAULT_POLICY_FILE = '/etc/cni-wasm/policy.json';

export function defaultPolicy(): Policy {
  return {
    auditLog: '/var/log/cni-wasm/audit.log',
    stateDir: '/var/lib/cni-wasm',
    storeDir: '/var/lib/cni/networks',
    pluginDirs: ['/etc/cni-wasm/plugins'],
    timeoutMs: 5000,
    allowExec: [],
    plugins: {},
  };
}

/** Reads the policy file; a missing default file means defaults. */
export function loadPolicy(file: string | undefined): Policy {
  const path = file ?? process.env.CNI_WASM_POLICY ?? DEFAULT_POLICY_FILE;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path === DEFAULT_POLICY_FILE) return defaultPolicy();
    throw new Error(`cannot read the cni-wasm policy ${path}: ${(e as Error).message}`);
  }
  let doc: Partial<Policy>;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`the cni-wasm policy ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return { ...defaultPolicy(), ...doc };
}

export function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  const p = pattern.split('/');
  const v = value.split('/');
  if (p.length !== v.length) return false;
  return p.every((seg, i) => seg === '*' || seg === v[i]);
}
