// host-local (ours) against the reference binary: results, on-disk leases
// byte for byte, switching implementations on one data dir, requested
// addresses, exhaustion, DEL/CHECK/GC, concurrent ADDs, bad configs.
// host-local touches no network namespace; CNI_NETNS must still name one for
// ADD, so a throwaway netns (prefix hl-) stands in. Leases go to a temp dir.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniReply, type Harness, hasReference, makeHarness, ours, readAudit, reference, removeHarness, writePolicy } from '../helpers/cni.js';
import { flock } from '../../host/kernel/native.js';
import { cleanupAll, makeNetns, netnsPath } from '../helpers/netns.js';

const P = 'hl-';
const NS = `${P}c`;
let h: Harness;
let dirCount = 0;
const haveRef = hasReference();

type Impl = 'ours' | 'ref';

interface Call {
  cid?: string;
  ifname?: string;
  args?: string;
}

/** A fresh data dir inside the harness. */
function dataDir(tag: string): string {
  return join(h.dir, `data-${tag}-${++dirCount}`);
}

function netconf(dir: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, version = '1.0.0') {
  return { cniVersion: version, name: 'hlnet', type: 'host-local', ...extra, ipam: { type: 'host-local', dataDir: dir, ...ipam } };
}

function run(impl: Impl, command: 'ADD' | 'DEL' | 'CHECK' | 'GC', config: object, c: Call = {}): CniReply {
  const call = {
    command, netns: command === 'GC' ? '' : NS, containerId: c.cid ?? 'ctr1', ifname: c.ifname ?? 'eth0', args: c.args, config,
  };
  return impl === 'ours' ? ours(h, 'host-local', call) : reference('host-local', call);
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what}: exit ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** The result without what the two may print differently (an empty "dns"). */
function shape(j: any): any {
  const x = { ...j };
  if (x.dns && Object.keys(x.dns).length === 0) delete x.dns;
  return x;
}

/** file name -> content, for the network's dir (lock left out: it is empty in both) */
function files(dir: string, net = 'hlnet'): Record<string, string> {
  const d = join(dir, net);
  const out: Record<string, string> = {};
  if (!existsSync(d)) return out;
  for (const f of readdirSync(d).sort()) if (f !== 'lock') out[f] = readFileSync(join(d, f), 'latin1');
  return out;
}

function leases(dir: string): Record<string, string> {
  const all = files(dir);
  for (const k of Object.keys(all)) if (k.startsWith('last_reserved_ip.')) delete all[k];
  return all;
}

const addrOf = (j: any, i = 0): string => (j.ips[i].address as string).split('/')[0];

test.before(() => {
  cleanupAll(P);
  makeNetns(NS);
  h = makeHarness('hl-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
});

test('dual-stack ADD: same result as the reference, for the same state', () => {
  if (!haveRef) return console.log('  (skipped: no reference plugins in /usr/lib/cni)');
  const ipam = {
    ranges: [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd50::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: 'fd50::1/64' }, { dst: '1.1.1.1/32', gw: '10.50.0.1' }],
  };
  const dr = dataDir('ref'), dOurs = dataDir('ours');
  for (const cid of ['ctr1', 'ctr2', 'ctr3']) {
    const r = ok(run('ref', 'ADD', netconf(dr, ipam), { cid }), `reference ADD ${cid}`);
    const o = ok(run('ours', 'ADD', netconf(dOurs, ipam), { cid }), `our ADD ${cid}`);
    assert.equal(shape(o), shape(r), `results for ${cid}`);
  }
  const o = ok(run('ours', 'ADD', netconf(dOurs, ipam), { cid: 'ctr9' }), 'ADD ctr9');
  assert.equal(o.cniVersion, '1.0.0');
  assert.equal(o.ips, [
    { address: '10.50.0.5/24', gateway: '10.50.0.1' },
    { address: 'fd50::5/64', gateway: 'fd50::1' },
  ]);
  assert.equal(o.routes, ipam.routes);
  assert.not.ok(o.interfaces, 'an IPAM result has no interfaces');
  for (const ip of o.ips) assert.not.ok('interface' in ip, 'no interface index in an IPAM result');
});

