import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, stat } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import fc from 'fast-check';
import {
  HEAD_BYTES, MAX_TOP_LEVEL_BOXES, mediaContainerOf, mediaHeadTailPieces, mp4LayoutFromHead, mp4MoovPosition, mp4TopLevelBoxes, tailBytes,
  type MediaContainer, type ReadAt,
} from '../../src/stream/media.js';
import { testVideos } from '../helpers/media.js';

const MiB = 1024 * 1024;

function bufferReader(buf: Buffer): ReadAt & { calls: number } {
  const f = (async (pos: number, len: number) => { f.calls++; return buf.subarray(pos, pos + len); }) as ReadAt & { calls: number };
  f.calls = 0;
  return f;
}

function box(type: string, payload: number, large = false): Buffer {
  const header = large ? 16 : 8;
  const b = Buffer.alloc(header + payload);
  if (large) { b.writeUInt32BE(1, 0); b.writeBigUInt64BE(BigInt(header + payload), 8); } else b.writeUInt32BE(header + payload, 0);
  b.write(type, 4, 'latin1');
  return b;
}

test('ffmpeg files: faststart has moov at the start, the default layout at the end, Matroska is not MP4', { timeout: 60_000 }, async (t) => {
  const v = await testVideos(t);
  if (!v) return;
  for (const [file, want] of [[v.faststart, 'start'], [v.moovAtEnd, 'end'], [v.matroska, 'unknown']] as const) {
    const size = (await stat(file)).size;
    // all three kinds of source: a FileHandle, a numeric fd, a read function
    const fh = await open(file, 'r');
    try { assert.equal(await mp4MoovPosition(fh, size), want, file); } finally { await fh.close(); }
    const fd = openSync(file, 'r');
    try { assert.equal(await mp4MoovPosition(fd, size), want, file); } finally { closeSync(fd); }
    const reader = bufferReader(await readFile(file));
    assert.equal(await mp4MoovPosition(reader, size), want, file);
    assert.ok(reader.calls <= 5, `only box headers are read (${reader.calls} reads)`);
  }
  const buf = await readFile(v.moovAtEnd);
  const boxes = await mp4TopLevelBoxes(bufferReader(buf), buf.length);
  assert.ok(boxes);
  assert.deepEqual(boxes.map((b) => b.type).filter((t) => t !== 'free'), ['ftyp', 'mdat', 'moov']);
  assert.equal(boxes.reduce((n, b) => n + b.size, 0), buf.length, 'the boxes tile the file');
  // A download cut before the moov is not a valid MP4 yet.
  const cut = buf.subarray(0, buf.length - 100);
  assert.equal(await mp4MoovPosition(bufferReader(cut), cut.length), 'unknown');
});

test('synthetic box sequences: 64-bit sizes, size 0, fragments, garbage', async () => {
  const pos = (parts: Buffer[]): Promise<string> => { const b = Buffer.concat(parts); return mp4MoovPosition(bufferReader(b), b.length); };
  assert.equal(await pos([box('ftyp', 16), box('mdat', 100, true), box('moov', 50)]), 'end');
  assert.equal(await pos([box('ftyp', 16), box('moov', 50, true), box('mdat', 100, true)]), 'start');
  assert.equal(await pos([box('ftyp', 16), box('moov', 50), box('moof', 20), box('mdat', 30), box('moof', 20), box('mdat', 30)]), 'start');
  assert.equal(await pos([box('wide', 0), box('mdat', 10), box('moov', 10)]), 'end', 'old QuickTime files start with wide');
  // size 0: the box runs to the end of the file
  const tail = box('mdat', 40); tail.writeUInt32BE(0, 0);
  assert.equal(await pos([box('ftyp', 16), box('moov', 20), tail]), 'start');
  assert.equal(await pos([box('ftyp', 16), tail]), 'unknown', 'an mdat to the end leaves no room for a moov');
  assert.equal(await pos([box('ftyp', 16), box('mdat', 10)]), 'unknown', 'no moov at all');
  assert.equal(await pos([]), 'unknown');
  assert.equal(await pos([Buffer.from('RIFF\0\0\0\0AVI LIST')]), 'unknown');
  assert.equal(await pos([box('mdat', 10), box('moov', 10)]), 'end', 'ftyp is optional in QuickTime files');
  const bad = [
    [box('ftyp', 16), Buffer.from([0, 0, 0, 4, 0x6d, 0x6f, 0x6f, 0x76])],        // size below the header
    [box('ftyp', 16), box('moov', 50).subarray(0, 30)],                          // runs past the end
    [box('ftyp', 16), box('mo\0v', 10)],                                         // not a printable type
    [box('ftyp', 16), Buffer.from([0, 0, 0, 1, 0x6d, 0x64, 0x61, 0x74, 0xff, 0, 0, 0, 0, 0, 0, 0])], // largesize > 2^53
    [box('ftyp', 16), Buffer.from([0, 0, 0, 1, 0x6d, 0x64, 0x61, 0x74, 0, 0, 0, 0, 0, 0, 0, 8])],   // largesize < 16
    [box('ftyp', 16), Buffer.from([0, 0, 0])],                                    // trailing bytes
  ];
  for (const parts of bad) assert.equal(await pos(parts), 'unknown');
});

