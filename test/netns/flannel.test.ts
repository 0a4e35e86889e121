// The flannel meta-plugin (seed 004): subnet.env in, the delegate's config
// built and saved to dataDir/<container id> before the delegate runs, the
// delegate's result out; DEL replays the saved config and removes it. The
// delegate is our bridge and, side by side, the reference bridge (Debian
// 1.1.1, run from CNI_PATH under another name through allowExec; Debian
// ships no flannel plugin to compare with). Needs root. Prefix: fln-.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, CLI, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, removeHarness, writePolicy,
} from '../helpers/cni.js';
import { cleanupAll, ipJson, makeNetns, nsExec } from '../helpers/netns.js';
import { Ledger } from '../../host/gate/ledger.js';

const P = 'fln-';
const HOST = `${P}host`;
const C1 = `${P}c1`, C2 = `${P}c2`;
const CID1 = 'fln-container-1', CID2 = 'fln-container-2';
const SEED_ENV = 'FLANNEL_NETWORK=192.168.0.0/16\nFLANNEL_SUBNET=192.168.22.129/26\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n';

let h: Harness;
let subnetFile: string;
let dataDir: string;
/** CNI_PATH with the reference bridge as `ref-bridge` and the reference host-local */
let refPath: string;

function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'mynet', type: 'flannel', subnetFile, dataDir, ...extra };
}

function run(command: CniCall['command'], config: object, over: Partial<CniCall> = {}): CniReply {
  return ours(h, 'flannel', { command, hostNs: HOST, netns: C1, containerId: CID1, ifname: 'eth0', config, ...over });
}

function ok(r: CniReply, what: string): any {
  assert.is(r.code, 0, `${what} failed: ${r.stdout} ${r.stderr}`);
  return r.json;
}

function fresh(env = SEED_ENV): void {
  for (const n of [HOST, C1, C2]) makeNetns(n);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(h.storeDir, { recursive: true, force: true });
  rmSync(h.stateDir, { recursive: true, force: true });
  rmSync(join(h.dir, 'ref-ipam'), { recursive: true, force: true });
  writeFileSync(subnetFile, env);
  writePolicy(h, {});
}

const links = (ns: string) => ipJson<{ ifname: string; mtu: number; link_type: string }[]>(ns, ['link', 'show']);
const hostLinks = () => links(HOST).map((l) => l.ifname).filter((n) => n !== 'lo').sort();
const addrs = (ns: string, dev: string) => ipJson<{ addr_info: { local: string; prefixlen: number; family: string }[] }[]>(ns, ['addr', 'show', 'dev', dev])
  .flatMap((l) => l.addr_info).filter((a) => a.family === 'inet' || !a.local.startsWith('fe80')).map((a) => `${a.local}/${a.prefixlen}`);
const leases = (dir: string) => { try { return readdirSync(join(dir, 'mynet')).filter((f) => /^[0-9a-f.:]+$/.test(f)); } catch { return []; } };

/** The delegate config flannel-io/cni-plugin builds for the seed's subnet.env (keys sorted, as Go writes a map). */
const SEED_DELEGATE = (cniVersion?: string) => ({
  ...(cniVersion ? { cniVersion } : {}),
  ipMasq: true,
  ipam: { ranges: [[{ subnet: '192.168.22.128/26' }]], routes: [{ dst: '192.168.0.0/16' }], type: 'host-local' },
  isGateway: true, mtu: 1450, name: 'mynet', type: 'bridge',
});

test.before(() => {
  cleanupAll(P);
  h = makeHarness(P);
  subnetFile = join(h.dir, 'run-flannel', 'subnet.env');
  mkdirSync(join(h.dir, 'run-flannel'), { recursive: true });
  dataDir = join(h.dir, 'flannel-data');
  refPath = join(h.dir, 'refpath');
  mkdirSync(refPath, { recursive: true });
  if (hasReference()) {
    symlinkSync(join(REFERENCE_BIN, 'bridge'), join(refPath, 'ref-bridge'));
    symlinkSync(join(REFERENCE_BIN, 'host-local'), join(refPath, 'host-local'));
  }
});

