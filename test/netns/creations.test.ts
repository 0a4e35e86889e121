// links.begin-create-veth / links.finish-create-veth, on the paths bridge's
// ADD takes and on those a well-behaved plugin never takes: finish without
// begin, acting on a pair under way, a clash found only at finish, a fifth
// creation under way, creations a plugin call never finishes. Needs root.
// Prefix: mkv-.
//
// The first tests call the real host functions through the real gate
// (bindInterface: grant, object rights, audit, ledger) on real links, with
// both of the call's namespaces ones this file makes. The last ones run the
// hostile 'halfway' fixture through the exec'd shim, as a runtime would.
import { readdirSync, rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { TestNamespaces, realLinksCall } from '../helpers/gate.js';
import { type Harness, ours, readAudit } from '../helpers/cni.js';
import { type FixtureSetup, setUpFixtures, tearDownFixtures } from '../helpers/fixtures.js';
import { ipJson, nsExec } from '../helpers/netns.js';

const P = 'mkv-';
const HOST = `${P}host`;
const CTR = `${P}ctr`;
const TIMEOUT_MS = 1500;

let nss: TestNamespaces;
let h: Harness;
let fx: FixtureSetup | undefined;
const tempDirs: string[] = [];

const hostLinks = () => ipJson<any[]>(HOST, ['link', 'show']).map((l) => l.ifname as string);
const ctrLinks = () => ipJson<any[]>(CTR, ['link', 'show']).map((l) => l.ifname as string);
const fds = () => readdirSync('/proc/self/fd').length;
const spec = (containerName: string, hostName = '') => ({ containerName, hostName, mtu: 0, containerMac: '' });

/** One plugin call as invoke makes it, with this file's namespaces: the real links functions behind the real gate. */
function pluginCall() {
  const c = realLinksCall(nss, { type: 'mkvplug', grants: { links: { host: true, container: true } } });
  tempDirs.push(c.dir);
  const live = () => c.ctx.ledger.liveEntries.filter((l) => l.entry.kind === 'link');
  const records = (call: string) => c.records(call).map((r) => [r.verdict, r.outcome]);
  return { ...c, live, records };
}

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['halfway'], { timeoutMs: TIMEOUT_MS });
    h = fx.h;
    nss = new TestNamespaces(HOST, CTR);
  } catch (e) {
    console.error('creations setup failed:', e);
    throw e;
  }
});

