/**
 * The stream manager's side of deadline picking, against an in-memory torrent: what it tells the picker as readers
 * open, read, seek and close — a small readahead that grows with the rate a reader consumes, the window moving at
 * once on a seek, and an MP4's index fetched exactly where its head says it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import type { Metainfo } from '../../src/metainfo/types.js';
import { StreamManager } from '../../src/engine/streaming.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Call { indices: number[]; urgent: number; streaming: boolean }

/** A torrent of one file held in memory; `have` says which pieces are verified. */
function torrent(data: Buffer, pieceLength: number, name: string) {
  const pieceCount = Math.ceil(data.length / pieceLength);
  const meta = {
    name, pieceLength, pieceCount, length: data.length, lastPieceLength: data.length - (pieceCount - 1) * pieceLength,
    files: [{ path: [name], length: data.length, offset: 0, padding: false }],
  } as unknown as Metainfo;
  const have = new Set<number>();
  const calls: Call[] = [];
  const manager = new StreamManager({
    meta,
    hasPiece: (i) => have.has(i),
    isWanted: () => true,
    readPiece: async (i) => data.subarray(i * pieceLength, Math.min(data.length, (i + 1) * pieceLength)),
    setCritical: (indices, urgent, streaming) => { calls.push({ indices: [...indices], urgent, streaming }); },
  });
  const last = (): Call => calls[calls.length - 1]!;
  /** The list as the picker keeps it: first occurrences of pieces not yet here. */
  const critical = (): number[] => [...new Set(last().indices)].filter((i) => !have.has(i));
  const verify = (i: number): void => { have.add(i); manager.pieceVerified(i); };
  return { meta, have, calls, manager, last, critical, verify };
}

/** Reads `n` chunks, bounded in time by the test's timeout. */
async function readChunks(r: Readable, n: number): Promise<number> {
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const chunk = await new Promise<Buffer>((resolve, reject) => {
      const c = r.read() as Buffer | null;
      if (c !== null) return resolve(c);
      r.once('readable', () => resolve(r.read() as Buffer));
      r.once('error', reject);
    });
    bytes += chunk.length;
  }
  return bytes;
}

/** Lets pending reads and the head probe run; bounded. */
async function settle(cond: () => boolean): Promise<void> {
  for (let k = 0; k < 1000 && !cond(); k++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), 'condition not reached');
}

test('readahead starts small, grows with the rate the reader consumes, and moves at once on a seek', { timeout: 10_000 }, async () => {
  const P = 256 * KiB;
  const t = torrent(Buffer.alloc(256 * P, 1), P, 'data.bin');
  const r = t.manager.createReadStream(0, { start: 10 * P });
  assert.deepEqual(t.critical(), [10, 11], 'a fresh reader asks for two pieces ahead');
  assert.equal(t.last().urgent, 0);
  assert.equal(t.last().streaming, true);
  for (let i = 10; i < 18; i++) t.verify(i);
  assert.equal(await readChunks(r, 8), 8 * P);
  await settle(() => t.last().urgent === 1);
  const grown = t.critical();
  assert.equal(grown[0], 18, 'the piece the reader waits on comes first');
  assert.ok(grown.length > 8, `the window grew with the read rate (${grown.length} pieces)`);

  // Seek: the player drops this request and opens one in the middle.
  r.destroy();
  await settle(() => t.manager.readerCount === 0);
  assert.deepEqual(t.critical(), [], 'the old window is no longer needed');
  assert.equal(t.last().streaming, true, 'between two requests of a player the pipeline stays short');
  const r2 = t.manager.createReadStream(0, { start: 100 * P + 5 });
  assert.deepEqual(t.critical(), [100, 101]);
  const reading = readChunks(r2, 1);
  await settle(() => t.last().urgent === 1);
  assert.equal(t.critical()[0], 100);
  t.verify(100);
  assert.equal(await reading, P - 5);
  r2.destroy();
  t.manager.close();
});