test('hostile: a file of tiny boxes stops after a bounded number of reads', { timeout: 20_000 }, async () => {
  const n = MAX_TOP_LEVEL_BOXES + 10;
  const buf = Buffer.concat([box('ftyp', 0), Buffer.concat(Array.from({ length: n }, () => box('free', 0))), box('moov', 0)]);
  const reader = bufferReader(buf);
  assert.equal(await mp4MoovPosition(reader, buf.length), 'unknown');
  assert.ok(reader.calls <= MAX_TOP_LEVEL_BOXES, `${reader.calls} reads`);
});

test('containers by extension', () => {
  const want: Array<[string, MediaContainer]> = [['a/b.MP4', 'mp4'], ['x.m4v', 'mp4'], ['x.mov', 'mp4'], ['x.m4a', 'mp4'],
    ['x.mkv', 'matroska'], ['x.webm', 'matroska'], ['x.avi', 'avi'], ['x.mp3', 'other'], ['mp4', 'other'], ['.mp4', 'other']];
  for (const [p, c] of want) assert.equal(mediaContainerOf(p), c, p);
});

test('head and tail pieces', () => {
  const P = 256 * 1024;
  // A 100 MiB MP4 starting mid-piece at byte 1000: head 2 MiB, tail 1 MiB (100 MiB / 256 < 1 MiB).
  const f = { offset: 1000, length: 100 * MiB };
  const end = f.offset + f.length - 1;
  assert.deepEqual(mediaHeadTailPieces(f, P, 'mp4', 'end'), [
    { first: 0, last: Math.floor((1000 + HEAD_BYTES - 1) / P) },
    { first: Math.floor((end - MiB + 1) / P), last: Math.floor(end / P) },
  ]);
  assert.deepEqual(mediaHeadTailPieces(f, P, 'mp4'), mediaHeadTailPieces(f, P, 'mp4', 'end'), 'unknown layout: fetch the tail too');
  assert.deepEqual(mediaHeadTailPieces(f, P, 'mp4', 'start'), [{ first: 0, last: 8 }], 'faststart needs no tail');
  assert.deepEqual(mediaHeadTailPieces(f, P, 'other'), [{ first: 0, last: 8 }]);
  assert.equal(mediaHeadTailPieces(f, P, 'matroska').length, 2);
  // A small file: head and tail merge into one range.
  assert.deepEqual(mediaHeadTailPieces({ offset: 3 * P, length: 2 * MiB }, P, 'mp4'), [{ first: 3, last: 10 }]);
  assert.deepEqual(mediaHeadTailPieces({ offset: 0, length: 0 }, P, 'mp4'), []);
  assert.equal(tailBytes(4096 * MiB, 'mp4'), 16 * MiB);
  assert.equal(tailBytes(1024 * MiB, 'mp4'), 4 * MiB);
  assert.equal(tailBytes(10 * MiB, 'mp4'), MiB);
  assert.equal(tailBytes(10 * MiB, 'matroska'), MiB);
  assert.equal(tailBytes(10 * MiB, 'other'), 0);
});

