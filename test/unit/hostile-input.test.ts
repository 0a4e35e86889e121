// Hostile input that needs no network namespace: module declarations the
// loader must refuse before compiling, V8's own limits behind that, file
// reads that must not block or run away, CNI_NETNS values that are not a
// container's network namespace, and audit records that try to forge lines.
// Temp dirs: hs-unit-.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LIMITS, V8_DEFAULT_FLAGS, V8_LIMIT_FLAGS, checkComponent, checkCoreModule, coreCounts, withV8Limits } from '../../host/sandbox/limits.js';
import { PackageError } from '../../host/sandbox/errors.js';
import { FileRefused, readRegularFile } from '../../host/sandbox/files.js';
import { dns, MAX_RESOLV_CONF_BYTES } from '../../host/capabilities/dns.js';
import { openContainerNetns } from '../../host/capabilities/namespaces.js';
import { CniError } from '../../host/cni/errors.js';
import { closeFd } from '../../host/kernel/native.js';
import { AUDIT_QUOTA, AUDIT_RESERVE, AuditLog, AuditQuotaExceeded, escapeText, formatRecord, matches, parseSince } from '../../host/gate/audit.js';
import { argChars, shortened } from '../../host/sandbox/sandbox.js';
import { addGlobals, addTables, assemble, declaring, leb } from '../helpers/wasm.js';
import { cli } from '../helpers/fixtures.js';
import { ROOT } from '../helpers/cni.js';
import { componentImportSignatures } from '../../host/sandbox/package.js';

let tmp: string;

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hs-unit-'));
});

test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const refuses = (wasm: Uint8Array, re: RegExp) => {
  let err: unknown;
  const t0 = process.hrtime.bigint();
  try { checkCoreModule(wasm, 'test module'); } catch (e) { err = e; }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.instance(err, PackageError, `refused: ${re}`);
  assert.match((err as Error).message, re);
  assert.ok(ms < 50, `refused in ${ms} ms, without walking what it declares`);
};

// the smallest valid module with one memory of max 16 pages
const base = () => assemble([{ id: 5, payload: Uint8Array.from([1, 0x01, 1, 16]) }]);

// ---------------------------------------------------------------- class 1: declarations

test('tables: too many, too large, without a maximum are refused, naming the limit', () => {
  assert.is(coreCounts(addTables(base(), 2, 1, 10)).tables, 2);
  checkCoreModule(addTables(base(), LIMITS.tables, 1, 100), 'ok');
  refuses(addTables(base(), LIMITS.tables + 1, 1, 1), new RegExp(`declares ${LIMITS.tables + 1} tables; the limit is ${LIMITS.tables}`));
  refuses(addTables(base(), 1, 1, 10_000_000), new RegExp(`table of 10000000 entries; the limit is ${LIMITS.tableEntries}`));
  refuses(addTables(base(), 1, 1, null), /table with no maximum size/);
  // a table count of a billion is refused on the count
  refuses(declaring(4, 1_000_000_000), /1000000000 tables/);
});

test('globals, element and data segments, functions, imports, code size: refused over their limits', () => {
  refuses(addGlobals(base(), LIMITS.globals + 1), new RegExp(`${LIMITS.globals + 1} globals; the limit is ${LIMITS.globals}`));
  checkCoreModule(addGlobals(base(), 10), 'ok');
  refuses(declaring(6, 50_000_000), /50000000 globals/);
  refuses(declaring(9, LIMITS.elementSegments + 1), /element segments/);
  refuses(declaring(11, LIMITS.dataSegments + 1), /data segments/);
  refuses(declaring(12, LIMITS.dataSegments + 1), /data segments/);
  refuses(declaring(3, LIMITS.functions + 1), /functions; the limit/);
  refuses(declaring(2, LIMITS.imports + 1), /imports; the limit/);
  refuses(declaring(1, LIMITS.types + 1), /types; the limit/);
  refuses(declaring(10, 1, LIMITS.codeBytes + 10), /MiB of code; the limit is/);
  refuses(assemble([{ id: 5, payload: Uint8Array.from([2, 0x01, 1, 16, 0x01, 1, 16]) }]), /2 memories/);
  refuses(assemble([{ id: 5, payload: Uint8Array.from([1, 0x00, 1]) }]), /memory with no maximum/);
  refuses(assemble([{ id: 5, payload: Uint8Array.from([1, 0x01, 1, ...leb(65536)]) }]), /65536 pages of memory/);
  // an imported table without a maximum counts as well
  const imp = assemble([{ id: 2, payload: Uint8Array.from([1, 1, 0x6d, 1, 0x74, 0x01, 0x70, 0x00, 0x01]) }]);
  refuses(imp, /table with no maximum/);
  // malformed: a clear refusal, not an exception of another kind
  refuses(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 4, 0xff]), /truncated|malformed/);
});

