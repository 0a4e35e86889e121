// Bundles the host into one CommonJS file (dist/cni-wasm.cjs): one file to
// read and (with bin/codecache.cjs) no parse or compile on the hot path.
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

await build({
  entryPoints: [join(root, 'dist/host/cli.js')],
  outfile: join(root, 'dist/cni-wasm.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // jco is only for `approve` (loaded on demand); the addon is a .node file
  external: ['@bytecodealliance/jco'],
  define: { 'import.meta.url': '__cniwasm_url' },
  banner: { js: "const __cniwasm_url = require('url').pathToFileURL(__filename).href;" },
  minify: true,
  keepNames: true,
  logLevel: 'warning',
});