test('property: head/tail ranges stay inside the file, ascending, disjoint, and cover its first and last byte', () => {
  fc.assert(fc.property(
    fc.nat({ max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 36 }), fc.integer({ min: 14, max: 24 }),
    fc.constantFrom<MediaContainer>('mp4', 'matroska', 'avi', 'other'), fc.constantFrom('start', 'end', 'unknown' as const),
    (offset, length, log2, container, moov) => {
      const P = 2 ** log2;
      const r = mediaHeadTailPieces({ offset, length }, P, container, moov);
      const firstPiece = Math.floor(offset / P);
      const lastPiece = Math.floor((offset + length - 1) / P);
      assert.ok(r.length >= 1 && r.length <= 2);
      assert.equal(r[0]!.first, firstPiece);
      for (const x of r) assert.ok(x.first <= x.last && x.first >= firstPiece && x.last <= lastPiece);
      if (r.length === 2) assert.ok(r[1]!.first > r[0]!.last + 1);
      const wantsTail = container !== 'other' && !(container === 'mp4' && moov === 'start');
      if (wantsTail) assert.equal(r[r.length - 1]!.last, lastPiece);
      const bytes = r.reduce((n, x) => n + (x.last - x.first + 1) * P, 0);
      assert.ok(bytes <= HEAD_BYTES + 16 * MiB + 4 * P, 'never more than head + tail (plus partial pieces)');
    }), { seed: 0x5eed, numRuns: 2000 });
});

test('the layout from the head alone: ffmpeg files, with only their first 16 KiB', { timeout: 60_000 }, async (t) => {
  const v = await testVideos(t);
  if (!v) return;
  const fast = await readFile(v.faststart);
  assert.deepEqual(mp4LayoutFromHead(fast.subarray(0, 16 * 1024), fast.length), { moov: 'start' });
  const end = await readFile(v.moovAtEnd);
  const boxes = (await mp4TopLevelBoxes(bufferReader(end), end.length))!;
  const mdat = boxes.find((b) => b.type === 'mdat')!;
  const layout = mp4LayoutFromHead(end.subarray(0, 16 * 1024), end.length);
  assert.deepEqual(layout, { moov: 'end', indexAt: mdat.offset + mdat.size });
  assert.ok(boxes.find((b) => b.type === 'moov')!.offset >= mdat.offset + mdat.size, 'the moov is at or after indexAt');
  assert.equal(mp4LayoutFromHead((await readFile(v.matroska)).subarray(0, 16 * 1024), 1 << 20), null, 'Matroska is not MP4');
});

test('the layout from the head: synthetic boxes, short heads, garbage', () => {
  const head = (parts: Buffer[], keep: number, length?: number) => {
    const b = Buffer.concat(parts);
    return mp4LayoutFromHead(b.subarray(0, keep), length ?? b.length);
  };
  assert.deepEqual(head([box('ftyp', 16), box('mdat', 100, true), box('moov', 50)], 40), { moov: 'end', indexAt: 24 + 116 });
  assert.deepEqual(head([box('ftyp', 16), box('free', 8), box('moov', 50)], 60), { moov: 'start' });
  assert.equal(head([box('ftyp', 16), box('moov', 50)], 20), null, 'the head ends before the first box after ftyp');
  assert.equal(head([box('ftyp', 16), box('mdat', 10, true)], 30), null, 'a 64-bit size cut short');
  assert.equal(head([box('ftyp', 16), box('mdat', 40)], 100), null, 'no moov at all');
  assert.equal(head([Buffer.from('not an mp4 file at all')], 22), null);
  assert.equal(head([box('ftyp', 16), box('mdat', 100)], 200, 60), null, 'a box larger than the file');
  const zero = box('mdat', 40); zero.writeUInt32BE(0, 0);
  assert.equal(head([box('ftyp', 16), zero], 100), null, 'mdat to the end: no index anywhere');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), fc.integer({ min: 0, max: 1 << 20 }), (bytes, length) => {
    const r = mp4LayoutFromHead(Buffer.from(bytes), length);
    assert.ok(r === null || r.moov === 'start' || (r.indexAt >= 0 && r.indexAt < length));
  }), { seed: 7, numRuns: 500 });
});