test('components: too many core instances or modules, nested components are refused', () => {
  const comp = (secs: [number, Uint8Array][]) => new Uint8Array(Buffer.concat([
    Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]),
    ...secs.map(([id, p]) => Buffer.concat([Uint8Array.from([id, ...leb(p.length)]), p])),
  ]));
  const refusesC = (c: Uint8Array, re: RegExp) => {
    let err: unknown;
    try { checkComponent(c, 'bomb'); } catch (e) { err = e; }
    assert.instance(err, PackageError);
    assert.match((err as Error).message, re);
  };
  refusesC(comp([[2, Uint8Array.from(leb(1000))]]), /declares 1000 core instances; the limit is 16/);
  refusesC(comp([[4, Uint8Array.from([0])]]), /nests 1 components/);
  refusesC(comp(Array.from({ length: 9 }, () => [1, base()] as [number, Uint8Array])), /declares 9 core modules; the limit is 8/);
  refusesC(comp([[1, addTables(base(), 1, 1, null)]]), /core module 0\) declares a table with no maximum/);
  assert.equal(checkComponent(comp([[1, base()]]), 'ok'), { maxMemoryPages: 16 });
});

test('V8 limits are lowered as a second line around instantiation, and restored after', () => {
  const big = addTables(base(), 1, LIMITS.tableEntries + 1, LIMITS.tableEntries + 1);
  withV8Limits(() => {
    assert.throws(() => new WebAssembly.Table({ element: 'anyfunc', initial: LIMITS.tableEntries + 1 }), /upper bound|limit/);
    // a module V8 would accept by default, refused by V8 at instantiation
    assert.throws(() => new WebAssembly.Instance(new WebAssembly.Module(big as Uint8Array<ArrayBuffer>)), /table size|limit/);
    assert.throws(() => new WebAssembly.Memory({ initial: LIMITS.memoryPages + 1 }));
  });
  new WebAssembly.Instance(new WebAssembly.Module(big as Uint8Array<ArrayBuffer>)); // the defaults again
});

test('V8 defaults restored after the window are the defaults this node reports (so code caches keep one key)', () => {
  const opts = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  for (const f of V8_DEFAULT_FLAGS) {
    const [name, value] = f.slice(2).split('=');
    const m = new RegExp(`--${name} \\(.*\\)\\n\\s+type: \\w+\\s+default: --${name}=(\\d+)`).exec(opts);
    assert.ok(m, `${name} in node --v8-options`);
    assert.is(m![1], value, name);
  }
  assert.equal(V8_LIMIT_FLAGS.map((f) => f.split('=')[0]), V8_DEFAULT_FLAGS.map((f) => f.split('=')[0]));
});

