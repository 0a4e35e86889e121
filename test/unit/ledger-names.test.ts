// The ledger's link names, as the gate and the sweep use them, without a
// kernel: a veth's entry names both its ends, so removing either forgets it
// and takes its rights away (renames keep both names right); a ledger-held
// link from an earlier call is acted on only while the link of its name has
// the ifindex recorded, looked up once, at the point of use; the sweep
// removes a link only while its name still has that ifindex (netns test:
// test/netns/veth-peer.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeCall } from '../helpers/gate.js';
import { links } from '../../host/capabilities/links.js';
import { Ownership, validateObjectDecls } from '../../host/gate/ownership.js';
import { sweep } from '../../host/sweep.js';
import { KernelError } from '../../host/kernel/types.js';

const GRANTS = { links: { host: true, container: true } };
const LINKS = { createVeth: ['spec'], remove: ['ns', 'name'], rename: ['ns', 'name', 'new-name'], setUp: ['ns', 'name', 'up'], finishRemove: ['ns', 'name'], beginRemove: ['ns', 'name'] };
const veth = (hostName: string) => ({ containerName: 'eth0', hostName, mtu: 0, containerMac: '' });
const linkEntries = (t: ReturnType<typeof fakeCall>) => t.ctx.ledger.entries.filter((e) => e.kind === 'link').map((e) => [e.ns, e.name, e.peerNs, e.peer]);

test('removing the container end of a veth forgets the host end the kernel removes with it, and the rights on it', () => {
  const t = fakeCall({ grants: GRANTS });
  const l = t.bind('links', links, LINKS);
  assert.is(l.createVeth(veth('vicbr0')).tag, 'ok');
  assert.equal(linkEntries(t), [['host', 'vicbr0', 'container', 'eth0']]);
  assert.ok(t.ctx.owned.has('host', 'vicbr0', 'delete'));
  assert.is(l.remove('container', 'eth0').tag, 'ok');
  assert.equal(linkEntries(t), [], 'forgotten');
  // in this very call, a link that takes the name is not the attachment's
  const r = l.remove('host', 'vicbr0');
  assert.is(r.val.code, 'EDENIED');
  assert.match(r.val.message, /host link 'vicbr0' was not created by this attachment/);
  assert.is(l.setUp('host', 'vicbr0', true).val.code, 'EDENIED');
  // the host end's removal forgets the entry too, as before
  assert.is(l.createVeth(veth('veth1')).tag, 'ok');
  assert.is(l.remove('host', 'veth1').tag, 'ok');
  assert.equal(linkEntries(t), []);
  assert.not.ok(t.ctx.owned.has('host', 'veth1', 'change'));
});

test('begin-remove/finish-remove of the container end: the same; only its own peer is matched', () => {
  const t = fakeCall({ grants: GRANTS });
  const l = t.bind('links', links, LINKS);
  assert.is(l.createVeth(veth('vicbr1')).tag, 'ok');
  assert.is(l.beginRemove('container', 'eth0').tag, 'ok');
  assert.equal(linkEntries(t).length, 1, 'begun, not yet gone');
  // meanwhile the host end's name may be free, and someone else's: no right on it
  const r = l.remove('host', 'vicbr1');
  assert.is(r.val.code, 'EDENIED');
  assert.match(r.val.message, /host link 'vicbr1' goes with the removal of container link 'eth0' under way/);
  assert.is(l.setUp('host', 'vicbr1', true).val.code, 'EDENIED');
  assert.is(l.finishRemove('container', 'eth0').tag, 'ok');
  assert.equal(linkEntries(t), []);
  assert.not.ok(t.ctx.owned.has('host', 'vicbr1', 'delete'));
  assert.is(l.createVeth(veth('vicbr2')).tag, 'ok');
  assert.equal(t.ctx.ledger.entries.filter(links.remove.removes!(t.ctx, 'container', 'eth1')).length, 0, 'another container link is not its peer');
  assert.equal(t.ctx.ledger.entries.filter(links.remove.removes!(t.ctx, 'host', 'eth0')).length, 0, 'nor a host link of the peer\'s name');
  // a link's own removal under way: nothing but finishing it
  assert.is(l.beginRemove('host', 'vicbr2').tag, 'ok');
  assert.match(l.setUp('host', 'vicbr2', true).val.message, /the removal of host link 'vicbr2' is under way/);
  assert.is(l.finishRemove('host', 'vicbr2').tag, 'ok');
  assert.equal(linkEntries(t), []);
});

test('renames keep both names: the host end renamed, or the container end', () => {
  const objects = validateObjectDecls([{ name: 'tmp0', kind: 'link', ns: 'container', rights: ['create', 'change', 'delete'] }], 'unit');
  const t = fakeCall({ grants: GRANTS, objects });
  const l = t.bind('links', links, LINKS);
  assert.is(l.createVeth(veth('vica')).tag, 'ok');
  assert.is(l.rename('host', 'vica', 'vicb').tag, 'ok');
  assert.equal(linkEntries(t), [['host', 'vicb', 'container', 'eth0']]);
  assert.is(l.rename('container', 'eth0', 'tmp0').tag, 'ok');
  assert.equal(linkEntries(t), [['host', 'vicb', 'container', 'tmp0']]);
  assert.ok(t.ctx.owned.has('host', 'vicb', 'delete'), 'the host end is still the attachment\'s');
  assert.not.ok(t.ctx.owned.has('host', 'vica', 'delete'), 'its old name is not');
  assert.is(l.rename('container', 'tmp0', 'tmp0').tag, 'ok');
  assert.equal(linkEntries(t), [['host', 'vicb', 'container', 'tmp0']], 'a rename to the same name changes nothing');
  assert.is(l.remove('container', 'eth0').tag, 'ok');
  assert.equal(linkEntries(t).length, 1, 'the old container name is no longer its peer');
  assert.is(l.remove('container', 'tmp0').tag, 'ok');
  assert.equal(linkEntries(t), []);
  assert.not.ok(t.ctx.owned.has('host', 'vicb', 'delete'));
});

