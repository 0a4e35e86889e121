// Result conversion between every pair of spec versions, using results
// modelled on the spec's own examples (bridge + host-local in the appendix,
// the 0.2.0 IPAM result template, the 0.4.0 tuning prevResult).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniError, convertResult, parseResult, SUPPORTED_VERSIONS } from '../../host/cni/index.js';

type Obj = Record<string, unknown>;
const obj = (r: object) => r as Obj;
const LEGACY = ['0.1.0', '0.2.0'];
const isLegacy = (v: string) => LEGACY.includes(v);
const is04x = (v: string) => ['0.3.0', '0.3.1', '0.4.0'].includes(v);

function throwsCode(fn: () => unknown, code: number, re?: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    assert.is((e as CniError).code, code, (e as CniError).message);
    if (re) assert.match((e as CniError).message, re);
    return;
  }
  assert.unreachable(`expected CniError ${code}`);
}

// --- Fixture B: a dual-stack IPAM result, which every version can hold.

const dnsFull = {
  nameservers: ['10.1.0.1', '2001:db8:1::1'],
  domain: 'example.com',
  search: ['example.com', 'corp.example.com'],
  options: ['ndots:2'],
};

function ipamResult(v: string): Obj {
  if (isLegacy(v)) {
    return {
      cniVersion: v,
      ip4: { ip: '10.1.0.5/16', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      ip6: { ip: '2001:db8:1::5/64', gateway: '2001:db8:1::1', routes: [{ dst: '::/0', gw: '2001:db8:1::1' }] },
      dns: dnsFull,
    };
  }
  const v4 = { address: '10.1.0.5/16', gateway: '10.1.0.1' };
  const v6 = { address: '2001:db8:1::5/64', gateway: '2001:db8:1::1' };
  return {
    cniVersion: v,
    ips: is04x(v) ? [{ version: '4', ...v4 }, { version: '6', ...v6 }] : [v4, v6],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: '2001:db8:1::1' }],
    dns: dnsFull,
  };
}

for (const from of SUPPORTED_VERSIONS) {
  for (const to of SUPPORTED_VERSIONS) {
    test(`dual-stack IPAM result ${from} -> ${to} is exact`, () => {
      assert.equal(convertResult(ipamResult(from), to), ipamResult(to));
    });
  }
}

// --- Fixture A: the spec appendix's bridge result (interfaces, index 2).

const interfaces = [
  { name: 'cni0', mac: '00:11:22:33:44:55' },
  { name: 'veth3243', mac: '55:44:33:22:11:11' },
  { name: 'eth0', mac: '99:88:77:66:55:44', sandbox: '/var/run/netns/blue' },
];

function bridgeResult(v: string): Obj {
  if (isLegacy(v)) {
    return {
      cniVersion: v,
      ip4: { ip: '10.1.0.5/16', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      dns: { nameservers: ['10.1.0.1'] },
    };
  }
  const ip = { interface: 2, address: '10.1.0.5/16', gateway: '10.1.0.1' };
  return {
    cniVersion: v,
    interfaces,
    ips: [is04x(v) ? { version: '4', ...ip } : ip],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: { nameservers: ['10.1.0.1'] },
  };
}

// What a 0.1/0.2 result becomes in a newer version: no interfaces to point at.
function bridgeFromLegacy(v: string): Obj {
  if (isLegacy(v)) return bridgeResult(v);
  const ip = { address: '10.1.0.5/16', gateway: '10.1.0.1' };
  return {
    cniVersion: v,
    ips: [is04x(v) ? { version: '4', ...ip } : ip],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: { nameservers: ['10.1.0.1'] },
  };
}

for (const from of SUPPORTED_VERSIONS) {
  for (const to of SUPPORTED_VERSIONS) {
    test(`spec bridge result ${from} -> ${to}`, () => {
      const expected = isLegacy(from) ? bridgeFromLegacy(to) : bridgeResult(to);
      assert.equal(convertResult(bridgeResult(from), to), expected);
    });
  }
}

// --- Lossy and version-specific details.

test('0.4.0 spec tuning prevResult (one IP, interfaces, no routes) up to 1.1.0', () => {
  const r040 = {
    cniVersion: '0.4.0',
    ips: [{ version: '4', address: '10.0.0.5/32', interface: 2 }],
    interfaces,
    dns: { nameservers: ['10.1.0.1'] },
  };
  assert.equal(convertResult(r040, '1.1.0'), {
    cniVersion: '1.1.0',
    interfaces,
    ips: [{ interface: 2, address: '10.0.0.5/32' }],
    dns: { nameservers: ['10.1.0.1'] },
  });
});

const rich110 = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'eth0', mac: '00:11:22:33:44:55', mtu: 1500, sandbox: '/run/netns/x', socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { interface: 0, address: '10.1.0.5/16', gateway: '10.1.0.1' },
    { interface: 0, address: '10.2.0.5/16' },
    { interface: 0, address: '2001:db8::5/64' },
    { interface: 0, address: '2001:db9::5/64' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    { dst: '2001:db8:ffff::/48' },
  ],
};

