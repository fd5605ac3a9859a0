// A full Shoal client and libtorrent 2.0 (python3-libtorrent) find each other by Local Service Discovery
// (BEP 14) alone, on a LAN of network namespaces (198.18.0.0/15, multicast through a bridge): no trackers, DHT, PEX
// or explicit peers. The downloader knows only the info-hash, so metadata (BEP 9) and data both come from the peer
// LSD found. libtorrent re-announces every 2 s (local_service_announce_interval); Shoal announces when it starts
// and answers announces by dialing.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createLan, requireLan, type LanHost } from '../helpers/netns.js';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent, makeTorrentLt } from '../helpers/real-peers/libtorrent.js';
import { assertSameTree, infoHashOf, writeRandomFile } from '../helpers/real-peers/data.js';
import { startProcess, pollUntil, FatalError } from '../helpers/real-peers/proc.js';
import { withScope, type Scope } from '../helpers/real-peers/scope.js';
import { magnetUri } from '../helpers/trackerless.js';
import { createTorrent } from '../../src/index.js';

const SCRIPT = fileURLToPath(new URL('../helpers/lsd-client-node.js', import.meta.url));
const SIZE = 4 * 1024 * 1024 + 999;
const PIECE = 64 * 1024;

interface Ev { event: string; [k: string]: unknown }

function ready(t: TestContext): boolean {
  return requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') && requireLan(t);
}

/** Runs lsd-client-node.ts in `host`'s namespace with LSD allowed inside the sandbox (the interface is 198.18.x). */
async function startShoalNode(s: Scope, host: LanHost, cfg: { dir: string; magnet?: string; torrent?: string }) {
  const [cmd, args] = host.wrap(process.execPath, [SCRIPT, JSON.stringify({ iface: host.ip, ...cfg })]);
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_SANDBOX: '1', SHOAL_LSD_IN_SANDBOX: '1' };
  const proc = s.use(startProcess(`shoal in ${host.ns}`, cmd, args, { env, keepInTail: (l) => !l.startsWith('{"event":"stats"') }));
  const events: Ev[] = [];
  let last: Ev | undefined;
  proc.onLine((line, stream) => {
    if (stream !== 'stdout' || !line.startsWith('{')) return;
    let e: Ev;
    try { e = JSON.parse(line) as Ev; } catch { return; }
    if (e.event === 'stats') last = e;
    else events.push(e);
  });
  const describe = (): string => `shoal node (pid ${proc.pid}) last stats: ${JSON.stringify(last)}\nlog tail:\n${proc.logTail()}`;
  const waitFor = (type: string, timeoutMs: number, extra: () => string = () => ''): Promise<Ev> =>
    pollUntil(`shoal "${type}" event`, timeoutMs, () => {
      const hit = events.find((e) => e.event === type);
      if (hit) return hit;
      const fatal = events.find((e) => e.event === 'fatal');
      if (fatal) throw new FatalError(String(fatal.msg));
      if (proc.exitCode !== undefined) throw new FatalError(`shoal node exited (code ${proc.exitCode})`);
      return undefined;
    }, () => `${describe()}\n${extra()}`, 50);
  const readyEv = await waitFor('ready', 15_000);
  return { port: readyEv.port as number, events, waitFor, stop: () => proc.stop(3000) };
}

test('Shoal downloads a magnet (info-hash only) from a libtorrent seed it found by LSD', { timeout: 40_000 }, async (t) => {
  if (!ready(t)) return;
  await withScope(async (s) => {
    const lan = createLan(2);
    s.defer(() => lan.destroy());
    const [ha, hb] = lan.hosts as [LanHost, LanHost];
    const dir = await s.tempDir('shoal-lsd-client-');
    const file = join(dir, 'seed', 'lsd.bin');
    await writeRandomFile(file, SIZE);
    const torrentPath = join(dir, 'lt.torrent');
    await makeTorrentLt({ path: file, out: torrentPath, pieceLength: PIECE });
    const infoHash = infoHashOf(torrentPath);
    const lt = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: join(dir, 'seed'), listen: `${ha.ip}:0`, lsd: true, wrap: ha.wrap }));
    await lt.waitDone(15_000);

    const shoal = await startShoalNode(s, hb, { dir: join(dir, 'dl'), magnet: magnetUri(infoHash) });
    await shoal.waitFor('done', 30_000, () => `libtorrent:\n${lt.logTail()}`);
    assert.ok(shoal.events.some((e) => e.event === 'metadata'), 'the metadata was fetched from libtorrent');
    const peers = shoal.events.filter((e) => e.event === 'peer').map((e) => String(e.address));
    assert.ok(peers.length > 0 && peers.every((a) => a.startsWith(`${ha.ip}:`)), `connected only to libtorrent's host: ${peers.join(', ')}`);
    await shoal.stop();
    await assertSameTree(file, join(dir, 'dl', 'lsd.bin'));
  });
});

test('libtorrent downloads a magnet (info-hash only) from a Shoal seed it found by LSD', { timeout: 40_000 }, async (t) => {
  if (!ready(t)) return;
  await withScope(async (s) => {
    const lan = createLan(2);
    s.defer(() => lan.destroy());
    const [ha, hb] = lan.hosts as [LanHost, LanHost];
    const dir = await s.tempDir('shoal-lsd-client-');
    const file = join(dir, 'seed', 'lsd.bin');
    await writeRandomFile(file, SIZE);
    const { torrent, meta } = await createTorrent(file, { pieceLength: PIECE });
    const torrentPath = join(dir, 'shoal.torrent');
    await writeFile(torrentPath, torrent);

    const shoal = await startShoalNode(s, hb, { dir: join(dir, 'seed'), torrent: torrentPath });
    await shoal.waitFor('done', 15_000);
    const lt = s.use(await startLibtorrent({ mode: 'download', magnet: magnetUri(meta.infoHashHex), savePath: join(dir, 'lt'), listen: `${ha.ip}:0`, lsd: true, wrap: ha.wrap }));
    await lt.waitDone(30_000).catch((e: Error) => { throw new Error(`${e.message}\nshoal events: ${JSON.stringify(shoal.events.slice(-10))}`); });
    assert.ok(lt.gotMetadata, 'libtorrent fetched the metadata from Shoal');
    await lt.stop();
    await assertSameTree(file, join(dir, 'lt', 'lsd.bin'));
    const peers = shoal.events.filter((e) => e.event === 'peer').map((e) => String(e.address));
    assert.ok(peers.some((a) => a.startsWith(`${ha.ip}:`)), `Shoal was connected to libtorrent: ${peers.join(', ')}`);
  });
});
