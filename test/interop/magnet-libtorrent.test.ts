// Magnet links (BEP 9 ut_metadata) against libtorrent 2.0 (Debian python3-libtorrent) on loopback, no tracker:
// each side fetches the info dictionary from the other, knowing only the info-hash and the peer's address (x.pe).
// The payload's info dictionary is over 16 KiB, so the fetch takes several ut_metadata pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startLibtorrent, makeTorrentLt } from '../helpers/real-peers/libtorrent.js';
import { assertSameTree, infoHashOf } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import { startShoal, waitShoalDone } from '../helpers/real-peers/shoal-side.js';
import { runCli, jsonLines, type JsonEvent } from '../helpers/cli.js';
import { magnetUri, writeManyFiles } from '../helpers/trackerless.js';
import { createTorrent, parseTorrent } from '../../src/metainfo/index.js';

const HOST = '127.0.0.1';
const PIECE = 16 * 1024;

function types(events: JsonEvent[]): string[] {
  return events.map((e) => e.type);
}

test('Shoal `get magnet:` fetches the metadata from libtorrent and downloads; a restart uses the saved .torrent', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir();
    const content = join(dir, 'seed', 'tree');
    await writeManyFiles(content);
    const torrentPath = join(dir, 'lt.torrent');
    await makeTorrentLt({ path: content, out: torrentPath, pieceLength: PIECE });
    const infoHash = infoHashOf(torrentPath);
    const infoSize = parseTorrent(await readFile(torrentPath)).infoBuffer.length;
    assert.ok(infoSize > 16 * 1024, `the info dictionary spans several metadata pieces (${infoSize} bytes)`);
    const lt = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: join(dir, 'seed') }));
    await lt.waitDone(15_000);

    const out = join(dir, 'dl');
    const saved = join(dir, 'saved.torrent');
    const args = ['get', magnetUri(infoHash, [`${HOST}:${lt.port}`]), '-o', out, '--host', HOST, '--json', '--timeout', '25'];
    const first = await runCli([...args, '--save-torrent', saved], { timeoutMs: 30_000 });
    assert.equal(first.code, 0, `first run failed:\n${first.stdout}\n${first.stderr}\n${lt.logTail()}`);
    const ev1 = jsonLines(first.stdout);
    const seq1 = types(ev1).filter((x) => ['metadata-fetching', 'metadata', 'added', 'done'].includes(x));
    assert.deepEqual(seq1, ['metadata-fetching', 'metadata', 'added', 'done']);
    const metaEv = ev1.find((e) => e.type === 'metadata')!;
    assert.equal(metaEv.infoHash, infoHash);
    assert.equal(metaEv.name, 'tree');
    await assertSameTree(content, join(out, 'tree'));
    // The fetched metadata was kept, under the download folder and where --save-torrent said, hashing to the magnet.
    const kept = join(out, '.shoal', `${infoHash}.torrent`);
    assert.ok(existsSync(kept), `${kept} exists`);
    assert.equal(infoHashOf(kept), infoHash);
    assert.equal(infoHashOf(saved), infoHash);
    assert.ok(parseTorrent(await readFile(saved)).infoBuffer.equals(parseTorrent(await readFile(torrentPath)).infoBuffer));

    // Restart with libtorrent gone: only the saved .torrent can tell Shoal what the torrent is.
    await lt.stop();
    const second = await runCli(args, { timeoutMs: 20_000 });
    assert.equal(second.code, 0, `restart failed:\n${second.stdout}\n${second.stderr}`);
    const ev2 = jsonLines(second.stdout);
    assert.equal(ev2[0]?.type, 'added', `restart starts from the saved metadata: ${types(ev2).join(', ')}`);
    assert.ok(!types(ev2).includes('metadata-fetching'), 'no second metadata fetch');
    const added = ev2[0]!;
    assert.equal(added.have, added.wanted, 'every piece is found on disk');
    assert.ok(types(ev2).includes('done'));
    await assertSameTree(content, join(out, 'tree'));
  });
});

test('libtorrent downloads from a magnet link, fetching the metadata from a Shoal seed', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir();
    const content = join(dir, 'seed', 'tree');
    await writeManyFiles(content, { seed: 7 });
    const { torrent, meta } = await createTorrent(content, { pieceLength: PIECE });
    const torrentPath = join(dir, 'shoal.torrent');
    await writeFile(torrentPath, torrent);
    assert.ok(meta.infoBuffer.length > 16 * 1024, `the info dictionary spans several metadata pieces (${meta.infoBuffer.length} bytes)`);
    const client = await startShoal(s, { host: HOST, trackers: false });
    const seed = await client.add(torrentPath, { path: join(dir, 'seed') });
    await waitShoalDone(seed, 15_000);

    // libtorrent knows only the info-hash and Shoal's address (x.pe): the metadata can only come from Shoal.
    const lt = s.use(await startLibtorrent({ mode: 'download', magnet: magnetUri(meta.infoHashHex, [`${HOST}:${client.port}`]), savePath: join(dir, 'lt') }));
    assert.equal(lt.infoHash, meta.infoHashHex);
    await lt.waitDone(30_000);
    assert.ok(lt.gotMetadata, 'libtorrent reported metadata_received');
    await lt.stop();
    await assertSameTree(content, join(dir, 'lt', 'tree'));
    assert.ok(seed.stats().uploaded >= meta.length, `Shoal uploaded the data (${seed.stats().uploaded} of ${meta.length})`);
  });
});

test('`shoal info magnet: --fetch --peer <libtorrent>` shows what `shoal info` shows for the .torrent', { timeout: 40_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir();
    const content = join(dir, 'seed', 'tree');
    await writeManyFiles(content, { seed: 11, count: 120 });
    const torrentPath = join(dir, 'lt.torrent');
    await makeTorrentLt({ path: content, out: torrentPath, pieceLength: PIECE });
    const infoHash = infoHashOf(torrentPath);
    const lt = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: join(dir, 'seed') }));
    await lt.waitDone(15_000);

    const fetched = await runCli(['info', magnetUri(infoHash), '--fetch', '--peer', `${HOST}:${lt.port}`, '--host', HOST, '--json', '--timeout', '20'], { timeoutMs: 25_000 });
    assert.equal(fetched.code, 0, `info --fetch failed:\n${fetched.stdout}\n${fetched.stderr}\n${lt.logTail()}`);
    const local = await runCli(['info', torrentPath, '--json'], { timeoutMs: 15_000 });
    assert.equal(local.code, 0, local.stderr);
    const a = jsonLines(fetched.stdout).find((e) => e.type === 'info');
    const b = jsonLines(local.stdout).find((e) => e.type === 'info');
    assert.ok(a && b, `both print an info event:\n${fetched.stdout}\n${local.stdout}`);
    for (const k of ['name', 'infoHash', 'length', 'pieceLength', 'pieces', 'private', 'files']) assert.deepEqual(a[k], b[k], `field ${k}`);
    assert.equal(a.infoHash, infoHash);
    assert.equal((a.files as unknown[]).length, 121);
  });
});