test.after(() => {
  cleanupAll(P);
  removeHarness(h);
});

test('seed 004 (subnetFile in a temp dir): the container gets an address in the /26 at MTU 1450, the saved config appears (0600) and goes with DEL', () => {
  fresh();
  const c = conf({ cniVersion: '1.0.0' });
  const r = ok(run('ADD', c), 'ADD');
  assert.is(r.cniVersion, '1.0.0');
  assert.equal(r.ips.map((i: any) => [i.address, i.gateway]), [['192.168.22.130/26', '192.168.22.129']]);
  assert.equal(r.routes, [{ dst: '192.168.0.0/16' }], 'the route to the flannel network, through the bridge (the default gateway)');
  const eth0 = links(C1).find((l) => l.ifname === 'eth0')!;
  assert.is(eth0.mtu, 1450);
  assert.equal(addrs(C1, 'eth0'), ['192.168.22.130/26']);
  assert.equal(addrs(HOST, 'cni0'), ['192.168.22.129/26']);
  assert.is(links(HOST).find((l) => l.ifname === 'cni0')!.mtu, 1450);
  const route = ipJson<{ dst: string; gateway?: string }[]>(C1, ['route', 'show']).find((x) => x.dst === '192.168.0.0/16');
  assert.is(route?.gateway, '192.168.22.129');
  // the container reaches its gateway, the host's end of the bridge
  nsExec(C1, ['ping', '-c', '1', '-W', '2', '192.168.22.129']);

  const saved = join(dataDir, CID1);
  assert.is(statSync(saved).mode & 0o777, 0o600);
  assert.is(statSync(dataDir).mode & 0o777, 0o700);
  assert.is(readFileSync(saved, 'utf8'), JSON.stringify(SEED_DELEGATE('1.0.0')));
  assert.equal(readdirSync(dataDir), [CID1], 'no temp file is left beside it');
  // saved before the delegate ran: the save's record comes before the bridge's first host call
  const audit = readAudit(h);
  const saveAt = audit.findIndex((a) => a.call === 'files.save' && a.outcome === 'ok');
  const bridgeAt = audit.findIndex((a) => a.plugin === 'bridge');
  assert.ok(saveAt >= 0 && bridgeAt > saveAt, `files.save at ${saveAt}, bridge from ${bridgeAt}`);

  assert.match(nsExec(HOST, ['nft', 'list', 'ruleset']).stdout, /192\.168\.22\.130/, 'ipMasq (FLANNEL_IPMASQ=false): the bridge masquerades');
  ok(run('DEL', { ...c, prevResult: r }), 'DEL');
  assert.not.match(nsExec(HOST, ['nft', 'list', 'ruleset']).stdout, /192\.168\.22\.130/, 'no masquerade element left');
  assert.not.ok(existsSync(saved), 'DEL removes the saved config');
  assert.not.ok(links(C1).some((l) => l.ifname === 'eth0'));
  assert.equal(hostLinks(), ['cni0'], 'only the shared bridge stays, as the reference bridge leaves it');
  assert.equal(leases(h.storeDir), []);
  assert.equal(Ledger.all(h.stateDir), []);
  ok(run('DEL', c), 'second DEL (nothing saved)');
});

