/**
 * HAVEs normally wait up to HAVE_DELAY_MS for another message to the same peer (src/wire/peer-wire.ts). Two kinds must
 * not wait: an initial seed's advertisements (the peer has nothing else to ask for) and the HAVEs of a download that
 * has just completed (peers should learn at once that we are a seed). Each test fails if they wait.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, startSeed, until, withScope } from '../helpers/engine/harness.js';
import { dialRaw } from '../helpers/engine/raw-peer.js';
import type { Torrent } from '../../src/index.js';

const TIMEOUT = 30_000;

/** The most HAVEs any of the torrent's connections held back, sampled every turn of the event loop until `stop()`. */
function watchWaitingHaves(t: Torrent): { max(): number; stop(): void } {
  let max = 0;
  let timer: NodeJS.Immediate | null = null;
  const sample = (): void => {
    for (const c of t.connections()) max = Math.max(max, c.waitingHaves);
    timer = setImmediate(sample);
  };
  sample();
  return { max: () => max, stop: () => { if (timer) clearImmediate(timer); } };
}

test('an initial seed\'s advertisements leave at once, not after HAVE_DELAY_MS', { timeout: TIMEOUT }, async () => {
  await withScope('have-advertise', async (s) => {
    const data = randomBytes(16 * 32 * KiB);
    const { meta } = makeMetainfo([{ path: ['a.bin'], data }], 32 * KiB, 'a.bin');
    const seed = await startSeed(s, meta, data);
    const watch = watchWaitingHaves(seed.torrent);
    const p = await dialRaw(seed.client.port, meta.infoHash);
    try {
      await until('the seed advertises a piece', 5000, () => p.haves.length > 0);
      assert.equal(p.haveAll, false, 'initial seeding: pieces are advertised one by one');
      assert.equal(watch.max(), 0, 'no advertisement waited for company');
    } finally {
      watch.stop();
      p.destroy();
    }
  });
});

test('a download that completes sends its last HAVEs at once', { timeout: TIMEOUT }, async () => {
  await withScope('have-complete', async (s) => {
    const data = randomBytes(16 * 32 * KiB);
    const { meta } = makeMetainfo([{ path: ['b.bin'], data }], 32 * KiB, 'b.bin');
    const seed = await startSeed(s, meta, data);
    const dl = await s.client();
    const t = await dl.add(meta, { path: join(s.dir, 'dl') });
    // A peer with nothing: it is sent every HAVE, and stays connected when the download completes.
    const watcher = await dialRaw(dl.port, meta.infoHash);
    try {
      await until('the watcher is connected', 5000, () => t.peerCount === 1);
      t.addPeer({ host: '127.0.0.1', port: seed.client.port });
      const waitingAfterDone = await new Promise<number>((resolve) => {
        t.once('done', () => setImmediate(() => {
          let n = 0;
          for (const c of t.connections()) n += c.waitingHaves;
          resolve(n);
        }));
      });
      assert.equal(waitingAfterDone, 0, 'nothing waits once the download is complete');
      await until('the watcher has every HAVE', 5000, () => new Set(watcher.haves).size === meta.pieceCount);
    } finally {
      watcher.destroy();
    }
  });
});
