// Hostile third-party components against the gate's object rights, store
// scope, delegation and write-ahead recording (issue classes 3-6). Built and
// run through the real third-party flow, inside a throwaway host netns.
// Needs root. Prefix: hg-.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniReply, type Harness, execPlugin, ours, readAudit } from '../helpers/cni.js';
import { ipJson, nsExec } from '../helpers/netns.js';
import { type FixtureSetup, cli, setUpFixtures, tearDownFixtures } from '../helpers/fixtures.js';
import { Ledger } from '../../host/gate/ledger.js';

const P = 'hg-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;
const TIMEOUT_MS = 700;

let h: Harness;
let work: string;
let fx: FixtureSetup | undefined;

function report(r: CniReply): Record<string, { code: string; message: string }> {
  assert.is(r.json?.code, 150, r.stdout + r.stderr);
  return Object.fromEntries((JSON.parse(r.json.details) as { call: string; code: string; message: string }[]).map((x) => [x.call, x]));
}

const hostVeths = () => ipJson<{ ifname: string }[]>(HOST, ['link', 'show', 'type', 'veth']).map((l) => l.ifname);
const ctrLinks = () => ipJson<{ ifname: string }[]>(CTR, ['link', 'show']).map((l) => l.ifname);

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['halfway', 'launder'], { timeoutMs: TIMEOUT_MS });
    ({ h, work } = fx);
  } catch (e) {
    console.error('hostile-gate setup failed:', e);
    throw e;
  }
});

test.after(() => tearDownFixtures(P, fx));

for (const how of ['spin', 'trap', 'call', 'lease']) {
  test(`a component stopped half-way (${how}) leaves nothing: the host sweeps what its ledger recorded`, () => {
    const r = ours(h, 'halfway', {
      command: 'ADD', hostNs: HOST, netns: CTR, containerId: `hg-half-${how}`, ifname: 'eth0',
      config: { cniVersion: '1.0.0', name: 'hgnet', type: 'halfway', how, ipam: { type: 'host-local', subnet: '10.124.0.0/24' } },
    });
    assert.is.not(r.code, 0);
    // "call" ends at the time limit, or sooner: once its audit quota is spent every call is refused
    // at once and the guest runs out of memory retrying (a trap)
    if (how === 'call') assert.ok([100, 101].includes(r.json?.code), r.stdout);
    else assert.is(r.json?.code, how === 'trap' ? 100 : 101, r.stdout);
    if (how === 'spin' || how === 'lease') assert.match(r.json.details ?? '', /timeoutMs/, 'the error names the setting');
    assert.equal(hostVeths(), [], 'no veth left in the host');
    assert.equal(ctrLinks(), ['lo'], 'no eth0 left in the container');
    assert.equal(Ledger.peek(h.stateDir, 'hgnet', `hg-half-${how}`, 'eth0'), [], 'the ledger holds nothing');
    const leaseDir = join(h.storeDir, 'hgnet');
    assert.equal(existsSync(leaseDir) ? readdirSync(leaseDir).filter((f) => /^\d/.test(f)) : [], [], 'no lease kept');
    if (how === 'lease') assert.ok(readAudit(h).some((x) => x.containerId === `hg-half-${how}` && x.call === 'sweep.delegate.run' && x.outcome === 'ok'), 'the lease was given back by the IPAM plugin\'s DEL');
    const recs = readAudit(h).filter((x) => x.containerId === `hg-half-${how}`);
    const veth = recs.filter((x) => x.call === 'links.create-veth');
    assert.is(veth[0].outcome, 'pending', 'the veth was recorded before it was made');
    assert.ok(recs.some((x) => x.call === 'sweep.links.remove' && x.outcome === 'ok'), 'and swept, audited');
  });
}

