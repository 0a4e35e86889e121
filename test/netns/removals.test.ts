// links.begin-remove / links.finish-remove on the paths a well-behaved plugin
// never takes: finish without begin, a fifth removal under way, removals a
// plugin call never finishes. Needs root. Prefix: rmv-.
//
// The first tests call the real host functions through the real gate
// (bindInterface: grant, object rights, audit, ledger) on real links, with
// both of the call's namespaces ones this file makes (the "host" one too:
// nothing touches the machine's own). The last ones run the hostile
// 'halfway' fixture through the exec'd shim, as a runtime would.
import { readdirSync, rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../host/gate/ledger.js';
import { lingeringDeletions, reapBackground } from '../../host/kernel/rtnl.js';
import { TestNamespaces, realLinksCall } from '../helpers/gate.js';
import { type Harness, ours, readAudit } from '../helpers/cni.js';
import { type FixtureSetup, setUpFixtures, tearDownFixtures } from '../helpers/fixtures.js';
import { ipJson, nsExec } from '../helpers/netns.js';

const P = 'rmv-';
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
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
function reapAll(): void {
  for (let i = 0; i < 150 && lingeringDeletions() > 0; i++) { reapBackground(); sleep(20); }
}

/**
 * One plugin call as invoke makes it, but with this file's namespaces: the
 * real links functions behind the real gate, a real ledger, the audit
 * collected. `made` are veths (with their peers) this attachment created in
 * the test's host namespace: in the ledger and owned, as create-veth leaves them.
 */
function pluginCall(made: string[]) {
  const c = realLinksCall(nss, { type: 'rmvplug', grants: { links: { host: true, container: true } } });
  tempDirs.push(c.dir);
  for (const name of made) {
    nsExec(HOST, ['ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    const [id] = c.ctx.ledger.intend([{ kind: 'link', ns: 'host', name, linkKind: 'veth', plugin: 'rmvplug' }]);
    c.ctx.ledger.confirm(id);
    c.ctx.owned.own('host', name);
  }
  const ledgerNames = () => c.ctx.ledger.entries.filter((e) => e.kind === 'link').map((e) => e.name);
  return { ...c, ledgerNames };
}

test.before(() => {
  try {
    fx = setUpFixtures(P, [HOST, CTR], ['halfway'], { timeoutMs: TIMEOUT_MS });
    h = fx.h;
    nss = new TestNamespaces(HOST, CTR);
  } catch (e) {
    console.error('removals setup failed:', e);
    throw e;
  }
});

test.after(() => {
  nss?.close();
  tearDownFixtures(P, fx);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

test('finish-remove with no begin-remove of that link in this call: EINVAL saying so, nothing removed, audited', () => {
  const c = pluginCall(['rmvf0']);
  const r = c.L.finishRemove('host', 'rmvf0');
  assert.is(r.tag, 'err');
  assert.is(r.val.code, 'EINVAL');
  assert.match(r.val.message, /no removal of rmvf0 was begun in this call/);
  assert.ok(hostLinks().includes('rmvf0'), 'the link is still there');
  assert.ok(hostLinks().includes('rmvf0p'), 'and its peer');
  assert.equal(c.ledgerNames(), ['rmvf0'], 'the ledger still names it');
  const recs = c.records('links.finish-remove');
  assert.equal(recs.map((x) => [x.verdict, x.outcome]), [['allow', 'pending'], ['allow', 'error: EINVAL no removal of rmvf0 was begun in this call']]);
  assert.equal(recs[1].args, { ns: 'host', name: 'rmvf0' });

  // begun in another plugin call (another session) is not begun in this one
  const other = pluginCall([]);
  other.ctx.owned.own('host', 'rmvf0');
  const o = pluginCall([]);
  o.ctx.owned.own('host', 'rmvf0');
  assert.is(other.L.beginRemove('host', 'rmvf0').tag, 'ok');
  const r2 = o.L.finishRemove('host', 'rmvf0');
  assert.is(r2.val.code, 'EINVAL', 'another call\'s removal cannot be finished here');
  assert.is(other.L.finishRemove('host', 'rmvf0').tag, 'ok');
  assert.not.ok(hostLinks().includes('rmvf0'));
  // and once finished, finishing again is EINVAL too
  const r3 = other.L.finishRemove('host', 'rmvf0');
  assert.is(r3.val.code, 'EINVAL');
  other.end(); o.end(); c.end();
  // no right on the link: denied before the session is consulted
  const stranger = pluginCall([]);
  const d = stranger.L.finishRemove('host', 'rmvf0');
  assert.is(d.val.code, 'EDENIED');
  reapAll();
});

test('a fifth begin-remove while four are under way: EAGAIN naming the limit, its link untouched, the four still finish', () => {
  const names = ['rmvq0', 'rmvq1', 'rmvq2', 'rmvq3', 'rmvq4'];
  const c = pluginCall(names);
  for (const n of names.slice(0, 4)) assert.is(c.L.beginRemove('host', n).tag, 'ok', n);
  const fifth = c.L.beginRemove('host', 'rmvq4');
  assert.is(fifth.tag, 'err');
  assert.is(fifth.val.code, 'EAGAIN');
  assert.match(fifth.val.message, /4 removals are already under way in this call; finish one first/);
  const again = c.L.beginRemove('host', 'rmvq0');
  assert.is(again.val.code, 'EBUSY', 'a removal under way cannot be begun twice');
  const sync = c.L.remove('host', 'rmvq1');
  assert.is(sync.val.code, 'EBUSY', 'nor removed beside it (its request names the link, and may still be on its way)');
  assert.match(sync.val.message, /already under way; finish it with finish-remove/);
  assert.equal(c.records('links.begin-remove').filter((x) => x.args.name === 'rmvq4').map((x) => x.outcome),
    ['pending', 'error: EAGAIN 4 removals are already under way in this call; finish one first']);
  assert.ok(hostLinks().includes('rmvq4') && hostLinks().includes('rmvq4p'), 'the fifth link is untouched');
  for (const n of names.slice(0, 4)) assert.is(c.L.finishRemove('host', n).tag, 'ok', n);
  const left = hostLinks();
  for (const n of names.slice(0, 4)) assert.not.ok(left.includes(n) || left.includes(`${n}p`), `${n} and its peer gone`);
  assert.ok(left.includes('rmvq4'));
  assert.equal(c.ledgerNames(), ['rmvq4'], 'the four removed are forgotten, the fifth still recorded');
  // the limit is on removals under way: with the four finished, the fifth may begin
  assert.is(c.L.beginRemove('host', 'rmvq4').tag, 'ok');
  assert.is(c.L.finishRemove('host', 'rmvq4').tag, 'ok');
  assert.not.ok(hostLinks().includes('rmvq4'));
  assert.equal(c.ledgerNames(), []);
  c.end();
  reapAll();
});

test('removals a plugin call begins and never finishes: finished when the call ends, audited, forgotten, no thread or socket left', () => {
  reapAll();
  const names = ['rmvu0', 'rmvu1', 'rmvu2', 'rmvu3'];
  const c = pluginCall(names);
  // a link this call has no removal of stays, and stays recorded
  nsExec(HOST, ['ip', 'link', 'add', 'rmvkeep', 'type', 'veth', 'peer', 'name', 'rmvkeepp']);
  const before = fds();
  for (const n of names) assert.is(c.L.beginRemove('host', n).tag, 'ok', n);
  assert.ok(fds() > before, 'each removal holds sockets while under way');
  c.end();
  // gone when the call's end returns, without waiting for the kernel's late answers
  const left = hostLinks();
  for (const n of names) assert.not.ok(left.includes(n) || left.includes(`${n}p`), `${n} gone when the call ended`);
  assert.ok(left.includes('rmvkeep'));
  assert.equal(c.ledgerNames(), [], 'the ledger no longer names links the kernel confirmed gone');
  assert.equal(Ledger.peek(c.dir, 'unitnet', 'unit-container', 'eth0'), [], 'on disk too');
  // each one finished through the gate: the intent, then the outcome, under a name of its own
  const fin = c.records('session.links.finish-remove');
  assert.equal(fin.map((x) => `${x.args.name} ${x.outcome}`), names.flatMap((n) => [`${n} pending`, `${n} ok`]));
  assert.ok(fin.every((x) => x.plugin === 'rmvplug' && x.verdict === 'allow'));
  assert.is(c.records('links.finish-remove').length, 0, 'nothing is recorded as the plugin\'s own call');
  // the threads' answers collected: every socket and eventfd closed again
  reapAll();
  assert.is(lingeringDeletions(), 0);
  assert.is(fds(), before, 'no socket or eventfd left');
  nsExec(HOST, ['ip', 'link', 'del', 'rmvkeep']);
});

test('a call that ends after its time limit: its removals are still finished, and left in the ledger for the sweep', () => {
  reapAll();
  const c = pluginCall(['rmvt0', 'rmvt1']);
  const before = fds();
  for (const n of ['rmvt0', 'rmvt1']) assert.is(c.L.beginRemove('host', n).tag, 'ok', n);
  c.ctx.deadline = Date.now() - 1; // as when the time limit stopped the guest
  c.end();
  const left = hostLinks();
  assert.not.ok(left.includes('rmvt0') || left.includes('rmvt1'), 'removed all the same');
  assert.equal(c.ledgerNames(), ['rmvt0', 'rmvt1'], 'not forgotten: the gate refuses calls after the deadline, the sweep (which finds them gone) forgets them');
  assert.is(c.records('session.links.finish-remove').length, 0);
  reapAll();
  assert.is(fds(), before, 'no socket or eventfd left');
});

// ---------------------------------------------------------------- through the runtime's door

const addHalfway = (how: string, containerId: string) => ours(h, 'halfway', {
  command: 'ADD', hostNs: HOST, netns: CTR, containerId, ifname: 'eth0',
  config: { cniVersion: '1.0.0', name: 'rmvnet', type: 'halfway', how },
});
const hostVeths = () => hostLinks().filter((n) => n.startsWith('veth'));

test('a component that begins removing its veth and returns: the removal is finished by the host, audited, the ledger empty, DEL clean', () => {
  const r = addHalfway('unfinished', 'rmv-unf');
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.equal(hostVeths(), [], 'no veth left in the host');
  assert.equal(ctrLinks(), ['lo'], 'no eth0 left in the container');
  assert.equal(Ledger.peek(h.stateDir, 'rmvnet', 'rmv-unf', 'eth0'), [], 'the ledger names no link that is gone');
  const recs = readAudit(h).filter((x) => x.containerId === 'rmv-unf');
  const begin = recs.filter((x) => x.call === 'links.begin-remove');
  assert.equal(begin.map((x) => x.outcome), ['pending', 'ok']);
  const fin = recs.filter((x) => x.call === 'session.links.finish-remove');
  assert.equal(fin.map((x) => x.outcome), ['pending', 'ok']);
  assert.equal(fin[0].args, begin[0].args, 'the removal the component began');
  assert.ok(recs.findIndex((x) => x.call === 'session.links.finish-remove') < recs.findIndex((x) => x.call === 'invoke.add'), 'finished within the plugin call');
  const d = ours(h, 'halfway', { command: 'DEL', hostNs: HOST, netns: CTR, containerId: 'rmv-unf', ifname: 'eth0', config: { cniVersion: '1.0.0', name: 'rmvnet', type: 'halfway' } });
  assert.is(d.code, 0, d.stdout);
  assert.not.ok(readAudit(h).some((x) => x.containerId === 'rmv-unf' && x.call.startsWith('sweep.')), 'nothing left for the sweep');
});

test('a component that begins removing its veth and spins into the time limit: removed, swept from the ledger, nothing left', () => {
  const r = addHalfway('unfinished-spin', 'rmv-spin');
  assert.is(r.json?.code, 101, r.stdout);
  assert.equal(hostVeths(), []);
  assert.equal(ctrLinks(), ['lo']);
  assert.equal(Ledger.peek(h.stateDir, 'rmvnet', 'rmv-spin', 'eth0'), [], 'the failed ADD\'s sweep forgot it');
  const recs = readAudit(h).filter((x) => x.containerId === 'rmv-spin');
  assert.equal(recs.filter((x) => x.call === 'links.begin-remove').map((x) => x.outcome), ['pending', 'ok']);
  assert.ok(recs.some((x) => x.call === 'invoke.add' && /did not finish|timeoutMs|time limit/.test(x.outcome)), JSON.stringify(recs.map((x) => [x.call, x.outcome])));
});

test.run();
