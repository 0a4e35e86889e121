// Our bridge against the reference bridge (Debian containernetworking-plugins
// 1.1.1), side by side. Needs root. Prefix: bp-.
//
// Each implementation gets its own throwaway world: a netns that plays the
// host (the plugin runs inside it), two container netns and an "outside"
// netns wired to the host by a veth (the uplink). Both run the same config
// with IPAM state in separate dirs, so the same allocation state gives the
// same addresses; then results, kernel state (seen with iproute2/nft run in
// the namespaces), traffic and cleanup are compared.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, reference, removeHarness, writePolicy,
} from '../helpers/cni.js';
import { cleanupAll, deleteNetns, ipJson, makeNetns, nsExec } from '../helpers/netns.js';

const P = 'bp-';
type Impl = 'ref' | 'ours';
const IMPLS: Impl[] = ['ref', 'ours'];
type Role = 'host' | 'c1' | 'c2' | 'out';
const ns = (impl: Impl, role: Role): string => `${P}${impl === 'ref' ? 'r' : 'o'}-${role}`;
const CID: Record<string, string> = { c1: 'bp-container-1', c2: 'bp-container-2' };

let h: Harness;
/** our host-local when it is built, else the reference one run as an allowed external binary */
let ourIpamPath: string;
let ourHostLocal = false;

const UPLINK4 = '203.0.113.1', OUTSIDE4 = '203.0.113.2';
const UPLINK6 = '2001:db8:ff::1', OUTSIDE6 = '2001:db8:ff::2';

function dataDir(impl: Impl): string {
  return join(h.dir, `ipam-${impl}`);
}

/** The config as one implementation gets it: its own IPAM state dir. */
function forImpl(conf: any, impl: Impl): any {
  const c = JSON.parse(JSON.stringify(conf));
  if (c.ipam && c.ipam.type === 'host-local') c.ipam.dataDir = dataDir(impl);
  return c;
}

