// GC and STATUS (spec 1.1.0): a container that vanished without a DEL leaves
// a lease, a masquerade entry and a ledger file; GC with the runtime's list
// of valid attachments removes exactly those, and leaves the others alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, deleteNetns, makeNetns, nsExec } from '../helpers/netns.js';
import { type Harness, makeHarness, ours, readAudit, removeHarness } from '../helpers/cni.js';

const P = 'gc-';
const HOST = `${P}host`;
let h: Harness;

const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0', name: 'gcnet', type: 'bridge', bridge: 'gc0', isGateway: true, ipMasq: true,
  ipam: { type: 'host-local', subnet: '10.66.0.0/24', dataDir: join(h.dir, 'leases') },
  ...extra,
});

const leases = () => readdirSync(join(h.dir, 'leases', 'gcnet')).filter((f) => /^\d/.test(f)).sort();
const masq = (): string[] => {
  const r = nsExec(HOST, ['nft', '-j', 'list', 'map', 'inet', 'cni_wasm_nat', 'masq4'], { check: false });
  if (r.status !== 0) return [];
  const m = (JSON.parse(r.stdout).nftables as any[]).find((x) => x.map)?.map;
  return (m?.elem ?? []).map((e: any) => (Array.isArray(e) ? e[0] : e)).sort();
};
const ledger = (id: string) => join(h.stateDir, 'ledger', 'gcnet', `${id}@eth0.jsonl`);

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
  makeNetns(HOST);
  makeNetns(`${P}a`);
  makeNetns(`${P}b`);
});

test.after(() => {
  cleanupAll(P);
  removeHarness(h);
});

test('GC removes what a vanished attachment left, and nothing else', () => {
  for (const c of ['a', 'b']) {
    const r = ours(h, 'bridge', { command: 'ADD', hostNs: HOST, netns: `${P}${c}`, containerId: `ctr-${c}`, config: conf() });
    assert.is(r.code, 0, r.stdout + r.stderr);
  }
  assert.equal(leases(), ['10.66.0.2', '10.66.0.3']);
  assert.equal(masq(), ['10.66.0.2', '10.66.0.3']);
  assert.ok(existsSync(ledger('ctr-a')) && existsSync(ledger('ctr-b')));

  // container a dies without a DEL: its netns (and veth pair) go, the rest stays
  deleteNetns(`${P}a`);

  const gc = ours(h, 'bridge', {
    command: 'GC', hostNs: HOST, containerId: '', config: conf({ 'cni.dev/valid-attachments': [{ containerID: 'ctr-b', ifname: 'eth0' }] }),
  });
  assert.is(gc.code, 0, gc.stdout + gc.stderr);
  assert.is(gc.stdout, '', 'GC prints nothing on success');

  assert.equal(leases(), ['10.66.0.3'], 'the lease of a is released by host-local GC, b keeps its own');
  assert.equal(masq(), ['10.66.0.3'], 'the masquerade entry of a is swept, b keeps its own');
  assert.not.ok(existsSync(ledger('ctr-a')), 'the ledger of a is gone');
  assert.ok(existsSync(ledger('ctr-b')), 'the ledger of b stays');

  const calls = readAudit(h).filter((r) => r.command === 'GC').map((r) => `${r.plugin} ${r.call}`);
  assert.ok(calls.includes('bridge delegate.run'), calls.join('\n'));
  assert.ok(calls.includes('host-local invoke.gc'), calls.join('\n'));
  assert.ok(calls.includes('cni-wasm sweep.firewall.masquerade-del'), calls.join('\n'));
});

test('STATUS answers for a 1.1.0 config and is refused below 1.1.0', () => {
  const ok = ours(h, 'bridge', { command: 'STATUS', hostNs: HOST, containerId: '', config: conf() });
  assert.is(ok.code, 0, ok.stdout);
  const old = ours(h, 'bridge', { command: 'STATUS', hostNs: HOST, containerId: '', config: conf({ cniVersion: '1.0.0' }) });
  assert.is(old.code, 1);
  assert.is(old.json.code, 1);
  assert.match(old.json.msg, /STATUS/);
});

test.run();
