import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from '../../src/bencode/index.js';
import {
  decodeKrpc, KrpcDecodeError, encodeQuery, encodeResponse, encodeError, decodeCompactNodes, encodeCompactNodes,
  MAX_PACKET_BYTES, type KrpcMessage,
} from '../../src/dht/krpc.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const ID = b('abcdefghij0123456789');

function rejects(buf: Buffer, why: RegExp, expect?: { t?: string; isQuery?: boolean }): void {
  assert.throws(() => decodeKrpc(buf), (e: unknown) => {
    assert.ok(e instanceof KrpcDecodeError, `expected KrpcDecodeError, got ${String(e)}`);
    assert.match(e.message, why);
    if (expect?.t !== undefined) assert.equal(e.t?.toString('latin1'), expect.t);
    if (expect?.isQuery !== undefined) assert.equal(e.isQuery, expect.isQuery);
    return true;
  });
}

test('decodes the BEP 5 examples', () => {
  const ping = decodeKrpc(b('d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe'));
  assert.equal(ping.y, 'q');
  if (ping.y === 'q') { assert.equal(ping.q, 'ping'); assert.deepEqual(ping.id, ID); assert.equal(ping.t.toString(), 'aa'); }
  const pong = decodeKrpc(b('d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re'));
  assert.equal(pong.y, 'r');
  if (pong.y === 'r') assert.equal(pong.id.toString(), 'mnopqrstuvwxyz123456');
  const err = decodeKrpc(b('d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee'));
  assert.deepEqual(err, { y: 'e', t: b('aa'), code: 201, message: 'A Generic Error Ocurred' });
  const ann = decodeKrpc(b('d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe'));
  assert.equal(ann.y, 'q');
  if (ann.y === 'q') { assert.equal(ann.a['implied_port'], 1); assert.equal(ann.a['port'], 6881); }
});

test('encoders produce what the decoder reads back, with transaction ids intact', () => {
  const t = Buffer.from([0xff, 0x00]);
  const q = decodeKrpc(encodeQuery(t, 'find_node', { id: ID, target: ID })) as Extract<KrpcMessage, { y: 'q' }>;
  assert.equal(q.q, 'find_node');
  assert.deepEqual(q.t, t);
  assert.deepEqual(q.a['target'], ID);
  const r = decodeKrpc(encodeResponse(t, { id: ID, token: b('tok') }, { host: '127.0.0.2', port: 6881 })) as Extract<KrpcMessage, { y: 'r' }>;
  assert.deepEqual(r.ip, Buffer.from([127, 0, 0, 2, 0x1a, 0xe1]));
  assert.deepEqual(r.r['token'], b('tok'));
  assert.deepEqual(decodeKrpc(encodeError(t, 204, 'Method Unknown')), { y: 'e', t, code: 204, message: 'Method Unknown' });
});

test('hostile input: every malformed message is a KrpcDecodeError, with the transaction id when readable', () => {
  rejects(b(''), /empty/);
  rejects(b('i42e'), /not a dict/);
  rejects(b('le'), /not a dict/);
  rejects(b('d1:y1:qe'), /transaction id/);
  rejects(b('d1:ti5e1:y1:qe'), /transaction id/);
  rejects(b(`d1:t17:${'x'.repeat(17)}1:y1:qe`), /transaction id/);
  rejects(b('d1:t2:aa1:y1:ze'), /unknown message type/, { t: 'aa', isQuery: false });
  rejects(b('d1:t2:aa1:y1:qe'), /method/, { t: 'aa', isQuery: true });
  rejects(b('d1:q4:ping1:t2:aa1:y1:qe'), /argument dict/, { t: 'aa', isQuery: true });
  rejects(b('d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe'), /20-byte node id/, { t: 'aa', isQuery: true });
  rejects(b(`d1:ad2:id20:abcdefghij0123456789e1:q33:${'m'.repeat(33)}1:t2:aa1:y1:qe`), /method/);
  rejects(b('d1:rle1:t2:aa1:y1:re'), /return dict/, { isQuery: false });
  rejects(b('d1:rd2:idi5ee1:t2:aa1:y1:re'), /20-byte node id/);
  rejects(b('d1:t2:aa1:y1:qe trailing'), /trailing/);
  // Nesting bombs stop at a shallow depth, long before the JS stack.
  rejects(Buffer.concat([b('d1:a'), b('l'.repeat(50)), b('e'.repeat(50)), b('1:t2:aa1:y1:qe')]), /nesting/);
  rejects(Buffer.alloc(MAX_PACKET_BYTES + 1, 0x64), /exceeds/);
  // An error message with a strange payload still decodes, as a generic error.
  assert.deepEqual(decodeKrpc(b('d1:ei7e1:t2:aa1:y1:ee')), { y: 'e', t: b('aa'), code: 201, message: '' });
});

