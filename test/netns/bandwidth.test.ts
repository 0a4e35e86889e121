// The bandwidth plugin, chained after a bridge as in seed 000's conflist
// (renamed bridge and subnets, IPAM state in temp dirs), against the
// reference chain (Debian containernetworking-plugins 1.1.1) side by side:
// tc state, results, CHECK, DEL, errors, and a hostile plugin that tries to
// shape links it does not own. Needs root. Prefix: bw-.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type CniCall, type CniReply, type Harness, REFERENCE_BIN, hasReference, makeHarness, ours, readAudit, reference, removeHarness,
} from '../helpers/cni.js';
import { buildFixtures, componentPath, installThirdParty } from '../helpers/fixtures.js';
import { cleanupAll, ipJson, makeNetns, netnsPath, nsExec } from '../helpers/netns.js';
import { captureNetlink, hasStrace, msgType, normalized } from '../helpers/strace.js';

const P = 'bw-';
/** which implementation runs the bridge and which the bandwidth plugin */
type Impl = 'ours' | 'ref';
interface Side { name: string; bridge: Impl; bandwidth: Impl }
const OURS: Side = { name: 'o', bridge: 'ours', bandwidth: 'ours' };
const REF: Side = { name: 'r', bridge: 'ref', bandwidth: 'ref' };
const MIXED: Side = { name: 'm', bridge: 'ref', bandwidth: 'ours' };
const hostNs = (s: Side) => `${P}${s.name}-host`;
const ctrNs = (s: Side, c = 'a') => `${P}${s.name}-${c}`;

let h: Harness;
let work: string;

const CAP_ARGS = { bandwidth: { ingressRate: 8000000, ingressBurst: 80000, egressRate: 16000000, egressBurst: 160000 } };

/** Seed 000's conflist with our names, at cniVersion v. */
function conflist(v: string, s: Side): any {
  return {
    cniVersion: v,
    name: 'bwnet',
    plugins: [
      {
        type: 'bridge', bridge: 'bwbr0', isGateway: true, ipMasq: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.231.0.0/24' }], [{ subnet: 'fd31:8dba:82e1::/64' }]],
          // the seed's second route (fde4:8dba:82e1::1/64) has host bits set, which
          // the reference bridge's CHECK then cannot find; a v6 default here
          routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
          dataDir: join(work, `ipam-${s.name}`),
        },
        dns: { nameservers: ['8.8.8.8'] },
      },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  };
}

/** One plugin's config as libcni builds it: name/version, runtimeConfig for its capabilities, prevResult. */
function pluginConf(list: any, i: number, prev: any, capArgs: any): any {
  const p = list.plugins[i];
  const c: any = { cniVersion: list.cniVersion, name: list.name, ...p };
  for (const cap of Object.keys(p.capabilities ?? {})) {
    if (p.capabilities[cap] && capArgs[cap] !== undefined) c.runtimeConfig = { ...(c.runtimeConfig ?? {}), [cap]: capArgs[cap] };
  }
  if (prev !== undefined) c.prevResult = prev;
  return c;
}

function exec(impl: Impl, type: string, call: CniCall): CniReply {
  return impl === 'ours' ? ours(h, type, { path: h.bin, ...call }) : reference(type, { path: REFERENCE_BIN, ...call });
}

function callFor(s: Side, command: CniCall['command'], config: any, c = 'a', over: Partial<CniCall> = {}): CniCall {
  return { command, hostNs: hostNs(s), netns: ctrNs(s, c), containerId: `bw-ctr-${c}`, ifname: 'eth0', config, ...over };
}

/** libcni's ADD of a conflist: each plugin gets the previous one's result. */
function chainAdd(s: Side, list: any, c = 'a', capArgs: any = CAP_ARGS): any {
  let prev: any;
  for (let i = 0; i < list.plugins.length; i++) {
    const type = list.plugins[i].type;
    const r = exec(type === 'bandwidth' ? s.bandwidth : s.bridge, type, callFor(s, 'ADD', pluginConf(list, i, prev, capArgs), c));
    assert.is(r.code, 0, `${s.name} ${type} ADD: ${r.stdout} ${r.stderr}`);
    prev = r.json;
  }
  return prev;
}

