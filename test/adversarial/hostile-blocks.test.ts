/**
 * Hostile answers to our requests: blocks at the wrong offset, of the wrong size, or cut off half-way. A block is
 * accepted only for an outstanding request from that peer with the exact index, begin and length; anything else
 * counts against its sender, and hash-failure blame never lands on a peer whose blocks were right.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, describe, startSeed, waitDone, withScope } from '../helpers/engine/harness.js';
import { RawServer, fullBitfield, type RawPeer } from '../helpers/engine/raw-peer.js';
import { encodePieceHeader } from '../../src/wire/encode.js';
import type { Metainfo } from '../../src/metainfo/types.js';
import type { Torrent } from '../../src/engine/index.js';

const TIMEOUT = 60_000;

function fakeSeed(meta: Metainfo, answer: (p: RawPeer, index: number, begin: number, length: number) => void): RawServer {
  return new RawServer(meta.infoHash, (p) => p.wire.bitfield(fullBitfield(meta.pieceCount)), {
    hooks: { onInterested: (p) => p.wire.unchoke(), onRequest: answer },
  });
}

/** Resolves when `t` is done; rejects at once when `address` is banned (the honest seed must never be). */
function doneWithoutBanning(t: Torrent, address: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onBan = (a: string, reason: string): void => {
      if (a !== address) return;
      t.off('ban', onBan);
      reject(new Error(`the honest seed ${a} was banned: ${reason}\n${describe(t)}`));
    };
    t.on('ban', onBan);
    waitDone(t, timeoutMs).then(() => { t.off('ban', onBan); resolve(); }, (err) => { t.off('ban', onBan); reject(err); });
  });
}

test('blocks one byte off their request: the sender is dropped, the honest seed is not blamed, the download completes', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-misaligned', async (s) => {
    const data = randomBytes(3 * MiB + 999);
    const { meta } = makeMetainfo([{ path: ['m.bin'], data }], 64 * KiB, 'm.bin');
    // Throttled, so the hostile peer gets a fair share of the requests.
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: MiB });
    let misaligned = 0;
    const hostile = fakeSeed(meta, (p, i, b, l) => {
      if (b + 1 + l > (i === meta.pieceCount - 1 ? meta.lastPieceLength : meta.pieceLength)) return;
      misaligned++;
      p.wire.piece(i, b + 1, randomBytes(l));
    });
    s.defer(() => hostile.close());
    const hostilePort = await hostile.listen();

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: hostilePort }, { host: '127.0.0.1', port: seed.client.port }] });
    const dropped: string[] = [];
    t.on('disconnect', (a: string, err?: Error) => { if (a === `127.0.0.1:${hostilePort}` && err) dropped.push(err.message); });
    await doneWithoutBanning(t, `127.0.0.1:${seed.client.port}`, 30_000);

    assert.deepEqual(await compareContent(meta, data, dir), []);
    assert.ok(misaligned > 0, 'the hostile peer was never asked for anything');
    assert.equal(t.stats().hashFails, 0, 'a misaligned block reached a piece buffer');
    assert.ok(dropped.length > 0, `the hostile peer was never dropped (${misaligned} misaligned blocks sent)`);
    assert.match(dropped[0]!, /block|request/);
  });
});

test('blocks of the wrong size: the sender is dropped after a few, not re-asked in a tight loop', { timeout: TIMEOUT }, async (tt) => {
  await withScope('hostile-wrongsize', async (s) => {
    const data = randomBytes(2 * MiB);
    const { meta } = makeMetainfo([{ path: ['w.bin'], data }], 64 * KiB, 'w.bin');
    let junkBytes = 0;
    const hostile = fakeSeed(meta, (p, i, b, l) => {
      const block = randomBytes(l >> 1);
      junkBytes += block.length;
      p.wire.piece(i, b, block);
    });
    s.defer(() => hostile.close());
    const port = await hostile.listen();

    const dl = await s.client();
    const t = await dl.add(meta, { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port }] });
    s.defer(() => t.close());
    const started = Date.now();
    while (hostile.peers.length === 0 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
    const first = hostile.peers[0];
    assert.ok(first, 'the downloader never connected');
    await first.waitClose(5000).catch((err: Error) => {
      throw new Error(`${err.message}: it was asked for ${first.requests} blocks and sent ${junkBytes} bytes of wrong-size blocks`);
    });
    tt.diagnostic(`dropped after ${Date.now() - started} ms, ${first.requests} requests, ${junkBytes} bytes of wrong-size blocks`);
    assert.ok(first.requests < 500, `${first.requests} requests before the drop`);
    assert.ok(junkBytes < 16 * MiB, `${junkBytes} bytes of junk accepted before the drop`);
    assert.equal(t.stats().hashFails, 0);
  });
});

test('a block cut off half-way by a disconnect does not stall its piece', { timeout: TIMEOUT }, async () => {
  await withScope('hostile-halfblock', async (s) => {
    const data = randomBytes(2 * MiB + 4321);
    const { meta } = makeMetainfo([{ path: ['h.bin'], data }], 64 * KiB, 'h.bin');
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    let cut = 0;
    // Answers its first request with a header and half the block, then hangs up; every connection does so again.
    const hostile = fakeSeed(meta, (p, i, b, l) => {
      if (p.closed || p.pieces < 0) return;
      cut++;
      p.sendRaw(Buffer.concat([encodePieceHeader(i, b, l), randomBytes(l >> 1)]));
      setTimeout(() => p.destroy(), 50);
      p.pieces = -1;
    });
    s.defer(() => hostile.close());
    const hostilePort = await hostile.listen();

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: hostilePort }, { host: '127.0.0.1', port: seed.client.port }] });
    await doneWithoutBanning(t, `127.0.0.1:${seed.client.port}`, 25_000);
    assert.ok(cut > 0, 'the hostile peer never cut a block');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});