test('resolvConf: DNS from the file, as the reference reads it; a missing file is an error before any lease', () => {
  if (!haveRef) return console.log('  (skipped)');
  const rc = join(h.dir, 'resolv.conf');
  writeFileSync(rc, '# comment\n; also a comment\nnameserver 10.53.0.1\nnameserver fd53::1\ndomain example.test\nsearch a.test b.test\noptions ndots:2 edns0\nbogus\n');
  const ipam = { subnet: '10.53.0.0/24', resolvConf: rc };
  const dr = dataDir('ref'), dOurs = dataDir('ours');
  const r = ok(run('ref', 'ADD', netconf(dr, ipam)), 'reference ADD');
  const o = ok(run('ours', 'ADD', netconf(dOurs, ipam)), 'our ADD');
  assert.equal(o.dns, { nameservers: ['10.53.0.1', 'fd53::1'], domain: 'example.test', search: ['a.test', 'b.test'], options: ['ndots:2', 'edns0'] });
  assert.equal(shape(o), shape(r));

  const missing = { subnet: '10.53.0.0/24', resolvConf: join(h.dir, 'no-such-resolv.conf') };
  const dr2 = dataDir('ref'), dOurs2 = dataDir('ours');
  const rr = run('ref', 'ADD', netconf(dr2, missing));
  const oo = run('ours', 'ADD', netconf(dOurs2, missing));
  assert.is.not(oo.code, 0);
  assert.is(oo.json.msg, rr.json.msg, 'the reference\'s message');
  assert.equal(leases(dOurs2), {}, 'nothing leased');
  const audit = readAudit(h).filter((x) => x.call === 'dns.read-resolv-conf');
  assert.ok(audit.length >= 2 && audit.every((x) => x.plugin === 'host-local' && x.verdict === 'allow'));
});

test('the store will not write into an existing directory that is not a store (no lock file)', () => {
  const d = dataDir('sys');
  mkdirSync(join(d, 'hlnet'), { recursive: true });
  writeFileSync(join(d, 'hlnet', 'passwd'), 'root:x:0:0\n');
  const r = run('ours', 'ADD', netconf(d, { subnet: '10.54.0.0/24' }));
  assert.is.not(r.code, 0, r.stdout);
  assert.match(r.json.msg, /not a store directory/);
  assert.equal(readdirSync(join(d, 'hlnet')), ['passwd'], 'nothing was written there');
  assert.is(readFileSync(join(d, 'hlnet', 'passwd'), 'utf8'), 'root:x:0:0\n');
});

test('a store locked by a stuck call: a clear error within the time limit, not a hang', () => {
  const d = dataDir('locked');
  mkdirSync(join(d, 'hlnet'), { recursive: true });
  const fd = openSync(join(d, 'hlnet', 'lock'), 'a');
  flock(fd, true); // this test process plays the stuck holder
  writePolicy(h, { timeoutMs: 600 });
  try {
    const t0 = Date.now();
    const r = run('ours', 'ADD', netconf(d, { subnet: '10.59.0.0/24' }));
    assert.is.not(r.code, 0, r.stdout);
    assert.match(r.json.msg, /locked by another CNI call/);
    assert.ok(Date.now() - t0 < 5000, 'it gave up instead of hanging');
  } finally {
    closeSync(fd);
    writePolicy(h, {});
  }
  ok(run('ours', 'ADD', netconf(d, { subnet: '10.59.0.0/24' })), 'ADD once the lock is free');
});

test('on-disk files are byte-identical to the reference\'s', () => {
  if (!haveRef) return console.log('  (skipped)');
  const ipam = { ranges: [[{ subnet: '10.51.0.0/24' }], [{ subnet: 'fd51::/64', rangeStart: 'fd51::a' }]] };
  const dr = dataDir('ref'), dOurs = dataDir('ours');
  const steps: Array<['ADD' | 'DEL', string, string]> = [
    ['ADD', 'aaa', 'eth0'], ['ADD', 'bbb', 'eth0'], ['ADD', 'aaa', 'net1'], ['DEL', 'bbb', 'eth0'], ['ADD', 'ccc', 'eth0'],
  ];
  for (const [cmd, cid, ifname] of steps) {
    ok(run('ref', cmd, netconf(dr, ipam), { cid, ifname }), `reference ${cmd} ${cid}`);
    ok(run('ours', cmd, netconf(dOurs, ipam), { cid, ifname }), `our ${cmd} ${cid}`);
    assert.equal(files(dOurs), files(dr), `files after ${cmd} ${cid}/${ifname}`);
  }
  const f = files(dOurs);
  assert.is(f['10.51.0.2'], 'aaa\r\neth0');
  assert.is(f['fd51::a'], 'aaa\r\neth0');
  assert.is(f['last_reserved_ip.1'], 'fd51::d');
  for (const name of Object.keys(f)) {
    const mo = statSync(join(dOurs, 'hlnet', name)).mode & 0o777;
    const mr = statSync(join(dr, 'hlnet', name)).mode & 0o777;
    assert.is(mo.toString(8), mr.toString(8), `mode of ${name}`);
  }
  assert.ok(existsSync(join(dOurs, 'hlnet', 'lock')), 'lock file');
});

