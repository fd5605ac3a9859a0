// Peers first: with a BitTorrent seed and an HTTP origin (nginx as web seed), pieces come from the peer; the origin
// carries the download when peers do not deliver; originLimit caps what the origin serves this client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '../../src/engine/index.js';
import { encodeTorrent } from '../../src/metainfo/parse.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';
import { requireNginx, startNginx } from '../helpers/nginx.js';
import { KiB, MiB, startSeed, waitDone, withScope } from '../helpers/engine/harness.js';
import { RawServer, fullBitfield } from '../helpers/engine/raw-peer.js';

const TIMEOUT = 30_000;

async function published(dir: string, size: number, pieceLength: number, seed: number) {
  const { meta, data } = makeMetainfo([{ path: ['blob.bin'], data: pseudoRandom(size, seed) }], pieceLength, 'blob.bin');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'blob.bin'), data);
  return { meta, data };
}

test('a Shoal seed and nginx: the downloader gets (almost) everything from the peer', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withScope('ws-peers-first', async (s) => {
    const root = join(s.dir, 'www');
    const { meta, data } = await published(root, 8 * MiB, 256 * KiB, 41);
    const nginx = await startNginx(root);
    s.defer(() => nginx.stop());
    const withOrigin = { ...meta, urlList: [`${nginx.url}/`] };
    const seed = await startSeed(s, meta, data);
    const client = await s.client();
    const tor = await client.add(encodeTorrent(withOrigin), { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port: seed.client.port }], seed: false });
    await waitDone(tor, 20_000);
    const st = tor.stats();
    assert.ok((await readFile(join(s.dir, 'dl', 'blob.bin'))).equals(data));
    assert.ok(st.fromPeers > st.fromWebSeeds, `fromPeers ${st.fromPeers} fromWebSeeds ${st.fromWebSeeds}`);
    assert.equal(st.fromPeers + st.fromWebSeeds, st.downloaded);
    assert.ok(await nginx.bodyBytesServed() <= st.fromWebSeeds + 1 * MiB, 'the origin served little beyond what was used');
  });
});

test('a peer that has everything but never unchokes: the web seed carries the download', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withScope('ws-choked', async (s) => {
    const root = join(s.dir, 'www');
    const { meta, data } = await published(root, 2 * MiB, 64 * KiB, 42);
    const nginx = await startNginx(root);
    s.defer(() => nginx.stop());
    // Announces every piece, then ignores us: "no peer is unchoking us".
    const choker = new RawServer(meta.infoHash, (p) => p.wire.bitfield(fullBitfield(meta.pieceCount)));
    await choker.listen();
    s.defer(() => choker.close());
    const client = await s.client();
    const started = Date.now();
    const tor = await client.add(encodeTorrent({ ...meta, urlList: [`${nginx.url}/blob.bin`] }), {
      path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port: choker.port }], seed: false,
    });
    let peersDuring = -1;
    tor.once('piece', () => { peersDuring = tor.stats().peers; });
    await waitDone(tor, 20_000);
    const st = tor.stats();
    assert.ok((await readFile(join(s.dir, 'dl', 'blob.bin'))).equals(data));
    assert.equal(st.fromWebSeeds, data.length);
    assert.equal(st.fromPeers, 0);
    assert.equal(peersDuring, 1, 'the choking peer was connected while the web seed carried the download');
    // Peers first: the origin was not asked before the peer had its chance.
    assert.ok(Date.now() - started >= 3000, 'the web seed waited for the peer before carrying the download');
  });
});

test('originLimit: web seed bytes never exceed limit × time + burst', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withScope('ws-origin-limit', async (s) => {
    const root = join(s.dir, 'www');
    const size = 3 * MiB;
    const { meta, data } = await published(root, size, 128 * KiB, 43);
    const nginx = await startNginx(root);
    s.defer(() => nginx.stop());
    const limit = 1 * MiB;
    const burst = limit;   // the TokenBucket's default burst: one second's worth
    const client = await s.client({ originLimit: limit });
    const started = Date.now();
    const tor = await client.add(encodeTorrent({ ...meta, urlList: [`${nginx.url}/`] }), { path: join(s.dir, 'dl'), seed: false });
    let worst = -Infinity;
    const timer = setInterval(() => {
      const elapsed = (Date.now() - started) / 1000;
      worst = Math.max(worst, tor.stats().fromWebSeeds - (limit * elapsed + burst));
    }, 100);
    s.defer(() => clearInterval(timer));
    await waitDone(tor, 20_000);
    clearInterval(timer);
    const elapsed = (Date.now() - started) / 1000;
    assert.ok((await readFile(join(s.dir, 'dl', 'blob.bin'))).equals(data));
    assert.ok(worst <= 0, `web seed bytes exceeded limit × time + burst by ${worst} bytes`);
    // …and the limit is not wildly undershot either: (size - burst) / limit seconds at least, not much more.
    assert.ok(elapsed >= (size - burst) / limit - 0.2, `done in ${elapsed} s: faster than the limit allows`);
    assert.ok(elapsed < 8, `done in ${elapsed} s`);
  });
});
