// Runs every uvu test file (compiled to dist/test) in its own process, in a
// stable order, and ends with the one line CI reads: "N passed, N failed".
// Usage: node test/run.mjs [filter]   (filter: substring of the path under dist/test, e.g. netns/macvlan)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const distTest = join(root, 'dist/test');
const filter = process.argv[2] ?? '';

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
}

// unit first: they are fast and say the most when something basic broke
const order = ['unit', 'netns', 'e2e'];
const files = walk(distTest)
  .filter((f) => relative(distTest, f).includes(filter))
  .sort((a, b) => order.findIndex((o) => a.includes(`/${o}/`)) - order.findIndex((o) => b.includes(`/${o}/`)) || a.localeCompare(b));

let passed = 0;
let failed = 0;
for (const f of files) {
  const name = relative(distTest, f);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [f], { encoding: 'utf8', cwd: root, timeout: 15 * 60 * 1000 });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  let bad = total - ok;
  if (r.status !== 0 && bad === 0) bad = 1; // crashed before or after its tests
  passed += ok;
  failed += bad;
  console.log(`${bad ? 'FAIL' : 'ok  '} ${name}  ${ok}/${total}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (bad) console.log(out.split('\n').map((l) => '    ' + l).join('\n'));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
