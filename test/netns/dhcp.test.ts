// dhcp IPAM with a real DHCP server: dnsmasq in a throwaway "lan" netns,
// our `dhcp daemon` (the installed shim, run as the seeds run it) and the
// reference 1.1.1 daemon, each on its own socket in a temp dir. Needs root
// and dnsmasq (dnsmasq-base). Prefix: dhc-.
//
// World: dhc-host plays the host (the plugins and both daemons run inside
// it). Its veth dhcm0 is the macvlan master; its peer lan0 sits in dhc-lan
// (10.78.0.1/24). A bridge dhcbr0 in dhc-host has the port dhcb0 whose
// peer lan1 is in dhc-lan too (10.79.0.1/24, which also hands out classless
// static routes, option 121). dnsmasq serves both with 2-minute leases and
// T1 10 s / T2 20 s, so renewals happen within the test.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CLI, type CniCall, type CniReply, type Harness, REFERENCE_BIN, libcniSequence, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';
import { closeFd, ifHwaddr, openNetns, udpOpen, udpRecv, udpSend, withNetns } from '../../host/kernel/native.js';

const P = 'dhc-';
const HOST = `${P}host`, LAN = `${P}lan`;
const DNSMASQ = '/usr/sbin/dnsmasq';
let h: Harness;
let sock = '', refSock = '', stateDir = '', leaseFile = '';
let dnsmasq: ChildProcess | null = null;
let daemon: ChildProcess | null = null;
let refDaemon: ChildProcess | null = null;
const daemonLog = () => join(h.dir, 'daemon.log');

const macvlanConf = (socket: string) => ({
  cniVersion: '0.2.0', name: 'customrktbridgedhcp', type: 'macvlan', master: 'dhcm0', ipam: { type: 'dhcp', daemonSocketPath: socket },
});
// option 121 is sent only when asked for (the parameter request list): ipam.request
const bridgeConf = () => ({
  cniVersion: '1.0.0', name: 'dhcbr', type: 'bridge', bridge: 'dhcbr0',
  ipam: { type: 'dhcp', daemonSocketPath: sock, request: [{ option: '121' }] },
});

function call(type: string, command: CniCall['command'], config: object, netns: string, cid: string, ref = false): CniReply {
  const c: CniCall = { command, hostNs: HOST, netns, containerId: cid, ifname: 'eth0', config };
  return ref ? reference(type, { path: REFERENCE_BIN, ...c }) : ours(h, type, c);
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** dnsmasq's lease file: ip -> {expiry, mac, clientId} */
function leases(): Map<string, { expiry: number; mac: string; clientId: string; hostname: string }> {
  const m = new Map<string, { expiry: number; mac: string; clientId: string; hostname: string }>();
  if (!existsSync(leaseFile)) return m;
  for (const line of readFileSync(leaseFile, 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 5 && /^\d+$/.test(f[0])) m.set(f[2], { expiry: Number(f[0]), mac: f[1], hostname: f[3], clientId: f[4] });
  }
  return m;
}

/** The reference's client id as dnsmasq prints it: 00 then containerID/netName/ifName in hex. */
const clientIdHex = (cid: string, net: string, ifname = 'eth0') =>
  ['00', ...Buffer.from(`${cid}/${net}/${ifname}`).toString('hex').match(/../g)!].join(':');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (f()) return; await sleep(100); }
  const log = existsSync(daemonLog()) ? readFileSync(daemonLog(), 'utf8').split('\n').slice(-8).join('\n') : '';
  assert.unreachable(`timed out waiting for ${what}; dnsmasq leases: ${existsSync(leaseFile) ? readFileSync(leaseFile, 'utf8') : ''}; daemon log: ${log}`);
}