test('import signatures are read from the component type section, fully resolved', async () => {
  const comp = readFileSync(join(ROOT, 'dist/plugins/bridge/bridge.component.wasm'));
  const sigs = await componentImportSignatures(comp);
  const links = sigs.get('cni-wasm:plugin/links@0.1.0')!;
  assert.ok(links, [...sigs.keys()].join(','));
  assert.is(links.get('set-up'), 'func(ns:enum{host,container},name:string,up:bool)->result<_,record{code:string,message:string}>');
  assert.match(links.get('get')!, /^func\(ns:enum\{host,container\},name:string\)->result<record\{index:u32,name:string,/);
  assert.is(sigs.get('cni-wasm:plugin/log@0.1.0')!.get('write'), 'func(lvl:enum{debug,info,warn,error},message:string)->()');
});

// ---------------------------------------------------------------- class 1: arguments

test('argChars stops early and shortened() bounds what a refusal record holds', () => {
  const s = 'x'.repeat(1_000_000);
  const list = new Array(100_000).fill(s);
  const t0 = Date.now();
  assert.ok(argChars([list], 65536) > 65536);
  assert.ok(Date.now() - t0 < 50, 'early exit');
  const sh = JSON.stringify(shortened([s, list]));
  assert.ok(sh.length < 4000, `${sh.length} chars`);
  assert.match(sh, /1000000 chars/);
  assert.match(sh, /100000 items/);
});

// ---------------------------------------------------------------- class 2: file reads

function refusedRead(path: string, code: string, re: RegExp, maxBytes = 1024): void {
  const t0 = Date.now();
  let err: unknown;
  try { readRegularFile(path, { maxBytes, what: 'test file' }); } catch (e) { err = e; }
  assert.instance(err, FileRefused, path);
  assert.is((err as FileRefused).code, code, (err as Error).message);
  assert.match((err as Error).message, re);
  assert.ok(Date.now() - t0 < 1000, `${path}: returned in ${Date.now() - t0} ms`);
}

test('file reads: FIFO, /dev/zero, symlink, directory, huge file are refused at once', () => {
  const fifo = join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  refusedRead(fifo, 'EINVAL', /is a FIFO, not a regular file/);
  refusedRead('/dev/zero', 'EINVAL', /character device/);
  const real = join(tmp, 'real.conf');
  writeFileSync(real, 'nameserver 10.0.0.1\n');
  const link = join(tmp, 'link.conf');
  symlinkSync(real, link);
  refusedRead(link, 'ELOOP', /symbolic link; refusing to follow it/);
  mkdirSync(join(tmp, 'dir'));
  refusedRead(join(tmp, 'dir'), 'EINVAL', /directory/);
  const huge = join(tmp, 'huge');
  writeFileSync(huge, '');
  truncateSync(huge, 10 * 1024 * 1024 * 1024); // sparse 10 GiB
  refusedRead(huge, 'EFBIG', /10737418240 bytes; the limit is 1024/);
  refusedRead(join(tmp, 'missing'), 'ENOENT', /no such file or directory/);
  assert.is(readRegularFile(real, { maxBytes: 1024, what: 'x' }).toString(), 'nameserver 10.0.0.1\n');
});

test('dns.read-resolv-conf: hostile paths give a host error at once; a real file still parses', () => {
  const run = (p: string) => dns.readResolvConf.run({} as never, p);
  const fifo = join(tmp, 'fifo');
  for (const [p, code] of [[fifo, 'EINVAL'], ['/dev/zero', 'EINVAL'], [join(tmp, 'link.conf'), 'ELOOP'], [join(tmp, 'dir'), 'EINVAL'], [join(tmp, 'huge'), 'EFBIG']] as const) {
    const t0 = Date.now();
    let err: any;
    try { run(p); } catch (e) { err = e; }
    assert.ok(err, `${p} refused`);
    assert.is(err.code, code, `${p}: ${err.message}`);
    assert.is(err.constructor.name, 'HostError', 'a host error the guest sees, not a crash');
    assert.ok(Date.now() - t0 < 1000);
  }
  const big = join(tmp, 'big.conf');
  writeFileSync(big, 'nameserver 10.0.0.1\n'.repeat(MAX_RESOLV_CONF_BYTES / 10));
  assert.throws(() => run(big), /limit is 65536/);
  const many = join(tmp, 'many.conf');
  writeFileSync(many, Array.from({ length: 500 }, (_, i) => `nameserver 10.0.${i >> 8}.${i & 255}`).join('\n'));
  assert.is((run(many) as any).nameservers.length, 64, 'lists handed to the guest are capped');
  assert.equal((run(join(tmp, 'real.conf')) as any).nameservers, ['10.0.0.1']);
});

// ---------------------------------------------------------------- class 7: CNI_NETNS

function refusedNetns(path: string, re: RegExp, code = 4): void {
  const t0 = Date.now();
  let err: unknown;
  try { openContainerNetns(path); } catch (e) { err = e; }
  assert.instance(err, CniError, path);
  assert.is((err as CniError).code, code, (err as CniError).msg);
  assert.match((err as CniError).msg, re);
  assert.ok(Date.now() - t0 < 1000, `${path}: ${Date.now() - t0} ms`);
}

test('CNI_NETNS: the host\'s own netns (code 8), a FIFO, a regular file, a directory, another namespace type (code 4) are refused', () => {
  refusedNetns('/proc/self/ns/net', /is the plugin's own \(the host's\) network namespace/, 8);
  refusedNetns(`/proc/${process.pid}/ns/net`, /plugin's own/, 8);
  refusedNetns(join(tmp, 'fifo'), /failed to open netns ".*fifo": .*not a namespace file: unknown FS magic/);
  refusedNetns(join(tmp, 'real.conf'), /not a namespace file/);
  refusedNetns(join(tmp, 'dir'), /not a namespace file/);
  refusedNetns('/proc/self/ns/mnt', /not of a network namespace/);
  refusedNetns('/dev/zero', /not a namespace file/);
  assert.is(openContainerNetns(join(tmp, 'missing')), null, 'a vanished netns is left for DEL to accept');
});

test('CNI_NETNS: a real other network namespace is accepted', () => {
  // a netns of our own making, held by a sleeping child so nothing is mounted
  const name = 'hs-unit-ns';
  execFileSync('ip', ['netns', 'add', name]);
  try {
    const fd = openContainerNetns(`/run/netns/${name}`);
    assert.type(fd, 'number');
    closeFd(fd!);
  } finally {
    execFileSync('ip', ['netns', 'del', name]);
  }
});

// ---------------------------------------------------------------- class 10: audit

const rec = (over: Record<string, unknown> = {}) => ({
  time: '2026-12-01T08:00:00.000Z', plugin: 'evil', sha256: 'ab'.repeat(32), command: 'ADD', containerId: 'ctr-1', network: 'n',
  call: 'log.write', args: {}, verdict: 'allow', outcome: 'ok', ms: 0.1, ...over,
}) as any;

test('audit lines escape control characters, separators and bidi overrides; long values are shortened', () => {
  const forged = 'one\n2026-12-01T08:00:00Z ADD   bridge     links.remove name=eth0 -> ok\r\u001b[2J\u001b]0;t\u0007\u009b31m\u2028\u202e';
  const line = formatRecord(rec({ args: { level: 'info', message: forged + 'x'.repeat(5000) }, plugin: 'ev\nil', outcome: 'ok\n forged' }));
  assert.not.match(line, /[\u0000-\u001f\u007f-\u009f\u2028\u202e]/, 'no raw control characters');
  assert.ok(line.includes('\\n2026-12-01T08:00:00Z ADD'), 'the forged line stays inside the record');
  assert.ok(line.includes('\\x1b[2J'));
  assert.ok(line.includes('\\x9b'));
  assert.ok(line.includes('\\u{2028}') || line.includes('…'), line);
  assert.ok(line.length < 2100, `${line.length} chars`);
  assert.match(line, /…\(\d+ chars\)/);
  assert.ok(line.includes(`[${'ab'.repeat(6)}]`), 'the digest is shown');
  assert.is(escapeText('a\\nb'), 'a\\\\nb', 'a literal backslash cannot imitate an escape');
});

test('audit filters: container prefix, --since, --command, --call, allowExec refusals count as denials', () => {
  assert.ok(matches(rec(), { container: 'ctr' }));
  assert.not.ok(matches(rec(), { container: 'other' }));
  assert.ok(matches(rec(), { since: Date.parse('2026-12-01T07:00:00Z') }));
  assert.not.ok(matches(rec(), { since: Date.parse('2026-12-01T09:00:00Z') }));
  assert.ok(matches(rec(), { command: 'add' }));
  assert.not.ok(matches(rec(), { command: 'DEL' }));
  assert.ok(matches(rec(), { call: 'log.' }));
  assert.ok(matches(rec(), { call: 'log.*' }));
  assert.ok(matches(rec(), { call: 'log.write' }));
  assert.not.ok(matches(rec(), { call: 'log.wr' }));
  const exec = rec({ call: 'delegate.run', outcome: "error: CNI7 no plugin component named 'dhcp', and the policy does not allow running a 'dhcp' binary (allowExec)" });
  assert.ok(matches(exec, { denied: true }));
  assert.match(formatRecord(exec), / DENY delegate\.run/);
  const now = Date.parse('2026-12-01T10:00:00Z');
  assert.is(parseSince('2h', now), Date.parse('2026-12-01T08:00:00Z'));
  assert.throws(() => parseSince('yesterday'), /neither a time/);
});

test('audit file 0600 and a dir it creates 0700, whatever the umask', () => {
  const old = process.umask(0o000);
  try {
    const dir = join(tmp, 'auditdir', 'sub');
    const log = new AuditLog(join(dir, 'audit.log'));
    log.write(rec());
    log.close();
    assert.is(statSync(join(dir, 'audit.log')).mode & 0o777, 0o600);
    assert.is(statSync(dir).mode & 0o777, 0o700);
    // a pre-existing file with loose modes is tightened
    const loose = join(tmp, 'loose.log');
    writeFileSync(loose, '', { mode: 0o666 });
    const l2 = new AuditLog(loose);
    l2.write(rec());
    l2.close();
    assert.is(statSync(loose).mode & 0o777, 0o600);
  } finally {
    process.umask(old);
  }
});

test('audit quota: room for calls ends at the quota; past quota and reserve a write fails closed', () => {
  const log = new AuditLog(join(tmp, 'quota.log'));
  const big = rec({ args: { message: 'q'.repeat(60_000) } });
  let n = 0;
  while (log.hasRoomForCalls()) { log.write(big); n++; }
  assert.ok(n > 10 && n <= Math.ceil(AUDIT_QUOTA.bytes / 60_000) + 1, `${n} records`);
  // the reserve takes the host's own records (the refusal, the invocation record)
  log.write(rec());
  let err: unknown;
  try { for (let i = 0; i < AUDIT_RESERVE.records + 100; i++) log.write(big); } catch (e) { err = e; }
  assert.instance(err, AuditQuotaExceeded);
  log.close();
  assert.ok(statSync(join(tmp, 'quota.log')).size <= AUDIT_QUOTA.bytes + AUDIT_RESERVE.bytes, 'never past quota + reserve');
});

test('audit: an intent goes out at once with what was held; outcomes wait for the next write; a failed write keeps them', () => {
  const file = join(tmp, 'held.log');
  const log = new AuditLog(file);
  const lines = () => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).outcome as string);
  log.write(rec({ outcome: 'pending' }));
  assert.equal(lines(), ['pending'], 'the intent is on disk before the call acts');
  log.write(rec({ outcome: 'ok' }), { later: true });
  log.write(rec({ outcome: 'error: EDENIED no' }), { later: true });
  assert.equal(lines(), ['pending'], 'outcomes and denials are held');
  log.write(rec({ outcome: 'pending' }));
  assert.equal(lines(), ['pending', 'ok', 'error: EDENIED no', 'pending'], 'in order, with the next intent');
  log.write(rec({ outcome: 'ok' }), { later: true });
  log.flush();
  assert.equal(lines(), ['pending', 'ok', 'error: EDENIED no', 'pending', 'ok']);
  // the file replaced by a directory: the next write fails and nothing held is dropped
  log.write(rec({ outcome: 'held-1' }), { later: true });
  log.close();
  rmSync(file);
  mkdirSync(file);
  const broken = new AuditLog(file);
  broken.write(rec({ outcome: 'held-2' }), { later: true });
  assert.throws(() => broken.write(rec({ outcome: 'pending' })), /not a regular file|EISDIR|illegal operation/i, 'an intent that cannot be written stops the call');
  assert.throws(() => broken.flush(), /not a regular file|EISDIR|illegal operation/i, 'still held, still failing');
  rmSync(file, { recursive: true });
  broken.flush();
  assert.equal(lines(), ['held-2'], 'once writable, what was held goes out');
  broken.close();
});

