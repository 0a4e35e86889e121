#!/usr/bin/env node
// Entry point; the shims `cni-wasm install` writes exec this. The host runs
// from one bundle (dist/cni-wasm.cjs) loaded through V8's code cache:
// start-up time is most of a CNI call's cost. After a bare `tsc` (no bundle
// step) the bundle is older than the compiled files: run those instead.
import { createRequire } from 'node:module';
import { statSync } from 'node:fs';

const bundle = new URL('../dist/cni-wasm.cjs', import.meta.url);
const compiled = new URL('../dist/host/cli.js', import.meta.url);
const mtime = (u) => { try { return statSync(u).mtimeMs; } catch { return 0; } };

if (mtime(bundle) >= mtime(compiled)) {
  const { requireCached } = createRequire(import.meta.url)('./codecache.cjs');
  requireCached(bundle.pathname).main(process.argv);
} else {
  (await import(compiled.href)).main(process.argv);
}
