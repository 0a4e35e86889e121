// Drop-in failure paths and sizes (issue 6): a failed ADD leaves nothing,
// long names and big configs work, external IPAM is bounded by its own
// limit, orphaned temp files are cleaned. Our bridge + host-local in a
// throwaway host netns. Needs root. Prefix: fp-.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniCall, type CniReply, type Harness, REFERENCE_BIN, makeHarness, ours, readAudit, removeHarness, writePolicy } from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns } from '../helpers/netns.js';
import { Ledger } from '../../host/gate/ledger.js';

const P = 'fp-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;
let h: Harness;

const conf = (over: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0', name: 'fpnet', type: 'bridge', bridge: 'fpbr0', isGateway: true,
  ipam: { type: 'host-local', subnet: '10.97.0.0/24', ...ipam }, ...over,
});

function call(command: CniCall['command'], config: object | string, over: Partial<CniCall> = {}): CniReply {
  return ours(h, 'bridge', { command, hostNs: HOST, netns: CTR, containerId: 'fp-ctr', ifname: 'eth0', config, ...over });
}

const leases = (net = 'fpnet') => {
  const d = join(h.storeDir, net);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d/.test(f)) : [];
};
const veths = () => ipJson<{ ifname: string }[]>(HOST, ['link', 'show', 'type', 'veth']).map((l) => l.ifname);

function nothingLeft(what: string): void {
  assert.equal(veths(), [], `${what}: no veth`);
  assert.equal(ipJson<{ ifname: string }[]>(CTR, ['link', 'show']).map((l) => l.ifname), ['lo'], `${what}: no container interface`);
  assert.equal(Ledger.all(h.stateDir), [], `${what}: the ledger holds nothing`);
}

test.before(() => {
  cleanupAll(P);
  makeNetns(HOST);
  makeNetns(CTR);
  h = makeHarness(P);
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('an IPAM result the host must refuse (an IPv4 range with an IPv6 gateway) keeps no lease and leaves no link', () => {
  const r = call('ADD', conf({}, { subnet: undefined, ranges: [[{ subnet: '10.97.0.0/24', gateway: 'fd00::1' }]] }));
  assert.is(r.code, 1);
  assert.match(r.json.msg, /invalid CNI result/);
  assert.match(r.json.details, /gateway.*IPv6.*IPv4/);
  assert.equal(leases(), []);
  nothingLeft('refused result');
});

test('a 250-character container id and a 200-character network name work through ADD, CHECK, DEL', () => {
  const cid = 'c'.repeat(250);
  const name = 'n'.repeat(200);
  const c = conf({ name });
  const add = call('ADD', c, { containerId: cid });
  assert.is(add.code, 0, add.stdout);
  assert.equal(leases(name), ['10.97.0.2']);
  assert.ok(readFileSync(join(h.storeDir, name, '10.97.0.2'), 'utf8').startsWith(cid));
  assert.is(Ledger.peek(h.stateDir, name, cid, 'eth0').length > 0, true, 'its ledger, under a hashed file name');
  const cached = { ...c, prevResult: add.json };
  assert.is(call('CHECK', cached, { containerId: cid }).code, 0);
  assert.is(call('DEL', cached, { containerId: cid }).code, 0);
  assert.equal(leases(name), []);
  nothingLeft('long names');
});

test('configs of several MB: 10,000 portMappings, a 2 MB string; 10,000 valid-attachments for GC', () => {
  const portMappings = Array.from({ length: 10_000 }, (_, i) => ({ hostPort: 10_000 + i, containerPort: 80, protocol: 'tcp' }));
  const big = conf({ capabilities: { portMappings: true }, runtimeConfig: { portMappings }, note: 'x'.repeat(2_000_000) });
  const text = JSON.stringify(big);
  assert.ok(text.length > 2_400_000, `${text.length} bytes`);
  const add = call('ADD', text);
  assert.is(add.code, 0, add.stdout.slice(0, 300));
  assert.is(call('DEL', { ...big, prevResult: add.json }).code, 0);
  assert.equal(leases(), []);
  nothingLeft('big config');
  const valid = Array.from({ length: 10_000 }, (_, i) => ({ containerID: `ctr-${i}`, ifname: 'eth0' }));
  const gc = call('GC', { ...conf({ cniVersion: '1.1.0' }), 'cni.dev/valid-attachments': valid }, { containerId: '', netns: '' });
  assert.is(gc.code, 0, gc.stdout.slice(0, 300));
});

test('JSON nested 10,000 deep is a decoding error (code 6), not a crash', () => {
  let deep = '1';
  for (let i = 0; i < 10_000; i++) deep = `[${deep}]`;
  const text = JSON.stringify(conf({ deep: 'X' })).replace('"X"', deep);
  const r = call('ADD', text);
  assert.is(r.code, 1);
  assert.is(r.json.code, 6);
  assert.match(r.json.msg, /nested more than 64 levels/);
  assert.not.match(r.stdout, /at \S+ \(/, 'no stack trace');
  nothingLeft('deep JSON');
});

test('external IPAM (allowExec) is bounded by execTimeoutMs, not by the guest\'s timeoutMs', () => {
  // a slow IPAM: the reference host-local behind a 1.5 s pause
  const ext = join(h.dir, 'ext');
  mkdirSync(ext, { recursive: true });
  const slow = join(ext, 'slow-ipam');
  writeFileSync(slow, `#!/bin/sh\nsleep 1.5\nexec ${REFERENCE_BIN}/host-local "$@"\n`);
  chmodSync(slow, 0o755);
  const c = conf({}, { type: 'slow-ipam', dataDir: join(h.dir, 'ext-ipam') });
  const path = `${h.bin}:${ext}`;
  try {
    writePolicy(h, { allowExec: ['slow-ipam'], timeoutMs: 1000, execTimeoutMs: 5000 });
    const add = call('ADD', c, { path });
    assert.is(add.code, 0, `slower than timeoutMs, within execTimeoutMs: ${add.stdout}`);
    assert.is(call('DEL', { ...c, prevResult: add.json }, { path }).code, 0);
    nothingLeft('slow external IPAM');

    writePolicy(h, { allowExec: ['slow-ipam'], timeoutMs: 1000, execTimeoutMs: 500 });
    const late = call('ADD', c, { path });
    assert.is(late.code, 1);
    assert.is(late.json.code, 103);
    assert.match(late.json.msg, /did not finish ADD within 500 ms/);
    assert.match(late.json.details, /execTimeoutMs/);
    nothingLeft('external IPAM past its limit');
    assert.ok(readAudit(h).some((x) => x.call === 'exec' && x.outcome === 'error: ETIMEDOUT'));
  } finally {
    writePolicy(h, {});
  }
});

test('a temp file orphaned by a crashed writer is removed at the next open of the store', () => {
  const dir = join(h.storeDir, 'fpnet');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lock'), '');
  writeFileSync(join(dir, '.10.97.0.9.12345.tmp'), 'half a lease');
  const add = call('ADD', conf());
  assert.is(add.code, 0, add.stdout);
  assert.not.ok(readdirSync(dir).some((f) => f.endsWith('.tmp')), readdirSync(dir).join(' '));
  assert.is(call('DEL', { ...conf(), prevResult: add.json }).code, 0);
  nothingLeft('after the orphan');
});

test.run();
