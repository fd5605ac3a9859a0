// The seed's piece cache recycles piece memory: these check that memory somebody may still read is never handed
// out again, whatever the order of reads, borrows, releases and evictions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PieceCache } from '../../src/storage/piece-cache.js';

const PIECE = 1024;

test('an evicted piece is recycled only once nobody borrows it, and a piece handed out whole never is', () => {
  const cache = new PieceCache(2 * PIECE, PIECE);
  const a = cache.allocate(PIECE).fill(1);
  cache.insert(0, a, false);
  const block = cache.borrow(0, 0, 16)!;
  assert.equal(block[0], 1);
  cache.insert(1, Buffer.alloc(PIECE, 2), false);
  cache.insert(2, Buffer.alloc(PIECE, 3), false); // evicts piece 0, still borrowed
  assert.equal(cache.has(0), false);
  cache.check();
  // Free list empty, cache full: the oldest unpinned piece (1) gives its memory; piece 0's is still borrowed.
  const fresh = cache.allocate(PIECE);
  assert.notEqual(fresh.buffer, a.buffer, 'a borrowed buffer must not be reused');
  assert.equal(cache.has(1), false, 'a full cache gives its oldest piece to the next allocation');
  cache.check();
  cache.release(block);
  cache.check();
  assert.equal(cache.allocate(PIECE).buffer, a.buffer, 'released memory is recycled');

  const b = cache.allocate(PIECE).fill(4);
  cache.insert(3, b, false);
  const whole = cache.get(3)!;
  assert.equal(whole, b);
  cache.delete(3);
  for (let i = 0; i < 8; i++) assert.notEqual(cache.allocate(PIECE).buffer, b.buffer, 'get() hands out memory for good');
});

test('a downloader\'s allocations take memory from a cache over the given threshold, never from pinned pieces', () => {
  const cache = new PieceCache(4 * PIECE, PIECE);
  const bufs = [0, 1, 2].map((i) => { const b = cache.allocate(PIECE, 2 * PIECE); cache.insert(i, b, false); return b; });
  const pinned = cache.borrow(0, 0, 8)!;
  // 3 pieces cached, over the threshold of 2: piece 0 is pinned, so piece 1 gives its memory.
  const next = cache.allocate(PIECE, 2 * PIECE);
  assert.equal(next.buffer, bufs[1]!.buffer);
  assert.equal(cache.has(0), true);
  assert.equal(cache.has(1), false);
  // Now at the threshold: a fresh buffer.
  const fresh = cache.allocate(PIECE, 2 * PIECE);
  assert.ok(bufs.every((b) => b.buffer !== fresh.buffer));
  cache.release(pinned);
  cache.check();
});

test('a piece borrowed twice stays in use until both borrows are released', () => {
  const cache = new PieceCache(PIECE, PIECE);
  const m = cache.allocate(PIECE);
  cache.insert(0, m, false);
  const p = cache.borrow(0, 0, 8)!;
  const q = cache.borrow(0, 8, 8)!;
  cache.delete(0);
  cache.release(p);
  const other = cache.allocate(PIECE);
  assert.notEqual(other.buffer, m.buffer, 'one release of two must not free the memory');
  cache.discard(other);
  cache.release(q);
  cache.check();
  assert.ok([cache.allocate(PIECE), cache.allocate(PIECE)].some((b) => b.buffer === m.buffer));
});

test('pieces larger than the cache are not cached; blocks outside a piece are not lent', () => {
  const cache = new PieceCache(PIECE, PIECE);
  cache.insert(0, Buffer.alloc(2 * PIECE), false);
  assert.equal(cache.has(0), false);
  cache.insert(1, Buffer.alloc(PIECE), false);
  assert.equal(cache.borrow(1, PIECE - 8, 16), undefined);
  assert.equal(cache.bytes, PIECE);
  cache.check();
});

test('property: any sequence of operations keeps P1-P4, and no memory in use is ever allocated again', () => {
  type Op =
    | { k: 'insert'; i: number; shared: boolean }
    | { k: 'get'; i: number }
    | { k: 'borrow'; i: number }
    | { k: 'release'; n: number }
    | { k: 'delete'; i: number }
    | { k: 'reserve'; n: number }
    | { k: 'clear' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('insert' as const), i: fc.nat(5), shared: fc.boolean() }),
    fc.record({ k: fc.constant('get' as const), i: fc.nat(5) }),
    fc.record({ k: fc.constant('borrow' as const), i: fc.nat(5) }),
    fc.record({ k: fc.constant('release' as const), n: fc.nat(20) }),
    fc.record({ k: fc.constant('delete' as const), i: fc.nat(5) }),
    fc.record({ k: fc.constant('reserve' as const), n: fc.nat(4) }),
    fc.record({ k: fc.constant('clear' as const) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const cache = new PieceCache(3 * PIECE, PIECE);
    const borrowed: Buffer[] = [];
    const keptForever = new Set<ArrayBufferLike>();
    const inUse = (): Set<ArrayBufferLike> => new Set([...keptForever, ...borrowed.map((b) => b.buffer)]);
    for (const o of ops) {
      switch (o.k) {
        case 'insert': {
          const buf = cache.allocate(PIECE, o.i % 2 === 0 ? undefined : PIECE);
          assert.ok(!inUse().has(buf.buffer), 'allocate() returned memory that is still in use');
          if (o.shared) keptForever.add(buf.buffer);
          cache.insert(o.i, buf, o.shared);
          break;
        }
        case 'get': { const b = cache.get(o.i); if (b) keptForever.add(b.buffer); break; }
        case 'borrow': { const b = cache.borrow(o.i, 0, 16); if (b) borrowed.push(b); break; }
        case 'release': if (borrowed.length > 0) cache.release(borrowed.splice(o.n % borrowed.length, 1)[0]!); break;
        case 'delete': cache.delete(o.i); break;
        case 'reserve': cache.reserve(o.n * PIECE); break;
        case 'clear': cache.clear(); break;
      }
      cache.check();
    }
  }), { seed: 20261201, numRuns: 300 });
});

