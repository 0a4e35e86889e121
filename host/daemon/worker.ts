// One daemon worker thread: serves one CNI call at a time with invoke(),
// exactly as exec mode does (a fresh component instance, the same gate,
// ledger, audit and limits per call). invoke() is synchronous and switches
// network namespaces with setns(2), which acts on the calling thread only:
// each worker has its own thread, so its switches never reach the daemon's
// main thread or another worker (test/netns/daemon.test.ts checks that).
import { parentPort, threadId } from 'node:worker_threads';
import { invoke } from '../invoke.js';
import { reapBackground } from '../kernel/rtnl.js';
import { setTmpTag } from '../lazy.js';
import { keepWarm } from '../sandbox/loader.js';
import { aheadStats, makeInstancesAhead, makeSpare } from '../sandbox/sandbox.js';

export interface Job { id: number; type: string; env: Record<string, string>; stdin: string; policy: string | undefined }
export interface Done {
  id: number; stdout: string; exitCode: number;
  /** this worker's totals so far: instances made ahead, and how many calls used one */
  ahead: { made: number; used: number };
}

if (!parentPort) throw new Error('host/daemon/worker.js runs as a worker thread of cni-wasm daemon');
const port = parentPort;
// temp files (write-then-rename) are named per thread, not only per process
setTmpTag(`${process.pid}.t${threadId}`);
keepWarm();
makeInstancesAhead();

// While idle, the next call's instances are made ahead, on the next turn of
// the event loop (free workers take calls in turn, so the next call usually
// goes to another worker meanwhile).
let making = false;
function makeAhead(): void {
  if (making) return;
  making = true;
  setImmediate(() => {
    making = false;
    makeSpare();
  });
}

port.on('message', (job: Job) => {
  let done: Done;
  // The caller's environment, as an exec'd plugin would have it (PATH for
  // external plugins, CNI_WASM_DEBUG, ...). A worker's process.env is its own
  // copy: this reaches neither the daemon nor the other workers.
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, job.env);
  try {
    const out = invoke(job.type, job.env, () => job.stdin, job.policy);
    done = { id: job.id, stdout: out.stdout, exitCode: out.exitCode, ahead: { ...aheadStats } };
  } catch (e) {
    // invoke() turns every failure into a CNI error; this is a bug, still not a crash
    done = { id: job.id, stdout: JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: `cni-wasm daemon worker: ${(e as Error)?.message ?? String(e)}` }) + '\n', exitCode: 1, ahead: { ...aheadStats } };
  }
  port.postMessage(done);
  reapBackground();
  makeAhead();
});
port.postMessage({ ready: true });
