// The portmap plugin, ours (nftables map elements) beside the reference
// (Debian containernetworking-plugins 1.1.1, iptables), chained after a
// bridge as podman's networks chain them. Needs root. Prefix: pm-.
//
// Each implementation gets its own world: a netns that plays the host (the
// plugins run inside it), a container netns running an HTTP server (busybox
// httpd) and a UDP echo server (node), and an "outside" netns wired to the
// host by a veth (the uplink). Traffic goes (a) from outside to the host's
// uplink address, (b) from the host itself to its own address and to
// 127.0.0.1, (c) from the container to the host address (hairpin).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, makeNetns, nsExec } from '../helpers/netns.js';
import { buildFixtures, componentPath, installThirdParty } from '../helpers/fixtures.js';

const P = 'pm-';
type Impl = 'ref' | 'ours';
type Role = 'host' | 'c1' | 'c2' | 'out';
const ns = (impl: Impl, role: Role): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const CID: Record<string, string> = { c1: 'pm-container-1', c2: 'pm-container-2' };
const UPLINK4 = '203.0.113.1', OUTSIDE4 = '203.0.113.2';
const UPLINK6 = '2001:db8:ff::1', OUTSIDE6 = '2001:db8:ff::2';
const BUSYBOX = '/bin/busybox';

let h: Harness;
const servers: ChildProcess[] = [];

const bridgeConf = (version: string, impl: Impl) => ({
  cniVersion: version, name: 'pmnet', type: 'bridge', bridge: 'pm0', isGateway: true, ipMasq: false, hairpinMode: true,
  ipam: {
    type: 'host-local', dataDir: join(h.dir, `ipam-${impl}`),
    ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  },
});

interface Mapping { hostPort: number; containerPort: number; protocol: string; hostIP?: string }

const portmapConf = (version: string, prevResult: any, mappings?: Mapping[], extra: Record<string, unknown> = {}) => ({
  cniVersion: version, name: 'pmnet', type: 'portmap', capabilities: { portMappings: true },
  ...(mappings ? { runtimeConfig: { portMappings: mappings } } : {}),
  ...(prevResult ? { prevResult } : {}), ...extra,
});

