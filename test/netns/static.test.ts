// static (ours) against the reference binary: configured addresses, routes and
// DNS; addresses from CNI_ARGS / args / runtimeConfig; CHECK and DEL; bad
// configs. It touches no namespace; CNI_NETNS names a throwaway one (prefix st-).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniReply, type Harness, hasReference, makeHarness, ours, readAudit, reference, removeHarness } from '../helpers/cni.js';
import { cleanupAll, makeNetns } from '../helpers/netns.js';

const P = 'st-';
const NS = `${P}c`;
let h: Harness;
const haveRef = hasReference();

function netconf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { cniVersion: '1.0.0', name: 'stnet', type: 'static', ...extra, ipam: { type: 'static', ...ipam } };
}

function run(impl: 'ours' | 'ref', command: 'ADD' | 'DEL' | 'CHECK', config: object, args?: string): CniReply {
  const call = { command, netns: NS, containerId: 'sc1', ifname: 'eth0', args, config };
  return impl === 'ours' ? ours(h, 'static', call) : reference('static', call);
}

function shape(j: any): any {
  const x = { ...j };
  if (x.dns && Object.keys(x.dns).length === 0) delete x.dns;
  return x;
}

/** Ours, compared with the reference when it is installed. */
function both(command: 'ADD' | 'DEL' | 'CHECK', config: object, args?: string): CniReply {
  const o = run('ours', command, config, args);
  if (haveRef) {
    const r = run('ref', command, config, args);
    assert.is(o.code === 0, r.code === 0, `same outcome: ours ${o.stdout} reference ${r.stdout}`);
    if (o.code === 0) assert.equal(shape(o.json), shape(r.json), 'same result as the reference');
    else assert.is(o.json.msg, r.json.msg, 'same message as the reference');
  }
  return o;
}

const ADDRS = [
  { address: '10.70.0.5/24', gateway: '10.70.0.1' },
  { address: '3ffe:ffff:0:01ff::1/64', gateway: '3ffe:ffff:0::1' },
];
const ROUTES = [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.70.0.254' }, { dst: '3ffe:ffff:0:01ff::1/64' }];
const DNS = { nameservers: ['8.8.8.8'], domain: 'example.com', search: ['example.com'] };

test.before(() => {
  cleanupAll(P);
  makeNetns(NS);
  h = makeHarness('st-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('ADD: configured addresses, routes and DNS', () => {
  const o = both('ADD', netconf({ addresses: ADDRS, routes: ROUTES, dns: DNS }));
  assert.is(o.code, 0, o.stdout);
  assert.equal(o.json.ips, [
    { address: '10.70.0.5/24', gateway: '10.70.0.1' },
    { address: '3ffe:ffff:0:1ff::1/64', gateway: '3ffe:ffff::1' },
  ]);
  assert.equal(o.json.routes, [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.70.0.254' }, { dst: '3ffe:ffff:0:1ff::1/64' }]);
  assert.equal(o.json.dns, DNS);
  // nothing but logging: static needs no host access at all
  const calls = readAudit(h).filter((a) => a.plugin === 'static').map((a) => a.call);
  assert.ok(calls.every((c: string) => c.startsWith('invoke.') || c.startsWith('log.')), calls.join(' '));
});

test('addresses from CNI_ARGS, args.cni.ips and runtimeConfig.ips', () => {
  const base = { addresses: [{ address: '10.71.0.5/24' }] };
  let o = both('ADD', netconf(base), 'IP=10.72.0.5/24, 10.73.0.5/24;GATEWAY=10.72.0.1');
  assert.equal(o.json.ips, [
    { address: '10.71.0.5/24' }, { address: '10.72.0.5/24', gateway: '10.72.0.1' }, { address: '10.73.0.5/24' },
  ]);
  // args.cni.ips replaces all the others, runtimeConfig.ips replaces it in turn
  o = both('ADD', netconf(base, { args: { cni: { ips: ['10.74.0.5/24', 'fd74::5/64'] } } }), 'IP=10.72.0.5/24');
  assert.equal(o.json.ips, [{ address: '10.74.0.5/24' }, { address: 'fd74::5/64' }]);
  o = both('ADD', netconf(base, { args: { cni: { ips: ['10.74.0.5/24'] } }, runtimeConfig: { ips: ['10.75.0.5/16'] } }));
  assert.equal(o.json.ips, [{ address: '10.75.0.5/16' }]);

  const e = both('ADD', netconf(base), 'IP=10.72.0.5');
  assert.is(e.json.code, 4);
  assert.is(e.json.msg, 'the \'ip\' field is expected to be in CIDR notation, got: \'10.72.0.5\'');
  const u = both('ADD', netconf(base), 'FOO=1');
  assert.is(u.json.code, 4);
  assert.is(u.json.msg, 'ARGS: unknown args ["FOO=1"]');
});

test('bad configs: code 7 with the reference\'s message', () => {
  const cases: Array<[object, string]> = [
    [{ cniVersion: '1.0.0', name: 'stnet', type: 'static' }, 'IPAM config missing \'ipam\' key'],
    [netconf({ addresses: [{ address: '10.76.0.5' }] }), 'the \'address\' field is expected to be in CIDR notation, got: \'10.76.0.5\''],
    [netconf({ addresses: [{ address: '10.76.0.5/24', gateway: 'nope' }] }), 'invalid IP address: nope'],
    [netconf({}, { runtimeConfig: { ips: ['10.76.0.5'] } }), 'an entry in the \'ips\' field is NOT in CIDR notation, got: \'10.76.0.5\''],
    [{ ...netconf({ addresses: [{ address: '10.76.0.5/24' }, { address: '10.77.0.5/24' }] }), cniVersion: '0.2.0' },
      'CNI version 0.2.0 does not support more than 1 address per family'],
  ];
  for (const [conf, msg] of cases) {
    const o = both('ADD', conf);
    assert.is(o.code, 1);
    assert.is(o.json.code, 7, msg);
    assert.is(o.json.msg, msg);
  }
});

test('CHECK compares with prevResult; DEL always succeeds', () => {
  const conf = netconf({ addresses: ADDRS });
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.70.0.5/24', gateway: '10.70.0.1' }, { address: '3ffe:ffff:0:1ff::1/64', gateway: '3ffe:ffff::1' }] };
  assert.is(both('CHECK', { ...conf, prevResult: prev }).code, 0);
  const wrongGw = { ...prev, ips: [{ address: '10.70.0.5/24', gateway: '10.70.0.2' }] };
  const e = both('CHECK', { ...conf, prevResult: wrongGw });
  assert.is(e.code, 1);
  assert.is(e.json.msg, 'static: Failed to match addr 10.70.0.5 on interface eth0');
  const none = both('CHECK', conf);
  assert.is(none.json.msg, 'Required prevResult missing');
  assert.is(both('DEL', conf).code, 0);
  assert.is(both('DEL', netconf({ addresses: [{ address: 'garbage' }] })).code, 0, 'DEL does not even read the config');
});

test.run();