test('the seed\'s config verbatim ({"name":"mynet","type":"flannel"}, no cniVersion): /run/flannel/subnet.env and /var/lib/cni/flannel', () => {
  const runDir = '/run/flannel', envFile = join(runDir, 'subnet.env');
  const varDir = '/var/lib/cni/flannel';
  if (existsSync(envFile) || existsSync(join(varDir, CID1))) {
    console.log('  (skipped: this machine has its own /run/flannel/subnet.env)');
    return;
  }
  fresh();
  const madeRun = !existsSync(runDir), madeVar = !existsSync(varDir);
  try {
    mkdirSync(runDir, { recursive: true });
    writeFileSync(envFile, SEED_ENV);
    const seed = { name: 'mynet', type: 'flannel' };
    const r = ok(run('ADD', seed), 'ADD');
    // no cniVersion: the result is in 0.1.0's shape, as libcni reads the config
    assert.is(r.cniVersion, '0.1.0');
    assert.is(r.ip4.ip, '192.168.22.130/26');
    assert.is(links(C1).find((l) => l.ifname === 'eth0')!.mtu, 1450);
    const saved = join(varDir, CID1);
    assert.is(statSync(saved).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(saved, 'utf8')), SEED_DELEGATE('0.1.0'));
    ok(run('DEL', seed), 'DEL');
    assert.not.ok(existsSync(saved));
    assert.equal(Ledger.all(h.stateDir), []);
  } finally {
    rmSync(envFile, { force: true });
    if (madeRun) rmSync(runDir, { recursive: true, force: true });
    rmSync(join(varDir, CID1), { force: true });
    if (madeVar) rmSync(varDir, { recursive: true, force: true });
  }
});

test('delegating to the reference bridge (allowExec, from CNI_PATH): same result and same saved config as with ours', () => {
  if (!hasReference()) { console.log('  (skipped: no reference plugins)'); return; }
  const normalize = (x: unknown) => JSON.parse(JSON.stringify(x).replace(/"mac":"[0-9a-f:]{17}"/g, '"mac":"MAC"').replace(/veth[0-9a-f]{8}/g, 'vethX'));
  const results: Record<string, any> = {};
  const savedText: Record<string, any> = {};
  for (const impl of ['ours', 'ref'] as const) {
    fresh();
    writePolicy(h, { allowExec: ['ref-bridge'] });
    const c = impl === 'ours'
      ? conf({ cniVersion: '1.0.0', ipam: { dataDir: join(h.dir, 'ref-ipam') } })
      : conf({ cniVersion: '1.0.0', delegate: { type: 'ref-bridge', isGateway: true }, ipam: { dataDir: join(h.dir, 'ref-ipam') } });
    const r = ok(run('ADD', c, { path: refPath }), `${impl} ADD`);
    results[impl] = normalize(r);
    const saved = JSON.parse(readFileSync(join(dataDir, CID1), 'utf8'));
    savedText[impl] = { ...saved, type: 'T' };
    assert.is(links(C1).find((l) => l.ifname === 'eth0')!.mtu, 1450, `${impl}: MTU`);
    assert.equal(addrs(C1, 'eth0'), ['192.168.22.130/26'], `${impl}: address`);
    nsExec(C1, ['ping', '-c', '1', '-W', '2', '192.168.22.129']);
    ok(run('CHECK', { ...c, prevResult: r }, { path: refPath }), `${impl} CHECK`);
    ok(run('DEL', { ...c, prevResult: r }, { path: refPath }), `${impl} DEL`);
    assert.not.ok(existsSync(join(dataDir, CID1)), `${impl}: the saved config goes`);
    assert.equal(leases(join(h.dir, 'ref-ipam')), [], `${impl}: the lease goes`);
    assert.not.ok(links(C1).some((l) => l.ifname === 'eth0'), `${impl}: eth0 goes`);
    assert.equal(hostLinks(), ['cni0'], `${impl}: only the bridge stays`);
    if (impl === 'ref') assert.ok(readAudit(h).some((a) => a.call === 'exec' && a.args?.bin?.endsWith('ref-bridge')), 'the reference bridge ran');
  }
  assert.equal(results.ours, results.ref);
  assert.equal(savedText.ours, savedText.ref);
});

