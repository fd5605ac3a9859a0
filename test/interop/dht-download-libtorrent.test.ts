// Downloads where the DHT (BEP 5) is the only way the two sides can find each other: a bare magnet link (no tr, no
// x.pe), LSD off on both sides, all nodes on 127.0.0.1. The one DHT node both sides bootstrap from (B) is a plain
// Shoal `Dht` started by the test; it knows nobody until the clients join it. libtorrent 2.0 (Debian
// python3-libtorrent) on the other end. Each case prints how long the DHT part took, for the figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent, makeTorrentLt } from '../helpers/real-peers/libtorrent.js';
import { assertSameTree, infoHashOf } from '../helpers/real-peers/data.js';
import { withScope, type Scope } from '../helpers/real-peers/scope.js';
import { pollUntil } from '../helpers/real-peers/proc.js';
import { startCli, type CliProcess, type JsonEvent } from '../helpers/cli.js';
import { magnetUri, writeManyFiles } from '../helpers/trackerless.js';
import { Dht } from '../../src/dht/index.js';

const HOST = '127.0.0.1';
const PIECE = 16 * 1024;

/** The bootstrap node: answers queries and stores announces; it never looks anything up itself. */
async function bootstrapNode(s: Scope): Promise<Dht> {
  // Every node shares 127.0.0.1, so the per-IP query limit would count all of them as one sender.
  const b = new Dht({ port: 0, host: HOST, queryTimeoutMs: 1000, rateLimit: { perSecond: 1000, burst: 1000 } });
  await b.listen();
  s.defer(() => b.close());
  return b;
}

/** When (ms after `t0`) each JSON event arrived on the CLI's stdout, kept alongside the event. */
function timeEvents(cli: CliProcess, t0: number): Array<{ at: number; ev: JsonEvent }> {
  const seen: Array<{ at: number; ev: JsonEvent }> = [];
  let partial = '';
  cli.child.stdout!.on('data', (chunk: string) => {
    const at = Date.now() - t0;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try { seen.push({ at, ev: JSON.parse(line) as JsonEvent }); } catch { /* not an event */ }
    }
  });
  return seen;
}

test('Shoal `get` of a bare magnet finds a libtorrent seed through the DHT, fetches the metadata and downloads', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const b = await bootstrapNode(s);
    const dir = await s.tempDir('shoal-dhtdl-');
    const content = join(dir, 'seed', 'tree');
    await writeManyFiles(content, { seed: 21, count: 100 });
    const torrentPath = join(dir, 'lt.torrent');
    await makeTorrentLt({ path: content, out: torrentPath, pieceLength: PIECE });
    const infoHash = infoHashOf(torrentPath);

    // A long re-announce interval: libtorrent announces once after joining the DHT, then stays quiet, so it does
    // not go looking for Shoal and every connection below is one Shoal made to an address the DHT gave it.
    const ltStart = Date.now();
    const lt = s.use(await startLibtorrent({
      mode: 'seed', torrentPath, savePath: join(dir, 'seed'), dhtBootstrap: [`${HOST}:${b.port}`], dhtAnnounceIntervalSeconds: 600,
    }));
    await lt.waitDone(15_000);
    await pollUntil('libtorrent to announce the torrent on node B', 20_000, () => (b.stats().peersStored >= 1 ? true : undefined),
      () => `B: ${JSON.stringify(b.stats())}\n${lt.logTail()}`, 50);
    const ltAnnounceMs = Date.now() - ltStart;

    const out = join(dir, 'dl');
    const t0 = Date.now();
    const cli = startCli(['get', magnetUri(infoHash), '-o', out, '--host', HOST, '--dht-bootstrap', `${HOST}:${b.port}`, '--no-lsd',
      '--json', '-v', '--timeout', '25'], { env: { SHOAL_STATE_DIR: join(dir, 'state') } });
    s.defer(() => cli.stop(2000));
    const timed = timeEvents(cli, t0);
    const { code } = await Promise.race([cli.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`shoal get still running after 30 s\n${cli.stdout}\n${cli.stderr}`)), 30_000).unref())]);
    assert.equal(code, 0, `shoal get failed:\n${cli.stdout}\n${cli.stderr}\n${lt.logTail()}`);
    await assertSameTree(content, join(out, 'tree'));

    const types = cli.events.map((e) => e.type).filter((x) => ['metadata-fetching', 'metadata', 'added', 'done'].includes(x));
    assert.deepEqual(types, ['metadata-fetching', 'metadata', 'added', 'done']);
    const ltAddr = `${HOST}:${lt.port}`;
    const first = (pred: (e: JsonEvent) => boolean) => timed.find((x) => pred(x.ev));
    // Shoal dialled libtorrent's listen address: with no tracker, no x.pe and no LSD, only the DHT could name it.
    const dialled = first((e) => e.type === 'peer' && e.event === 'connected' && e.address === ltAddr);
    assert.ok(dialled, `Shoal connected to ${ltAddr}; events:\n${cli.stdout}`);
    const fetching = first((e) => e.type === 'metadata-fetching')!;
    const meta = first((e) => e.type === 'metadata')!;
    const done = first((e) => e.type === 'done')!;
    const dht = (done.ev.dht ?? [...cli.events].reverse().find((e) => e.type === 'progress' && e.dht)?.dht) as { nodes: number; lookups: number } | undefined;
    assert.ok(dht && dht.lookups >= 1, `the done/progress events report a DHT lookup: ${JSON.stringify(dht)}`);
    assert.ok(dht.nodes >= 1, 'Shoal\'s DHT knows at least node B');
    console.log(`dht download (a) Shoal <- libtorrent: libtorrent announced on B ${ltAnnounceMs} ms after start; ` +
      `shoal get: listening ${fetching.at} ms, first DHT peer connected ${dialled.at} ms (${dialled.at - fetching.at} ms after listening), ` +
      `metadata ${meta.at} ms, done ${done.at} ms; dht ${JSON.stringify(dht)}; B stored ${b.stats().peersStored} peers under ${b.stats().infoHashesStored} info-hashes, answered ${b.stats().queriesIn} queries`);
  });
});

