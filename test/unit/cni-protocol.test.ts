// The CNI protocol layer: environment, stdin config, versions, errors.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkCommandVersion,
  cniArg,
  CniError,
  compareVersions,
  negotiate,
  parseCniArgs,
  parseEnv,
  parseNetConf,
  requestedIps,
  SUPPORTED_VERSIONS,
  VALID_ATTACHMENTS,
  versionInfo,
} from '../../host/cni/index.js';

function caught(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    return e as CniError;
  }
  assert.unreachable('expected a CniError');
  throw new Error('unreachable');
}

function throwsCode(fn: () => unknown, code: number, re?: RegExp): CniError {
  const e = caught(fn);
  assert.is(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  return e;
}

const ADD_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'ctr-1_a.b',
  CNI_NETNS: '/run/netns/blue',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin::/usr/lib/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web',
};

// ------------------------------------------------------------------ env

test('env: a full ADD environment parses', () => {
  assert.equal(parseEnv(ADD_ENV), {
    command: 'ADD',
    containerId: 'ctr-1_a.b',
    netns: '/run/netns/blue',
    ifname: 'eth0',
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'web'],
    ],
    path: ['/opt/cni/bin', '/usr/lib/cni'],
  });
});

for (const name of ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']) {
  for (const command of ['ADD', 'CHECK']) {
    test(`env: ${command} without ${name} is code 4 naming it`, () => {
      throwsCode(() => parseEnv({ ...ADD_ENV, CNI_COMMAND: command, [name]: undefined }), 4, new RegExp(`\\[${name}\\]`));
    });
  }
}

test('env: missing variables are listed together', () => {
  throwsCode(() => parseEnv({ CNI_COMMAND: 'ADD' }), 4, /\[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH\] missing/);
});

test('env: missing CNI_COMMAND is code 4', () => {
  throwsCode(() => parseEnv({ ...ADD_ENV, CNI_COMMAND: undefined }), 4, /CNI_COMMAND/);
  throwsCode(() => parseEnv({}), 4, /CNI_COMMAND/);
});

test('env: unknown CNI_COMMAND is code 4', () => {
  throwsCode(() => parseEnv({ ...ADD_ENV, CNI_COMMAND: 'add' }), 4, /unknown CNI_COMMAND: add/);
  throwsCode(() => parseEnv({ ...ADD_ENV, CNI_COMMAND: 'UPDATE' }), 4);
});

