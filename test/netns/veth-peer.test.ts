// A stale ledger name turned against someone else's link. The hostile
// 'halfway' fixture (its "peer-*" modes) names its veth's host end itself,
// removes the container end (the kernel removes the host end with it) and
// returns success; later a bridge of that name appears, made by someone
// else. Neither the component's DEL nor the sweep after it may touch that
// bridge: the removal forgot both ends (ledger and rights), and where the
// host never saw the link go (the container end removed behind its back, as
// when the runtime deletes the namespace first) the ifindex recorded at
// creation no longer matches, so the gate refuses the component and the
// sweep leaves the bridge, auditing why. Its own veth is still removed by
// both. Needs root. Prefix: vpr-.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { bindInterface } from '../../host/gate/gate.js';
import { links as linksIface } from '../../host/capabilities/links.js';
import { Rtnl, closeFd, openNetns } from '../../host/kernel/index.js';
import { lingeringDeletions, reapBackground } from '../../host/kernel/rtnl.js';
import { fakeCall } from '../helpers/gate.js';
import { type Harness, ROOT, ours, readAudit } from '../helpers/cni.js';
import { type FixtureSetup, setUpFixtures, tearDownFixtures } from '../helpers/fixtures.js';
import { ipJson, nsExec } from '../helpers/netns.js';

const P = 'vpr-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;
const NET = 'vprnet';

let h: Harness;
let fx: FixtureSetup | undefined;

const hostLinks = () => ipJson<any[]>(HOST, ['-d', 'link', 'show']);
const hostLink = (name: string) => hostLinks().find((l) => l.ifname === name);
const ctrNames = () => ipJson<any[]>(CTR, ['link', 'show']).map((l) => l.ifname as string);
const links = (cid: string) => Ledger.peek(h.stateDir, NET, cid, 'eth0').filter((e) => e.kind === 'link');
const audit = (cid: string) => readAudit(h).filter((x) => x.containerId === cid);

function call(command: 'ADD' | 'DEL', cid: string, conf: Record<string, unknown>) {
  return ours(h, 'halfway', {
    command, hostNs: HOST, netns: CTR, containerId: cid, ifname: 'eth0',
    config: { cniVersion: '1.0.0', name: NET, type: 'halfway', ...conf },
  });
}

/** Someone else's bridge, made under the name the component chose. */
function victimBridge(name: string): number {
  nsExec(HOST, ['ip', 'link', 'add', name, 'type', 'bridge']);
  return hostLink(name).ifindex as number;
}

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['halfway'], { timeoutMs: 3000 });
    h = fx.h;
  } catch (e) {
    console.error('veth-peer setup failed:', e);
    throw e;
  }
});

test.after(() => tearDownFixtures(P, fx));

for (const how of ['peer-remove', 'peer-begin', 'peer-unfinished']) {
  test(`${how}: removing the container end forgets the host end the kernel removed with it; a bridge that takes its name later is not the component's, nor the sweep's`, () => {
    const cid = `vpr-${how}`;
    const victim = 'vprvic0';
    const add = call('ADD', cid, { how, hostName: victim });
    assert.is(add.code, 0, add.stdout + add.stderr);
    assert.not.ok(hostLink(victim), 'the host end went with the container end');
    assert.not.ok(ctrNames().includes('eth0'));
    const finish = how === 'peer-unfinished' ? 'session.links.finish-remove' : how === 'peer-begin' ? 'links.finish-remove' : 'links.remove';
    assert.equal(audit(cid).filter((x) => x.call === finish).map((x) => x.outcome), ['pending', 'ok'], finish);

    const index = victimBridge(victim);
    // the component's DEL goes for the name: it holds no right on it
    const del = call('DEL', cid, { delHow: 'remove', hostName: victim });
    assert.is(hostLink(victim)?.ifindex, index, 'the bridge is untouched');
    assert.is(del.code, 1, del.stdout);
    assert.match(del.json?.msg ?? '', /remove: EDENIED .*host link 'vprvic0' was not created by this attachment/);
    assert.equal(links(cid), [], 'the ledger names neither end');
    // and its plain DEL leaves nothing for the sweep to act on
    const del2 = call('DEL', cid, {});
    assert.is(del2.code, 0, del2.stdout);
    assert.is(hostLink(victim)?.ifindex, index, 'the bridge survives the sweep');
    assert.not.ok(audit(cid).some((x) => x.call.startsWith('sweep.')), JSON.stringify(audit(cid).filter((x) => x.call.startsWith('sweep.'))));
    nsExec(HOST, ['ip', 'link', 'del', victim]);
  });
}

