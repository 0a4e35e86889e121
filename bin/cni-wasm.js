#!/usr/bin/env node
// Entry point; the shims `cni-wasm install` writes exec this. The host runs
// from one bundle (dist/cni-wasm.cjs) loaded through V8's code cache:
// start-up time is most of a CNI call's cost.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { requireCached } = require('./codecache.cjs');
requireCached(new URL('../dist/cni-wasm.cjs', import.meta.url).pathname).main(process.argv);
