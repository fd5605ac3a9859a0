import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePrefix, encode } from '../../src/bencode/index.js';
import { METADATA_PIECE_SIZE, UtMetadata } from '../../src/extensions/ut-metadata.js';
import { Network, Node, RawExtension } from '../helpers/extension-link.js';
import type { LinkConnection } from '../helpers/extension-link.js';
import { Clock, TestMetadataHost, makeInfo, sha1 } from '../helpers/metadata-fixtures.js';

const INFO = makeInfo(40_000, 31); // 3 pieces
const HASH = sha1(INFO);

function dataMsg(piece: number, totalSize = INFO.length, body?: Buffer): Buffer {
  const start = piece * METADATA_PIECE_SIZE;
  return Buffer.concat([encode({ msg_type: 1, piece, total_size: totalSize }), body ?? INFO.subarray(start, start + METADATA_PIECE_SIZE)]);
}

/** A fetcher with requests outstanding to a raw peer that advertised INFO's size. */
function fetcherWithRequests(handshake: Record<string, unknown> = { metadata_size: INFO.length }) {
  const clock = new Clock();
  const net = new Network();
  const host = new TestMetadataHost(HASH);
  const fetcher = new UtMetadata(host, { now: clock.now, requestTimeoutMs: 1000 });
  const raw = new RawExtension('ut_metadata', handshake);
  const [conn] = net.connect(new Node([fetcher]), { host: '127.0.0.1', port: 6881 }, new Node([raw]), { host: '127.0.0.2', port: 6882 });
  net.run();
  return { clock, net, host, fetcher, raw, conn };
}

function mustNotThrow(fn: () => void, what: string): void {
  try {
    fn();
  } catch (e) {
    assert.fail(`${what}: threw ${String(e)}`);
  }
}

/** Whatever the peer sent, the host only ever got the true bytes. */
function onlyTrueMetadata(host: TestMetadataHost): void {
  for (const r of host.received) assert.ok(sha1(r).equals(HASH));
}

test('fuzz (seeded): mutated data messages to a fetcher only close the connection', () => {
  const bases = [dataMsg(0), dataMsg(2), encode({ msg_type: 2, piece: 1 }), encode({ msg_type: 0, piece: 0 })];
  fc.assert(fc.property(
    fc.nat(bases.length - 1),
    fc.array(fc.tuple(fc.nat(64), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.option(fc.nat(INFO.length), { nil: undefined }),
    (which, edits, cut) => {
      const t = fetcherWithRequests();
      const base = bases[which]!;
      const buf = Buffer.from(base.subarray(0, cut === undefined ? base.length : Math.min(base.length, cut)));
      // Edits hit the bencoded header, where parsing happens.
      for (const [i, v] of edits) if (i < buf.length) buf[i] = v;
      mustNotThrow(() => t.fetcher.onMessage(t.conn, buf), 'onMessage');
      mustNotThrow(() => { t.net.run(); t.clock.advance(2000); t.fetcher.tick(); t.net.run(); }, 'after');
      onlyTrueMetadata(t.host);
    }), { numRuns: 1500, seed: 0xbe9 });
});

test('fuzz (seeded): random bytes to a fetcher and to a seeder only close the connection', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (u, toSeeder) => {
    const clock = new Clock();
    const net = new Network();
    const host = new TestMetadataHost(HASH, toSeeder ? INFO : undefined);
    const ext = new UtMetadata(host, { now: clock.now });
    const raw = new RawExtension('ut_metadata', { metadata_size: INFO.length });
    const [conn] = net.connect(new Node([ext]), { host: '127.0.0.1', port: 6881 }, new Node([raw]), { host: '127.0.0.2', port: 6882 });
    net.run();
    mustNotThrow(() => ext.onMessage(conn, Buffer.from(u)), 'onMessage');
    mustNotThrow(() => net.run(), 'after');
    onlyTrueMetadata(host);
    // Every answer a seeder sent is a well-formed data or reject message.
    for (const m of raw.messages) {
      const { value } = decodePrefix(m);
      assert.ok([0, 1, 2].includes((value as Record<string, number>)['msg_type']!));
    }
  }), { numRuns: 1500, seed: 7 });
});

