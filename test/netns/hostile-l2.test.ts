// A hostile third-party module against the host functions vpc-bridge, flannel
// and dhcp brought (neighbours, uplinks, groups, sysctl.set-restored, files,
// dhcp, dhcp-wire): with every grant and vpc-bridge's object declaration for
// "eniName", it gets only what the declaration gives (forwarding on that ENI,
// put back by DEL); everything else is denied or unavailable, audited, and
// the host namespace is as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { type Harness, execPlugin, makeHarness, readAudit, removeHarness } from '../helpers/cni.js';
import { buildFixtures, componentPath, installThirdParty } from '../helpers/fixtures.js';
import { cleanupAll, makeNetns, nsExec } from '../helpers/netns.js';

const P = 'hl2-';
const HOST = `${P}host`, CTR = `${P}c1`;
const ENI = 'hl2eni', OTHER = 'hl2other';
let h: Harness;

const sysctl = (key: string) => nsExec(HOST, ['cat', `/proc/sys/${key}`]).stdout.trim();
const hostState = () => ({
  links: nsExec(HOST, ['ip', '-br', 'link']).stdout,
  addrs: nsExec(HOST, ['ip', '-br', 'addr']).stdout,
  neigh: nsExec(HOST, ['ip', 'neigh', 'show', 'nud', 'permanent']).stdout,
  nft: nsExec(HOST, ['nft', 'list', 'ruleset']).stdout,
  sysctls: [`net/ipv4/conf/${OTHER}/forwarding`, 'net/ipv4/ip_forward', 'net/ipv4/conf/all/forwarding', `net/ipv4/conf/${ENI}/forwarding`].map(sysctl),
});

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
  makeNetns(HOST);
  makeNetns(CTR);
  nsExec(HOST, ['ip', 'link', 'add', ENI, 'type', 'veth', 'peer', 'name', OTHER]);
  for (const l of [ENI, OTHER]) nsExec(HOST, ['ip', 'link', 'set', l, 'up']);
  const built = join(h.dir, 'fixtures');
  buildFixtures(built, ['l2-overreach']);
  installThirdParty(h, [{
    type: 'l2-overreach', component: componentPath(built, 'l2-overreach'),
    objects: [{ key: 'eniName', kind: 'link', ns: 'host', rights: ['sysctl', 'lend'] }],
  }]);
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('a module with every grant of neighbours, uplinks, groups, set-restored, files, dhcp and dhcp-wire gets only its declared ENI\'s sysctl', () => {
  const before = hostState();
  assert.is(before.sysctls[3], '0');
  const config = {
    cniVersion: '1.0.0', name: 'hl2net', type: 'l2-overreach', eniName: ENI, other: OTHER,
    fakeSocket: join(h.dir, 'no-daemon.sock'),
  };
  const call = { hostNs: HOST, netns: CTR, containerId: 'hl2c1', ifname: 'eth0', config };
  const t0 = Date.now();
  const o = execPlugin(h.bin, 'l2-overreach', { command: 'ADD', ...call });
  assert.ok(Date.now() - t0 < 8000, 'dhcp-wire.recv did not wait');
  assert.is(o.json?.code, 150, o.stdout + o.stderr);
  const res = JSON.parse(o.json.details).results as { call: string; code: string; message: string }[];
  const by = Object.fromEntries(res.map((x) => [x.call, x]));
  for (const c of ['neighbours.add host other', 'neighbours.add host eni', 'neighbours.add container lo', 'uplinks.lend other',
    'uplinks.lend eni to other', 'uplinks.nat-add other', 'uplinks.endpoint-add eni', 'sysctl.set-restored other',
    'sysctl.set-restored ip_forward', 'sysctl.set-restored all', 'files.read-env /etc/shadow', 'files.save /tmp', 'files.save walk',
    'groups.join walk']) {
    assert.is(by[c].code, 'EDENIED', `${c}: ${JSON.stringify(by[c])}`);
  }
  // no daemon: nothing to talk to; packet I/O exists only inside the DHCP daemon
  assert.is.not(by['dhcp.acquire fake socket'].code, 'ok');
  assert.ok(['ENODEV', 'EDENIED'].includes(by['dhcp-wire.send'].code), JSON.stringify(by['dhcp-wire.send']));
  assert.ok(['ENODEV', 'EDENIED'].includes(by['dhcp-wire.recv'].code), JSON.stringify(by['dhcp-wire.recv']));
  // the one thing its declaration gives
  assert.is(by['sysctl.set-restored eni'].code, 'ok', JSON.stringify(by['sysctl.set-restored eni']));
  assert.match(by['files.read-env /etc/shadow'].message, /not named by the runtime's config/);
  assert.match(by['dhcp-wire.send'].message + by['dhcp-wire.recv'].message, /only offered to the DHCP daemon/);
  const audit = readAudit(h).filter((x) => x.plugin === 'l2-overreach');
  assert.ok(audit.filter((x) => x.verdict === 'deny').length >= 14, 'denials audited');
  assert.ok(audit.some((x) => x.call === 'sysctl.set-restored' && x.verdict !== 'deny'), 'the allowed change audited');
  // the ADD failed (its report is an error): its sweep put the ENI's value back
  assert.equal(hostState(), before, 'the host namespace is as it was');
  const d = execPlugin(h.bin, 'l2-overreach', { command: 'DEL', ...call });
  assert.is(d.code, 0, d.stdout + d.stderr);
  assert.equal(hostState(), before);
});

test.run();