test('the seed\'s walkthrough with cni-wasm add/del (cnitool\'s flow: config dir, cached result): eth0 at 192.168.22.130/26, MTU 1450', () => {
  fresh();
  const confDir = join(h.dir, 'net.d'), cacheDir = join(h.dir, 'cache');
  rmSync(confDir, { recursive: true, force: true });
  rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '10-mynet.conf'), JSON.stringify({ name: 'mynet', type: 'flannel', subnetFile, dataDir }));
  const cli = (cmd: string) => nsExec(HOST, [process.execPath, CLI, cmd, 'mynet', `/run/netns/${C1}`, '--json', '--conf-dir', confDir, '--cache-dir', cacheDir],
    { env: { ...process.env, CNI_WASM_POLICY: h.policyFile, CNI_PATH: h.bin } });
  const added = JSON.parse(cli('add').stdout);
  assert.is(added.ip4.ip, '192.168.22.130/26');
  const eth0 = links(C1).find((l) => l.ifname === 'eth0')!;
  assert.is(eth0.mtu, 1450);
  assert.equal(addrs(C1, 'eth0'), ['192.168.22.130/26']);
  assert.is(readdirSync(dataDir).length, 1, 'one saved config, named by the cnitool container id');
  assert.match(readdirSync(dataDir)[0], /^cnitool-[0-9a-f]{20}$/);
  cli('del');
  assert.equal(readdirSync(dataDir), []);
  assert.not.ok(links(C1).some((l) => l.ifname === 'eth0'));
  assert.equal(leases(h.storeDir), []);
  assert.equal(Ledger.all(h.stateDir), []);
});

for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
  test(`libcni's sequence at ${version}: ADD, CHECK, DEL with the cached result, DEL again; nothing left`, () => {
    fresh();
    const c = conf({ cniVersion: version });
    const v = run('VERSION', { cniVersion: version });
    assert.ok(v.json.supportedVersions.includes(version));
    const r = ok(run('ADD', c), 'ADD');
    assert.is(r.cniVersion, version);
    assert.equal(r.ips.map((i: any) => i.address), ['192.168.22.130/26']);
    const cached = { ...c, prevResult: r };
    if (version !== '0.3.1') ok(run('CHECK', cached), 'CHECK');
    ok(run('DEL', cached), 'DEL');
    ok(run('DEL', cached), 'DEL again');
    assert.equal(readdirSync(dataDir), []);
    assert.equal(leases(h.storeDir), []);
    assert.equal(hostLinks(), ['cni0']);
    assert.equal(Ledger.all(h.stateDir), []);
  });
}

test('dual stack: FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET give a second range and route', () => {
  fresh(SEED_ENV + 'FLANNEL_IPV6_NETWORK=fd42::/48\nFLANNEL_IPV6_SUBNET=fd42:0:0:16::1/64\n');
  const c = conf({ cniVersion: '1.0.0' });
  const r = ok(run('ADD', c), 'ADD');
  assert.equal(r.ips.map((i: any) => i.address), ['192.168.22.130/26', 'fd42:0:0:16::2/64']);
  const saved = JSON.parse(readFileSync(join(dataDir, CID1), 'utf8'));
  assert.equal(saved.ipam.ranges, [[{ subnet: '192.168.22.128/26' }], [{ subnet: 'fd42:0:0:16::/64' }]]);
  assert.equal(saved.ipam.routes, [{ dst: '192.168.0.0/16' }, { dst: 'fd42::/48' }]);
  ok(run('DEL', { ...c, prevResult: r }), 'DEL');
  assert.equal(readdirSync(dataDir), []);
});

