// `cni-wasm add|check|del|gc|status` as a cnitool user runs it, for real:
// the seed walkthroughs' configs (001: cnitool-style ADD of a 0.2.0 bridge;
// 004: an /etc/cni/net.d with a bridge conf and a loopback conf), a
// conflist of bridge + loopback, capability and CNI_ARGS handling, a failed
// ADD that must leave nothing, GC and STATUS. The runner runs inside a
// throwaway netns that plays the host; bridges are renamed, IPAM state,
// config dir and result cache live in a temp dir. Side by side with the
// reference bridge (Debian 1.1.1) where its output is deterministic (0.2.0
// results carry no MACs): byte for byte. Needs root. Prefix: rn-.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, type Harness, REFERENCE_BIN, cniWasmIn, hasReference, makeHarness, reference, removeHarness, writePolicy } from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';

const P = 'rn-';
const HOST = `${P}host`;
let h: Harness;
let cacheDir: string;

interface Run { status: number | null; stdout: string; stderr: string }

/** `cni-wasm <args>` inside the host netns, with only cnitool's environment. */
function runner(args: string[], env: Record<string, string> = {}, ns = HOST): Run {
  return cniWasmIn(h, ns, args, env);
}

function ok(r: Run, what: string): Run {
  assert.is(r.status, 0, `${what}: exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A config dir with these files. */
function confDir(name: string, files: Record<string, unknown>): string {
  const d = join(h.dir, 'conf', name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  for (const [f, doc] of Object.entries(files)) writeFileSync(join(d, f), typeof doc === 'string' ? doc : JSON.stringify(doc, null, 4));
  return d;
}

const dataDir = (tag: string) => join(h.dir, `ipam-${tag}`);
function leases(tag: string, network: string): string[] {
  const d = join(dataDir(tag), network);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip') && !f.startsWith('.')).sort();
}
const cidFor = (ns: string) => 'cnitool-' + createHash('sha512').update(netnsPath(ns)).digest('hex').slice(0, 20);
const cachePath = (net: string, cid: string, ifname: string) => join(cacheDir, 'results', `${net}-${cid}-${ifname}`);
const addrs = (ns: string, dev: string): string[] =>
  ipJson(ns, ['addr', 'show', 'dev', dev]).flatMap((l: any) => l.addr_info).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);
const routes = (ns: string): string[] =>
  ipJson(ns, ['route', 'show']).map((r: any) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}`).sort();
const links = (ns: string): string[] => ipJson(ns, ['link', 'show']).map((l: any) => l.ifname).sort();
const bridgePorts = (ns: string, br: string): string[] => ipJson(ns, ['link', 'show', 'master', br]).map((l: any) => l.ifname);

/** JSON with sorted keys, compact: what Go's json.Marshal makes of a map (written here independently). */
function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${sortedJson((v as any)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

// seed 001, first walkthrough (bridge renamed, IPAM state in a temp dir)
const seed001 = () => ({
  cniVersion: '0.2.0', name: 'mybridge', type: 'bridge', bridge: 'rn-br0', isGateway: true, ipMasq: true,
  ipam: {
    type: 'host-local', subnet: '10.15.20.0/24', dataDir: dataDir('001'),
    routes: [{ dst: '0.0.0.0/0' }, { dst: '1.1.1.1/32', gw: '10.15.20.1' }],
  },
});

test.before(() => {
  try {
    cleanupAll(P);
    h = makeHarness(P);
    cacheDir = join(h.dir, 'cache');
    makeNetns(HOST);
    for (const c of ['c1', 'c2', 'c3']) makeNetns(`${P}${c}`);
  } catch (e) {
    console.error('runner test setup failed:', e);
    throw e;
  }
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('seed 001: cni-wasm add in place of the plugin call: address, routes, cnitool\'s output, libcni\'s cache record', () => {
  const d = confDir('001', { 'mybridge.conf': seed001() });
  const env = { NETCONFPATH: d, CNI_IFNAME: 'eth12' };
  const r = ok(runner(['add', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env), 'add');
  // what cnitool prints for a 0.2.0 result: Go's MarshalIndent, struct order, "dns" always, no trailing newline
  assert.is(r.stdout, [
    '{', '    "cniVersion": "0.2.0",', '    "ip4": {', '        "ip": "10.15.20.2/24",', '        "gateway": "10.15.20.1",',
    '        "routes": [', '            {', '                "dst": "0.0.0.0/0"', '            },', '            {',
    '                "dst": "1.1.1.1/32",', '                "gw": "10.15.20.1"', '            }', '        ]', '    },',
    '    "dns": {}', '}'].join('\n'));
  // the walkthrough's checks
  assert.equal(addrs(`${P}c1`, 'eth12'), ['10.15.20.2/24']);
  assert.equal(routes(`${P}c1`), ['1.1.1.1 via 10.15.20.1 dev eth12', '10.15.20.0/24 dev eth12', 'default via 10.15.20.1 dev eth12'].sort());
  assert.equal(addrs(HOST, 'rn-br0'), ['10.15.20.1/24']);
  assert.is(bridgePorts(HOST, 'rn-br0').length, 1, 'one veth on the bridge');
  assert.equal(leases('001', 'mybridge'), ['10.15.20.2']);
  nsExec(`${P}c1`, ['ping', '-c', '1', '-W', '2', '10.15.20.1']);

  // libcni's cache record, field by field
  const cid = cidFor(`${P}c1`);
  const file = cachePath('mybridge', cid, 'eth12');
  assert.ok(existsSync(file), `cache record ${file}`);
  const text = readFileSync(file, 'utf8');
  const rec = JSON.parse(text);
  assert.equal(Object.keys(rec), ['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns', 'result']);
  assert.is(rec.kind, 'cniCacheV1');
  assert.is(rec.containerId, cid);
  assert.is(rec.ifName, 'eth12');
  assert.is(rec.networkName, 'mybridge');
  assert.is(rec.netns, netnsPath(`${P}c1`));
  // the list libcni makes of a single .conf, marshalled from a map
  assert.is(Buffer.from(rec.config, 'base64').toString(), sortedJson({ cniVersion: '0.2.0', name: 'mybridge', plugins: [seed001()] }));
  assert.equal(rec.result, JSON.parse(r.stdout));
  assert.ok(text.includes(`"result":${sortedJson(JSON.parse(r.stdout))}`), 'the result is marshalled from a map: sorted keys');
  assert.not.match(text, /\n/, 'one line, as Go writes it');

  // CHECK does not exist before 0.4.0 (libcni's words)
  const chk = runner(['check', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env);
  assert.is(chk.status, 1);
  assert.is(chk.stdout, '');
  assert.match(chk.stderr, /configuration version "0\.2\.0" does not support the CHECK command/);

  ok(runner(['del', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env), 'del');
  assert.not.ok(links(`${P}c1`).includes('eth12'), 'eth12 gone');
  assert.equal(bridgePorts(HOST, 'rn-br0'), [], 'veth gone');
  assert.equal(leases('001', 'mybridge'), [], 'lease released');
  assert.not.ok(existsSync(file), 'cache record removed');
  ok(runner(['del', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env), 'a second del');
});

test('seed 001 against the reference bridge: the same config gives byte-identical ADD output', () => {
  if (!hasReference()) { console.log('  (no reference plugins in /usr/lib/cni: skipped)'); return; }
  const refHost = `${P}rhost`, refC = `${P}rc1`;
  makeNetns(refHost);
  makeNetns(refC);
  try {
    const conf = { ...seed001(), ipam: { ...seed001().ipam, dataDir: dataDir('001-ref') } };
    const ref = reference('bridge', { command: 'ADD', hostNs: refHost, netns: refC, containerId: cidFor(refC), ifname: 'eth12', config: conf, path: REFERENCE_BIN });
    assert.is(ref.code, 0, ref.stdout + ref.stderr);
    const d = confDir('001-ours', { 'mybridge.conf': { ...seed001(), ipam: { ...seed001().ipam, dataDir: dataDir('001-ours') } } });
    const ours = ok(runner(['add', 'mybridge', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { NETCONFPATH: d, CNI_IFNAME: 'eth12' }), 'add');
    // the plugin prints with types.Result.Print(), which is what cnitool prints
    assert.is(ours.stdout, ref.stdout);
    assert.equal(routes(`${P}c2`), routes(refC));
    ok(runner(['del', 'mybridge', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { NETCONFPATH: d, CNI_IFNAME: 'eth12' }), 'del');
  } finally {
    spawnSync('ip', ['netns', 'del', refHost]);
    spawnSync('ip', ['netns', 'del', refC]);
  }
});

test('seed 001, second walkthrough: rangeStart/rangeEnd and a gateway outside the range', () => {
  const conf = {
    cniVersion: '0.2.0', name: 'mybridge', type: 'bridge', bridge: 'rn-br1', isGateway: true, ipMasq: true,
    ipam: {
      type: 'host-local', subnet: '10.15.30.0/24', dataDir: dataDir('001b'),
      routes: [{ dst: '0.0.0.0/0' }, { dst: '1.1.1.1/32', gw: '10.15.30.1' }],
      rangeStart: '10.15.30.100', rangeEnd: '10.15.30.200', gateway: '10.15.30.99',
    },
  };
  const d = confDir('001b', { 'mybridge2.conf': conf });
  const cid = '58351bcd7b2c6f2bdaf147f02c93b42456b3880d1edbbe3caef745d9701ae00e';
  const env = { NETCONFPATH: d };
  const r = ok(runner(['add', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir, '--container-id', cid], env), 'add');
  assert.is(JSON.parse(r.stdout).ip4.ip, '10.15.30.100/24');
  assert.equal(addrs(`${P}c1`, 'eth0'), ['10.15.30.100/24']);
  assert.equal(routes(`${P}c1`), ['1.1.1.1 via 10.15.30.1 dev eth0', '10.15.30.0/24 dev eth0', 'default via 10.15.30.99 dev eth0'].sort());
  assert.equal(addrs(HOST, 'rn-br1'), ['10.15.30.99/24']);
  assert.ok(existsSync(cachePath('mybridge', cid, 'eth0')), '--container-id names the cache record');
  ok(runner(['del', 'mybridge', netnsPath(`${P}c1`), '--cache-dir', cacheDir, '--container-id', cid], env), 'del');
  assert.equal(leases('001b', 'mybridge'), []);
  assert.not.ok(existsSync(cachePath('mybridge', cid, 'eth0')));
});

test('seed 004: /etc/cni/net.d with 10-mynet.conf (no cniVersion) and 99-loopback.conf', () => {
  const d = confDir('004', {
    '10-mynet.conf': {
      name: 'mynet', type: 'bridge', bridge: 'rn-br4', isGateway: true, ipMasq: true,
      ipam: { type: 'host-local', subnet: '10.22.0.0/16', dataDir: dataDir('004'), routes: [{ dst: '0.0.0.0/0' }] },
    },
    '99-loopback.conf': { type: 'loopback' },
  });
  const env = { NETCONFPATH: d };
  const cid = '456a387326754f9';
  const r = ok(runner(['add', 'mynet', netnsPath(`${P}c3`), '--cache-dir', cacheDir, '--container-id', cid], env), 'add');
  // no cniVersion: the plugins speak 0.1.0, whose results look like 0.2.0's
  assert.is(JSON.parse(r.stdout).cniVersion, '0.1.0');
  assert.equal(addrs(`${P}c3`, 'eth0'), ['10.22.0.2/16']);
  assert.equal(routes(`${P}c3`), ['10.22.0.0/16 dev eth0', 'default via 10.22.0.1 dev eth0'].sort());
  const rec = JSON.parse(readFileSync(cachePath('mynet', cid, 'eth0'), 'utf8'));
  assert.match(Buffer.from(rec.config, 'base64').toString(), /^\{"cniVersion":"","name":"mynet","plugins":\[/);
  ok(runner(['del', 'mynet', netnsPath(`${P}c3`), '--cache-dir', cacheDir, '--container-id', cid], env), 'del');
  assert.not.ok(links(`${P}c3`).includes('eth0'));
  assert.equal(leases('004', 'mynet'), []);
  // the loopback conf has no name: no runtime can ever select it
  const lo = runner(['add', '', netnsPath(`${P}c3`), '--cache-dir', cacheDir], env);
  assert.is(lo.status, 1);
  assert.match(lo.stderr, /missing network name|no net configuration/);
});

/** bridge + loopback; IPAM state in its own dir per tag */
const chain = (version: string, tag: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: version, name: 'rnchain', ...extra,
  plugins: [
    { type: 'bridge', bridge: 'rn-br5', isGateway: true, ipam: { type: 'host-local', subnet: '10.55.0.0/24', dataDir: dataDir(tag) } },
    { type: 'loopback' },
  ],
});

test('conflist bridge + loopback at 1.0.0: ADD in order, CHECK against the cached result, DEL in reverse', () => {
  const d = confDir('chain', { '10-chain.conflist': chain('1.0.0', 'chain') });
  const env = { NETCONFPATH: d };
  const ns = netnsPath(`${P}c1`);
  const r = ok(runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], env), 'add');
  const res = JSON.parse(r.stdout);
  // libcni >= 1.2 prints 1.x results marshalled from a map: sorted keys, no empty "dns"
  assert.equal(Object.keys(res), ['cniVersion', 'interfaces', 'ips']);
  assert.equal(Object.keys(res.ips[0]), ['address', 'gateway', 'interface']);
  assert.is(res.ips[0].address, '10.55.0.2/24');
  assert.is(res.interfaces[res.ips[0].interface].sandbox, ns);
  assert.match(r.stdout, /^\{\n {4}"cniVersion": "1\.0\.0",\n {4}"interfaces": \[\n {8}\{\n/);
  assert.not.match(r.stdout, /\n$/);
  assert.equal(addrs(`${P}c1`, 'eth0'), ['10.55.0.2/24']);
  const lo = ipJson(`${P}c1`, ['link', 'show', 'lo'])[0];
  assert.ok(lo.flags.includes('UP'), 'loopback up');
  ok(runner(['check', 'rnchain', ns, '--cache-dir', cacheDir], env), 'check');
  // CHECK really compares with the cached result: take the address away
  nsExec(`${P}c1`, ['ip', 'addr', 'del', '10.55.0.2/24', 'dev', 'eth0']);
  const bad = runner(['check', 'rnchain', ns, '--cache-dir', cacheDir], env);
  assert.is(bad.status, 1, 'check must fail when the address is gone');
  assert.match(bad.stderr, /10\.55\.0\.2/);
  ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], env), 'del');
  assert.equal(bridgePorts(HOST, 'rn-br5'), []);
  assert.equal(leases('chain', 'rnchain'), []);
  assert.not.ok(existsSync(cachePath('rnchain', cidFor(`${P}c1`), 'eth0')));
});

test('DEL after the config file is gone uses the config cached at ADD time', () => {
  const d = confDir('gone', { '10-chain.conflist': chain('1.0.0', 'gone') });
  const ns = netnsPath(`${P}c3`);
  ok(runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], { NETCONFPATH: d }), 'add');
  rmSync(join(d, '10-chain.conflist'));
  assert.is(runner(['check', 'rnchain', ns, '--cache-dir', cacheDir], { NETCONFPATH: d }).status, 1, 'check needs the config');
  const r = ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], { NETCONFPATH: d }), 'del');
  assert.match(r.stderr, /no net configurations found in .*; using the configuration cached at ADD time/);
  assert.equal(leases('gone', 'rnchain'), []);
  assert.equal(bridgePorts(HOST, 'rn-br5'), []);
  assert.not.ok(existsSync(cachePath('rnchain', cidFor(`${P}c3`), 'eth0')));
  // nothing cached any more: now it is an error, as in cnitool
  assert.is(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], { NETCONFPATH: d }).status, 1);
});

test('--json, and disableCheck', () => {
  const d = confDir('chain-json', { '10-chain.conflist': chain('1.0.0', 'chain-json', { disableCheck: true }) });
  const env = { NETCONFPATH: d };
  const ns = netnsPath(`${P}c2`);
  const r = ok(runner(['add', '--json', 'rnchain', ns, '--cache-dir', cacheDir], env), 'add');
  assert.match(r.stdout, /\n$/);
  assert.is(JSON.parse(r.stdout).ips[0].address.startsWith('10.55.0.'), true);
  const c = ok(runner(['check', '--json', 'rnchain', ns, '--cache-dir', cacheDir], env), 'check');
  assert.equal(JSON.parse(c.stdout), { network: 'rnchain', containerId: cidFor(`${P}c2`), ifname: 'eth0', checked: false });
  const nf = runner(['del', '--json', 'nosuchnet', ns, '--cache-dir', cacheDir], env);
  assert.is(nf.status, 1);
  assert.match(JSON.parse(nf.stdout).error, /no net configuration with name "nosuchnet"/);
  ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], env), 'del');
  assert.equal(leases('chain-json', 'rnchain'), []);
});