/** CHECK (in order) or DEL (in reverse) with the cached ADD result as prevResult. */
function chainRun(s: Side, command: 'CHECK' | 'DEL', list: any, cached: any, c = 'a', capArgs: any = CAP_ARGS, over: Partial<CniCall> = {}): CniReply[] {
  const idx = list.plugins.map((_: unknown, i: number) => i);
  if (command === 'DEL') idx.reverse();
  return idx.map((i: number) => {
    const type = list.plugins[i].type;
    return exec(type === 'bandwidth' ? s.bandwidth : s.bridge, type, callFor(s, command, pluginConf(list, i, cached, capArgs), c, over));
  });
}

const okAll = (rs: CniReply[], what: string) => rs.forEach((r) => assert.is(r.code, 0, `${what}: ${r.stdout} ${r.stderr}`));

/** okAll for a chain of [bridge, bandwidth] (DEL: [bandwidth, bridge]): both calls must pass. */
function okChain(_s: Side, command: 'CHECK' | 'DEL', rs: CniReply[], _v: string, what: string): void {
  const [br, bw] = command === 'DEL' ? [rs[1], rs[0]] : [rs[0], rs[1]];
  assert.is(bw.code, 0, `${what} (bandwidth): ${bw.stdout} ${bw.stderr}`);
  assert.is(br.code, 0, `${what} (bridge): ${br.stdout} ${br.stderr}`);
}

const tcJson = (ns: string, args: string[]): any[] => {
  const out = nsExec(ns, ['tc', '-j', ...args]).stdout.trim();
  return out ? JSON.parse(out) : [];
};

/** The host side's veth of container c (the bridge port). */
function hostVeth(s: Side): string {
  return ipJson<any[]>(hostNs(s), ['-d', 'link', 'show', 'type', 'veth']).map((l) => l.ifname as string)[0];
}

/** All qdiscs of the host side, veth names replaced. */
function qdiscState(s: Side): any[] {
  const v = hostVeth(s);
  return tcJson(hostNs(s), ['qdisc', 'show']).map((q) => ({ ...q, dev: q.dev === v ? 'VETH' : q.dev }));
}

function filterState(s: Side): any[] {
  const v = hostVeth(s);
  return v ? tcJson(hostNs(s), ['filter', 'show', 'dev', v, 'ingress']) : [];
}

const ifbs = (s: Side): any[] => ipJson<any[]>(hostNs(s), ['-d', 'link', 'show', 'type', 'ifb']);

function fresh(...sides: Side[]): void {
  for (const s of sides) {
    for (const n of [hostNs(s), ctrNs(s, 'a'), ctrNs(s, 'b')]) makeNetns(n);
    rmSync(join(work, `ipam-${s.name}`), { recursive: true, force: true });
  }
  rmSync(h.stateDir, { recursive: true, force: true });
}

test.before(() => {
  try {
    cleanupAll(P);
    work = mkdtempSync(join(tmpdir(), 'bw-work-'));
    h = makeHarness('bw-');
  } catch (e) {
    console.error('bandwidth test setup failed:', e);
    throw e;
  }
});

