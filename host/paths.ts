// Where the package is installed. Compiled files sit in dist/host/..., the
// exec bundle in dist/: walk up to package.json rather than assume a depth.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'wit'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the cni-wasm package above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
