/**
 * Hand-built hostile peers (real wire code, hostile decisions) against real Shoal Clients: corrupt data, bad
 * requests, request floods, unrequested blocks, malformed bitfields and haves, wrong info-hashes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import {
  KiB, MiB, compareContent, describe, peerInternals, startSeed, until, waitDone, waitEvent, withScope,
} from '../helpers/engine/harness.js';
import { RawServer, dialRaw, fullBitfield, randomPeerId, type RawPeer } from '../helpers/engine/raw-peer.js';
import { connectPeer, encodeHandshake } from '../../src/wire/handshake.js';
import { encodeBitfield, encodeIndexMessage, encodePiece } from '../../src/wire/encode.js';
import { MessageId } from '../../src/wire/types.js';
import { isShoalError } from '../../src/util/errors.js';
import type { Metainfo } from '../../src/metainfo/types.js';
import type { Torrent } from '../../src/engine/index.js';

const TIMEOUT = 90_000;

/** A fake seed: claims every piece, unchokes whoever is interested, and answers requests via `answer`. */
function fakeSeed(meta: Metainfo, answer: (p: RawPeer, index: number, begin: number, length: number) => void, onConnect?: (p: RawPeer) => void): RawServer {
  return new RawServer(meta.infoHash, (p) => {
    p.wire.bitfield(fullBitfield(meta.pieceCount));
    onConnect?.(p);
  }, {
    hooks: {
      onInterested: (p) => p.wire.unchoke(),
      onRequest: answer,
    },
  });
}

/** Records 'disconnect' errors of a torrent, for checking why a peer was dropped. */
function disconnects(t: Torrent): { address: string; err: Error | undefined }[] {
  const list: { address: string; err: Error | undefined }[] = [];
  t.on('disconnect', (address: string, err?: Error) => list.push({ address, err }));
  return list;
}

test('corrupt-data peer next to an honest seed: download is correct and the liar is banned', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-corrupt', async (s) => {
    const data = randomBytes(4 * MiB + 1234);
    const { meta } = makeMetainfo([{ path: ['c.bin'], data }], 32 * KiB, 'c.bin');
    // The honest seed is throttled so the liar gets a fair share of the requests.
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    const liar = fakeSeed(meta, (p, i, b, l) => p.wire.piece(i, b, randomBytes(l)));
    s.defer(() => liar.close());
    const liarPort = await liar.listen();

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: liarPort }, { host: '127.0.0.1', port: seed.client.port }] });
    const bans: { address: string; reason: string }[] = [];
    t.on('ban', (address: string, reason: string) => bans.push({ address, reason }));
    const pieces: number[] = [];
    t.on('piece', (i: number) => pieces.push(i));
    await waitDone(t, 80_000);

    const st = t.stats();
    assert.deepEqual(await compareContent(meta, data, dir), []);
    assert.ok(st.hashFails >= 1, `no hash failure: ${describe(t)}`);
    assert.ok(st.wasted > 0);
    assert.ok(liar.peers.some((p) => p.requests > 0), 'the liar was never asked for anything');
    assert.ok(bans.length > 0, 'the liar was not banned');
    assert.ok(bans.every((b) => b.address === `127.0.0.1:${liarPort}`), `someone else was banned: ${JSON.stringify(bans)}`);
    assert.equal(bans.length, 1, `one peer, ${bans.length} 'ban' events: ${JSON.stringify(bans)}`);
    assert.equal(liar.connections, 1, 'a banned peer was dialled again');
    assert.equal(new Set(pieces).size, pieces.length, 'a piece was reported verified twice');
    assert.equal(pieces.length, meta.pieceCount);
  });
});