test.after(() => {
  cleanupAll(P);
  if (h) removeHarness(h);
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------- parity

for (const v of ['0.4.0', '1.0.0']) {
  test(`seed 000 chain at ${v}: our bridge + bandwidth give the reference chain's tc state, result, CHECK and DEL`, () => {
    if (!hasReference()) { console.log('  (skipped: no reference plugins)'); return; }
    fresh(OURS, REF);
    const ro = chainAdd(OURS, conflist(v, OURS));
    const rr = chainAdd(REF, conflist(v, REF));

    // the qdiscs, as `tc -j qdisc show` shows them
    assert.equal(qdiscState(OURS), qdiscState(REF));
    const q = qdiscState(OURS);
    assert.ok(q.some((x) => x.dev === 'VETH' && x.kind === 'tbf' && x.options.rate === 1000000 && x.options.burst === 10000), JSON.stringify(q));
    assert.ok(q.some((x) => x.dev === 'VETH' && x.kind === 'ingress'), JSON.stringify(q));
    // the IFB: the reference's name, MTU, txqueuelen, up
    const [io, ir] = [ifbs(OURS), ifbs(REF)];
    assert.is(io.length, 1);
    const pick = (l: any) => ({ name: l.ifname, mtu: l.mtu, txqlen: l.txqlen, flags: l.flags, kind: l.linkinfo?.info_kind });
    assert.equal(pick(io[0]), pick(ir[0]));
    assert.match(io[0].ifname, /^bwp[0-9a-f]{12}$/);
    // the filter: the reference 1.1.1 adds a second mirred action that is
    // never reached (the first steals the packet); we add the one that acts
    const fo = filterState(OURS), fr = filterState(REF);
    const lastRef = fr[fr.length - 1];
    assert.is(lastRef.options.actions.length, 2);
    assert.is(lastRef.options.actions[1].control_action.type, 'pass');
    lastRef.options.actions = lastRef.options.actions.slice(0, 1);
    assert.equal(fo, fr);

    // results: the IFB appended to the prevResult's interfaces
    const norm = (r: any) => JSON.parse(JSON.stringify(r).replace(/veth[0-9a-f]{8}/g, 'VETH').replace(/"mac":"[0-9a-f:]+"/g, '"mac":"M"').replace(/bw-[or]-a/g, 'CTR'));
    assert.equal(norm(ro), norm(rr));
    assert.is(ro.interfaces[ro.interfaces.length - 1].name, io[0].ifname);
    assert.is(ro.cniVersion, v);

    // CHECK with the ADD result as prevResult
    okChain(OURS, 'CHECK', chainRun(OURS, 'CHECK', conflist(v, OURS), ro), v, 'our CHECK');
    okAll(chainRun(REF, 'CHECK', conflist(v, REF), rr), 'reference CHECK');
    // the reference's CHECK accepts what we made, and ours what it made
    const refOnOurs = exec('ref', 'bandwidth', callFor(OURS, 'CHECK', pluginConf(conflist(v, OURS), 1, ro, CAP_ARGS)));
    assert.is(refOnOurs.code, 0, refOnOurs.stdout);
    const oursOnRef = exec('ours', 'bandwidth', callFor(REF, 'CHECK', pluginConf(conflist(v, REF), 1, rr, CAP_ARGS)));
    assert.is(oursOnRef.code, 0, oursOnRef.stdout);

    // DEL twice, then nothing is left on the host but the bridge
    for (let i = 0; i < 2; i++) {
      okChain(OURS, 'DEL', chainRun(OURS, 'DEL', conflist(v, OURS), ro), v, `our DEL #${i + 1}`);
      okAll(chainRun(REF, 'DEL', conflist(v, REF), rr), `reference DEL #${i + 1}`);
    }
    assert.equal(ipJson<any[]>(hostNs(OURS), ['link', 'show', 'type', 'veth']), [], 'no veth left');
    assert.equal(qdiscState(OURS), qdiscState(REF));
    assert.not.ok(tcJson(hostNs(OURS), ['qdisc', 'show']).some((x) => x.kind === 'tbf' || x.kind === 'ingress'), 'no tbf or ingress qdisc left');
    assert.is(ifbs(OURS).length, 0);
    assert.is(ifbs(REF).length, 0);
    const ledger = join(h.stateDir, 'ledger', 'bwnet');
    const left = existsSync(ledger) ? readdirSync(ledger) : [];
    assert.equal(left, [], `ledger files left: ${left}`);
  });
}

test('the tbf and IFB messages our bandwidth sends are byte for byte the reference\'s', () => {
  if (!hasReference() || !hasStrace()) { console.log('  (skipped: needs the reference plugins and strace)'); return; }
  fresh(OURS, REF);
  const sent: Record<string, Buffer[]> = {};
  for (const s of [OURS, REF]) {
    const list = conflist('1.0.0', s);
    const prev = exec(s.bridge, 'bridge', callFor(s, 'ADD', pluginConf(list, 0, undefined, CAP_ARGS)));
    assert.is(prev.code, 0, prev.stdout);
    const bin = s.bandwidth === 'ours' ? join(h.bin, 'bandwidth') : join(REFERENCE_BIN, 'bandwidth');
    const r = captureNetlink([bin], {
      ns: hostNs(s), input: JSON.stringify(pluginConf(list, 1, prev.json, CAP_ARGS)),
      env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bw-ctr-a', CNI_NETNS: netnsPath(ctrNs(s)), CNI_IFNAME: 'eth0', CNI_PATH: s.bandwidth === 'ours' ? h.bin : REFERENCE_BIN },
    });
    assert.is(r.status, 0, r.stdout + r.stderr);
    // RTM_NEWQDISC of kind tbf (TCA_KIND right after the 20-byte tcmsg), and the IFB's RTM_NEWLINK
    const tbf = r.msgs.filter((m) => msgType(m) === 36 && m.subarray(40, 43).toString() === 'tbf');
    const ifb = r.msgs.filter((m) => msgType(m) === 16 && m.includes(Buffer.from('ifb')) && (m.readUInt16LE(6) & 0x400) !== 0);
    sent[s.name] = [...tbf, ...ifb].map((m) => { const c = normalized(m); if (msgType(m) === 36) c.fill(0, 20, 24); return c; });
  }
  assert.is(sent.o.length, 3, 'two tbfs and one IFB');
  assert.equal(sent.o.map((m) => m.toString('hex')), sent.r.map((m) => m.toString('hex')));
});

test('after the reference bridge (mixed): same tc state as the reference chain, CHECK, DEL, no IFB left', () => {
  if (!hasReference()) return;
  fresh(MIXED, REF);
  const rm = chainAdd(MIXED, conflist('1.0.0', MIXED));
  const rr = chainAdd(REF, conflist('1.0.0', REF));
  assert.equal(qdiscState(MIXED), qdiscState(REF));
  okAll(chainRun(MIXED, 'CHECK', conflist('1.0.0', MIXED), rm), 'mixed CHECK');
  okAll(chainRun(MIXED, 'DEL', conflist('1.0.0', MIXED), rm), 'mixed DEL');
  okAll(chainRun(MIXED, 'DEL', conflist('1.0.0', MIXED), rm), 'mixed DEL twice');
  okAll(chainRun(REF, 'DEL', conflist('1.0.0', REF), rr), 'reference DEL');
  assert.is(ifbs(MIXED).length, 0);
  assert.equal(tcJson(hostNs(MIXED), ['qdisc', 'show']), tcJson(hostNs(REF), ['qdisc', 'show']));
  // the qdiscs on the reference's veth were ledger entries (with its ifindex); all swept and forgotten
  const ledger = join(h.stateDir, 'ledger', 'bwnet');
  assert.equal(existsSync(ledger) ? readdirSync(ledger) : [], []);
  assert.ok(readAudit(h).some((x) => x.call === 'sweep.tc.remove-qdisc'), 'the sweep removed the veth qdiscs after DEL');
});

test('static keys win over runtimeConfig; ingress only makes no IFB; zero limits pass the result through', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  list.plugins[1].ingressRate = 800000;
  list.plugins[1].ingressBurst = 8000;
  const r = chainAdd(OURS, list);
  const q = qdiscState(OURS);
  assert.equal(q.find((x) => x.dev === 'VETH' && x.kind === 'tbf').options, { rate: 100000, burst: 1000, lat: 25000 });
  assert.not.ok(q.some((x) => x.kind === 'ingress'), 'no egress shaping: no ingress qdisc');
  assert.is(ifbs(OURS).length, 0);
  assert.is(r.interfaces.length, 3);
  okAll(chainRun(OURS, 'CHECK', list, r), 'CHECK');
  okAll(chainRun(OURS, 'DEL', list, r), 'DEL');

  // no limits at all: prevResult unchanged, CHECK does not crash (1.1.1 does)
  fresh(OURS);
  const none = conflist('1.0.0', OURS);
  const r2 = chainAdd(OURS, none, 'a', {});
  assert.is(r2.interfaces.length, 3);
  assert.not.ok(qdiscState(OURS).some((x) => x.kind === 'tbf'));
  okAll(chainRun(OURS, 'CHECK', none, r2, 'a', {}), 'CHECK without limits');
  okAll(chainRun(OURS, 'DEL', none, r2, 'a', {}), 'DEL');
});

test('CHECK sees a changed rate and a missing IFB', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  const r = chainAdd(OURS, list);
  const v = hostVeth(OURS);
  nsExec(hostNs(OURS), ['tc', 'qdisc', 'replace', 'dev', v, 'root', 'handle', '1:', 'tbf', 'rate', '9mbit', 'burst', '10000', 'latency', '25ms']);
  const c = exec('ours', 'bandwidth', callFor(OURS, 'CHECK', pluginConf(list, 1, r, CAP_ARGS)));
  assert.is(c.json?.code, 999, c.stdout);
  assert.is(c.json.msg, "Rate doesn't match");
  const ifb = r.interfaces[r.interfaces.length - 1].name;
  nsExec(hostNs(OURS), ['ip', 'link', 'del', ifb]);
  const l2 = { ...CAP_ARGS, bandwidth: { egressRate: 16000000, egressBurst: 160000 } };
  const c2 = exec('ours', 'bandwidth', callFor(OURS, 'CHECK', pluginConf(list, 1, r, l2)));
  assert.is(c2.json?.code, 999, c2.stdout);
  assert.match(c2.json.msg, /^get ifb device: /);
  okAll(chainRun(OURS, 'DEL', list, r), 'DEL');
});

