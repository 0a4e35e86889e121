// The dhcp host interfaces and the DHCP daemon's flag parsing, without a
// kernel or a server: what the gate refuses before anything is sent, that
// packet I/O exists only inside the daemon, and the daemon's flags as the
// reference's Go flag package reads them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { bindInterface } from '../../host/gate/gate.js';
import { defaultPolicy } from '../../host/gate/policy.js';
import { dhcp } from '../../host/capabilities/dhcp.js';
import { dhcpWire } from '../../host/capabilities/dhcp-wire.js';
import { clientIdOf, parseDaemonFlags, parseDuration } from '../../host/dhcp/daemon.js';
import { fakeCall } from '../helpers/gate.js';

const sig = (wit: string, params: string[]) => ({ wit, params, hasResult: true });
const WIRE = {
  send: sig('send', ['data', 'to']), recv: sig('recv', ['timeout-ms']), hwaddr: sig('hwaddr', []),
  nowMs: sig('now-ms', []), random: sig('random', []),
};
const DHCP = { acquire: sig('acquire', ['socket-path', 'opts']), check: sig('check', ['socket-path']), release: sig('release', ['socket-path']) };
const noOpts = { provide: [], request: new Uint8Array([3, 1]) };

test('dhcp-wire: only with its grant, and only inside the daemon (no socket in a CNI call: ENODEV)', () => {
  const denied = fakeCall({ grants: { log: true } });
  const w0 = bindInterface(denied.ctx, 'dhcp-wire', dhcpWire, WIRE) as any;
  assert.is(w0.recv(100).val.code, 'EDENIED');
  assert.match(w0.recv(100).val.message, '"dhcpWire"');
  const t = fakeCall({ type: 'dhcp', grants: { dhcpWire: true } });
  const w = bindInterface(t.ctx, 'dhcp-wire', dhcpWire, WIRE) as any;
  for (const r of [w.recv(100), w.hwaddr(), w.send(new Uint8Array(300), '')]) {
    assert.is(r.tag, 'err');
    assert.is(r.val.code, 'ENODEV');
  }
  assert.is(w.nowMs().tag, 'ok');
});

test('dhcp-wire: what may be sent is checked before anything is (size, destination)', () => {
  const t = fakeCall({ type: 'dhcp', grants: { dhcpWire: true } });
  const w = bindInterface(t.ctx, 'dhcp-wire', dhcpWire, WIRE) as any;
  assert.match(w.send(new Uint8Array(100), '').val.message, '240 to 1500 bytes');
  assert.match(w.send(new Uint8Array(2000), '').val.message, '240 to 1500 bytes');
  for (const to of ['10.0.0.300', '0.0.0.0', '255.255.255.255', 'example.com', '::1']) {
    assert.match(w.send(new Uint8Array(300), to).val.message, 'is not a unicast IPv4 address', to);
  }
  assert.ok(t.audit.every((a) => a.verdict === 'deny'));
});

test('dhcp: the socket path and the options are checked before anything is sent', () => {
  const t = fakeCall({ type: 'dhcp', grants: { dhcp: true } });
  const d = bindInterface(t.ctx, 'dhcp', dhcp, DHCP) as any;
  assert.match(d.acquire('relative.sock', noOpts).val.message, 'must be an absolute, normalized path');
  assert.match(d.acquire('/run/../etc/x.sock', noOpts).val.message, 'must be an absolute, normalized path');
  assert.match(d.acquire(`/${'a'.repeat(120)}`, noOpts).val.message, 'longer than a unix socket path');
  assert.match(d.acquire('', { provide: [{ code: 12, value: 'x'.repeat(256) }], request: new Uint8Array() }).val.message, 'longer than 255 bytes');
  assert.match(d.acquire('', { provide: [{ code: 53, value: 'x' }], request: new Uint8Array() }).val.message, "is the client's own");
  const none = fakeCall({ grants: { log: true } });
  assert.match((bindInterface(none.ctx, 'dhcp', dhcp, DHCP) as any).release('').val.message, '"dhcp"');
});

test('dhcp: no daemon on the socket is ENODAEMON, naming the socket and `dhcp daemon`', () => {
  const t = fakeCall({ type: 'dhcp', grants: { dhcp: true } });
  (t.ctx as any).ns = { containerPath: '/run/netns/x' };
  const d = bindInterface(t.ctx, 'dhcp', dhcp, DHCP) as any;
  const sock = join(t.dir, 'none.sock');
  const r = d.acquire(sock, noOpts);
  assert.is(r.val.code, 'ENODAEMON');
  assert.match(r.val.message, sock);
  assert.match(r.val.message, '`dhcp daemon`');
});

test('daemon flags: as the reference (Go flag syntax, durations), our -statedir, bad input refused', () => {
  const pol = { ...defaultPolicy(), stateDir: '/var/lib/cni-wasm' };
  const d = parseDaemonFlags([], pol);
  assert.equal([d.socketPath, d.stateDir, d.broadcast, d.timeoutMs, d.resendMaxMs], ['/run/cni/dhcp.sock', '/var/lib/cni-wasm/dhcp', false, 10_000, 62_000]);
  const o = parseDaemonFlags(['-socketpath', '/tmp/d.sock', '--broadcast', '-timeout=1m30s', '-resendmax', '500ms', '-statedir=/tmp/st', '-hostprefix', '/host'], pol);
  assert.equal([o.socketPath, o.broadcast, o.timeoutMs, o.resendMaxMs, o.stateDir, o.hostPrefix], ['/tmp/d.sock', true, 90_000, 500, '/tmp/st', '/host']);
  assert.is(parseDaemonFlags(['-broadcast=false'], pol).broadcast, false);
  assert.throws(() => parseDaemonFlags(['-nope'], pol), /flag provided but not defined: -nope/);
  assert.throws(() => parseDaemonFlags(['-timeout', '10'], pol), /invalid value "10" for flag -timeout/);
  assert.throws(() => parseDaemonFlags(['-socketpath'], pol), /flag needs an argument/);
  assert.is(parseDuration('2h1m'), 7_260_000);
});

test("the reference's client id: containerID/netName/ifName, cut to 254 bytes", () => {
  assert.is(clientIdOf('c1', 'net', 'eth0'), 'c1/net/eth0');
  assert.is(Buffer.byteLength(clientIdOf('x'.repeat(300), 'net', 'eth0')), 254);
});

test.run();
