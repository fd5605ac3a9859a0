import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode } from '../../src/bencode/index.js';
import { isShoalError } from '../../src/util/errors.js';
import {
  CHOKE, HAVE_ALL, HAVE_DELAY_MS, HAVE_NONE, INTERESTED, KEEP_ALIVE, MessageId, MessageParser, NOT_INTERESTED, PeerWire, UNCHOKE,
  encodeBitfield, encodeBlockMessage, encodeExtended, encodeIndexMessage, encodePiece, encodePort, encodeRaw,
} from '../../src/wire/index.js';
import { RecordingHandler, socketPair, toJson } from '../helpers/wire-sockets.js';

/** One message, as both its wire bytes and the handler log entry it must produce (null: no call). */
interface Msg { bytes: Buffer; expect: string | null }

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unknownIds = fc.integer({ min: 0, max: 255 }).filter(
  (id) => !(Object.values(MessageId) as number[]).includes(id),
);

const msgArb: fc.Arbitrary<Msg> = fc.oneof(
  fc.constant({ bytes: KEEP_ALIVE, expect: 'keep-alive' }),
  fc.constant({ bytes: CHOKE, expect: 'choke' }),
  fc.constant({ bytes: UNCHOKE, expect: 'unchoke' }),
  fc.constant({ bytes: INTERESTED, expect: 'interested' }),
  fc.constant({ bytes: NOT_INTERESTED, expect: 'not-interested' }),
  fc.constant({ bytes: HAVE_ALL, expect: 'have-all' }),
  fc.constant({ bytes: HAVE_NONE, expect: 'have-none' }),
  u32.map((i) => ({ bytes: encodeIndexMessage(MessageId.Have, i), expect: `have ${i}` })),
  u32.map((i) => ({ bytes: encodeIndexMessage(MessageId.Suggest, i), expect: `suggest ${i}` })),
  u32.map((i) => ({ bytes: encodeIndexMessage(MessageId.AllowedFast, i), expect: `allowed-fast ${i}` })),
  bytes(64).map((b) => ({ bytes: encodeBitfield(b), expect: `bitfield ${hex(b)}` })),
  fc.tuple(fc.constantFrom<[number, string]>(
    [MessageId.Request, 'request'], [MessageId.Cancel, 'cancel'], [MessageId.Reject, 'reject']), u32, u32, u32)
    .map(([[id, name], i, b, l]) => ({ bytes: encodeBlockMessage(id, i, b, l), expect: `${name} ${i} ${b} ${l}` })),
  fc.tuple(u32, u32, bytes(300)).map(([i, b, block]) => ({
    bytes: encodePiece(i, b, block), expect: `piece ${i} ${b} ${block.length} ${hex(block)}`,
  })),
  fc.integer({ min: 0, max: 65535 }).map((p) => ({ bytes: encodePort(p), expect: `port ${p}` })),
  fc.record({ m: fc.record({ ut_metadata: fc.nat(255), ut_pex: fc.nat(255) }), v: fc.string(), p: fc.nat(65535) })
    .map((d) => ({
      bytes: encodeExtended(0, encode(d)),
      expect: `ext-handshake ${JSON.stringify(toJson(decode(encode(d))))}`,
    })),
  fc.tuple(fc.integer({ min: 1, max: 255 }), bytes(100)).map(([id, p]) => ({
    bytes: encodeExtended(id, p), expect: `ext ${id} ${hex(p)}`,
  })),
  fc.tuple(unknownIds, bytes(100)).map(([id, p]) => ({ bytes: encodeRaw(id, p), expect: null })),
);

function parseAll(chunks: Buffer[]): RecordingHandler {
  const h = new RecordingHandler();
  const parser = new MessageParser(h, { onError: (err) => { throw err; } });
  for (const c of chunks) parser.push(c);
  return h;
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

test('every message type parses to the expected handler calls, whole and split at random points', () => {
  fc.assert(
    fc.property(fc.array(msgArb, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 40 }), (msgs, cuts) => {
      const stream = Buffer.concat(msgs.map((m) => m.bytes));
      const expected = msgs.flatMap((m) => (m.expect === null ? [] : [m.expect]));
      assert.deepEqual(parseAll([stream]).log, expected);
      assert.deepEqual(parseAll(splitAt(stream, cuts)).log, expected);
    }),
    { numRuns: 300 },
  );
});

