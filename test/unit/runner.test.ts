// The runner's libcni parts without root: config lookup (libcni/conf.go),
// the per-plugin config (buildOneConfig), the result cache record
// (cachedInfo) byte for byte, cnitool's container id and print format, and
// `validate`, `--version`, `help`, `install` checks through the real CLI.
// Temp dirs: rn-unit-.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../helpers/cni.js';
import { cli } from '../helpers/fixtures.js';
import { RunnerError, confListFromBytes, loadNetworkConf } from '../../host/runner/conf.js';
import { cacheFile, encodeRecord, readCachedResult, writeRecord, cachedAttachments } from '../../host/runner/cache.js';
import { Runner, buildOneConfig, containerIdFor } from '../../host/runner/runner.js';
import { cnitoolResult } from '../../host/runner/format.js';
import { goMarshal } from '../../host/runner/gojson.js';
import { suggest } from '../../host/runner/keys.js';

let tmp: string;
const dir = (name: string, files: Record<string, string>): string => {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(d, f, '..'), { recursive: true });
    writeFileSync(join(d, f), text);
  }
  return d;
};
const throwsRunner = (f: () => unknown, re: RegExp) => {
  try { f(); } catch (e) {
    assert.instance(e, RunnerError);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected an error matching ${re}`);
};

test.before(() => { tmp = mkdtempSync(join(tmpdir(), 'rn-unit-')); });
test.after(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

// ------------------------------------------------------------------- lookup

test('lookup: *.conflist sorted first, then *.conf/*.json; first matching name wins', () => {
  const d = dir('lookup', {
    'b.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'from-b' }] }),
    'a.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'loopback' }] }),
    'c.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'from-c' }] }),
    '00-single.conf': JSON.stringify({ cniVersion: '0.4.0', name: 'net', type: 'bridge', bridge: 'from-conf' }),
    '10-single.json': JSON.stringify({ cniVersion: '0.3.1', name: 'solo', type: 'loopback' }),
    'ignored.txt': '{',
  });
  assert.is(loadNetworkConf(d, 'net').plugins[0]!.doc.bridge, 'from-b');
  assert.is(loadNetworkConf(d, 'net').file, join(d, 'b.conflist'));
  const solo = loadNetworkConf(d, 'solo');
  assert.is(solo.cniVersion, '0.3.1');
  assert.is(solo.plugins.length, 1);
  assert.is(solo.plugins[0]!.type, 'loopback');
  throwsRunner(() => loadNetworkConf(d, 'nope'), /^no net configuration with name "nope" in /);
  throwsRunner(() => loadNetworkConf(join(tmp, 'does-not-exist'), 'x'), /^no net configurations found in /);
});

test('lookup: a single conf becomes a one-plugin list with the bytes libcni marshals (sorted keys, HTML escapes)', () => {
  const conf = '{\n  "type": "bridge", "name": "n1", "cniVersion": "0.2.0",\n  "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}, "note": "a<b&c"\n}';
  const d = dir('single', { '10.conf': conf });
  const l = loadNetworkConf(d, 'n1');
  assert.is(l.bytes.toString(),
    '{"cniVersion":"0.2.0","name":"n1","plugins":[{"cniVersion":"0.2.0","ipam":{"subnet":"10.1.0.0/24","type":"host-local"},"name":"n1","note":"a\\u003cb\\u0026c","type":"bridge"}]}');
  // no cniVersion: the list's is "" (plugins read that as 0.1.0)
  const d2 = dir('single-nover', { '10.conf': JSON.stringify({ name: 'n2', type: 'loopback' }) });
  const l2 = loadNetworkConf(d2, 'n2');
  assert.is(l2.cniVersion, '');
  assert.match(l2.bytes.toString(), /"cniVersion":""/);
});

test('lookup: a broken file stops the search, as in libcni, even for another network', () => {
  const d = dir('broken', {
    '10-broken.conflist': '{"name": "x",\n  "plugins": [ {"type": "bridge",} ]}',
    '20-good.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'good', plugins: [{ type: 'loopback' }] }),
  });
  throwsRunner(() => loadNetworkConf(d, 'good'), /10-broken\.conflist: .*not valid JSON.*line 2, column \d+/);
});

test('conflist: cniVersions picks the newest this spec knows; bad entries are errors', () => {
  const l = (doc: object) => confListFromBytes(Buffer.from(JSON.stringify({ name: 'n', plugins: [{ type: 'loopback' }], ...doc })));
  assert.is(l({ cniVersions: ['0.4.0', '1.0.0', '9.0.0'] }).cniVersion, '1.0.0');
  assert.is(l({ cniVersion: '1.1.0', cniVersions: ['0.4.0'] }).cniVersion, '1.1.0');
  assert.is(l({ cniVersion: '0.3.1', cniVersions: ['1.0.0'] }).cniVersion, '1.0.0');
  assert.is(l({ cniVersion: '0.3.1' }).cniVersion, '0.3.1');
  throwsRunner(() => l({ cniVersions: '1.0.0' }), /invalid type for cniVersions/);
  throwsRunner(() => l({ cniVersions: ['1.x.0'] }), /invalid cniVersions entry/);
  throwsRunner(() => l({ cniVersions: [1] }), /invalid type for cniVersions index 0/);
});

test('conflist: disableCheck/disableGC take booleans or "true"/"false"; structure errors are named', () => {
  const l = (doc: object) => confListFromBytes(Buffer.from(JSON.stringify({ name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'loopback' }], ...doc })));
  assert.is(l({ disableCheck: true }).disableCheck, true);
  assert.is(l({ disableCheck: 'TRUE' }).disableCheck, true);
  assert.is(l({ disableGC: 'false' }).disableGC, false);
  throwsRunner(() => l({ disableCheck: 'yes' }), /invalid value "yes" for disableCheck/);
  throwsRunner(() => l({ disableGC: 1 }), /invalid type float64 for disableGC/);
  throwsRunner(() => confListFromBytes(Buffer.from('{"plugins":[]}')), /no name/);
  throwsRunner(() => l({ plugins: [] }), /no plugins in list/);
  throwsRunner(() => l({ plugins: [{ name: 'x' }] }), /failed to parse plugin config 0: .*missing 'type'/);
  throwsRunner(() => l({ plugins: {} }), /invalid 'plugins' type/);
});

test('conflist: plugins from <dir>/<name>/*.conf are appended unless loadOnlyInlinedPlugins', () => {
  const d = dir('dirplugins', {
    'net.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'dp', plugins: [{ type: 'bridge' }] }),
    'dp/50-extra.conf': JSON.stringify({ type: 'loopback' }),
    'only.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'only', loadOnlyInlinedPlugins: true, plugins: [{ type: 'bridge' }] }),
    'only/50-extra.conf': JSON.stringify({ type: 'loopback' }),
  });
  assert.equal(loadNetworkConf(d, 'dp').plugins.map((p) => p.type), ['bridge', 'loopback']);
  assert.equal(loadNetworkConf(d, 'only').plugins.map((p) => p.type), ['bridge']);
});

// -------------------------------------------------------------- plugin config

test('buildOneConfig: name and cniVersion of the list, prevResult, runtimeConfig only for declared capabilities', () => {
  const list = confListFromBytes(Buffer.from(JSON.stringify({
    cniVersion: '1.0.0', name: 'caps',
    plugins: [
      { type: 'bridge', name: 'ignored', cniVersion: '0.3.1', capabilities: { mac: true, ips: false }, runtimeConfig: { stale: 1 } },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'loopback' },
    ],
  })));
  const rt = { containerId: 'c', netns: '/n', ifname: 'eth0', args: [], capabilityArgs: { mac: '0a:58:00:00:00:01', ips: ['10.0.0.5/24'], portMappings: [{ hostPort: 80 }] } };
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
  const c0 = JSON.parse(buildOneConfig(list, list.plugins[0]!, null, rt));
  assert.is(c0.name, 'caps');
  assert.is(c0.cniVersion, '1.0.0');
  assert.equal(c0.runtimeConfig, { mac: '0a:58:00:00:00:01' }, 'only the declared and enabled capability; the file\'s runtimeConfig is replaced');
  assert.is(c0.prevResult, undefined);
  const c1 = JSON.parse(buildOneConfig(list, list.plugins[1]!, prev, rt));
  assert.equal(c1.runtimeConfig, { portMappings: [{ hostPort: 80 }] });
  assert.equal(c1.prevResult, prev);
  const c2 = JSON.parse(buildOneConfig(list, list.plugins[2]!, prev, rt));
  assert.is(c2.runtimeConfig, undefined, 'no capabilities, no runtimeConfig');
  // the bytes are Go's: sorted keys
  assert.match(buildOneConfig(list, list.plugins[2]!, null, null), /^\{"cniVersion":"1\.0\.0","name":"caps","type":"loopback"\}$/);
});

// ---------------------------------------------------------------------- cache

test('cache record: libcni cachedInfo field order, base64 config, sorted result, omitempty', () => {
  const config = Buffer.from('{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"loopback"}]}');
  const result = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ interface: 0, address: '10.1.0.2/24', gateway: '10.1.0.1' }] };
  const rt = { containerId: 'cid', netns: '/run/netns/x', ifname: 'eth0', args: [['IP', '10.1.0.2']] as Array<[string, string]>, capabilityArgs: { mac: 'aa' } };
  assert.is(encodeRecord(result, config, 'mynet', rt),
    '{"kind":"cniCacheV1","containerId":"cid","config":"' + config.toString('base64') + '","ifName":"eth0","networkName":"mynet",' +
    '"netns":"/run/netns/x","cniArgs":[["IP","10.1.0.2"]],"capabilityArgs":{"mac":"aa"},' +
    '"result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.0.2/24","gateway":"10.1.0.1","interface":0}]}}');
  // empty CNI_ARGS and capability args are left out, as Go's omitempty does
  assert.is(encodeRecord(result, config, 'mynet', { ...rt, args: [], capabilityArgs: {} }).includes('cniArgs'), false);
  assert.is(encodeRecord(result, config, 'mynet', { ...rt, args: [], capabilityArgs: {} }).includes('capabilityArgs'), false);

  const cacheDir = join(tmp, 'cache');
  const file = writeRecord(cacheDir, result, config, 'mynet', rt);
  assert.is(file, join(cacheDir, 'results', 'mynet-cid-eth0'));
  assert.equal(readCachedResult(cacheDir, 'mynet', rt), result);
  assert.equal(cachedAttachments(cacheDir).map((a) => [a.network, a.containerId, a.ifname]), [['mynet', 'cid', 'eth0']]);
});

test('cache: a legacy cache file (a bare result) is read as the result; garbage is an error; none is null', () => {
  const cacheDir = join(tmp, 'legacy');
  mkdirSync(join(cacheDir, 'results'), { recursive: true });
  writeFileSync(join(cacheDir, 'results', 'n-c-eth0'), '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}],"dns":{}}');
  assert.is((readCachedResult(cacheDir, 'n', { containerId: 'c', ifname: 'eth0' }) as any).cniVersion, '0.4.0');
  writeFileSync(join(cacheDir, 'results', 'n-c-eth1'), 'not json');
  throwsRunner(() => readCachedResult(cacheDir, 'n', { containerId: 'c', ifname: 'eth1' }), /neither/);
  assert.is(readCachedResult(cacheDir, 'n', { containerId: 'c', ifname: 'eth9' }), null);
  assert.equal(cachedAttachments(cacheDir), [], 'only cniCacheV1 records are attachments');
});

test('hostile names: a cache path never leaves results/, a type never names a path', () => {
  throwsRunner(() => cacheFile('/c', '../../etc/x', { containerId: 'c', ifname: 'eth0' }), /invalid network name/);
  throwsRunner(() => cacheFile('/c', 'n', { containerId: 'a/b', ifname: 'eth0' }), /invalid container ID/);
  throwsRunner(() => cacheFile('/c', 'n', { containerId: '..', ifname: 'eth0' }), /invalid container ID/);
  const policy = join(tmp, 'policy.json');
  writeFileSync(policy, JSON.stringify({ auditLog: join(tmp, 'audit.log'), stateDir: join(tmp, 'state'), pluginDirs: [], allowExec: ['../../../bin/true', 'sh'] }));
  const r = new Runner({ confDir: tmp, cniPath: ['/usr/bin'], cacheDir: tmp, policyFile: policy, rt: { containerId: 'c', netns: '', ifname: 'eth0', args: [], capabilityArgs: {} } });
  assert.is(r.findInPath('../../../bin/true'), null);
  assert.is(r.resolveType('../../../bin/true').how, 'none');
  assert.is(r.resolveType('sh').how, 'exec', 'an allowed binary in CNI_PATH runs');
  assert.is(r.resolveType('true').how, 'none', 'a binary the policy does not list does not');
  assert.is(r.resolveType('loopback').how, 'component');
});

test('container id: cnitool- and 20 hex digits of sha512(netns path)', () => {
  // python3 -c "import hashlib; print(hashlib.sha512(b'/var/run/netns/testing').hexdigest()[:20])"
  assert.is(containerIdFor('/var/run/netns/testing'), 'cnitool-77383ca0a0715733ca6f');
});

test('print: 1.x results as libcni prints them (sorted, 4-space indent, no empty dns); 0.x in struct order with dns', () => {
  const r100 = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', mac: 'aa', sandbox: '/n' }], ips: [{ interface: 0, address: '10.0.0.2/24' }] };
  assert.is(cnitoolResult(r100), [
    '{', '    "cniVersion": "1.0.0",', '    "interfaces": [', '        {', '            "mac": "aa",', '            "name": "eth0",',
    '            "sandbox": "/n"', '        }', '    ],', '    "ips": [', '        {', '            "address": "10.0.0.2/24",',
    '            "interface": 0', '        }', '    ]', '}'].join('\n'));
  const r020 = { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1' }, dns: {} };
  assert.is(cnitoolResult(r020), '{\n    "cniVersion": "0.2.0",\n    "ip4": {\n        "ip": "10.0.0.2/24",\n        "gateway": "10.0.0.1"\n    },\n    "dns": {}\n}');
  assert.is(goMarshal({ b: [], a: {} }, { indent: '    ' }), '{\n    "a": {},\n    "b": []\n}');
});

test('did you mean: typos of known keys', () => {
  const keys = ['isGateway', 'isDefaultGateway', 'ipMasq', 'bridge', 'hairpinMode', 'mtu'];
  assert.is(suggest('isGatway', keys), 'isGateway');
  assert.is(suggest('ipmasq', keys), 'ipMasq');
  assert.is(suggest('hairpin_mode', keys), 'hairpinMode');
  assert.is(suggest('gateway', ['dst', 'gw']), 'gw');
  assert.is(suggest('completelyDifferent', keys), undefined);
});

// ------------------------------------------------------------ the real CLI

const ENV = { ...process.env, CNI_PATH: '/nonexistent-rn-unit', NETCONFPATH: '/nonexistent-rn-unit', CNI_COMMAND: '' };

test('validate: typos warn (errors with --strict), bad values and unknown types are errors, exit 1', () => {
  const d = dir('validate', {
    '10-mynet.conf': '{\n  "cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0",\n  "isGatway": true,\n  "ipam": {"type": "host-local", "subnet": "10.22.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}\n}',
  });
  const warn = cli(['validate', d], { env: ENV });
  assert.is(warn.status, 0, warn.stdout + warn.stderr);
  assert.match(warn.stdout, /warning: isGatway: unknown key isGatway \(did you mean isGateway\?\)/);
  const strict = cli(['validate', '--strict', d], { env: ENV });
  assert.is(strict.status, 1);
  assert.match(strict.stdout, /error: isGatway/);

  const bad = dir('validate-bad', {
    '10-a.conflist': JSON.stringify({ cniVersion: '2.0.0', name: 'a', plugins: [{ type: 'bridge', mtu: 'big', ipam: { type: 'nosuch-ipam' } }, { type: 'nosuch' }] }),
    '20-b.conf': '{"cniVersion": "1.0.0",\n "name": "b", "type": "loopback",,}',
    '30-c.conf': JSON.stringify({ type: 'loopback' }),
    '40-d.conf': JSON.stringify({ cniVersion: '1.0.0', name: 'd', type: 'bridge', ipam: { type: 'host-local', subnet: '10.0.0.0/33', rangeStart: 'x' } }),
    '50-e.conf': JSON.stringify({ cniVersion: '1.0.0', name: 'e', type: 'bridge', ipam: { type: 'host-locl', subnet: '10.0.0.0/24' } }),
  });
  const r = cli(['validate', '--json', bad], { env: ENV });
  assert.is(r.status, 1, r.stdout + r.stderr);
  const doc = JSON.parse(r.stdout);
  const of = (f: string) => doc.files.find((x: any) => x.file.endsWith(f)).findings.map((x: any) => `${x.level} ${x.where}: ${x.message}`).join('\n');
  assert.match(of('10-a.conflist'), /error cniVersion: unsupported CNI version "2\.0\.0"/);
  assert.match(of('10-a.conflist'), /error plugins\[0\]\.mtu: failed to load netconf: "mtu" must be a whole number, not a string/);
  assert.match(of('10-a.conflist'), /error plugins\[0\]\.ipam\.type: unknown IPAM plugin type "nosuch-ipam"/);
  assert.match(of('10-a.conflist'), /error plugins\[1\]\.type: unknown plugin type "nosuch"/);
  assert.match(of('20-b.conf'), /not valid JSON.*\(line 2, column \d+\)/);
  assert.match(of('30-c.conf'), /error name: missing network name/);
  assert.match(of('40-d.conf'), /error ipam\.subnet: invalid CIDR address: 10\.0\.0\.0\/33/);
  assert.match(of('40-d.conf'), /error ipam\.rangeStart: invalid IP address: x/);
  assert.match(of('50-e.conf'), /error ipam\.type: unknown IPAM plugin type "host-locl" \(did you mean host-local\?\)/);
});

test('validate: the seed configs (004: no cniVersion, a loopback conf without a name)', () => {
  const d = dir('seed004', {
    '10-mynet.conf': JSON.stringify({ name: 'mynet', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.22.0.0/16', routes: [{ dst: '0.0.0.0/0' }] } }),
    '99-loopback.conf': JSON.stringify({ type: 'loopback' }),
  });
  const r = cli(['validate', d], { env: ENV });
  assert.is(r.status, 1);
  assert.match(r.stdout, /10-mynet\.conf: network "mynet".*\n  warning: cniVersion: no cniVersion/);
  assert.match(r.stdout, /99-loopback\.conf: .*\n(.*\n)*  error: name: missing network name/);
});

test('validate: seed 000\'s dual-stack chain is clean even with --strict; a type found as a binary is a note', () => {
  const d = dir('seed000', {
    '10-connet.conflist': JSON.stringify({
      cniVersion: '0.4.0', name: 'connet',
      plugins: [
        {
          type: 'bridge', bridge: 'cbr0', isGateway: true, ipMasq: true,
          ipam: {
            type: 'host-local', ranges: [[{ subnet: '192.168.199.0/24' }], [{ subnet: 'fde4:8dba:82e1::/64' }]],
            routes: [{ dst: '0.0.0.0/0' }, { dst: 'fde4:8dba:82e1::1/64' }], dataDir: '/run/ipam-state',
          },
          dns: { nameservers: ['8.8.8.8'] },
        },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    }),
  });
  // bandwidth is bundled now: the seed's chain is ours entirely
  const r = cli(['validate', '--strict', d], { env: ENV });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /0 error\(s\), 0 warning\(s\)/);
  // a type we do not bundle, found as a binary in CNI_PATH, is a note; without the binary, an unknown type
  const withSbr = dir('sbr-confs', { '10.conflist': JSON.stringify({ cniVersion: '0.4.0', name: 'connet', plugins: [{ type: 'bridge', ipam: { type: 'host-local', subnet: '10.9.0.0/24' } }, { type: 'sbr' }] }) });
  const bin = dir('sbr-bin', { sbr: '#!/bin/sh\nexit 0\n' });
  const noted = cli(['validate', '--strict', withSbr], { env: { ...ENV, CNI_PATH: bin } });
  assert.is(noted.status, 0, noted.stdout + noted.stderr);
  assert.match(noted.stdout, /note: plugins\[1\]\.type: "sbr" is a binary in CNI_PATH/);
  const none = cli(['validate', withSbr], { env: ENV });
  assert.is(none.status, 1);
  assert.match(none.stdout, /error: plugins\[1\]\.type: unknown plugin type "sbr"/);
});

test('--version, help <command>, and a shim run by hand without CNI_COMMAND', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const v = cli(['--version'], { env: ENV });
  assert.is(v.status, 0);
  assert.is(v.stdout.trim(), pkg.version);
  const h = cli(['help', 'add'], { env: ENV });
  assert.is(h.status, 0);
  assert.match(h.stdout, /Usage: cni-wasm add \[options\] <network> <netns>/);
  assert.match(h.stdout, /NETCONFPATH/);
  assert.match(cli(['help', 'validate'], { env: ENV }).stdout, /--strict/);
  // the reference plugins (skel) print their "about" text on stderr and exit 0
  const shim = cli(['--type', 'bridge'], { env: ENV });
  assert.is(shim.stdout, '', 'nothing on stdout');
  assert.match(shim.stderr, /^CNI bridge plugin .*\nCNI protocol versions supported: 0\.1\.0, .*1\.1\.0\n$/);
  assert.is(shim.status, 0);
  const withArgs = cli(['--type', 'loopback', '--policy', '/nonexistent', '--help'], { env: ENV });
  assert.is(withArgs.stdout, '', 'nothing on stdout, whatever the arguments (as the reference)');
  assert.match(withArgs.stderr, /^CNI loopback plugin /);
  assert.is(withArgs.status, 0);
});

test('the interface name: -i before or after the command, --ifname, then CNI_IFNAME (checked before anything runs)', () => {
  const d = dir('ifname', { 'a.conf': JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: 'loopback' }) });
  const env = { ...ENV, NETCONFPATH: d };
  for (const [args, bad] of [[['-i', 'a/1', 'add', 'x', '/tmp/n'], 'a/1'], [['add', '-i', 'a/2', 'x', '/tmp/n'], 'a/2'], [['add', '--ifname', 'a/3', 'x', '/tmp/n'], 'a/3']] as const) {
    const r = cli([...args], { env });
    assert.is(r.status, 1);
    assert.is(r.stdout, '');
    assert.match(r.stderr, new RegExp(`invalid CNI_IFNAME "${bad}"`));
  }
  const e = cli(['add', 'x', '/tmp/n'], { env: { ...env, CNI_IFNAME: 'a/4' } });
  assert.match(e.stderr, /invalid CNI_IFNAME "a\/4"/);
});

test('install: an unknown --only type is an error; types the config dir uses that we lack are warnings', () => {
  const bin = join(tmp, 'bin');
  const bad = cli(['install', '--bin-dir', bin, '--only', 'bridge,frobnicate'], { env: ENV });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /unknown plugin type in --only: frobnicate/);
  const confs = dir('install-confs', {
    '10.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'bridge', ipam: { type: 'whereabouts' } }, { type: 'sbr' }] }),
  });
  const ok = cli(['install', '--bin-dir', bin, '--conf-dir', confs], { env: ENV });
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /plugin type 'whereabouts', which cni-wasm does not provide/);
  assert.match(ok.stderr, /plugin type 'sbr', which cni-wasm does not provide/);
  assert.not.match(ok.stderr, /'bridge'/);
});

test.run();
