// Every spec version through the sequence a runtime really sends (libcni):
// VERSION, ADD, CHECK (0.4.0 and later), DEL with the cached ADD result as
// prevResult at the config's own cniVersion, then DEL again. Ours side by
// side with the reference bridge + host-local (which speaks up to 1.0.0),
// each in its own throwaway host netns: exit codes, results, lease files and
// links afterwards. Needs root. Prefix: vm-.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, libcniSequence, makeHarness, ours, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns } from '../helpers/netns.js';

const P = 'vm-';
type Impl = 'ref' | 'ours';
const VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const REF_VERSIONS = new Set(VERSIONS.slice(0, 6));

let h: Harness;
const host = (impl: Impl) => `${P}${impl}-host`;
const cont = (impl: Impl) => `${P}${impl}-c`;
const dataDir = (impl: Impl) => join(h.dir, `ipam-${impl}`);

function conf(impl: Impl, version: string): Record<string, unknown> {
  return {
    cniVersion: version, name: 'vmnet', type: 'bridge', bridge: 'vmbr0', isGateway: true,
    ipam: { type: 'host-local', subnet: '10.77.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir: dataDir(impl) },
  };
}

function call(impl: Impl, command: CniCall['command'], config: object, cid = 'vm-container'): CniReply {
  const c: CniCall = { command, hostNs: host(impl), netns: cont(impl), containerId: cid, ifname: 'eth0', config };
  return impl === 'ref' ? reference('bridge', { path: REFERENCE_BIN, ...c }) : ours(h, 'bridge', c);
}

/** What may differ between runs: MACs and the random veth name. */
function normalize(r: unknown): unknown {
  return JSON.parse(JSON.stringify(r)
    .replace(/"mac":"[0-9a-f:]{17}"/g, '"mac":"MAC"')
    .replace(/veth[0-9a-f]{8}/g, 'vethXXXXXXXX')
    .replace(/\/run\/netns\/vm-(ref|ours)-c/g, '/run/netns/C'));
}

const leases = (impl: Impl) => {
  try {
    return readdirSync(join(dataDir(impl), 'vmnet')).filter((f) => /^\d/.test(f)).sort();
  } catch {
    return [];
  }
};
const veths = (impl: Impl) => ipJson<{ ifname: string }[]>(host(impl), ['link', 'show', 'type', 'veth']).map((l) => l.ifname);

interface Trace { codes: number[]; add: unknown; leasesAfterAdd: string[]; leasesAfter: string[]; vethsAfter: string[]; errors: string[] }

/** The libcni sequence for one version; returns what a parity check compares. */
function sequence(impl: Impl, version: string): Trace {
  makeNetns(host(impl));
  makeNetns(cont(impl));
  rmSync(dataDir(impl), { recursive: true, force: true });
  let leasesAfterAdd: string[] = [];
  const s = libcniSequence((command, config) => call(impl, command, config), conf(impl, version) as { cniVersion: string }, () => { leasesAfterAdd = leases(impl); });
  assert.ok(s.version.json?.supportedVersions?.includes(version), `${impl} VERSION lists ${version}`);
  return { codes: s.codes, add: normalize(s.add.json), leasesAfterAdd, leasesAfter: leases(impl), vethsAfter: veths(impl), errors: s.errors };
}

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

for (const version of VERSIONS) {
  test(`${version}: VERSION, ADD, CHECK, DEL with the cached result, DEL again`, () => {
    const mine = sequence('ours', version);
    assert.equal(mine.errors, [], `ours at ${version}`);
    assert.is(mine.leasesAfterAdd.length, 1, 'ADD leased one address');
    assert.equal(mine.leasesAfter, [], 'DEL released the lease');
    assert.equal(mine.vethsAfter, [], 'DEL removed the veth');
    assert.is((mine.add as { cniVersion: string }).cniVersion, version, 'result in the config\'s version');
    if (!REF_VERSIONS.has(version) || !hasReference()) return;
    const ref = sequence('ref', version);
    assert.equal(ref.errors, [], `reference at ${version}`);
    assert.equal(mine.codes, ref.codes, 'exit codes');
    assert.equal(mine.add, ref.add, 'ADD result');
    assert.equal(mine.leasesAfterAdd, ref.leasesAfterAdd, 'lease files after ADD');
    assert.equal(mine.leasesAfter, ref.leasesAfter, 'lease files after DEL');
  });
}

test('DEL cleans up when the cached prevResult is malformed or of another version', () => {
  const bad: unknown[] = [
    { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] },
    { cniVersion: '0.2.0', ip4: { ip: '10.77.0.2/24' } }, // another result family than the config's 0.4.0
    'not an object',
  ];
  for (const prevResult of bad) {
    makeNetns(host('ours'));
    makeNetns(cont('ours'));
    rmSync(dataDir('ours'), { recursive: true, force: true });
    const c = conf('ours', '0.4.0');
    const add = call('ours', 'ADD', c);
    assert.is(add.code, 0, add.stdout);
    const del = call('ours', 'DEL', { ...c, prevResult });
    assert.is(del.code, 0, `DEL with prevResult ${JSON.stringify(prevResult)}: ${del.stdout}`);
    assert.equal(leases('ours'), [], 'lease released');
    assert.equal(veths('ours'), [], 'veth removed');
  }
});

test.run();