test('the delegate dictionary and ipam are merged as flannel does (delegate keys win, ipam routes kept, flannel\'s appended)', () => {
  // 192.168.1.0/16 is the same network: flannel keeps one route for it
  fresh('FLANNEL_NETWORK=192.168.0.0/16,192.168.1.0/16,172.30.0.0/16\nFLANNEL_SUBNET=192.168.22.129/26\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n');
  const c = conf({
    cniVersion: '1.0.0', delegate: { bridge: 'flbr9', hairpinMode: true, comment: '<a&b>' },
    ipam: { routes: [{ dst: '10.9.0.0/16' }] }, runtimeConfig: { portMappings: [] },
  });
  const r = ok(run('ADD', c), 'ADD');
  const text = readFileSync(join(dataDir, CID1), 'utf8');
  assert.ok(text.includes('"comment":"\\u003ca\\u0026b\\u003e"'), `HTML-safe as Go writes strings: ${text}`);
  const saved = JSON.parse(text);
  assert.is(saved.comment, '<a&b>');
  assert.equal(Object.keys(saved), [...Object.keys(saved)].sort(), 'keys sorted as Go writes a map');
  assert.is(saved.ipMasq, false, 'flanneld masquerades (FLANNEL_IPMASQ=true), so the bridge does not');
  assert.is(saved.mtu, 1400);
  assert.is(saved.bridge, 'flbr9');
  assert.is(saved.hairpinMode, true);
  assert.equal(saved.runtimeConfig, { portMappings: [] });
  assert.equal(saved.ipam.routes, [{ dst: '10.9.0.0/16' }, { dst: '192.168.0.0/16' }, { dst: '172.30.0.0/16' }]);
  assert.equal(r.routes, saved.ipam.routes, 'the delegate\'s result carries them');
  assert.ok(hostLinks().includes('flbr9'));
  ok(run('DEL', { ...c, prevResult: r }), 'DEL');
});

// ---- errors: clear, and nothing left ---------------------------------------

function nothingLeft(what: string): void {
  assert.equal(hostLinks(), [], `${what}: no link in the host`);
  assert.not.ok(links(C1).some((l) => l.ifname === 'eth0'), `${what}: no eth0`);
  assert.equal(existsSync(dataDir) ? readdirSync(dataDir) : [], [], `${what}: no saved config`);
  assert.equal(leases(h.storeDir), [], `${what}: no lease`);
  assert.equal(Ledger.all(h.stateDir), [], `${what}: ledger empty`);
}

test('a missing subnet.env: flannel\'s message, code 999, nothing left', () => {
  fresh();
  rmSync(subnetFile);
  const r = run('ADD', conf({ cniVersion: '1.0.0' }));
  assert.is(r.code, 1);
  assert.is(r.json.code, 999);
  assert.is(r.json.msg, `failed to load flannel 'subnet.env' file: open ${subnetFile}: no such file or directory. Check the flannel pod log for this node.`);
  assert.not.match(r.stdout + r.stderr, /at .*\.js:\d+/, 'no stack trace');
  nothingLeft('missing subnet.env');
});

test('bad subnet.env values: each named as flannel names it, nothing left', () => {
  const cases: [string, string][] = [
    ['FLANNEL_NETWORK=192.168.0.0/16\nFLANNEL_SUBNET=192.168.22.300/26\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n', 'invalid CIDR address: 192.168.22.300/26'],
    ['FLANNEL_NETWORK=192.168.0.0/16,bogus\nFLANNEL_SUBNET=192.168.22.129/26\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n', 'invalid CIDR address: bogus'],
    ['FLANNEL_NETWORK=192.168.0.0/16\nFLANNEL_SUBNET=192.168.22.129/26\nFLANNEL_MTU=big\nFLANNEL_IPMASQ=false\n', 'strconv.ParseUint: parsing "big": invalid syntax'],
    ['FLANNEL_NETWORK=192.168.0.0/16\nFLANNEL_SUBNET=192.168.22.129/26\nFLANNEL_IPMASQ=false\n', `${'SUBNET_FILE'} is missing FLANNEL_MTU`],
    ['FLANNEL_MTU=1450\n', `${'SUBNET_FILE'} is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_IPMASQ`],
    ['FLANNEL_NETWORK=192.168.0.0/16\nFLANNEL_SUBNET\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n', 'line "FLANNEL_SUBNET" has no "="'],
  ];
  for (const [env, msg] of cases) {
    fresh(env);
    const r = run('ADD', conf({ cniVersion: '1.0.0' }));
    assert.is(r.code, 1, env);
    assert.is(r.json.code, 999);
    assert.ok(r.json.msg.startsWith("failed to load flannel 'subnet.env' file: "), r.json.msg);
    assert.ok(r.json.msg.includes(msg.replace('SUBNET_FILE', subnetFile)), `${r.json.msg} names ${msg}`);
    nothingLeft(msg);
  }
});

