/**
 * Streaming a torrent while it downloads: the reader API, the HTTP server over it, and `shoal stream`, against real
 * ffprobe/ffmpeg on videos made at test time. The seed's upload is limited to a few times the video's bitrate, so
 * playback has to start before the download ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTorrent, parseTorrent } from '../../src/metainfo/index.js';
import { StreamServer } from '../../src/stream/index.js';
import { torrentStreamSource } from '../../src/engine/index.js';
import { FFMPEG, probeDuration, runBinary, testVideos } from '../helpers/media.js';
import { httpRequest } from '../helpers/stream-source.js';
import { KiB, until, waitDone, withScope } from '../helpers/engine/harness.js';
import { startCli } from '../helpers/cli.js';
import type { Readable } from 'node:stream';

const TIMEOUT = 60_000;

async function drain(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of r) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

for (const layout of ['moovAtEnd', 'faststart'] as const) {
  test(`${layout}: ffprobe and a seek work over HTTP while the torrent is still downloading`, { timeout: TIMEOUT }, async (t) => {
    const videos = await testVideos(t);
    if (!videos) return;
    await withScope(`stream-${layout}`, async (s) => {
      const file = videos[layout];
      const data = await readFile(file);
      const { meta } = await createTorrent(file, { pieceLength: 16 * KiB, creationDate: false });
      const bitrate = data.length / videos.durationSeconds;
      // The seed serves the file from its own folder at 1.2 times the video's bitrate: the whole download takes
      // over fifteen seconds, so what ffprobe and ffmpeg get before that came from streaming, not a finished file.
      const seed = await s.client({ uploadLimit: Math.ceil(1.2 * bitrate) });
      await seed.add(meta, { path: join(file, '..') });
      const client = await s.client();
      const dl = await client.add(meta, { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port: seed.port }] });
      const server = new StreamServer(torrentStreamSource(dl));
      s.defer(() => server.close());
      await server.listen();
      const url = server.urlFor(0);

      const duration = await probeDuration(url);
      assert.ok(Math.abs(duration - videos.durationSeconds) < 0.5, `ffprobe duration ${duration}`);
      assert.ok(!dl.done, `ffprobe answered only after the whole download (${(dl.stats().progress * 100).toFixed(0)}%)`);

      const frame = await runBinary(FFMPEG, ['-v', 'error', '-ss', String(videos.durationSeconds / 2), '-i', url, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', '-']);
      assert.equal(frame.length, 320 * 240, 'one decoded frame from the middle');

      // Byte ranges equal the file's bytes.
      for (const [a, b] of [[0, 99], [data.length - 1000, data.length - 1], [12345, 65432]] as const) {
        const r = await httpRequest(url, { headers: { range: `bytes=${a}-${b}` } });
        assert.equal(r.status, 206);
        assert.ok(r.body.equals(data.subarray(a, b + 1)), `bytes ${a}-${b}`);
      }
    });
  });
}

test('readers: exact ranges, several at once, a destroyed reader stops asking for its pieces, a resumed torrent reads without peers', { timeout: TIMEOUT }, async (t) => {
  const videos = await testVideos(t);
  if (!videos) return;
  await withScope('stream-readers', async (s) => {
    const file = videos.matroska;
    const data = await readFile(file);
    const { meta } = await createTorrent(file, { pieceLength: 16 * KiB, creationDate: false });
    const seed = await s.client({ uploadLimit: 256 * KiB });
    await seed.add(meta, { path: join(file, '..') });
    const client = await s.client();
    const dir = join(s.dir, 'dl');
    const dl = await client.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.port }] });

    // A prefetch hint (what `shoal stream` does before the player's first request) puts the head and tail first.
    dl.prefetch(0);
    const last = meta.pieceCount - 1;
    assert.ok(dl.picker.criticalPieces.includes(0) || dl.have.get(0), 'the head is prefetched');
    assert.ok(dl.picker.criticalPieces.includes(last) || dl.have.get(last), 'Matroska keeps its cues at the end: the tail is prefetched');

    // A reader that is destroyed mid-read takes its pieces out of the picker's priority list.
    const doomed = dl.files[0]!.createReadStream({ start: Math.floor(data.length / 2) });
    doomed.on('error', () => undefined);
    const mid = Math.floor(Math.floor(data.length / 2) / (16 * KiB)) + 1;
    await until('the reader made its pieces critical', 5000, () => dl.picker.criticalPieces.includes(mid));
    doomed.destroy();
    await until('its pieces left the list', 5000, () => !dl.picker.criticalPieces.includes(mid));

    // Two readers at once, each getting exactly its range.
    const [x, y] = await Promise.all([
      drain(dl.files[0]!.createReadStream({ start: 1000, end: 200_000 })),
      drain(dl.files[0]!.createReadStream({ start: data.length - 50_000 })),
    ]);
    assert.ok(x.equals(data.subarray(1000, 200_001)));
    assert.ok(y.equals(data.subarray(data.length - 50_000)));
    await waitDone(dl, 40_000, 'downloader');
    await client.remove(dl);

    // Resumed from its resume data (no recheck), with no peer at all: reads come from disk.
    const again = await s.client();
    const resumed = await again.add(meta, { path: dir });
    assert.equal(resumed.lastCheck.hashed, 0, 'no full recheck');
    assert.ok((await drain(resumed.files[0]!.createReadStream())).equals(data));
  });
});

test('shoal stream --json prints the URL of the largest file and serves it', { timeout: TIMEOUT }, async (t) => {
  const videos = await testVideos(t);
  if (!videos) return;
  await withScope('stream-cli', async (s) => {
    const file = videos.faststart;
    const data = await readFile(file);
    const { torrent, meta } = await createTorrent(file, { pieceLength: 16 * KiB, creationDate: false });
    const torrentFile = join(s.dir, 'v.torrent');
    await writeFile(torrentFile, torrent);
    const seed = await s.client();
    await seed.add(meta, { path: join(file, '..') });
    const cli = startCli(['--json', 'stream', torrentFile, '-o', join(s.dir, 'dl'), '--peer', `127.0.0.1:${seed.port}`, '--port', '0']);
    s.defer(() => cli.stop(10_000));
    const ev = await cli.waitFor('streaming', 20_000);
    assert.match(ev.url as string, /^http:\/\/127\.0\.0\.1:\d+\/files\/0\//);
    assert.equal((ev.files as unknown[]).length, 1);
    const r = await httpRequest(ev.url as string);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(data));
    assert.equal(parseTorrent(await readFile(torrentFile)).infoHashHex, meta.infoHashHex);
    assert.ok((await stat(join(s.dir, 'dl', meta.name))).size === data.length);
  });
});
