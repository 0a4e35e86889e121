// The guest time limit's watchdog (host/sandbox/watchdog.cc): stops a JS
// spin and a wasm loop that never calls out, hands other errors through,
// refuses nesting, and keeps working after a stop, on the main thread and in
// a worker thread (each isolate has its own watchdog).
import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { guard } from '../../host/sandbox/guard.js';

// (module (func (export "f") (loop (br 0))))
const LOOP = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 9, 1, 7, 0, 3, 64, 12, 0, 11, 11]);

function stopped(fn: () => unknown, ms: number): { code?: string; took: number } {
  const t0 = Date.now();
  try {
    fn();
  } catch (e) {
    return { code: (e as { code?: string }).code, took: Date.now() - t0 };
  }
  return { took: Date.now() - t0 };
}

test('a JS spin and a wasm loop are stopped at the limit, as ERR_SCRIPT_EXECUTION_TIMEOUT', () => {
  const js = stopped(() => guard(() => { for (;;) { /* spin */ } }, 60), 60);
  assert.is(js.code, 'ERR_SCRIPT_EXECUTION_TIMEOUT');
  assert.ok(js.took >= 55 && js.took < 2000, `took ${js.took} ms`);
  const f = new WebAssembly.Instance(new WebAssembly.Module(LOOP)).exports.f as () => void;
  const wasm = stopped(() => guard(f, 60), 60);
  assert.is(wasm.code, 'ERR_SCRIPT_EXECUTION_TIMEOUT');
  assert.ok(wasm.took >= 55 && wasm.took < 2000, `took ${wasm.took} ms`);
});

test('results and errors pass through; nesting is refused; it works again after a stop', () => {
  assert.is(guard(() => 42, 1000), 42);
  assert.throws(() => guard(() => { throw new TypeError('mine'); }, 1000), (e: Error) => e instanceof TypeError && e.message === 'mine');
  assert.throws(() => guard(() => guard(() => 1, 10), 1000), (e: { code?: string }) => e.code === 'ERR_INVALID_STATE');
  for (let i = 0; i < 3; i++) {
    assert.is(stopped(() => guard(() => { for (;;) { /* spin */ } }, 20), 20).code, 'ERR_SCRIPT_EXECUTION_TIMEOUT');
    assert.is(guard(() => 'ok', 1000), 'ok', 'nothing left terminating the next call');
  }
  assert.throws(() => guard(() => 1, 0), (e: { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
  // a fast call long before its limit leaves no pending stop behind
  for (let i = 0; i < 1000; i++) guard(() => i, 1);
});

test('in a worker thread: its own watchdog stops its guest; the main thread is untouched', async () => {
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const { guard } = require(${JSON.stringify(new URL('../../host/sandbox/guard.js', import.meta.url).pathname)}.replace(/guard\\.js$/, '../../../build/Release/cniwasm_watchdog.node'));
    let code;
    try { guard(() => { for (;;) {} }, 50); } catch (e) { code = e.code; }
    parentPort.postMessage([code, guard(() => 7, 100)]);
  `, { eval: true });
  const got = await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
  assert.equal(got, ['ERR_SCRIPT_EXECUTION_TIMEOUT', 7]);
  await w.terminate();
  assert.is(guard(() => 1, 100), 1);
});

test.run();
