#!/usr/bin/env node
// Entry point; the shims `cni-wasm install` writes exec this. CommonJS, as
// the ESM loader alone costs tens of ms and every CNI call is a new process.
// The host runs from one bundle (dist/cni-wasm.cjs) loaded through V8's code
// cache. After a bare `tsc` (no bundle step) the bundle is older than the
// compiled files: then run those instead.
'use strict';
const { statSync } = require('fs');
const { join } = require('path');
const { pathToFileURL } = require('url');

const bundle = join(__dirname, '../dist/cni-wasm.cjs');
const compiled = join(__dirname, '../dist/host/cli.js');
// keep in step with V8_LIMIT_FLAGS in host/sandbox/limits.ts (a unit test compares them)
const V8_LIMIT_FLAGS = ['--wasm-max-mem-pages=1024', '--wasm-max-table-size=10000', '--wasm-max-module-size=16777216', '--wasm-max-committed-code-mb=256', '--wasm-max-code-space-size-mb=256'];
const mtime = (p) => { try { return statSync(p).mtimeMs; } catch { return 0; } };

// Only CNI mode (the hot path) runs the bundle: Node 20 drops the dynamic
// import() callback of code V8 loads from its code cache, and `approve` needs
// import('@bytecodealliance/jco') ("A dynamic import callback was not specified").
if (process.env.CNI_COMMAND && mtime(bundle) >= mtime(compiled)) {
  // V8's wasm limits (host/sandbox/limits.ts, V8_LIMIT_FLAGS) before any code
  // is loaded: V8 keys code caches by its flags, so a cache made at exit
  // must be checked under the same flags at the next start. The shims pass
  // them on node's command line (free); require('v8') costs ~2 ms.
  if (!V8_LIMIT_FLAGS.every((f) => process.execArgv.includes(f))) {
    const v8 = require('v8');
    for (const f of V8_LIMIT_FLAGS) v8.setFlagsFromString(f);
  }
  require('./codecache.cjs').requireCached(bundle).main(process.argv);
} else {
  import(pathToFileURL(compiled).href).then((m) => m.main(process.argv));
}
