import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { contentRange, MAX_RANGES, parseRange, type RangeResult } from '../../src/stream/range.js';

const full: RangeResult = { kind: 'full' };
const none: RangeResult = { kind: 'unsatisfiable' };
const part = (start: number, end: number): RangeResult => ({ kind: 'partial', start, end });

test('single ranges: closed, open, suffix, clamped to the size', () => {
  const size = 1000;
  const cases: Array<[string, RangeResult]> = [
    ['bytes=0-0', part(0, 0)],
    ['bytes=0-499', part(0, 499)],
    ['bytes=500-999', part(500, 999)],
    ['bytes=500-', part(500, 999)],
    ['bytes=0-', part(0, 999)],
    ['bytes=999-', part(999, 999)],
    ['bytes=900-5000', part(900, 999)],                   // last-pos past the end is clamped
    ['bytes=0-99999999999999999999999', part(0, 999)],    // beyond 2^53 too
    ['bytes=-1', part(999, 999)],
    ['bytes=-500', part(500, 999)],
    ['bytes=-1000', part(0, 999)],
    ['bytes=-5000', part(0, 999)],                        // a suffix longer than the file is the whole file
    ['bytes=007-009', part(7, 9)],                        // leading zeros are digits
    ['BYTES=1-2', part(1, 2)],                            // range units are case-insensitive
    ['Bytes=1-2', part(1, 2)],
    ['bytes= 1-2 ', part(1, 2)],                          // OWS around list elements
    ['bytes=,1-2,', part(1, 2)],                          // empty list elements are allowed
  ];
  for (const [h, want] of cases) assert.deepEqual(parseRange(h, size), want, h);
});

test('unsatisfiable: every range starts at or past the end, or a zero suffix', () => {
  const cases: Array<[string, number]> = [
    ['bytes=1000-', 1000], ['bytes=1000-2000', 1000], ['bytes=5000-', 1000], ['bytes=-0', 1000],
    ['bytes=1000-1000,2000-', 1000], ['bytes=-0,1000-', 1000],
    ['bytes=0-', 0], ['bytes=0-0', 0], ['bytes=-0', 0],
    ['bytes=99999999999999999999-', 1000],
  ];
  for (const [h, size] of cases) assert.deepEqual(parseRange(h, size), none, `${h} of ${size}`);
});

test('ignored (whole file, 200): absent, malformed, other units, reversed', () => {
  const ignored = [
    undefined, '', 'bytes', 'bytes=', 'bytes=,', 'bytes=-', 'bytes=a-b', 'bytes=1-a', 'bytes=-a', 'bytes=1', 'bytes=1--2',
    'bytes=5-4', 'bytes=0-1,5-4', 'bytes=+1-2', 'bytes=1-2.5', 'bytes=0x10-', 'bytes=1 -2', 'bytes =0-1', ' bytes=0-1',
    'items=0-1', 'none', 'bytes=0-1;q=1', 'bytes=\u0661-\u0662', // Arabic-Indic digits are not DIGIT
  ];
  for (const h of ignored) assert.deepEqual(parseRange(h, 1000), full, String(h));
  // A non-zero suffix of an empty file is satisfiable but there is nothing to put in a Content-Range.
  assert.deepEqual(parseRange('bytes=-5', 0), full);
});

test('several ranges: coalesced when they overlap or touch, else the whole file', () => {
  const size = 1000;
  assert.deepEqual(parseRange('bytes=0-99,100-199', size), part(0, 199));
  assert.deepEqual(parseRange('bytes=100-199,0-99', size), part(0, 199));
  assert.deepEqual(parseRange('bytes=0-150,100-199', size), part(0, 199));
  assert.deepEqual(parseRange('bytes=0-999,5-6', size), part(0, 999));
  assert.deepEqual(parseRange('bytes=900-,-50', size), part(900, 999));
  assert.deepEqual(parseRange('bytes=0-9,2000-3000', size), part(0, 9));     // unsatisfiable ones are dropped
  assert.deepEqual(parseRange('bytes=0-9,20-29', size), full);              // a gap: multipart would be needed
  assert.deepEqual(parseRange('bytes=0-0,-1', size), full);
  const many = Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i}-${i}`).join(',');
  assert.deepEqual(parseRange(`bytes=${many}`, size), full, 'too many ranges are ignored');
  const justEnough = Array.from({ length: MAX_RANGES }, (_, i) => `${i}-${i}`).join(',');
  assert.deepEqual(parseRange(`bytes=${justEnough}`, size), part(0, MAX_RANGES - 1));
  assert.deepEqual(parseRange(`bytes=${','.repeat(100_000)}0-1`, size), full, 'a huge header is refused cheaply');
});

test('contentRange formats 206 and 416 values', () => {
  assert.equal(contentRange(1000, { start: 0, end: 499 }), 'bytes 0-499/1000');
  assert.equal(contentRange(1000), 'bytes */1000');
});

// ---- properties (seeded) ----

const SEED = 0x5eed;

test('property: any string never throws and a partial result lies inside the file', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.string().map((s) => `bytes=${s}`), fc.stringMatching(/^bytes=[-0-9, ]{0,20}$/)),
    fc.nat({ max: 10_000 }), (h, size) => {
      const r = parseRange(h, size);
      if (r.kind === 'partial') {
        assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end));
        assert.ok(r.start >= 0 && r.start <= r.end && r.end < size, `${h} of ${size} gave ${r.start}-${r.end}`);
      }
    }), { seed: SEED, numRuns: 2000 });
});

type Spec = { first: number; last?: number } | { suffix: number };
const spec: fc.Arbitrary<Spec> = fc.oneof(
  fc.record({ first: fc.nat({ max: 80 }), last: fc.nat({ max: 80 }) }).map(({ first, last }) => ({ first: Math.min(first, last), last: Math.max(first, last) })),
  fc.record({ first: fc.nat({ max: 80 }) }),
  fc.record({ suffix: fc.nat({ max: 80 }) }),
);
const text = (s: Spec): string => ('suffix' in s ? `-${s.suffix}` : `${s.first}-${s.last ?? ''}`);

/** The bytes a range-set selects, by brute force over a bitmap. */
function model(specs: Spec[], size: number): boolean[] {
  const sel = new Array<boolean>(size).fill(false);
  for (const s of specs) {
    const [a, b] = 'suffix' in s ? [s.suffix === 0 ? size : size - s.suffix, size - 1] : [s.first, s.last ?? size - 1];
    for (let i = Math.max(0, a); i <= Math.min(b, size - 1); i++) sel[i] = true;
  }
  return sel;
}

test('property: valid range-sets agree with a brute-force model of the selected bytes', () => {
  fc.assert(fc.property(fc.array(spec, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 64 }), (specs, size) => {
    const r = parseRange(`bytes=${specs.map(text).join(',')}`, size);
    const sel = model(specs, size);
    const first = sel.indexOf(true);
    if (first < 0) { assert.deepEqual(r, none); return; }
    const last = sel.lastIndexOf(true);
    const contiguous = sel.slice(first, last + 1).every(Boolean);
    if (contiguous) assert.deepEqual(r, part(first, last));
    else assert.deepEqual(r, full);
  }), { seed: SEED, numRuns: 3000 });
});

test('property: a single int-range of a big file is served exactly, or 416 past the end', () => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }), (a, b, size) => {
    const [first, last] = [Math.min(a, b), Math.max(a, b)];
    const r = parseRange(`bytes=${first}-${last}`, size);
    assert.deepEqual(r, first >= size ? none : part(first, Math.min(last, size - 1)));
  }), { seed: SEED, numRuns: 1000 });
});
