// The store interface (host-local's leases, other plugins' saved state) on
// its own: no root, no kernel. The real declarations and the real file
// operations in temp dirs, through the gate: the on-disk layout stays the
// reference host-local's, every read stays bounded, writes are atomic, and
// the lock is taken as soon as another holder lets go.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeCall } from '../helpers/gate.js';
import { STORE_LIMITS, store } from '../../host/capabilities/store.js';
import { bindInterface } from '../../host/gate/gate.js';

const SIGS = {
  open: { wit: 'open', params: ['network', 'data-dir'], hasResult: true },
  get: { wit: 'get', params: ['key'], hasResult: true },
  put: { wit: 'put', params: ['key', 'value'], hasResult: true },
  remove: { wit: 'remove', params: ['key'], hasResult: true },
  keys: { wit: 'keys', params: [], hasResult: true },
  entries: { wit: 'entries', params: [], hasResult: true },
  find: { wit: 'find', params: ['values'], hasResult: true },
  findGet: { wit: 'find-get', params: ['values', 'keys'], hasResult: true },
  create: { wit: 'create', params: ['key', 'value', 'also'], hasResult: true },
  removeFound: { wit: 'remove-found', params: ['values'], hasResult: true },
};

let storeDir = '';
/** A host-local call on network `net` (its default store dir, the same for every call), the store bound for real. */
function call(net = 'unitnet', deadline?: number) {
  const t = fakeCall({ type: 'host-local', grants: { store: true }, network: net, deadline });
  storeDir ||= t.ctx.policy.storeDir;
  t.ctx.policy = { ...t.ctx.policy, storeDir };
  const s = bindInterface(t.ctx, 'store', store, SIGS) as Record<string, (...a: unknown[]) => any>;
  const dir = join(t.ctx.policy.storeDir, net);
  const end = () => { for (const v of t.ctx.session.values()) v.close(); t.ctx.session.clear(); };
  return { t, s, dir, end };
}

const ok = (r: any) => { assert.equal(r?.tag, 'ok', JSON.stringify(r)); return r.val; };

test('leases on disk as the reference keeps them: one file per key, the value\'s bytes exactly, a lock file, no temp left', () => {
  const { s, dir, end } = call();
  ok(s.open('unitnet', ''));
  assert.ok(existsSync(join(dir, 'lock')));
  ok(s.put('10.1.2.3', 'c1\r\neth0'));
  ok(s.put('last_reserved_ip.0', '10.1.2.3'));
  ok(s.put('last_reserved_ip.0', '10.1.2.30')); // replaced
  ok(s.put('last_reserved_ip.0', '10.1.2.4')); // shorter: no trace of the longer value
  assert.equal(readFileSync(join(dir, '10.1.2.3'), 'latin1'), 'c1\r\neth0');
  assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'latin1'), '10.1.2.4');
  assert.equal(statSync(join(dir, '10.1.2.3')).mode & 0o777, 0o644 & ~process.umask());
  assert.equal(readdirSync(dir).sort(), ['10.1.2.3', 'last_reserved_ip.0', 'lock']);
  assert.is(ok(s.get('10.1.2.3')), 'c1\r\neth0');
  assert.is(ok(s.get('10.9.9.9')), undefined);
  assert.equal(ok(s.keys()), ['10.1.2.3', 'last_reserved_ip.0']);
  assert.equal(ok(s.find(['c1\r\neth0'])), ['10.1.2.3']);
  assert.equal(ok(s.find(['c1'])), []);
  ok(s.remove('10.1.2.3'));
  ok(s.remove('10.1.2.3')); // gone already: not an error
  assert.equal(readdirSync(dir).sort(), ['last_reserved_ip.0', 'lock']);
  assert.equal(ok(s.entries()), [['last_reserved_ip.0', '10.1.2.4']]);
  end();
});

