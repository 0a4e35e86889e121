// The tc encoding without a kernel: the exact bytes iproute2 6.1 (`tc`) and
// the reference bandwidth plugin 1.1.1 sent for the same requests, captured
// with strace (seq and pid zeroed). test/netns/tc.test.ts compares live.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeIngress, encodeRedirect, encodeTbf, parseAttrs, pschedTicksPerUsec, tbfBuffer } from '../../host/kernel/tc.js';

const hex = (b: Buffer) => b.toString('hex');

test('ingress qdisc: `tc qdisc add dev <#3> ingress`', () => {
  assert.is(hex(encodeIngress(3, 'add')), '300000002400050600000000000000000000000003000000' + '0000ffff' + 'f1ffffff' + '00000000' + '0c000100696e677265737300');
});

test('u32 match-all + mirred egress redirect: `tc filter add dev <#3> parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev <#4>`', () => {
  const want = [
    '940000002c000506', '0000000000000000', '0000000003000000', '000000000000ffff',
    '0003010008000100', '7533320068000200', '0800010001000100', '3800070034000100',
    '0b0001006d697272', '6564000024000280', '2000020000000000', '0000000004000000',
    '0000000000000000', '0100000004000000', '2400050001000100', '0000000000000000',
    '0000000000000000', '0000000000000000', '00000000',
  ].join('');
  assert.is(hex(encodeRedirect(3, { prio: 1, target: 4, classid: 0x10001 })), want);
});

test('tbf: the reference plugin\'s message for 1 MB/s, burst 10000 B (8 Mbit/s, 80000 bit)', () => {
  const buffer = tbfBuffer(1000000n, 10000, 15.625);
  assert.is(buffer, 156250);
  const m = encodeTbf(0, { rate: 1000000n, buffer, limit: 35000 }, 'add');
  assert.is(hex(m), '58000000240005060000000000000000000000000000000000000100ffffffff0000000008000100746266002c00020028000100000000000000000040420f00000000000000000000000000b88800005a62020000000000');
});

test('tbf above 4 GB/s: low 32 bits in the rate spec, the whole rate in TCA_TBF_RATE64', () => {
  const m = encodeTbf(7, { rate: 5000000000n, buffer: 31250, limit: 135000000 }, 'replace');
  assert.is(m.readUInt16LE(6), 0x0505); // REQUEST | ACK | REPLACE | CREATE
  const opts = parseAttrs(parseAttrs(m.subarray(36)).find((a) => a.type === 2)!.data);
  assert.is(opts[0].data.readUInt32LE(8), Number(5000000000n & 0xffffffffn));
  assert.is(opts[1].type, 4);
  assert.is(opts[1].data.readBigUInt64LE(0), 5000000000n);
});

test('bad tbf values are refused before anything is sent', () => {
  assert.throws(() => encodeTbf(1, { rate: 0n, buffer: 1, limit: 1 }, 'add'), /invalid tbf/);
  assert.throws(() => encodeTbf(1, { rate: 1n, buffer: 2 ** 32, limit: 1 }, 'add'), /invalid tbf/);
  assert.throws(() => encodeTbf(1, { rate: 1n, buffer: 1, limit: -1 }, 'add'), /invalid tbf/);
  assert.throws(() => encodeRedirect(1, { prio: 0, target: 2, classid: 0 }), /priority/);
  assert.is(pschedTicksPerUsec('000003e8 00000040 000f4240 3b9aca00'), 15.625);
});

test.run();