test('env: DEL may have an empty CNI_NETNS but needs the rest', () => {
  const inv = parseEnv({ ...ADD_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' });
  assert.is(inv.netns, '');
  assert.is(inv.containerId, 'ctr-1_a.b');
  for (const name of ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']) {
    throwsCode(() => parseEnv({ ...ADD_ENV, CNI_COMMAND: 'DEL', [name]: '' }), 4, new RegExp(name));
  }
});

test('env: VERSION needs nothing and ignores the rest', () => {
  const inv = parseEnv({ CNI_COMMAND: 'VERSION', CNI_CONTAINERID: '!!', CNI_IFNAME: 'a/b', CNI_ARGS: 'broken' });
  assert.equal(inv, { command: 'VERSION', containerId: '', netns: '', ifname: '', args: [], path: [] });
});

test('env: GC and STATUS need only CNI_PATH', () => {
  for (const command of ['GC', 'STATUS']) {
    const inv = parseEnv({ CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'broken' });
    assert.equal(inv.path, ['/opt/cni/bin']);
    assert.is(inv.containerId, '');
    throwsCode(() => parseEnv({ CNI_COMMAND: command }), 4, /\[CNI_PATH\]/);
  }
});

test('env: invalid container ids are code 4', () => {
  for (const id of ['-lead', '_lead', 'a/b', 'a b', 'a;b', 'ünï']) {
    throwsCode(() => parseEnv({ ...ADD_ENV, CNI_CONTAINERID: id }), 4, /CNI_CONTAINERID/);
  }
});

test('env: invalid interface names are code 4', () => {
  for (const name of ['.', '..', 'a/b', 'a:b', 'a b', 'tab\tx', 'abcdefghijklmnop', 'ééééééééé']) {
    throwsCode(() => parseEnv({ ...ADD_ENV, CNI_IFNAME: name }), 4, /CNI_IFNAME/);
  }
  assert.is(parseEnv({ ...ADD_ENV, CNI_IFNAME: 'abcdefghijklmno' }).ifname, 'abcdefghijklmno');
});

test('env: malformed CNI_ARGS are code 4', () => {
  for (const raw of ['K', 'K=V;', 'K=V=W', '=V', 'A=1;;B=2']) {
    throwsCode(() => parseEnv({ ...ADD_ENV, CNI_ARGS: raw }), 4, /CNI_ARGS/);
  }
  assert.equal(parseCniArgs('K='), [['K', '']]);
  assert.equal(parseCniArgs(''), []);
});

test('env: cniArg takes the last value of a repeated key', () => {
  assert.is(cniArg({ args: parseCniArgs('IP=10.0.0.1;IP=10.0.0.2') }, 'IP'), '10.0.0.2');
  assert.is(cniArg({ args: [] }, 'IP'), undefined);
});

// ------------------------------------------------------------- versions

test('versions: VERSION answer lists every supported version', () => {
  assert.equal(versionInfo('1.0.0'), { cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  assert.is(versionInfo().cniVersion, '1.1.0');
  assert.is(versionInfo(42).cniVersion, '1.1.0');
});

test('versions: compare and negotiate', () => {
  assert.ok(compareVersions('0.3.1', '0.4.0') < 0);
  assert.ok(compareVersions('1.0.0', '0.4.0') > 0);
  assert.is(compareVersions('', '0.1.0'), 0);
  assert.is(compareVersions('1', '1.0.0'), 0);
  for (const v of SUPPORTED_VERSIONS) assert.is(negotiate(v), v);
  assert.is(negotiate(undefined), '0.1.0');
  assert.is(negotiate(''), '0.1.0');
  const e = throwsCode(() => negotiate('0.5.0'), 1, /0\.5\.0/);
  assert.match(e.details, /0\.1\.0, 0\.2\.0, 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
});

test('versions: CHECK needs 0.4.0, GC and STATUS need 1.1.0 (code 1, as skel)', () => {
  checkCommandVersion('CHECK', '0.4.0');
  checkCommandVersion('GC', '1.1.0');
  throwsCode(() => checkCommandVersion('CHECK', '0.3.1'), 1, /does not allow CHECK/);
  throwsCode(() => checkCommandVersion('GC', '1.0.0'), 1, /does not allow GC/);
  throwsCode(() => checkCommandVersion('STATUS', '0.4.0'), 1, /does not allow STATUS/);
});

// --------------------------------------------------------------- errors

test('errors: the spec error document', () => {
  const e = new CniError(7, 'Invalid Configuration', 'Network 192.168.0.0/31 too small to allocate from.');
  assert.equal(e.toJSON('1.1.0'), { cniVersion: '1.1.0', code: 7, msg: 'Invalid Configuration', details: 'Network 192.168.0.0/31 too small to allocate from.' });
  assert.equal(new CniError(11, 'busy').toJSON('0.4.0'), { cniVersion: '0.4.0', code: 11, msg: 'busy' });
  // JSON.stringify passes a property key, not a version.
  assert.equal(JSON.parse(JSON.stringify(new CniError(5, 'io'))), { cniVersion: '1.1.0', code: 5, msg: 'io' });
  assert.is(CniError.from(new Error('boom'), 100).code, 100);
  assert.is(CniError.from(e, 100), e);
});

// --------------------------------------------------------------- config

const ADD = { command: 'ADD' as const };
const conf = (o: Record<string, unknown>) => JSON.stringify({ cniVersion: '1.0.0', name: 'dbnet', type: 'bridge', ...o });

test('config: keeps every key and fills a missing cniVersion with 0.1.0', () => {
  const c = parseNetConf(conf({ bridge: 'cni0', keyA: ['x'], ipam: { type: 'host-local', subnet: '10.1.0.0/16' } }), ADD);
  assert.is(c.bridge, 'cni0');
  assert.equal(c.keyA, ['x']);
  assert.equal(c.ipam, { type: 'host-local', subnet: '10.1.0.0/16' });
  assert.is(parseNetConf(JSON.stringify({ name: 'n', type: 'bridge' }), ADD).cniVersion, '0.1.0');
});

test('config: bad JSON is code 6 with a position', () => {
  const e = throwsCode(() => parseNetConf('{\n  "name": "x",\n  oops\n}', ADD), 6, /not valid JSON/);
  assert.match(e.details, /line 3, column 3/);
  throwsCode(() => parseNetConf('', ADD), 6, /empty/);
  throwsCode(() => parseNetConf('[1]', ADD), 6, /JSON object/);
});

test('config: missing or invalid name is code 7', () => {
  throwsCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0', type: 'bridge' }), ADD), 7, /missing network name/);
  throwsCode(() => parseNetConf(conf({ name: '-bad' }), ADD), 7, /network name/);
  throwsCode(() => parseNetConf(conf({ name: 'a/b' }), ADD), 7);
  throwsCode(() => parseNetConf(conf({ name: 3 }), ADD), 7);
});

test('config: missing or unsafe type is code 7', () => {
  throwsCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), ADD), 7, /"type"/);
  throwsCode(() => parseNetConf(conf({ type: '../bin/sh' }), ADD), 7, /type/);
  throwsCode(() => parseNetConf(conf({ type: '..' }), ADD), 7);
  throwsCode(() => parseNetConf(conf({ ipam: { type: 'a/b' } }), ADD), 7, /ipam\.type/);
});

test('config: unknown cniVersion is code 1; a name error comes first, as skel', () => {
  throwsCode(() => parseNetConf(conf({ cniVersion: '0.5.0' }), ADD), 1, /0\.5\.0/);
  throwsCode(() => parseNetConf(conf({ cniVersion: '0.5.0', name: '' }), ADD), 7);
  throwsCode(() => parseNetConf(conf({ cniVersion: 1 }), ADD), 7, /cniVersion/);
});

test('config: the command must exist in the config version', () => {
  throwsCode(() => parseNetConf(conf({ cniVersion: '0.3.1' }), { command: 'CHECK' }), 1, /CHECK/);
  throwsCode(() => parseNetConf(conf({ cniVersion: '1.0.0' }), { command: 'STATUS' }), 1, /STATUS/);
  assert.is(parseNetConf(conf({ cniVersion: '1.1.0' }), { command: 'STATUS' }).name, 'dbnet');
});

test('config: optional sections are type-checked (code 7)', () => {
  throwsCode(() => parseNetConf(conf({ ipam: 'host-local' }), ADD), 7, /ipam/);
  throwsCode(() => parseNetConf(conf({ dns: { nameservers: '10.0.0.1' } }), ADD), 7, /dns\.nameservers/);
  throwsCode(() => parseNetConf(conf({ args: [] }), ADD), 7, /args/);
  throwsCode(() => parseNetConf(conf({ runtimeConfig: 1 }), ADD), 7, /runtimeConfig/);
  throwsCode(() => parseNetConf(conf({ capabilities: { mac: 'yes' } }), ADD), 7, /capabilities/);
  throwsCode(() => parseNetConf(conf({ prevResult: [] }), ADD), 7, /prevResult/);
  // An empty ipam means no IPAM (bridge in L2 mode).
  assert.equal(parseNetConf(conf({ ipam: {} }), ADD).ipam, {});
});

test('config: prevResult is parsed for the config version', () => {
  const prev = { ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }] };
  const c = parseNetConf(conf({ cniVersion: '1.1.0', prevResult: prev }), ADD);
  assert.equal(c.prevResult, { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/16', gateway: '10.1.0.1' }], dns: {} });
  throwsCode(() => parseNetConf(conf({ prevResult: { ips: [{ address: 'nope' }] } }), ADD), 7, /prevResult/);
  throwsCode(() => parseNetConf(conf({ prevResult: { cniVersion: '0.4.0' } }), ADD), 1);
});

test('config: DEL drops a prevResult it cannot use instead of failing (the runtime must be able to clean up)', () => {
  const del = { command: 'DEL' as const };
  for (const prevResult of [{ ips: [{ address: 'nope' }] }, { cniVersion: '0.4.0' }, 'not an object', [1, 2]]) {
    const c = parseNetConf(conf({ cniVersion: '1.0.0', prevResult }), del);
    assert.is(c.prevResult, undefined, JSON.stringify(prevResult));
  }
});

test('config: GC takes the valid-attachments list', () => {
  const gc = { command: 'GC' as const };
  const list = [{ containerID: 'c1', ifname: 'eth0' }];
  assert.equal(parseNetConf(conf({ cniVersion: '1.1.0', [VALID_ATTACHMENTS]: list }), gc)[VALID_ATTACHMENTS], list);
  assert.equal(parseNetConf(conf({ cniVersion: '1.1.0', [VALID_ATTACHMENTS]: null }), gc)[VALID_ATTACHMENTS], []);
  assert.equal(parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/attachments': list }), gc)[VALID_ATTACHMENTS], list);
  throwsCode(() => parseNetConf(conf({ cniVersion: '1.1.0' }), gc), 7, /valid-attachments/);
  throwsCode(() => parseNetConf(conf({ cniVersion: '1.1.0', [VALID_ATTACHMENTS]: [{ containerID: 1 }] }), gc), 7);
});

// ---------------------------------------------------------- requestedIps

test('requestedIps: CNI_ARGS IP, then args.cni.ips, then runtimeConfig.ips, deduplicated', () => {
  const c = parseNetConf(
    conf({
      args: { cni: { ips: ['10.1.0.7/16', '2001:db8:0::7', '10.1.0.5'] } },
      runtimeConfig: { ips: ['10.1.0.9', '10.1.0.7'] },
    }),
    ADD,
  );
  const inv = parseEnv({ ...ADD_ENV, CNI_ARGS: 'IgnoreUnknown=1;IP=10.1.0.5' });
  assert.equal(requestedIps(c, inv), [
    { address: '10.1.0.5', family: 4, source: 'CNI_ARGS' },
    { address: '10.1.0.7', family: 4, source: 'args' },
    { address: '2001:db8::7', family: 6, source: 'args' },
    { address: '10.1.0.9', family: 4, source: 'runtimeConfig' },
  ]);
});

test('requestedIps: none requested, empty IP=, and bad addresses', () => {
  const c = parseNetConf(conf({}), ADD);
  assert.equal(requestedIps(c, { args: [] }), []);
  assert.equal(requestedIps(c, { args: [['IP', '']] }), []);
  throwsCode(() => requestedIps(c, { args: [['IP', '10.1.0.300']] }), 4, /CNI_ARGS/);
  throwsCode(() => requestedIps(parseNetConf(conf({ runtimeConfig: { ips: ['x'] } }), ADD), { args: [] }), 7, /runtimeConfig\.ips/);
  throwsCode(() => requestedIps(parseNetConf(conf({ args: { cni: { ips: '10.0.0.1' } } }), ADD), { args: [] }), 7, /args\.cni\.ips/);
});

test.run();