test('one byte at a time gives the same calls as one chunk', () => {
  fc.assert(
    fc.property(fc.array(msgArb, { minLength: 1, maxLength: 15 }), (msgs) => {
      const stream = Buffer.concat(msgs.map((m) => m.bytes));
      const single: Buffer[] = [];
      for (let i = 0; i < stream.length; i++) single.push(stream.subarray(i, i + 1));
      assert.deepEqual(parseAll(single).log, parseAll([stream]).log);
    }),
    { numRuns: 100 },
  );
});

test('piece block bytes land in the buffer returned by onPieceStart, across chunks', () => {
  const block = Buffer.alloc(16384);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7 + 3) & 0xff;
  const pieceBuf = Buffer.alloc(65536, 0xee);
  const calls: string[] = [];
  class IntoPiece extends RecordingHandler {
    override onPieceStart(index: number, begin: number, length: number): Buffer {
      calls.push(`start ${index} ${begin} ${length}`);
      return pieceBuf.subarray(begin, begin + length);
    }
    override onPiece(index: number, begin: number, length: number): void { calls.push(`done ${index} ${begin} ${length}`); }
    override onHave(i: number): void { calls.push(`have ${i}`); }
  }
  const handler = new IntoPiece();
  const parser = new MessageParser(handler);
  const stream = Buffer.concat([encodePiece(3, 16384, block), encodeIndexMessage(MessageId.Have, 9)]);
  // Uneven chunks, including one that ends inside the 13-byte header.
  for (const c of splitAt(stream, [7, 100, 5000, 5001, 16000])) parser.push(c);
  assert.deepEqual(calls, ['start 3 16384 16384', 'done 3 16384 16384', 'have 9']);
  assert.ok(pieceBuf.subarray(16384, 32768).equals(block));
  assert.ok(pieceBuf.subarray(0, 16384).every((b) => b === 0xee));
  assert.ok(pieceBuf.subarray(32768).every((b) => b === 0xee));
});

test('a discarded block (onPieceStart returns null) is skipped and parsing continues', () => {
  const h = new RecordingHandler();
  h.discardPieces = true;
  const parser = new MessageParser(h);
  const stream = Buffer.concat([encodePiece(1, 0, Buffer.alloc(1000, 1)), UNCHOKE]);
  for (const c of splitAt(stream, [20, 500])) parser.push(c);
  assert.deepEqual(h.log, ['piece 1 0 1000 discarded', 'unchoke']);
});

test('a too-short piece buffer from the handler is reported as a handler bug', () => {
  const h = new RecordingHandler();
  h.onPieceStart = () => Buffer.alloc(10);
  const parser = new MessageParser(h);
  assert.throws(() => parser.push(encodePiece(0, 0, Buffer.alloc(100))), RangeError);
  assert.equal(parser.isStopped, true);
});

function protocolError(bytes: Buffer, opts: { fast?: boolean; extended?: boolean } = {}): { message: string; log: string[] } {
  const h = new RecordingHandler();
  const errors: Error[] = [];
  const parser = new MessageParser(h, { ...opts, onError: (e) => errors.push(e) });
  parser.push(Buffer.concat([bytes, HAVE_ALL]));
  parser.push(CHOKE); // ignored after the error
  assert.equal(errors.length, 1, 'exactly one error');
  assert.ok(isShoalError(errors[0], 'EWIRE'));
  assert.equal(parser.isStopped, true);
  return { message: errors[0]!.message, log: h.log };
}

test('oversized length prefix is a protocol error with the limit in the message', () => {
  const b = Buffer.alloc(4, 0xff);
  assert.equal(protocolError(b).message, 'peer sent a 4294967295-byte message (limit 1048589)');
  // Reported as soon as the 4 length bytes are in, even one byte at a time.
  const h = new RecordingHandler();
  let err: Error | undefined;
  const parser = new MessageParser(h, { maxMessageLength: 100, onError: (e) => { err = e; } });
  const msg = encodeRaw(99, Buffer.alloc(200));
  for (let i = 0; i < 4; i++) parser.push(msg.subarray(i, i + 1));
  assert.equal(err?.message, 'peer sent a 201-byte message (limit 100)');
});

