/**
 * Shoal seeding to Shoal over loopback: single- and multi-file layouts, partial selection, a small swarm and IPv6.
 * Every byte that lands on disk is compared with the source data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { hasIPv6Loopback } from '../helpers/wire-sockets.js';
import {
  KiB, MiB, compareContent, describe, exists, filePaths, startSeed, waitDone, withScope,
} from '../helpers/engine/harness.js';
import { Client } from '../../src/engine/index.js';
import type { Torrent } from '../../src/engine/index.js';
import type { Metainfo } from '../../src/metainfo/types.js';

const TIMEOUT = 60_000;

function assertFinished(t: Torrent, meta: Metainfo, wantedBytes: number): void {
  const s = t.stats();
  assert.equal(s.done, true, describe(t));
  assert.equal(t.done, true);
  assert.equal(s.state, 'seeding');
  assert.equal(s.progress, 1);
  assert.equal(s.left, 0);
  assert.equal(s.wantedHave, s.wantedPieces);
  assert.equal(s.pieceCount, meta.pieceCount);
  assert.ok(s.downloaded >= wantedBytes, `downloaded ${s.downloaded} < ${wantedBytes}`);
  assert.equal(s.hashFails, 0);
  assert.equal(s.eta, 0);
}

for (const pieceLength of [16 * KiB, 256 * KiB]) {
  test(`single file, piece length ${pieceLength / KiB} KiB, short last piece and block`, { timeout: TIMEOUT }, async () => {
    await withScope('xfer-single', async (s) => {
      // 100_000 mod 16 KiB = 1696: the last piece is short and so is its last block.
      const data = randomBytes(3 * MiB + 100_000);
      const { meta } = makeMetainfo([{ path: ['single.bin'], data }], pieceLength, 'single.bin');
      assert.notEqual(meta.lastPieceLength, pieceLength);
      const seed = await startSeed(s, meta, data);
      const dl = await s.client();
      const dir = join(s.dir, 'dl');
      const pieces = new Set<number>();
      const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
      t.on('piece', (i: number) => pieces.add(i));
      assert.equal(t.stats().wantedHave, 0);
      await waitDone(t, TIMEOUT - 5000);
      assertFinished(t, meta, data.length);
      assert.equal(pieces.size, meta.pieceCount, 'one piece event per piece');
      assert.deepEqual(await compareContent(meta, data, dir), []);
      assert.ok(seed.torrent.stats().uploaded >= data.length, `seed uploaded ${seed.torrent.stats().uploaded}`);
    });
  });
}

/** Nested dirs, zero-length files (first, middle and last) and files much smaller than a piece. */
function multiFileLayout(): { path: string[]; data: Buffer }[] {
  return [
    { path: ['empty-first'], data: Buffer.alloc(0) },
    { path: ['a.bin'], data: randomBytes(100_001) },
    { path: ['d', 'empty'], data: Buffer.alloc(0) },
    { path: ['d', 'sub', 'b.bin'], data: randomBytes(300_000) },
    { path: ['c.txt'], data: randomBytes(7) },
    { path: ['d', 'sub', 'deeper', 'e.bin'], data: randomBytes(700_003) },
    { path: ['f.bin'], data: randomBytes(65_536) },
    { path: ['z', 'empty-last'], data: Buffer.alloc(0) },
  ];
}

