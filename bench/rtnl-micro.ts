// Micro-benchmark of the host's netlink and sysctl paths (issue 12): the
// kernel calls one bridge + host-local ADD/DEL makes, without the guest, the
// gate or the daemon. In two throwaway namespaces (rtnb-h plays the host, the
// main thread sits in it for the whole run as the daemon does; rtnb-c the
// container):
//   N x [create veth (peer into the host) + get both ends, get link x3, set
//   master, bridge port, set up, 2 host + 3 container sysctls, address add,
//   set up, route add, address list, delete]
// Prints per-iteration wall, user CPU and system CPU (ms), then each step's
// median, and the cost of a bare GETLINK round trip against a full getLink.
//
//   node dist/bench/rtnl-micro.js [N]        (as root)
import { spawnSync } from 'node:child_process';
import { closeFd, openNetns, withNetns } from '../host/kernel/native.js';
import { Rtnl } from '../host/kernel/rtnl.js';
import * as sysctl from '../host/kernel/sysctl.js';

const N = Number(process.argv[2] ?? 200);
const H = 'rtnb-h', C = 'rtnb-c', BR = 'rtnb0';

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}
const cleanup = () => { for (const n of [H, C]) spawnSync('ip', ['netns', 'del', n]); };

cleanup();
ip('netns', 'add', H); ip('netns', 'add', C);
ip('-n', H, 'link', 'set', 'lo', 'up'); ip('-n', C, 'link', 'set', 'lo', 'up');
const hfd = openNetns(`/run/netns/${H}`), cfd = openNetns(`/run/netns/${C}`);

// The capability layer's sysctl.set: write unless the key holds the value already.
const ensure: (fd: number | null, key: string, v: string) => void =
  (sysctl as { sysctlEnsure?: (fd: number | null, key: string, v: string) => unknown }).sysctlEnsure
    ? (fd, key, v) => { (sysctl as any).sysctlEnsure(fd, key, v); }
    : (fd, key, v) => { if (sysctl.sysctlGet(fd, key).trim() !== v) sysctl.sysctlSet(fd, key, v); };

type Step = string;
const times = new Map<Step, number[]>();
function step<T>(name: Step, f: () => T): T {
  const t0 = process.hrtime.bigint();
  const r = f();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  (times.get(name) ?? times.set(name, []).get(name)!).push(ms);
  return r;
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

try {
  withNetns(hfd, () => {
    const h = Rtnl.open(null), c = Rtnl.open(cfd);
    h.createBridge(BR, {});
    h.addAddress(h.getLink(BR).index, '10.198.0.1/24');
    h.setLink(BR, { up: true });
    const idx = (r: Rtnl, name: string): number => ((r as any).linkIndex ? (r as any).linkIndex(name) : r.getLink(name).index);
    const masterName = (r: Rtnl, i: number): string => ((r as any).linkName ? (r as any).linkName(i) : r.getLinkByIndex(i).name);
    const rows: { wall: number; user: number; sys: number }[] = [];
    for (let i = 0; i < N + 20; i++) {
      const veth = `rtnbv${i}`;
      const u0 = process.cpuUsage(), t0 = process.hrtime.bigint();
      step('create veth + get both', () => {
        c.createVeth('eth0', veth, { peerNsFd: hfd, txqlen: 0 });
        h.getLink(veth); c.getLink('eth0');
      });
      step('get link x3 (+master name)', () => {
        const b = h.getLink(BR); h.getLink(veth); c.getLink('eth0');
        if (b.masterIndex) masterName(h, b.masterIndex);
      });
      step('set master', () => h.setLink(veth, { masterIndex: idx(h, BR) }));
      step('bridge port', () => h.setBridgePort(veth, { hairpin: false }));
      step('set up (host)', () => h.setLink(veth, { up: true }));
      step('sysctl host x2', () => {
        ensure(null, `net/ipv6/conf/${BR}/accept_ra`, '0');
        ensure(null, `net/ipv6/conf/${veth}/accept_ra`, '0');
      });
      step('sysctl container x3', () => {
        ensure(cfd, 'net/ipv6/conf/eth0/enhanced_dad', '1');
        ensure(cfd, 'net/ipv6/conf/eth0/accept_dad', '1');
        ensure(cfd, 'net/ipv4/conf/eth0/arp_notify', '1');
      });
      step('address add', () => c.addAddress(idx(c, 'eth0'), `10.198.0.${2 + (i % 200)}/24`));
      step('set up (container)', () => c.setLink('eth0', { up: true }));
      step('route add', () => c.addRoute({ family: 4, dst: '0.0.0.0/0', gw: '10.198.0.1', ifindex: idx(c, 'eth0'), scope: 'universe' }, { exclusive: false }));
      step('address list', () => h.listAddresses({ ifindex: idx(h, BR), family: 4 }));
      step('get link with master', () => { const l = h.getLink(veth); masterName(h, l.masterIndex); });
      const tAdd = process.hrtime.bigint();
      step('delete', () => c.deleteLink('eth0'));
      const u = process.cpuUsage(u0);
      if (i >= 20) rows.push({ wall: Number(tAdd - t0) / 1e6, user: u.user / 1e3, sys: u.system / 1e3 });
    }
    // A bare GETLINK (request prebuilt: what the kernel and the addon cost) vs getLink.
    const name = Buffer.from(`${BR}\0`);
    const req = Buffer.alloc(16 + 16 + 4 + 8 + 8);
    req.writeUInt32LE(req.length, 0); req.writeUInt16LE(18, 4); req.writeUInt16LE(0x5, 6);
    let o = 32;
    req.writeUInt16LE(4 + name.length, o); req.writeUInt16LE(3, o + 2); name.copy(req, o + 4); o += 4 + 8;
    req.writeUInt16LE(8, o); req.writeUInt16LE(29, o + 2); req.writeUInt32LE(8, o + 4);
    for (let i = 0; i < 2000; i++) step('bare GETLINK (requestRaw)', () => h.requestRaw('get', req));
    for (let i = 0; i < 2000; i++) step('getLink', () => h.getLink(BR));
    for (let i = 0; i < 2000; i++) step('link index', () => idx(h, BR));
    for (let i = 0; i < 2000; i++) step('sysctl get (host)', () => sysctl.sysctlGet(null, `net/ipv6/conf/${BR}/accept_ra`));
    for (let i = 0; i < 2000; i++) step('sysctl ensure, equal (container)', () => ensure(cfd, 'net/ipv4/conf/lo/arp_notify', '0'));
    h.close(); c.close();

    const m = (k: 'wall' | 'user' | 'sys') => med(rows.map((r) => r[k])).toFixed(3);
    console.log(`rtnl-micro: ${N} iterations (ADD-like sequence, delete excluded from wall)`);
    console.log(`  per iteration ms: wall ${m('wall')}  user ${m('user')}  sys ${m('sys')}  (cpu incl. delete)`);
    for (const [k, v] of times) console.log(`  ${k.padEnd(36)} median ${med(v).toFixed(4)} ms`);
  });
} finally {
  closeFd(hfd); closeFd(cfd);
  cleanup();
}