test('bad config: flannel\'s messages for the delegate dictionary and key types', () => {
  fresh();
  const cases: [Record<string, unknown>, string][] = [
    [{ delegate: { type: 5 } }, "'delegate' dictionary, if present, must have (string) 'type' field"],
    [{ delegate: { name: 'x' } }, "'delegate' dictionary must not have 'name' field, it'll be set by flannel"],
    [{ delegate: { ipam: {} } }, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel"],
    [{ subnetFile: 7 }, 'failed to load flannel netconf file: failed to load netconf: json: cannot unmarshal number into Go struct field NetConf.subnetFile of type string'],
    [{ ipam: { routes: [{ dst: 'nope' }] } }, 'failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: invalid CIDR address: nope'],
  ];
  for (const [extra, msg] of cases) {
    const r = run('ADD', conf({ cniVersion: '1.0.0', ...extra }));
    assert.is(r.code, 1, msg);
    assert.is(r.json.msg, msg);
    nothingLeft(msg);
  }
});

test('a failed delegate ADD takes back the saved config (and the delegate\'s objects)', () => {
  fresh();
  // the bridge name is taken by a non-bridge: our bridge fails after flannel saved its config
  nsExec(HOST, ['ip', 'link', 'add', 'flnbusy', 'type', 'veth', 'peer', 'name', 'flnbusy2']);
  const r = run('ADD', conf({ cniVersion: '1.0.0', delegate: { bridge: 'flnbusy' } }));
  assert.is(r.code, 1);
  assert.match(r.json.msg, /^failed to delegate add: .*flnbusy/);
  assert.equal(readdirSync(dataDir), [], 'the saved config is gone');
  assert.equal(Ledger.all(h.stateDir), []);
  assert.equal(leases(h.storeDir), []);
  assert.equal(hostLinks(), ['flnbusy', 'flnbusy2']);
  // the audit shows the save and its undo
  const calls = readAudit(h).map((a) => a.call);
  assert.ok(calls.includes('files.save'));
});

test('a repeated ADD that fails keeps the first ADD\'s saved config, so its DEL still releases everything', () => {
  fresh();
  const c = conf({ cniVersion: '1.0.0' });
  const r = ok(run('ADD', c), 'ADD');
  const first = readFileSync(join(dataDir, CID1), 'utf8');
  const again = run('ADD', c);
  assert.is(again.code, 1, 'eth0 exists already');
  assert.match(again.json.msg, /^failed to delegate add: /);
  assert.is(readFileSync(join(dataDir, CID1), 'utf8'), first);
  assert.ok(links(C1).some((l) => l.ifname === 'eth0'), 'the first attachment is untouched');
  ok(run('DEL', { ...c, prevResult: r }), 'DEL');
  assert.equal(readdirSync(dataDir), []);
  assert.equal(leases(h.storeDir), []);
  assert.equal(Ledger.all(h.stateDir), []);
});

test('DEL of an unparseable saved config removes it and succeeds; a foreign file in dataDir is never replaced', () => {
  fresh();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dataDir, CID1), 'not json{', { mode: 0o600 });
  ok(run('DEL', conf({ cniVersion: '1.0.0' })), 'DEL');
  assert.not.ok(existsSync(join(dataDir, CID1)));
  // a file that is not a saved config (not a JSON object) is not overwritten by ADD
  writeFileSync(join(dataDir, CID1), 'root:x:0:0\n', { mode: 0o600 });
  const r = run('ADD', conf({ cniVersion: '1.0.0' }));
  assert.is(r.code, 1);
  assert.match(r.json.msg, /not a saved config/);
  assert.is(readFileSync(join(dataDir, CID1), 'utf8'), 'root:x:0:0\n');
  rmSync(join(dataDir, CID1));
  nothingLeft('foreign file');
});