test('two interfaces of one container get two IFBs; eth0 keeps the reference name', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  const r0 = chainAdd(OURS, list);
  // a second attachment of the same container on net1
  let prev: any;
  for (let i = 0; i < 2; i++) {
    const type = list.plugins[i].type;
    const rr = exec('ours', type, callFor(OURS, 'ADD', pluginConf(list, i, prev, CAP_ARGS), 'a', { ifname: 'net1' }));
    assert.is(rr.code, 0, rr.stdout);
    prev = rr.json;
  }
  const names = ifbs(OURS).map((l) => l.ifname).sort();
  assert.is(names.length, 2);
  assert.is(r0.interfaces[r0.interfaces.length - 1].name, 'bwp' + sha512('bwnet' + 'bw-ctr-a').slice(0, 12));
  assert.is(prev.interfaces[prev.interfaces.length - 1].name, 'bwp' + sha512('bwnet' + 'bw-ctr-a' + 'net1').slice(0, 12));
  okAll(chainRun(OURS, 'DEL', list, prev, 'a', CAP_ARGS, { ifname: 'net1' }), 'DEL net1');
  okAll(chainRun(OURS, 'DEL', list, r0), 'DEL eth0');
  assert.is(ifbs(OURS).length, 0);
});

function sha512(s: string): string {
  return nsExec(hostNs(OURS), ['sh', '-c', `printf %s '${s}' | sha512sum`]).stdout.split(' ')[0];
}

