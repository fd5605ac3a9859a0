// Real clients complete downloads through Shoal's tracker (src/tracker), over HTTP and over UDP (BEP 15).
// Each test's tracker serves only the protocol under test (the other listener is disabled), the torrent
// names only that URL, no client is given a peer address, and DHT/LSD/PEX are off (aria2's DHT, which
// its UDP tracker code needs, has no nodes and stays on loopback): a finished download proves the
// tracker introduced the peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrackerServer, type Torrent } from '../../src/index.js';
import { scrape } from '../../src/discovery/index.js';
import { requirePeer, requireNetns } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent } from '../helpers/real-peers/libtorrent.js';
import { startTransmission } from '../helpers/real-peers/transmission.js';
import { startAria2 } from '../helpers/real-peers/aria2.js';
import { createNetns } from '../helpers/real-peers/netns.js';
import { freePort } from '../helpers/real-peers/ports.js';
import { pollUntil } from '../helpers/real-peers/proc.js';
import { socketsOf } from '../helpers/real-peers/sockets.js';
import { assertSameTree, mktorrent, infoHashOf, writeRandomFile } from '../helpers/real-peers/data.js';
import { withScope, type Scope } from '../helpers/real-peers/scope.js';
import { shoalTorrent, startShoal, waitShoalDone, describeTorrent, type Payload } from '../helpers/real-peers/shoal-side.js';

const HOST = '127.0.0.1';
const MiB = 1 << 20;
const PIECE = 256 * 1024;
const PROTOCOLS = ['http', 'udp'] as const;
type Proto = (typeof PROTOCOLS)[number];

interface Tracker { server: TrackerServer; url: string }

/** Shoal's tracker with only `proto` listening; a 10 s interval so a peer that missed another is found soon. */
async function startTracker(s: Scope, host: string, proto: Proto): Promise<Tracker> {
  const server = new TrackerServer({
    host, httpPort: proto === 'http' ? 0 : null, udpPort: proto === 'udp' ? 0 : null, interval: 10, minInterval: 2,
  });
  s.defer(() => server.close());
  await server.listen();
  return { server, url: proto === 'http' ? server.announceUrl : server.udpUrl };
}

/** One file whose length is not a multiple of the piece length. */
async function payload(dir: string, name: string): Promise<Payload> {
  const seedDir = join(dir, 'seed');
  const contentPath = join(seedDir, name);
  await writeRandomFile(contentPath, 6 * MiB + 12_345);
  return { seedDir, name, contentPath, pieceLength: PIECE };
}

interface Counts { complete: number; incomplete: number; downloaded: number }

/** Scrapes over the protocol under test until the swarm has exactly `complete` seeds and `incomplete` leechers. */
async function waitSwarm(tr: Tracker, infoHash: string, complete: number, incomplete: number, timeoutMs: number,
  describe: () => string = () => ''): Promise<Counts> {
  let last: Counts | undefined;
  return pollUntil(`${complete} seed(s) and ${incomplete} leecher(s) of ${infoHash} at ${tr.url}`, timeoutMs, async () => {
    const m = await scrape(tr.url, [Buffer.from(infoHash, 'hex')], { timeoutMs: 3000, udp: { baseTimeoutMs: 500, maxTries: 2 } });
    last = m.get(infoHash);
    return last && last.complete === complete && last.incomplete === incomplete ? last : undefined;
  }, () => `last scrape: ${JSON.stringify(last)}\n${describe()}`, 250);
}

/** After the transfer: every peer is a seed, exactly one of them got there by downloading, and /stats agrees. */
async function assertFinishedSwarms(tr: Tracker, infoHashes: string[], describe: () => string): Promise<void> {
  for (const h of infoHashes) {
    const c = await waitSwarm(tr, h, 2, 0, 30_000, describe);
    assert.equal(c.downloaded, 1, `swarm ${h} should count one completed download: ${JSON.stringify(c)}`);
  }
  const st = await tr.server.statsJson();
  assert.deepEqual({ swarms: st.swarms, seeds: st.seeds, leechers: st.leechers },
    { swarms: infoHashes.length, seeds: 2 * infoHashes.length, leechers: 0 });
}

/** Collects the tracker warnings and errors a Shoal torrent reports from now on. */
function trackerWarnings(t: Torrent): string[] {
  const out: string[] = [];
  t.on('warning', (msg: string) => { if (/tracker/i.test(msg)) out.push(msg); });
  return out;
}