test('a failed ADD in a list leaves nothing: no veth, no address, no lease, no cache record', () => {
  const ns = netnsPath(`${P}c3`);
  for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
    const list = chain(version, `chain-fail-${version}`);
    list.plugins.push({ type: 'rn-nosuch' } as any);
    const d = confDir('fail', { '10-chain.conflist': list });
    const r = runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], { NETCONFPATH: d });
    assert.is(r.status, 1, version);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /^plugin type="rn-nosuch" failed \(add\): failed to find plugin "rn-nosuch" in path \[\/usr\/lib\/cni\]/);
    assert.not.match(r.stderr, /undoing/, `the undo went through at ${version}: ${r.stderr}`);
    assert.not.match(r.stderr, /^\s+at /m, 'no stack trace');
    assert.equal(bridgePorts(HOST, 'rn-br5'), [], `the veth is gone (${version})`);
    assert.not.ok(links(`${P}c3`).includes('eth0'), `no eth0 in the container (${version})`);
    assert.equal(leases(`chain-fail-${version}`, 'rnchain'), [], `no lease (${version})`);
    assert.not.ok(existsSync(cachePath('rnchain', cidFor(`${P}c3`), 'eth0')), 'no cache record');
  }

  // a plugin's own CNI error comes through with its words
  const bad = confDir('fail2', { 'x.conflist': { cniVersion: '1.0.0', name: 'rnbad', plugins: [{ type: 'bridge', bridge: 'rn-br6', mtu: 'big' }] } });
  const e = runner(['add', 'rnbad', ns, '--cache-dir', cacheDir], { NETCONFPATH: bad });
  assert.is(e.status, 1);
  assert.match(e.stderr, /^plugin type="bridge" failed \(add\): failed to load netconf: "mtu" must be a whole number/);
});