test('a delegate stopped by the time limit while it holds its store lock: named, swept, and the lock is free again', () => {
  // halfway as bridge's IPAM: it opens (and locks) the network's store, then spins
  const base = { cniVersion: '1.0.0', name: 'hgnet', type: 'bridge', bridge: 'hgbr0' };
  const call = (command: 'ADD' | 'DEL', containerId: string, config: object) =>
    ours(h, 'bridge', { command, hostNs: HOST, netns: CTR, containerId, ifname: 'eth0', config });
  // twice: were the first call's lock still held (a resident daemon's worker
  // lives on), the second would fail to open the store instead of spinning
  for (const cid of ['hg-stuck-1', 'hg-stuck-2']) {
    const r = call('ADD', cid, { ...base, how: 'store', ipam: { type: 'halfway' } });
    assert.is(r.json?.code, 101, r.stdout);
    assert.match(r.json.msg, /plugin 'halfway' \(run by 'bridge'\) did not finish/);
    assert.match(r.json.details ?? '', /timeoutMs/);
    assert.equal(hostVeths(), [], 'no veth left in the host');
    assert.equal(ctrLinks(), ['lo'], 'no eth0 left in the container');
    assert.equal(Ledger.peek(h.stateDir, 'hgnet', cid, 'eth0'), [], 'the ledger holds nothing');
  }
  const ok = call('ADD', 'hg-after-stuck', { ...base, ipam: { type: 'host-local', subnet: '10.124.1.0/24' } });
  assert.is(ok.code, 0, ok.stdout);
  assert.is(call('DEL', 'hg-after-stuck', { ...base, ipam: { type: 'host-local', subnet: '10.124.1.0/24' }, prevResult: ok.json }).code, 0);
  assert.equal(hostVeths(), []);
});

test('store, delegation and config names cannot launder another network\'s state or cni-wasm\'s own', () => {
  // another network's leases, which the hostile plugin must neither read nor release
  const victimDir = join(h.storeDir, 'victimnet');
  mkdirSync(victimDir, { recursive: true });
  writeFileSync(join(victimDir, 'lock'), '');
  writeFileSync(join(victimDir, '10.123.0.7'), 'someone-else\r\neth0');
  nsExec(HOST, ['ip', 'link', 'add', 'hgvictim0', 'type', 'veth', 'peer', 'name', 'hgvictim1']);
  nsExec(HOST, ['ip', 'link', 'set', 'hgvictim0', 'up']);
  const secret = join(work, 'secret');
  writeFileSync(secret, 'nameserver 6.6.6.6\n', { mode: 0o600 });
  const r = ours(h, 'launder', {
    command: 'ADD', hostNs: HOST, netns: CTR, containerId: 'hg-launder', ifname: 'eth0',
    config: {
      cniVersion: '1.1.0', name: 'hgnet', type: 'launder', victim: 'hgvictim0', victimNetwork: 'victimnet',
      stateDir: h.stateDir, secret,
    },
  });
  const by = report(r);
  assert.match(by['store.open other network'].message, /network 'victimnet' is not this invocation's/);
  assert.match(by['store.open state dir'].message, /reaches cni-wasm's own directory/);
  assert.match(by['links.set-up config-named'].message, /host link 'hgvictim0' was not created by this attachment/);
  assert.match(by['firewall.masquerade-add foreign'].message, /10\.123\.0\.99 is not this attachment's/);
  assert.match(by['delegate gc other network'].message, /network 'victimnet' is not this invocation's/);
  assert.match(by['delegate add state dir'].message, /reaches cni-wasm's own directory/);
  assert.match(by['delegate add secret resolvConf'].message, /has no "dns" grant/, 'the delegate has no more than its caller');
  // nothing changed
  assert.equal(readdirSync(victimDir).sort(), ['10.123.0.7', 'lock']);
  assert.ok(ipJson<any[]>(HOST, ['link', 'show', 'dev', 'hgvictim0'])[0].flags.includes('UP'));
  assert.not.ok(existsSync(join(h.stateDir, 'hgnet')), 'no store in the state dir');
  // every refusal is in the audit log, with the plugin that asked
  const denied = readAudit(h).filter((x) => x.verdict === 'deny' && x.containerId === 'hg-launder');
  assert.ok(denied.length >= 7, `${denied.length} denials`);
  assert.ok(denied.some((x) => x.plugin === 'host-local' && x.call === 'dns.read-resolv-conf'), 'the delegate\'s denial is recorded under its own name');
});

test('install writes shims for the third-party types the policy approves, and they run like any plugin', () => {
  const bin = join(work, 'installed');
  const r = cli(['install', '--bin-dir', bin, '--policy', h.policyFile]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /halfway \(sha256 [0-9a-f]{12}, third-party, approved by the policy\)/);
  assert.ok(existsSync(join(bin, 'launder')) && existsSync(join(bin, 'bridge')));
  const v = execPlugin(bin, 'halfway', { command: 'VERSION', config: { cniVersion: '1.0.0' } });
  assert.is(v.code, 0, v.stdout);
  assert.ok(v.json.supportedVersions.includes('1.0.0'));
});

test.run();