// ---------------------------------------------------------------- errors

const bwOnly = (extra: any, prev: any = undefined) => ({ cniVersion: '1.0.0', name: 'bwnet', type: 'bandwidth', ...extra, ...(prev ? { prevResult: prev } : {}) });

test('config errors: the reference\'s messages, code 7, nothing made', () => {
  fresh(OURS);
  const cases: [any, string][] = [
    [{ ingressRate: 1000 }, 'if rate is set, burst must also be set'],
    [{ egressBurst: 1000 }, 'if burst is set, rate must also be set'],
    [{ runtimeConfig: { bandwidth: { egressRate: 5 } } }, 'if rate is set, burst must also be set'],
    [{ egressRate: 1, egressBurst: 34359738360 }, 'burst cannot be more than 4GB'],
    [{ ingressRate: -1 }, 'failed to parse network configuration: json: cannot unmarshal number -1 into Go struct field PluginConf.ingressRate of type uint64'],
    [{ ingressRate: 'x' }, 'failed to parse network configuration: json: cannot unmarshal string into Go struct field PluginConf.ingressRate of type uint64'],
    [{ ingressRate: 1.5 }, 'failed to parse network configuration: json: cannot unmarshal number 1.5 into Go struct field PluginConf.ingressRate of type uint64'],
  ];
  for (const [extra, msg] of cases) {
    const o = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly(extra)));
    assert.is(o.code, 1, JSON.stringify(extra));
    assert.is(o.json.msg, msg);
    assert.is(o.json.code, 7);
    assert.not.match(o.stdout + o.stderr, /^\s+at /m);
    if (hasReference()) assert.is(exec('ref', 'bandwidth', callFor(OURS, 'ADD', bwOnly(extra))).json.msg, msg, 'reference says the same');
    // DEL validates the config too, as the reference's
    assert.is(exec('ours', 'bandwidth', callFor(OURS, 'DEL', bwOnly(extra))).json.msg, msg);
  }
  const notChained = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ ingressRate: 8, ingressBurst: 8 })));
  assert.is(notChained.json.msg, 'must be called as chained plugin');
  // the reference crashes here (nil prevResult, no limits); we say why
  const bare = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({})));
  assert.is(bare.json.msg, 'must be called as chained plugin');
});

