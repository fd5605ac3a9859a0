/**
 * Streaming from an origin in initial seeding. The origin announces a few pieces at a time so that many downloaders
 * take distinct pieces from it; a reader blocked on a piece the origin has not announced would otherwise wait for
 * the offer to come round (seconds to the whole download). The origin says in its extended handshake that it serves
 * any piece, and a Shoal downloader asks it for the pieces its readers need.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';
import { KiB, startSeed, until, waitDone, withScope } from '../helpers/engine/harness.js';
import type { PeerConnection } from '../../src/connection/connection.js';

async function drain(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of r) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

test('a reader gets a piece the initial-seeding origin never announced, asked of the origin directly', { timeout: 60_000 }, async () => {
  await withScope('stream-origin', async (s) => {
    const pieceLength = 16 * KiB;
    const { meta, data } = makeMetainfo([{ path: ['archive.bin'], data: pseudoRandom(200 * pieceLength, 7) }], pieceLength, 'archive.bin');
    // 200 pieces at 256 KiB/s: about 12 s for the whole download, and at most a few pieces offered at any time.
    const origin = await startSeed(s, meta, data, 'origin', { uploadLimit: 256 * KiB });
    const client = await s.client();
    const dl = await client.add(meta, { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port: origin.client.port }] });
    await until('connected to the origin', 10_000, () => [...dl.connections()].some((c) => c.greeted && c.remoteHandshake !== undefined));
    const conn = [...dl.connections()][0] as PeerConnection;
    assert.equal(conn.servesUnannounced, true, 'the origin said it serves unannounced pieces');
    assert.ok(conn.bits.count < 50, `the origin announces a few pieces at a time (${conn.bits.count} so far)`);

    // A piece in the second half that the origin has not announced to us and we do not have. The origin keeps offering
    // random pieces meanwhile (one per piece it finishes uploading), so it may announce the target between our pick
    // and its receiving our request (a few ms; more on a loaded machine): then that attempt proves nothing and another
    // piece is tried. Without the feature every attempt waits for the offer and the target is always announced.
    const announcedFirst: number[] = [];
    let proven = false;
    for (let attempt = 0; attempt < 3 && !proven; attempt++) {
      let target = -1;
      for (let i = meta.pieceCount - 1; i >= meta.pieceCount / 2; i--) if (!conn.bits.get(i) && !dl.have.get(i)) { target = i; break; }
      assert.ok(target >= 0);
      const start = target * pieceLength + 100;
      const got = await drain(dl.files[0]!.createReadStream({ start, end: start + 999 }));
      assert.ok(got.equals(data.subarray(start, start + 1000)), 'the bytes read are the file\'s');
      // Announced only once we asked: before this change the reader waited until the origin offered the piece.
      if (conn.bits.get(target)) announcedFirst.push(target);
      else proven = true;
    }
    assert.ok(proven, `every piece read had been announced by the origin first (${announcedFirst.join(', ')})`);
    assert.ok(!dl.done, 'read while the download goes on');

    // The rest still arrives.
    await waitDone(dl, 40_000, 'downloader');
  });
});
