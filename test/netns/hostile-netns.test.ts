// Class 7 of issue 7, namespace input: CNI_NETNS must be a network namespace
// and not the plugin's own. The host's own namespace (/proc/self/ns/net seen
// from the plugin), a FIFO, a regular file, a directory or a namespace of
// another type is refused with a CNI error at once, before any plugin runs,
// and nothing changes in the (throwaway) host. The reference plugins accept
// the host's own namespace (bridge puts "eth0" beside the bridge, loopback
// DEL takes the host's lo down); ours answers 8 (libcni's ErrInvalidNetNS).
// For the rest both refuse, the reference with 999 (and, for bridge, after
// creating the bridge, which it leaves behind), ours with 4 (a bad CNI_NETNS)
// before anything runs. Needs root. Prefix: hs-n-.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type CniCall, type CniReply, type Harness, hasReference, makeHarness, ours, readAudit, reference, removeHarness } from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';

const P = 'hs-n-';
const HOST = `${P}host`;
let h: Harness;
let tmp: string;
const haveRef = hasReference();

const hostState = () => ipJson<any[]>(HOST, ['link', 'show']).map((l) => `${l.ifname}:${l.flags}`).join(',');

function call(type: string, command: 'ADD' | 'DEL', netnsPath: string, cid: string): CniCall {
  return {
    command, hostNs: HOST, containerId: cid, ifname: 'eth0', env: { CNI_NETNS: netnsPath },
    config: type === 'bridge'
      ? { cniVersion: '1.0.0', name: 'hsnet', type, bridge: 'hsbr0', ipam: { type: 'host-local', subnet: '10.77.0.0/24', dataDir: join(tmp, 'ipam') } }
      : { cniVersion: '1.0.0', name: 'hsnet', type },
  };
}

function refused(r: CniReply, re: RegExp, code: number): void {
  assert.ok(r.json, `one JSON document: ${r.stdout} ${r.stderr}`);
  assert.is(r.code, 1);
  assert.is(r.json.code, code, `${r.json.msg} ${r.json.details ?? ''}`);
  assert.match(r.json.msg, re);
  assert.not.match(r.stdout, /^\s+at /m);
}

test.before(() => {
  cleanupAll(P);
  makeNetns(HOST);
  tmp = mkdtempSync(join(tmpdir(), 'hs-n-'));
  execFileSync('mkfifo', [join(tmp, 'fifo')]);
  writeFileSync(join(tmp, 'file'), 'not a namespace\n');
  mkdirSync(join(tmp, 'dir'));
  h = makeHarness('hs-n-');
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the plugin\'s own namespace as CNI_NETNS is refused (bridge ADD, loopback ADD and DEL); the host is untouched', () => {
  for (const [type, command] of [['bridge', 'ADD'], ['loopback', 'ADD'], ['loopback', 'DEL'], ['bridge', 'DEL']] as const) {
    const before = hostState();
    const t0 = Date.now();
    const r = ours(h, type, call(type, command, '/proc/self/ns/net', `hs-n-own-${type}-${command}`));
    refused(r, /CNI_NETNS "\/proc\/self\/ns\/net" is the plugin's own \(the host's\) network namespace/, 8);
    assert.match(r.json.details, /should not be the same/);
    assert.ok(Date.now() - t0 < 10_000);
    assert.is(hostState(), before, `${type} ${command}: nothing changed on the host`);
    // no plugin ran: the one record is the invocation's refusal of the namespace
    const recs = readAudit(h).filter((x) => x.containerId === `hs-n-own-${type}-${command}`);
    assert.equal(recs.map((x) => `${x.call} ${x.verdict}`), ['invoke.netns deny'], 'no plugin ran; the refusal is audited');
  }
  assert.ok(ipJson<any[]>(HOST, ['link', 'show', 'dev', 'lo'])[0].flags.includes('UP'), 'host lo is still up');
});

test('a FIFO, a regular file, a directory, a mount namespace, /dev/zero are refused at once with code 4; the reference refuses them too', () => {
  const cases: [string, RegExp][] = [
    [join(tmp, 'fifo'), /is not a namespace file: unknown FS magic/],
    [join(tmp, 'file'), /is not a namespace file: unknown FS magic/],
    [join(tmp, 'dir'), /is not a namespace file/],
    ['/proc/self/ns/mnt', /not of a network namespace/],
    ['/dev/zero', /is not a namespace file/],
  ];
  for (const [path, re] of cases) {
    const before = hostState();
    const t0 = Date.now();
    const r = ours(h, 'bridge', call('bridge', 'ADD', path, 'hs-n-bad'));
    const ms = Date.now() - t0;
    refused(r, re, 4);
    assert.ok(r.json.msg.startsWith(`failed to open netns "${path}"`), r.json.msg);
    assert.ok(ms < 10_000, `${path}: ${ms} ms`);
    assert.is(hostState(), before, `${path}: nothing changed`);
    if (haveRef && path !== '/dev/zero') {
      const ref = reference('bridge', call('bridge', 'ADD', path, 'hs-n-bad-ref'));
      assert.is.not(ref.code, 0, `reference refuses ${path} too`);
      assert.ok(ref.json.msg.includes(path), ref.json.msg);
      // (the reference creates the bridge before it opens the netns, and leaves it)
      nsExec(HOST, ['ip', 'link', 'del', 'hsbr0'], { check: false });
    }
  }
});

test('DEL with a vanished CNI_NETNS still succeeds, as the spec asks', () => {
  const r = ours(h, 'loopback', call('loopback', 'DEL', join(tmp, 'gone'), 'hs-n-gone'));
  assert.is(r.code, 0, r.stdout);
  if (haveRef) assert.is(reference('loopback', call('loopback', 'DEL', join(tmp, 'gone'), 'hs-n-gone')).code, 0);
});

test.run();
