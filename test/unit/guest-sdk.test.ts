// Runs the AssemblyScript guest-SDK checks (guest-plugins/sdk/test/sdk-tests.ts):
// compiles them with asc exactly as plugins are built (stub runtime, custom
// abort), then calls every exported `check*` function in a fresh instance.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import asc from 'assemblyscript/asc';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Works from both test/unit/ and dist/test/unit/: walk up to the directory holding package.json.
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

const ENTRY = 'guest-plugins/sdk/test/sdk-tests.ts';

async function compile(optimize: string): Promise<Uint8Array<ArrayBuffer>> {
  let wasm: Uint8Array<ArrayBuffer> | null = null;
  const diagnostics: string[] = [];
  const { error, stderr } = await asc.main(
    [
      ENTRY,
      '--baseDir', repoRoot(),
      '--runtime', 'stub',
      '--use', 'abort=guest-plugins/sdk/test/sdk-tests/testAbort',
      optimize,
      '--outFile', 'sdk-tests.wasm',
      '--noColors',
    ],
    {
      writeFile(name, contents) {
        if (name.endsWith('.wasm') && typeof contents !== 'string') wasm = new Uint8Array(contents);
      },
      reportDiagnostic(d) {
        diagnostics.push(d.message);
      },
    },
  );
  if (error) throw new Error(`asc failed: ${error.message}\n${stderr.toString()}`);
  // Warnings in SDK code are bugs-in-waiting; keep the build clean.
  if (diagnostics.length) throw new Error(`asc diagnostics:\n${stderr.toString() || diagnostics.join('\n')}`);
  if (!wasm) throw new Error('asc produced no .wasm');
  return wasm;
}

interface Run { code: number | null; messages: string[]; trap: string | null }

async function runCheck(mod: WebAssembly.Module, name: string): Promise<Run> {
  const messages: string[] = [];
  let memory: WebAssembly.Memory | undefined;
  const instance = await WebAssembly.instantiate(mod, {
    env: {
      // UTF-16 string written by the guest; len is in bytes.
      report(ptr: number, len: number) {
        const units = new Uint16Array(memory!.buffer, ptr, len >>> 1);
        messages.push(String.fromCharCode(...units));
      },
    },
  });
  memory = instance.exports.memory as WebAssembly.Memory;
  const fn = instance.exports[name] as () => number;
  try {
    return { code: fn(), messages, trap: null };
  } catch (e) {
    return { code: null, messages, trap: String(e) };
  }
}

for (const [label, flag] of [['-O3', '-O3'], ['unoptimized', '-O0']] as const) {
  const mod = await WebAssembly.compile(await compile(flag));
  const checks = WebAssembly.Module.exports(mod)
    .filter((e) => e.kind === 'function' && e.name.startsWith('check'))
    .map((e) => e.name);

  test(`sdk-tests exports checks (${label})`, () => {
    assert.ok(checks.length >= 7, `expected >= 7 check exports, got ${checks.join(', ')}`);
  });

  test(`testAbort reports the abort message (${label})`, async () => {
    const r = await runCheck(mod, 'triggerAbort');
    assert.ok(r.trap !== null, 'expected a trap');
    assert.equal(r.messages.length, 1, r.messages.join('\n'));
    assert.match(r.messages[0], /^abort: deliberate abort at guest-plugins\/sdk\/test\/sdk-tests\.ts:\d+:\d+$/);
  });

  test(`number parsing matches JS Number() bit for bit (${label})`, async () => {
    const instance = await WebAssembly.instantiate(mod, { env: { report() {} } });
    const { memory, scratchPtr, parseScratch } = instance.exports as unknown as {
      memory: WebAssembly.Memory; scratchPtr(): number; parseScratch(units: number): number;
    };
    const ptr = scratchPtr();
    let seed = 0x2545f491;
    const rnd = (n: number) => { // xorshift32, deterministic
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const digits = (n: number) => Array.from({ length: n }, () => rnd(10)).join('');
    const mismatches: string[] = [];
    for (let i = 0; i < 20000 && mismatches.length < 10; i++) {
      const long = rnd(50) === 0 ? 1000 : 25; // occasionally past the 800-digit cut-off
      const int = rnd(4) === 0 ? '0' : String(1 + rnd(9)) + digits(rnd(long));
      const frac = rnd(2) ? '.' + digits(1 + rnd(long)) : '';
      const exp = rnd(2) ? 'e' + (rnd(2) ? '-' : '') + rnd(340) : '';
      const text = (rnd(2) ? '-' : '') + int + frac + exp;
      const want = Number(text);
      if (!Number.isFinite(want)) continue; // out of range is an error, covered elsewhere
      new Uint16Array(memory.buffer, ptr, text.length).set(Array.from(text, (c) => c.charCodeAt(0)));
      const got = parseScratch(text.length);
      if (got !== want && !(Number.isNaN(got) && Number.isNaN(want))) mismatches.push(`${text}: got ${got}, want ${want}`);
    }
    assert.equal(mismatches, [], mismatches.join('\n'));
  });

  for (const name of checks) {
    test(`${name} (${label})`, async () => {
      const r = await runCheck(mod, name);
      const detail = r.messages.map((m) => '  - ' + m).join('\n');
      if (r.trap !== null) assert.unreachable(`${name} trapped: ${r.trap}\n${detail}`);
      assert.is(r.code, 0, `${name}: ${r.code} failed assertion(s):\n${detail}`);
      assert.equal(r.messages, [], `${name} reported without failing:\n${detail}`);
    });
  }
}

test.run();
