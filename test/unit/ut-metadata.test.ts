import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePrefix, encode } from '../../src/bencode/index.js';
import type { ExtensionConnection } from '../../src/connection/extension.js';
import { DEFAULT_MAX_METADATA_SIZE, METADATA_PIECE_SIZE, UtMetadata, formatSize } from '../../src/extensions/ut-metadata.js';
import { Network, Node, RawExtension } from '../helpers/extension-link.js';
import type { LinkConnection } from '../helpers/extension-link.js';
import { Clock, TestMetadataHost, makeInfo, sha1 } from '../helpers/metadata-fixtures.js';

const FETCHER_AT = { host: '127.0.0.1', port: 6881 };
const at = (i: number) => ({ host: `127.0.0.${10 + i}`, port: 7000 + i });

function serverNode(infoHash: Buffer, info: Buffer | undefined, clock: Clock): { node: Node; ext: UtMetadata; host: TestMetadataHost } {
  const host = new TestMetadataHost(infoHash, info);
  const ext = new UtMetadata(host, { now: clock.now });
  return { node: new Node([ext]), ext, host };
}

function parse(payload: Buffer): { dict: Record<string, unknown>; tail: Buffer } {
  const { value, end } = decodePrefix(payload);
  return { dict: value as Record<string, unknown>, tail: payload.subarray(end) };
}

/** A peer that advertises a size and rejects every request. */
function rejecter(size: number): RawExtension {
  return new RawExtension('ut_metadata', { metadata_size: size }, (conn, payload) => {
    const { dict } = parse(payload);
    if (dict['msg_type'] === 0) conn.sendExtended('ut_metadata', encode({ msg_type: 2, piece: dict['piece'] }));
  });
}

/** Advances the fake clock a second at a time, ticking and delivering, until `done` or the bound. */
function drive(net: Network, clock: Clock, exts: UtMetadata[], done: () => boolean, seconds = 120): void {
  net.run();
  for (let s = 0; s < seconds && !done(); s++) {
    clock.advance(1000);
    for (const e of exts) e.tick();
    net.run();
  }
}

test('a fetcher gets the info dict from a seeder through real messages, verified, exactly once', () => {
  const info = makeInfo(50_000); // 4 pieces, the last one short
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const seeder = serverNode(hash, info, clock);
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  assert.deepEqual(fetcher.handshakeFields(), {});
  assert.deepEqual(seeder.ext.handshakeFields(), { metadata_size: info.length });
  assert.equal(fetcher.fetching, true);
  net.connect(new Node([fetcher]), FETCHER_AT, seeder.node, at(1));
  net.run();
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  assert.equal(fetcher.fetching, false);
  assert.deepEqual(fetcher.handshakeFields(), { metadata_size: info.length });
  assert.deepEqual(fetcher.progress(), { pieces: 0, received: 0, peers: 1 });
  assert.deepEqual(fhost.warnings, []);
  // Ticks after completion send nothing more.
  const sent = net.sent;
  fetcher.tick();
  net.run();
  assert.equal(net.sent, sent);
});

test('requests spread over all peers advertising the size, a few at a time each', () => {
  const info = makeInfo(200_000, 2); // 13 pieces
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const servers = [0, 1, 2].map(() => serverNode(hash, info, clock));
  const conns = servers.map((s, i) => net.connect(fnode, FETCHER_AT, s.node, at(i))[1]);
  net.run();
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  const counts = conns.map((c) => c.received.get('ut_metadata') ?? 0);
  assert.equal(counts.reduce((x, y) => x + y, 0), Math.ceil(info.length / METADATA_PIECE_SIZE));
  for (const n of counts) assert.ok(n >= 3, `every peer served a share: ${counts.join(',')}`);
});

