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
  cache.insert(1, cache.allocate(PIECE).fill(2), false);
  cache.insert(2, cache.allocate(PIECE).fill(3), false); // evicts piece 0, still borrowed
  assert.equal(cache.has(0), false);
  cache.check();
  const fresh = cache.allocate(PIECE);
  assert.notEqual(fresh.buffer, a.buffer, 'a borrowed buffer must not be reused');
  cache.discard(fresh);
  cache.release(block);
  cache.check();
  // Now piece 0's memory is free: the next allocation may reuse it (LIFO: the discarded one first, then it).
  const reused = [cache.allocate(PIECE), cache.allocate(PIECE)];
  assert.ok(reused.some((b) => b.buffer === a.buffer), 'released memory is recycled');

  const b = cache.allocate(PIECE).fill(4);
  cache.insert(3, b, false);
  const whole = cache.get(3)!;
  assert.equal(whole, b);
  cache.delete(3);
  for (let i = 0; i < 8; i++) assert.notEqual(cache.allocate(PIECE).buffer, b.buffer, 'get() hands out memory for good');
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

test('property: any sequence of operations keeps P1-P3, and no memory in use is ever allocated again', () => {
  type Op =
    | { k: 'insert'; i: number; shared: boolean }
    | { k: 'get'; i: number }
    | { k: 'borrow'; i: number }
    | { k: 'release'; n: number }
    | { k: 'delete'; i: number }
    | { k: 'clear' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('insert' as const), i: fc.nat(5), shared: fc.boolean() }),
    fc.record({ k: fc.constant('get' as const), i: fc.nat(5) }),
    fc.record({ k: fc.constant('borrow' as const), i: fc.nat(5) }),
    fc.record({ k: fc.constant('release' as const), n: fc.nat(20) }),
    fc.record({ k: fc.constant('delete' as const), i: fc.nat(5) }),
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
          const buf = cache.allocate(PIECE);
          assert.ok(!inUse().has(buf.buffer), 'allocate() returned memory that is still in use');
          if (o.shared) keptForever.add(buf.buffer);
          cache.insert(o.i, buf, o.shared);
          break;
        }
        case 'get': { const b = cache.get(o.i); if (b) keptForever.add(b.buffer); break; }
        case 'borrow': { const b = cache.borrow(o.i, 0, 16); if (b) borrowed.push(b); break; }
        case 'release': if (borrowed.length > 0) cache.release(borrowed.splice(o.n % borrowed.length, 1)[0]!); break;
        case 'delete': cache.delete(o.i); break;
        case 'clear': cache.clear(); break;
      }
      cache.check();
    }
  }), { seed: 20261201, numRuns: 300 });
});
