import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isShoalError } from '../../src/util/errors.js';
import {
  HAVE_ALL, KEEP_ALIVE, MessageId, PeerWire, encodeIndexMessage, encodePiece, encodeRaw, readHandshake,
} from '../../src/wire/index.js';
import { RecordingHandler, socketPair } from '../helpers/wire-sockets.js';

/**
 * A PeerWire on one end of a loopback pair and a raw socket ("the attacker") on the other.
 * Resolves when the wire has closed and the attacker saw the connection go away.
 */
async function hostile(bytes: Buffer[], opts: { fast?: boolean; extended?: boolean; idleTimeoutMs?: number; keepAliveMs?: number } = {}) {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: opts.fast ?? false, extended: opts.extended ?? false, idleTimeoutMs: opts.idleTimeoutMs ?? 30_000, keepAliveMs: opts.keepAliveMs ?? 30_000 });
  const attackerClosed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  const received: Buffer[] = [];
  attacker.on('data', (c: Buffer) => received.push(c));
  try {
    for (const chunk of bytes) attacker.write(chunk);
    const err = await h.waitForClose();
    await attackerClosed;
    return { err, log: h.log, wire, received: Buffer.concat(received) };
  } finally {
    wire.destroy();
    destroy();
  }
}

test('an oversized length prefix closes the connection with EWIRE', async () => {
  const { err, log } = await hostile([Buffer.concat([Buffer.alloc(4, 0xff), Buffer.alloc(1000)])]);
  assert.ok(isShoalError(err, 'EWIRE'));
  assert.match(err.message, /^peer sent a 4294967295-byte message \(limit 1048589\) \[peer 127\.0\.0\.1:\d+\]$/);
  assert.deepEqual(log, []);
});

test('a custom maxMessageLength is enforced', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: false, extended: false, maxMessageLength: 1000 });
  try {
    attacker.write(encodeRaw(MessageId.Bitfield, Buffer.alloc(1000)));
    const err = await h.waitForClose();
    assert.ok(isShoalError(err, 'EWIRE'));
    assert.match(err.message, /1001-byte message \(limit 1000\)/);
  } finally {
    wire.destroy();
    destroy();
  }
});

test('wrong fixed message lengths close the connection', async () => {
  const cases: Array<[Buffer, RegExp]> = [
    [encodeRaw(MessageId.Have, Buffer.alloc(5)), /have message of length 6 \(expected 5\)/],
    [encodeRaw(MessageId.Request, Buffer.alloc(16)), /request message of length 17 \(expected 13\)/],
    [encodeRaw(MessageId.Cancel, Buffer.alloc(4)), /cancel message of length 5/],
    [encodeRaw(MessageId.Unchoke, Buffer.alloc(3)), /unchoke message of length 4/],
  ];
  for (const [bytes, re] of cases) {
    // Deliver the bad message in pieces, after a valid one, to use the split path too.
    const { err, log } = await hostile([encodeIndexMessage(MessageId.Have, 1), bytes.subarray(0, 3), bytes.subarray(3)]);
    assert.ok(isShoalError(err, 'EWIRE'), String(err));
    assert.match(err.message, re);
    assert.deepEqual(log, ['have 1']);
  }
});

test('fast or extended messages that were not negotiated close the connection', async () => {
  const r1 = await hostile([HAVE_ALL]);
  assert.ok(isShoalError(r1.err, 'EWIRE'));
  assert.match(r1.err.message, /fast extension was not negotiated/);
  const r2 = await hostile([encodeRaw(MessageId.Extended, Buffer.from([0, 0x64, 0x65]))], { fast: true });
  assert.ok(isShoalError(r2.err, 'EWIRE'));
  assert.match(r2.err.message, /extension protocol was not negotiated/);
});

test('an oversized piece block closes the connection', async () => {
  const { err } = await hostile([encodePiece(0, 0, Buffer.alloc(200 * 1024))]);
  assert.ok(isShoalError(err, 'EWIRE'));
  assert.match(err.message, /204800-byte block \(limit 131072\)/);
});

