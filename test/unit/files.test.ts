// The files interface (flannel's subnet.env and saved delegate configs) on
// its own: no root, no kernel. The real declarations and the real file
// operations in temp dirs, through the gate, so what is checked is what the
// gate decides before the host touches the disk.
import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeCall } from '../helpers/gate.js';
import { files, parseEnvLines } from '../../host/capabilities/files.js';
import { bindInterface } from '../../host/gate/gate.js';
import { intersectGrants, validateGrants } from '../../host/gate/policy.js';
import { Ownership, validateObjectDecls } from '../../host/gate/ownership.js';
import { sweep } from '../../host/sweep.js';

const SIGS = {
  readEnv: { wit: 'read-env', params: ['path', 'keys'], hasResult: true },
  save: { wit: 'save', params: ['dir', 'name', 'content'], hasResult: true },
  load: { wit: 'load', params: ['dir', 'name'], hasResult: true },
  remove: { wit: 'remove', params: ['dir', 'name'], hasResult: true },
  list: { wit: 'list', params: ['dir'], hasResult: true },
};
const KEYS = ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'];

function objects(): any[] {
  return [
    { key: 'subnetFile', default: '/run/flannel/subnet.env', kind: 'file', ns: 'host', rights: ['read'] },
    { key: 'dataDir', default: '/var/lib/cni/flannel', kind: 'dir', ns: 'host', rights: ['write'] },
  ];
}

/** A call whose runtime config (by default) names subnetFile and dataDir in its own temp dir. */
function setup(opts: { grants?: any; command?: string; config?: (dir: string) => object } = {}) {
  const t = fakeCall({ type: 'flannel', grants: opts.grants ?? { files: { paths: ['*'], dirs: ['*'] } } });
  const config = (opts.config ?? withPaths)(t.dir);
  t.ctx.owned = Ownership.fromConfig('eth0', objects(), config);
  if (opts.command) t.ctx.command = opts.command;
  t.ctx.runtimeConf = config as any;
  const f = bindInterface(t.ctx, 'files', files, SIGS) as any;
  return { t, f, env: join(t.dir, 'subnet.env'), data: join(t.dir, 'data'), config };
}

function withPaths(dir: string) { return { subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'data') }; }

test('read-env: only the lines whose key was asked for cross, in file order; "\\r" dropped as bufio does', () => {
  assert.equal(parseEnvLines('FLANNEL_MTU=1450\r\nSECRET=x\nFLANNEL_SUBNET\nFLANNEL_NETWORK=a=b\nFLANNEL_MTU=9\n', KEYS), [
    { key: 'FLANNEL_MTU', value: '1450' }, { key: 'FLANNEL_SUBNET' }, { key: 'FLANNEL_NETWORK', value: 'a=b' }, { key: 'FLANNEL_MTU', value: '9' },
  ]);
  const { f, env } = setup({ config: withPaths });
  writeFileSync(env, 'root:$6$hash:19000:0\nFLANNEL_MTU=1450\n');
  const r = f.readEnv(env, KEYS);
  assert.is(r.tag, 'ok');
  assert.equal(r.val, [{ key: 'FLANNEL_MTU', value: '1450' }]);
  // a key that is not FLANNEL_* is refused: a plugin cannot fish for other lines
  assert.match(f.readEnv(env, ['root:$6$hash:19000:0']).val.message, /FLANNEL_/);
  assert.match(f.readEnv(env, Array(17).fill('FLANNEL_X')).val.message, /at most 16/);
});