test('progress counts pieces while a fetch is under way', () => {
  const info = makeInfo(100_000, 3);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fetcher = new UtMetadata(new TestMetadataHost(hash), { now: clock.now });
  const silent = new RawExtension('ut_metadata', { metadata_size: info.length });
  net.connect(new Node([fetcher]), FETCHER_AT, new Node([silent]), at(1));
  net.run();
  assert.deepEqual(fetcher.progress(), { pieces: 7, received: 0, peers: 1 });
  assert.equal(silent.messages.length, 4, 'at most 4 requests in flight per peer');
});

test('three hostile peers and one honest: a size liar, a corrupt sender and a rejecter; the liars are dropped', () => {
  const info = makeInfo(70_000, 4); // 5 pieces
  const hash = sha1(info);
  const fake = makeInfo(120_000, 5); // the liar serves a different, bigger dict
  const corrupt = Buffer.from(info);
  for (let i = 0; i < corrupt.length; i += 1000) corrupt[i] ^= 0x5a; // every piece is wrong
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now, requestTimeoutMs: 2000 });
  const fnode = new Node([fetcher]);
  const [toLiar] = net.connect(fnode, FETCHER_AT, serverNode(hash, fake, clock).node, at(1));
  const [toCorrupt] = net.connect(fnode, FETCHER_AT, serverNode(hash, corrupt, clock).node, at(2));
  const rej = rejecter(info.length);
  const [toRejecter] = net.connect(fnode, FETCHER_AT, new Node([rej]), at(3));
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(4));
  drive(net, clock, [fetcher], () => fhost.received.length > 0);
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  assert.match(toCorrupt.closedReason ?? '', /does not match the info-hash/);
  assert.equal(toHonest.closed, false);
  assert.equal(toRejecter.closed, false, 'rejecting is allowed');
  assert.ok(rej.messages.length > 0, 'the rejecter was asked');
  // The liar's handshake came first, when it was the only claimer: its size was tried, failed alone, was discarded.
  assert.match(toLiar.closedReason ?? '', /sent 117\.2 KiB of metadata that does not match the info-hash/);
});

test('a size liar seen first is tried, fails the hash alone, is dropped and its size discarded', () => {
  const info = makeInfo(40_000, 7);
  const hash = sha1(info);
  const fake = makeInfo(90_000, 8);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const [toLiar] = net.connect(fnode, FETCHER_AT, serverNode(hash, fake, clock).node, at(1));
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(2));
  drive(net, clock, [fetcher], () => fhost.received.length > 0);
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  assert.match(toLiar.closedReason ?? '', /88 KiB|89\.\d KiB|KiB of metadata that does not match the info-hash/);
  assert.equal(toHonest.closed, false);
});

test('two liars sharing a wrong size are both dropped and the honest size is fetched after', () => {
  const info = makeInfo(40_000, 9);
  const hash = sha1(info);
  const fake = makeInfo(60_000, 10);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const liars = [1, 2].map((i) => net.connect(fnode, FETCHER_AT, serverNode(hash, fake, clock).node, at(i))[0]);
  const liar3 = net.connect(fnode, FETCHER_AT, serverNode(hash, makeInfo(60_000, 11), clock).node, at(3))[0];
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(4));
  drive(net, clock, [fetcher], () => fhost.received.length > 0);
  assert.equal(fhost.received.length, 1);
  for (const c of [...liars, liar3]) assert.match(c.closedReason ?? '', /does not match the info-hash/);
  assert.equal(toHonest.closed, false);
});

test('a mixed assembly that fails is resolved by fetching from one peer at a time; the honest peer stays', () => {
  const info = makeInfo(100_000, 12);
  const hash = sha1(info);
  const bad = Buffer.from(info);
  for (let i = 100; i < bad.length; i += METADATA_PIECE_SIZE) bad[i] ^= 0xff; // one byte wrong in every piece
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(1));
  const [toBad] = net.connect(fnode, FETCHER_AT, serverNode(hash, bad, clock).node, at(2));
  drive(net, clock, [fetcher], () => fhost.received.length > 0);
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  assert.equal(toHonest.closed, false);
  assert.match(toBad.closedReason ?? '', /does not match the info-hash/);
});