test('garbage instead of a handshake is refused at once', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  try {
    attacker.write('GET /announce HTTP/1.1\r\nHost: x\r\n\r\n');
    await assert.rejects(readHandshake(b, 30_000), (e) => isShoalError(e, 'EWIRE') && /protocol string length 71/.test(e.message));
  } finally {
    destroy();
  }
});

test('10k keep-alives and unknown messages keep the parser bounded and the wire usable', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: false, extended: false });
  try {
    const junk: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      junk.push(KEEP_ALIVE);
      junk.push(encodeRaw(21 + (i % 200), Buffer.alloc(i % 1000, i & 0xff)));
    }
    // Plus one near-limit unknown message dribbled in small writes.
    const big = encodeRaw(250, Buffer.alloc(1024 * 1024, 7));
    const stream = Buffer.concat([...junk, big, encodeIndexMessage(MessageId.Have, 42)]);
    for (let off = 0; off < stream.length; off += 65_537) attacker.write(stream.subarray(off, off + 65_537));
    await h.waitForLog(10_001);
    assert.equal(h.log.filter((e) => e === 'keep-alive').length, 10_000);
    assert.equal(h.log.at(-1), 'have 42');
    assert.equal(h.log.length, 10_001);
    assert.ok(wire.parser.bufferCapacity <= 64, `parser holds ${wire.parser.bufferCapacity} bytes`);
    assert.equal(wire.bytesReceived, stream.length);
    assert.equal(h.closed, false);
  } finally {
    wire.destroy();
    destroy();
  }
});

test('idle timeout closes a silent connection with ETIMEOUT', async () => {
  const { err } = await hostile([], { idleTimeoutMs: 150 });
  assert.ok(isShoalError(err, 'ETIMEOUT'));
  assert.match(err.message, /sent nothing for \d+ ms/);
});

test('keep-alives are sent when we have been quiet', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: false, extended: false, keepAliveMs: 40 });
  try {
    const got = await new Promise<Buffer>((resolve) => attacker.once('data', resolve));
    assert.ok(got.subarray(0, 4).equals(KEEP_ALIVE));
    assert.ok(wire.bytesSent >= 4);
  } finally {
    wire.destroy();
    destroy();
  }
});

test('a peer that vanishes mid-block ends the wire once, without an error', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: false, extended: false });
  try {
    attacker.end(encodePiece(0, 0, Buffer.alloc(16384)).subarray(0, 5000));
    const err = await h.waitForClose();
    assert.equal(err, undefined);
    assert.equal(wire.isDestroyed, true);
    assert.deepEqual(h.log, []);
  } finally {
    wire.destroy();
    destroy();
  }
});

test('a handler exception closes the wire with that error instead of crashing', async () => {
  const { a: attacker, b, destroy } = await socketPair();
  attacker.on('error', () => {});
  const h = new RecordingHandler();
  h.onChoke = () => { throw new Error('engine bug'); };
  const wire = new PeerWire(b, h, { fast: false, extended: false });
  try {
    attacker.write(Buffer.concat([encodeRaw(MessageId.Choke), encodeIndexMessage(MessageId.Have, 1)]));
    const err = await h.waitForClose();
    assert.equal(err?.message, 'engine bug');
    assert.deepEqual(h.log, []);
  } finally {
    wire.destroy();
    destroy();
  }
});

test('destroying a wire closes the socket seen by the remote side', async () => {
  const { a: remote, b, destroy } = await socketPair();
  const h = new RecordingHandler();
  const wire = new PeerWire(b, h, { fast: false, extended: false });
  const closed = new Promise<void>((resolve) => remote.once('close', () => resolve()));
  remote.resume();
  wire.destroy(new Error('bye'));
  await closed;
  assert.equal(h.closeError?.message, 'bye');
  assert.equal(wire.piece(0, 0, Buffer.alloc(1)), false);
  wire.have(1); // no-op after destroy
  destroy();
});
