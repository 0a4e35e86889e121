// The host functions vpc-bridge added, as the gate decides them (no root, no
// kernel: `run` is a recorder, test/helpers/gate.ts): name-pattern and MAC
// object rights, the 'sysctl' and 'lend' rights, neighbours, and ledger
// groups (tagging, copying, and the sweep that only the last holder's undo runs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeCall } from '../helpers/gate.js';
import { links } from '../../host/capabilities/links.js';
import { sysctl } from '../../host/capabilities/sysctl.js';
import { neighbours } from '../../host/capabilities/neighbours.js';
import { uplinks } from '../../host/capabilities/uplinks.js';
import { groups } from '../../host/capabilities/groups.js';
import { Ledger } from '../../host/gate/ledger.js';
import { Ownership, validateObjectDecls } from '../../host/gate/ownership.js';
import { declareUndo, sweep } from '../../host/sweep.js';
import { bindInterface } from '../../host/gate/gate.js';

const OBJECTS = validateObjectDecls([
  { key: 'eniName', kind: 'link', ns: 'host', rights: ['sysctl', 'lend'] },
  { key: 'name', suffix: 'br#', kind: 'link', ns: 'host', rights: ['create', 'attach', 'change'] },
  { key: 'name', suffix: 'br#dummy', kind: 'link', ns: 'host', rights: ['create'] },
], 'unit');
const GRANTS = {
  links: { host: true, container: true }, sysctl: { host: true, keys: ['net/ipv4/conf/*/forwarding'] },
  neighbours: { host: true, container: true }, uplinks: true, groups: true,
};
const CONFIG = { name: 'vpc', eniName: 'eth10' };
const LINKS = { createBridge: ['name', 'mtu', 'vlan-filtering'], createDummy: ['name', 'mtu'], setUp: ['ns', 'name', 'up'], remove: ['ns', 'name'] };
const NEIGH = { add: ['ns', 'n'], del: ['ns', 'n'] };
const UPLINKS = { lend: ['uplink', 'bridge', 'cidr', 'gateway', 'mtu'], natAdd: ['uplink'], endpointAdd: ['uplink', 'ip', 'mac'] };

test('name patterns: "<name>br<digits>" and its dummy, nothing else', () => {
  const t = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: CONFIG });
  const l = t.bind('links', links, LINKS);
  assert.is(l.createBridge('vpcbr12', 9001, false).tag, 'ok');
  assert.is(l.createDummy('vpcbr12dummy', 9001).tag, 'ok');
  for (const name of ['vpcbr', 'vpcbrX', 'vpcbr12x', 'xvpcbr1', 'cni0', 'eth10']) assert.is(l.createBridge(name, 9001, false).val.code, 'EDENIED', name);
  assert.is(l.createDummy('vpcbr1dummyx', 0).val.code, 'EDENIED');
  // a regular-expression character in the key's value matches only itself
  const u = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: { name: 'v.c', eniName: 'eth10' } });
  assert.is(u.bind('links', links, LINKS).createBridge('vxcbr1', 0, false).val.code, 'EDENIED');
  assert.is(u.bind('links', links, LINKS).createBridge('v.cbr1', 0, false).tag, 'ok');
});

test('the ENI: sysctls keyed by it and lending, nothing else', () => {
  const t = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: CONFIG });
  const s = t.bind('sysctl', sysctl, { set: ['ns', 'key', 'value'] });
  const l = t.bind('links', links, LINKS);
  assert.is(s.set('host', 'net/ipv4/conf/eth10/forwarding', '1').tag, 'ok');
  assert.is(s.set('host', 'net/ipv4/conf/eth0/forwarding', '1').val.code, 'EDENIED', 'not the host\'s other links');
  assert.match(l.setUp('host', 'eth10', false).val.message, /may not be given right 'change'/);
  assert.is(l.remove('host', 'eth10').val.code, 'EDENIED');
  const u = t.bind('uplinks', uplinks, UPLINKS);
  // lending needs 'lend' on the uplink and a bridge the attachment created
  assert.is(u.lend('eth0', 'vpcbr12', '192.168.1.42/24', '192.168.1.1', 9001).val.code, 'EDENIED');
  assert.match(u.lend('eth10', 'vpcbr12', '192.168.1.42/24', '192.168.1.1', 9001).val.message, /was not created by this attachment/);
  assert.match(u.lend('eth10', 'vpcbr12', '192.168.1.42/24', '10.0.0.1', 9001).val.message, /gateway 10\.0\.0\.1 is not in 192\.168\.1\.42\/24/);
  // an endpoint rewrite only for an address of this attachment
  assert.match(u.endpointAdd('eth10', '192.168.1.99', '02:00:00:00:00:01').val.message, /not this attachment's/);
  assert.equal(t.ran, ['sysctl.set']);
});