test('switching implementations on one data dir: round-robin continues, leases released both ways', () => {
  if (!haveRef) return console.log('  (skipped)');
  const d = dataDir('mixed');
  const conf = netconf(d, { ranges: [[{ subnet: '10.52.0.0/24' }]] });
  const got: string[] = [];
  for (const cid of ['r1', 'r2', 'r3']) got.push(addrOf(ok(run('ref', 'ADD', conf, { cid }), `reference ADD ${cid}`)));
  assert.equal(got, ['10.52.0.2', '10.52.0.3', '10.52.0.4']);
  got.push(addrOf(ok(run('ours', 'ADD', conf, { cid: 'o1' }), 'our ADD o1')));
  assert.is(got[3], '10.52.0.5', 'ours continues after the reference\'s last_reserved_ip');
  got.push(addrOf(ok(run('ref', 'ADD', conf, { cid: 'r4' }), 'reference ADD r4')));
  assert.is(got[4], '10.52.0.6', 'the reference continues after ours');
  assert.is(new Set(got).size, got.length, 'no address twice');

  // ours releases a reference lease, the reference releases ours
  ok(run('ours', 'DEL', conf, { cid: 'r2' }), 'our DEL r2');
  assert.not.ok(existsSync(join(d, 'hlnet', '10.52.0.3')), 'r2\'s lease is gone');
  ok(run('ref', 'DEL', conf, { cid: 'o1' }), 'reference DEL o1');
  assert.not.ok(existsSync(join(d, 'hlnet', '10.52.0.5')), 'o1\'s lease is gone');
  // CHECK across implementations
  ok(run('ours', 'CHECK', conf, { cid: 'r1' }), 'our CHECK of a reference lease');
  ok(run('ours', 'ADD', conf, { cid: 'o2' }), 'our ADD o2');
  ok(run('ref', 'CHECK', conf, { cid: 'o2' }), 'reference CHECK of our lease');
  assert.equal(leases(d), {
    '10.52.0.2': 'r1\r\neth0', '10.52.0.4': 'r3\r\neth0', '10.52.0.6': 'r4\r\neth0', '10.52.0.7': 'o2\r\neth0',
  });
  assert.is(files(d)['last_reserved_ip.0'], '10.52.0.7');
});