test('a size liar that is not the first to handshake is never asked while the majority size works', () => {
  const info = makeInfo(40_000, 21);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(1));
  const liarServer = serverNode(hash, makeInfo(90_000, 22), clock);
  const [toLiar] = net.connect(fnode, FETCHER_AT, liarServer.node, at(2));
  net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(3));
  drive(net, clock, [fetcher], () => fhost.received.length > 0);
  assert.equal(fhost.received.length, 1);
  assert.equal(toLiar.other.received.get('ut_metadata') ?? 0, 0);
  assert.equal(toLiar.closed, false);
  assert.equal(toHonest.closed, false);
});

test('a request that times out is asked of another peer; the late answer is accepted without closing', () => {
  const info = makeInfo(60_000, 13);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now, requestTimeoutMs: 3000 });
  const fnode = new Node([fetcher]);
  // The slow peer holds its requests until the test releases them.
  const held: [ExtensionConnection, number][] = [];
  const slow = new RawExtension('ut_metadata', { metadata_size: info.length }, (conn, payload) => {
    const { dict } = parse(payload);
    if (dict['msg_type'] === 0) held.push([conn, dict['piece'] as number]);
  });
  const [toSlow] = net.connect(fnode, FETCHER_AT, new Node([slow]), at(1));
  net.run();
  assert.equal(held.length, 4);
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(2));
  net.run();
  assert.equal(fhost.received.length, 0, 'the slow peer holds every piece');
  clock.advance(1000);
  fetcher.tick();
  net.run();
  assert.equal(fhost.received.length, 0, 'not timed out yet');
  clock.advance(3000);
  fetcher.tick();
  net.run();
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
  // Late answers arrive after completion: accepted quietly.
  for (const [conn, piece] of held) {
    const start = piece * METADATA_PIECE_SIZE;
    const chunk = info.subarray(start, Math.min(info.length, start + METADATA_PIECE_SIZE));
    conn.sendExtended('ut_metadata', Buffer.concat([encode({ msg_type: 1, piece, total_size: info.length }), chunk]));
  }
  net.run();
  assert.equal(toSlow.closed, false);
  assert.equal(toHonest.closed, false);
});

test('a peer claiming metadata over the limit is dropped with a warning naming the limit', () => {
  const hash = sha1(Buffer.from('x'));
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const big = new RawExtension('ut_metadata', { metadata_size: 40 * 1024 * 1024 });
  const [conn] = net.connect(new Node([fetcher]), FETCHER_AT, new Node([big]), { host: '1.2.3.4', port: 5 });
  net.run();
  assert.deepEqual(fhost.warnings, ['peer 1.2.3.4:5 claims metadata of 40 MiB, over the 16 MiB limit']);
  assert.equal(conn.closedReason, 'ut_metadata: peer 1.2.3.4:5 claims metadata of 40 MiB, over the 16 MiB limit');
  assert.equal(big.messages.length, 0, 'nothing was requested');
  assert.equal(DEFAULT_MAX_METADATA_SIZE, 16 * 1024 * 1024);
  // A smaller configured limit applies the same way.
  const small = new UtMetadata(new TestMetadataHost(hash), { maxSize: 100_000 });
  const net2 = new Network();
  const [c2] = net2.connect(new Node([small]), FETCHER_AT, new Node([new RawExtension('ut_metadata', { metadata_size: 100_001 })]), at(1));
  net2.run();
  assert.match(c2.closedReason ?? '', /claims metadata of 97\.7 KiB, over the 97\.7 KiB limit/);
  assert.equal(formatSize(100), '100 bytes');
});

