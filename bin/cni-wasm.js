#!/usr/bin/env node
// Entry point; the runtime-facing shims written by `cni-wasm install` exec this.
import { main } from '../dist/host/cli.js';
main(process.argv);