test('requested addresses: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips (same as the reference)', () => {
  const ipam = { ranges: [[{ subnet: '10.53.0.0/24' }], [{ subnet: 'fd53::/64' }]] };
  const cases: Array<{ call: Call; extra: Record<string, unknown>; want: string[] }> = [
    { call: { cid: 'q1', args: 'IP=10.53.0.77' }, extra: {}, want: ['10.53.0.77/24', 'fd53::2/64'] },
    { call: { cid: 'q2', args: 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.53.0.78/24' }, extra: {}, want: ['10.53.0.78/24', 'fd53::3/64'] },
    { call: { cid: 'q3' }, extra: { runtimeConfig: { ips: ['10.53.0.90', 'fd53::90/64'] } }, want: ['10.53.0.90/24', 'fd53::90/64'] },
    { call: { cid: 'q4' }, extra: { args: { cni: { ips: ['fd53::91'] } } }, want: ['10.53.0.91/24', 'fd53::91/64'] },
  ];
  const dOurs = dataDir('ours'), dr = dataDir('ref');
  for (const c of cases) {
    const o = ok(run('ours', 'ADD', netconf(dOurs, ipam, c.extra), c.call), `our ADD ${c.call.cid}`);
    // (q4's v4 set had no request: round-robin goes on after .90, the last handed out)
    assert.equal(o.ips.map((i: any) => i.address), c.want, c.call.cid);
    if (haveRef) {
      const r = ok(run('ref', 'ADD', netconf(dr, ipam, c.extra), c.call), `reference ADD ${c.call.cid}`);
      assert.equal(shape(o), shape(r), `same as the reference for ${c.call.cid}`);
    }
  }
  if (haveRef) assert.equal(files(dOurs), files(dr));

  // a taken address, the gateway, and one outside every range
  const bad: Array<[Call, string]> = [
    [{ cid: 'q5', args: 'IP=10.53.0.77' }, 'failed to allocate for range 0: requested IP address 10.53.0.77 is not available in range set 10.53.0.1-10.53.0.254'],
    [{ cid: 'q6', args: 'IP=10.53.0.1' }, 'failed to allocate for range 0: requested ip 10.53.0.1 is subnet\'s gateway'],
    [{ cid: 'q7', args: 'IP=10.99.0.1' }, 'failed to allocate all requested IPs: 10.99.0.1'],
  ];
  const before = files(dOurs);
  for (const [call, msg] of bad) {
    const o = run('ours', 'ADD', netconf(dOurs, ipam), call);
    assert.is.not(o.code, 0);
    assert.is(o.json.msg, msg);
    if (haveRef) assert.is(run('ref', 'ADD', netconf(dr, ipam), call).json.msg, msg, 'the reference says the same');
  }
  const after = files(dOurs);
  delete before['last_reserved_ip.0']; delete before['last_reserved_ip.1'];
  delete after['last_reserved_ip.0']; delete after['last_reserved_ip.1'];
  assert.equal(after, before, 'failed ADDs leave no lease behind');

  // a malformed IP= is an environment error
  const e = run('ours', 'ADD', netconf(dOurs, ipam), { cid: 'q8', args: 'IP=10.53.0.300' });
  assert.is(e.json.code, 4);
  assert.is(e.json.msg, 'ARGS: error parsing value of pair "IP=10.53.0.300": invalid IP address 10.53.0.300');
  const u = run('ours', 'ADD', netconf(dOurs, ipam), { cid: 'q9', args: 'FOO=1' });
  assert.is(u.json.code, 4);
  assert.is(u.json.msg, 'ARGS: unknown args ["FOO=1"]');
});

test('a full range: the reference\'s error, nothing written', () => {
  const conf = (d: string) => netconf(d, { ranges: [[{ subnet: '10.54.0.0/30' }]] });
  const d = dataDir('ours');
  assert.is(addrOf(ok(run('ours', 'ADD', conf(d), { cid: 'f1' }), 'first ADD')), '10.54.0.2');
  const before = files(d);
  const o = run('ours', 'ADD', conf(d), { cid: 'f2' });
  assert.is(o.code, 1);
  assert.is(o.json.code, 999);
  assert.is(o.json.msg, 'failed to allocate for range 0: no IP addresses available in range set: 10.54.0.1-10.54.0.2');
  assert.equal(files(d), before);
  if (haveRef) {
    const dr = dataDir('ref');
    ok(run('ref', 'ADD', conf(dr), { cid: 'f1' }), 'reference first ADD');
    const r = run('ref', 'ADD', conf(dr), { cid: 'f2' });
    assert.equal({ code: o.json.code, msg: o.json.msg }, { code: r.json.code, msg: r.json.msg });
  }
  // the same attachment twice is refused, as the spec asks
  const dup = run('ours', 'ADD', conf(d), { cid: 'f1' });
  assert.is(dup.json.msg, 'failed to allocate for range 0: 10.54.0.2 has been allocated to f1, duplicate allocation is not allowed');
});

test('DEL releases every address of the attachment and is idempotent', () => {
  const d = dataDir('del');
  const conf = netconf(d, { ranges: [[{ subnet: '10.55.0.0/24' }], [{ subnet: 'fd55::/64' }]] });
  ok(run('ours', 'ADD', conf, { cid: 'd1' }), 'ADD d1');
  ok(run('ours', 'ADD', conf, { cid: 'd1', ifname: 'net1' }), 'ADD d1/net1');
  ok(run('ours', 'ADD', conf, { cid: 'd2' }), 'ADD d2');
  ok(run('ours', 'DEL', conf, { cid: 'd1' }), 'DEL d1');
  assert.equal(leases(d), {
    '10.55.0.3': 'd1\r\nnet1', '10.55.0.4': 'd2\r\neth0', 'fd55::3': 'd1\r\nnet1', 'fd55::4': 'd2\r\neth0',
  });
  ok(run('ours', 'DEL', conf, { cid: 'd1' }), 'second DEL d1');
  ok(run('ours', 'DEL', conf, { cid: 'never' }), 'DEL of an unknown container');
  ok(run('ours', 'DEL', netconf(dataDir('empty'), { subnet: '10.56.0.0/24' }), { cid: 'd1' }), 'DEL with no data dir yet');
  // a lease written before ifname was recorded (just the container id) is released too
  writeFileSync(join(d, 'hlnet', '10.55.0.200'), 'old1');
  ok(run('ours', 'DEL', conf, { cid: 'old1' }), 'DEL old-format lease');
  assert.not.ok(existsSync(join(d, 'hlnet', '10.55.0.200')));
});

test('CHECK: the attachment must still hold an address', () => {
  const d = dataDir('check');
  const conf = netconf(d, { ranges: [[{ subnet: '10.57.0.0/24' }]] });
  ok(run('ours', 'ADD', conf, { cid: 'k1' }), 'ADD k1');
  ok(run('ours', 'CHECK', conf, { cid: 'k1' }), 'CHECK k1');
  const other = run('ours', 'CHECK', conf, { cid: 'k2' });
  assert.is(other.code, 1);
  assert.is(other.json.msg, 'host-local: Failed to find address added by container k2');
  ok(run('ours', 'DEL', conf, { cid: 'k1' }), 'DEL k1');
  assert.is(run('ours', 'CHECK', conf, { cid: 'k1' }).code, 1, 'CHECK after DEL fails');
  if (haveRef) assert.is(run('ref', 'CHECK', conf, { cid: 'k1' }).json.msg, 'host-local: Failed to find address added by container k1');
});

test('GC releases the leases of attachments not in cni.dev/valid-attachments', () => {
  const d = dataDir('gc');
  const conf = netconf(d, { ranges: [[{ subnet: '10.58.0.0/24' }]] }, {}, '1.1.0');
  ok(run('ours', 'ADD', conf, { cid: 'g1' }), 'ADD g1');
  ok(run('ours', 'ADD', conf, { cid: 'g2' }), 'ADD g2');
  ok(run('ours', 'ADD', conf, { cid: 'g3', ifname: 'net1' }), 'ADD g3');
  writeFileSync(join(d, 'hlnet', '10.58.0.100'), 'g4'); // old format: container id only
  writeFileSync(join(d, 'hlnet', '10.58.0.101'), 'g5');
  const gc = (valid: unknown) => run('ours', 'GC', { ...conf, 'cni.dev/valid-attachments': valid });
  ok(gc([{ containerID: 'g1', ifname: 'eth0' }, { containerID: 'g3', ifname: 'net1' }, { containerID: 'g4', ifname: 'eth0' }]), 'GC');
  assert.equal(leases(d), { '10.58.0.100': 'g4', '10.58.0.2': 'g1\r\neth0', '10.58.0.4': 'g3\r\nnet1' });
  assert.is(files(d)['last_reserved_ip.0'], '10.58.0.4', 'GC keeps the round-robin position');
  // g3 on another interface is not g3/net1
  ok(gc([{ containerID: 'g1', ifname: 'eth0' }, { containerID: 'g3', ifname: 'eth0' }]), 'GC 2');
  assert.equal(Object.keys(leases(d)), ['10.58.0.2']);
  ok(gc([]), 'GC with no valid attachments');
  assert.equal(leases(d), {});
  ok(run('ours', 'ADD', conf, { cid: 'g6' }), 'ADD after GC');
  assert.equal(leases(d), { '10.58.0.5': 'g6\r\neth0' });
});

test('20 concurrent ADDs on one /24: 20 distinct addresses, one lease each', async () => {
  const d = dataDir('conc');
  const conf = JSON.stringify(netconf(d, { ranges: [[{ subnet: '10.59.0.0/24' }]] }));
  const bin = join(h.bin, 'host-local');
  const one = (cid: string) => new Promise<{ code: number; out: string; err: string }>((resolve) => {
    const p = spawn(bin, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: cid,
        CNI_NETNS: netnsPath(NS), CNI_IFNAME: 'eth0', CNI_PATH: h.bin,
      },
    });
    let out = '', err = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (err += b));
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    p.stdin.end(conf);
  });
  const ids = Array.from({ length: 20 }, (_, i) => `par${i}`);
  const replies = await Promise.all(ids.map(one));
  const addrs = replies.map((r, i) => {
    assert.is(r.code, 0, `${ids[i]}: ${r.out} ${r.err}`);
    return (JSON.parse(r.out).ips[0].address as string).split('/')[0];
  });
  assert.is(new Set(addrs).size, 20, `distinct: ${addrs.join(' ')}`);
  const l = leases(d);
  assert.is(Object.keys(l).length, 20);
  for (let i = 0; i < 20; i++) assert.is(l[addrs[i]], `${ids[i]}\r\neth0`, `lease of ${ids[i]}`);
});