test('validate reports what the bridge\'s ADD says, word for word', () => {
  const hl = (ipam: Record<string, unknown>) => ({ ipam: { type: 'host-local', dataDir: dataDir('val'), ...ipam } });
  const cases: Record<string, unknown>[] = [
    { isGateway: 'yes' }, { ipMasq: 1 }, { mtu: 70000 }, { mtu: 1.5 }, { mtu: 'big' }, { vlan: 5000 }, { hairpinMode: 'true' },
    hl({ subnet: '10.0.0.0/33' }), hl({ subnet: '10.0.0.0/24', rangeStart: 'x' }), hl({}), hl({ subnet: '10.0.0.0/24', routes: [{ dst: 'nope' }] }),
    hl({ ranges: [[{ rangeStart: '10.0.0.5' }]] }), hl({ subnet: '10.0.0.0/24', gateway: '10.0.0.300' }), hl({ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }),
    hl({ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.5' }), hl({ subnet: '10.0.0.1/24' }), hl({ subnet: '10.0.0.0/31' }), hl({ ranges: [[]] }),
    hl({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }),
    hl({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }),
    hl({ subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.0.0/25' }]] }),
    hl({ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20' }], [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.15' }]] }),
    { ipam: { type: 'static', addresses: [{ address: '10.0.0.5' }] } },
    { cniVersion: '0.2.0', ...hl({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] }) },
  ];
  const ns = netnsPath(`${P}c3`);
  for (const bad of cases) {
    const conf = { cniVersion: bad.cniVersion ?? '1.0.0', name: 'rnval', type: 'bridge', bridge: 'rn-brv', ...bad };
    const d = confDir('val', { '10.conf': conf });
    const add = runner(['add', 'rnval', ns, '--cache-dir', cacheDir], { NETCONFPATH: d });
    assert.is(add.status, 1, JSON.stringify(bad));
    const addMsg = /^plugin type="bridge" name="rnval" failed \(add\): (.*)$/m.exec(add.stderr)?.[1];
    assert.ok(addMsg, add.stderr);
    assert.is(add.stderr.trim().split('\n').length, 1, `one line: ${add.stderr}`);
    const v = runner(['validate', '--json', d], {});
    assert.is(v.status, 1);
    const msgs = JSON.parse(v.stdout).files[0].findings.filter((f: any) => f.level === 'error').map((f: any) => f.message);
    assert.ok(msgs.includes(addMsg), `validate ${JSON.stringify(msgs)} vs ADD "${addMsg}" for ${JSON.stringify(bad)}`);
  }
  assert.not.ok(links(`${P}c3`).includes('eth0'));
});