test('serving: pieces for a fetcher, reject for out-of-range pieces and while we have no info', () => {
  const info = makeInfo(20_000, 14); // 2 pieces
  const hash = sha1(info);
  const clock = new Clock();
  for (const have of [true, false]) {
    const net = new Network();
    const server = serverNode(hash, have ? info : undefined, clock);
    const raw = new RawExtension('ut_metadata');
    const [, fromServer] = net.connect(new Node([raw]), FETCHER_AT, server.node, at(1));
    net.run();
    assert.equal(raw.handshakes[0]!['metadata_size'], have ? info.length : undefined);
    const toServer = fromServer.other;
    for (const piece of [0, 1, 2, 1000]) toServer.sendExtended('ut_metadata', encode({ msg_type: 0, piece }));
    net.run();
    const answers = raw.messages.map(parse);
    assert.equal(answers.length, 4);
    if (have) {
      assert.deepEqual(answers.map((a) => a.dict['msg_type']), [1, 1, 2, 2]);
      assert.deepEqual(answers.map((a) => a.dict['piece']), [0, 1, 2, 1000]);
      assert.equal(answers[0]!.dict['total_size'], info.length);
      assert.ok(Buffer.concat([answers[0]!.tail, answers[1]!.tail]).equals(info));
      assert.equal(answers[2]!.tail.length, 0);
    } else {
      assert.deepEqual(answers.map((a) => a.dict['msg_type']), [2, 2, 2, 2]);
    }
    assert.equal(fromServer.closed, false);
  }
});

test('a request flood closes the connection; a normal fetch (and a retry) does not', () => {
  const info = makeInfo(100_000, 15); // 7 pieces: budget 32 + 14
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const server = serverNode(hash, info, clock);
  const raw = new RawExtension('ut_metadata');
  const [toServer, fromServer] = net.connect(new Node([raw]), FETCHER_AT, server.node, at(1));
  net.run();
  for (let round = 0; round < 2; round++) for (let p = 0; p < 7; p++) toServer.sendExtended('ut_metadata', encode({ msg_type: 0, piece: p }));
  net.run();
  assert.equal(fromServer.closed, false);
  assert.equal(raw.messages.length, 14);
  for (let i = 0; i < 1000 && !toServer.closed; i++) {
    toServer.sendExtended('ut_metadata', encode({ msg_type: 0, piece: i % 7 }));
    net.run();
  }
  assert.match(fromServer.closedReason ?? '', /request flood/);
  assert.ok(raw.messages.length < 60, `served ${raw.messages.length} before closing`);
});

test('a slow steady requester is refilled over time and not closed', () => {
  const info = makeInfo(20_000, 16);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const server = serverNode(hash, info, clock);
  const raw = new RawExtension('ut_metadata');
  const [toServer, fromServer] = net.connect(new Node([raw]), FETCHER_AT, server.node, at(1));
  net.run();
  for (let i = 0; i < 300; i++) {
    toServer.sendExtended('ut_metadata', encode({ msg_type: 0, piece: 0 }));
    net.run();
    clock.advance(1000);
  }
  assert.equal(fromServer.closed, false);
  assert.equal(raw.messages.length, 300);
});