test('fuzz (seeded): random message sequences from one hostile peer next to an honest one never yield wrong metadata', () => {
  const msg = fc.oneof(
    fc.record({ t: fc.constant(0), piece: fc.integer({ min: -1, max: 4 }) }),
    fc.record({ t: fc.constant(1), piece: fc.integer({ min: 0, max: 4 }), total: fc.constantFrom(INFO.length, INFO.length - 1, 0, 2 ** 40), len: fc.constantFrom(16384, 7232, 0, 16385), fill: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ t: fc.constant(2), piece: fc.integer({ min: 0, max: 4 }) }),
    fc.record({ t: fc.constant(9), piece: fc.integer({ min: 0, max: 4 }) }),
  );
  fc.assert(fc.property(fc.array(msg, { maxLength: 12 }), fc.boolean(), (msgs, honestFirst) => {
    const clock = new Clock();
    const net = new Network();
    const host = new TestMetadataHost(HASH);
    const fetcher = new UtMetadata(host, { now: clock.now, requestTimeoutMs: 1000 });
    const fnode = new Node([fetcher]);
    const hostile = new RawExtension('ut_metadata', { metadata_size: INFO.length });
    const honest = new UtMetadata(new TestMetadataHost(HASH, INFO), { now: clock.now });
    const links: LinkConnection[] = [];
    const connectHostile = () => links.push(net.connect(fnode, { host: '127.0.0.1', port: 6881 }, new Node([hostile]), { host: '127.0.0.3', port: 6883 })[1]);
    const connectHonest = () => net.connect(fnode, { host: '127.0.0.1', port: 6881 }, new Node([honest]), { host: '127.0.0.4', port: 6884 });
    if (honestFirst) { connectHonest(); connectHostile(); } else { connectHostile(); connectHonest(); }
    const fromHostile = links[0]!;
    for (const m of msgs) {
      const payload = m.t === 1
        ? Buffer.concat([encode({ msg_type: 1, piece: m.piece, total_size: m.total }), Buffer.alloc(m.len, m.fill)])
        : encode({ msg_type: m.t, piece: m.piece });
      fromHostile.sendExtended('ut_metadata', payload);
    }
    mustNotThrow(() => {
      for (let s = 0; s < 30 && host.received.length === 0; s++) { net.run(); clock.advance(1000); fetcher.tick(); }
      net.run();
    }, 'run');
    onlyTrueMetadata(host);
    assert.equal(host.received.length, 1, 'the honest peer still delivers');
  }), { numRuns: 400, seed: 99 });
});

test('handshake values of the wrong type or range are ignored without requests or exceptions', () => {
  for (const size of ['40000', -5, 0, [1], { a: 1 }, Number.MAX_SAFE_INTEGER, Buffer.from('x')]) {
    const t = fetcherWithRequests({ metadata_size: size });
    assert.equal(t.raw.messages.length, 0, `metadata_size ${JSON.stringify(size)}`);
    if (size === Number.MAX_SAFE_INTEGER) assert.match(t.conn.closedReason ?? '', /over the 16 MiB limit/);
    else assert.equal(t.conn.closed, false);
  }
});

test('deeply nested or oversized headers are closed, not parsed into a stack overflow', () => {
  const deep = Buffer.from('d8:msg_typei1e5:piecei0e1:x' + 'l'.repeat(5000) + 'e'.repeat(5000) + 'e');
  for (const payload of [deep, Buffer.concat([Buffer.from('d1:x'), Buffer.from(`${20000}:`), Buffer.alloc(20000), Buffer.from('e')])]) {
    const t = fetcherWithRequests();
    mustNotThrow(() => t.fetcher.onMessage(t.conn, payload), 'onMessage');
    assert.match(t.conn.closedReason ?? '', /malformed|larger than any/, payload.subarray(0, 40).toString());
  }
});

test('a peer that re-handshakes a different size mid-fetch cannot slip old-size pieces in', () => {
  const t = fetcherWithRequests();
  assert.equal(t.raw.messages.length, 3);
  // New handshake with another size, then data for the old size.
  const fromRaw = t.conn.other;
  fromRaw.sendHandshake({ metadata_size: INFO.length + 100 });
  t.net.run();
  fromRaw.sendExtended('ut_metadata', dataMsg(0));
  t.net.run();
  assert.match(t.conn.closedReason ?? '', /total_size/);
  onlyTrueMetadata(t.host);
});

test('a peer that claims the maximum size and then stalls costs one bounded buffer and is timed out', () => {
  const max = 1024 * 1024;
  const clock = new Clock();
  const net = new Network();
  const host = new TestMetadataHost(HASH);
  const fetcher = new UtMetadata(host, { now: clock.now, maxSize: max, requestTimeoutMs: 1000 });
  const staller = new RawExtension('ut_metadata', { metadata_size: max });
  const [toStaller] = net.connect(new Node([fetcher]), { host: '127.0.0.1', port: 6881 }, new Node([staller]), { host: '127.0.0.2', port: 6882 });
  net.run();
  assert.deepEqual(fetcher.progress(), { pieces: 64, received: 0, peers: 1 });
  for (let s = 0; s < 10; s++) { clock.advance(1000); fetcher.tick(); net.run(); }
  // Only a few requests per backoff period: a staller cannot make us spin.
  assert.ok(staller.messages.length <= 8, `requests sent: ${staller.messages.length}`);
  assert.equal(toStaller.closed, false);
});

test('messages arriving on a connection after it was dropped are ignored and keep no state', () => {
  const t = fetcherWithRequests();
  t.fetcher.onMessage(t.conn, Buffer.from('garbage'));
  assert.match(t.conn.closedReason ?? '', /malformed/);
  mustNotThrow(() => t.fetcher.onMessage(t.conn, dataMsg(0)), 'late data');
  mustNotThrow(() => t.fetcher.onHandshake(t.conn, { m: { ut_metadata: 1 }, metadata_size: INFO.length }), 'late handshake');
  assert.deepEqual(t.fetcher.progress().peers, 0);
  onlyTrueMetadata(t.host);
});
