/** Piece hashing: inline while little is hashed, in worker threads once a transfer is fast; the same digests either way. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { hashWorkerCount, INLINE_BYTES_PER_SECOND, sha1Async, sha1Transfer } from '../../src/util/sha1.js';

const MiB = 1024 * 1024;
const reference = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');

test('a slow stream of pieces is hashed inline (no worker); a burst moves to a worker; digests are right both ways', async () => {
  assert.equal(hashWorkerCount(), 0);
  // Well inside one second's inline budget.
  const few = Math.floor(INLINE_BYTES_PER_SECOND / MiB / 4);
  for (let i = 0; i < few; i++) {
    const piece = Buffer.allocUnsafeSlow(MiB);
    randomBytes(MiB).copy(piece);
    const want = reference(piece);
    const r = await sha1Transfer(piece);
    assert.equal(r.digest.toString('hex'), want);
    assert.equal(r.data.length, MiB);
  }
  assert.equal(hashWorkerCount(), 0, 'a few MiB hashed inline start no worker');

  // Several seconds' worth at once: past the budget, pieces go to the pool, and come back intact.
  const burst = Array.from({ length: Math.ceil((3 * INLINE_BYTES_PER_SECOND) / MiB) }, (_, i) => {
    const b = Buffer.allocUnsafeSlow(MiB);
    b.fill(i & 0xff);
    return b;
  });
  const wants = burst.map(reference);
  const results = await Promise.all(burst.map((b) => sha1Transfer(b)));
  results.forEach((r, i) => {
    assert.equal(r.digest.toString('hex'), wants[i]);
    assert.equal(r.data[0], i & 0xff, 'the buffer comes back with its contents');
  });
  assert.ok(hashWorkerCount() >= 1, 'a burst starts a worker');

  // Larger than any inline hash may be: always a worker; sha1Async copies instead of moving.
  const big = randomBytes(8 * MiB);
  assert.equal((await sha1Async(big)).toString('hex'), reference(big));
  assert.equal(big.length, 8 * MiB, 'sha1Async leaves its input usable');
});