test('CAP_ARGS reach only plugins that declare the capability; CNI_ARGS reach every plugin and the cache', () => {
  const net = (name: string, caps: Record<string, boolean> | undefined, bridge: string) => ({
    cniVersion: '1.0.0', name, type: 'bridge', bridge, ...(caps ? { capabilities: caps } : {}),
    ipam: { type: 'host-local', subnet: '10.66.0.0/24', dataDir: dataDir(name) },
  });
  const d = confDir('caps', { '10-on.conf': net('capson', { mac: true, ips: true }, 'rn-br7'), '20-off.conf': net('capsoff', undefined, 'rn-br8') });
  const CAP_ARGS = JSON.stringify({ mac: '0a:58:0a:42:00:99', ips: ['10.66.0.50/24'], portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
  const env = { NETCONFPATH: d, CAP_ARGS };
  const on = JSON.parse(ok(runner(['add', 'capson', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env), 'add capson').stdout);
  assert.is(on.ips[0].address, '10.66.0.50/24');
  assert.is(ipJson(`${P}c1`, ['link', 'show', 'eth0'])[0].address, '0a:58:0a:42:00:99');
  const rec = JSON.parse(readFileSync(cachePath('capson', cidFor(`${P}c1`), 'eth0'), 'utf8'));
  assert.equal(rec.capabilityArgs, JSON.parse(CAP_ARGS), 'libcni caches all capability args');

  const off = JSON.parse(ok(runner(['add', 'capsoff', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { ...env, CNI_ARGS: 'IgnoreUnknown=1;IP=10.66.0.60' }), 'add capsoff').stdout);
  assert.is(off.ips[0].address, '10.66.0.60/24', 'CNI_ARGS IP= reaches host-local; the undeclared ips capability does not');
  assert.is.not(ipJson(`${P}c2`, ['link', 'show', 'eth0'])[0].address, '0a:58:0a:42:00:99');
  const rec2 = JSON.parse(readFileSync(cachePath('capsoff', cidFor(`${P}c2`), 'eth0'), 'utf8'));
  assert.equal(rec2.cniArgs, [['IgnoreUnknown', '1'], ['IP', '10.66.0.60']]);

  const badCap = runner(['add', 'capson', netnsPath(`${P}c3`), '--cache-dir', cacheDir], { NETCONFPATH: d, CAP_ARGS: '{nope' });
  assert.is(badCap.status, 1);
  assert.match(badCap.stderr, /CAP_ARGS is not valid JSON/);
  const badArgs = runner(['add', 'capson', netnsPath(`${P}c3`), '--cache-dir', cacheDir], { NETCONFPATH: d, CNI_ARGS: 'IP=' });
  assert.is(badArgs.status, 1);
  assert.match(badArgs.stderr, /invalid CNI_ARGS pair "IP="/);

  ok(runner(['del', 'capson', netnsPath(`${P}c1`), '--cache-dir', cacheDir], env), 'del capson');
  ok(runner(['del', 'capsoff', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { ...env, CNI_ARGS: 'IgnoreUnknown=1;IP=10.66.0.60' }), 'del capsoff');
  assert.equal(leases('capson', 'capson'), []);
  assert.equal(leases('capsoff', 'capsoff'), []);
});

test('GC at 1.1.0 keeps what the cache knows and releases the rest; STATUS', () => {
  const d = confDir('gc', { '10-chain.conflist': chain('1.1.0', 'chain-gc') });
  const env = { NETCONFPATH: d };
  const ns = netnsPath(`${P}c1`);
  ok(runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], env), 'add');
  assert.equal(leases('chain-gc', 'rnchain'), ['10.55.0.2']);
  // a lease nobody has: a crashed runtime's leftover
  writeFileSync(join(dataDir('chain-gc'), 'rnchain', '10.55.0.77'), 'rn-gone-container\r\neth0');
  const g = ok(runner(['gc', '--json', 'rnchain', ns, '--cache-dir', cacheDir], env), 'gc');
  assert.equal(JSON.parse(g.stdout).validAttachments, [{ containerID: cidFor(`${P}c1`), ifname: 'eth0' }]);
  assert.equal(leases('chain-gc', 'rnchain'), ['10.55.0.2'], 'the stray lease is gone, the live one kept');
  assert.equal(addrs(`${P}c1`, 'eth0'), ['10.55.0.2/24'], 'the live container is untouched');
  ok(runner(['status', 'rnchain', ns, '--cache-dir', cacheDir], env), 'status');
  ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], env), 'del');
  assert.equal(leases('chain-gc', 'rnchain'), []);
});