test('wrong fixed message lengths are protocol errors', () => {
  assert.match(protocolError(encodeRaw(MessageId.Choke, Buffer.alloc(1))).message, /choke message of length 2 \(expected 1\)/);
  assert.match(protocolError(encodeRaw(MessageId.Have, Buffer.alloc(5))).message, /have message of length 6/);
  assert.match(protocolError(encodeRaw(MessageId.Request, Buffer.alloc(11))).message, /request message of length 12 \(expected 13\)/);
  assert.match(protocolError(encodeRaw(MessageId.Port, Buffer.alloc(1))).message, /port message of length 2/);
  assert.match(protocolError(encodeRaw(MessageId.Piece, Buffer.alloc(7))).message, /piece message of length 8/);
  assert.match(protocolError(encodeRaw(MessageId.Extended)).message, /extended message of length 1/);
  assert.deepEqual(protocolError(Buffer.concat([UNCHOKE, encodeRaw(MessageId.Reject, Buffer.alloc(8))])).log, ['unchoke']);
});

test('blocks above the block limit are refused', () => {
  assert.match(protocolError(encodePiece(0, 0, Buffer.alloc(128 * 1024 + 1))).message, /131073-byte block \(limit 131072\)/);
  // Exactly the limit is fine.
  const h = new RecordingHandler();
  new MessageParser(h).push(encodePiece(0, 0, Buffer.alloc(128 * 1024)));
  assert.equal(h.log.length, 1);
});

test('fast and extended messages are protocol errors unless negotiated', () => {
  assert.match(protocolError(HAVE_NONE, { fast: false }).message, /have none message but the fast extension/);
  assert.match(protocolError(encodeIndexMessage(MessageId.Suggest, 1), { fast: false }).message, /suggest/);
  assert.match(protocolError(encodeExtended(1, Buffer.alloc(3)), { extended: false }).message, /extension protocol was not negotiated/);
});

test('malformed extended handshakes are protocol errors', () => {
  assert.match(protocolError(encodeExtended(0, Buffer.from('d1:ai1e'))).message, /malformed extended handshake/);
  assert.match(protocolError(encodeExtended(0, Buffer.from('li1ee'))).message, /not a dictionary/);
});

test('unknown ids are skipped, even when split and large', () => {
  const h = new RecordingHandler();
  const parser = new MessageParser(h);
  const stream = Buffer.concat([encodeRaw(200, Buffer.alloc(500_000, 9)), INTERESTED]);
  for (const c of splitAt(stream, [3, 6, 1000, 400_000])) parser.push(c);
  assert.deepEqual(h.log, ['interested']);
  assert.ok(parser.bufferCapacity <= 64, 'unknown payloads are not buffered');
});

test('stop() from inside a handler halts delivery of the rest of the chunk', () => {
  const h = new RecordingHandler();
  const parser = new MessageParser(h);
  h.onUnchoke = () => { h.log.push('unchoke'); parser.stop(); };
  parser.push(Buffer.concat([CHOKE, UNCHOKE, INTERESTED]));
  assert.deepEqual(h.log, ['choke', 'unchoke']);
});

test('large split messages use a bounded buffer that is released afterwards', () => {
  const h = new RecordingHandler();
  const parser = new MessageParser(h);
  const bits = Buffer.alloc(200_000, 0xaa);
  const stream = encodeBitfield(bits);
  for (const c of splitAt(stream, [2, 50_000, 150_000])) parser.push(c);
  assert.equal(h.log.length, 1);
  assert.ok(parser.bufferCapacity <= 64 * 1024);
});