test.after(() => {
  nss?.close();
  tearDownFixtures(P, fx);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

test('begin then finish: recorded before it is sent, held as an intent until finished, then confirmed with both ifindexes and owned', () => {
  const c = pluginCall();
  const before = fds();
  const b = c.L.beginCreateVeth(spec('eth0'));
  assert.is(b.tag, 'ok');
  const host = b.val as string;
  assert.match(host, /^veth[0-9a-f]{8}$/, 'the host picked the host end\'s name');
  assert.equal(c.live().map((l) => [l.state, l.entry.name, l.entry.peer]), [['intent', host, 'eth0']], 'an intent, naming both ends');
  // under way: the host end is not the plugin's yet, and neither end may be removed
  const up = c.L.setUp('host', host, true);
  assert.is(up.val.code, 'EDENIED', 'no right on the host end before finish');
  const rm = c.L.remove('container', 'eth0');
  assert.is(rm.val.code, 'EBUSY');
  assert.match(rm.val.message, /creation of eth0 is under way; finish it with finish-create-veth/);
  assert.is(c.L.beginRemove('container', 'eth0').val.code, 'EBUSY');
  const f = c.L.finishCreateVeth(host);
  assert.is(f.tag, 'ok', JSON.stringify(f.val));
  assert.is(f.val.host.name, host);
  assert.is(f.val.container.name, 'eth0');
  assert.ok(hostLinks().includes(host) && ctrLinks().includes('eth0'), 'the pair exists');
  const [l] = c.live();
  assert.is(l.state, 'done');
  assert.is(l.entry.index, f.val.host.index, 'the host end\'s ifindex recorded');
  assert.is(l.entry.peerIndex, f.val.container.index, 'and the container end\'s');
  assert.is(c.L.setUp('host', host, true).tag, 'ok', 'owned once finished');
  assert.equal(c.records('links.begin-create-veth'), [['allow', 'pending'], ['allow', 'ok']]);
  assert.equal(c.records('links.finish-create-veth'), [['allow', 'pending'], ['allow', 'ok']]);
  // finished: finishing again is EINVAL
  assert.is(c.L.finishCreateVeth(host).val.code, 'EINVAL');
  assert.is(c.L.remove('host', host).tag, 'ok');
  assert.equal(c.live(), [], 'removing it forgets it');
  c.end();
  assert.is(fds(), before, 'no socket left');
});

test('finish-create-veth with nothing begun (or begun in another call): EINVAL, audited, nothing made', () => {
  const c = pluginCall();
  const r = c.L.finishCreateVeth('vethdeadbeef');
  assert.is(r.val.code, 'EINVAL');
  assert.match(r.val.message, /no creation of veth vethdeadbeef was begun in this call/);
  assert.equal(c.records('links.finish-create-veth'), [['deny', 'error: EINVAL no creation of veth vethdeadbeef was begun in this call']]);
  const other = pluginCall();
  const b = other.L.beginCreateVeth(spec('eth0', 'mkvother'));
  assert.is(b.tag, 'ok');
  assert.is(c.L.finishCreateVeth('mkvother').val.code, 'EINVAL', 'another call\'s creation cannot be finished here');
  assert.is(other.L.finishCreateVeth('mkvother').tag, 'ok');
  assert.is(c.L.remove('host', 'mkvother').val.code, 'EDENIED', 'nor does it give this call rights on it');
  other.end(); c.end();
  nsExec(HOST, ['ip', 'link', 'del', 'mkvother']);
  assert.equal(ctrLinks(), ['lo']);
});

test('a host end name that is taken: the clash comes at finish (EEXIST), the ledger abandons it, the other link is untouched', () => {
  nsExec(HOST, ['ip', 'link', 'add', 'mkvtaken', 'type', 'bridge']);
  const c = pluginCall();
  assert.is(c.L.beginCreateVeth(spec('eth0', 'mkvtaken')).tag, 'ok');
  const f = c.L.finishCreateVeth('mkvtaken');
  assert.is(f.val.code, 'EEXIST');
  assert.equal(c.live(), [], 'nothing recorded as made');
  assert.ok(hostLinks().includes('mkvtaken'));
  assert.equal(ctrLinks(), ['lo'], 'nothing made in the container');
  assert.is(c.L.remove('host', 'mkvtaken').val.code, 'EDENIED', 'no right on someone else\'s link');
  c.end();
  assert.ok(hostLinks().includes('mkvtaken'));
  nsExec(HOST, ['ip', 'link', 'del', 'mkvtaken']);
});

test('a fifth creation under way: EAGAIN naming the limit; the same host end twice: EBUSY; the four still finish', () => {
  const c = pluginCall();
  // four container ends need four names: this call may create them as it may CNI_IFNAME
  for (let i = 0; i < 5; i++) c.ctx.owned.own('container', `mkc${i}`);
  for (let i = 0; i < 4; i++) assert.is(c.L.beginCreateVeth(spec(`mkc${i}`, `mkvq${i}`)).tag, 'ok', `creation ${i}`);
  const fifth = c.L.beginCreateVeth(spec('mkc4', 'mkvq4'));
  assert.is(fifth.val.code, 'EAGAIN');
  assert.match(fifth.val.message, /4 veth creations are already under way in this call; finish one first/);
  for (let i = 0; i < 4; i++) assert.is(c.L.finishCreateVeth(`mkvq${i}`).tag, 'ok');
  assert.not.ok(hostLinks().includes('mkvq4'), 'the refused one was not made');
  assert.equal(c.live().map((l) => l.state), ['done', 'done', 'done', 'done']);
  c.end();
  for (let i = 0; i < 4; i++) nsExec(HOST, ['ip', 'link', 'del', `mkvq${i}`]);
  const d = pluginCall();
  assert.is(d.L.beginCreateVeth(spec('eth0', 'mkvdup')).tag, 'ok');
  const dup = d.L.beginCreateVeth(spec('eth0', 'mkvdup'));
  assert.is(dup.val.code, 'EBUSY');
  assert.is(d.L.finishCreateVeth('mkvdup').tag, 'ok');
  d.end();
  nsExec(HOST, ['ip', 'link', 'del', 'mkvdup']);
  assert.equal(ctrLinks(), ['lo']);
});

test('never finished: the call\'s end finishes it through the gate, the ledger confirmed with its ifindexes; past the time limit, settled without the gate', () => {
  const c = pluginCall();
  const before = fds();
  const host = c.L.beginCreateVeth(spec('eth0')).val as string;
  c.end();
  assert.equal(c.records('session.links.finish-create-veth'), [['allow', 'pending'], ['allow', 'ok']]);
  const [l] = c.live();
  assert.is(l.state, 'done');
  assert.ok((l.entry.index as number) > 0 && (l.entry.peerIndex as number) > 0, 'ifindexes recorded: the sweep removes it by them');
  assert.ok(hostLinks().includes(host));
  nsExec(HOST, ['ip', 'link', 'del', host]);

  // the time limit had passed: the gate refuses every call, the pair is still settled
  const t = pluginCall();
  const h2 = t.L.beginCreateVeth(spec('eth0')).val as string;
  t.ctx.deadline = Date.now() - 1;
  t.end();
  assert.equal(t.records('session.links.finish-create-veth'), []);
  assert.equal(t.live().map((x) => [x.state, x.entry.name]), [['done', h2]], 'made: confirmed, so the sweep removes it');
  nsExec(HOST, ['ip', 'link', 'del', h2]);
  // and one the kernel refused is abandoned, so no sweep acts on the name
  nsExec(HOST, ['ip', 'link', 'add', 'mkvtaken2', 'type', 'bridge']);
  const u = pluginCall();
  assert.is(u.L.beginCreateVeth(spec('eth0', 'mkvtaken2')).tag, 'ok');
  u.ctx.deadline = Date.now() - 1;
  u.end();
  assert.equal(u.live(), [], 'abandoned');
  assert.ok(hostLinks().includes('mkvtaken2'));
  nsExec(HOST, ['ip', 'link', 'del', 'mkvtaken2']);
  t.ctx.ledger.close(); u.ctx.ledger.close(); // (this file's fake calls open one each)
  assert.is(fds(), before, 'no socket left');
  assert.equal(ctrLinks(), ['lo']);
});

// ---------------------------------------------------------------- through the runtime's door

const addHalfway = (how: string, containerId: string) => ours(h, 'halfway', {
  command: 'ADD', hostNs: HOST, netns: CTR, containerId, ifname: 'eth0',
  config: { cniVersion: '1.0.0', name: 'mkvnet', type: 'halfway', how },
});
const hostVeths = () => hostLinks().filter((n) => n.startsWith('veth'));

test('a component that begins creating its veth and returns: finished by the host within the call, audited, its DEL removes it', () => {
  const r = addHalfway('begun', 'mkv-begun');
  assert.is(r.code, 0, r.stdout + r.stderr);
  const recs = readAudit(h).filter((x) => x.containerId === 'mkv-begun');
  assert.equal(recs.filter((x) => x.call === 'links.begin-create-veth').map((x) => x.outcome), ['pending', 'ok']);
  assert.equal(recs.filter((x) => x.call === 'session.links.finish-create-veth').map((x) => x.outcome), ['pending', 'ok']);
  assert.ok(recs.findIndex((x) => x.call === 'session.links.finish-create-veth') < recs.findIndex((x) => x.call === 'invoke.add'), 'finished within the plugin call');
  assert.is(hostVeths().length, 1, 'the pair is there');
  const [e] = Ledger.peek(h.stateDir, 'mkvnet', 'mkv-begun', 'eth0');
  assert.ok(typeof e?.index === 'number', 'recorded with its ifindex');
  const d = ours(h, 'halfway', { command: 'DEL', hostNs: HOST, netns: CTR, containerId: 'mkv-begun', ifname: 'eth0', config: { cniVersion: '1.0.0', name: 'mkvnet', type: 'halfway' } });
  assert.is(d.code, 0, d.stdout);
  assert.equal(hostVeths(), [], 'DEL\'s sweep removed it');
  assert.equal(ctrLinks(), ['lo']);
  assert.equal(Ledger.peek(h.stateDir, 'mkvnet', 'mkv-begun', 'eth0'), []);
});

for (const how of ['begun-trap', 'begun-spin']) {
  test(`a component that begins creating its veth and ${how === 'begun-trap' ? 'traps' : 'spins into the time limit'}: the failed ADD leaves nothing`, () => {
    const r = addHalfway(how, `mkv-${how}`);
    assert.is(r.json?.code, how === 'begun-trap' ? 100 : 101, r.stdout);
    assert.equal(hostVeths(), [], 'no veth left in the host');
    assert.equal(ctrLinks(), ['lo'], 'no eth0 left in the container');
    assert.equal(Ledger.peek(h.stateDir, 'mkvnet', `mkv-${how}`, 'eth0'), [], 'the ledger holds nothing');
    const recs = readAudit(h).filter((x) => x.containerId === `mkv-${how}`);
    assert.is(recs.filter((x) => x.call === 'links.begin-create-veth')[0]?.outcome, 'pending', 'recorded before it was sent');
    assert.ok(recs.some((x) => x.call === 'sweep.links.remove' && x.outcome === 'ok'), 'and swept, audited');
  });
}

test.run();