async function startDaemon(): Promise<void> {
  const fd = openSync(daemonLog(), 'a');
  // exactly as the seed: `./dhcp daemon` (here with the socket and state dir of this test)
  daemon = spawn('ip', ['netns', 'exec', HOST, join(h.bin, 'dhcp'), 'daemon', '-socketpath', sock, '-statedir', stateDir], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  await until('our daemon socket', () => existsSync(sock));
}

async function stopDaemon(): Promise<void> {
  if (!daemon) return;
  const d = daemon;
  daemon = null;
  const gone = new Promise((r) => d.once('exit', r));
  d.kill('SIGTERM');
  await gone;
}

const addrsOf = (ns: string) => ipJson(ns, ['-4', 'addr', 'show', 'dev', 'eth0'])[0]?.addr_info?.map((a: any) => `${a.local}/${a.prefixlen}`) ?? [];

test.before(async () => {
  cleanupAll(P);
  h = makeHarness(P);
  sock = join(h.dir, 'dhcp.sock');
  refSock = join(h.dir, 'ref-dhcp.sock');
  stateDir = join(h.dir, 'dhcp-state');
  leaseFile = join(h.dir, 'dnsmasq.leases');
  // the macvlan plugin delegates its IPAM; a delegate works within its caller's
  // grants, so macvlan's own manifest must hold the dhcp grant (as bridge's does):
  // seed 001 runs with the shipped grants, no policy override
  for (const t of ['macvlan', 'bridge']) {
    const g = JSON.parse(readFileSync(join(process.cwd(), `dist/plugins/${t}/manifest.json`), 'utf8')).grants;
    assert.is(g.dhcp, true, `${t}'s manifest grants dhcp`);
  }
  makeNetns(HOST);
  makeNetns(LAN);
  for (const c of ['m1', 'm2', 'b1', 'r1', 'n1', 'x1', 'w1', 'q1']) makeNetns(`${P}${c}`);
  // q1's interface leads to a port nothing answers on
  spawnSync('ip', ['-n', `${P}q1`, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'dhcq0', 'netns', HOST]);
  const ip = (...a: string[]) => spawnSync('ip', a, { encoding: 'utf8' });
  ip('-n', HOST, 'link', 'add', 'dhcm0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', LAN);
  ip('-n', HOST, 'link', 'add', 'dhcb0', 'type', 'veth', 'peer', 'name', 'lan1', 'netns', LAN);
  ip('-n', HOST, 'link', 'add', 'dhcbr0', 'type', 'bridge');
  ip('-n', `${P}w1`, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'lan2', 'netns', LAN);
  ip('-n', `${P}w1`, 'link', 'set', 'eth0', 'up');
  ip('-n', LAN, 'addr', 'add', '10.80.0.1/24', 'dev', 'lan2');
  ip('-n', HOST, 'link', 'set', 'dhcb0', 'master', 'dhcbr0');
  for (const l of ['dhcm0', 'dhcb0', 'dhcbr0']) ip('-n', HOST, 'link', 'set', l, 'up');
  ip('-n', LAN, 'addr', 'add', '10.78.0.1/24', 'dev', 'lan0');
  ip('-n', LAN, 'addr', 'add', '10.79.0.1/24', 'dev', 'lan1');
  for (const l of ['lan0', 'lan1', 'lan2']) ip('-n', LAN, 'link', 'set', l, 'up');
  dnsmasq = spawn('ip', ['netns', 'exec', LAN, DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null', '--port=0', '--no-resolv', '--no-hosts',
    '--user=root', '--bind-interfaces', '--interface=lan0', '--interface=lan1', '--interface=lan2', '--no-ping', '--log-dhcp', `--log-facility=${join(h.dir, 'dnsmasq.log')}`,
    `--dhcp-leasefile=${leaseFile}`, `--pid-file=${join(h.dir, 'dnsmasq.pid')}`,
    '--dhcp-range=set:m,10.78.0.50,10.78.0.99,255.255.255.0,2m', '--dhcp-range=set:b,10.79.0.50,10.79.0.99,255.255.255.0,2m', '--dhcp-range=set:w,10.80.0.50,10.80.0.99,255.255.255.0,2m',
    '--dhcp-option=tag:m,option:router,10.78.0.1', '--dhcp-option=tag:w,option:router,10.80.0.1',
    '--dhcp-option=tag:w,option:static-route,10.200.0.0,10.80.0.1', '--dhcp-option=tag:b,option:router,10.79.0.1',
    '--dhcp-option=tag:b,121,10.99.0.0/16,10.79.0.1,0.0.0.0/0,10.79.0.1',
    '--dhcp-option=option:T1,10', '--dhcp-option=option:T2,20'], { stdio: 'ignore' });
  await until('dnsmasq', () => existsSync(join(h.dir, 'dnsmasq.pid')));
});

test.after(async () => {
  await stopDaemon();
  refDaemon?.kill('SIGTERM');
  dnsmasq?.kill('SIGTERM');
  await sleep(200);
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('no daemon: a clear error naming the socket and `dhcp daemon`, and nothing left behind', () => {
  const r = call('bridge', 'ADD', bridgeConf(), `${P}n1`, 'dhc-nodaemon');
  assert.is(r.code, 1);
  assert.is(r.json.code, 11, r.stdout);
  assert.match(r.json.msg, sock);
  assert.match(r.json.msg, '`dhcp daemon`');
  assert.not.match(r.stdout, /at .*\.js/); // no stack trace
  // the failed ADD took its veth back: nothing but lo in the container, only the uplink on the bridge
  assert.equal(ipJson(`${P}n1`, ['link', 'show']).map((l: any) => l.ifname), ['lo']);
  assert.equal(ipJson(HOST, ['link', 'show', 'master', 'dhcbr0']).map((l: any) => l.ifname), ['dhcb0']);
  assert.is(leases().size, 0);
});

test('`dhcp daemon` serves a root-only socket', async () => {
  await startDaemon();
  assert.is(statSync(sock).mode & 0o777, 0o600);
  assert.ok(statSync(sock).isSocket());
});

test('seed 001: two macvlan containers get leases from dnsmasq (its lease file shows them, client id as the reference builds it)', async () => {
  const r1 = ok(call('macvlan', 'ADD', macvlanConf(sock), `${P}m1`, 'dhc-m1'), 'ADD m1');
  const r2 = ok(call('macvlan', 'ADD', macvlanConf(sock), `${P}m2`, 'dhc-m2'), 'ADD m2');
  for (const [r, c] of [[r1, 'm1'], [r2, 'm2']] as const) {
    // 0.2.0 result: ip4 with the lease, the router as gateway, the default route
    assert.match(r.ip4.ip, /^10\.78\.0\.\d+\/24$/);
    assert.is(r.ip4.gateway, '10.78.0.1');
    assert.equal(r.ip4.routes, [{ dst: '0.0.0.0/0', gw: '10.78.0.1' }]);
    assert.equal(addrsOf(`${P}${c}`), [r.ip4.ip]);
    const l = leases().get(r.ip4.ip.split('/')[0]);
    assert.ok(l, `dnsmasq has no lease for ${r.ip4.ip}: ${readFileSync(leaseFile, 'utf8')}`);
    assert.is(l!.clientId, clientIdHex(`dhc-${c}`, 'customrktbridgedhcp'));
  }
  assert.is.not(r1.ip4.ip, r2.ip4.ip);
  // they reach each other and the lan
  nsExec(`${P}m1`, ['ping', '-c1', '-W2', '10.78.0.1']);
  nsExec(`${P}m1`, ['ping', '-c1', '-W2', r2.ip4.ip.split('/')[0]]);
  // the client component's packet I/O is audited under its own name
  assert.ok(readAudit(h).some((a) => a.plugin === 'dhcp-client' && a.call === 'dhcp-wire.send' && a.outcome === 'ok'));
});

let bridgeResult: any;
test('a bridge container gets a lease with the classless static routes (option 121) as its routes', () => {
  bridgeResult = ok(call('bridge', 'ADD', bridgeConf(), `${P}b1`, 'dhc-b1'), 'ADD b1');
  const ip = bridgeResult.ips[0];
  assert.match(ip.address, /^10\.79\.0\.\d+\/24$/);
  assert.is(ip.gateway, '10.79.0.1');
  assert.equal(bridgeResult.routes, [{ dst: '10.99.0.0/16', gw: '10.79.0.1' }, { dst: '0.0.0.0/0', gw: '10.79.0.1' }]);
  assert.ok(leases().has(ip.address.split('/')[0]));
  nsExec(`${P}b1`, ['ping', '-c1', '-W2', '10.79.0.1']);
});

test('libcni sequence: CHECK with prevResult at the config version; CHECK without a lease allocates none', () => {
  ok(call('bridge', 'CHECK', { ...bridgeConf(), prevResult: bridgeResult }, `${P}b1`, 'dhc-b1'), 'CHECK b1');
  const before = leases().size;
  // an IPAM CHECK for an attachment the daemon holds no lease for
  const r = call('dhcp', 'CHECK', { cniVersion: '1.0.0', name: 'dhcbr', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: sock } }, `${P}x1`, 'dhc-nolease');
  assert.is(r.code, 1);
  assert.match(r.json.msg, 'holds no lease');
  assert.is(leases().size, before);
});

test('leases renew (T1 10 s): dnsmasq extends them', async () => {
  const first = new Map([...leases()].map(([ip, l]) => [ip, l.expiry]));
  await until('three renewals', () => (readFileSync(daemonLog(), 'utf8').match(/: renewed /g) ?? []).length >= 3, 20_000);
  await sleep(300);
  const now = leases();
  for (const [ip, exp] of first) assert.ok(now.get(ip)!.expiry > exp, `lease ${ip} was not extended (${exp} -> ${now.get(ip)?.expiry})`);
});

test('a lease survives restarting our daemon; DEL after the restart still releases it', async () => {
  await stopDaemon();
  const st = statSync(join(stateDir, 'leases.json'));
  assert.is(st.mode & 0o777, 0o600);
  await startDaemon();
  await until('resumed leases', () => /3 resumed/.test(readFileSync(daemonLog(), 'utf8')));
  const ip = addrsOf(`${P}m2`)[0].split('/')[0];
  assert.ok(leases().has(ip));
  ok(call('macvlan', 'DEL', macvlanConf(sock), `${P}m2`, 'dhc-m2'), 'DEL m2');
  await until(`${ip} gone from dnsmasq`, () => !leases().has(ip));
});

test('DEL releases (gone from dnsmasq), DEL again succeeds, the daemon holds nothing', async () => {
  const m1 = addrsOf(`${P}m1`)[0].split('/')[0];
  const b1 = bridgeResult.ips[0].address.split('/')[0];
  ok(call('macvlan', 'DEL', macvlanConf(sock), `${P}m1`, 'dhc-m1'), 'DEL m1');
  ok(call('bridge', 'DEL', { ...bridgeConf(), prevResult: bridgeResult }, `${P}b1`, 'dhc-b1'), 'DEL b1');
  await until('releases', () => !leases().has(m1) && !leases().has(b1));
  ok(call('macvlan', 'DEL', macvlanConf(sock), `${P}m1`, 'dhc-m1'), 'DEL m1 again');
  const saved = JSON.parse(readFileSync(join(stateDir, 'leases.json'), 'utf8'));
  assert.equal(saved.leases, []);
});

test('libcni\'s sequence with macvlan + dhcp at every version (VERSION, ADD, CHECK from 0.4.0, DEL with the cached result, DEL again): each lease taken, then released', async () => {
  for (const cniVersion of ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    let ip = '';
    const seq = libcniSequence((command, config) => call('macvlan', command, config, `${P}m1`, 'dhc-seq'), { ...macvlanConf(sock), cniVersion }, (add) => {
      ip = String(add.json?.ip4?.ip ?? add.json?.ips?.[0]?.address ?? '').split('/')[0];
      assert.ok(leases().has(ip), `${cniVersion}: dnsmasq holds ${ip}`);
    });
    assert.equal(seq.errors, [], cniVersion);
    assert.is(seq.add.json?.cniVersion, cniVersion);
    await until(`${cniVersion}: ${ip} released`, () => !leases().has(ip));
    assert.not.match(nsExec(`${P}m1`, ['ip', '-br', 'link']).stdout, /eth0/, `${cniVersion}: no interface left`);
  }
});

test('the dhcp host function talks only to a server that greets as the daemon', async () => {
  const fake = join(h.dir, 'fake.sock');
  let got = 0;
  const srv = net.createServer((s) => { s.on('data', (d) => { got += d.length; }); });
  await new Promise<void>((r) => srv.listen(fake, () => r()));
  try {
    const r = call('dhcp', 'ADD', { cniVersion: '1.0.0', name: 'dhcbr', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: fake } }, `${P}x1`, 'dhc-fake');
    assert.is(r.code, 1);
    assert.match(r.json.msg, /greeting|ETIMEDOUT|timed out/i);
    await sleep(100);
    assert.is(got, 0, 'bytes were sent to a socket that is not the daemon');
  } finally {
    srv.close();
  }
});

test('side by side with the reference 1.1.1 dhcp daemon: the same result shape and client id', async () => {
  if (!existsSync(join(REFERENCE_BIN, 'dhcp'))) return;
  refDaemon = spawn('ip', ['netns', 'exec', HOST, join(REFERENCE_BIN, 'dhcp'), 'daemon', '-socketpath', refSock], { stdio: 'ignore' });
  await until('the reference daemon socket', () => existsSync(refSock));
  const ref = ok(call('macvlan', 'ADD', macvlanConf(refSock), `${P}r1`, 'dhc-r1', true), 'reference ADD r1');
  const mine = ok(call('macvlan', 'ADD', macvlanConf(sock), `${P}m1`, 'dhc-m1'), 'our ADD m1');
  const shape = (r: any) => JSON.parse(JSON.stringify(r).replace(/10\.78\.0\.\d+\/24/g, 'ADDR').replace(/"mac":"[^"]*"/g, '"mac":"MAC"'));
  assert.equal(shape(mine), shape(ref));
  const refLease = leases().get(ref.ip4.ip.split('/')[0]);
  assert.is(refLease?.clientId, clientIdHex('dhc-r1', 'customrktbridgedhcp'));
  ok(call('macvlan', 'DEL', macvlanConf(refSock), `${P}r1`, 'dhc-r1', true), 'reference DEL r1');
  ok(call('macvlan', 'DEL', macvlanConf(sock), `${P}m1`, 'dhc-m1'), 'our DEL m1');
  await until('both released', () => !leases().has(ref.ip4.ip.split('/')[0]) && !leases().has(mine.ip4.ip.split('/')[0]));
});

test('measured: a UDP socket on an interface without an address gets the OFFER only when the broadcast flag is set', () => {
  // why the client sets the BOOTP broadcast flag instead of reading raw frames (AF_PACKET):
  // without it dnsmasq unicasts the OFFER to the address it offers, which the kernel drops
  const ns = openNetns(netnsPath(`${P}w1`));
  const fd = withNetns(ns, () => udpOpen('eth0'));
  try {
    const mac = ifHwaddr(fd, 'eth0');
    const offer = (bcast: boolean): number | null => {
      const xid = (Math.random() * 2 ** 32) >>> 0;
      const p = Buffer.alloc(300);
      p[0] = 1; p[1] = 1; p[2] = 6; p.writeUInt32BE(xid, 4); if (bcast) p[10] = 0x80;
      mac.copy(p, 28); p.writeUInt32BE(0x63825363, 236);
      Buffer.from([53, 1, 1, 55, 2, 1, 3, 255]).copy(p, 240);
      const t0 = Date.now();
      udpSend(fd, p, '255.255.255.255', 67);
      for (let end = t0 + 2000; Date.now() < end;) {
        const r = udpRecv(fd, 1500, Math.max(1, end - Date.now()));
        if (!r) break;
        if (r.data.length > 8 && r.data.readUInt32BE(4) === xid) return Date.now() - t0;
      }
      return null;
    };
    const withFlag = offer(true);
    const without = offer(false);
    assert.ok(withFlag !== null && withFlag < 1000, `no OFFER with the broadcast flag (${withFlag})`);
    assert.is(without, null, 'an OFFER without the broadcast flag reached the unconfigured interface');
  } finally {
    closeFd(fd);
    closeFd(ns);
  }
});

test('ipam keys: provide (fromArg from CNI_ARGS), request (option 33, skipDefault), priority', async () => {
  const ipam = (extra: object) => ({ cniVersion: '1.0.0', name: 'dhcw', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: sock, ...extra } });
  const withArgs = (command: CniCall['command'], conf: object, cid: string): CniReply =>
    ours(h, 'dhcp', { command, hostNs: HOST, netns: `${P}w1`, containerId: cid, ifname: 'eth0', config: conf, args: 'IgnoreUnknown=1;K8S_POD_NAME=web-1' });
  const full = ipam({ provide: [{ option: 'host-name', fromArg: 'K8S_POD_NAME' }], request: [{ option: '33' }], priority: 50 });
  const r = ok(withArgs('ADD', full, 'dhc-w1'), 'ADD w1');
  assert.match(r.ips[0].address, /^10\.80\.0\.\d+\/24$/);
  assert.is(r.ips[0].gateway, '10.80.0.1');
  // option 33 routes are classful (10.200.0.0 is class A), then the default via the router; all at the priority
  assert.equal(r.routes, [{ dst: '10.0.0.0/8', gw: '10.80.0.1', priority: 50 }, { dst: '0.0.0.0/0', gw: '10.80.0.1', priority: 50 }]);
  assert.is(leases().get(r.ips[0].address.split('/')[0])?.hostname, 'web-1');
  // skipDefault: the router is not asked for, so no gateway and no default route
  const bare = ok(withArgs('ADD', ipam({ request: [{ skipDefault: true, option: 'subnet-mask' }] }), 'dhc-w2'), 'ADD w2');
  assert.is(bare.ips[0].gateway, undefined, JSON.stringify(bare));
  assert.is(bare.routes, undefined, JSON.stringify(bare));
  // a bad option name is the reference's error
  const bad = withArgs('ADD', ipam({ request: [{ option: 'nope' }] }), 'dhc-w3');
  assert.is(bad.json.code, 7);
  assert.match(bad.json.msg, 'Can not parse option "nope"');
  // as the plugin that delegated would have: the leased addresses on the interface (a release comes from them)
  for (const a of [r.ips[0].address, bare.ips[0].address]) nsExec(`${P}w1`, ['ip', 'addr', 'add', a, 'dev', 'eth0']);
  for (const [c, cid] of [[full, 'dhc-w1'], [ipam({}), 'dhc-w2']] as const) ok(withArgs('DEL', c, cid), `DEL ${cid}`);
  await until('the w leases released', () => ![...leases().keys()].some((ip) => ip.startsWith('10.80.0.')));
});

/** A CNI call as a child process, for calls that run at the same time. */
function callAsync(type: string, command: string, config: object, netns: string, cid: string): Promise<{ code: number; json: any; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', HOST, join(h.bin, type)], {
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netnsPath(netns), CNI_IFNAME: 'eth0', CNI_PATH: h.bin },
    });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('exit', (code) => { let json: any; try { json = JSON.parse(out); } catch { json = undefined; } resolve({ code: code ?? -1, json, ms: Date.now() - t0 }); });
    c.stdin.end(JSON.stringify(config));
  });
}

