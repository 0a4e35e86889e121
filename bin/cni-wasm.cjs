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
const mtime = (p) => { try { return statSync(p).mtimeMs; } catch { return 0; } };

// Only CNI mode (the hot path) runs the bundle: Node 20 drops the dynamic
// import() callback of code V8 loads from its code cache, and `approve` needs
// import('@bytecodealliance/jco') ("A dynamic import callback was not specified").
// The runner (add/check/del/gc/status, run per container like a plugin) and
// validate need no jco either: they take the bundle too.
const RUNNER = new Set(['add', 'check', 'del', 'gc', 'status', 'validate']);
const subcommand = () => {
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (['--policy', '--type', '-i', '--ifname'].includes(a[i])) { i++; continue; }
    if (!a[i].startsWith('-')) return a[i];
  }
  return '';
};
if ((process.env.CNI_COMMAND || RUNNER.has(subcommand())) && mtime(bundle) >= mtime(compiled)) {
  require('./codecache.cjs').requireCached(bundle, process.env.CNI_COMMAND ? 'cni' : 'runner').main(process.argv);
} else {
  import(pathToFileURL(compiled).href).then((m) => m.main(process.argv));
}