test('rates too small to shape, and a host interface that is not the peer: clear errors, nothing left', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  const r = chainAdd(OURS, list, 'a', {});
  const before = tcJson(hostNs(OURS), ['qdisc', 'show']);
  const tiny = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ egressRate: 7, egressBurst: 80 }, r)));
  assert.is(tiny.json.code, 7);
  assert.match(tiny.json.msg, /^egressRate 7 bits\/s is less than one byte per second/);
  const short = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ ingressRate: 8000000000, ingressBurst: 8 }, r)));
  assert.match(short.json.msg, /^ingressBurst 8 bits is too small/);
  // a prevResult whose host interfaces do not include the peer
  const wrong = { ...r, interfaces: r.interfaces.map((i: any) => (i.name.startsWith('veth') ? { ...i, name: 'vethdeadbeef' } : i)) };
  const np = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ ingressRate: 8000, ingressBurst: 8000 }, wrong)));
  assert.is(np.json.msg, 'no veth peer of container interface found in host ns');
  const noIf = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ ingressRate: 8000, ingressBurst: 8000 }, { ...r, interfaces: [], ips: r.ips.map(({ interface: _i, ...ip }: any) => ip) })));
  assert.is(noIf.json.msg, 'no interfaces provided');
  const noCtr = exec('ours', 'bandwidth', callFor(OURS, 'ADD', bwOnly({ ingressRate: 8000, ingressBurst: 8000 }, r), 'a', { ifname: 'eth9' }));
  assert.match(noCtr.json.msg, /^container interface eth9 has no veth peer/);
  assert.equal(tcJson(hostNs(OURS), ['qdisc', 'show']), before);
  assert.is(ifbs(OURS).length, 0);
  okAll(chainRun(OURS, 'DEL', list, r, 'a', {}), 'DEL');
});

test('a failed ADD undoes what it made (the IFB name is taken)', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  const r = chainAdd(OURS, list, 'a', {});
  const before = tcJson(hostNs(OURS), ['qdisc', 'show']);
  const name = 'bwp' + sha512('bwnet' + 'bw-ctr-a').slice(0, 12);
  nsExec(hostNs(OURS), ['ip', 'link', 'add', name, 'type', 'ifb']);
  const f = exec('ours', 'bandwidth', callFor(OURS, 'ADD', pluginConf(list, 1, r, CAP_ARGS)));
  assert.is(f.code, 1);
  assert.match(f.json.msg, /^adding link: /);
  // the ingress tbf it had put on the veth is gone again, the dummy untouched
  assert.equal(tcJson(hostNs(OURS), ['qdisc', 'show']), before);
  assert.is(ipJson<any[]>(hostNs(OURS), ['link', 'show', 'dev', name]).length, 1);
  // and DEL does not remove a link this attachment did not create
  assert.is(ipJson<any[]>(hostNs(OURS), ['link', 'show', 'dev', name])[0].ifname, name);
  okAll(chainRun(OURS, 'DEL', list, r, 'a', {}), 'DEL');
  assert.is(ipJson<any[]>(hostNs(OURS), ['link', 'show', 'dev', name]).length, 1);
});

test('DEL with no netns, GC of attachments no longer valid, STATUS', () => {
  fresh(OURS);
  const list = conflist('1.0.0', OURS);
  const r = chainAdd(OURS, list);
  assert.is(ifbs(OURS).length, 1);
  const d = exec('ours', 'bandwidth', callFor(OURS, 'DEL', pluginConf(list, 1, r, CAP_ARGS), 'a', { netns: '' }));
  assert.is(d.code, 0, d.stdout);
  assert.is(ifbs(OURS).length, 0);

  const r2 = chainAdd(OURS, list, 'b');
  assert.is(ifbs(OURS).length, 1);
  const gcConf = { cniVersion: '1.1.0', name: 'bwnet', type: 'bandwidth', 'cni.dev/valid-attachments': [{ containerID: 'bw-ctr-a', ifname: 'eth0' }] };
  const g = exec('ours', 'bandwidth', { command: 'GC', hostNs: hostNs(OURS), config: gcConf });
  assert.is(g.code, 0, g.stdout);
  assert.is(ifbs(OURS).length, 0, 'the IFB of bw-ctr-b is collected');
  assert.ok(readAudit(h).some((x) => x.command === 'GC' && x.call === 'sweep.links.remove'));
  const st = exec('ours', 'bandwidth', { command: 'STATUS', hostNs: hostNs(OURS), config: { cniVersion: '1.1.0', name: 'bwnet', type: 'bandwidth' } });
  assert.is(st.code, 0, st.stdout);
  void r2;
});