test('corrupt-data peer as the only source: banned after repeated failures, no bad piece is ever marked have', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-only', async (s) => {
    const data = randomBytes(MiB);
    const { meta } = makeMetainfo([{ path: ['o.bin'], data }], 32 * KiB, 'o.bin');
    const liar = fakeSeed(meta, (p, i, b, l) => p.wire.piece(i, b, randomBytes(l)));
    s.defer(() => liar.close());
    const liarPort = await liar.listen();

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: liarPort }] });
    let pieces = 0;
    t.on('piece', () => { pieces++; });
    let hashfails = 0;
    t.on('hashfail', () => { hashfails++; });
    const [address, reason] = await waitEvent<[string, string]>(t, 'ban', 30_000);
    assert.equal(address, `127.0.0.1:${liarPort}`);
    assert.match(reason, /hash|corrupt/);
    assert.ok(hashfails >= 2, `banned after ${hashfails} hash failures`);
    // Two more ticks: the peer manager must not dial the banned address again.
    await waitEvent(t, 'stats', 5000);
    await waitEvent(t, 'stats', 5000);
    assert.equal(liar.connections, 1, 'a banned peer was dialled again');
    const st = t.stats();
    assert.equal(pieces, 0);
    assert.equal(st.have, 0);
    assert.equal(st.wantedHave, 0);
    assert.equal(t.have.count, 0);
    assert.equal(st.done, false);
    assert.equal(st.state, 'downloading');
    assert.equal(st.peers, 0);
    await dl.close();

    // Nothing that reached the disk passes a full recheck either.
    const again = await s.client();
    const t2 = await again.add(meta, { path: dir, recheck: true });
    assert.equal(t2.stats().have, 0);
  });
});

test('out-of-range requests get the requester dropped while the seed keeps serving others', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-requests', async (s) => {
    // 256 KiB pieces so that a 128 KiB + 1 request fits inside a piece and only its length is wrong.
    const data = randomBytes(3 * MiB + 5000);
    const { meta } = makeMetainfo([{ path: ['q.bin'], data }], 256 * KiB, 'q.bin');
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    const drops = disconnects(seed.torrent);

    // An honest download runs through all of it.
    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const honest = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    const finished = waitDone(honest, 80_000, 'honest downloader');

    const n = meta.pieceCount;
    const bad: [string, number, number, number][] = [
      ['index = pieceCount', n, 0, 16 * KiB],
      ['index = 2^32-1', 0xffffffff, 0, 16 * KiB],
      ['begin + length past the piece', 0, 256 * KiB - 8 * KiB, 16 * KiB],
      ['begin + length past the short last piece', n - 1, 0, meta.lastPieceLength + 1],
      ['begin past the piece', 1, 256 * KiB, 16 * KiB],
      ['length 0', 0, 0, 0],
      ['length 128 KiB + 1', 0, 0, 128 * KiB + 1],
    ];
    for (const [label, index, begin, length] of bad) {
      const p = await dialRaw(seed.client.port, meta.infoHash);
      try {
        p.wire.interested();
        p.wire.request(index, begin, length);
        await p.waitClose(10_000).catch((err: Error) => { throw new Error(`${label}: ${err.message}`); });
        assert.equal(p.pieces, 0, `${label}: got data`);
      } finally {
        p.destroy();
      }
    }
    await until('all hostile drops to be reported', 5000, () => drops.filter((d) => d.err).length >= bad.length);
    for (const d of drops.filter((x) => x.err)) {
      assert.ok(isShoalError(d.err, 'EWIRE'), `dropped with ${String(d.err)}`);
    }
    await finished;
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('a flood of 100k requests: the queue stays capped and the seed stays responsive', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-flood', async (s) => {
    const data = randomBytes(4 * MiB);
    const { meta } = makeMetainfo([{ path: ['f.bin'], data }], 256 * KiB, 'f.bin');
    const seed = await startSeed(s, meta, data);
    const flooder = await dialRaw(seed.client.port, meta.infoHash, { fast: true });
    s.defer(() => flooder.destroy());
    flooder.wire.interested();
    await flooder.waitUnchoke(15_000);

    // An honest, throttled download runs through the flood.
    const dl = await s.client({ downloadLimit: 2 * MiB });
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    const finished = waitDone(t, 60_000, 'honest downloader');

    const blocksPerPiece = meta.pieceLength / (16 * KiB);
    const TOTAL = 100_000;
    const BATCH = 5000;
    let maxQueue = 0;
    for (let sent = 0; sent < TOTAL && !flooder.closed; sent += BATCH) {
      const triples = new Uint32Array(3 * BATCH);
      for (let k = 0; k < BATCH; k++) {
        const r = sent + k;
        triples[3 * k] = Math.floor(r / blocksPerPiece) % meta.pieceCount;
        triples[3 * k + 1] = (r % blocksPerPiece) * 16 * KiB;
        triples[3 * k + 2] = 16 * KiB;
      }
      flooder.wire.requests(triples, BATCH);
      // Let the seed process what arrived before sending more.
      await new Promise((r) => setImmediate(r));
      for (const p of peerInternals(seed.torrent)) maxQueue = Math.max(maxQueue, p.uploadQueue);
    }
    // Once the whole flood has left our socket and the seed had a tick to deal with it (or dropped the flooder),
    // its queue must never have grown past the cap.
    await until('the flood to be sent', 30_000, () => flooder.closed || flooder.socket.writableLength === 0);
    await waitEvent(seed.torrent, 'stats', 5000);
    for (const p of peerInternals(seed.torrent)) maxQueue = Math.max(maxQueue, p.uploadQueue);
    assert.ok(maxQueue <= 1000, `upload queue reached ${maxQueue}`);

    await finished;
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('a flooder that never reads cannot make the seed buffer without bound', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-flood-noread', async (s) => {
    const data = randomBytes(4 * MiB);
    const { meta } = makeMetainfo([{ path: ['n.bin'], data }], 256 * KiB, 'n.bin');
    const seed = await startSeed(s, meta, data);
    const flooder = await dialRaw(seed.client.port, meta.infoHash, { fast: true });
    s.defer(() => flooder.destroy());
    flooder.wire.interested();
    await flooder.waitUnchoke(15_000);
    // From now on nothing is read: whatever the seed sends piles up in the kernel and then in the seed.
    flooder.socket.pause();

    const TOTAL = 1_000_000;
    const BATCH = 10_000;
    const triples = new Uint32Array(3 * BATCH);
    for (let k = 0; k < BATCH; k++) {
      triples[3 * k] = k % meta.pieceCount;
      triples[3 * k + 1] = 0;
      triples[3 * k + 2] = 16 * KiB;
    }
    let maxBacklog = 0;
    let maxQueue = 0;
    const sample = (): void => {
      for (const p of peerInternals(seed.torrent)) {
        maxBacklog = Math.max(maxBacklog, p.writeBacklog);
        maxQueue = Math.max(maxQueue, p.uploadQueue);
      }
    };
    for (let sent = 0; sent < TOTAL && !flooder.closed; sent += BATCH) {
      if (!flooder.socket.write(Buffer.from(encodeRequests(triples, BATCH)))) {
        await Promise.race([new Promise((r) => flooder.socket.once('drain', r)), new Promise((r) => setTimeout(r, 2000))]);
      }
      await new Promise((r) => setImmediate(r));
      sample();
    }
    // Give the seed a few event-loop turns to read what is in flight.
    for (let i = 0; i < 50; i++) { await new Promise((r) => setTimeout(r, 10)); sample(); }
    assert.ok(maxQueue <= 1000, `upload queue reached ${maxQueue}`);
    // 1M rejects are 17 MB; a seed that answers each one whether or not the peer reads holds most of that.
    assert.ok(maxBacklog <= 8 * MiB, `seed buffered ${maxBacklog} bytes for a peer that reads nothing`);
  });
});