for (const proto of PROTOCOLS) {
  test(`libtorrent seeds, libtorrent downloads, found through Shoal's tracker over ${proto}`, { timeout: 120_000 }, async (t) => {
    if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') || !requirePeer(t, 'mktorrent', 'mktorrent')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const tracker = await startTracker(s, HOST, proto);
      const p = await payload(dir, 'lt.bin');
      const torrentPath = join(dir, 'lt.torrent');
      // mktorrent, not libtorrent: libtorrent 2.0 makes hybrid v1+v2 torrents, which announce a second
      // (truncated v2) info-hash and so form a second swarm at the tracker.
      mktorrent({ path: p.contentPath, out: torrentPath, pieceLength: PIECE, announce: [tracker.url] });
      const infoHash = infoHashOf(torrentPath);

      const seed = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: p.seedDir }));
      await seed.waitDone(30_000);
      await waitSwarm(tracker, infoHash, 1, 0, 30_000, () => seed.logTail());

      const dl = s.use(await startLibtorrent({ mode: 'download', torrentPath, savePath: join(dir, 'lt-dl') }));
      await dl.waitDone(90_000).catch((e: Error) => { throw new Error(`${e.message}\nseed:\n${seed.logTail()}`); });
      await assertSameTree(p.contentPath, join(dir, 'lt-dl', p.name));
      await assertFinishedSwarms(tracker, [infoHash], () => dl.logTail());
      for (const [who, peer] of [['seed', seed], ['downloader', dl]] as const) {
        assert.deepEqual(peer.alerts().filter((a) => /tracker|scrape/.test(a.type) && a.type !== 'tracker_reply'), [],
          `libtorrent ${who} should have no tracker errors or warnings`);
        for (const a of peer.alerts('tracker_reply')) assert.ok(a.msg.includes(tracker.url), `reply from another tracker: ${a.msg}`);
      }
      assert.ok(dl.alerts('tracker_reply').some((a) => /received peers: [1-9]/.test(a.msg)),
        `libtorrent downloader should have got the seed from the tracker: ${JSON.stringify(dl.alerts('tracker_reply'))}`);
    });
  });

  // One daemon, both directions at once: torrent A goes Shoal -> Transmission, torrent B Transmission -> Shoal.
  test(`Transmission and Shoal swap torrents both ways, found through Shoal's tracker over ${proto}`, { timeout: 200_000 }, async (t) => {
    if (!requirePeer(t, 'transmission-daemon', 'transmission-daemon') || !requirePeer(t, 'mktorrent', 'mktorrent')
      || !requireNetns(t)) return;
    await withScope(async (s) => {
      const ns = createNetns();
      s.defer(() => ns.destroy());
      const dir = await s.tempDir();
      const tracker = await startTracker(s, ns.hostAddr, proto);
      const pA = await payload(join(dir, 'a'), 'from-shoal.bin');
      const a = await shoalTorrent(pA, join(dir, 'a.torrent'), tracker.url);
      const pB = await payload(join(dir, 'b'), 'from-transmission.bin');
      const bPath = join(dir, 'b.torrent');
      mktorrent({ path: pB.contentPath, out: bPath, pieceLength: PIECE, announce: [tracker.url] });
      const bHash = infoHashOf(bPath);

      const client = await startShoal(s, { host: ns.hostAddr, localAddress: ns.hostAddr });
      const seedA = await client.add(a.torrentPath, { path: pA.seedDir });
      const warnA = trackerWarnings(seedA);
      await waitShoalDone(seedA, 30_000);
      const tr = s.use(await startTransmission({ netns: ns }));
      const seedB = await tr.add(bPath, pB.seedDir);
      await seedB.waitDone(30_000);
      await waitSwarm(tracker, a.infoHash, 1, 0, 30_000, () => describeTorrent(seedA));
      await waitSwarm(tracker, bHash, 1, 0, 30_000, () => tr.logTail());

      const dlA = await tr.add(a.torrentPath, join(dir, 'tr-dl'));
      const dlB = await client.add(bPath, { path: join(dir, 'shoal-dl') });
      const warnB = trackerWarnings(dlB);
      await Promise.all([
        dlA.waitDone(170_000).catch((e: Error) => { throw new Error(`${e.message}\n${describeTorrent(seedA)}`); }),
        waitShoalDone(dlB, 170_000, () => tr.logTail()),
      ]);
      await assertSameTree(pA.contentPath, join(dir, 'tr-dl', pA.name));
      await assertSameTree(pB.contentPath, join(dir, 'shoal-dl', pB.name));
      await assertFinishedSwarms(tracker, [a.infoHash, bHash], () => `${describeTorrent(dlB)}\n${tr.logTail()}`);
      for (const st of [await dlA.status(), await seedB.status()]) {
        assert.deepEqual(st.trackerStats.map((x) => [x.announce, x.lastAnnounceSucceeded, x.lastAnnounceResult]),
          [[tracker.url, true, 'Success']], `Transmission's view of the tracker for ${st.name}`);
      }
      assert.deepEqual([...warnA, ...warnB], [], 'Shoal should have no tracker warnings');
    });
  });

  test(`aria2 seeds, Shoal downloads, found through Shoal's tracker over ${proto}`, { timeout: 120_000 }, async (t) => {
    if (!requirePeer(t, 'aria2c', 'aria2') || !requirePeer(t, 'mktorrent', 'mktorrent')) return;
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const tracker = await startTracker(s, HOST, proto);
      const p = await payload(dir, 'aria2.bin');
      const torrentPath = join(dir, 'aria2.torrent');
      mktorrent({ path: p.contentPath, out: torrentPath, pieceLength: PIECE, announce: [tracker.url] });
      const infoHash = infoHashOf(torrentPath);

      const logPath = join(dir, 'aria2.log');
      // aria2 sends UDP tracker requests from its DHT socket, so UDP trackers need DHT on. With an empty
      // routing table and no entry point it has no node to talk to; the log check below holds it to that.
      const udpArgs = proto === 'udp'
        ? ['--enable-dht=true', `--dht-file-path=${join(dir, 'dht.dat')}`, `--dht-listen-port=${await freePort(HOST)}`,
          `--log=${logPath}`, '--log-level=info']
        : [];
      const aria2 = s.use(await startAria2({ host: HOST, extraArgs: udpArgs }));
      const seed = await aria2.add(torrentPath, p.seedDir);
      await seed.waitDone(30_000);
      await waitSwarm(tracker, infoHash, 1, 0, 30_000, () => aria2.logTail());

      const client = await startShoal(s, { host: HOST });
      const dl = await client.add(torrentPath, { path: join(dir, 'shoal-dl') });
      const warnings = trackerWarnings(dl);
      await waitShoalDone(dl, 90_000, () => aria2.logTail());
      await assertSameTree(p.contentPath, join(dir, 'shoal-dl', p.name));
      await assertFinishedSwarms(tracker, [infoHash], () => describeTorrent(dl));
      assert.deepEqual(warnings, [], 'Shoal should have no tracker warnings');

      if (proto === 'udp') {
        assertBoundToLoopback(aria2.pid);
        await aria2.stop(); // flushes the log
        assertAria2StayedLocal(await readFile(logPath, 'utf8'), new URL(tracker.url).port);
      }
    });
  });

  test(`Shoal seeds, Shoal downloads, found through Shoal's tracker over ${proto}`, { timeout: 60_000 }, async () => {
    await withScope(async (s) => {
      const dir = await s.tempDir();
      const tracker = await startTracker(s, HOST, proto);
      const p = await payload(dir, 'shoal.bin');
      const { torrentPath, infoHash } = await shoalTorrent(p, join(dir, 'shoal.torrent'), tracker.url);

      const seeder = await startShoal(s, { host: HOST, trackers: true });
      const seed = await seeder.add(torrentPath, { path: p.seedDir });
      const warnSeed = trackerWarnings(seed);
      await waitShoalDone(seed, 30_000);
      await waitSwarm(tracker, infoHash, 1, 0, 30_000, () => describeTorrent(seed));

      const leecher = await startShoal(s, { host: HOST, trackers: true });
      const dl = await leecher.add(torrentPath, { path: join(dir, 'shoal-dl') });
      const warnDl = trackerWarnings(dl);
      await waitShoalDone(dl, 45_000, () => describeTorrent(seed));
      await assertSameTree(p.contentPath, join(dir, 'shoal-dl', p.name));
      await assertFinishedSwarms(tracker, [infoHash], () => describeTorrent(dl));
      assert.deepEqual([...warnSeed, ...warnDl], [], 'Shoal should have no tracker warnings');
    });
  });
}