test('libtorrent downloads a bare magnet from a Shoal `seed` it found through the DHT', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const b = await bootstrapNode(s);
    const dir = await s.tempDir('shoal-dhtdl-');
    const content = join(dir, 'seed', 'tree');
    const total = await writeManyFiles(content, { seed: 22, count: 100 });

    const t0 = Date.now();
    const seed = startCli(['seed', content, '--torrent-out', join(dir, 'shoal.torrent'), '-l', String(PIECE), '--no-embedded-tracker',
      '--dht-bootstrap', `${HOST}:${b.port}`, '--no-lsd', '--host', HOST, '--port', '0', '--json'], { env: { SHOAL_STATE_DIR: join(dir, 'state') } });
    s.defer(() => seed.stop(5000));
    const seeding = await seed.waitFor('seeding', 20_000);
    const seedingMs = Date.now() - t0;
    const infoHash = String(seeding.infoHash);
    const seedPort = Number(seeding.port);
    assert.match(infoHash, /^[0-9a-f]{40}$/);
    // The seed's DHT peer source bootstraps from B, then looks the torrent up and announces its port there.
    await pollUntil('the Shoal seed to announce on node B', 20_000, () => (b.stats().peersStored >= 1 ? true : undefined),
      () => `B: ${JSON.stringify(b.stats())}\nseed stdout:\n${seed.stdout}\nstderr:\n${seed.stderr}`, 25);
    const announcedMs = Date.now() - t0;

    const l0 = Date.now();
    const lt = s.use(await startLibtorrent({
      mode: 'download', magnet: magnetUri(infoHash), savePath: join(dir, 'lt'), dhtBootstrap: [`${HOST}:${b.port}`], dhtAnnounceIntervalSeconds: 2,
    }));
    assert.equal(lt.infoHash, infoHash);
    await pollUntil('libtorrent to connect to the Shoal seed', 25_000, () => ((lt.status()?.peers ?? 0) > 0 || lt.alerts('peer_connect').length > 0 ? true : undefined),
      () => `B: ${JSON.stringify(b.stats())}\n${lt.logTail()}`, 25);
    const firstPeerMs = Date.now() - l0;
    await lt.waitDone(25_000);
    const doneMs = Date.now() - l0;
    assert.ok(lt.gotMetadata, 'libtorrent reported metadata_received: the info dictionary came from Shoal');
    const ltNodes = lt.status()?.dhtNodes;
    await lt.stop();
    await assertSameTree(content, join(dir, 'lt', 'tree'));

    const stopped = await seed.stop(5000);
    assert.equal(stopped.killed, false, 'the seed stops on SIGINT');
    const end = seed.events.find((e) => e.type === 'stopped');
    assert.ok(end, `the seed printed a stopped event:\n${seed.stdout}`);
    assert.ok(Number(end.uploaded) >= total, `Shoal uploaded the data (${String(end.uploaded)} of ${total} bytes)`);
    console.log(`dht download (b) libtorrent <- Shoal: shoal seed listening ${seedingMs} ms (port ${seedPort}), announced on B ${announcedMs} ms after start; ` +
      `libtorrent: first peer ${firstPeerMs} ms after start, done ${doneMs} ms; libtorrent dht nodes ${ltNodes}; seed dht ${JSON.stringify(end.dht)}; ` +
      `B stored ${b.stats().peersStored} peers under ${b.stats().infoHashesStored} info-hashes, answered ${b.stats().queriesIn} queries`);
  });
});