// ---------------------------------------------------------------- beyond the reference

/** the reference macvlan (no host veth) + our bandwidth */
const MACVLAN: Side = { name: 'v', bridge: 'ref', bandwidth: 'ours' };

function macvlanList(): any {
  return {
    cniVersion: '1.0.0', name: 'bwmv',
    plugins: [
      { type: 'macvlan', master: 'bwup0', mode: 'bridge', ipam: { type: 'host-local', ranges: [[{ subnet: '10.233.0.0/24' }]], dataDir: join(work, 'ipam-v') } },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  };
}

test('beyond the reference: after macvlan (no host veth) the limits are applied inside the container', () => {
  if (!hasReference()) return;
  fresh(MACVLAN);
  const hn = hostNs(MACVLAN), cn = ctrNs(MACVLAN);
  // the macvlan master: a veth end in the host namespace (this kernel has no dummy module)
  nsExec(hn, ['ip', 'link', 'add', 'bwup0', 'type', 'veth', 'peer', 'name', 'bwup1']);
  for (const l of ['bwup0', 'bwup1']) nsExec(hn, ['ip', 'link', 'set', l, 'up']);
  const list = macvlanList();
  // the reference cannot
  const mv = exec('ref', 'macvlan', callFor(MACVLAN, 'ADD', pluginConf(list, 0, undefined, CAP_ARGS)));
  assert.is(mv.code, 0, mv.stdout);
  const refBw = exec('ref', 'bandwidth', callFor(MACVLAN, 'ADD', pluginConf(list, 1, mv.json, CAP_ARGS)));
  assert.match(refBw.json?.msg ?? '', /has no veth peer|no veth peer/);
  const r = exec('ours', 'bandwidth', callFor(MACVLAN, 'ADD', pluginConf(list, 1, mv.json, CAP_ARGS)));
  assert.is(r.code, 0, r.stdout);
  const ifb = r.json.interfaces[r.json.interfaces.length - 1];
  assert.equal([ifb.name, ifb.sandbox], ['bwp' + sha512('bwmv' + 'bw-ctr-a').slice(0, 12), `/run/netns/${cn}`]);
  // egress: tbf on eth0; ingress: eth0's ingress redirected to the IFB, whose tbf limits it
  const q = tcJson(cn, ['qdisc', 'show']);
  const tbfOf = (dev: string) => q.find((x) => x.dev === dev && x.kind === 'tbf')?.options;
  assert.equal(tbfOf('eth0'), { rate: 2000000, burst: 20000, lat: 25000 });
  assert.equal(tbfOf(ifb.name), { rate: 1000000, burst: 10000, lat: 25000 });
  assert.ok(q.some((x) => x.dev === 'eth0' && x.kind === 'ingress'));
  const f = tcJson(cn, ['filter', 'show', 'dev', 'eth0', 'ingress']);
  assert.is(f[f.length - 1].options.actions[0].to_dev, ifb.name);
  const l = ipJson<any[]>(cn, ['-d', 'link', 'show', 'dev', ifb.name])[0];
  assert.equal([l.mtu, l.txqlen ?? 0, l.flags.includes('UP')], [ipJson<any[]>(cn, ['link', 'show', 'dev', 'eth0'])[0].mtu, 0, true]);
  // nothing on the host side
  assert.is(ifbs(MACVLAN).length, 0);
  assert.not.ok(tcJson(hn, ['qdisc', 'show']).some((x) => x.kind === 'tbf' || x.kind === 'ingress'));
  // CHECK passes, and sees a change
  const ck = exec('ours', 'bandwidth', callFor(MACVLAN, 'CHECK', pluginConf(list, 1, r.json, CAP_ARGS)));
  assert.is(ck.code, 0, ck.stdout);
  nsExec(cn, ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'tbf', 'rate', '9mbit', 'burst', '20000', 'latency', '25ms']);
  const ck2 = exec('ours', 'bandwidth', callFor(MACVLAN, 'CHECK', pluginConf(list, 1, r.json, CAP_ARGS)));
  assert.is(ck2.json?.msg, "Rate doesn't match");
  // DEL (twice) takes it all back; then macvlan's DEL
  for (let i = 0; i < 2; i++) {
    const d = exec('ours', 'bandwidth', callFor(MACVLAN, 'DEL', pluginConf(list, 1, r.json, CAP_ARGS)));
    assert.is(d.code, 0, d.stdout);
  }
  const after = tcJson(cn, ['qdisc', 'show']);
  assert.not.ok(after.some((x) => x.kind === 'tbf' || x.kind === 'ingress'), JSON.stringify(after));
  assert.is(ipJson<any[]>(cn, ['link', 'show', 'type', 'ifb']).length, 0);
  const md = exec('ref', 'macvlan', callFor(MACVLAN, 'DEL', pluginConf(list, 0, r.json, CAP_ARGS)));
  assert.is(md.code, 0, md.stdout);
  const ledger = join(h.stateDir, 'ledger', 'bwmv');
  assert.equal(existsSync(ledger) ? readdirSync(ledger) : [], []);
});