test('a lease that waits for a silent server holds up no other: operations run side by side', async () => {
  const conf = { cniVersion: '1.0.0', name: 'dhcq', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: sock } };
  const silent = callAsync('dhcp', 'ADD', conf, `${P}q1`, 'dhc-q1');
  await sleep(300);
  const served = await callAsync('dhcp', 'ADD', conf, `${P}w1`, 'dhc-w4');
  assert.is(served.code, 0, JSON.stringify(served.json));
  assert.ok(served.ms < 2500, `an ADD took ${served.ms} ms behind the silent one`);
  const s = await silent;
  assert.is(s.code, 1);
  assert.is(s.json.code, 999); // as the reference: "error calling DHCP.Allocate: ..."
  assert.match(s.json.msg, 'error calling DHCP.Allocate: no DHCPOFFER', s.json.msg);
  ok(call('dhcp', 'DEL', conf, `${P}w1`, 'dhc-w4'), 'DEL w4');
  ok(call('dhcp', 'DEL', conf, `${P}q1`, 'dhc-q1'), 'DEL q1 (never leased)');
});

test('STATUS (1.1): ready with a daemon, error 50 naming the socket without; GC releases the leases no valid attachment holds', async () => {
  const conf = (socket: string) => ({ cniVersion: '1.1.0', name: 'dhcg', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: socket } });
  ok(call('dhcp', 'STATUS', conf(sock), '', 'dhc-st'), 'STATUS');
  const none = call('dhcp', 'STATUS', conf(join(h.dir, 'absent.sock')), '', 'dhc-st');
  assert.is(none.json?.code, 50, none.stdout);
  assert.match(none.json.msg, 'absent.sock');
  const g1 = ok(call('dhcp', 'ADD', conf(sock), `${P}w1`, 'dhc-g1'), 'ADD g1');
  const g2 = ok(call('dhcp', 'ADD', conf(sock), `${P}w1`, 'dhc-g2'), 'ADD g2');
  for (const r of [g1, g2]) nsExec(`${P}w1`, ['ip', 'addr', 'replace', r.ips[0].address, 'dev', 'eth0']);
  const ip = (r: any) => r.ips[0].address.split('/')[0];
  assert.ok(leases().has(ip(g1)) && leases().has(ip(g2)));
  ok(call('dhcp', 'GC', { ...conf(sock), 'cni.dev/valid-attachments': [{ containerID: 'dhc-g1', ifname: 'eth0' }] }, '', ''), 'GC');
  await until('g2 collected', () => !leases().has(ip(g2)));
  assert.ok(leases().has(ip(g1)), 'GC released a valid attachment\'s lease');
  ok(call('dhcp', 'DEL', conf(sock), `${P}w1`, 'dhc-g1'), 'DEL g1');
  await until('g1 released', () => !leases().has(ip(g1)));
});

