import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fileIndexAt, pieceRange, pieceSpanOfFile, segmentsForRange, type FileExtent } from '../../src/storage/file-map.js';

function extents(lengths: number[]): FileExtent[] {
  let offset = 0;
  return lengths.map((length) => { const f = { offset, length }; offset += length; return f; });
}

const seg = (fileIndex: number, fileOffset: number, length: number, bufferOffset: number) => ({ fileIndex, fileOffset, length, bufferOffset });

test('piece fully inside one file', () => {
  const files = extents([100, 50]);
  assert.deepEqual(segmentsForRange(files, 16, 32), [seg(0, 16, 32, 0)]);
  assert.deepEqual(segmentsForRange(files, 110, 20), [seg(1, 10, 20, 0)]);
});

test('piece spanning several files', () => {
  const files = extents([10, 5, 3, 40]);
  assert.deepEqual(segmentsForRange(files, 8, 16), [seg(0, 8, 2, 0), seg(1, 0, 5, 2), seg(2, 0, 3, 7), seg(3, 0, 6, 10)]);
});

test('zero-length files in the middle, at the start and at the end produce no segments', () => {
  const files = extents([0, 10, 0, 0, 10, 0]);
  assert.deepEqual(segmentsForRange(files, 0, 20), [seg(1, 0, 10, 0), seg(4, 0, 10, 10)]);
  assert.deepEqual(segmentsForRange(files, 10, 5), [seg(4, 0, 5, 0)]);
  assert.deepEqual(segmentsForRange(files, 5, 10), [seg(1, 5, 5, 0), seg(4, 0, 5, 5)]);
  assert.equal(fileIndexAt(files, 0), 1);
  assert.equal(fileIndexAt(files, 10), 4);
  assert.equal(fileIndexAt(files, 20), 6);
});

test('a file starting exactly at a piece boundary', () => {
  const files = extents([16, 16, 7]);
  const pl = 16;
  const m = { pieceLength: pl, pieceCount: 3, lastPieceLength: 7 };
  assert.deepEqual(segmentsForRange(files, pieceRange(m, 0).offset, pieceRange(m, 0).length), [seg(0, 0, 16, 0)]);
  assert.deepEqual(segmentsForRange(files, pieceRange(m, 1).offset, pieceRange(m, 1).length), [seg(1, 0, 16, 0)]);
  assert.deepEqual(pieceSpanOfFile(files[1]!, pl), [1, 1]);
  assert.deepEqual(pieceSpanOfFile(files[0]!, pl), [0, 0]);
});

test('last short piece', () => {
  const files = extents([20, 5]);
  const m = { pieceLength: 16, pieceCount: 2, lastPieceLength: 9 };
  const r = pieceRange(m, 1);
  assert.deepEqual(r, { offset: 16, length: 9 });
  assert.deepEqual(segmentsForRange(files, r.offset, r.length), [seg(0, 16, 4, 0), seg(1, 0, 5, 4)]);
});

test('pieceSpanOfFile: zero-length file overlaps no piece; spans are inclusive', () => {
  assert.equal(pieceSpanOfFile({ offset: 32, length: 0 }, 16), null);
  assert.deepEqual(pieceSpanOfFile({ offset: 15, length: 2 }, 16), [0, 1]);
  assert.deepEqual(pieceSpanOfFile({ offset: 16, length: 32 }, 16), [1, 2]);
});

test('empty ranges and out-of-range requests', () => {
  const files = extents([10]);
  assert.deepEqual(segmentsForRange(files, 10, 0), []);
  assert.throws(() => segmentsForRange(files, 5, 6), RangeError);
  assert.throws(() => segmentsForRange(files, -1, 1), RangeError);
  assert.throws(() => segmentsForRange(files, 0.5, 1), RangeError);
  assert.throws(() => segmentsForRange([], 0, 1), RangeError);
});

test('many files: binary search finds the right file', () => {
  const lengths = Array.from({ length: 10000 }, (_, i) => (i % 7 === 0 ? 0 : (i % 13) + 1));
  const files = extents(lengths);
  const total = files[files.length - 1]!.offset + files[files.length - 1]!.length;
  for (const off of [0, 1, 777, Math.floor(total / 2), total - 1]) {
    const [s] = segmentsForRange(files, off, 1);
    const f = files[s!.fileIndex]!;
    assert.ok(f.length > 0 && f.offset <= off && off < f.offset + f.length);
    assert.equal(s!.fileOffset, off - f.offset);
  }
});

test('property: segments of any range cover it exactly once, in order', () => {
  fc.assert(fc.property(
    fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })), { minLength: 1, maxLength: 30 }),
    fc.nat(), fc.nat(),
    (lengths, a, b) => {
      const files = extents(lengths);
      const total = lengths.reduce((x, y) => x + y, 0);
      const offset = total === 0 ? 0 : a % (total + 1);
      const length = (total - offset) === 0 ? 0 : b % (total - offset + 1);
      const segs = segmentsForRange(files, offset, length);
      let pos = offset;
      let buf = 0;
      let lastFile = -1;
      for (const s of segs) {
        const f = files[s.fileIndex]!;
        assert.ok(s.fileIndex > lastFile, 'files strictly increasing');
        assert.ok(s.length > 0, 'no empty segments');
        assert.equal(f.offset + s.fileOffset, pos, 'contiguous in torrent space');
        assert.equal(s.bufferOffset, buf, 'contiguous in buffer space');
        assert.ok(s.fileOffset >= 0 && s.fileOffset + s.length <= f.length, 'inside its file');
        pos += s.length;
        buf += s.length;
        lastFile = s.fileIndex;
      }
      assert.equal(pos, offset + length, 'covers the whole range');
    },
  ), { numRuns: 500 });
});