function run(impl: Impl, command: CniCall['command'], conf: any, c: 'c1' | 'c2' = 'c1', over: Partial<CniCall> = {}): CniReply {
  const call: CniCall = {
    command, hostNs: ns(impl, 'host'), netns: ns(impl, c), containerId: CID[c], ifname: 'eth0',
    config: typeof conf === 'string' ? conf : forImpl(conf, impl), ...over,
  };
  return impl === 'ref' ? reference('bridge', { path: REFERENCE_BIN, ...call }) : ours(h, 'bridge', { path: ourIpamPath, ...call });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** Both implementations, the same call; returns [ref, ours]. */
function both(command: CniCall['command'], conf: any, c: 'c1' | 'c2' = 'c1', over: Partial<CniCall> = {}): [CniReply, CniReply] {
  return [run('ref', command, conf, c, over), run('ours', command, conf, c, over)];
}

function bothOk(command: CniCall['command'], conf: any, c: 'c1' | 'c2' = 'c1', over: Partial<CniCall> = {}): [any, any] {
  const [r, o] = both(command, conf, c, over);
  return [ok(r, `reference ${command}`), ok(o, `our ${command}`)];
}

/** Fresh namespaces and state for both implementations. */
function fresh(): void {
  for (const impl of IMPLS) for (const role of ['host', 'c1', 'c2', 'out'] as Role[]) makeNetns(ns(impl, role));
  for (const impl of IMPLS) rmSync(dataDir(impl), { recursive: true, force: true });
  rmSync(h.stateDir, { recursive: true, force: true });
}

/** Uplink veth host<->outside with addresses on both ends. */
function wireOutside(impl: Impl): void {
  const host = ns(impl, 'host'), out = ns(impl, 'out');
  nsExec(host, ['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'out0', 'netns', out]);
  nsExec(host, ['ip', 'addr', 'add', `${UPLINK4}/24`, 'dev', 'up0']);
  nsExec(host, ['ip', 'addr', 'add', `${UPLINK6}/64`, 'dev', 'up0', 'nodad']);
  nsExec(host, ['ip', 'link', 'set', 'up0', 'up']);
  nsExec(out, ['ip', 'addr', 'add', `${OUTSIDE4}/24`, 'dev', 'out0']);
  nsExec(out, ['ip', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'out0', 'nodad']);
  nsExec(out, ['ip', 'link', 'set', 'out0', 'up']);
}

// ---- normalising what differs by nature (random MACs and veth names) ----

function normResult(doc: any): any {
  const d = JSON.parse(JSON.stringify(doc));
  // The reference prints an empty "dns" for 1.0.0; our host omits it (1.x allows both).
  if (d.dns && Object.keys(d.dns).length === 0) delete d.dns;
  for (const i of d.interfaces ?? []) {
    if (i.sandbox) i.sandbox = i.sandbox.replace(/\/bp-[ro]-/, '/bp-X-');
    if (/^veth[0-9a-f]{8}$/.test(i.name)) i.name = 'vethXXXXXXXX';
    if (i.mac) {
      assert.match(i.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      i.mac = 'MAC';
    }
  }
  return d;
}

const sortJson = (xs: any[]): any[] => xs.map((x) => JSON.stringify(x)).sort().map((s) => JSON.parse(s));

/** Addresses of a link: family, address, prefix, scope, broadcast and DAD flags; link-local values masked. */
function addrs(netns: string, dev: string, opts: { dadState?: boolean } = {}): any[] {
  const info = ipJson<any[]>(netns, ['addr', 'show', 'dev', dev])[0]?.addr_info ?? [];
  return sortJson(info.map((a: any) => ({
    family: a.family, local: a.scope === 'link' ? 'LINK-LOCAL' : a.local, prefixlen: a.prefixlen, scope: a.scope,
    broadcast: a.broadcast, nodad: a.nodad,
    // a link-local address's DAD is the kernel's own (neither plugin waits for it): whether it is still
    // tentative says only how soon after the ADD the state was read (in resident mode: very soon)
    ...(opts.dadState === false ? {} : { tentative: a.scope === 'link' ? undefined : a.tentative, dadfailed: a.dadfailed }),
  })));
}

function routesOf(netns: string): any[] {
  const all = [...ipJson<any[]>(netns, ['-4', 'route', 'show', 'table', 'main']), ...ipJson<any[]>(netns, ['-6', 'route', 'show', 'table', 'main'])];
  return sortJson(all.map((r) => ({
    dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: r.protocol, scope: r.scope, metric: r.metric, prefsrc: r.prefsrc,
    flags: r.flags?.length ? r.flags : undefined, pref: r.pref,
  })));
}

function sysctl(netns: string, key: string): string {
  return nsExec(netns, ['cat', `/proc/sys/${key}`], { check: false }).stdout.trim();
}

function hostVeths(impl: Impl): any[] {
  return ipJson<any[]>(ns(impl, 'host'), ['-d', 'link', 'show', 'type', 'veth']).filter((l) => l.ifname !== 'up0');
}

/** Bridge port flags from `bridge -j link`, by port order. */
function bridgePorts(impl: Impl): any[] {
  const out = nsExec(ns(impl, 'host'), ['bridge', '-j', '-d', 'link', 'show']).stdout.trim();
  return (out ? JSON.parse(out) : []).map((p: any) => ({
    master: p.master, mtu: p.mtu, state: p.state, hairpin: p.hairpin, isolated: p.isolated, learning: p.learning, flood: p.flood,
  }));
}

/** The kernel state an ADD leaves that both implementations must agree on. */
function kernelState(impl: Impl, bridge: string, containers: ('c1' | 'c2')[]): any {
  const host = ns(impl, 'host');
  const br = ipJson<any[]>(host, ['-d', 'link', 'show', 'dev', bridge])[0];
  const veths = hostVeths(impl);
  return {
    bridge: {
      mtu: br.mtu, up: br.flags.includes('UP'), promiscuity: br.promiscuity, qlen: br.txqlen, kind: br.linkinfo?.info_kind,
      addrs: addrs(host, bridge, { dadState: false }), accept_ra: sysctl(host, `net/ipv6/conf/${bridge}/accept_ra`),
    },
    veths: sortJson(veths.map((v) => ({
      mtu: v.mtu, qlen: v.txqlen, master: v.master, up: v.flags.includes('UP'), accept_ra: sysctl(host, `net/ipv6/conf/${v.ifname}/accept_ra`),
    }))),
    ports: sortJson(bridgePorts(impl)),
    forwarding: { v4: sysctl(host, 'net/ipv4/ip_forward'), v6: sysctl(host, 'net/ipv6/conf/all/forwarding') },
    containers: containers.map((c) => {
      const cn = ns(impl, c);
      const l = ipJson<any[]>(cn, ['-d', 'link', 'show', 'dev', 'eth0'])[0];
      return {
        mtu: l.mtu, qlen: l.txqlen, up: l.flags.includes('UP'), kind: l.linkinfo?.info_kind, addrs: addrs(cn, 'eth0'), routes: routesOf(cn),
        accept_dad: sysctl(cn, 'net/ipv6/conf/eth0/accept_dad'), arp_notify: sysctl(cn, 'net/ipv4/conf/eth0/arp_notify'),
        lo_up: ipJson<any[]>(cn, ['link', 'show', 'dev', 'lo'])[0].flags.includes('UP'),
      };
    }),
  };
}

/** host-local lease files (the IPs), without lock and last_reserved_ip.* */
function leases(impl: Impl, network: string): string[] {
  const d = join(dataDir(impl), network);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip') && !f.startsWith('.')).sort();
}

/** Addresses in our masquerade map (elements are [address, verdict] pairs). */
function masqSet(impl: Impl, set: 'masq4' | 'masq6'): string[] {
  const r = nsExec(ns(impl, 'host'), ['nft', '-j', 'list', 'map', 'inet', 'cni_wasm_nat', set], { check: false });
  if (r.status !== 0) return [];
  const doc = JSON.parse(r.stdout).nftables as any[];
  const m = doc.find((x) => x.map)?.map;
  return (m?.elem ?? []).map((e: any) => (Array.isArray(e) ? e[0] : e)).map((e: any) => (typeof e === 'string' ? e : JSON.stringify(e))).sort();
}

/** iptables nat rules the reference made (its CNI-* chains). */
function refMasqRules(): string[] {
  const out = [
    nsExec(ns('ref', 'host'), ['iptables-save', '-t', 'nat'], { check: false }).stdout,
    nsExec(ns('ref', 'host'), ['ip6tables-save', '-t', 'nat'], { check: false }).stdout,
  ].join('\n');
  return out.split('\n').filter((l) => l.startsWith('-A') && l.includes('CNI-'));
}

function ping(from: string, to: string, tries = 3): boolean {
  for (let i = 0; i < tries; i++) {
    if (nsExec(from, ['ping', '-c', '1', '-W', '2', to], { check: false }).status === 0) return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends UDP from a container to the outside netns and returns the source
 * address the outside saw (null when nothing arrived).
 */
async function udpSourceSeen(impl: Impl, c: 'c1' | 'c2', family: 4 | 6): Promise<string | null> {
  const dst = family === 4 ? OUTSIDE4 : OUTSIDE6;
  const listener = spawn('ip', ['netns', 'exec', ns(impl, 'out'), process.execPath, '-e', `
    const s = require('dgram').createSocket('udp${family}');
    s.on('message', (m, r) => { process.stdout.write(r.address + '\\n'); process.exit(0); });
    s.bind(9999, '${dst}');
    setTimeout(() => process.exit(2), 10000);`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  listener.stdout.on('data', (d) => { out += d; });
  const done = new Promise<number>((r) => listener.on('exit', (code) => r(code ?? -1)));
  let exited = false;
  void done.then(() => { exited = true; });
  // Retries cover the listener starting and, for IPv6, the bridge's gateway
  // address finishing DAD (the reference leaves it on, as do we).
  for (let i = 0; i < 30 && !exited; i++) {
    await sleep(300);
    spawnSync('ip', ['netns', 'exec', ns(impl, c), process.execPath, '-e',
      `const s = require('dgram').createSocket('udp${family}'); s.send('x', 9999, '${dst}', () => s.close());`]);
  }
  const code = await done;
  return code === 0 ? out.trim() : null;
}

// ---- configs ----

const DUAL = {
  cniVersion: '1.0.0', name: 'bpnet', type: 'bridge', bridge: 'bpbr0', isGateway: true, ipMasq: true,
  ipam: {
    type: 'host-local',
    ranges: [[{ subnet: '10.99.0.0/24' }], [{ subnet: 'fd99:1::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  },
  dns: { nameservers: ['10.99.0.1'], search: ['example.test'] },
};

// ---- hooks ----

test.before(() => {
  cleanupAll(P);
  h = makeHarness('bp-');
  ourHostLocal = existsSync(join(h.bin, 'host-local'));
  if (ourHostLocal) {
    ourIpamPath = h.bin;
  } else {
    // Until our host-local is built: the reference one as an external IPAM binary.
    writePolicy(h, { allowExec: ['host-local'] });
    ourIpamPath = `${h.bin}:${REFERENCE_BIN}`;
    console.log('  (our host-local is not built: using the reference host-local as external IPAM)');
  }
  mkdirSync(h.stateDir, { recursive: true });
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

// ---- tests ----

test('the reference plugins are installed', () => {
  assert.ok(hasReference(), `${REFERENCE_BIN}/bridge is missing: apt-get install containernetworking-plugins`);
});

test('dual-stack gateway + ipMasq: same results, container state, bridge and sysctls', () => {
  fresh();
  for (const impl of IMPLS) wireOutside(impl);
  for (const c of ['c1', 'c2'] as const) {
    const [r, o] = bothOk('ADD', DUAL, c);
    assert.equal(normResult(o), normResult(r), `ADD ${c} result`);
    // the container interface's MAC in the result is the real one
    const mac = ipJson<any[]>(ns('ours', c), ['link', 'show', 'dev', 'eth0'])[0].address;
    assert.is(o.interfaces[2].mac, mac);
    assert.is(o.interfaces[2].sandbox, `/run/netns/${ns('ours', c)}`);
    assert.is(o.interfaces[0].mac, ipJson<any[]>(ns('ours', 'host'), ['link', 'show', 'dev', 'bpbr0'])[0].address);
    assert.is(o.interfaces[1].name, hostVeths('ours').map((v) => v.ifname).find((n) => n === o.interfaces[1].name));
  }
  assert.equal(kernelState('ours', 'bpbr0', ['c1', 'c2']), kernelState('ref', 'bpbr0', ['c1', 'c2']));
  assert.equal(leases('ours', 'bpnet'), leases('ref', 'bpnet'));
  assert.equal(leases('ours', 'bpnet'), ['10.99.0.2', '10.99.0.3', 'fd99:1::2', 'fd99:1::3']);
  // one masquerade element per container address
  assert.equal(masqSet('ours', 'masq4'), ['10.99.0.2', '10.99.0.3']);
  assert.equal(masqSet('ours', 'masq6'), ['fd99:1::2', 'fd99:1::3']);
  assert.is(refMasqRules().length > 0, true);
});

test('containers reach each other over IPv4 and IPv6', () => {
  for (const impl of IMPLS) {
    assert.ok(ping(ns(impl, 'c1'), '10.99.0.3'), `${impl}: c1 -> c2 over IPv4`);
    assert.ok(ping(ns(impl, 'c2'), '10.99.0.2'), `${impl}: c2 -> c1 over IPv4`);
    assert.ok(ping(ns(impl, 'c1'), 'fd99:1::3'), `${impl}: c1 -> c2 over IPv6`);
    assert.ok(ping(ns(impl, 'c1'), '10.99.0.1'), `${impl}: c1 -> gateway`);
  }
});

test('masquerade: the outside sees the host uplink address, for IPv4 and IPv6', async () => {
  for (const impl of IMPLS) {
    assert.is(await udpSourceSeen(impl, 'c1', 4), UPLINK4, `${impl}: IPv4 source seen outside`);
  }
  for (const impl of IMPLS) {
    assert.is(await udpSourceSeen(impl, 'c2', 6), UPLINK6, `${impl}: IPv6 source seen outside`);
  }
});

test('CHECK after ADD passes; a missing route or address fails it', () => {
  const ourPrev = JSON.parse(run('ours', 'ADD', { ...DUAL }, 'c1', { containerId: 'bp-check', ifname: 'eth1' }).stdout);
  assert.ok(ourPrev.ips, 'ADD eth1');
  const refPrev = JSON.parse(run('ref', 'ADD', { ...DUAL }, 'c1', { containerId: 'bp-check', ifname: 'eth1' }).stdout);
  const o = run('ours', 'CHECK', { ...DUAL, prevResult: ourPrev }, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  const r = run('ref', 'CHECK', { ...DUAL, prevResult: refPrev }, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  assert.is(r.code, 0, `reference CHECK: ${r.stdout}`);
  assert.is(o.code, 0, `our CHECK: ${o.stdout}`);
  // break it the same way in both: the container loses its address
  for (const impl of IMPLS) nsExec(ns(impl, 'c1'), ['ip', 'addr', 'del', ourPrev.ips[0].address, 'dev', 'eth1']);
  const o2 = run('ours', 'CHECK', { ...DUAL, prevResult: ourPrev }, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  const r2 = run('ref', 'CHECK', { ...DUAL, prevResult: refPrev }, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  assert.is.not(r2.code, 0);
  assert.is.not(o2.code, 0);
  assert.match(o2.json.msg, /Failed to match addr 10\.99\.0\.4\/24 on interface eth1/);
  assert.match(r2.json.msg, /Failed to match addr/);
  // a prevResult whose bridge MAC is wrong
  const bad = JSON.parse(JSON.stringify(ourPrev));
  bad.interfaces[0].mac = '02:00:00:00:00:01';
  const o3 = run('ours', 'CHECK', { ...DUAL, prevResult: bad }, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  assert.match(o3.json.msg, /Bridge interface bpbr0 Mac doesn't match: 02:00:00:00:00:01/);
  // and no prevResult at all
  const o4 = run('ours', 'CHECK', DUAL, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  assert.is(o4.json.msg, 'Required prevResult missing');
  bothOk('DEL', DUAL, 'c1', { containerId: 'bp-check', ifname: 'eth1' });
  // The address was gone, so the reference's DEL could not find what to
  // unmasquerade and leaks its rules; our ledger knew.
  assert.ok(refMasqRules().some((l) => l.includes('bp-check')), 'the reference leaks here (known)');
  assert.not.ok(masqSet('ours', 'masq4').includes('10.99.0.4'));
  assert.equal(leases('ours', 'bpnet'), leases('ref', 'bpnet'));
});

test('DEL removes the veth, the masquerade and the leases, like the reference', () => {
  for (const c of ['c1', 'c2'] as const) bothOk('DEL', DUAL, c);
  for (const impl of IMPLS) {
    assert.equal(hostVeths(impl), [], `${impl}: no veth left`);
    for (const c of ['c1', 'c2'] as const) {
      assert.equal(ipJson<any[]>(ns(impl, c), ['link', 'show']).map((l) => l.ifname), ['lo'], `${impl}: ${c} has only lo`);
    }
    assert.equal(leases(impl, 'bpnet'), [], `${impl}: leases released`);
    // the bridge and its gateway addresses stay, as the reference leaves them
    assert.ok(ipJson<any[]>(ns(impl, 'host'), ['link', 'show', 'dev', 'bpbr0']).length === 1);
  }
  assert.equal(masqSet('ours', 'masq4'), []);
  assert.equal(masqSet('ours', 'masq6'), []);
  assert.equal(refMasqRules().filter((l) => !l.includes('bp-check')), []);
  assert.equal(kernelState('ours', 'bpbr0', []), kernelState('ref', 'bpbr0', []));
  // ours releases the lease while the kernel finishes deleting the veth
  const del = readAudit(h).filter((a) => a.command === 'DEL' && a.containerId === CID.c1 && a.outcome !== 'pending')
    .map((a) => `${a.plugin} ${a.call} ${a.outcome}`);
  const at = (x: string) => del.indexOf(x);
  assert.ok(at('bridge links.begin-remove ok') >= 0, del.join('\n'));
  assert.ok(at('bridge links.begin-remove ok') < at('host-local invoke.del ok'), del.join('\n'));
  assert.ok(at('host-local invoke.del ok') < at('bridge links.finish-remove ok'), del.join('\n'));
});

test('DEL is idempotent: twice, without a netns, and after the netns is gone', () => {
  // DEL of what was already deleted
  const [r1, o1] = both('DEL', DUAL, 'c1');
  assert.is(r1.code, 0, r1.stdout);
  assert.is(o1.code, 0, o1.stdout);
  // no CNI_NETNS at all
  const [r2, o2] = both('DEL', DUAL, 'c1', { netns: '' });
  assert.is(r2.code, 0, r2.stdout);
  assert.is(o2.code, 0, o2.stdout);
  // the runtime deleted the netns before DEL
  bothOk('ADD', DUAL, 'c2');
  for (const impl of IMPLS) deleteNetns(ns(impl, 'c2'));
  const [r3, o3] = both('DEL', DUAL, 'c2');
  assert.is(r3.code, 0, r3.stdout);
  assert.is(o3.code, 0, o3.stdout);
  for (const impl of IMPLS) {
    assert.equal(leases(impl, 'bpnet'), [], `${impl}: lease released`);
    assert.equal(hostVeths(impl), [], `${impl}: the veth went with the netns`);
  }
  // The reference cannot find the addresses any more and leaves its
  // masquerade rules behind; the ledger lets us remove ours.
  assert.equal(masqSet('ours', 'masq4'), []);
  assert.equal(masqSet('ours', 'masq6'), []);
  assert.ok(refMasqRules().length > 0, 'the reference leaks its rules here (known)');
  const [r4, o4] = both('DEL', DUAL, 'c2');
  assert.is(r4.code, 0);
  assert.is(o4.code, 0);
  for (const impl of IMPLS) makeNetns(ns(impl, 'c2'));
});

test('ADD twice with the same ifname fails like the reference and leaves the first alone', () => {
  fresh();
  const [r0, o0] = bothOk('ADD', DUAL, 'c1');
  const before = { ref: kernelState('ref', 'bpbr0', ['c1']), ours: kernelState('ours', 'bpbr0', ['c1']) };
  const [r, o] = both('ADD', DUAL, 'c1', { containerId: 'bp-other' });
  assert.is(r.json.msg, 'container veth name provided (eth0) already exists');
  assert.is(o.json.msg, r.json.msg);
  assert.is(o.json.code, r.json.code);
  assert.equal(kernelState('ref', 'bpbr0', ['c1']), before.ref);
  assert.equal(kernelState('ours', 'bpbr0', ['c1']), before.ours);
  assert.equal(leases('ours', 'bpnet'), leases('ref', 'bpnet'));
  assert.equal(masqSet('ours', 'masq4'), [r0.ips[0].address.split('/')[0]]);
  assert.is(o0.ips[0].address, r0.ips[0].address);
  bothOk('DEL', DUAL, 'c1');
});

/** Everything an ADD could have left in our world. */
function ourFootprint(): any {
  return {
    hostLinks: ipJson<any[]>(ns('ours', 'host'), ['link', 'show']).map((l) => l.ifname).sort(),
    c1Links: ipJson<any[]>(ns('ours', 'c1'), ['link', 'show']).map((l) => l.ifname),
    leases: leases('ours', 'bpnet'),
    masq: masqSet('ours', 'masq4'),
  };
}

test('bad configs: the right codes, clear messages, and nothing created', () => {
  fresh();
  const empty = ourFootprint();
  assert.equal(empty.hostLinks, ['lo']);
  const cases: { name: string; conf: any; ref: number; ours: number; msg: RegExp }[] = [
    { name: 'bad JSON', conf: '{"cniVersion": "1.0.0", "name": "bpnet", "type": "bridge",', ref: 6, ours: 6, msg: /JSON|json|unexpected|end/i },
    { name: 'mtu of the wrong type', conf: { ...DUAL, mtu: '1500' }, ref: 999, ours: 7, msg: /"mtu" must be a whole number, not a string/ },
    { name: 'fractional mtu', conf: { ...DUAL, mtu: 1400.5 }, ref: 999, ours: 7, msg: /"mtu" must be a whole number from 0 to 65535, not 1400.5/ },
    { name: 'isGateway of the wrong type', conf: { ...DUAL, isGateway: 'yes' }, ref: 999, ours: 7, msg: /"isGateway" must be true or false, not a string/ },
    { name: 'VLAN out of range', conf: { ...DUAL, vlan: 5000 }, ref: 999, ours: 7, msg: /^invalid VLAN ID 5000 \(must be between 0 and 4094\)$/ },
    { name: 'hairpin with promisc', conf: { ...DUAL, hairpinMode: true, promiscMode: true }, ref: 999, ours: 999, msg: /cannot set hairpin mode and promiscuous mode at the same time/ },
    { name: 'unknown IPAM type', conf: { ...DUAL, ipam: { type: 'bp-no-such-ipam' } }, ref: 999, ours: 7, msg: /bp-no-such-ipam/ },
  ];
  for (const c of cases) {
    const [r, o] = both('ADD', c.conf);
    assert.is(r.json?.code, c.ref, `${c.name}: reference code (${r.stdout})`);
    assert.is(o.json?.code, c.ours, `${c.name}: our code (${o.stdout})`);
    assert.match(o.json.msg, c.msg, `${c.name}: message`);
    assert.equal(ourFootprint(), empty, `${c.name}: nothing created`);
  }
  // the reference leaves a bridge and a veth behind for an unknown IPAM type
  assert.ok(hostVeths('ref').length > 0, 'reference leaks its veth (known)');
});

test('features this host cannot provide fail cleanly before anything is created', () => {
  fresh();
  const empty = ourFootprint();
  // no CONFIG_BRIDGE_VLAN_FILTERING here: the kernel says EOPNOTSUPP
  const [r, o] = both('ADD', { ...DUAL, isGateway: false, ipMasq: false, vlan: 5 });
  assert.match(r.json.msg, /operation not supported/);
  assert.is(o.json.code, 2);
  assert.match(o.json.msg, /"vlan": 5 is not supported here: this kernel has no bridge VLAN filtering/);
  assert.equal(ourFootprint(), empty);
  // macspoofchk false is fine (true is covered side by side in spoofcheck.test.ts)
  ok(run('ours', 'ADD', { ...DUAL, macspoofchk: false }), 'ADD with macspoofchk false');
  ok(run('ours', 'DEL', { ...DUAL, macspoofchk: false }), 'DEL');
});

test('IPAM failing after the veth exists: lease released, veth removed', () => {
  fresh();
  // A one-address range: the second container finds it exhausted.
  const ONE = { ...DUAL, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.98.0.0/24', rangeStart: '10.98.0.9', rangeEnd: '10.98.0.9' }]] } };
  bothOk('ADD', ONE, 'c1');
  const [r, o] = both('ADD', ONE, 'c2');
  assert.is.not(r.code, 0);
  assert.is.not(o.code, 0);
  assert.match(o.json.msg, /10\.98\.0\.9|no IP addresses available|exhausted/i);
  assert.equal(ipJson<any[]>(ns('ours', 'c2'), ['link', 'show']).map((l) => l.ifname), ['lo'], 'our veth is gone');
  assert.is(hostVeths('ours').length, 1, 'only the first container has a veth');
  // The reference leaves its veth behind (known); clear it for the next case.
  assert.ok(ipJson<any[]>(ns('ref', 'c2'), ['link', 'show']).some((l) => l.ifname === 'eth0'), 'the reference leaks its veth here');
  nsExec(ns('ref', 'c2'), ['ip', 'link', 'del', 'eth0']);
  // A failure after IPAM succeeded: the bridge already has another IPv4
  // address, and no forceAddress. The lease is released in both.
  const OTHER = { ...DUAL, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.97.0.0/24' }]] } };
  const [r2, o2] = both('ADD', OTHER, 'c2');
  assert.match(r2.json.msg, /failed to set bridge addr: "bpbr0" already has an IP address different from 10\.97\.0\.1\/24/);
  assert.is(o2.json.msg, r2.json.msg);
  for (const impl of IMPLS) assert.equal(leases(impl, 'bpnet'), ['10.98.0.9'], `${impl}: only the first lease is left`);
  assert.equal(ipJson<any[]>(ns('ours', 'c2'), ['link', 'show']).map((l) => l.ifname), ['lo']);
  nsExec(ns('ref', 'c2'), ['ip', 'link', 'del', 'eth0']); // the reference's leftover again
  // forceAddress replaces the bridge's address, in both
  bothOk('ADD', { ...OTHER, forceAddress: true }, 'c2');
  assert.equal(addrs(ns('ours', 'host'), 'bpbr0', { dadState: false }), addrs(ns('ref', 'host'), 'bpbr0', { dadState: false }));
  assert.ok(addrs(ns('ours', 'host'), 'bpbr0').some((a) => a.local === '10.97.0.1'));
  assert.ok(!addrs(ns('ours', 'host'), 'bpbr0').some((a) => a.local === '10.98.0.1'));
});

test('hairpin mode and port isolation are set on the bridge port', () => {
  fresh();
  const HP = { cniVersion: '1.0.0', name: 'bpl2', type: 'bridge', bridge: 'bphp0', hairpinMode: true };
  const [r, o] = bothOk('ADD', HP);
  assert.equal(normResult(o), normResult(r));
  assert.equal(bridgePorts('ours'), bridgePorts('ref'));
  assert.is(bridgePorts('ours')[0].hairpin, true);
  assert.is(bridgePorts('ours')[0].isolated, false);
  // portIsolation is newer than the reference 1.1.1: ours alone
  const ISO = { ...HP, hairpinMode: false, portIsolation: true };
  ok(run('ours', 'ADD', ISO, 'c2'), 'ADD with portIsolation');
  const ports = bridgePorts('ours');
  assert.is(ports.length, 2);
  assert.equal(ports.map((p) => p.isolated).sort(), [false, true]);
});

test('L2 only (no IPAM), mtu and promiscMode: same result and link state', () => {
  fresh();
  const L2 = { cniVersion: '1.0.0', name: 'bpl2', type: 'bridge', bridge: 'bpl2br', mtu: 1400, promiscMode: true };
  const [r, o] = bothOk('ADD', L2);
  assert.equal(normResult(o), normResult(r));
  assert.not.ok(o.ips);
  assert.equal(kernelState('ours', 'bpl2br', ['c1']), kernelState('ref', 'bpl2br', ['c1']));
  const st = kernelState('ours', 'bpl2br', ['c1']);
  assert.is(st.bridge.mtu, 1400);
  assert.is(st.containers[0].mtu, 1400);
  assert.is(st.containers[0].up, true);
  assert.is(st.bridge.promiscuity > 0, true);
  // CHECK needs no IPAM for L2; the reference cannot CHECK an L2 attachment
  const c = run('ours', 'CHECK', { ...L2, prevResult: o });
  assert.is(c.code, 0, c.stdout);
  const d = run('ours', 'CHECK', { ...L2, promiscMode: false, prevResult: o });
  assert.match(d.json.msg, /Bridge interface bpl2br configured Promisc Mode false doesn't match current state: true/);
  bothOk('DEL', L2);
  // disableContainerInterface leaves the container end down
  const off = ok(run('ours', 'ADD', { ...L2, promiscMode: false, disableContainerInterface: true }, 'c2'), 'ADD disableContainerInterface');
  assert.is(off.interfaces.length, 3);
  assert.is(ipJson<any[]>(ns('ours', 'c2'), ['link', 'show', 'dev', 'eth0'])[0].flags.includes('UP'), false);
  const withIpam = run('ours', 'ADD', { ...DUAL, disableContainerInterface: true }, 'c1');
  assert.is(withIpam.json.msg, 'cannot use IPAM when DisableContainerInterface flag is set');
});

test('isDefaultGateway adds a default route per family; IPAM routes with gateways are kept', () => {
  fresh();
  const DGW = {
    cniVersion: '1.0.0', name: 'bpnet', type: 'bridge', bridge: 'bpdg0', isDefaultGateway: true,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: '10.96.0.0/24', gateway: '10.96.0.254' }], [{ subnet: 'fd96::/64' }]],
      routes: [{ dst: '192.0.2.0/24' }, { dst: '198.51.100.0/24', gw: '10.96.0.7' }],
    },
  };
  const [r, o] = bothOk('ADD', DGW);
  assert.equal(normResult(o), normResult(r));
  assert.equal(o.routes, [
    { dst: '192.0.2.0/24' }, { dst: '198.51.100.0/24', gw: '10.96.0.7' },
    { dst: '0.0.0.0/0', gw: '10.96.0.254' }, { dst: '::/0', gw: 'fd96::1' },
  ]);
  assert.equal(kernelState('ours', 'bpdg0', ['c1']), kernelState('ref', 'bpdg0', ['c1']));
  // the configured gateway is what lands on the bridge
  assert.ok(addrs(ns('ours', 'host'), 'bpdg0').some((a) => a.local === '10.96.0.254' && a.prefixlen === 24));
  // Our CHECK passes. The reference's fails: it looks for a route without a
  // gateway even though its ADD gave that route the IPAM gateway.
  const [cr, co] = [run('ref', 'CHECK', { ...DGW, prevResult: r }), run('ours', 'CHECK', { ...DGW, prevResult: o })];
  assert.is(co.code, 0, co.stdout);
  assert.match(cr.json.msg, /Expected Route \{Dst:\{IP:192\.0\.2\.0 Mask:ffffff00\} GW:<nil>\} not found in routing table/);
  // without the gateway-less route, both pass
  const noBare = (x: any) => ({ ...x, routes: x.routes.filter((rt: any) => rt.gw) });
  assert.is(run('ref', 'CHECK', { ...DGW, prevResult: noBare(r) }).code, 0);
  assert.is(run('ours', 'CHECK', { ...DGW, prevResult: noBare(o) }).code, 0);
});

test('the default bridge cni0 is shared by attachments that do not name it', () => {
  fresh();
  const DEF = { cniVersion: '1.0.0', name: 'bpdef', type: 'bridge', isGateway: true, ipam: { type: 'host-local', subnet: '10.95.0.0/24' } };
  for (const c of ['c1', 'c2'] as const) {
    const [r, o] = bothOk('ADD', DEF, c);
    assert.equal(normResult(o), normResult(r));
  }
  assert.equal(kernelState('ours', 'cni0', ['c1', 'c2']), kernelState('ref', 'cni0', ['c1', 'c2']));
  for (const c of ['c1', 'c2'] as const) bothOk('DEL', DEF, c);
  assert.equal(hostVeths('ours'), []);
});

test('CNI_ARGS: MAC sets the container MAC; unknown keys need IgnoreUnknown', () => {
  fresh();
  const L2 = { cniVersion: '1.0.0', name: 'bpl2', type: 'bridge', bridge: 'bpl2br' };
  const [r, o] = bothOk('ADD', L2, 'c1', { args: 'MAC=0a:58:0a:0f:14:02' });
  assert.equal(normResult(o), normResult(r));
  assert.is(o.interfaces[2].mac, '0a:58:0a:0f:14:02');
  assert.is(ipJson<any[]>(ns('ours', 'c1'), ['link', 'show', 'dev', 'eth0'])[0].address, '0a:58:0a:0f:14:02');
  const [r2, o2] = both('ADD', L2, 'c2', { args: 'FOO=bar' });
  assert.is(r2.json.msg, 'ARGS: unknown args ["FOO=bar"]');
  assert.is(o2.json.msg, r2.json.msg);
  const [, o3] = bothOk('ADD', L2, 'c2', { args: 'IgnoreUnknown=1;FOO=bar' });
  assert.is(o3.interfaces[2].name, 'eth0');
  // runtimeConfig.mac wins over CNI_ARGS, as in the reference
  bothOk('DEL', L2, 'c2');
  const [r4, o4] = bothOk('ADD', { ...L2, runtimeConfig: { mac: '0a:58:0a:0f:14:09' } }, 'c2', { args: 'MAC=0a:58:0a:0f:14:03' });
  assert.is(r4.interfaces[2].mac, '0a:58:0a:0f:14:09');
  assert.is(o4.interfaces[2].mac, '0a:58:0a:0f:14:09');
  const bad = run('ours', 'ADD', L2, 'c2', { args: 'MAC=zz', containerId: 'bp-bad' });
  assert.is(bad.json.code, 4);
});

test('static IPAM, dual-stack: same result and kernel state', () => {
  fresh();
  const ST = {
    cniVersion: '1.0.0', name: 'bpst', type: 'bridge', bridge: 'bpst0', isGateway: true,
    ipam: {
      type: 'static',
      addresses: [{ address: '10.94.0.5/24', gateway: '10.94.0.1' }, { address: 'fd94::5/64' }],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd94::1' }],
      dns: { nameservers: ['10.94.0.53'] },
    },
  };
  const [r, o] = bothOk('ADD', ST);
  assert.equal(normResult(o), normResult(r));
  assert.equal(kernelState('ours', 'bpst0', ['c1']), kernelState('ref', 'bpst0', ['c1']));
  bothOk('DEL', ST);
  for (const impl of IMPLS) assert.equal(hostVeths(impl), []);
});

test('enabledad: DAD stays on, and the addresses settle as in the reference', async () => {
  fresh();
  const DAD = { ...DUAL, ipMasq: false, enabledad: true };
  const [r, o] = bothOk('ADD', DAD);
  assert.equal(normResult(o), normResult(r));
  for (const impl of IMPLS) {
    assert.is(sysctl(ns(impl, 'c1'), 'net/ipv6/conf/eth0/accept_dad'), '1', `${impl} accept_dad`);
    assert.is(sysctl(ns(impl, 'c1'), 'net/ipv6/conf/eth0/enhanced_dad'), '1', `${impl} enhanced_dad`);
  }
  // Both wait for DAD (addresses.settle) before returning: nothing is tentative now.
  for (const impl of IMPLS) {
    assert.equal(addrs(ns(impl, 'c1'), 'eth0').filter((a) => a.tentative).map((a) => a.local), [], `${impl}: settled when ADD returned`);
  }
  assert.equal(kernelState('ours', 'bpbr0', ['c1']), kernelState('ref', 'bpbr0', ['c1']));
  assert.ok(readAudit(h).some((x) => x.call === 'addresses.settle' && x.outcome === 'ok'), 'ours waited through the host');
  bothOk('DEL', DAD);
});

// The configs users copy from the seed documents, in their own spec versions.
const SEEDS: any[] = [
  {
    cniVersion: '0.4.0', name: 'connet', type: 'bridge', bridge: 'cbr0', isGateway: true, ipMasq: true,
    ipam: {
      type: 'host-local', ranges: [[{ subnet: '192.168.199.0/24' }], [{ subnet: 'fde4:8dba:82e1::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: 'fde4:8dba:82e1::1/64' }],
    },
    dns: { nameservers: ['8.8.8.8'] },
  },
  {
    cniVersion: '0.2.0', name: 'mybridge', type: 'bridge', bridge: 'cni_bridge0', isGateway: true, ipMasq: true,
    ipam: { type: 'host-local', subnet: '10.15.20.0/24', routes: [{ dst: '0.0.0.0/0' }, { dst: '1.1.1.1/32', gw: '10.15.20.1' }] },
  },
  {
    cniVersion: '0.2.0', name: 'mybridge', type: 'bridge', bridge: 'cni_bridge1', isGateway: true, ipMasq: true,
    ipam: {
      type: 'host-local', subnet: '10.15.30.0/24', routes: [{ dst: '0.0.0.0/0' }, { dst: '1.1.1.1/32', gw: '10.15.30.1' }],
      rangeStart: '10.15.30.100', rangeEnd: '10.15.30.200', gateway: '10.15.30.99',
    },
  },
  {
    cniVersion: '0.2.0', name: 'customrktbridge', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true,
    ipam: { type: 'host-local', subnet: '10.11.0.0/16', routes: [{ dst: '0.0.0.0/0' }] },
  },
];

test('configs from the seed documents: same results and kernel state, in their own versions', () => {
  for (const conf of SEEDS) {
    fresh();
    for (const c of ['c1', 'c2'] as const) {
      const [r, o] = bothOk('ADD', conf, c, { ifname: c === 'c1' ? 'eth0' : 'eth12' });
      assert.equal(normResult(o), normResult(r), `${conf.name}/${conf.bridge} ${c}`);
    }
    const state = (impl: Impl) => {
      const s = kernelState(impl, conf.bridge, []);
      s.containers = (['c1', 'c2'] as const).map((c) => {
        const dev = c === 'c1' ? 'eth0' : 'eth12';
        return { addrs: addrs(ns(impl, c), dev), routes: routesOf(ns(impl, c)) };
      });
      return s;
    };
    assert.equal(state('ours'), state('ref'), `${conf.name}/${conf.bridge} kernel state`);
    for (const c of ['c1', 'c2'] as const) bothOk('DEL', conf, c, { ifname: c === 'c1' ? 'eth0' : 'eth12' });
    for (const impl of IMPLS) {
      assert.equal(hostVeths(impl), []);
      assert.equal(leases(impl, conf.name), []);
    }
    assert.equal(masqSet('ours', 'masq4'), []);
    assert.equal(masqSet('ours', 'masq6'), []);
  }
});

test('every host call was allowed, and the audit log names them', () => {
  // the one refusal: the error case that names an IPAM type nobody provides
  const denied = readAudit(h).filter((a) => a.verdict !== 'allow' && !(a.call === 'exec' && a.args?.type === 'bp-no-such-ipam'));
  assert.equal(denied.map((a) => `${a.call} ${a.outcome}`), []);
  const calls = new Set(readAudit(h).filter((a) => a.plugin === 'bridge').map((a) => a.call));
  for (const c of ['links.create-bridge', 'links.begin-create-veth', 'links.finish-create-veth', 'links.join-bridge', 'addresses.add', 'routes.add-ecmp', 'firewall.masquerade-add', 'firewall.masquerade-del', 'delegate.run']) {
    assert.ok(calls.has(c), `audit has ${c}`);
  }
});

test('namespaces are cleaned up', () => {
  cleanupAll(P);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(P));
  assert.equal(left, []);
});

test.run();