test('a MAC declaration gives its rights to the link with that MAC (the shortest name of several)', () => {
  const o = Ownership.fromConfig('eth0', validateObjectDecls([{ key: 'eniMACAddress', kind: 'mac', ns: 'host', rights: ['sysctl'] }], 'unit'), { eniMACAddress: '12-34-56-78-9A-BC' });
  assert.ok(o.wantsMacs('host'));
  o.resolveMacs('host', [{ name: 'eth10.5', mac: '12:34:56:78:9a:bc' }, { name: 'eth10', mac: '12:34:56:78:9a:bc' }, { name: 'eth0', mac: '02:00:00:00:00:01' }]);
  assert.ok(o.has('host', 'eth10', 'sysctl'));
  assert.not.ok(o.has('host', 'eth10.5', 'sysctl'));
  assert.not.ok(o.has('host', 'eth0', 'sysctl'));
  assert.not.ok(o.has('host', 'eth10', 'change'));
});

test('neighbours: the container interface, or a host link the attachment made', () => {
  const t = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: CONFIG });
  const n = t.bind('neighbours', neighbours, NEIGH);
  const nb = (link: string, ip = '192.168.1.1', mac = '02:00:00:00:00:01') => ({ link, ip, mac, permanent: true });
  assert.is(n.add('container', nb('eth0')).tag, 'ok');
  assert.is(n.add('container', nb('eth1')).val.code, 'EDENIED');
  assert.is(n.add('host', nb('eth10')).val.code, 'EDENIED');
  assert.is(n.add('container', nb('eth0', 'x')).val.code, 'EINVAL');
  assert.is(n.add('container', nb('eth0', '192.168.1.1', 'zz')).val.code, 'EINVAL');
  assert.equal(t.ran, ['neighbours.add']);
});

test('groups: entries between join and seal carry the group; a joiner copies them; the last holder\'s sweep undoes', () => {
  const a = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: CONFIG });
  const g = a.bind('groups', groups, { join: ['group'], seal: [] });
  assert.is(g.join('bad/name').val.code, 'EDENIED');
  // the real join and seal (they touch no kernel)
  const real = (t: typeof a) => bindInterface(t.ctx, 'groups', groups, {
    join: { wit: 'join', params: ['group'], hasResult: true }, seal: { wit: 'seal', params: [], hasResult: false },
  }) as any;
  const ga = real(a);
  assert.equal(ga.join('vpcbr12'), { tag: 'ok', val: 0 });
  assert.is(ga.join('vpcbr12').val.code, 'EDENIED', 'joined already');
  const l = a.bind('links', links, LINKS);
  l.createBridge('vpcbr12', 9001, false);
  ga.seal();
  l.createBridge('vpcbr13', 9001, false);
  const entries = a.ctx.ledger.entries;
  assert.is(entries.find((e) => e.name === 'vpcbr12')?.group, 'vpcbr12');
  assert.is(entries.find((e) => e.name === 'vpcbr13')?.group, undefined);

  // a second attachment of the network, in the same state dir
  const b = fakeCall({ type: 'vpc-bridge', grants: GRANTS, objects: OBJECTS, config: CONFIG });
  b.ctx.ledger.close();
  b.ctx.ledger = Ledger.open(a.dir, 'unitnet', 'second', 'eth0', Date.now() + 1000);
  b.ctx.owned = Ownership.fromConfig('eth0', [], {});
  a.ctx.session.get('groups.lock:vpcbr12')?.close(); // a's call ends: its lock goes
  const gb = real(b);
  assert.equal(gb.join('vpcbr12'), { tag: 'ok', val: 1 }, 'one entry copied');
  assert.ok(b.ctx.owned.has('host', 'vpcbr12', 'attach'), 'the copy gives the rights on the shared link');
  gb.seal();
  b.ctx.session.get('groups.lock:vpcbr12')?.close();

  // sweeps: a leaves first (b still holds: nothing undone), then b (undone)
  const undone: string[] = [];
  declareUndo('unit-link', (e) => { undone.push(String(e.name)); return 'x'; });
  const relabel = (led: Ledger) => led.liveEntries.forEach((x) => { if (x.entry.kind === 'link') x.entry.kind = 'unit-link'; });
  relabel(a.ctx.ledger); relabel(b.ctx.ledger);
  const who = { containerId: 'x', network: 'unitnet', command: 'DEL' };
  sweep(a.ctx.ledger, () => true, 'del', { rtnl: () => { throw new Error('no kernel'); } }, a.ctx.audit, who);
  assert.equal(undone, ['vpcbr13'], 'the group entry stays while b holds the group');
  a.ctx.ledger.close();
  sweep(b.ctx.ledger, () => true, 'del', { rtnl: () => { throw new Error('no kernel'); } }, b.ctx.audit, who);
  assert.equal(undone, ['vpcbr13', 'vpcbr12'], 'the last holder undoes it');
  assert.equal(b.ctx.ledger.entries, []);
  b.ctx.ledger.close();
});

test.run();