test('1.1.0 -> 1.0.0 keeps everything (libcni copies as is)', () => {
  assert.equal(convertResult(rich110, '1.0.0'), { ...rich110, cniVersion: '1.0.0', dns: {} });
});

test('1.1.0 -> 0.4.0 drops interface mtu/socketPath/pciID, keeps route attributes', () => {
  const out = obj(convertResult(rich110, '0.4.0'));
  assert.equal(out.interfaces, [{ name: 'eth0', mac: '00:11:22:33:44:55', sandbox: '/run/netns/x' }]);
  assert.equal((out.ips as Obj[]).map((ip) => ip.version), ['4', '4', '6', '6']);
  assert.equal(out.routes, rich110.routes);
  assert.equal(out.dns, {}, '0.x results always carry dns');
});

test('1.1.0 -> 0.2.0 keeps the first address of each family and dst/gw of routes', () => {
  assert.equal(convertResult(rich110, '0.2.0'), {
    cniVersion: '0.2.0',
    ip4: { ip: '10.1.0.5/16', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] },
    ip6: { ip: '2001:db8::5/64', routes: [{ dst: '2001:db8:ffff::/48' }] },
    dns: {},
  });
});

test('-> 0.2.0 drops routes of a family that has no address', () => {
  const r = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/16' }], routes: [{ dst: '::/0' }, { dst: '0.0.0.0/0' }] };
  assert.equal(convertResult(r, '0.1.0'), { cniVersion: '0.1.0', ip4: { ip: '10.1.0.5/16', routes: [{ dst: '0.0.0.0/0' }] }, dns: {} });
});

test('-> 0.1.0/0.2.0 without any IP is code 1 (libcni: no valid IP addresses)', () => {
  const r = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] };
  throwsCode(() => convertResult(r, '0.2.0'), 1, /0\.2\.0/);
  throwsCode(() => convertResult({ ...r, cniVersion: '0.4.0' }, '0.1.0'), 1);
  // Already 0.1/0.2: nothing to convert, so no complaint.
  assert.equal(convertResult({ cniVersion: '0.1.0' }, '0.2.0'), { cniVersion: '0.2.0', dns: {} });
});

