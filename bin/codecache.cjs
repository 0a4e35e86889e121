// Loads a CommonJS file through V8's code cache. Every CNI call is a fresh
// process, so without it V8 re-parses and re-compiles the host bundle and the
// plugin's glue each time. The cache sits next to the file; it is written at
// exit the first time (or when V8 rejects a stale one), atomically.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');

const pending = [];
let hooked = false;

function requireCached(file, tag = '') {
  const src = fs.readFileSync(file, 'utf8');
  // The cache holds the functions the run that wrote it compiled: a CNI call
  // and the runner take different paths through one bundle, so each keeps its own.
  const cacheFile = file + (tag ? `.${tag}` : '') + '.v8cache';
  let cachedData;
  try { cachedData = fs.readFileSync(cacheFile); } catch { cachedData = undefined; }
  const script = new vm.Script(Module.wrap(src), { filename: file, cachedData, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER });
  if (!cachedData || script.cachedDataRejected) {
    pending.push({ script, cacheFile });
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const p of pending) {
          try {
            const tmp = `${p.cacheFile}.${process.pid}.tmp`;
            fs.writeFileSync(tmp, p.script.createCachedData());
            fs.renameSync(tmp, p.cacheFile);
          } catch { /* read-only install: run without a cache */ }
        }
      });
    }
  }
  const mod = { exports: {}, filename: file, id: file, loaded: false };
  const req = Module.createRequire(file);
  script.runInThisContext()(mod.exports, req, mod, file, path.dirname(file));
  return mod.exports;
}

module.exports = { requireCached };