test('multi-file: nested dirs, zero-length files, pieces spanning files', { timeout: TIMEOUT }, async () => {
  await withScope('xfer-multi', async (s) => {
    const { meta, data } = makeMetainfo(multiFileLayout(), 64 * KiB, 'multi');
    const seed = await startSeed(s, meta, data);
    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    await waitDone(t, TIMEOUT - 5000);
    assertFinished(t, meta, data.length);
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('selected files only: the others never appear on disk, done fires when the selection is complete', { timeout: TIMEOUT }, async () => {
  await withScope('xfer-select', async (s) => {
    const { meta, data } = makeMetainfo(multiFileLayout(), 64 * KiB, 'sel');
    // b.bin (shares pieces with a.bin and c.txt), e.bin, and an empty file; a.bin and f.bin stay out.
    const selected = [2, 3, 5];
    const seed = await startSeed(s, meta, data);
    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, selectedFiles: selected, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    let doneEvents = 0;
    t.on('done', () => { doneEvents++; });
    const before = t.stats();
    assert.equal(before.done, false);
    assert.ok(before.wantedPieces < meta.pieceCount, `wanted ${before.wantedPieces} of ${meta.pieceCount}`);
    await waitDone(t, TIMEOUT - 5000);
    assert.equal(doneEvents, 1, "'done' fired once the selection was complete");
    const st = t.stats();
    assert.equal(st.done, true);
    assert.equal(st.progress, 1);
    assert.equal(st.left, 0);
    assert.equal(st.wantedHave, st.wantedPieces);
    assert.ok(st.have < meta.pieceCount, 'pieces only in unselected files were not downloaded');
    assert.deepEqual(await compareContent(meta, data, dir, selected), []);
    const paths = filePaths(meta, dir);
    for (let i = 0; i < meta.files.length; i++) {
      if (selected.includes(i)) continue;
      assert.equal(await exists(paths[i]!), false, `unselected ${paths[i]} exists`);
    }
  });
});

test('one seed, three downloaders: all complete and downloaders trade with each other', { timeout: 120_000 }, async () => {
  await withScope('xfer-swarm', async (s) => {
    // Many small pieces and a throttled seed so the downloaders hold different pieces for a while.
    const data = randomBytes(8 * MiB + 4321);
    const { meta } = makeMetainfo([{ path: ['swarm.bin'], data }], 32 * KiB, 'swarm.bin');
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 4 * MiB });
    const clients = await Promise.all([0, 1, 2].map(() => s.client()));
    const peersFor = (i: number) => [
      { host: '127.0.0.1', port: seed.client.port },
      ...clients.filter((_, j) => j !== i).map((c) => ({ host: '127.0.0.1', port: c.port })),
    ];
    const torrents = await Promise.all(clients.map((c, i) => c.add(meta, { path: join(s.dir, `dl${i}`), peers: peersFor(i) })));
    await Promise.all(torrents.map((t, i) => waitDone(t, 100_000, `downloader ${i}`)));
    for (let i = 0; i < 3; i++) {
      assertFinished(torrents[i]!, meta, data.length);
      assert.deepEqual(await compareContent(meta, data, join(s.dir, `dl${i}`)), [], `downloader ${i}`);
    }
    const uploads = torrents.map((t) => t.stats().uploaded);
    assert.ok(uploads.some((u) => u > 0), `no downloader uploaded anything: ${uploads.join(', ')}`);
    // Whatever the downloaders got beyond the seed's uploads came from each other.
    const fromSeed = seed.torrent.stats().uploaded;
    const received = torrents.reduce((n, t) => n + t.stats().downloaded, 0);
    assert.ok(received >= 3 * data.length);
    assert.ok(fromSeed < received, `seed uploaded ${fromSeed}, downloaders received ${received}`);
  });
});

test('IPv6 loopback transfer', { timeout: TIMEOUT }, async (tc) => {
  if (!(await hasIPv6Loopback())) {
    tc.skip('this machine has no IPv6 loopback (::1 cannot be bound)');
    return;
  }
  await withScope('xfer-v6', async (s) => {
    const data = randomBytes(MiB + 777);
    const { meta } = makeMetainfo([{ path: ['v6.bin'], data }], 64 * KiB, 'v6.bin');
    const seed = await startSeed(s, meta, data, 'seed', { host: '::1' });
    const addrs: string[] = [];
    seed.torrent.on('peer', (a: string) => addrs.push(a));
    const dl = await s.client({ host: '::1' });
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '::1', port: seed.client.port }] });
    await waitDone(t, TIMEOUT - 5000);
    assertFinished(t, meta, data.length);
    assert.ok(addrs.length > 0 && addrs.every((a) => a.startsWith('[::1]:')), `seed saw peers ${addrs.join(', ')}`);
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('the seed lends cached blocks to sockets only until their writes complete; downloaded pieces stay cached for upload', { timeout: TIMEOUT }, async () => {
  await withScope('xfer-cache', async (s) => {
    const data = randomBytes(4 * MiB);
    const { meta } = makeMetainfo([{ path: ['c.bin'], data }], 256 * KiB, 'c.bin');
    const seed = await startSeed(s, meta, data);
    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    await waitDone(t, TIMEOUT - 5000);
    assert.deepEqual(await compareContent(meta, data, dir), []);
    // Every block the seed wrote has been received, so every write completed and every loan was returned; a leak
    // here would keep piece memory out of reuse for good.
    const end = Date.now() + 5000;
    while (seed.torrent.stats().lentBlocks > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal(seed.torrent.stats().lentBlocks, 0, 'blocks still lent after the download completed');
    assert.ok(seed.torrent.stats().cacheBytes > 0, 'the seed served from its cache');
    // The downloader kept verified pieces to serve them without a disk read (not all of them: pieces in flight
    // take their memory from the cache's oldest).
    assert.ok(t.stats().cacheBytes > 0, 'downloaded pieces are cached');
    assert.equal(t.stats().lentBlocks, 0);
  });
});

test('cacheBytes bounds each torrent\'s piece cache (0 turns it off) and a bad value is a usage error', { timeout: TIMEOUT }, async () => {
  await withScope('xfer-cache-size', async (s) => {
    const data = randomBytes(6 * MiB);
    const { meta } = makeMetainfo([{ path: ['c.bin'], data }], 256 * KiB, 'c.bin');
    const seed = await startSeed(s, meta, data, 'seed', { cacheBytes: 512 * KiB });
    const dl = await s.client({ cacheBytes: 0 });
    const dir = join(s.dir, 'dl');
    const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    let seedMax = 0;
    let dlMax = 0;
    const sample = setInterval(() => {
      seedMax = Math.max(seedMax, seed.torrent.stats().cacheBytes);
      dlMax = Math.max(dlMax, t.stats().cacheBytes);
    }, 5);
    try {
      await waitDone(t, TIMEOUT - 5000);
    } finally {
      clearInterval(sample);
    }
    assert.deepEqual(await compareContent(meta, data, dir), [], 'a download without a cache is intact');
    assert.ok(seedMax > 0 && seedMax <= 512 * KiB, `seed cache peaked at ${seedMax} bytes`);
    assert.equal(dlMax, 0, 'cacheBytes 0: nothing cached');
    assert.throws(() => new Client({ cacheBytes: -1 }), (err: Error & { code?: string }) => err.code === 'EUSAGE' && /cacheBytes/.test(err.message));
  });
});