test('every version prints dns, even empty, as the reference (Go structs are never omitted)', () => {
  const r = { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.5/16' }], dns: {} };
  assert.equal(obj(convertResult(r, '1.0.0')).dns, {});
  assert.equal(obj(convertResult({ cniVersion: '1.1.0' }, '1.1.0')).dns, {});
  assert.equal(obj(convertResult({ cniVersion: '1.0.0' }, '0.3.1')).dns, {});
});

test('output is canonical: IPv6 compressed, unknown keys and empty lists dropped', () => {
  const r = {
    cniVersion: '1.0.0',
    extra: true,
    interfaces: [],
    ips: [{ address: '2001:DB8:0:0::0005/64', gateway: '2001:db8::0:1', bogus: 1 }],
    routes: [],
  };
  assert.equal(convertResult(r, '1.0.0'), { cniVersion: '1.0.0', ips: [{ address: '2001:db8::5/64', gateway: '2001:db8::1' }], dns: {} });
});

test('output keys come in libcni order', () => {
  const out = obj(convertResult(bridgeResult('1.1.0'), '0.4.0'));
  assert.equal(Object.keys(out), ['cniVersion', 'interfaces', 'ips', 'routes', 'dns']);
  assert.equal(Object.keys((out.ips as Obj[])[0]!), ['version', 'interface', 'address', 'gateway']);
  const legacy = obj(convertResult(ipamResult('1.0.0'), '0.2.0'));
  assert.equal(Object.keys(legacy), ['cniVersion', 'ip4', 'ip6', 'dns']);
});

test('a result without cniVersion is judged by its shape', () => {
  assert.equal(convertResult({ ip4: { ip: '10.1.0.5/16' } }, '1.0.0'), { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/16' }], dns: {} });
  assert.equal(convertResult({ ips: [{ version: '6', address: 'fd00::5/64' }] }, '1.1.0'), { cniVersion: '1.1.0', ips: [{ address: 'fd00::5/64' }], dns: {} });
  assert.equal(convertResult({ ips: [{ address: 'fd00::5/64' }] }, '0.3.0'), {
    cniVersion: '0.3.0',
    ips: [{ version: '6', address: 'fd00::5/64' }],
    dns: {},
  });
});

test('unsupported versions are code 1', () => {
  throwsCode(() => convertResult(ipamResult('1.0.0'), '0.5.0'), 1, /supported versions are 0\.1\.0/);
  throwsCode(() => convertResult({ ...ipamResult('1.0.0'), cniVersion: '2.0.0' }, '1.0.0'), 1);
});

test('malformed results are code 6 and name the field', () => {
  throwsCode(() => convertResult({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5' }] }, '1.0.0'), 6, /ips\[0\]\.address/);
  throwsCode(() => convertResult({ cniVersion: '0.4.0', ips: [{ version: '6', address: '10.1.0.5/24' }] }, '1.0.0'), 6, /version/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24', gateway: 'fd00::1' }] }, '1.0.0'), 6, /gateway/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24', interface: 0 }] }, '1.0.0'), 6, /out of range/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] }, '1.0.0'), 6, /routes\[0\]\.dst/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', routes: [{ dst: '0.0.0.0/0', mtu: -1 }] }, '1.0.0'), 6, /mtu/);
  throwsCode(() => convertResult({ cniVersion: '0.2.0', ip4: { ip: 'fd00::5/64' } }, '1.0.0'), 6, /ip4\.ip/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', dns: { nameservers: '10.0.0.1' } }, '1.0.0'), 6, /dns\.nameservers/);
  throwsCode(() => convertResult({ cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }, '1.0.0'), 6, /interfaces\[0\]\.name/);
});

test('parseResult: a prevResult without cniVersion takes the request version', () => {
  const prev = { ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1', interface: 2 }], interfaces, routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.1.0.1'] } };
  assert.equal(parseResult(prev, '1.1.0'), bridgeResult('1.1.0'));
  assert.equal(parseResult(JSON.stringify(prev), '1.0.0'), bridgeResult('1.0.0'));
});

test('parseResult: same result shape keeps its own version, another shape is code 1', () => {
  assert.is(parseResult(bridgeResult('1.0.0'), '1.1.0').cniVersion, '1.0.0');
  assert.is(parseResult(bridgeResult('0.3.1'), '0.4.0').cniVersion, '0.3.1');
  throwsCode(() => parseResult(bridgeResult('0.4.0'), '1.0.0'), 1, /0\.4\.0/);
  throwsCode(() => parseResult(bridgeResult('1.0.0'), '0.2.0'), 1);
});

test('parseResult: an empty prevResult is fine in every version', () => {
  for (const v of SUPPORTED_VERSIONS) assert.is(parseResult({}, v).cniVersion, v);
});

test('parseResult: bad JSON is code 6', () => {
  throwsCode(() => parseResult('{"ips": [', '1.0.0'), 6, /not valid JSON/);
  throwsCode(() => parseResult('[]', '1.0.0'), 6, /JSON object/);
});

test.run();