test('protocol violations close the connection with a reason; unknown message types are ignored', () => {
  const info = makeInfo(40_000, 17); // 3 pieces
  const hash = sha1(info);
  const valid = (p: number) => Buffer.concat([encode({ msg_type: 1, piece: p, total_size: info.length }), info.subarray(p * 16384, p * 16384 + 16384)]);
  const cases: [string, (piece: number) => Buffer | Buffer[], RegExp | undefined][] = [
    ['wrong total_size', (p) => Buffer.concat([encode({ msg_type: 1, piece: p, total_size: info.length + 1 }), Buffer.alloc(16384)]), /total_size/],
    ['short piece', (p) => Buffer.concat([encode({ msg_type: 1, piece: p, total_size: info.length }), Buffer.alloc(100)]), /expected 16384/],
    ['long piece', (p) => Buffer.concat([encode({ msg_type: 1, piece: p, total_size: info.length }), Buffer.alloc(16385)]), /expected 16384|larger than any/],
    ['piece sent twice', (p) => [valid(p), valid(p)], /unsolicited data for piece 0/],
    ['piece past the end', () => Buffer.concat([encode({ msg_type: 1, piece: 3, total_size: info.length }), Buffer.alloc(10)]), /unsolicited data for piece 3/],
    ['not bencode', () => Buffer.from('hello'), /malformed/],
    ['a list', () => encode([1, 2]), /malformed/],
    ['empty', () => Buffer.alloc(0), /malformed/],
    ['piece missing', () => encode({ msg_type: 0 }), /piece index/],
    ['negative piece', () => encode({ msg_type: 2, piece: -1 }), /piece index/],
    ['huge message', () => Buffer.alloc(100_000, 0x31), /larger than any/],
    ['unknown msg_type', () => encode({ msg_type: 7, piece: 0 }), undefined],
    ['unsolicited reject', () => encode({ msg_type: 2, piece: 2 }), undefined],
  ];
  for (const [what, make, expect] of cases) {
    const clock = new Clock();
    const net = new Network();
    const fetcher = new UtMetadata(new TestMetadataHost(hash), { now: clock.now });
    let firstPiece = -1;
    const raw = new RawExtension('ut_metadata', { metadata_size: info.length }, (conn, payload) => {
      const { dict } = parse(payload);
      if (firstPiece < 0 && dict['msg_type'] === 0) {
        firstPiece = dict['piece'] as number;
        const out = make(firstPiece);
        for (const m of Array.isArray(out) ? out : [out]) conn.sendExtended('ut_metadata', m);
      }
    });
    const [conn] = net.connect(new Node([fetcher]), FETCHER_AT, new Node([raw]), at(1));
    net.run();
    assert.equal(firstPiece, 0, what);
    if (expect === undefined) assert.equal(conn.closed, false, what);
    else assert.match(conn.closedReason ?? '(open)', expect, what);
  }
});

test('a connection that goes away mid-fetch hands its pieces to the others', () => {
  const info = makeInfo(120_000, 18);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const fnode = new Node([fetcher]);
  const silent = new RawExtension('ut_metadata', { metadata_size: info.length });
  const [toSilent] = net.connect(fnode, FETCHER_AT, new Node([silent]), at(1));
  net.run();
  const [toHonest] = net.connect(fnode, FETCHER_AT, serverNode(hash, info, clock).node, at(2));
  net.run();
  assert.equal(fhost.received.length, 0);
  toSilent.other.close('peer went away');
  net.run();
  assert.equal(fhost.received.length, 1);
  assert.equal(toHonest.closed, false);
});

test('an info dict that arrives by other means ends fetching; no more requests are sent', () => {
  const info = makeInfo(60_000, 19);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now, requestTimeoutMs: 1000 });
  const silent = new RawExtension('ut_metadata', { metadata_size: info.length });
  net.connect(new Node([fetcher]), FETCHER_AT, new Node([silent]), at(1));
  net.run();
  const asked = silent.messages.length;
  fhost.metadataReceived(info); // e.g. the user added the .torrent file
  clock.advance(10_000);
  fetcher.tick();
  net.run();
  assert.equal(fetcher.fetching, false);
  assert.equal(silent.messages.length, asked);
});

test('pieces are copied out of the transport buffer (the harness overwrites payloads after each call)', () => {
  const info = makeInfo(33_000, 20);
  const hash = sha1(info);
  const clock = new Clock();
  const net = new Network();
  const fhost = new TestMetadataHost(hash);
  const fetcher = new UtMetadata(fhost, { now: clock.now });
  const conns: LinkConnection[] = [];
  for (let i = 0; i < 2; i++) conns.push(net.connect(new Node([fetcher]), FETCHER_AT, serverNode(hash, info, clock).node, at(i))[0]);
  net.run();
  assert.equal(fhost.received.length, 1);
  assert.ok(fhost.received[0]!.equals(info));
});