test('compact nodes: 26-byte entries, partial tail ignored, port 0 skipped, count capped', () => {
  const nodes = Array.from({ length: 5 }, (_, i) => ({ id: Buffer.alloc(20, i + 1), host: `127.0.0.${i + 1}`, port: 6000 + i }));
  const enc = encodeCompactNodes(nodes);
  assert.equal(enc.length, 130);
  assert.deepEqual(decodeCompactNodes(enc, 100), nodes);
  assert.deepEqual(decodeCompactNodes(Buffer.concat([enc, Buffer.alloc(25, 1)]), 100), nodes);
  assert.deepEqual(decodeCompactNodes(enc, 2), nodes.slice(0, 2));
  const zeroPort = Buffer.from(enc);
  zeroPort.writeUInt16BE(0, 24);
  assert.deepEqual(decodeCompactNodes(zeroPort, 100), nodes.slice(1));
  // Non-IPv4 hosts are left out rather than written as garbage.
  assert.equal(encodeCompactNodes([{ id: ID, host: '::1', port: 1 }]).length, 0);
});

test('fuzz (seeded): arbitrary bytes and mutated valid messages decode or throw KrpcDecodeError, nothing else', () => {
  const valid = [
    encodeQuery(b('aa'), 'get_peers', { id: ID, info_hash: ID }),
    encodeResponse(b('bb'), { id: ID, token: b('12345678'), values: [Buffer.alloc(6, 1)], nodes: Buffer.alloc(52, 2) }),
    encodeError(b('cc'), 203, 'bad token'),
    encodeQuery(b('dd'), 'announce_peer', { id: ID, info_hash: ID, port: 1, token: b('x'), implied_port: 1 }),
  ];
  const check = (buf: Buffer) => {
    try {
      const m = decodeKrpc(buf);
      assert.ok(m.t.length > 0 && m.t.length <= 16);
      if (m.y !== 'e') assert.equal(m.id.length, 20);
    } catch (e) {
      assert.ok(e instanceof KrpcDecodeError, `unexpected ${String(e)}`);
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => check(Buffer.from(u))), { seed: 0x5eed, numRuns: 3000 });
  fc.assert(fc.property(
    fc.integer({ min: 0, max: valid.length - 1 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.nat(),
    (which, edits, cut) => {
      const buf = Buffer.from(valid[which]!);
      for (const [pos, byte] of edits) buf[pos % buf.length] = byte;
      check(buf);
      check(buf.subarray(0, cut % (buf.length + 1)));
    },
  ), { seed: 0xd47, numRuns: 3000 });
  // Structurally valid bencode of arbitrary shape under the KRPC keys.
  const anyValue = fc.oneof(fc.integer(), fc.uint8Array({ maxLength: 24 }).map((u) => Buffer.from(u)), fc.constant([]), fc.constant({}));
  fc.assert(fc.property(fc.record({ t: anyValue, y: fc.oneof(anyValue, fc.constantFrom('q', 'r', 'e')), q: anyValue, a: anyValue, r: anyValue, e: anyValue }, { requiredKeys: [] }),
    (rec) => check(encode(rec))), { seed: 42, numRuns: 2000 });
});
