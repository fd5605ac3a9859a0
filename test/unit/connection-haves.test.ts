// Haves are batched (connection.ts, HAVE_BATCH_MS): they reach the peer complete and in order, several in one
// transport write, and ride along with the next request instead of costing a write of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { HAVE_BATCH_MS, PeerConnection, type ConnectionEvents } from '../../src/connection/connection.js';
import { ExtensionRegistry } from '../../src/connection/registry.js';
import { MessageParser } from '../../src/wire/parser.js';
import type { HandshakeInfo, WireHandler } from '../../src/wire/types.js';

/** A transport that records each write the connection makes (a writev counts once, as one syscall would). */
class RecordingTransport extends Duplex {
  readonly writes: Buffer[] = [];
  remoteAddress = '127.0.0.1';
  remotePort = 6881;
  override _read(): void { /* the peer never speaks in these tests */ }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writes.push(Buffer.from(chunk));
    cb();
  }
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writes.push(Buffer.concat(chunks.map((c) => c.chunk)));
    cb();
  }
}

const handshake: HandshakeInfo = {
  infoHash: Buffer.alloc(20, 1), peerId: Buffer.alloc(20, 2), reserved: Buffer.alloc(8), fast: true, extended: true, dht: false,
};

function connection(): { c: PeerConnection; t: RecordingTransport } {
  const t = new RecordingTransport();
  const noop = (): undefined => undefined;
  const events = new Proxy({}, { get: () => noop }) as unknown as ConnectionEvents;
  const c = new PeerConnection(t, handshake, { host: '127.0.0.1', port: 6881 }, true, Buffer.alloc(0), events, new ExtensionRegistry(), 64);
  return { c, t };
}

/** The messages in `bytes`, as the peer's parser sees them. */
function messages(bytes: Buffer): string[] {
  const seen: string[] = [];
  const handler = {
    onHave: (i: number) => seen.push(`have ${i}`),
    onRequest: (i: number, b: number, l: number) => seen.push(`request ${i} ${b} ${l}`),
  } as unknown as WireHandler;
  new MessageParser(handler).push(bytes);
  return seen;
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('haves wait for their batch and go out in one write, in order', async () => {
  const { c, t } = connection();
  c.sendHave(3);
  c.sendHave(9);
  c.sendHave(4);
  assert.equal(t.writes.length, 0, 'nothing written at once');
  await wait(HAVE_BATCH_MS + 100);
  assert.equal(t.writes.length, 1, 'one write for the batch');
  assert.deepEqual(messages(t.writes[0]!), ['have 3', 'have 9', 'have 4']);
  c.destroy();
});

test('a request takes the waiting haves along in the same write', async () => {
  const { c, t } = connection();
  c.sendHave(7);
  c.sendRequests(Uint32Array.of(2, 0, 16384, 2, 16384, 16384), 2);
  assert.equal(t.writes.length, 1);
  assert.deepEqual(messages(t.writes[0]!), ['have 7', 'request 2 0 16384', 'request 2 16384 16384']);
  await wait(HAVE_BATCH_MS + 100);
  assert.equal(t.writes.length, 1, 'the batch timer finds nothing left to send');
  c.destroy();
});

test('a corked write (blocks going out) takes the waiting haves first', () => {
  const { c, t } = connection();
  c.sendHave(1);
  c.cork();
  c.sendRequests(Uint32Array.of(5, 0, 16384), 1);
  assert.equal(t.writes.length, 0, 'still corked');
  c.uncork();
  assert.equal(t.writes.length, 1);
  assert.deepEqual(messages(t.writes[0]!), ['have 1', 'request 5 0 16384']);
  c.destroy();
});

test('haves pending when the connection closes are dropped quietly', async () => {
  const { c, t } = connection();
  c.sendHave(2);
  c.destroy();
  await wait(HAVE_BATCH_MS + 100);
  assert.equal(t.writes.length, 0);
});

test('an initial-seeding offer (advertise) is written at once, after any haves still waiting', () => {
  const { c, t } = connection();
  c.sendHave(8);
  c.advertise(12);
  assert.equal(t.writes.length, 1, 'the offer did not wait for the batch');
  assert.deepEqual(messages(t.writes[0]!), ['have 8', 'have 12']);
  c.destroy();
});
