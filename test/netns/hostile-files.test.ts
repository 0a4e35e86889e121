// Class 2 of issue 7, host reads that cannot be interrupted: the one host
// function that reads a file a config names, dns.read-resolv-conf (host-local's
// resolvConf), pointed at a FIFO (the reference hangs on it), /dev/zero (the
// reference reads until memory runs out), a symlink to a secret, a directory,
// a 10 GiB sparse file. Each gives a clear error at once, audited with the
// component's digest, and no lease is written. Needs root (CNI_NETNS).
// Prefix: hs-f-.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Harness, makeHarness, ours, readAudit, removeHarness } from '../helpers/cni.js';
import { cleanupAll, makeNetns } from '../helpers/netns.js';

const P = 'hs-f-';
const NS = `${P}c`;
let h: Harness;
let tmp: string;
let n = 0;

test.before(() => {
  cleanupAll(P);
  makeNetns(NS);
  tmp = mkdtempSync(join(tmpdir(), 'hs-f-'));
  h = makeHarness('hs-f-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function addWith(resolvConf: string): { r: ReturnType<typeof ours>; ms: number; dataDir: string; cid: string } {
  const dataDir = join(tmp, `data-${++n}`);
  const cid = `hs-f-${n}`;
  const t0 = Date.now();
  const r = ours(h, 'host-local', {
    command: 'ADD', netns: NS, containerId: cid, ifname: 'eth0',
    config: { cniVersion: '1.0.0', name: 'hsnet', type: 'host-local', ipam: { type: 'host-local', subnet: '10.78.0.0/24', dataDir, resolvConf } },
  });
  return { r, ms: Date.now() - t0, dataDir, cid };
}

const leases = (dataDir: string) => existsSync(join(dataDir, 'hsnet')) ? readdirSync(join(dataDir, 'hsnet')).filter((f) => /^\d/.test(f)) : [];

test('resolvConf on a FIFO, /dev/zero, a symlink, a directory, a huge file: a clear error at once, audited, no lease', () => {
  const fifo = join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const secret = join(tmp, 'secret');
  writeFileSync(secret, 'nameserver 10.99.99.99\n', { mode: 0o600 });
  symlinkSync(secret, join(tmp, 'link.conf'));
  mkdirSync(join(tmp, 'dir'));
  const huge = join(tmp, 'huge.conf');
  writeFileSync(huge, '');
  truncateSync(huge, 10 * 1024 * 1024 * 1024);
  for (const [path, code, re] of [
    [fifo, 'EINVAL', /is a FIFO, not a regular file/],
    ['/dev/zero', 'EINVAL', /is a character device, not a regular file/],
    [join(tmp, 'link.conf'), 'ELOOP', /is a symbolic link; refusing to follow it/],
    [join(tmp, 'dir'), 'EINVAL', /is a directory, not a regular file/],
    [huge, 'EFBIG', /is 10737418240 bytes; the limit is 65536/],
  ] as const) {
    const { r, ms, dataDir, cid } = addWith(path);
    assert.is.not(r.code, 0, `${path}: ${r.stdout}`);
    assert.ok(r.json, `${path}: one JSON document: ${r.stdout} ${r.stderr}`);
    assert.match(r.json.msg, re, `${path}: ${r.json.msg}`);
    assert.ok(r.json.msg.includes(path), r.json.msg);
    assert.ok(ms < 10_000, `${path}: ${ms} ms`);
    assert.equal(leases(dataDir), [], `${path}: no lease written`);
    const recs = readAudit(h).filter((x) => x.containerId === cid && x.call === 'dns.read-resolv-conf');
    assert.is(recs.length, 1, `${path}: the read is audited`);
    assert.match(recs[0].outcome, new RegExp(`^error: ${code} `));
    assert.match(recs[0].sha256, /^[0-9a-f]{64}$/);
    assert.is(recs[0].args.path, path);
  }
});

test('a regular resolv.conf still works', () => {
  const rc = join(tmp, 'resolv.conf');
  writeFileSync(rc, 'nameserver 10.78.0.53\nsearch hs.test\n');
  const { r, dataDir } = addWith(rc);
  assert.is(r.code, 0, r.stdout);
  assert.equal(r.json.dns.nameservers, ['10.78.0.53']);
  assert.is(leases(dataDir).length, 1);
});

test.run();
