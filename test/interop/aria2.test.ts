// Shoal against aria2 1.36 on loopback. aria2 cannot be given a peer address, so both sides find each
// other through Shoal's tracker.
import { test } from 'node:test';
import { join } from 'node:path';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startAria2 } from '../helpers/real-peers/aria2.js';
import { assertSameTree, mktorrent, infoHashOf } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import {
  writePayload, shoalTorrent, startShoal, startShoalTracker, waitShoalDone, waitTrackerPeers, watchSessions,
  describeTorrent, type Layout,
} from '../helpers/real-peers/shoal-side.js';

const HOST = '127.0.0.1';
const TIMEOUT = 150_000;

for (const layout of ['single', 'multi'] as Layout[]) {
  test(`aria2 downloads a ${layout}-file torrent that Shoal seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'aria2c', 'aria2')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const tracker = await startShoalTracker(s, HOST);
      const p = await writePayload(dir, layout);
      const { torrentPath, infoHash } = await shoalTorrent(p, join(dir, 'shoal-made.torrent'), tracker.announceUrl);

      const client = await startShoal(s, { host: HOST });
      const seed = await client.add(torrentPath, { path: p.seedDir });
      await waitShoalDone(seed, 30_000);
      await waitTrackerPeers(tracker.announceUrl, infoHash, 1, 30_000, () => describeTorrent(seed));

      const sessions = watchSessions(seed, 'aria2');
      const aria2 = s.use(await startAria2({ host: HOST }));
      const dl = await aria2.add(torrentPath, join(dir, 'aria2'));
      await Promise.race([
        dl.waitDone(120_000).catch((e: Error) => { throw new Error(`${e.message}\n${describeTorrent(seed)}`); }),
        sessions.guard,
      ]);
      sessions.stop();
      await aria2.stop();
      await assertSameTree(p.contentPath, join(dir, 'aria2', p.name));
    });
  });

  test(`Shoal downloads a ${layout}-file torrent that aria2 seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'aria2c', 'aria2') || !requirePeer(t, 'mktorrent', 'mktorrent')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const tracker = await startShoalTracker(s, HOST);
      const p = await writePayload(dir, layout);
      const torrentPath = join(dir, 'mktorrent-made.torrent');
      mktorrent({ path: p.contentPath, out: torrentPath, pieceLength: p.pieceLength, announce: [tracker.announceUrl] });
      const infoHash = infoHashOf(torrentPath);

      const aria2 = s.use(await startAria2({ host: HOST }));
      const seed = await aria2.add(torrentPath, p.seedDir);
      await seed.waitDone(30_000);
      await waitTrackerPeers(tracker.announceUrl, infoHash, 1, 30_000, () => aria2.logTail());

      const client = await startShoal(s, { host: HOST });
      const dl = await client.add(torrentPath, { path: join(dir, 'shoal') });
      const sessions = watchSessions(dl, 'aria2');
      await Promise.race([waitShoalDone(dl, 120_000, () => aria2.logTail()), sessions.guard]);
      sessions.stop();
      await client.close();
      await assertSameTree(p.contentPath, join(dir, 'shoal', p.name));
    });
  });
}
