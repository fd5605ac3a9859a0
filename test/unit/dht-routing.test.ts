import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { commonPrefixBits, compareDistance, xorDistance, randomIdWithPrefix } from '../../src/dht/node-id.js';
import { RoutingTable, QUESTIONABLE_AFTER_MS } from '../../src/dht/routing-table.js';
import { mulberry32 } from '../helpers/random.js';

const idArb = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((u) => Buffer.from(u));

function seededId(rand: () => number): Buffer {
  return Buffer.from(Array.from({ length: 20 }, () => Math.floor(rand() * 256)));
}

test('XOR distance: symmetric, zero only to itself, comparison agrees with the byte-wise XOR order', () => {
  fc.assert(fc.property(idArb, idArb, idArb, (a, b, t) => {
    assert.deepEqual(xorDistance(a, b), xorDistance(b, a));
    assert.equal(xorDistance(a, a).equals(Buffer.alloc(20)), true);
    assert.equal(Math.sign(compareDistance(a, b, t)), Math.sign(Buffer.compare(xorDistance(a, t), xorDistance(b, t))));
    const cpl = commonPrefixBits(a, b);
    const d = xorDistance(a, b);
    if (cpl < 160) {
      assert.equal((d[cpl >> 3]! >> (7 - (cpl & 7))) & 1, 1);
      for (let i = 0; i < cpl; i++) assert.equal((d[i >> 3]! >> (7 - (i & 7))) & 1, 0);
    } else assert.ok(a.equals(b));
  }), { seed: 7, numRuns: 500 });
});

test('randomIdWithPrefix shares exactly (or at least) the asked number of leading bits', () => {
  fc.assert(fc.property(idArb, fc.integer({ min: 0, max: 159 }), (own, p) => {
    assert.equal(commonPrefixBits(randomIdWithPrefix(own, p, true), own), p);
    assert.ok(commonPrefixBits(randomIdWithPrefix(own, p, false), own) >= p);
  }), { seed: 8, numRuns: 500 });
});

test('buckets split around our own id: bucket i holds ids sharing i bits, at most k each, far buckets never split', () => {
  const rand = mulberry32(11);
  const own = seededId(rand);
  const t = new RoutingTable(own, 8);
  assert.equal(t.heard(own, '127.0.0.1', 1).result, 'rejected');
  const all: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    // Half random, half near our own id so the table splits deep.
    const id = i % 2 ? seededId(rand) : randomIdWithPrefix(own, Math.floor(rand() * 40), true);
    all.push(id);
    t.heard(id, `127.0.${(i >> 8) & 255}.${i & 255}`, 1000 + (i % 60000));
  }
  assert.ok(t.buckets.length > 20, `only ${t.buckets.length} buckets`);
  let total = 0;
  t.buckets.forEach((b, i) => {
    assert.ok(b.nodes.length <= 8);
    assert.ok(b.replacements.length <= 8);
    total += b.nodes.length;
    for (const n of b.nodes) {
      const cpl = commonPrefixBits(n.id, own);
      if (i < t.buckets.length - 1) assert.equal(cpl, i); else assert.ok(cpl >= i);
    }
  });
  assert.equal(total, t.size);
  // The far half of the id space (bucket 0) keeps k nodes however many we hear of.
  assert.equal(t.buckets[0]!.nodes.length, 8);
  // closest() matches a brute-force sort over the nodes kept, for targets far from and near to our id.
  for (let i = 0; i < 300; i++) {
    const target = i % 3 === 0 ? seededId(rand) : randomIdWithPrefix(own, Math.floor(rand() * 60), i % 2 === 0);
    const n = 1 + Math.floor(rand() * 40);
    const brute = t.all().sort((a, b) => compareDistance(a.id, b.id, target)).slice(0, n);
    assert.deepEqual(t.closest(target, n).map((x) => x.id.toString('hex')), brute.map((x) => x.id.toString('hex')));
  }
  for (const { index, target: r } of t.staleBuckets(0)) {
    const cpl = commonPrefixBits(r, own);
    if (index < t.buckets.length - 1) assert.equal(cpl, index); else assert.ok(cpl >= index);
  }
});

test('a full bucket keeps answering nodes; newcomers wait as replacements and a questionable node is probed, then evicted', () => {
  let now = 1_000_000;
  const own = Buffer.alloc(20, 0);
  const t = new RoutingTable(own, 8, () => now);
  // Ids with the top bit set all land in bucket 0, which can never split (our id is not in it).
  const far = (i: number) => { const id = Buffer.alloc(20, i); id[0] = 0x80 | i; return id; };
  const farBucket = () => t.buckets[0]!;
  // Fill the near side first so that bucket 0 is a far, non-splittable bucket.
  t.heard(Buffer.alloc(20, 1), '127.0.0.1', 1);
  for (let i = 0; i < 8; i++) assert.equal(t.heard(far(i), '127.0.1.1', 2000 + i).result, 'added');
  assert.ok(t.buckets.length >= 1);
  const newcomer = far(20);
  let r = t.heard(newcomer, '127.0.1.1', 3000);
  assert.equal(r.result, 'replacement');
  assert.equal(r.result === 'replacement' && r.probe, undefined, 'all members are good: nobody to probe');
  assert.equal(t.get(newcomer), undefined);
  // Time passes: members become questionable; the next newcomer gets the oldest probed.
  now += QUESTIONABLE_AFTER_MS + 1;
  t.heard(far(1), '127.0.1.1', 2001); // far(1) answered again: good
  r = t.heard(far(21), '127.0.1.1', 3001);
  assert.equal(r.result, 'replacement');
  const probe = r.result === 'replacement' ? r.probe : undefined;
  assert.ok(probe && !probe.id.equals(far(1)));
  // The probe stays silent: it is evicted and the newest replacement takes its place.
  t.failed(probe.id, true);
  assert.equal(t.get(probe.id), undefined);
  assert.ok(t.get(far(21)));
  assert.equal(farBucket().nodes.length, 8);
  // Bad nodes (failed twice) are replaced directly by the next node that answers.
  const victim = farBucket().nodes.find((n) => !n.id.equals(far(21)))!;
  t.failed(victim.id);
  assert.ok(t.get(victim.id), 'one failure does not make a node bad when nobody waits');
  farBucket().replacements.length = 0;
  t.failed(victim.id);
  assert.equal(t.heard(far(30), '127.0.1.1', 3030).result, 'added');
  assert.equal(t.get(victim.id), undefined);
});

test('an address that answers with a new id does not push out a live node; a silent one is replaced', () => {
  let now = 0;
  const t = new RoutingTable(Buffer.alloc(20, 0), 8, () => now);
  const a = Buffer.alloc(20, 0xaa), b = Buffer.alloc(20, 0xbb);
  t.heard(a, '127.0.0.5', 5);
  assert.equal(t.heard(b, '127.0.0.5', 5).result, 'rejected');
  assert.equal(t.heard(a, '127.0.0.6', 6).result, 'rejected', 'same id from another address');
  now += QUESTIONABLE_AFTER_MS;
  assert.equal(t.heard(b, '127.0.0.5', 5).result, 'added');
  assert.equal(t.get(a), undefined);
  assert.equal(t.size, 1);
});
