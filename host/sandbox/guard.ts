// The guest time limit's watchdog (watchdog.cc): one thread per isolate,
// armed for each guarded entry into a guest.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

const ADDON = join('build', 'Release', 'cniwasm_watchdog.node');
let addon: { guard(fn: () => unknown, timeoutMs: number): unknown } | undefined;

/**
 * fn(), stopped after timeoutMs wherever it is (an Error with code
 * ERR_SCRIPT_EXECUTION_TIMEOUT, as vm's timeout throws). Not re-entrant.
 */
export function guard<T>(fn: () => T, timeoutMs: number): T {
  if (!addon) {
    const p = join(packageRoot(), ADDON);
    if (!existsSync(p)) throw new Error(`the watchdog addon ${p} is not there (run npm ci, or node-gyp rebuild)`);
    addon = createRequire(import.meta.url)(p) as typeof addon;
  }
  return addon!.guard(fn, timeoutMs) as T;
}