test('the container end removed behind the host\'s back: the recorded ifindex no longer matches, so the gate refuses the name and the sweep leaves it, audited', () => {
  const cid = 'vpr-behind';
  const victim = 'vprvic1';
  const add = call('ADD', cid, { how: 'peer-keep', hostName: victim });
  assert.is(add.code, 0, add.stdout + add.stderr);
  const made = hostLink(victim).ifindex as number;
  const [entry] = links(cid);
  assert.is(entry.name, victim);
  assert.is(entry.index, made, 'the host end\'s ifindex is recorded with the outcome');
  assert.is(entry.peer, 'eth0');
  assert.is(entry.peerNs, 'container');
  assert.is(typeof entry.peerIndex, 'number');
  // as when the runtime deletes the container's namespace before DEL: the host sees nothing
  nsExec(CTR, ['ip', 'link', 'del', 'eth0']);
  assert.not.ok(hostLink(victim));
  assert.is(links(cid).length, 1, 'the ledger still names it');
  const index = victimBridge(victim);
  assert.is.not(index, made);

  const del = call('DEL', cid, { delHow: 'remove', hostName: victim });
  assert.is(del.code, 1, del.stdout);
  assert.match(del.json?.msg ?? '', new RegExp(`remove: EDENIED .*'${victim}' is not the link this attachment created: that one had ifindex ${made}, the link named so now has ${index}`));
  assert.is(hostLink(victim)?.ifindex, index, 'the bridge is untouched');

  const del2 = call('DEL', cid, {});
  assert.is(del2.code, 0, del2.stdout);
  assert.is(hostLink(victim)?.ifindex, index, 'the sweep left the bridge');
  const sw = audit(cid).filter((x) => x.call.startsWith('sweep.'));
  assert.equal(sw.map((x) => [x.call, x.outcome]), [['sweep.links.left', 'ok']]);
  assert.match(sw[0].args.why, new RegExp(`not the link this attachment made \\(ifindex ${made}\\), someone else's now \\(ifindex ${index}\\)`));
  assert.equal(links(cid), [], 'and forgot the entry');
  nsExec(HOST, ['ip', 'link', 'del', victim]);
});

test('its own veth, still there: the sweep removes it (by its ifindex), and its DEL may remove it (the check passes)', () => {
  for (const [cid, conf] of [['vpr-own-sweep', {}], ['vpr-own-del', { delHow: 'remove' }]] as const) {
    const name = 'vprown0';
    const add = call('ADD', cid, { how: 'peer-keep', hostName: name });
    assert.is(add.code, 0, add.stdout + add.stderr);
    assert.ok(hostLink(name));
    const del = call('DEL', cid, { ...conf, hostName: name });
    assert.is(del.code, 0, del.stdout);
    assert.not.ok(hostLink(name), `${cid}: removed`);
    assert.not.ok(ctrNames().includes('eth0'), `${cid}: its container end too`);
    assert.equal(links(cid), []);
    const sw = audit(cid).filter((x) => x.call.startsWith('sweep.')).map((x) => x.call);
    assert.equal(sw, 'delHow' in conf ? [] : ['sweep.links.remove'], cid);
  }
});

// ---------------------------------------------------------------- within one plugin call

test('a removal of the container end under way: the host end\'s name, free already, gives no right on a link that takes it before finish-remove', () => {
  const fdH = openNetns(`/run/netns/${HOST}`);
  const fdC = openNetns(`/run/netns/${CTR}`);
  const rH = Rtnl.open(fdH), rC = Rtnl.open(fdC);
  const t = fakeCall({ type: 'vprplug', grants: { links: { host: true, container: true } } });
  try {
    (t.ctx as { ns: unknown }).ns = {
      rtnl: (ns: string) => (ns === 'host' ? rH : rC), fd: (ns: string) => (ns === 'host' ? fdH : fdC), hostFd: () => fdH, close() { /* below */ },
    };
    const sigs = JSON.parse(readFileSync(join(ROOT, 'dist/plugins/signatures.json'), 'utf8')).links;
    const L = bindInterface(t.ctx, 'links', linksIface, sigs) as Record<string, (...a: unknown[]) => { tag: string; val: any }>;
    const v = L.createVeth({ containerName: 'eth0', hostName: 'vprvic2', mtu: 0, containerMac: '' });
    assert.is(v.tag, 'ok', JSON.stringify(v.val));
    const [entry] = t.ctx.ledger.entries;
    assert.is(entry.index, v.val.host.index);
    assert.is(entry.peerIndex, v.val.container.index);
    assert.is(L.beginRemove('container', 'eth0').tag, 'ok');
    // the kernel unregisters both ends long before it answers: the name is free
    for (let i = 0; i < 200 && hostLink('vprvic2'); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    assert.not.ok(hostLink('vprvic2'));
    const index = victimBridge('vprvic2');
    const r = L.remove('host', 'vprvic2');
    assert.is(r.val.code, 'EDENIED');
    assert.match(r.val.message, /host link 'vprvic2' goes with the removal of container link 'eth0' under way/);
    assert.is(L.setMtu('host', 'vprvic2', 1400).val.code, 'EDENIED');
    assert.is(L.finishRemove('container', 'eth0').tag, 'ok');
    assert.equal(t.ctx.ledger.entries, [], 'forgotten once finished');
    const after = L.remove('host', 'vprvic2');
    assert.is(after.val.code, 'EDENIED', 'and no right on the name after');
    assert.match(after.val.message, /host link 'vprvic2' was not created by this attachment/);
    assert.is(hostLink('vprvic2')?.ifindex, index, 'the bridge is untouched');
    assert.is(hostLink('vprvic2')?.mtu, 1500);
  } finally {
    for (let i = 0; i < 150 && lingeringDeletions() > 0; i++) { reapBackground(); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); }
    rH.close(); rC.close(); closeFd(fdH); closeFd(fdC);
    rmSync(t.dir, { recursive: true, force: true });
    nsExec(HOST, ['ip', 'link', 'del', 'vprvic2']);
  }
});

test.run();
