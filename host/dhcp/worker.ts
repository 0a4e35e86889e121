// A DHCP daemon worker thread: runs one lease operation of the client
// component at a time (client.ts). Operations block (they wait for the
// server's answers) and switch network namespaces with setns(2), which acts
// on the calling thread only: in a worker they hold up neither the daemon's
// socket nor the other leases' renewals, and never move its main thread.
import { parentPort, threadId } from 'node:worker_threads';
import { setTmpTag } from '../lazy.js';
import type { Policy } from '../gate/policy.js';
import { ClientFailure, runClient, type Target } from './client.js';

export interface ClientJob { id: number; policy: Policy; target: Target; input: Record<string, unknown>; timeoutMs: number }
export interface ClientDone { id: number; out?: Record<string, unknown>; error?: { code: string; message: string } }

if (!parentPort) throw new Error('host/dhcp/worker.js runs as a worker thread of the DHCP daemon');
const port = parentPort;
setTmpTag(`${process.pid}.t${threadId}`);

port.on('message', (job: ClientJob) => {
  let done: ClientDone;
  try {
    done = { id: job.id, out: runClient(job.policy, job.target, job.input, job.timeoutMs) };
  } catch (e) {
    done = { id: job.id, error: { code: e instanceof ClientFailure ? e.code : 'EIO', message: (e as Error)?.message ?? String(e) } };
  }
  port.postMessage(done);
});
