// Peer exchange (BEP 11 ut_pex) with libtorrent 2.0 (Debian python3-libtorrent) as one of three peers, no tracker.
// Each peer binds its own loopback address (127.0.0.2-5), so an address says who is who, and a connection to a
// peer's *listen* address is one the downloader dialed: it could only have learned that address through PEX.
// libtorrent sends its first ut_pex message (the full peer list) on its per-second peer tick as soon as it has
// two or more peers, then at most once a minute; Shoal's side uses pexIntervalMs 500.
// The seed runs without PEX: otherwise it could learn the downloader's address the same way and dial it first,
// and the one connection kept between the two would not show who learned whom.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent } from '../helpers/real-peers/libtorrent.js';
import { assertSameTree, writeRandomFile } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import { pollUntil } from '../helpers/real-peers/proc.js';
import { describeTorrent, startShoal, waitShoalDone } from '../helpers/real-peers/shoal-side.js';
import { trackPeerBytes } from '../helpers/trackerless.js';
import { createTorrent } from '../../src/index.js';

const SEED_IP = '127.0.0.2';
const LT_IP = '127.0.0.3';
const DL_IP = '127.0.0.4';
const HELPER_IP = '127.0.0.5';
const SIZE = 6 * 1024 * 1024 + 777;
const PIECE = 64 * 1024;

test('a Shoal downloader that knows only libtorrent learns the seed from libtorrent\'s PEX and downloads from it', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir();
    const file = join(dir, 'seed', 'pex.bin');
    await writeRandomFile(file, SIZE);
    const { torrent, meta } = await createTorrent(file, { pieceLength: PIECE });
    const torrentPath = join(dir, 'pex.torrent');
    await writeFile(torrentPath, torrent);

    const seedClient = await startShoal(s, { host: SEED_IP, localAddress: SEED_IP, trackers: false, pex: false });
    const seed = await seedClient.add(torrentPath, { path: join(dir, 'seed') });
    await waitShoalDone(seed, 15_000);
    const seedAddr = `${SEED_IP}:${seedClient.port}`;

    // libtorrent downloads from the seed slowly (so it is still connected to it, and PEX lists it, throughout)
    // and uploads slowly (so the data the downloader needs comes from the seed).
    const lt = s.use(await startLibtorrent({
      mode: 'download', torrentPath, savePath: join(dir, 'lt'), listen: `${LT_IP}:0`, peers: [seedAddr],
      downloadLimit: 256 * 1024, uploadLimit: 32 * 1024,
    }));
    await pollUntil('libtorrent to connect to the Shoal seed', 15_000, () => ((lt.status()?.peers ?? 0) >= 1 ? true : undefined), () => lt.logTail());

    const dlClient = await startShoal(s, { host: DL_IP, localAddress: DL_IP, trackers: false, pexIntervalMs: 500 });
    const dl = await dlClient.add(torrentPath, { path: join(dir, 'dl'), peers: [{ host: LT_IP, port: lt.port }] });
    const peers: string[] = [];
    const start = Date.now();
    let seedDialedAfterMs = -1;
    dl.on('peer', (a: string) => {
      peers.push(a);
      if (a === seedAddr && seedDialedAfterMs < 0) seedDialedAfterMs = Date.now() - start;
    });
    const bytes = trackPeerBytes(dl);
    await waitShoalDone(dl, 30_000, () => `peer events: ${peers.join(', ')}\nlibtorrent:\n${lt.logTail()}`);
    bytes.stop();
    const doneAfterMs = Date.now() - start;

    await assertSameTree(file, join(dir, 'dl', 'pex.bin'));
    assert.ok(peers.includes(seedAddr), `the downloader dialed the seed's listen address ${seedAddr}, known only from PEX; peer events: ${peers.join(', ')}`);
    const fromSeed = bytes.byHost(SEED_IP);
    const fromLt = bytes.byHost(LT_IP);
    assert.ok(fromSeed >= meta.length / 2, `most data came from the seed learned through PEX: ${fromSeed} from it, ${fromLt} from libtorrent, of ${meta.length}\n${describeTorrent(dl)}`);
    t.diagnostic(`connected to the seed (from libtorrent's PEX) ${seedDialedAfterMs} ms after joining; downloaded ${fromSeed} B from it, ${fromLt} B from libtorrent; done after ${doneAfterMs} ms`);
  });
});

test('libtorrent that knows only a Shoal peer learns the seed from Shoal\'s PEX and downloads from it', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir();
    const file = join(dir, 'seed', 'pex.bin');
    await writeRandomFile(file, SIZE);
    const { torrent, meta } = await createTorrent(file, { pieceLength: PIECE });
    const torrentPath = join(dir, 'pex.torrent');
    await writeFile(torrentPath, torrent);

    const seedClient = await startShoal(s, { host: SEED_IP, localAddress: SEED_IP, trackers: false, pex: false });
    const seed = await seedClient.add(torrentPath, { path: join(dir, 'seed') });
    await waitShoalDone(seed, 15_000);
    const seedAddr = `${SEED_IP}:${seedClient.port}`;

    // A Shoal peer connected to the seed that has (almost) nothing to give: it downloads and uploads slowly.
    const helperClient = await startShoal(s, {
      host: HELPER_IP, localAddress: HELPER_IP, trackers: false, pexIntervalMs: 500, downloadLimit: 64 * 1024, uploadLimit: 16 * 1024,
    });
    const helper = await helperClient.add(torrentPath, { path: join(dir, 'helper'), peers: [{ host: SEED_IP, port: seedClient.port }] });
    await pollUntil('the helper to connect to the seed', 10_000, () => (helper.peerStats().length >= 1 ? true : undefined), () => describeTorrent(helper));

    const lt = s.use(await startLibtorrent({
      mode: 'download', torrentPath, savePath: join(dir, 'lt'), listen: `${LT_IP}:0`, peers: [`${HELPER_IP}:${helperClient.port}`],
    }));
    const ltStart = Date.now();
    const connected = pollUntil('libtorrent to dial the seed', 30_000, () => (lt.alerts('peer_connect').some((a) => a.msg.includes(seedAddr)) ? Date.now() - ltStart : undefined), () => lt.logTail(), 50);
    connected.catch(() => undefined);
    const seedBytes = new Map<string, number>();
    const timer = setInterval(() => {
      for (const p of seed.peerStats()) seedBytes.set(p.address, Math.max(seedBytes.get(p.address) ?? 0, p.uploaded));
    }, 100);
    s.defer(() => clearInterval(timer));
    await lt.waitDone(30_000);
    const dialedAfterMs = await connected;
    clearInterval(timer);
    await lt.stop();
    await assertSameTree(file, join(dir, 'lt', 'pex.bin'));

    const connects = lt.alerts('peer_connect').map((a) => a.msg);
    assert.ok(connects.some((m) => m.includes(seedAddr)), `libtorrent dialed the seed ${seedAddr} (known only from Shoal's PEX):\n${connects.join('\n')}`);
    let toLt = 0;
    for (const [a, b] of seedBytes) if (a.startsWith(`${LT_IP}:`)) toLt += b;
    assert.ok(toLt >= meta.length / 2, `the seed uploaded most of the data to libtorrent: ${toLt} of ${meta.length}`);
    t.diagnostic(`libtorrent dialed the seed (from Shoal's PEX) ${dialedAfterMs} ms after starting; the seed uploaded ${toLt} B to it`);
  });
});