// ---------------------------------------------------------------- a hostile plugin

test('a third-party plugin with every tc grant cannot shape links it does not own (denied, audited)', () => {
  fresh(OURS);
  const built = join(work, 'fixtures');
  buildFixtures(built, ['tcoverreach']);
  installThirdParty(h, [{ type: 'tcoverreach', component: componentPath(built, 'tcoverreach') }]);
  const list = conflist('1.0.0', OURS);
  const r = chainAdd(OURS, list, 'a', {});
  const veth = hostVeth(OURS);
  // another container on the same bridge: its host veth's peer is its eth0, index 2 like ours
  const other = chainAdd(OURS, list, 'b', {}).interfaces[1].name;
  assert.is.not(other, veth);
  // a host veth pair that is not this container's: prevResult will name it
  nsExec(hostNs(OURS), ['ip', 'link', 'add', 'decoy0', 'type', 'veth', 'peer', 'name', 'decoy1']);
  const before = tcJson(hostNs(OURS), ['qdisc', 'show']);
  const prev = { ...r, interfaces: [...r.interfaces, { name: 'decoy0' }, { name: 'lo' }, { name: other }] };
  const o = exec('ours', 'tcoverreach', callFor(OURS, 'ADD', { cniVersion: '1.0.0', name: 'bwnet', type: 'tcoverreach', veth, decoy: 'decoy0', other, prevResult: prev }));
  assert.is(o.json?.code, 150, o.stdout + o.stderr);
  const res = JSON.parse(o.json.details).results as { call: string; code: string; message: string }[];
  const by = Object.fromEntries(res.map((x) => [x.call, x]));
  for (const c of ['tc.set-tbf host lo', 'tc.set-tbf host decoy', 'tc.add-ingress host decoy', 'tc.set-tbf host other', 'tc.list-qdiscs host lo',
    'tc.redirect-ingress host veth->decoy', 'tc.redirect-ingress host veth->lo', 'tc.set-tbf container lo']) {
    assert.is(by[c].code, 'EDENIED', `${c}: ${JSON.stringify(by[c])}`);
  }
  assert.match(by['tc.set-tbf host decoy'].message, /not the veth peer of eth0/);
  assert.match(by['tc.set-tbf host other'].message, /not the veth peer of eth0/);
  assert.match(by['tc.set-tbf host lo'].message, /not a veth/);
  assert.match(by['tc.redirect-ingress host veth->decoy'].message, /not an IFB this attachment created/);
  // what it may do: shape the host end of its own veth
  for (const c of ['tc.set-tbf host veth', 'tc.add-ingress host veth', 'tc.remove-qdisc host veth ingress', 'tc.remove-qdisc host veth root']) {
    assert.is(by[c].code, 'ok', `${c}: ${JSON.stringify(by[c])}`);
  }
  assert.equal(tcJson(hostNs(OURS), ['qdisc', 'show']), before, 'the host is as it was');
  const denied = readAudit(h).filter((x) => x.plugin === 'tcoverreach' && x.verdict === 'deny');
  assert.is(denied.length, 8);
  assert.ok(denied.every((x) => x.call.startsWith('tc.')));
  okAll(chainRun(OURS, 'DEL', list, r, 'a', {}), 'DEL');
});

test.run();
