// Built-ins that take milliseconds to load (child_process pulls in net,
// dgram and streams; crypto its whole tree), loaded at first use: most CNI
// calls need neither, and every call is a new process.
import { createRequire } from 'node:module';

const req = createRequire(import.meta.url);

export const childProcess = (): typeof import('node:child_process') => req('node:child_process');
export const nodeCrypto = (): typeof import('node:crypto') => req('node:crypto');

/** Milliseconds, for durations (performance.now() loads perf_hooks). */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

let tmpTag: string | undefined;
/** Names write-then-rename temp files: the pid, plus the thread in the daemon's workers. */
export const tmpSuffix = (): string => tmpTag ?? String(process.pid);
export const setTmpTag = (tag: string): void => { tmpTag = tag; };