function encodeRequests(triples: Uint32Array, count: number): Buffer {
  const buf = Buffer.allocUnsafe(17 * count);
  for (let i = 0, o = 0; i < count; i++, o += 17) {
    buf.writeUInt32BE(13, o);
    buf[o + 4] = MessageId.Request;
    buf.writeUInt32BE(triples[3 * i]!, o + 5);
    buf.writeUInt32BE(triples[3 * i + 1]!, o + 9);
    buf.writeUInt32BE(triples[3 * i + 2]!, o + 13);
  }
  return buf;
}

test('unrequested piece data is ignored and counted as wasted, never written', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-unrequested', async (s) => {
    const data = randomBytes(2 * MiB + 77);
    const { meta } = makeMetainfo([{ path: ['u.bin'], data }], 64 * KiB, 'u.bin');
    let sprayed = 0;
    // Serves correct data when asked, but first sprays garbage blocks nobody requested (it has not unchoked yet,
    // so no request can be outstanding).
    const peer = fakeSeed(meta, (p, i, b, l) => p.wire.piece(i, b, data.subarray(i * meta.pieceLength + b, i * meta.pieceLength + b + l)), (p) => {
      for (let i = 0; i < meta.pieceCount - 1; i += 3) {
        const block = randomBytes(16 * KiB);
        p.sendRaw(encodePiece(i, 0, block));
        sprayed += block.length;
      }
    });
    s.defer(() => peer.close());
    const port = await peer.listen();

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port }] });
    await waitDone(t, 60_000);
    const st = t.stats();
    assert.ok(sprayed > 0);
    assert.ok(st.wasted >= sprayed, `wasted ${st.wasted} < sprayed ${sprayed}`);
    assert.equal(st.hashFails, 0, 'unrequested garbage reached a piece buffer');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('malformed bitfields and out-of-range haves get the sender dropped', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-bitfield', async (s) => {
    // 13 pieces: 2 bitfield bytes with 3 spare bits.
    const data = randomBytes(13 * 16 * KiB - 100);
    const { meta } = makeMetainfo([{ path: ['b.bin'], data }], 16 * KiB, 'b.bin');
    assert.equal(meta.pieceCount, 13);
    const seed = await startSeed(s, meta, data);
    const drops = disconnects(seed.torrent);
    const cases: [string, Buffer[]][] = [
      ['bitfield one byte short', [encodeBitfield(Buffer.from([0xff]))]],
      ['bitfield one byte long', [encodeBitfield(Buffer.from([0xff, 0xf8, 0x00]))]],
      ['bitfield with a spare bit set', [encodeBitfield(Buffer.from([0xff, 0xf9]))]],
      ['bitfield with all spare bits set', [encodeBitfield(Buffer.from([0x00, 0x07]))]],
      // A second bitfield is accepted as an update (aria2 sends them), but it must still be well-formed.
      ['valid bitfield, then one with a spare bit set', [encodeBitfield(Buffer.from([0x80, 0x00])), encodeBitfield(Buffer.from([0x80, 0x01]))]],
      ['valid bitfield, then a short one', [encodeBitfield(Buffer.from([0x80, 0x00])), encodeBitfield(Buffer.from([0xff]))]],
      ['have = pieceCount', [encodeIndexMessage(MessageId.Have, 13)]],
      ['have = 2^32-1', [encodeIndexMessage(MessageId.Have, 0xffffffff)]],
      ['valid bitfield, then have out of range', [encodeBitfield(Buffer.from([0x80, 0x00])), encodeIndexMessage(MessageId.Have, 16)]],
    ];
    for (const [label, msgs] of cases) {
      const before = drops.length;
      const p = await dialRaw(seed.client.port, meta.infoHash, { fast: false });
      try {
        for (const m of msgs) p.sendRaw(m);
        await p.waitClose(10_000).catch((err: Error) => { throw new Error(`${label}: ${err.message}`); });
      } finally {
        p.destroy();
      }
      await until(`${label}: drop reported`, 5000, () => drops.length > before);
      const err = drops[drops.length - 1]!.err;
      assert.ok(isShoalError(err, 'EWIRE'), `${label}: dropped with ${String(err)}`);
      assert.match(err!.message, /bitfield|have/, label);
    }
    // A well-formed peer is still welcome.
    const ok = await dialRaw(seed.client.port, meta.infoHash, { fast: false });
    try {
      ok.sendRaw(encodeBitfield(Buffer.from([0x00, 0x00])));
      ok.wire.interested();
      await ok.waitUnchoke(15_000);
    } finally {
      ok.destroy();
    }
  });
});

test('a handshake with the wrong info-hash is closed without revealing anything', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-infohash', async (s) => {
    const data = randomBytes(100_000);
    const { meta } = makeMetainfo([{ path: ['h.bin'], data }], 16 * KiB, 'h.bin');
    const seed = await startSeed(s, meta, data);
    const wrong = randomBytes(20);

    await assert.rejects(
      connectPeer({ host: '127.0.0.1', port: seed.client.port }, { infoHash: wrong, peerId: randomPeerId(), timeoutMs: 5000 }),
      (e) => isShoalError(e, 'EWIRE') && /closed/.test((e as Error).message),
    );

    // Raw: the client must close without sending its own handshake (it would confirm which torrents it has).
    const sock = net.connect({ host: '127.0.0.1', port: seed.client.port });
    let received = 0;
    sock.on('data', (d: Buffer) => { received += d.length; });
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => { sock.once('connect', () => resolve()); sock.once('error', reject); });
    sock.write(encodeHandshake(wrong, randomPeerId()));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([closed, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('not closed in 10 s')), 10_000); })]);
    } finally {
      clearTimeout(timer);
      sock.destroy();
    }
    assert.equal(received, 0);
    assert.equal(seed.torrent.stats().peers, 0);
  });
});