test('memory the downloader holds is taken from the cache\'s room (down to two pieces), and given back', () => {
  const cache = new PieceCache(8 * PIECE, PIECE);
  for (let i = 0; i < 8; i++) cache.insert(i, cache.allocate(PIECE), false);
  assert.equal(cache.bytes, 8 * PIECE);
  const pinned = cache.borrow(0, 0, 16)!;
  cache.reserve(5 * PIECE);
  assert.equal(cache.bytes, 3 * PIECE, 'a limit of 8 pieces with 5 in flight keeps 3');
  assert.deepEqual([0, 1, 5, 6, 7].map((i) => cache.has(i)), [true, false, false, true, true], 'least recently used first (borrowing 0 used it)');
  cache.check();
  cache.reserve(20 * PIECE);
  assert.equal(cache.bytes, 2 * PIECE, 'never below two pieces: peers ask for what we just announced');
  cache.insert(100, cache.allocate(PIECE), false);
  assert.equal(cache.bytes, 2 * PIECE);
  cache.check();
  cache.reserve(0);
  for (let i = 200; i < 210; i++) cache.insert(i, cache.allocate(PIECE), false);
  assert.equal(cache.bytes, 8 * PIECE, 'the room comes back when the buffers do');
  cache.release(pinned);
  cache.check();
  const none = new PieceCache(0, PIECE);
  none.reserve(0);
  none.insert(0, Buffer.alloc(PIECE), false);
  assert.equal(none.bytes, 0, 'a cache of 0 bytes holds nothing, whatever the two-piece floor');
});

test('a downloader\'s buffers are counted as they are lent and returned: bursts recycle the same memory', () => {
  const cache = new PieceCache(4 * PIECE, PIECE);
  const seen = new Set<ArrayBufferLike>();
  for (let round = 0; round < 5; round++) {
    // A burst of six pieces in flight (more than the cache holds), then all of them verified and returned.
    const burst = Array.from({ length: 6 }, () => cache.allocateOutside(PIECE));
    for (const b of burst) seen.add(b.buffer);
    cache.reserve(6 * PIECE); // the once-a-second count, taken mid-burst
    cache.check();
    burst.forEach((b, i) => cache.insert(round * 10 + i, b, false, true));
    cache.check();
    assert.equal(cache.bytes, 4 * PIECE, 'returned pieces fill the cache up to its limit at once');
  }
  assert.equal(seen.size, 6, `five bursts of six used ${seen.size} distinct buffers`);
  // A buffer that never comes back is forgotten at the next count.
  cache.allocateOutside(PIECE);
  cache.reserve(0);
  cache.insert(99, cache.allocate(PIECE), false);
  cache.check();
});

test('the least recently used piece is evicted, however often the most recent one is read in a row', () => {
  const cache = new PieceCache(3 * PIECE, PIECE);
  for (let i = 0; i < 3; i++) cache.insert(i, Buffer.alloc(PIECE, i), false);
  // Read piece 0, then 0 again (the second read finds it most recent already), then 2 and 0 again.
  for (const i of [0, 0, 2, 0]) cache.release(cache.borrow(i, 0, 16)!);
  cache.check();
  cache.insert(3, Buffer.alloc(PIECE, 3), false);
  assert.deepEqual([0, 1, 2, 3].map((i) => cache.has(i)), [true, false, true, true], 'piece 1 was the least recently used');
  // Dropping the most recent piece leaves the order of the others as it was.
  cache.delete(3);
  cache.check();
  cache.release(cache.borrow(2, 0, 16)!);
  cache.insert(4, Buffer.alloc(PIECE, 4), false);
  cache.insert(5, Buffer.alloc(PIECE, 5), false);
  assert.deepEqual([0, 2, 4, 5].map((i) => cache.has(i)), [false, true, true, true], 'piece 0 went first, then nothing else');
  cache.check();
});

test('property: eviction follows recency, whatever the order pieces are read in', () => {
  type Op = { k: 'insert' | 'read' | 'delete'; i: number };
  const op: fc.Arbitrary<Op> = fc.record({ k: fc.constantFrom('insert' as const, 'read' as const, 'delete' as const), i: fc.nat(7) });
  fc.assert(fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
    const cache = new PieceCache(3 * PIECE, PIECE);
    const model: number[] = []; // least recently used first
    const drop = (i: number): void => { const at = model.indexOf(i); if (at >= 0) model.splice(at, 1); };
    for (const o of ops) {
      if (o.k === 'insert') {
        cache.insert(o.i, Buffer.alloc(PIECE), false);
        drop(o.i);
        model.push(o.i);
        while (model.length > 3) model.shift();
      } else if (o.k === 'read') {
        const b = cache.borrow(o.i, 0, 16);
        assert.equal(b !== undefined, model.includes(o.i));
        if (b) { cache.release(b); drop(o.i); model.push(o.i); }
      } else {
        cache.delete(o.i);
        drop(o.i);
      }
      cache.check();
      for (let i = 0; i < 8; i++) assert.equal(cache.has(i), model.includes(i), `piece ${i} after ${o.k} ${o.i}`);
    }
  }), { seed: 20261202, numRuns: 300 });
});
