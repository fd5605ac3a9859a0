// Shoal against libtorrent 2.0 (Debian python3-libtorrent), peers given directly on loopback, no tracker.
import { test } from 'node:test';
import { join } from 'node:path';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent, makeTorrentLt } from '../helpers/real-peers/libtorrent.js';
import { assertSameTree } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import {
  writePayload, shoalTorrent, startShoal, waitShoalDone, watchSessions, describeTorrent, type Layout,
} from '../helpers/real-peers/shoal-side.js';

const HOST = '127.0.0.1';
const TIMEOUT = 150_000;

for (const layout of ['single', 'multi'] as Layout[]) {
  test(`libtorrent downloads a ${layout}-file torrent that Shoal seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const p = await writePayload(dir, layout);
      const { torrentPath } = await shoalTorrent(p, join(dir, 'shoal-made.torrent'));
      const client = await startShoal(s, { host: HOST, trackers: false });
      const seed = await client.add(torrentPath, { path: p.seedDir });
      await waitShoalDone(seed, 30_000);

      const sessions = watchSessions(seed, 'libtorrent');
      const lt = s.use(await startLibtorrent({ mode: 'download', torrentPath, savePath: join(dir, 'lt'), peers: [`${HOST}:${client.port}`] }));
      await Promise.race([
        lt.waitDone(120_000).catch((e: Error) => { throw new Error(`${e.message}\n${describeTorrent(seed)}`); }),
        sessions.guard,
      ]);
      sessions.stop();
      await lt.stop();
      await assertSameTree(p.contentPath, join(dir, 'lt', p.name));
    });
  });

  test(`Shoal downloads a ${layout}-file torrent that libtorrent seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const p = await writePayload(dir, layout);
      const torrentPath = join(dir, 'lt-made.torrent');
      await makeTorrentLt({ path: p.contentPath, out: torrentPath, pieceLength: p.pieceLength });
      const lt = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: p.seedDir }));
      await lt.waitDone(30_000);

      const client = await startShoal(s, { host: HOST, trackers: false });
      const dl = await client.add(torrentPath, { path: join(dir, 'shoal'), peers: [{ host: HOST, port: lt.port }] });
      const sessions = watchSessions(dl, 'libtorrent');
      await Promise.race([waitShoalDone(dl, 120_000, () => lt.logTail()), sessions.guard]);
      sessions.stop();
      await client.close();
      await assertSameTree(p.contentPath, join(dir, 'shoal', p.name));
    });
  });
}