test('on a terminal: a short summary instead of JSON (and --json still gives JSON)', () => {
  if (spawnSync('sh', ['-c', 'command -v script']).status !== 0) { console.log('  (no script(1): skipped)'); return; }
  const conf = { ...seed001(), bridge: 'rn-br3', ipam: { ...seed001().ipam, dataDir: dataDir('tty') } };
  const d = confDir('tty', { 'mybridge.conf': conf });
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const onTty = (args: string[]) => {
    const cmd = ['env', `NETCONFPATH=${d}`, `CNI_PATH=${REFERENCE_BIN}`, 'ip', 'netns', 'exec', HOST, process.execPath, CLI, '--policy', h.policyFile, ...args].map(q).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, out: (r.stdout ?? '').replace(/\r/g, '') };
  };
  const ns = netnsPath(`${P}c2`);
  const add = onTty(['add', 'mybridge', ns, '--cache-dir', cacheDir]);
  assert.is(add.status, 0, add.out);
  assert.match(add.out, /^mybridge: added cnitool-[0-9a-f]{20} \(\/run\/netns\/rn-c2\), CNI 0\.2\.0\n/);
  assert.match(add.out, /10\.15\.20\.2\/24 gw 10\.15\.20\.1/);
  assert.match(add.out, /routes +0\.0\.0\.0\/0, 1\.1\.1\.1\/32 via 10\.15\.20\.1/);
  assert.match(add.out, new RegExp(`cached in ${cacheDir}/results/mybridge-cnitool-`));
  const del = onTty(['del', '--json', 'mybridge', ns, '--cache-dir', cacheDir]);
  assert.is(del.status, 0, del.out);
  assert.equal(JSON.parse(del.out), { network: 'mybridge', containerId: cidFor(`${P}c2`), ifname: 'eth0', deleted: true });
  assert.equal(leases('tty', 'mybridge'), []);
});

