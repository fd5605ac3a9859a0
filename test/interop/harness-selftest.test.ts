// Checks the real-peer drivers against each other, without Shoal: if these fail, the interop tests
// cannot say anything about Shoal.
import { test } from 'node:test';
import { join } from 'node:path';
import { requirePeer, requireNetns } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent } from '../helpers/real-peers/libtorrent.js';
import { startAria2 } from '../helpers/real-peers/aria2.js';
import { startTransmission } from '../helpers/real-peers/transmission.js';
import { createNetns } from '../helpers/real-peers/netns.js';
import { startOpentrackerOn, waitForSeeders } from '../helpers/real-peers/tracker.js';
import { freePort } from '../helpers/real-peers/ports.js';
import { writeRandomFile, writeTree, assertSameTree, mktorrent, infoHashOf } from '../helpers/real-peers/data.js';
import { withScope, type Scope } from '../helpers/real-peers/scope.js';

const MiB = 1 << 20;
const TIMEOUT = 120_000;

/** Seed data plus a torrent naming an opentracker on `host` (started here, once the info-hash is known). */
async function swarmFixture(s: Scope, host: string, layout: 'single' | 'multi') {
  const dir = await s.tempDir();
  const seedDir = join(dir, 'seed');
  const name = layout === 'single' ? 'payload.bin' : 'payload';
  if (layout === 'single') await writeRandomFile(join(seedDir, name), 8 * MiB + 12_345);
  else await writeTree(join(seedDir, name), { 'a.bin': 3 * MiB + 7, 'sub/b.bin': 4 * MiB - 1, 'sub/deeper/c.txt': 999 });
  const httpPort = await freePort(host);
  const udpPort = await freePort(host);
  const torrentPath = join(dir, 'payload.torrent');
  mktorrent({ path: join(seedDir, name), out: torrentPath, pieceLength: 256 * 1024, announce: [`http://${host}:${httpPort}/announce`] });
  const infoHash = infoHashOf(torrentPath);
  const tracker = s.use(await startOpentrackerOn({ host, infoHashes: [infoHash], httpPort, udpPort }));
  return { dir, seedDir, name, torrentPath, infoHash, tracker };
}

test('harness: libtorrent seeds, aria2 downloads through opentracker on loopback', { timeout: TIMEOUT }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') || !requirePeer(t, 'aria2c', 'aria2')
    || !requirePeer(t, 'opentracker', 'opentracker') || !requirePeer(t, 'mktorrent', 'mktorrent')) return;
  await withScope(async (s) => {
    const f = await swarmFixture(s, '127.0.0.1', 'multi');
    const seed = s.use(await startLibtorrent({ mode: 'seed', torrentPath: f.torrentPath, savePath: f.seedDir }));
    await seed.waitDone(30_000);
    await waitForSeeders(f.tracker.httpUrl, f.infoHash, 1, 30_000, () => seed.logTail());
    const aria2 = s.use(await startAria2());
    const dl = await aria2.add(f.torrentPath, join(f.dir, 'aria2'));
    await dl.waitDone(90_000);
    await assertSameTree(join(f.seedDir, f.name), join(f.dir, 'aria2', f.name));
  });
});

test('harness: aria2 seeds, libtorrent downloads through opentracker on loopback', { timeout: TIMEOUT }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') || !requirePeer(t, 'aria2c', 'aria2')
    || !requirePeer(t, 'opentracker', 'opentracker') || !requirePeer(t, 'mktorrent', 'mktorrent')) return;
  await withScope(async (s) => {
    const f = await swarmFixture(s, '127.0.0.1', 'single');
    const aria2 = s.use(await startAria2());
    const seed = await aria2.add(f.torrentPath, f.seedDir);
    await seed.waitDone(30_000);
    await waitForSeeders(f.tracker.httpUrl, f.infoHash, 1, 30_000, () => aria2.logTail());
    const lt = s.use(await startLibtorrent({ mode: 'download', torrentPath: f.torrentPath, savePath: join(f.dir, 'lt') }));
    await lt.waitDone(90_000);
    await assertSameTree(join(f.seedDir, f.name), join(f.dir, 'lt', f.name));
  });
});

test('harness: libtorrent seeds, Transmission downloads in a namespace through opentracker', { timeout: TIMEOUT }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') || !requirePeer(t, 'transmission-daemon', 'transmission-daemon')
    || !requirePeer(t, 'opentracker', 'opentracker') || !requirePeer(t, 'mktorrent', 'mktorrent') || !requireNetns(t)) return;
  await withScope(async (s) => {
    const ns = createNetns();
    s.defer(() => ns.destroy());
    const f = await swarmFixture(s, ns.hostAddr, 'multi');
    const seed = s.use(await startLibtorrent({ mode: 'seed', torrentPath: f.torrentPath, savePath: f.seedDir, listen: `${ns.hostAddr}:0` }));
    await seed.waitDone(30_000);
    await waitForSeeders(f.tracker.httpUrl, f.infoHash, 1, 30_000, () => seed.logTail());
    const tr = s.use(await startTransmission({ netns: ns }));
    const dl = await tr.add(f.torrentPath, join(f.dir, 'tr'));
    await dl.waitDone(90_000);
    await assertSameTree(join(f.seedDir, f.name), join(f.dir, 'tr', f.name));
  });
});

test('harness: Transmission seeds in a namespace, libtorrent downloads through opentracker', { timeout: TIMEOUT }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') || !requirePeer(t, 'transmission-daemon', 'transmission-daemon')
    || !requirePeer(t, 'opentracker', 'opentracker') || !requirePeer(t, 'mktorrent', 'mktorrent') || !requireNetns(t)) return;
  await withScope(async (s) => {
    const ns = createNetns();
    s.defer(() => ns.destroy());
    const f = await swarmFixture(s, ns.hostAddr, 'single');
    const tr = s.use(await startTransmission({ netns: ns }));
    const seed = await tr.add(f.torrentPath, f.seedDir);
    await seed.waitDone(30_000);
    await waitForSeeders(f.tracker.httpUrl, f.infoHash, 1, 30_000, () => tr.logTail());
    const lt = s.use(await startLibtorrent({ mode: 'download', torrentPath: f.torrentPath, savePath: join(f.dir, 'lt'), listen: `${ns.hostAddr}:0` }));
    await lt.waitDone(90_000);
    await assertSameTree(join(f.seedDir, f.name), join(f.dir, 'lt', f.name));
  });
});