test('what another implementation wrote is read as it is: find trims, old-format files, non-ASCII, files that are not values skipped', () => {
  const { s, dir, end } = call('mixed');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lock'), '');
  writeFileSync(join(dir, '10.0.0.2'), 'c2\r\neth0\n');
  writeFileSync(join(dir, '10.0.0.3'), '  c3  ');
  writeFileSync(join(dir, '10.0.0.4'), 'c2\r\neth1');
  writeFileSync(join(dir, '10.0.0.5'), 'caf\u00e9');
  writeFileSync(join(dir, '10.0.0.6'), Buffer.from([0x63, 0xff, 0x32])); // not UTF-8: one U+FFFD
  writeFileSync(join(dir, '10.0.0.7'), 'x'.repeat(STORE_LIMITS.valueBytes + 1));
  symlinkSync(join(dir, '10.0.0.2'), join(dir, '10.0.0.8'));
  mkdirSync(join(dir, '10.0.0.9'));
  writeFileSync(join(dir, '.hidden'), 'c3');
  ok(s.open('mixed', ''));
  assert.equal(ok(s.find(['c2\r\neth0', 'c3'])), ['10.0.0.2', '10.0.0.3']);
  assert.equal(ok(s.find(['caf\u00e9'])), ['10.0.0.5']);
  assert.equal(ok(s.find(['c\uFFFD2'])), ['10.0.0.6']);
  assert.equal(ok(s.find(['x'.repeat(10)])), []);
  assert.equal(ok(s.keys()), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.0.8', '10.0.0.9']);
  assert.equal(ok(s.entries()).map((e: string[]) => e[0]), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  // a read that is refused says why, as before
  assert.match(s.get('10.0.0.7').val.message, /above the 65536-byte value limit/);
  assert.match(s.get('10.0.0.8').val.message, /ELOOP|symbolic link/i);
  assert.match(s.get('10.0.0.9').val.message, /not a regular file/);
  // a write never replaces a directory
  assert.equal(s.put('10.0.0.9', 'c9').tag, 'err');
  assert.ok(statSync(join(dir, '10.0.0.9')).isDirectory());
  // replacing the symlink replaces the link, not what it points at
  ok(s.put('10.0.0.8', 'c8'));
  assert.equal(readFileSync(join(dir, '10.0.0.2'), 'utf8'), 'c2\r\neth0\n');
  assert.equal(readFileSync(join(dir, '10.0.0.8'), 'utf8'), 'c8');
  assert.equal(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  end();
});

test('bounds: key shapes, value size, writes per call, keys per store; a crashed writer\'s temp file is removed at open', () => {
  const { s, dir, end } = call('bounds');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lock'), '');
  writeFileSync(join(dir, '.10.0.0.1.999.tmp'), 'half');
  ok(s.open('bounds', ''));
  assert.not.ok(existsSync(join(dir, '.10.0.0.1.999.tmp')));
  for (const k of ['', 'a/b', '.x', 'lock', '..', 'x'.repeat(256), 'a\0b']) assert.match(s.put(k, 'v').val?.message, /not a valid store key/, JSON.stringify(k));
  assert.match(s.put('big', 'x'.repeat(STORE_LIMITS.valueBytes + 1)).val.message, /at most 65536 bytes/);
  assert.is(ok(s.get('big')), undefined);
  const keys = STORE_LIMITS.keys;
  STORE_LIMITS.keys = 2; // a write that adds a key finds more than this many names (lock, k1, k2): refused
  try {
    ok(s.put('k1', 'v'));
    ok(s.put('k2', 'v'));
    ok(s.put('k2', 'v2')); // replacing is not a new key
    assert.match(s.put('k3', 'v').val.message, /already holds 2 keys/);
  } finally { STORE_LIMITS.keys = keys; }
  end();
  const puts = STORE_LIMITS.putsPerCall;
  STORE_LIMITS.putsPerCall = 2;
  const c2 = call('bounds');
  try {
    ok(c2.s.open('bounds', ''));
    ok(c2.s.put('k1', 'a'));
    ok(c2.s.put('k1', 'b'));
    assert.match(c2.s.put('k1', 'c').val.message, /at most 2 store writes per call/);
  } finally { STORE_LIMITS.putsPerCall = puts; c2.end(); }
});

test('the lock: a second call waits for the first and takes the lock within ms of its release; a stuck holder is a clear time-out', async () => {
  const a = call('locked');
  ok(a.s.open('locked', ''));
  const lock = join(a.dir, 'lock');
  a.end();
  // another process holds the lock for 300 ms
  const holder = spawn('flock', ['-x', lock, '-c', 'echo held; sleep 0.3; date +%s%N'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise((res) => holder.stdout!.once('data', (d) => { out += d; res(null); }));
  holder.stdout!.on('data', (d) => { out += d; });
  const released = new Promise<number>((res) => holder.on('close', () => res(Number(BigInt(out.trim().split('\n').pop()!) / 1_000_000n))));
  const b = call('locked');
  const t0 = Date.now();
  ok(b.s.open('locked', ''));
  const got = Date.now();
  const gone = await released;
  assert.ok(got - t0 >= 200, `waited ${got - t0} ms for a 300 ms holder`);
  // `gone`: just before the holder let go (its shell's last command); taken within a few ms of it
  assert.ok(got - gone < 20, `took the lock ${got - gone} ms after the holder was done`);
  b.end();
  // a holder that outlives the call's time limit: ETIMEDOUT before the deadline
  const stuck = spawn('flock', ['-x', lock, '-c', 'echo held; sleep 2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res) => stuck.stdout!.once('data', res));
  const c = call('locked', Date.now() + 400);
  const t1 = Date.now();
  const r = c.s.open('locked', '');
  const waited = Date.now() - t1;
  stuck.kill('SIGKILL');
  assert.is(r.val.code, 'ETIMEDOUT');
  assert.match(r.val.message, /locked by another CNI call/);
  assert.ok(waited >= 250 && waited < 400, `gave up after ${waited} ms`);
  assert.is(c.t.ctx.session.size, 0);
});

test('find-get, create, remove-found: host-local\'s ADD and DEL in one call each, as find, get, put and remove would do them', () => {
  const { t, s, dir, end } = call('combined');
  ok(s.open('combined', ''));
  assert.equal(ok(s.findGet(['c1\r\neth0', 'c1'], ['last_reserved_ip.0', 'nope'])), { found: [], values: [undefined, undefined] });
  assert.is(ok(s.create('10.0.0.2', 'c1\r\neth0', [['last_reserved_ip.0', '10.0.0.2']])), true);
  assert.is(ok(s.create('10.0.0.2', 'c2\r\neth0', [['last_reserved_ip.0', 'x']])), false); // taken: nothing written
  assert.equal(readFileSync(join(dir, '10.0.0.2'), 'latin1'), 'c1\r\neth0');
  assert.equal(readFileSync(join(dir, 'last_reserved_ip.0'), 'latin1'), '10.0.0.2');
  assert.is(ok(s.create('10.0.0.3', 'c2\r\neth0', [['last_reserved_ip.0', '10.0.0.3']])), true);
  assert.equal(ok(s.findGet(['c1\r\neth0', 'c1'], ['last_reserved_ip.0'])), { found: ['10.0.0.2'], values: ['10.0.0.3'] });
  // every refusal comes before anything is written
  assert.match(s.create('10.0.0.4', 'c4', [['a/b', 'x']]).val.message, /not a valid store key/);
  assert.match(s.create('10.0.0.4', 'c4', [['k', 'x'.repeat(STORE_LIMITS.valueBytes + 1)]]).val.message, /at most 65536 bytes/);
  assert.match(s.findGet([], ['../x']).val.message, /not a valid store key/);
  assert.not.ok(existsSync(join(dir, '10.0.0.4')));
  // an existing name that is not a value is not free either (the reference's O_EXCL)
  mkdirSync(join(dir, '10.0.0.9'));
  end();
  const c2 = call('combined');
  ok(c2.s.open('combined', ''));
  assert.is(ok(c2.s.create('10.0.0.9', 'c9', [])), false);
  assert.equal(ok(c2.s.removeFound(['c1\r\neth0'])), ['10.0.0.2']);
  assert.equal(ok(c2.s.removeFound(['c1\r\neth0'])), []);
  assert.equal(readdirSync(dir).sort(), ['10.0.0.3', '10.0.0.9', 'last_reserved_ip.0', 'lock']);
  // audited as changes: intent, then outcome
  assert.equal(c2.t.audit.filter((r) => r.call === 'store.remove-found').map((r) => r.outcome), ['pending', 'ok', 'pending', 'ok']);
  assert.equal(t.audit.filter((r) => r.call === 'store.find-get').map((r) => r.outcome).slice(0, 2), ['ok', 'ok']);
  c2.end();
});

test.run();
