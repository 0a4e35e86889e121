// IPAM types that are not components (the reference `dhcp`, say) are run
// from CNI_PATH as libcni would — but only when the policy lists them in
// allowExec. Stand-in here: the reference host-local under another name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, ipJson, makeNetns } from '../helpers/netns.js';
import { type Harness, REFERENCE_BIN, makeHarness, ours, readAudit, removeHarness, writePolicy } from '../helpers/cni.js';

const P = 'dx-';
const HOST = `${P}host`;
const EXTERNAL = 'ext-ipam';
let h: Harness;
let extDir: string;

const conf = () => ({
  cniVersion: '1.0.0', name: 'dxnet', type: 'bridge', bridge: 'dx0', isGateway: true,
  ipam: { type: EXTERNAL, subnet: '10.67.0.0/24', dataDir: join(h.dir, 'ext-leases') },
});
const add = (netns: string, id: string) => ours(h, 'bridge', {
  command: 'ADD', hostNs: HOST, netns, containerId: id, config: conf(), path: `${h.bin}:${extDir}`,
});
const leases = () => {
  const d = join(h.dir, 'ext-leases', 'dxnet');
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d/.test(f)) : [];
};

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
  extDir = join(h.dir, 'ext-bin');
  mkdirSync(extDir);
  copyFileSync(join(REFERENCE_BIN, 'host-local'), join(extDir, EXTERNAL));
  makeNetns(HOST);
  makeNetns(`${P}a`);
  makeNetns(`${P}b`);
});

test.after(() => {
  cleanupAll(P);
  removeHarness(h);
});

test('without allowExec the binary is not run, and the ADD leaves nothing behind', () => {
  const r = add(`${P}a`, 'ctr-a');
  assert.is(r.code, 1, r.stdout);
  assert.is(r.json.code, 7);
  assert.match(r.json.msg, /allowExec/);
  assert.equal(leases(), [], 'the external IPAM never ran');
  assert.equal(ipJson<any[]>(`${P}a`, ['link', 'show']).map((l) => l.ifname), ['lo'], 'no veth left in the container');
  assert.not.ok(readAudit(h).some((x) => x.call === 'exec' && x.verdict === 'allow'), 'no exec ran');
  const refused = readAudit(h).filter((x) => x.call === 'exec' && x.verdict === 'deny');
  assert.is(refused.length, 1, 'the refusal is audited as a denial');
  assert.match(refused[0].outcome, /allowExec/);
});

test('with allowExec it runs from CNI_PATH, its result is used, and the run is audited', () => {
  writePolicy(h, { allowExec: [EXTERNAL] });
  const r = add(`${P}b`, 'ctr-b');
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.json.ips.map((i: any) => i.address), ['10.67.0.2/24']);
  assert.equal(leases(), ['10.67.0.2']);
  const addrs = ipJson<any[]>(`${P}b`, ['-4', 'addr', 'show', 'dev', 'eth0'])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal(addrs, ['10.67.0.2/24']);
  const exec = readAudit(h).filter((x) => x.call === 'exec' && x.verdict === 'allow' && x.outcome !== 'pending');
  assert.is(exec.length, 1);
  assert.ok(readAudit(h).some((x) => x.call === 'exec' && x.outcome === 'pending'), 'recorded before it ran');
  assert.is(exec[0].plugin, EXTERNAL);
  assert.is(exec[0].args.bin, join(extDir, EXTERNAL));
  assert.is(exec[0].outcome, 'ok');

  const d = ours(h, 'bridge', {
    command: 'DEL', hostNs: HOST, netns: `${P}b`, containerId: 'ctr-b', config: conf(), path: `${h.bin}:${extDir}`,
  });
  assert.is(d.code, 0, d.stdout);
  assert.equal(leases(), [], 'DEL went to the external IPAM too');
});

test.run();