test('readers that wait come before readers that read ahead', { timeout: 10_000 }, async () => {
  const P = 64 * KiB;
  const t = torrent(Buffer.alloc(64 * P, 2), P, 'data.bin');
  const ahead = t.manager.createReadStream(0, { start: 40 * P });
  const blocked = t.manager.createReadStream(0, { start: 20 * P });
  const reading = readChunks(blocked, 1);
  await settle(() => t.last().urgent === 1);
  assert.deepEqual(t.critical().slice(0, 3), [20, 21, 40], 'blocked reader first, then the other interleaved');
  t.verify(20);
  await reading;
  ahead.destroy();
  blocked.destroy();
  t.manager.close();
});

/** An MP4 of top-level boxes: ftyp, then either moov + mdat (faststart) or mdat + moov (ffmpeg's default). */
function mp4(length: number, moovFirst: boolean, moovSize: number): { data: Buffer; moovAt: number } {
  const data = Buffer.alloc(length);
  const box = (at: number, size: number, type: string): void => { data.writeUInt32BE(size, at); data.write(type, at + 4, 'latin1'); };
  box(0, 32, 'ftyp');
  data.write('isom', 8, 'latin1');
  if (moovFirst) {
    box(32, moovSize, 'moov');
    box(32 + moovSize, length - 32 - moovSize, 'mdat');
    return { data, moovAt: 32 };
  }
  box(32, length - 32 - moovSize, 'mdat');
  box(length - moovSize, moovSize, 'moov');
  return { data, moovAt: length - moovSize };
}

test('MP4 with moov at the end: the head first, then the moov exactly where the head says, before the rest of the head', { timeout: 10_000 }, async () => {
  const P = 64 * KiB;
  const { data, moovAt } = mp4(8 * MiB, false, 50_000);
  const t = torrent(data, P, 'film.mp4');
  t.manager.prefetch(0);
  const before = t.critical();
  assert.deepEqual(before.slice(0, 3), [0, 1, 2], 'the head, in order');
  assert.ok(before.every((i) => i < 32), 'nothing from the end is guessed: the first piece will tell');
  t.verify(0);
  await settle(() => t.critical()[0] !== 1);
  const exact = t.critical();
  const moovPiece = Math.floor(moovAt / P);
  assert.equal(exact[0], moovPiece, 'the moov comes right after the head');
  assert.ok(exact.every((i) => i === moovPiece || i < 32), `only the head and the moov's pieces: ${exact.join(',')}`);
  // A player opening the file replaces the hint, with the same order.
  const r = t.manager.createReadStream(0);
  assert.equal(t.critical()[0], moovPiece);
  r.destroy();
  t.manager.close();
});

test('faststart MP4: once the head shows moov first, nothing is fetched from the end', { timeout: 10_000 }, async () => {
  const P = 64 * KiB;
  const { data } = mp4(8 * MiB, true, 50_000);
  const t = torrent(data, P, 'film.mp4');
  const r = t.manager.createReadStream(0);
  const calls = t.calls.length;
  t.verify(0);
  await settle(() => t.calls.length > calls); // the probe of the head updates the list
  assert.deepEqual(t.critical().slice(0, 3), [1, 2, 3]);
  assert.ok(t.critical().every((i) => i < 32));
  r.destroy();
  t.manager.close();
});

test('Matroska and an MP4 whose head does not parse: the tail is guessed by size', { timeout: 10_000 }, async () => {
  const P = 64 * KiB;
  const mkv = torrent(Buffer.alloc(8 * MiB, 3), P, 'film.mkv');
  mkv.manager.prefetch(0);
  assert.deepEqual(mkv.critical().slice(0, 3), [0, 112, 113], 'head, then the last MiB for the cues');
  mkv.manager.close();
  const bad = torrent(Buffer.alloc(8 * MiB, 3), P, 'film.mp4');
  bad.manager.prefetch(0);
  bad.verify(0);
  await settle(() => bad.critical().includes(112));
  assert.deepEqual(bad.critical().slice(0, 2), [112, 113]);
  bad.manager.close();
});