/**
 * With DHT on, aria2 must still talk to nothing but the tracker on loopback: no bootstrap node, no name
 * lookup, and every address it logs sending to is 127.0.0.1.
 */
function assertAria2StayedLocal(log: string, trackerPort: string): void {
  assert.match(log, /No DHT entry point specified/, 'aria2 log should show DHT started without an entry point');
  const sends = [...log.matchAll(/UDPT sent (\w+) to ([^\s]+)/g)];
  assert.ok(sends.some((m) => m[1] === 'ANNOUNCE'), 'aria2 log should show UDP tracker announces');
  for (const m of sends) assert.equal(m[2], `${HOST}:${trackerPort}`, `aria2 sent a UDP tracker request elsewhere: ${m[0]}`);
  const problems: string[] = [];
  for (const line of log.split('\n')) {
    // Startup lists the machine's own addresses; that is not traffic.
    if (/Found configured address|Not considered/.test(line)) continue;
    if (/resolv/i.test(line)) problems.push(line);
    for (const ip of line.match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? []) if (ip !== HOST) problems.push(line);
  }
  assert.deepEqual(problems, [], 'aria2 should not name or reach anything but loopback');
}

/** Every TCP and UDP socket of `pid` (its DHT socket included) is bound to loopback, so it cannot send elsewhere. */
function assertBoundToLoopback(pid: number): void {
  const socks = socketsOf(pid);
  assert.ok(socks.some((x) => x.proto === 'udp'), `aria2 should hold a UDP (DHT) socket: ${JSON.stringify(socks)}`);
  assert.deepEqual(socks.filter((x) => !x.local.startsWith(`${HOST}:`)), [], 'aria2 sockets not bound to loopback');
}