test('systemd socket activation: the daemon takes the listening socket it is given (LISTEN_FDS)', async () => {
  if (!existsSync('/usr/bin/systemd-socket-activate')) return;
  const s = join(h.dir, 'activated.sock');
  const d = spawn('ip', ['netns', 'exec', HOST, '/usr/bin/systemd-socket-activate', '-l', s,
    join(h.bin, 'dhcp'), 'daemon', '-socketpath', join(h.dir, 'unused.sock'), '-statedir', join(h.dir, 'activated-state')], { stdio: 'ignore' });
  try {
    await until('the activation socket', () => existsSync(s));
    const conf = { cniVersion: '1.0.0', name: 'dhca', type: 'dhcp', ipam: { type: 'dhcp', daemonSocketPath: s } };
    const r = ok(call('dhcp', 'ADD', conf, `${P}w1`, 'dhc-w5'), 'ADD through the activated daemon');
    assert.match(r.ips[0].address, /^10\.80\.0\./);
    assert.not.ok(existsSync(join(h.dir, 'unused.sock')));
    ok(call('dhcp', 'DEL', conf, `${P}w1`, 'dhc-w5'), 'DEL through the activated daemon');
  } finally {
    d.kill('SIGTERM');
  }
});

test('the native shim runs `dhcp daemon` as well (its arguments pass on)', async () => {
  const bin = join(h.dir, 'native-bin');
  const r = spawnSync(process.execPath, [CLI, 'install', '--bin-dir', bin, '--policy', h.policyFile, '--only', 'dhcp', '--native'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  if (!/native shim/.test(r.stdout)) return; // no C compiler here: script shims, tested above
  const s = join(h.dir, 'native.sock');
  const d = spawn('ip', ['netns', 'exec', HOST, join(bin, 'dhcp'), 'daemon', '-socketpath', s, '-statedir', join(h.dir, 'native-state')], { stdio: 'ignore' });
  try {
    await until('the native shim daemon socket', () => existsSync(s));
    assert.is(statSync(s).mode & 0o777, 0o600);
  } finally {
    d.kill('SIGTERM');
  }
});

test.run();