test('a non-bundled type runs from CNI_PATH only when the policy allows it; its own CNI error comes through', () => {
  if (!hasReference()) { console.log('  (no reference plugins in /usr/lib/cni: skipped)'); return; }
  // tuning is bundled now: the reference's own binary under a name we do not bundle
  const ext = join(h.dir, 'extbin');
  mkdirSync(ext, { recursive: true });
  copyFileSync(join(REFERENCE_BIN, 'tuning'), join(ext, 'reftuning'));
  chmodSync(join(ext, 'reftuning'), 0o755);
  const list = (sysctl: Record<string, string>) => ({
    cniVersion: '1.0.0', name: 'rntune',
    plugins: [
      { type: 'bridge', bridge: 'rn-br9', ipam: { type: 'host-local', subnet: '10.88.0.0/24', dataDir: dataDir('tune') } },
      { type: 'reftuning', sysctl },
    ],
  });
  const d = confDir('tune', { '10.conflist': list({ 'net.ipv4.conf.eth0.forwarding': '1' }) });
  const env = { NETCONFPATH: d, CNI_PATH: `${REFERENCE_BIN}:${ext}` };
  const ns = netnsPath(`${P}c1`);
  try {
    // not allowed: refused, naming the setting, and nothing left behind
    const no = runner(['add', 'rntune', ns, '--cache-dir', cacheDir], env);
    assert.is(no.status, 1);
    assert.match(no.stderr, /plugin type="reftuning" failed \(add\): .*allowExec/);
    assert.equal(bridgePorts(HOST, 'rn-br9'), []);
    assert.equal(leases('tune', 'rntune'), []);

    writePolicy(h, { allowExec: ['reftuning'] });
    ok(runner(['add', 'rntune', ns, '--cache-dir', cacheDir], env), 'add with tuning allowed');
    assert.is(nsExec(`${P}c1`, ['cat', '/proc/sys/net/ipv4/conf/eth0/forwarding']).stdout.trim(), '1', 'the reference tuning ran, with the bridge result as prevResult');
    ok(runner(['del', 'rntune', ns, '--cache-dir', cacheDir], env), 'del');
    assert.equal(leases('tune', 'rntune'), []);

    // the exec'd plugin's own error, with the bundled bridge undone after it
    const d2 = confDir('tune-bad', { '10.conflist': list({ 'net.ipv4.conf.eth0.no_such_sysctl': '1' }) });
    const bad = runner(['add', 'rntune', ns, '--cache-dir', cacheDir], { NETCONFPATH: d2, CNI_PATH: `${REFERENCE_BIN}:${ext}` });
    assert.is(bad.status, 1);
    assert.match(bad.stderr, /^plugin type="reftuning" failed \(add\): .*no_such_sysctl/);
    assert.equal(bridgePorts(HOST, 'rn-br9'), []);
    assert.equal(leases('tune', 'rntune'), []);
  } finally {
    writePolicy(h, {});
  }
});