test('bad configs: code 7, the reference\'s message, nothing written', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['no ranges', {}, 'no IP ranges specified'],
    ['bad subnet', { subnet: '10.60.0.0/33' }, 'invalid CIDR address: 10.60.0.0/33'],
    ['rangeStart outside', { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.61.0.5' }]] },
      'invalid range set 0: RangeStart 10.61.0.5 not in network 10.60.0.0/24'],
    ['overlapping range sets', { ranges: [[{ subnet: '10.60.0.0/24' }], [{ subnet: '10.60.0.0/25' }]] }, 'range set 0 overlaps with 1'],
    ['overlapping ranges in a set', { ranges: [[{ subnet: '10.60.0.0/24' }, { subnet: '10.60.0.128/25' }]] },
      'invalid range set 0: subnets 10.60.0.1-10.60.0.254 and 10.60.0.129-10.60.0.254 overlap'],
    ['host bits', { ranges: [[{ subnet: '10.60.0.1/24' }]] },
      'invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.60.0.0'],
    ['too small', { ranges: [[{ subnet: '10.60.0.0/31' }]] }, 'invalid range set 0: Network 10.60.0.0/31 too small to allocate from'],
    ['mixed families', { ranges: [[{ subnet: '10.60.0.0/24' }, { subnet: 'fd60::/64' }]] }, 'invalid range set 0: mixed address families'],
    ['wrong type', { ranges: 'x' }, 'json: cannot unmarshal string into Go struct field IPAMConfig.ipam.ranges of type []allocator.RangeSet'],
  ];
  for (const [name, ipam, msg] of cases) {
    const d = dataDir('bad');
    const o = run('ours', 'ADD', netconf(d, ipam), { cid: 'b1' });
    assert.is(o.code, 1, name);
    assert.is(o.json.code, 7, `${name}: code`);
    assert.is(o.json.msg, msg, `${name}: message`);
    assert.not.ok(existsSync(d), `${name}: nothing written`);
    if (haveRef) assert.is(run('ref', 'ADD', netconf(d, ipam), { cid: 'b1' }).json.msg, msg, `${name}: the reference's message`);
  }
  // the reference would print "dst": "<nil>" and lease an address; we refuse first
  const d = dataDir('bad');
  const noDst = run('ours', 'ADD', netconf(d, { subnet: '10.60.0.0/24', routes: [{ gw: '10.60.0.1' }] }), { cid: 'b1' });
  assert.equal([noDst.json.code, noDst.json.msg], [7, 'route 0 has no "dst"']);
  assert.not.ok(existsSync(d), 'no route dst: nothing written');
  const noIpam = run('ours', 'ADD', { cniVersion: '1.0.0', name: 'hlnet', type: 'host-local' });
  assert.is(noIpam.json.code, 7);
  assert.is(noIpam.json.msg, 'IPAM config missing \'ipam\' key');
});