test('a ledger-held link from an earlier call: its ifindex checked once, when a call acts on it', () => {
  let lookups = 0;
  let index: number | null = 7;
  const o = new Ownership('eth0');
  o.currentIndex = () => { lookups++; return index; };
  o.own('host', 'veth9', 7);
  o.own('host', 'ifb9', 8);
  assert.is(lookups, 0, 'nothing looked up until used');
  assert.is(o.link('host', 'veth9', 'change'), null);
  assert.is(o.link('host', 'veth9', 'delete'), null);
  assert.is(lookups, 1, 'once per invocation');
  // someone else's link under the name now
  index = 12;
  assert.match(o.link('host', 'ifb9', 'delete')!, /host link 'ifb9' is not the link this attachment created: that one had ifindex 8, the link named so now has 12/);
  assert.match(o.link('host', 'ifb9', 'change')!, /ifindex 8/, 'and it stays refused');
  // gone: as the kernel would say, except that the free name may be made anew
  const g = new Ownership('eth0');
  let gone: number | null = null;
  g.currentIndex = () => gone;
  g.own('host', 'dum0', 5);
  try {
    g.link('host', 'dum0', 'delete');
    assert.unreachable('gone is ENODEV');
  } catch (e) {
    assert.instance(e, KernelError);
    assert.is((e as KernelError).code, 'ENODEV');
    assert.match((e as Error).message, /host link 'dum0' this attachment created \(ifindex 5\) is gone/);
  }
  assert.is(g.link('host', 'dum0', 'create'), null);
  // and should someone else's take the name meanwhile, that one is not the attachment's
  gone = 6;
  assert.match(g.link('host', 'dum0', 'create')!, /that one had ifindex 5, the link named so now has 6/);
  // made in this invocation: nothing to check
  const n = new Ownership('eth0');
  n.currentIndex = () => { throw new Error('looked up'); };
  n.own('host', 'veth3');
  assert.is(n.link('host', 'veth3', 'delete'), null);
  // declared rights never need the lookup
  const d = Ownership.fromConfig('eth0', validateObjectDecls([{ key: 'bridge', kind: 'link', ns: 'host', rights: ['change'] }], 'unit'), { bridge: 'br0' });
  d.currentIndex = () => { throw new Error('looked up'); };
  d.own('host', 'br0', 3);
  assert.is(d.link('host', 'br0', 'change'), null);
});

test('the sweep removes a link (by its ifindex) only while its name has the ifindex recorded; else it forgets it and says whose it is', () => {
  const t = fakeCall({ grants: GRANTS });
  const deleted: [string, number][] = [];
  let now = 0;
  const kernel = {
    rtnl: () => ({
      getLink: (name: string) => {
        if (!now) throw new KernelError('ENODEV', `get link ${name}: no such device`, 19);
        return { name, index: now };
      },
      deleteLink: (name: string, index = 0) => { deleted.push([name, index]); },
      listLinks: () => [],
    }) as never,
  };
  const [a, b, c, d] = t.ctx.ledger.intend([
    { kind: 'link', ns: 'host', name: 'v-mine', linkKind: 'veth', plugin: 'rogue' },
    { kind: 'link', ns: 'host', name: 'v-theirs', linkKind: 'veth', plugin: 'rogue' },
    { kind: 'link', ns: 'host', name: 'v-gone', linkKind: 'veth', plugin: 'rogue' },
    { kind: 'link', ns: 'host', name: 'v-old', linkKind: 'veth', plugin: 'rogue' },
  ]);
  t.ctx.ledger.confirm(a, { index: 4 });
  t.ctx.ledger.confirm(b, { index: 5 });
  t.ctx.ledger.confirm(c, { index: 6 });
  t.ctx.ledger.confirm(d); // recorded before ifindexes were: by name, as before
  const who = { containerId: 'unit-container', network: 'unitnet', command: 'DEL' };
  const audit = { write: (r: any) => t.audit.push(r) } as any;
  const one = (id: number, index: number) => { now = index; sweep(t.ctx.ledger, (_e, i) => i === id, 'del', kernel, audit, who); };
  one(a, 4);
  one(b, 9);
  one(c, 0);
  one(d, 3);
  assert.equal(deleted, [['v-mine', 4], ['v-old', 0]]);
  assert.equal(t.audit.map((r) => r.call), ['sweep.links.remove', 'sweep.links.left', 'sweep.links.remove']);
  assert.equal(t.audit[1].args.why, 'not the link this attachment made (ifindex 5), someone else\'s now (ifindex 9)');
  assert.equal(t.ctx.ledger.entries, [], 'every entry forgotten');
});

test.run();