test('read-env: only the path the runtime\'s config names under the declared key; bounded, no symlink, no FIFO', () => {
  const { f, env, t } = setup({ config: withPaths });
  writeFileSync(env, 'FLANNEL_MTU=1\n');
  assert.match(f.readEnv('/etc/shadow', KEYS).val.message, /file '\/etc\/shadow' is not named by the runtime's config under the declared key "subnetFile"/);
  assert.match(f.readEnv('subnet.env', KEYS).val.message, /absolute, normalized/);
  assert.match(f.readEnv(`${t.dir}/x/../subnet.env`, KEYS).val.message, /absolute, normalized/);
  // the declared path, but a symlink, a FIFO, a huge file: refused by the bounded read
  const link = join(t.dir, 'link.env');
  symlinkSync(env, link);
  const fifo = join(t.dir, 'fifo.env');
  execFileSync('mkfifo', [fifo]);
  const big = join(t.dir, 'big.env');
  writeFileSync(big, 'FLANNEL_MTU=1\n'.repeat(10_000));
  for (const [p, code] of [[link, 'ELOOP'], [fifo, 'EINVAL'], [big, 'EFBIG']] as const) {
    const c = setup({ config: () => ({ subnetFile: p }) });
    const r = c.f.readEnv(p, KEYS);
    assert.is(r.val.code, code, `${p}: ${r.val.message}`);
  }
  const gone = setup({ config: () => ({ subnetFile: '/nonexistent/subnet.env' }) });
  assert.is(gone.f.readEnv('/nonexistent/subnet.env', KEYS).val.message, 'open /nonexistent/subnet.env: no such file or directory');
  // the default applies when the config does not name one
  const dflt = setup({ config: () => ({}) });
  assert.is.not(dflt.f.readEnv('/run/flannel/subnet.env', KEYS).val.code, 'EDENIED');
});

test('read-env and save: the grant limits where, and cni-wasm\'s own dirs are never reachable', () => {
  const narrow = setup({ grants: { files: { paths: ['/run/flannel'], dirs: ['/var/lib/cni/flannel'] } }, config: withPaths });
  assert.match(narrow.f.readEnv(narrow.env, KEYS).val.message, /outside the plugin's granted "files": \{"paths"\}/);
  assert.match(narrow.f.save(narrow.data, 'unit-container', '{}').val.message, /outside the plugin's granted "files": \{"dirs"\}/);
  const none = setup({ grants: {}, config: withPaths });
  assert.match(none.f.save(none.data, 'unit-container', '{}').val.message, /no "files" grant/);
  // the runtime's config may name cni-wasm's state dir, its audit dir, or a symlink to them: refused all the same
  const probe = setup({ config: withPaths });
  const policy = probe.t.ctx.policy;
  mkdirSync(policy.stateDir, { recursive: true });
  const link = join(probe.t.dir, 'innocent');
  symlinkSync(policy.stateDir, link);
  for (const dir of [policy.stateDir, join(policy.stateDir, 'ledger'), join(link, 'sub'), join(probe.t.dir, 'audit'), policy.storeDir, '/']) {
    const c = setup({ config: () => ({ dataDir: dir }) });
    c.t.ctx.policy = policy;
    const r = c.f.save(dir, 'unit-container', '{}');
    assert.is(r.val.code, 'EDENIED', dir);
    assert.match(r.val.message, /cni-wasm's own directory|host-local's store/, `${dir}: ${r.val.message}`);
  }
  assert.equal(readdirSync(policy.stateDir), []);
});

test('save: this attachment\'s container id only, in ADD only; the file is 0600 in a 0700 dir, atomic, and a ledger entry', () => {
  const { f, data, t } = setup({ config: withPaths });
  for (const name of ['../etc/passwd', '.hidden', 'a/b', '', 'other-container']) assert.is(f.save(data, name, '{}').val.code, 'EDENIED', name);
  assert.is(f.save(data, 'unit-container', '{"type":"bridge"}').tag, 'ok');
  const file = join(data, 'unit-container');
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(statSync(data).mode & 0o777, 0o700);
  assert.equal(readdirSync(data), ['unit-container']);
  assert.equal(t.ctx.ledger.entries.map((e) => [e.kind, e.dir, e.name]), [['saved-file', data, 'unit-container']]);
  assert.equal(f.load(data, 'unit-container').val, '{"type":"bridge"}');
  assert.equal(f.list(data).val, ['unit-container']);
  // a saved config is replaced; a file that is not one is not
  assert.is(f.save(data, 'unit-container', '{"type":"ptp"}').tag, 'ok');
  writeFileSync(file, 'root:x:0:0:root:/root:/bin/sh\n');
  assert.match(f.save(data, 'unit-container', '{}').val.message, /not a saved config/);
  assert.is(readFileSync(file, 'utf8'), 'root:x:0:0:root:/root:/bin/sh\n');
  // remove forgets the ledger entries
  assert.is(f.remove(data, 'unit-container').tag, 'ok');
  assert.not.ok(existsSync(file));
  assert.equal(t.ctx.ledger.entries, []);
  assert.is(f.remove(data, 'unit-container').tag, 'ok', 'removing what is gone is not an error');
  const del = setup({ command: 'DEL', config: withPaths });
  assert.match(del.f.save(del.data, 'unit-container', '{}').val.message, /saving is for ADD only/);
});

test('save: a data dir that is not a directory of saved configs (/etc, a group-writable dir) is refused', () => {
  const etc = setup({ config: () => ({ dataDir: '/etc' }) });
  assert.match(etc.f.save('/etc', 'unit-container', '{}').val.message, /holds a directory/);
  assert.not.ok(existsSync('/etc/unit-container'));
  const { t } = setup();
  const open = join(t.dir, 'open');
  mkdirSync(open, { mode: 0o777 });
  execFileSync('chmod', ['0777', open]);
  const c = setup({ config: () => ({ dataDir: open }) });
  assert.match(c.f.save(open, 'unit-container', '{}').val.message, /writable by group or others/);
});

test('the sweep undoes a save: a failed ADD leaves no saved config', () => {
  const { f, data, t } = setup({ config: withPaths });
  assert.is(f.save(data, 'unit-container', '{}').tag, 'ok');
  sweep(t.ctx.ledger, () => true, 'failed-add', { rtnl: () => { throw new Error('no kernel'); } } as any, t.ctx.audit, { containerId: 'unit-container', network: 'unitnet', command: 'ADD' });
  assert.not.ok(existsSync(join(data, 'unit-container')));
  assert.equal(t.ctx.ledger.entries, []);
  assert.ok(t.audit.some((a) => a.call === 'sweep.files.remove'));
  // a repeated ADD's save over a config an earlier ADD saved: its failure leaves that one for its DEL
  writeFileSync(join(data, 'unit-container'), '{"type":"bridge"}');
  assert.is(f.save(data, 'unit-container', '{"type":"bridge"}').tag, 'ok');
  assert.is(t.ctx.ledger.entries[0].existed, true);
  sweep(t.ctx.ledger, () => true, 'failed-add', { rtnl: () => { throw new Error('no kernel'); } } as any, t.ctx.audit, { containerId: 'unit-container', network: 'unitnet', command: 'ADD' });
  assert.ok(existsSync(join(data, 'unit-container')));
});

test('GC: another container\'s saved config may go only when the runtime no longer lists it', () => {
  const add = setup({ config: withPaths });
  assert.is(add.f.save(add.data, 'unit-container', '{}').tag, 'ok');
  writeFileSync(join(add.data, 'dead-one'), '{}');
  writeFileSync(join(add.data, 'live-one'), '{}');
  // outside GC, another container's file is not this attachment's
  assert.match(add.f.remove(add.data, 'dead-one').val.message, /not this attachment's container id/);
  const gc = setup({ command: 'GC', config: () => ({ ...add.config, 'cni.dev/valid-attachments': [{ containerID: 'live-one', ifname: 'eth0' }] }) });
  gc.t.ctx.containerId = '';
  assert.equal(gc.f.list(add.data).val, ['dead-one', 'live-one', 'unit-container']);
  assert.match(gc.f.remove(add.data, 'live-one').val.message, /still listed/);
  assert.is(gc.f.remove(add.data, 'dead-one').tag, 'ok');
  assert.is(gc.f.save(add.data, 'dead-one', '{}').val.code, 'EDENIED');
  assert.equal(readdirSync(add.data).sort(), ['live-one', 'unit-container']);
});

test('policy and manifests: the files grant validates and attenuates; file/dir objects take read/write only, in the host', () => {
  validateGrants({ files: { paths: ['/run/flannel/subnet.env'], dirs: ['*'] } }, 'unit');
  assert.throws(() => validateGrants({ files: { path: [] } }, 'unit'), /unknown setting "files.path"/);
  assert.equal(intersectGrants({ files: { paths: ['*'], dirs: ['/a'] } }, { files: true }).files, { paths: ['*'], dirs: ['/a'] });
  assert.is(intersectGrants({ files: true }, {}).files, undefined);
  validateObjectDecls(objects(), 'unit');
  assert.throws(() => validateObjectDecls([{ key: 'f', kind: 'file', ns: 'host', rights: ['write'] }], 'unit'), /"rights" must be a list of read/);
  assert.throws(() => validateObjectDecls([{ key: 'f', kind: 'dir', ns: 'container', rights: ['write'] }], 'unit'), /host path/);
  assert.throws(() => validateObjectDecls([{ key: 'f', kind: 'link', ns: 'host', rights: ['read'] }], 'unit'), /"rights" must be a list of create/);
});

test.run();