function call(impl: Impl, type: string, command: CniCall['command'], config: any, c: 'c1' | 'c2' = 'c1'): CniReply {
  const cc: CniCall = { command, hostNs: ns(impl, 'host'), netns: ns(impl, c), containerId: CID[c], ifname: 'eth0', config };
  return impl === 'ref' ? reference(type, { path: REFERENCE_BIN, ...cc }) : ours(h, type, { ...cc, path: h.bin });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

function wireOutside(impl: Impl): void {
  const host = ns(impl, 'host'), out = ns(impl, 'out');
  nsExec(host, ['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'out0', 'netns', out]);
  nsExec(host, ['ip', 'addr', 'add', `${UPLINK4}/24`, 'dev', 'up0']);
  nsExec(host, ['ip', 'addr', 'add', `${UPLINK6}/64`, 'dev', 'up0', 'nodad']);
  nsExec(host, ['ip', 'link', 'set', 'up0', 'up']);
  nsExec(out, ['ip', 'addr', 'add', `${OUTSIDE4}/24`, 'dev', 'out0']);
  nsExec(out, ['ip', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'out0', 'nodad']);
  nsExec(out, ['ip', 'link', 'set', 'out0', 'up']);
  nsExec(out, ['ip', 'route', 'add', 'default', 'via', UPLINK4]);
  nsExec(out, ['ip', '-6', 'route', 'add', 'default', 'via', UPLINK6]);
  nsExec(host, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
}

const UDP_ECHO = `const s=require('dgram').createSocket({type:'udp6'});s.on('message',(m,r)=>s.send('echo:'+m+':from:'+r.address,r.port,r.address));s.bind(5353,'::');`;

/** Servers in container c: busybox httpd on 80 (dual-stack) and a UDP echo on 5353 that names the sender. */
function startServers(impl: Impl, c: 'c1' | 'c2'): void {
  const dir = join(h.dir, `www-${impl}-${c}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), `hello from ${c}\n`);
  for (const cmd of [[BUSYBOX, 'httpd', '-f', '-p', '80', '-h', dir], [process.execPath, '-e', UDP_ECHO]]) {
    const p = spawn('ip', ['netns', 'exec', ns(impl, c), ...cmd], { stdio: 'ignore' });
    servers.push(p);
  }
  // both listen within a moment; wait for the TCP one
  for (let i = 0; i < 50; i++) {
    if (get(ns(impl, c), '127.0.0.1', 80) !== null) return;
    spawnSync('sleep', ['0.1']);
  }
  throw new Error(`httpd in ${ns(impl, c)} did not start`);
}

/** Waits until no IPv6 address in netns `n` is still tentative (DAD), so v6 traffic flows from the first try. */
function settleV6(n: string): void {
  for (let i = 0; i < 50; i++) {
    if (!nsExec(n, ['ip', '-6', 'addr', 'show', 'tentative']).stdout.trim()) return;
    spawnSync('sleep', ['0.1']);
  }
}

function stopServers(): void {
  for (const p of servers.splice(0)) p.kill('SIGKILL');
}

/** HTTP GET from netns `from`; the body, or null when it fails. */
function get(from: string, host: string, port: number): string | null {
  // busybox nc, not wget: this busybox-static's wget crashes (SIGSEGV) here
  let r;
  try {
    r = nsExec(from, [BUSYBOX, 'nc', '-w', '2', host, String(port)], { input: 'GET / HTTP/1.0\r\n\r\n', check: false, timeoutMs: 10_000 });
  } catch {
    return null; // EPIPE: nc gave up before reading the request
  }
  if (r.status !== 0 || !/^HTTP\/1\.[01] 200/.test(r.stdout)) return null;
  return r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n').trim();
}

/** One UDP datagram from netns `from`; the echo (with the address the server saw), or null. */
function udp(from: string, host: string, port: number, srcPort = 0): string | null {
  const js = `const s=require('dgram').createSocket(${host.includes(':') ? "'udp6'" : "'udp4'"});` +
    `const t=setTimeout(()=>process.exit(1),1500);s.on('message',(m)=>{console.log(String(m));clearTimeout(t);s.close();});` +
    `s.bind(${srcPort},()=>s.send('ping',${port},'${host}'));`;
  const r = nsExec(from, [process.execPath, '-e', js], { check: false, timeoutMs: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** A fresh world for impl: namespaces, uplink, bridge ADD for c1 (and c2), servers. Returns the bridge results. */
function world(impl: Impl, version: string, containers: ('c1' | 'c2')[] = ['c1']): Record<string, any> {
  for (const role of ['host', 'c1', 'c2', 'out'] as Role[]) makeNetns(ns(impl, role));
  rmSync(join(h.dir, `ipam-${impl}`), { recursive: true, force: true });
  wireOutside(impl);
  const results: Record<string, any> = {};
  for (const c of containers) {
    results[c] = ok(call(impl, 'bridge', 'ADD', bridgeConf(version, impl), c), `${impl} bridge ADD ${c}`);
    startServers(impl, c);
    settleV6(ns(impl, c));
  }
  settleV6(ns(impl, 'host')); // the bridge's gateway address too
  // warm the IPv6 neighbour entries on both links (a first v6 flow right after set-up was seen to time out)
  nsExec(ns(impl, 'out'), ['ping', '-6', '-c', '1', '-W', '1', UPLINK6], { check: false });
  for (const c of containers) {
    nsExec(ns(impl, c), ['ping', '-6', '-c', '1', '-W', '1', 'fd88::1'], { check: false });
    nsExec(ns(impl, 'host'), ['ping', '-6', '-c', '1', '-W', '1', addrOf(results[c], 6)], { check: false });
  }
  return results;
}

function teardown(): void {
  stopServers();
  cleanupAll(P);
  rmSync(h.stateDir, { recursive: true, force: true });
}

const addrOf = (result: any, family: 4 | 6): string => result.ips.map((i: any) => i.address.split('/')[0]).find((a: string) => a.includes(':') === (family === 6));

/** nft's view of our table in the host netns: elements of each map. */
function nftMaps(impl: Impl): Record<string, any[]> {
  const r = nsExec(ns(impl, 'host'), ['nft', '-j', 'list', 'ruleset']);
  const out: Record<string, any[]> = {};
  for (const item of JSON.parse(r.stdout).nftables) {
    if (item.map && item.map.table === 'cni_wasm_portmap') out[item.map.name] = item.map.elem ?? [];
  }
  return out;
}
const elementCount = (impl: Impl): number => Object.values(nftMaps(impl)).reduce((n, e) => n + e.length, 0);

const MAPPINGS: Mapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 5353, containerPort: 5353, protocol: 'udp' },
];

/** Every path the runtime's users expect to work, as [name, result]. */
function paths(impl: Impl): [string, string | null][] {
  const host = ns(impl, 'host'), out = ns(impl, 'out'), c1 = ns(impl, 'c1');
  return [
    ['outside -> uplink v4 (tcp)', get(out, UPLINK4, 8080)],
    ['outside -> uplink v6 (tcp)', get(out, UPLINK6, 8080)],
    ['host -> own uplink address v4', get(host, UPLINK4, 8080)],
    ['host -> own uplink address v6', get(host, UPLINK6, 8080)],
    ['host -> 127.0.0.1 (localhost)', get(host, '127.0.0.1', 8080)],
    ['container -> host address v4 (hairpin)', get(c1, UPLINK4, 8080)],
    ['container -> host address v6 (hairpin)', get(c1, UPLINK6, 8080)],
    ['outside -> uplink v4 (udp)', udp(out, UPLINK4, 5353)],
    ['outside -> uplink v6 (udp)', udp(out, UPLINK6, 5353)],
    ['container -> host address v4 (udp hairpin)', udp(c1, UPLINK4, 5353)],
  ];
}

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
});

test.after(() => {
  teardown();
  removeHarness(h);
});

test.after.each(() => teardown());

for (const version of ['0.4.0', '1.0.0']) {
  test(`${version}: ADD, CHECK, DEL as libcni runs them; traffic from outside, the host, localhost and the container itself, side by side with the reference`, () => {
    const seen: Record<Impl, [string, string | null][]> = { ref: [], ours: [] };
    for (const impl of (hasReference() ? ['ref', 'ours'] : ['ours']) as Impl[]) {
      const br = world(impl, version).c1;
      assert.is(get(ns(impl, 'out'), UPLINK4, 8080), null, `${impl}: nothing is published before ADD`);
      const res = ok(call(impl, 'portmap', 'ADD', portmapConf(version, br, MAPPINGS)), `${impl} portmap ADD`);
      assert.equal(res, br, `${impl}: ADD passes the prevResult through unchanged`);
      seen[impl] = paths(impl);
      // libcni's CHECK: every plugin with the cached (final) result as prevResult
      const chk = call(impl, 'portmap', 'CHECK', portmapConf(version, res, MAPPINGS));
      // the reference 1.1.1 checks its IPv4 rules in ip6tables too, so its CHECK fails on every container
      if (impl === 'ours') ok(chk, 'our portmap CHECK');
      else console.log(`  ${version} reference CHECK: ${chk.code === 0 ? 'passes' : 'fails: ' + String(chk.json?.msg).slice(0, 90)}`);
      ok(call(impl, 'portmap', 'DEL', portmapConf(version, res, MAPPINGS)), `${impl} portmap DEL`);
      assert.ok(get(ns(impl, 'out'), UPLINK4, 8080) === null, `${impl}: nothing is published after DEL`);
      ok(call(impl, 'portmap', 'DEL', portmapConf(version, res, MAPPINGS)), `${impl} portmap DEL again`);
      ok(call(impl, 'bridge', 'DEL', bridgeConf(version, impl)), `${impl} bridge DEL`);
      if (impl === 'ours') assert.is(elementCount('ours'), 0, 'DEL leaves no element');
      teardown();
    }
    for (const [name, v] of seen.ours) {
      assert.ok(v !== null, `ours: ${name} fails`);
      if (name.includes('udp')) assert.match(v!, /^echo:ping:from:/, name);
      else assert.is(v, 'hello from c1', name);
    }
    // the source the container sees: masqueraded for hairpin (the bridge's address), kept from outside
    const udpOf = (impl: Impl, n: string) => seen[impl].find(([k]) => k === n)?.[1];
    assert.match(udpOf('ours', 'outside -> uplink v4 (udp)')!, new RegExp(`from:(::ffff:)?${OUTSIDE4}$`));
    assert.match(udpOf('ours', 'container -> host address v4 (udp hairpin)')!, /from:(::ffff:)?10\.88\.0\.1$/);
    if (hasReference()) {
      // wherever the reference works, so do we (it has no IPv6 localhost either, and neither of us claims it)
      for (const [name, v] of seen.ref) {
        const o = seen.ours.find(([k]) => k === name)![1];
        if (v !== null) assert.ok(o !== null, `reference passes '${name}' but ours does not`);
      }
      console.log(`  ${version} reference: ${seen.ref.filter(([, v]) => v !== null).length}/${seen.ref.length} paths work; ours: ${seen.ours.filter(([, v]) => v !== null).length}/${seen.ours.length}`);
      for (const [name, v] of seen.ref) if (v === null) console.log(`    reference fails: ${name}`);
    }
  });
}

test('the kernel state: one element per mapping and address, hairpin elements, route_localnet on the bridge; CHECK sees a missing element', () => {
  const br = world('ours', '1.0.0').c1;
  const res = ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS)), 'ADD');
  const maps = nftMaps('ours');
  assert.is(maps.dnat4any.length, 2, 'two IPv4 forwards');
  assert.is(maps.dnat6any.length, 2, 'two IPv6 forwards');
  assert.is(maps.hairpin4.length, 1);
  assert.is(maps.hairpin6.length, 1);
  assert.is(nsExec(ns('ours', 'host'), ['cat', '/proc/sys/net/ipv4/conf/pm0/route_localnet']).stdout.trim(), '1');
  // an operator (or a crash) removes one element: CHECK must say so
  const ip4 = addrOf(br, 4);
  nsExec(ns('ours', 'host'), ['nft', 'delete', 'element', 'inet', 'cni_wasm_portmap', 'dnat4any', `{ tcp . 8080 }`]);
  const chk = call('ours', 'portmap', 'CHECK', portmapConf('1.0.0', res, MAPPINGS));
  assert.is.not(chk.code, 0, 'CHECK fails when an element is missing');
  assert.match(chk.json.msg, `tcp/8080 -> ${ip4}:80`);
  // CHECK of a v4-only container passes (the reference's fails: it checks ip6tables too)
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', res, MAPPINGS)), 'ADD again repairs it');
  ok(call('ours', 'portmap', 'CHECK', portmapConf('1.0.0', res, MAPPINGS)), 'CHECK after repair');
  // DEL without portMappings (a runtime that lost them) removes everything all the same
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', res)), 'DEL without portMappings');
  assert.is(elementCount('ours'), 0, 'no element left');
});

test('a v4-only container: ADD, CHECK and DEL pass (the reference CHECK fails on these)', () => {
  for (const role of ['host', 'c1', 'c2', 'out'] as Role[]) makeNetns(ns('ours', role));
  wireOutside('ours');
  const conf = { ...bridgeConf('1.0.0', 'ours'), ipam: { type: 'host-local', dataDir: join(h.dir, 'ipam-v4'), ranges: [[{ subnet: '10.89.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] } };
  const br = ok(call('ours', 'bridge', 'ADD', conf), 'bridge ADD');
  startServers('ours', 'c1');
  const res = ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS)), 'ADD');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), 'hello from c1');
  ok(call('ours', 'portmap', 'CHECK', portmapConf('1.0.0', res, MAPPINGS)), 'CHECK');
  if (hasReference()) {
    // the same for the reference, to record its behaviour
    for (const role of ['host', 'c1', 'c2', 'out'] as Role[]) makeNetns(ns('ref', role));
    const rconf = { ...conf, ipam: { ...conf.ipam, dataDir: join(h.dir, 'ipam-v4-ref') } };
    const rbr = ok(call('ref', 'bridge', 'ADD', rconf), 'reference bridge ADD');
    const rres = ok(call('ref', 'portmap', 'ADD', portmapConf('1.0.0', rbr, MAPPINGS)), 'reference ADD');
    const rchk = call('ref', 'portmap', 'CHECK', portmapConf('1.0.0', rres, MAPPINGS));
    console.log(`  reference CHECK on a v4-only container: ${rchk.code === 0 ? 'passes' : 'fails: ' + (rchk.json?.msg ?? rchk.stdout).trim()}`);
  }
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', res, MAPPINGS)), 'DEL');
  assert.is(elementCount('ours'), 0);
});

test('UDP: a conntrack entry made before ADD (same source port) is flushed, so the flow reaches the container at once', () => {
  const br = world('ours', '1.0.0').c1;
  const out = ns('ours', 'out');
  // conntrack runs in a netns once something needs it: publishing a TCP port does
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [MAPPINGS[0]])), 'ADD tcp only');
  assert.is(udp(out, UPLINK4, 5353, 40000), null, 'nothing listens on the host');
  const entries = () => nsExec(ns('ours', 'host'), ['conntrack', '-L', '-p', 'udp', '--orig-port-dst', '5353'], { check: false }).stdout.trim();
  assert.match(entries(), /sport=40000/, 'the stale entry is there');
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS)), 'ADD tcp and udp');
  assert.not.match(entries(), /sport=40000 dport=5353 \[UNREPLIED\] src=203\.0\.113\.1 /, 'the un-NATed entry is gone');
  assert.match(udp(out, UPLINK4, 5353, 40000) ?? '', /^echo:ping:from:/, 'the same flow now reaches the container');
  // the flush is part of the audited portmap.add that published the UDP port
  assert.ok(readAudit(h).some((a) => a.call === 'portmap.add' && a.outcome === 'ok' && JSON.stringify(a.args).includes('"udp"')), 'the add is audited');
});

test('markMasqBit and externalSetMarkChain: hairpin marks with the configured bit, or jumps to the operator\'s chain', () => {
  const br = world('ours', '1.0.0').c1;
  const host = ns('ours', 'host'), c1 = ns('ours', 'c1');
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [MAPPINGS[0]], { markMasqBit: 5 })), 'ADD with markMasqBit 5');
  const table = () => nsExec(host, ['nft', 'list', 'table', 'inet', 'cni_wasm_portmap']).stdout;
  assert.match(table(), /chain masq_m5 \{[^}]*meta mark & 0x00000020 == 0x00000020 masquerade/);
  assert.is(get(c1, UPLINK4, 8080), 'hello from c1', 'hairpin with bit 5');
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', br)), 'DEL');
  // externalSetMarkChain: the operator's chain in our table marks, the operator's own rule masquerades
  const ext = { externalSetMarkChain: 'KUBE-MARK-MASQ' };
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [MAPPINGS[0]], ext)), 'ADD with externalSetMarkChain');
  assert.match(table(), /ip saddr 10\.88\.0\.0\/24 jump KUBE-MARK-MASQ/);
  assert.is(get(c1, UPLINK4, 8080), null, 'hairpin fails until the operator marks and masquerades');
  nsExec(host, ['nft', 'add', 'rule', 'inet', 'cni_wasm_portmap', 'KUBE-MARK-MASQ', 'meta', 'mark', 'set', 'meta', 'mark', 'or', '0x4000']);
  nsExec(host, ['nft', 'add', 'table', 'ip', 'op']);
  nsExec(host, ['nft', 'add', 'chain', 'ip', 'op', 'post', '{ type nat hook postrouting priority 100; }']);
  nsExec(host, ['nft', 'add', 'rule', 'ip', 'op', 'post', 'meta', 'mark', 'and', '0x4000', '==', '0x4000', 'masquerade']);
  assert.is(get(c1, UPLINK4, 8080), 'hello from c1', 'hairpin through the operator\'s mark');
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', br)), 'DEL');
  assert.match(table(), /chain KUBE-MARK-MASQ/, 'the operator\'s chain stays');
  const bad = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [MAPPINGS[0]], { externalSetMarkChain: 'hostports' }));
  assert.match(bad.json?.msg ?? '', /external-set-mark-chain 'hostports'/);
  assert.is(elementCount('ours'), 0);
});

test('hostIP limits a mapping to that address; another local address does not forward', () => {
  const br = world('ours', '1.0.0').c1;
  nsExec(ns('ours', 'host'), ['ip', 'addr', 'add', '203.0.113.10/24', 'dev', 'up0']);
  const m: Mapping[] = [{ hostPort: 8081, containerPort: 80, protocol: 'tcp', hostIP: '203.0.113.10' }];
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, m)), 'ADD');
  assert.is(get(ns('ours', 'out'), '203.0.113.10', 8081), 'hello from c1');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8081), null, 'not on the other address');
  const maps = nftMaps('ours');
  assert.is(maps.dnat4.length, 1);
  assert.is(maps.dnat6.length + maps.dnat6any.length, 0, 'an IPv4 hostIP is not forwarded for the IPv6 address');
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', br, m)), 'DEL');
  assert.is(elementCount('ours'), 0);
});

test('only traffic to a local address is forwarded (not traffic routed through the host to that port)', () => {
  const br = world('ours', '1.0.0').c1;
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS)), 'ADD');
  // a route on the outside that sends 198.51.100.7 through the host: not local there, so no DNAT
  nsExec(ns('ours', 'out'), ['ip', 'route', 'add', '198.51.100.7/32', 'via', UPLINK4]);
  assert.is(get(ns('ours', 'out'), '198.51.100.7', 8080), null);
});

test('conditionsV4/V6 -s, -d, ip6 saddr: only matching traffic is forwarded; unsupported conditions are refused naming the key', () => {
  const br = world('ours', '1.0.0').c1;
  const only = (src: string) => portmapConf('1.0.0', br, [MAPPINGS[0]], { conditionsV4: ['-s', src] });
  ok(call('ours', 'portmap', 'ADD', only('198.51.100.0/24')), 'ADD with a source that is not the outside');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), null, 'other sources are not forwarded');
  assert.is(get(ns('ours', 'out'), UPLINK6, 8080), 'hello from c1', 'IPv6 has no condition');
  ok(call('ours', 'portmap', 'ADD', only(`${OUTSIDE4}/32`)), 'ADD again with the outside as source');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), 'hello from c1');
  assert.is(nftMaps('ours').dnat4c.length, 1, 'the repeated ADD replaced the first');
  ok(call('ours', 'portmap', 'CHECK', only(`${OUTSIDE4}/32`)), 'CHECK finds the interval element');
  const wrong = call('ours', 'portmap', 'CHECK', only('198.51.100.0/24'));
  assert.is.not(wrong.code, 0, 'CHECK with other conditions than the ADD fails');
  assert.match(wrong.json.msg, /from 198\.51\.100\.0\/24 to 0\.0\.0\.0\/0.*no element in map dnat4c/);
  // -d, and conditionsV6 in nft's words
  nsExec(ns('ours', 'host'), ['ip', 'addr', 'add', '203.0.113.10/24', 'dev', 'up0']);
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [MAPPINGS[0]], { conditionsV4: ['-d', UPLINK4], conditionsV6: ['ip6 saddr { 2001:db8:ff::2 }'] })), 'ADD with -d and ip6 saddr');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), 'hello from c1', 'to the -d address');
  assert.is(get(ns('ours', 'out'), '203.0.113.10', 8080), null, 'not to another local address');
  assert.is(get(ns('ours', 'out'), UPLINK6, 8080), 'hello from c1', 'from the allowed IPv6 source');
  assert.is(nftMaps('ours').dnat6c.length, 1);
  const bad = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS, { conditionsV4: ['-i', 'eth0'] }));
  assert.is(bad.code, 1);
  assert.is(bad.json.code, 7);
  assert.match(bad.json.msg, /conditionsV4.*-i/);
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', br)), 'DEL');
  assert.is(elementCount('ours'), 0);
});

test('bad mappings are CNI errors naming the setting, and leave nothing behind', () => {
  const br = world('ours', '1.0.0').c1;
  const cases: [Mapping | any, RegExp][] = [
    [{ hostPort: 0, containerPort: 80, protocol: 'tcp' }, /Invalid host port number: 0/],
    [{ hostPort: 70000, containerPort: 80, protocol: 'tcp' }, /portMappings\[0\]\.hostPort must be from 1 to 65535/],
    [{ hostPort: 8080, containerPort: -1, protocol: 'tcp' }, /Invalid container port number/],
    [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }, /protocol "icmp" is not tcp, udp or sctp/],
    [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: 'nope' }, /hostIP "nope" is not an IP address/],
  ];
  for (const [m, msg] of cases) {
    const r = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, [m]));
    assert.is(r.code, 1, JSON.stringify(m));
    assert.is(r.json.code, 7, JSON.stringify(m));
    assert.match(r.json.msg, msg);
    assert.not.match(r.stdout, /\n\s+at /, 'no stack trace');
  }
  // a v6 hostIP for a v4-only prevResult
  const v4only = { ...br, ips: br.ips.filter((i: any) => !i.address.includes(':')) };
  const r = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', v4only, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '2001:db8::1' }]));
  assert.is(r.json.code, 7);
  assert.match(r.json.msg, /hostIP 2001:db8::1 is IPv6, but the container has no IPv6 address/);
  const both = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', br, MAPPINGS, { markMasqBit: 5, externalSetMarkChain: 'X' }));
  assert.match(both.json.msg, /Cannot specify externalSetMarkChain and markMasqBit/);
  const nochain = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', null, MAPPINGS));
  assert.match(nochain.json.msg, /must be called as chained plugin/);
  assert.is(elementCount('ours'), 0, 'nothing added');
});

test('a host port forwarded to one container is refused for another (EBUSY), not silently taken over', () => {
  const r = world('ours', '1.0.0', ['c1', 'c2']);
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.0.0', r.c1, [MAPPINGS[0]]), 'c1'), 'c1 ADD');
  const two = call('ours', 'portmap', 'ADD', portmapConf('1.0.0', r.c2, [MAPPINGS[0]]), 'c2');
  assert.is(two.code, 1);
  assert.match(two.json.msg, /tcp\/8080 is already forwarded to another container/, two.stdout);
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), 'hello from c1', 'c1 keeps its port');
  // c2's failed ADD and its DEL leave c1's forward alone
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', r.c2, [MAPPINGS[0]]), 'c2'), 'c2 DEL');
  assert.is(get(ns('ours', 'out'), UPLINK4, 8080), 'hello from c1');
  ok(call('ours', 'portmap', 'DEL', portmapConf('1.0.0', r.c1, [MAPPINGS[0]]), 'c1'), 'c1 DEL');
  assert.is(elementCount('ours'), 0);
});

test('a port range as podman expands it (-p 9000-9999:9000-9999: one mapping per port), removed by DEL without portMappings', () => {
  const br = world('ours', '0.4.0').c1;
  const range: Mapping[] = [];
  for (let p = 9000; p < 10000; p++) range.push({ hostPort: p, containerPort: 80, protocol: 'tcp' });
  const t0 = Date.now();
  ok(call('ours', 'portmap', 'ADD', portmapConf('0.4.0', br, range)), 'ADD');
  const t1 = Date.now();
  assert.is(get(ns('ours', 'out'), UPLINK4, 9042), 'hello from c1');
  assert.is(get(ns('ours', 'out'), UPLINK6, 9999), 'hello from c1');
  assert.is(nftMaps('ours').dnat4any.length, 1000);
  assert.is(nftMaps('ours').dnat6any.length, 1000);
  const t2 = Date.now();
  ok(call('ours', 'portmap', 'DEL', portmapConf('0.4.0', br)), 'DEL without portMappings');
  console.log(`  1000-port range, dual-stack: ADD ${t1 - t0} ms, DEL ${Date.now() - t2} ms`);
  assert.is(elementCount('ours'), 0);
});

test('GC: the host sweep removes the forwards of an attachment the runtime no longer lists', () => {
  const br = world('ours', '1.1.0').c1;
  ok(call('ours', 'portmap', 'ADD', portmapConf('1.1.0', br, MAPPINGS)), 'ADD');
  assert.ok(elementCount('ours') > 0);
  ok(call('ours', 'portmap', 'GC', { cniVersion: '1.1.0', name: 'pmnet', type: 'portmap', 'cni.dev/valid-attachments': [] }), 'GC');
  assert.is(elementCount('ours'), 0, 'GC swept the forwards and hairpins');
  assert.ok(readAudit(h).some((a) => a.call === 'sweep.portmap.del' && a.command === 'GC' && a.outcome === 'ok'), 'the sweep is audited');
});

test('hostile: a plugin naming a container address that is not its attachment\'s, or a host port the runtime did not ask for, is denied by the host', () => {
  const br = world('ours', '1.0.0').c1;
  const built = join(h.dir, 'built');
  buildFixtures(built, ['portmap-hostile']);
  installThirdParty(h, [{ type: 'portmap-hostile', component: componentPath(built, 'portmap-hostile') }]);
  const own = addrOf(br, 4);
  const r = call('ours', 'portmap-hostile', 'ADD', portmapConf('1.0.0', br, MAPPINGS, { type: 'portmap-hostile', target: '203.0.113.2', own }));
  assert.is(r.json?.code, 150, r.stdout);
  const report = JSON.parse(r.json.details) as { call: string; code: string; message: string }[];
  const by = (c: string) => report.find((x) => x.call === c)!;
  assert.is(by('add-foreign').code, 'EDENIED');
  assert.match(by('add-foreign').message, /203\.0\.113\.2 is not this attachment's/);
  assert.is(by('del-foreign').code, 'EDENIED');
  assert.is(by('check-foreign').code, 'EDENIED');
  assert.is(by('add-unasked-port').code, 'EDENIED');
  assert.match(by('add-unasked-port').message, /runtime's portMappings do not ask for tcp\/2222/);
  assert.is(by('add-reserved-chain').code, 'EINVAL');
  assert.is(elementCount('ours'), 0, 'nothing reached the kernel');
  const denied = readAudit(h).filter((a) => a.plugin === 'portmap-hostile' && a.verdict === 'deny');
  assert.ok(denied.length >= 3, 'the refusals are audited');
});

test.run();