test('PeerWire round trip over loopback: every send method arrives as the matching handler call', async () => {
  const { a, b, destroy } = await socketPair();
  const recv = new RecordingHandler();
  const send = new RecordingHandler();
  const wa = new PeerWire(a, send, { fast: true, extended: true });
  const wb = new PeerWire(b, recv, { fast: true, extended: true });
  try {
    const block = Buffer.alloc(16384);
    for (let i = 0; i < block.length; i++) block[i] = i % 251;
    const expected: string[] = [];
    const hs = { m: { ut_metadata: 3 }, v: 'Shoal 0.1', reqq: 250 };
    wa.cork();
    wa.extendedHandshake(hs); expected.push(`ext-handshake ${JSON.stringify(toJson(decode(encode(hs))))}`);
    wa.bitfield(Buffer.from([0xf0, 0x80])); expected.push('bitfield f080');
    wa.haveAll(); expected.push('have-all');
    wa.haveNone(); expected.push('have-none');
    wa.choke(); expected.push('choke');
    wa.unchoke(); expected.push('unchoke');
    wa.interested(); expected.push('interested');
    wa.notInterested(); expected.push('not-interested');
    wa.have(4_000_000_000); expected.push('have 4000000000');
    wa.request(1, 16384, 16384); expected.push('request 1 16384 16384');
    wa.cancel(1, 16384, 16384); expected.push('cancel 1 16384 16384');
    wa.uncork();
    assert.equal(typeof wa.piece(2, 32768, block), 'boolean'); expected.push(`piece 2 32768 16384 ${block.toString('hex')}`);
    wa.port(6881); expected.push('port 6881');
    wa.suggest(7); expected.push('suggest 7');
    wa.reject(3, 0, 16384); expected.push('reject 3 0 16384');
    wa.allowedFast(11); expected.push('allowed-fast 11');
    wa.extended(3, Buffer.from('hello')); expected.push(`ext 3 ${Buffer.from('hello').toString('hex')}`);
    wa.keepAlive(); expected.push('keep-alive');
    await recv.waitForLog(expected.length);
    assert.deepEqual(recv.log, expected);
    assert.equal(wb.bytesReceived, wa.bytesSent);
    assert.equal(wa.remoteAddress, '127.0.0.1');
    assert.equal(wb.remotePort, a.localPort);
    assert.equal(wa.needsDrain, false);
  } finally {
    wa.destroy();
    wb.destroy();
    destroy();
  }
  assert.equal(send.closed, true);
  assert.equal(send.closeError, undefined);
});

test('PeerWire refuses to send fast or extended messages that were not negotiated', async () => {
  const { a, destroy } = await socketPair();
  const h = new RecordingHandler();
  const w = new PeerWire(a, h, { fast: false, extended: false });
  try {
    assert.throws(() => w.haveAll(), /fast extension was not negotiated/);
    assert.throws(() => w.reject(0, 0, 1), /fast extension/);
    assert.throws(() => w.extendedHandshake({}), /BEP 10 was not negotiated/);
    assert.throws(() => w.extended(1, Buffer.alloc(0)), /BEP 10/);
    assert.equal(w.bytesSent, 0);
  } finally {
    w.destroy();
    w.destroy();
    destroy();
  }
  assert.equal(h.closed, true); // and RecordingHandler throws if onClose ran twice
});