test('legacy single range, default data dir, and the audit trail', () => {
  // no dataDir: the policy's store dir (the harness's stand-in for /var/lib/cni/networks)
  const conf = {
    cniVersion: '0.3.1', name: 'hllegacy', type: 'host-local',
    ipam: { type: 'host-local', subnet: '10.62.0.0/24', rangeStart: '10.62.0.100', rangeEnd: '10.62.0.200', gateway: '10.62.0.99', routes: [{ dst: '0.0.0.0/0' }] },
  };
  const o = ok(run('ours', 'ADD', conf, { cid: 'l1' }), 'ADD');
  assert.is(o.cniVersion, '0.3.1');
  assert.equal(o.ips, [{ version: '4', address: '10.62.0.100/24', gateway: '10.62.0.99' }]);
  assert.is(readFileSync(join(h.storeDir, 'hllegacy', '10.62.0.100'), 'latin1'), 'l1\r\neth0');
  const calls = readAudit(h).filter((a) => a.plugin === 'host-local' && a.containerId === 'l1').map((a) => a.call);
  assert.ok(calls.includes('store.open'), `audited calls: ${calls.join(' ')}`);
  assert.ok(calls.every((c: string) => c.startsWith('store.') || c.startsWith('invoke.') || c.startsWith('log.')), 'only store calls');
});

test.run();