test('hostile paths: /etc/shadow yields nothing, dataDir may not be cni-wasm\'s own dirs, /etc, a symlink, or host-local\'s store', () => {
  fresh();
  if (existsSync('/etc/shadow')) {
    const r = run('ADD', conf({ cniVersion: '1.0.0', subnetFile: '/etc/shadow' }));
    assert.is(r.code, 1);
    assert.match(r.json.msg, /^failed to load flannel 'subnet.env' file: \/etc\/shadow is missing FLANNEL_NETWORK/);
    assert.not.match(r.stdout, /root:/, 'nothing of the file crosses');
  }
  const link = join(h.dir, 'to-state');
  rmSync(link, { force: true });
  mkdirSync(h.stateDir, { recursive: true });
  symlinkSync(h.stateDir, link);
  const cases: [string, RegExp][] = [
    [h.stateDir, /reaches cni-wasm's own directory/],
    [join(h.stateDir, 'ledger'), /reaches cni-wasm's own directory/],
    [join(link, 'x'), /reaches cni-wasm's own directory/],
    [h.storeDir, /host-local's store/],
    ['/etc', /holds a directory/],
    [`${dataDir}/../x`, /absolute, normalized/],
    ['relative/dir', /absolute, normalized/],
  ];
  for (const [dir, re] of cases) {
    const r = run('ADD', conf({ cniVersion: '1.0.0', dataDir: dir }));
    assert.is(r.code, 1, dir);
    assert.match(r.json.msg, re, `${dir}: ${r.json.msg}`);
  }
  // a container id that walks out of dataDir never reaches the plugin (libcni's rule, checked by the host)
  const walk = run('ADD', conf({ cniVersion: '1.0.0' }), { containerId: '../../escape' });
  assert.is(walk.code, 1);
  assert.match(walk.json.msg, /CNI_CONTAINERID/);
  assert.not.ok(existsSync(join(h.dir, 'escape')));
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.not.ok(existsSync(join(h.stateDir, 'ledger', CID1)));
  assert.equal(hostLinks(), []);
  assert.equal(leases(h.storeDir), []);
});

test('GC removes the saved configs (and the attachments) of containers not in valid-attachments, and keeps the others', () => {
  fresh();
  const c = conf({ cniVersion: '1.1.0' });
  const r1 = ok(run('ADD', c), 'ADD c1');
  const r2 = ok(run('ADD', c, { netns: C2, containerId: CID2 }), 'ADD c2');
  assert.equal(readdirSync(dataDir).sort(), [CID1, CID2]);
  assert.is(leases(h.storeDir).length, 2);
  ok(run('GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: CID1, ifname: 'eth0' }] }, { netns: '', containerId: '' }), 'GC');
  assert.equal(readdirSync(dataDir), [CID1]);
  assert.equal(leases(h.storeDir), ['192.168.22.130'], 'host-local released the dead container\'s lease');
  assert.not.ok(links(C2).some((l) => l.ifname === 'eth0'), 'the dead attachment\'s veth went with its ledger');
  assert.ok(links(C1).some((l) => l.ifname === 'eth0'));
  ok(run('DEL', { ...c, prevResult: r1 }), 'DEL c1');
  ok(run('DEL', { ...c, prevResult: r2 }, { netns: C2, containerId: CID2 }), 'DEL c2 (already collected)');
  assert.equal(readdirSync(dataDir), []);
  assert.equal(Ledger.all(h.stateDir), []);
});

test.run();
