// The daemon's wire format (host/daemon/protocol.ts): frames and request validation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameReader, MAX_FRAME, encode, parseRequest } from '../../host/daemon/protocol.js';

const req = (o: object) => Buffer.from(JSON.stringify({ v: 1, op: 'call', type: 'bridge', policy: null, netns: { dev: 4, ino: 4026531840 }, env: {}, stdin: '', ...o }));

test('a frame split anywhere comes back whole', () => {
  const f = encode({ a: 'é'.repeat(1000) });
  for (const cut of [1, 3, 4, 5, 100, f.length - 1]) {
    const r = new FrameReader();
    assert.is(r.push(f.subarray(0, cut)), null);
    assert.equal(JSON.parse(r.push(f.subarray(cut))!.toString()), { a: 'é'.repeat(1000) });
  }
});

test('an oversized or overlong frame is refused', () => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(MAX_FRAME + 1);
  assert.throws(() => new FrameReader().push(h), /exceeds/);
  const f = encode({});
  assert.throws(() => new FrameReader().push(Buffer.concat([f, Buffer.from('x')])), /bytes after/);
});

test('requests are validated', () => {
  assert.equal(parseRequest(Buffer.from('{"v":1,"op":"status"}')), { op: 'status' });
  const ok = parseRequest(req({ env: { CNI_COMMAND: 'ADD' }, stdin: '{}', policy: '/etc/p.json' }));
  assert.is(ok.op, 'call');
  for (const [bad, why] of [
    [Buffer.from('['), /not JSON/], [Buffer.from('[]'), /JSON object/], [Buffer.from('{"v":2}'), /version/],
    [Buffer.from('{"v":1,"op":"x"}'), /unknown op/], [req({ type: '../../bin/sh' }), /plugin type/],
    [req({ policy: 'rel.json' }), /absolute/], [req({ netns: { dev: 'a', ino: 1 } }), /netns/],
    [req({ env: [] }), /env must/], [req({ env: { A: 1 } }), /env A/], [req({ stdin: 5 }), /stdin/],
    [req({ env: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`K${i}`, ''])) }), /more than/],
  ] as [Buffer, RegExp][]) assert.throws(() => parseRequest(bad), why);
});

test.run();
