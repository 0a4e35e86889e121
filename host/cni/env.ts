// The CNI_* environment of one plugin invocation, checked the way libcni's
// skel checks it: every missing variable a command needs is named in one
// code-4 error, and only the variables a command uses are validated.

import { CniError, CniErrorCode } from './errors.js';
import { type CniCommand, COMMANDS } from './versions.js';

export interface Invocation {
  command: CniCommand;
  /** '' for VERSION, GC and STATUS, which concern no container. */
  containerId: string;
  /** May be '' for DEL (the namespace may already be gone). */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs in order; only ADD, DEL and CHECK read CNI_ARGS. */
  args: Array<[string, string]>;
  /** CNI_PATH directories, in search order. */
  path: string[];
}

type Env = Record<string, string | undefined>;

// Which variables each command needs (skel's table). CNI_NETNS is read for
// DEL but may be empty there.
const REQUIRED: Record<string, readonly CniCommand[]> = {
  CNI_CONTAINERID: ['ADD', 'CHECK', 'DEL'],
  CNI_NETNS: ['ADD', 'CHECK'],
  CNI_IFNAME: ['ADD', 'CHECK', 'DEL'],
  CNI_PATH: ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'],
};

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const MAX_IFNAME_BYTES = 15; // IFNAMSIZ less the NUL

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(CniErrorCode.InvalidEnvironment, 'CNI_CONTAINERID is empty');
  if (!NAME_RE.test(id)) {
    throw new CniError(
      CniErrorCode.InvalidEnvironment,
      'invalid characters in CNI_CONTAINERID',
      `"${id}": a container id starts with a letter or digit, followed by letters, digits, "_", "." or "-"`,
    );
  }
}

export function validateIfname(name: string): void {
  const bad = (why: string) => new CniError(CniErrorCode.InvalidEnvironment, `invalid CNI_IFNAME "${name}"`, why);
  if (name === '') throw bad('interface name is empty');
  // The kernel's limit is in bytes, not characters.
  if (Buffer.byteLength(name) > MAX_IFNAME_BYTES) throw bad(`interface name is longer than ${MAX_IFNAME_BYTES} bytes`);
  if (name === '.' || name === '..') throw bad('interface name is "." or ".."');
  if (/[/:\s]/u.test(name)) throw bad('interface name contains "/", ":" or whitespace');
}

/**
 * Split CNI_ARGS ("K1=V1;K2=V2"). Like libcni's LoadArgs, every pair needs
 * exactly one "=", so empty pairs (a trailing ";") and "=" inside values are
 * errors; unlike it, an empty key is an error too.
 */
export function parseCniArgs(raw: string): Array<[string, string]> {
  if (raw === '') return [];
  return raw.split(';').map((pair): [string, string] => {
    const kv = pair.split('=');
    if (kv.length !== 2 || kv[0] === '') {
      throw new CniError(
        CniErrorCode.InvalidEnvironment,
        `invalid CNI_ARGS pair "${pair}"`,
        'CNI_ARGS must be KEY=VALUE pairs separated by ";", e.g. "IgnoreUnknown=1;IP=10.1.0.5"',
      );
    }
    return [kv[0]!, kv[1]!];
  });
}

/** The value of a CNI_ARGS key; a key given twice takes the last value, as in libcni. */
export function cniArg(inv: Pick<Invocation, 'args'>, key: string): string | undefined {
  let value: string | undefined;
  for (const [k, v] of inv.args) if (k === key) value = v;
  return value;
}

export function parseEnv(env: Env = process.env): Invocation {
  const raw = (name: string) => env[name] ?? '';
  const command = raw('CNI_COMMAND');
  if (command === '') {
    throw new CniError(CniErrorCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  }
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`, `expected one of ${COMMANDS.join(', ')}`);
  }
  const cmd = command as CniCommand;
  const needs = (name: string) => REQUIRED[name]!.includes(cmd);

  // Validation errors come in variable order, before the missing-list, as skel does.
  const missing: string[] = [];
  for (const name of Object.keys(REQUIRED)) {
    const value = raw(name);
    if (!needs(name)) continue;
    if (value === '') missing.push(name);
    else if (name === 'CNI_CONTAINERID') validateContainerId(value);
    else if (name === 'CNI_IFNAME') validateIfname(value);
  }
  if (missing.length) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }

  const perContainer = cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK';
  return {
    command: cmd,
    containerId: perContainer ? raw('CNI_CONTAINERID') : '',
    netns: perContainer ? raw('CNI_NETNS') : '',
    ifname: perContainer ? raw('CNI_IFNAME') : '',
    args: perContainer ? parseCniArgs(raw('CNI_ARGS')) : [],
    path: raw('CNI_PATH').split(':').filter((p) => p !== ''),
  };
}