test('PeerWire delivers bytes left over from the handshake before later socket data', async () => {
  const { a, b, destroy } = await socketPair();
  const h = new RecordingHandler();
  try {
    const have1 = encodeIndexMessage(MessageId.Have, 1);
    const leftover = Buffer.concat([encodeIndexMessage(MessageId.Have, 0), have1.subarray(0, 3)]);
    a.write(have1.subarray(3));
    a.write(encodeIndexMessage(MessageId.Have, 2));
    // Let the later bytes sit in b's read buffer first: they must still come after `rest`.
    b.read(0);
    for (let i = 0; i < 200 && b.readableLength < 15; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(b.readableLength, 15);
    const w = new PeerWire(b, h, { fast: false, extended: false, rest: leftover });
    assert.deepEqual(h.log, [], 'nothing is delivered from inside the constructor');
    await h.waitForLog(3);
    assert.deepEqual(h.log, ['have 0', 'have 1', 'have 2']);
    assert.equal(w.bytesReceived, 27);
    w.destroy();
  } finally {
    destroy();
  }
});

test('PeerWire sends what handling one read produced in one write, not one write per message', async () => {
  const { a, b, destroy } = await socketPair();
  const asker = new RecordingHandler();
  const server = new RecordingHandler();
  const wa = new PeerWire(a, asker, { fast: false, extended: false });
  const wb = new PeerWire(b, server, { fast: false, extended: false });
  // Count the writes b's socket makes (one per _write or _writev call: each is one trip to the kernel).
  let writes = 0;
  const sock = b as unknown as { _write: (...args: unknown[]) => unknown; _writev: (...args: unknown[]) => unknown };
  const write1 = sock._write.bind(b);
  const writev = sock._writev.bind(b);
  sock._write = (...args) => { writes++; return write1(...args); };
  sock._writev = (...args) => { writes++; return writev(...args); };
  server.onRequest = (index: number, begin: number, length: number) => {
    server.log.push(`request ${index} ${begin} ${length}`);
    wb.have(index); // a reply per message, as an uploader answering requests would write
  };
  try {
    wa.cork();
    for (let i = 0; i < 3; i++) wa.request(i, 0, 16384);
    wa.uncork(); // 51 bytes in one segment: one read on b's side
    await asker.waitForLog(3);
    assert.deepEqual(asker.log, ['have 0', 'have 1', 'have 2']);
    assert.equal(writes, 1, 'the three replies left in one write');
    // A message sent outside any read (e.g. from a timer) still leaves at once.
    wb.interested();
    await asker.waitForLog(4);
    assert.equal(asker.log[3], 'interested');
    assert.equal(writes, 2);
  } finally {
    wa.destroy();
    wb.destroy();
    destroy();
  }
});

/** Counts the writes a socket makes (one per _write or _writev call: each is one trip to the kernel). */
function countWrites(sock: object): () => number {
  let writes = 0;
  const s = sock as { _write: (...args: unknown[]) => unknown; _writev: (...args: unknown[]) => unknown };
  const write1 = s._write.bind(sock);
  const writev = s._writev.bind(sock);
  s._write = (...args) => { writes++; return write1(...args); };
  s._writev = (...args) => { writes++; return writev(...args); };
  return () => writes;
}

/** A wire whose sent bytes `rx` records, and a count of the writes its socket made. */
async function withSender(fn: (wb: PeerWire, rx: RecordingHandler, writes: () => number) => Promise<void>): Promise<void> {
  const { a, b, destroy } = await socketPair();
  const rx = new RecordingHandler();
  const wa = new PeerWire(a, rx, { fast: false, extended: false });
  const wb = new PeerWire(b, new RecordingHandler(), { fast: false, extended: false });
  try {
    await fn(wb, rx, countWrites(b));
  } finally {
    wa.destroy();
    wb.destroy();
    destroy();
  }
}

test('HAVEs wait for the next message to the peer and leave with it, in order, in one write', () => withSender(async (wb, rx, writes) => {
  wb.have(7);
  wb.have(9);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes(), 0, 'nothing written yet: the HAVEs wait for company');
  wb.request(1, 0, 16384);
  await rx.waitForLog(3);
  assert.deepEqual(rx.log, ['have 7', 'have 9', 'request 1 0 16384']);
  assert.equal(writes(), 1);
  // A block carries them too.
  wb.have(2);
  wb.piece(1, 0, Buffer.alloc(16));
  await rx.waitForLog(5);
  assert.deepEqual(rx.log.slice(3), ['have 2', `piece 1 0 16 ${'00'.repeat(16)}`]);
  assert.equal(writes(), 2);
  assert.equal(wb.bytesSent, 2 * 9 + 17 + 9 + 13 + 16, 'every byte counted once');
}));

test('HAVEs with no message to ride leave on their own, together, after HAVE_DELAY_MS; none after destroy', () => withSender(async (wb, rx, writes) => {
  for (let i = 0; i < 5; i++) wb.have(i);
  await rx.waitForLog(5);
  assert.deepEqual(rx.log, ['have 0', 'have 1', 'have 2', 'have 3', 'have 4']);
  assert.equal(writes(), 1, 'five HAVEs, one write');
  // Many at once (a bulk announcement) do not wait.
  for (let i = 0; i < 64; i++) wb.have(100 + i);
  await rx.waitForLog(69);
  assert.equal(writes(), 2);
  // flushHaves() sends what waits now, without the timer.
  wb.have(200);
  wb.have(201);
  assert.equal(wb.waitingHaveCount, 2);
  wb.flushHaves();
  assert.equal(wb.waitingHaveCount, 0);
  await rx.waitForLog(71);
  assert.deepEqual(rx.log.slice(69), ['have 200', 'have 201']);
  assert.equal(writes(), 3);
  wb.have(500);
  wb.destroy();
  await new Promise((r) => setTimeout(r, HAVE_DELAY_MS + 100));
  assert.equal(writes(), 3, 'a destroyed wire sends nothing');
  assert.ok(!rx.log.includes('have 500'));
}));
