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
  // V8 checks a cache against the source's length only: a rebuilt file of the
  // same length would run the old code's functions. The cache begins with the
  // file's mtime and size, and only a cache of this very file is used.
  const st = fs.statSync(file);
  const stamp = Buffer.alloc(16);
  stamp.writeDoubleLE(st.mtimeMs, 0);
  stamp.writeDoubleLE(st.size, 8);
  let cachedData;
  try {
    const b = fs.readFileSync(cacheFile);
    cachedData = b.length > 16 && b.subarray(0, 16).equals(stamp) ? b.subarray(16) : undefined;
  } catch { cachedData = undefined; }
  const script = new vm.Script(Module.wrap(src), { filename: file, cachedData, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER });
  if (!cachedData || script.cachedDataRejected) {
    pending.push({ script, cacheFile, stamp });
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const p of pending) {
          try {
            const tmp = `${p.cacheFile}.${process.pid}.tmp`;
            fs.writeFileSync(tmp, Buffer.concat([p.stamp, p.script.createCachedData()]));
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