// ------------------------------------------------ a real cnitool, side by side
// cnitool is not packaged in Debian. Build the one of libcni v1.1.2 (the
// libcni of Debian's podman 4.3; it needs nothing outside the cni repo):
//   git -C <cni checkout> archive v1.1.2 | tar -x -C /tmp/cni && cd /tmp/cni &&
//   printf 'module github.com/containernetworking/cni\n\ngo 1.14\n' > go.mod && rm go.sum &&
//   GOPROXY=off GOFLAGS=-mod=mod go build -o /usr/local/bin/cnitool ./cnitool
// and run with CNITOOL=/usr/local/bin/cnitool. Without it these tests skip.
// That cnitool always caches in /var/lib/cni: it runs in a private mount
// namespace where /var/lib/cni is our temp cache dir (nothing outside).
const CNITOOL = process.env.CNITOOL ?? '';

function cnitool(args: string[], env: Record<string, string>, ns = HOST): Run {
  const script = 'mount -t tmpfs rn-varlib /var/lib && mkdir -p /var/lib/cni && mount --bind "$0" /var/lib/cni && exec ip netns exec "$@"';
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, cacheDir, ns, CNITOOL, ...args], {
    encoding: 'utf8', timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: REFERENCE_BIN, ...env },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('real cnitool (libcni 1.1.2) + reference plugins vs cni-wasm: same output, same cache record', () => {
  if (!CNITOOL || !hasReference()) { console.log('  (set CNITOOL to a cnitool binary to run this)'); return; }
  const refHost = `${P}thost`;
  makeNetns(refHost);
  try {
    const theirs = confDir('cnitool-a', { 'mybridge.conf': { ...seed001(), ipam: { ...seed001().ipam, dataDir: dataDir('ct-a') } } });
    const mine = confDir('cnitool-b', { 'mybridge.conf': { ...seed001(), ipam: { ...seed001().ipam, dataDir: dataDir('ct-b') } } });
    const t = cnitool(['add', 'mybridge', netnsPath(`${P}c1`)], { NETCONFPATH: theirs }, refHost);
    assert.is(t.status, 0, t.stdout + t.stderr);
    const tRec = readFileSync(cachePath('mybridge', cidFor(`${P}c1`), 'eth0'), 'utf8');
    const o = ok(runner(['add', 'mybridge', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { NETCONFPATH: mine }), 'add');
    const oRec = readFileSync(cachePath('mybridge', cidFor(`${P}c2`), 'eth0'), 'utf8');
    assert.is(o.stdout, t.stdout, 'ADD output byte for byte');
    const tj = JSON.parse(tRec), oj = JSON.parse(oRec);
    // the same record but for the names in it; libcni >= 1.2 adds "netns" (1.1.2 readers ignore it)
    assert.is(Buffer.from(oj.config, 'base64').toString().replace(dataDir('ct-b'), 'D'), Buffer.from(tj.config, 'base64').toString().replace(dataDir('ct-a'), 'D'));
    assert.equal(oj.result, tj.result);
    assert.equal(Object.keys(oj).filter((k) => k !== 'netns'), Object.keys(tj));
    const strip = (text: string, ns: string, dd: string) => text.replace(/"containerId":"[^"]*"/, '').replace(/"config":"[^"]*"/, '').replace(`,"netns":"${netnsPath(ns)}"`, '').replace(dd, 'D');
    assert.is(strip(oRec, `${P}c2`, dataDir('ct-b')), strip(tRec, `${P}c1`, dataDir('ct-a')), 'the rest of the record byte for byte');
    assert.is(cnitool(['del', 'mybridge', netnsPath(`${P}c1`)], { NETCONFPATH: theirs }, refHost).status, 0);
    ok(runner(['del', 'mybridge', netnsPath(`${P}c2`), '--cache-dir', cacheDir], { NETCONFPATH: mine }), 'del');
  } finally {
    spawnSync('ip', ['netns', 'del', refHost]);
  }
});

test('real cnitool and cni-wasm read each other\'s cache: ours ADD -> cnitool DEL; cnitool ADD -> ours CHECK and DEL', () => {
  if (!CNITOOL || !hasReference()) { console.log('  (set CNITOOL to a cnitool binary to run this)'); return; }
  const d = confDir('cross', { '10-chain.conflist': chain('1.0.0', 'cross') });
  const env = { NETCONFPATH: d };
  const ns = netnsPath(`${P}c3`);
  ok(runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], env), 'our add');
  assert.equal(leases('cross', 'rnchain'), ['10.55.0.2']);
  const cd = cnitool(['del', 'rnchain', ns], env);
  assert.is(cd.status, 0, `cnitool del of our attachment: ${cd.stdout}${cd.stderr}`);
  assert.equal(leases('cross', 'rnchain'), [], 'the reference host-local released our lease');
  assert.equal(bridgePorts(HOST, 'rn-br5'), []);
  assert.not.ok(existsSync(cachePath('rnchain', cidFor(`${P}c3`), 'eth0')), 'cnitool removed our cache record');

  const ca = cnitool(['add', 'rnchain', ns], env);
  assert.is(ca.status, 0, ca.stdout + ca.stderr);
  assert.ok(existsSync(cachePath('rnchain', cidFor(`${P}c3`), 'eth0')), 'cnitool cached its result');
  ok(runner(['check', 'rnchain', ns, '--cache-dir', cacheDir], env), 'our check against cnitool\'s cached result');
  ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], env), 'our del with cnitool\'s cached result');
  assert.equal(leases('cross', 'rnchain'), []);
  assert.equal(bridgePorts(HOST, 'rn-br5'), []);
  assert.not.ok(links(`${P}c3`).includes('eth0'));
  assert.not.ok(existsSync(cachePath('rnchain', cidFor(`${P}c3`), 'eth0')));
});

// podman's version: a 0.4.0 DEL/CHECK with the cached result as prevResult
// once failed in the delegated host-local ("result version 1.1.0 does not
// match configuration version 0.4.0").
test('conflist at 0.4.0 (podman\'s version): CHECK and DEL with the cached result', () => {
  const d = confDir('chain-040', { '10-chain.conflist': chain('0.4.0', 'chain-040') });
  const env = { NETCONFPATH: d };
  const ns = netnsPath(`${P}c2`);
  ok(runner(['add', 'rnchain', ns, '--cache-dir', cacheDir], env), 'add');
  ok(runner(['check', 'rnchain', ns, '--cache-dir', cacheDir], env), 'check');
  ok(runner(['del', 'rnchain', ns, '--cache-dir', cacheDir], env), 'del');
  assert.equal(leases('chain-040', 'rnchain'), []);
  assert.equal(bridgePorts(HOST, 'rn-br5'), []);
});

test.run();
