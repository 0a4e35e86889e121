// The daemon's log lines (main thread and workers), on its stderr.
import { writeSync } from 'node:fs';

/**
 * One line, written synchronously and dropped if stderr cannot take it. A
 * daemon whose stderr reader has gone (a closed terminal, a logger that
 * died) once kept running after SIGTERM: each write raised EPIPE as an
 * uncaught error, whose log line raised the next.
 */
export function daemonLog(s: string): void {
  try {
    writeSync(2, `cni-wasm daemon[${process.pid}]: ${s}\n`);
  } catch { /* stderr is gone or full: the line is lost, the daemon goes on */ }
}
