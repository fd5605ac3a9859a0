// Shoal against Transmission 3.00. Transmission ignores loopback peers, so it runs in a network namespace
// joined to the test by a veth pair; Shoal and Shoal's tracker bind the root side of that pair.
import { test } from 'node:test';
import { join } from 'node:path';
import { requirePeer, requireNetns } from '../helpers/real-peers/require-peer.js';
import { startTransmission } from '../helpers/real-peers/transmission.js';
import { createNetns } from '../helpers/real-peers/netns.js';
import { assertSameTree, mktorrent, infoHashOf } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import {
  writePayload, shoalTorrent, startShoal, startShoalTracker, waitShoalDone, waitTrackerPeers, watchSessions,
  describeTorrent, type Layout,
} from '../helpers/real-peers/shoal-side.js';

// Transmission unchokes a new peer only at its next 10 s rechoke, and ramps up slowly.
const TIMEOUT = 200_000;

for (const layout of ['single', 'multi'] as Layout[]) {
  test(`Transmission downloads a ${layout}-file torrent that Shoal seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'transmission-daemon', 'transmission-daemon') || !requireNetns(t)) return;
    await withScope(async (s) => {
      const ns = createNetns();
      s.defer(() => ns.destroy());
      const dir = await s.tempDir();
      const tracker = await startShoalTracker(s, ns.hostAddr);
      const p = await writePayload(dir, layout);
      const { torrentPath, infoHash } = await shoalTorrent(p, join(dir, 'shoal-made.torrent'), tracker.announceUrl);

      const client = await startShoal(s, { host: ns.hostAddr, localAddress: ns.hostAddr });
      const seed = await client.add(torrentPath, { path: p.seedDir });
      await waitShoalDone(seed, 30_000);
      await waitTrackerPeers(tracker.announceUrl, infoHash, 1, 30_000, () => describeTorrent(seed));

      const sessions = watchSessions(seed, 'Transmission');
      const tr = s.use(await startTransmission({ netns: ns }));
      const dl = await tr.add(torrentPath, join(dir, 'transmission'));
      await Promise.race([
        dl.waitDone(170_000).catch((e: Error) => { throw new Error(`${e.message}\n${describeTorrent(seed)}`); }),
        sessions.guard,
      ]);
      sessions.stop();
      await tr.stop();
      await assertSameTree(p.contentPath, join(dir, 'transmission', p.name));
    });
  });

  test(`Shoal downloads a ${layout}-file torrent that Transmission seeds`, { timeout: TIMEOUT }, async (t) => {
    if (!requirePeer(t, 'transmission-daemon', 'transmission-daemon') || !requirePeer(t, 'mktorrent', 'mktorrent')
      || !requireNetns(t)) return;
    await withScope(async (s) => {
      const ns = createNetns();
      s.defer(() => ns.destroy());
      const dir = await s.tempDir();
      const tracker = await startShoalTracker(s, ns.hostAddr);
      const p = await writePayload(dir, layout);
      const torrentPath = join(dir, 'mktorrent-made.torrent');
      mktorrent({ path: p.contentPath, out: torrentPath, pieceLength: p.pieceLength, announce: [tracker.announceUrl] });
      const infoHash = infoHashOf(torrentPath);

      const tr = s.use(await startTransmission({ netns: ns }));
      const seed = await tr.add(torrentPath, p.seedDir);
      await seed.waitDone(30_000);
      await waitTrackerPeers(tracker.announceUrl, infoHash, 1, 30_000, () => tr.logTail());

      const client = await startShoal(s, { host: ns.hostAddr, localAddress: ns.hostAddr });
      const dl = await client.add(torrentPath, { path: join(dir, 'shoal') });
      const sessions = watchSessions(dl, 'Transmission');
      await Promise.race([waitShoalDone(dl, 170_000, () => tr.logTail()), sessions.guard]);
      sessions.stop();
      await client.close();
      await assertSameTree(p.contentPath, join(dir, 'shoal', p.name));
    });
  });
}