test('cni-wasm audit prints escaped one-line records, --json stays one line per record, bad lines are counted', () => {
  const file = join(tmp, 'cli.log');
  writeFileSync(file, [
    JSON.stringify(rec({ args: { message: 'a\nFORGED 2026 ADD bridge links.remove -> ok\u001b[31m' } })),
    'not json\u001b[2J',
    JSON.stringify(rec({ containerId: 'other', verdict: 'deny', call: 'links.remove', outcome: 'error: EDENIED no' })),
  ].join('\n') + '\n');
  const r = cli(['audit', '--file', file]);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.is(lines.length, 2);
  assert.not.match(r.stdout, /\u001b/);
  assert.ok(lines[0].includes('\\nFORGED'));
  assert.match(r.stderr, /1 line\(s\) are not audit records/);
  assert.not.match(r.stderr, /\u001b/);
  const j = cli(['audit', '--file', file, '--json', '--container', 'ctr']);
  const jl = j.stdout.split('\n').filter(Boolean);
  assert.is(jl.length, 1);
  assert.is(JSON.parse(jl[0]).args.message.startsWith('a\nFORGED'), true);
  assert.not.match(j.stdout, /\u001b/);
  const d = cli(['audit', '--file', file, '--denied', '--call', 'links.*', '--command', 'add', '--since', '2026-11-30']);
  assert.is(d.stdout.split('\n').filter(Boolean).length, 1, d.stdout);
});

test.run();
