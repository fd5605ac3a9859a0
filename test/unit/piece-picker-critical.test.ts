/** Deadline picking for streaming: a priority inside the pure picker, with its invariants checked after every step. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PiecePicker } from '../../src/engine/piece-picker.js';
import { Bitfield } from '../../src/util/bitfield.js';

const BS = 16384;

function picker(pieces: number, blocksPerPiece = 4, have: number[] = []): PiecePicker {
  const h = new Bitfield(pieces);
  for (const i of have) h.set(i);
  const w = new Bitfield(pieces);
  w.setAll();
  return new PiecePicker({ pieceCount: pieces, pieceLength: blocksPerPiece * BS, lastPieceLength: blocksPerPiece * BS, randomFirstPieces: 0 }, h, w);
}

function all(n: number): Bitfield {
  const b = new Bitfield(n);
  b.setAll();
  return b;
}

function pickOf(p: PiecePicker, peer: object, bits: Bitfield, max: number, critical = true): [number, number][] {
  const out: [number, number][] = [];
  p.pick(peer, bits, false, max, (i, begin) => out.push([i, begin]), undefined, critical);
  p.checkInvariants();
  return out;
}

test('critical pieces are requested before anything rarest-first would pick, in their order', () => {
  const p = picker(20);
  const bits = all(20);
  p.addPeerBitfield(bits);
  p.setCritical([7, 3, 12]);
  const got = pickOf(p, {}, bits, 12);
  assert.deepEqual([...new Set(got.map(([i]) => i))], [7, 3, 12]);
});

test('a slow peer (critical=false) is not given critical pieces; a fast one is', () => {
  const p = picker(10);
  const bits = all(10);
  p.addPeerBitfield(bits);
  // Piece 5 is the most common, so rarest-first alone never picks it first (random ties cannot make this pass).
  const only5 = new Bitfield(10);
  only5.set(5);
  p.addPeerBitfield(only5);
  p.setCritical([5]);
  const slow = pickOf(p, { slow: true }, bits, 4, false);
  assert.ok(slow.every(([i]) => i !== 5), `slow peer got ${JSON.stringify(slow)}`);
  const fast = pickOf(p, { fast: true }, bits, 4);
  assert.ok(fast.every(([i]) => i === 5));
});

test('an urgent piece gets duplicate requests from a second peer; a non-urgent one does not', () => {
  const p = picker(10, 4);
  const bits = all(10);
  p.addPeerBitfield(bits);
  p.addPeerBitfield(bits);
  const a = {}, b = {};
  p.setCritical([2, 4], 1);                 // piece 2 is urgent, 4 is not
  assert.equal(pickOf(p, a, bits, 8).length, 8); // a takes every block of 2 and 4
  const second = pickOf(p, b, bits, 8);
  const dup = second.filter(([i]) => i === 2);
  assert.equal(dup.length, 4, 'b duplicates each block of the urgent piece');
  assert.ok(second.every(([i]) => i !== 4), 'no duplicates of the non-urgent piece');
  // The same peer never asks twice for a block.
  assert.ok(pickOf(p, b, bits, 8).every(([i]) => i !== 2));
});

test('critical pieces leave the list when verified or unwanted; had pieces are never listed', () => {
  const p = picker(8, 1, [1]);
  p.setCritical([1, 2, 3]);
  assert.deepEqual(p.criticalPieces, [2, 3]);
  p.pieceVerified(2);
  assert.deepEqual(p.criticalPieces, [3]);
  p.setWanted(3, false);
  assert.deepEqual(p.criticalPieces, []);
  p.checkInvariants();
});

test('property: any mix of picks, receipts, cancels and critical lists keeps every invariant', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 3 })), { maxLength: 200 }), (ops) => {
    const n = 16;
    const p = picker(n, 2);
    const bits = all(n);
    const peers = [{}, {}, {}];
    for (let k = 0; k < peers.length; k++) p.addPeerBitfield(bits);
    const outstanding = new Map<object, [number, number][]>();
    for (const [op, x, y] of ops) {
      const peer = peers[y % peers.length]!;
      if (op === 0) p.setCritical([x, (x + 3) % n, (x + 7) % n], y % 3);
      else if (op === 1) {
        const got: [number, number][] = [];
        p.pick(peer, bits, false, 1 + (x % 4), (i, b) => got.push([i, b]), undefined, y !== 3);
        outstanding.set(peer, [...(outstanding.get(peer) ?? []), ...got]);
      } else if (op === 2) {
        const list = outstanding.get(peer) ?? [];
        const r = list.shift();
        if (r) {
          p.blockReceived(peer, r[0], r[1]);
          if (p.isPieceComplete(r[0])) p.pieceVerified(r[0]);
        }
      } else if (op === 3) {
        const list = outstanding.get(peer) ?? [];
        const r = list.pop();
        if (r) p.requestCancelled(peer, r[0], r[1]);
      } else {
        p.peerGone(peer);
        outstanding.delete(peer);
      }
      p.checkInvariants();
    }
  }), { seed: 20261201, numRuns: 300 });
});

/** What the downloader does for a peer while a reader is blocked (Downloader.preempt): cancel non-critical requests. */
function preempt(p: PiecePicker, peer: object, bits: Bitfield | null, outstanding: [number, number][]): [number, number][] {
  if (!p.servesUrgent(bits)) return outstanding;
  const kept: [number, number][] = [];
  for (const [i, begin] of outstanding) {
    if (p.isCritical(i)) kept.push([i, begin]);
    else p.requestCancelled(peer, i, begin);
  }
  p.checkInvariants();
  return kept;
}

test('a seek: the old window stops being critical, its requests are cancelled and their blocks freed, the new position goes out first', () => {
  const p = picker(40, 4);
  const bits = all(40);
  p.addPeerBitfield(bits);
  const peer = {};
  // Reading from the start: the window, then rarest-first fills the rest of the pipeline.
  p.setCritical([0, 1], 0);
  let out = pickOf(p, peer, bits, 16);
  assert.deepEqual([...new Set(out.slice(0, 8).map(([i]) => i))], [0, 1]);
  assert.equal(p.requestCount(peer), 16);
  p.blockReceived(peer, 0, 0);
  out = out.filter(([i, b]) => !(i === 0 && b === 0));
  // Seek to the middle: a reader now waits on piece a (urgent), with a + 1 as its window. Rarest-first picked its
  // fill at random: the seek goes to two pieces it did not touch, so every earlier request is one to cancel.
  const touched = new Set(out.map(([i]) => i));
  let a = 20;
  while (touched.has(a) || touched.has(a + 1)) a++;
  p.setCritical([a, a, a + 1], 1);
  assert.ok(p.servesUrgent(bits) && p.servesUrgent(null));
  out = preempt(p, peer, bits, out);
  assert.equal(out.length, 0, 'every request of the old position and of the rarest-first fill is cancelled');
  assert.equal(p.requestCount(peer), 0);
  assert.equal(p.pieceState(0), 'active', 'piece 0 keeps its received block');
  assert.equal(p.pieceState(1), 'queued', 'piece 1 had nothing received: back in the queue');
  // The peer is asked for the reader's pieces only, even with room in its pipeline.
  const next = pickOf(p, peer, bits, 32);
  assert.deepEqual(next.map(([i]) => i), [a, a, a, a, a + 1, a + 1, a + 1, a + 1]);
  // Once every block of the urgent piece is in, the peer is asked for other pieces again.
  for (const [i, b] of next.filter(([i]) => i === a)) p.blockReceived(peer, i, b);
  assert.equal(p.servesUrgent(bits), false);
  const after = pickOf(p, peer, bits, 8);
  assert.ok(after.some(([i]) => i !== a + 1), 'rarest-first again');
});

test('a peer without the urgent piece keeps its pipeline; the one with it is restricted', () => {
  const p = picker(10, 2);
  const full = all(10);
  const partial = new Bitfield(10);
  for (const i of [1, 2, 3]) partial.set(i);
  p.addPeerBitfield(full);
  p.addPeerBitfield(partial);
  const a = {}, b = {};
  p.setCritical([7], 1);
  assert.equal(p.servesUrgent(partial), false);
  assert.equal(p.servesUrgent(full), true);
  const fromB = pickOf(p, b, partial, 4);
  assert.equal(fromB.length, 4, 'b cannot help the reader and keeps downloading');
  assert.deepEqual(preempt(p, b, partial, fromB), fromB);
  assert.deepEqual(pickOf(p, a, full, 8).map(([i]) => i), [7, 7]);
});

test('an origin that serves unannounced pieces is asked for critical pieces only beyond what it announced', () => {
  const p = picker(10, 2);
  const announced = new Bitfield(10);
  for (const i of [1, 2]) announced.set(i);
  p.addPeerBitfield(announced);
  const origin = {};
  p.setCritical([8, 9], 1);
  const got: number[] = [];
  p.pick(origin, announced, false, 8, (i) => got.push(i), undefined, true, false);
  assert.deepEqual(got.sort(), [1, 1, 2, 2], 'without the flag: only what it announced (rarest-first, random ties), never 8 or 9');
  p.requestCancelled(origin, 1, 0); p.requestCancelled(origin, 1, BS); p.requestCancelled(origin, 2, 0); p.requestCancelled(origin, 2, BS);
  p.checkInvariants();
  got.length = 0;
  assert.equal(p.servesUrgent(null), true);
  p.pick(origin, announced, false, 8, (i) => got.push(i), undefined, true, true);
  assert.deepEqual(got, [8, 8, 9, 9], 'the reader\'s pieces; then nothing else while one is urgent');
  p.setCritical([], 0);
  got.length = 0;
  p.pick(origin, announced, false, 8, (i) => got.push(i), undefined, true, true);
  assert.deepEqual(got.sort(), [1, 1, 2, 2], 'no readers: only what it announced');
  // Nothing announced yet: still asked for a critical piece.
  const q = picker(4, 1);
  q.setCritical([3], 1);
  const fromEmpty: number[] = [];
  q.pick({}, new Bitfield(4), false, 4, (i) => fromEmpty.push(i), undefined, true, true);
  assert.deepEqual(fromEmpty, [3]);
  q.checkInvariants();
  p.checkInvariants();
});

test('choked (allowed fast) while streaming: only urgent pieces are requested', () => {
  const p = picker(10, 2);
  const bits = all(10);
  p.addPeerBitfield(bits);
  const peer = {};
  const fast = new Set([3, 5]);
  p.setCritical([0, 5], 0);
  const got: number[] = [];
  p.pick(peer, bits, false, 8, (i) => got.push(i), fast);
  assert.equal(got.length, 0, 'nothing while no reader is blocked: the unchoke will bring the readers\' pieces first');
  p.setCritical([5, 0], 1);
  p.pick(peer, bits, false, 8, (i) => got.push(i), fast);
  assert.deepEqual(got, [5, 5]);
  p.setCritical([], 0);
  assert.equal(p.streaming, false);
  p.pick(peer, bits, false, 8, (i) => got.push(i), fast);
  assert.deepEqual(got, [5, 5, 3, 3], 'no readers: allowed-fast pieces as before');
  p.checkInvariants();
});

test('streaming is what the stream manager says, also when every piece it needs is here', () => {
  const p = picker(4, 1, [0, 1]);
  p.setCritical([0, 1], 0, true);
  assert.deepEqual(p.criticalPieces, []);
  assert.equal(p.streaming, true);
  p.setCritical([2], 0);
  assert.equal(p.streaming, true);
  p.setCritical([], 0);
  assert.equal(p.streaming, false);
});

test('property: seeks with cancellation of non-critical requests keep every invariant', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 2 })), { maxLength: 150 }), (ops) => {
    const n = 24;
    const p = picker(n, 3);
    const bits = all(n);
    const peers = [{}, {}, {}];
    for (let k = 0; k < peers.length; k++) p.addPeerBitfield(bits);
    const outstanding = new Map<object, [number, number][]>();
    for (const [op, x, y] of ops) {
      const peer = peers[y]!;
      if (op === 0) p.setCritical([x, (x + 1) % n, (x + 2) % n], y === 0 ? 0 : 1);
      else if (op === 1) {
        const got: [number, number][] = [];
        p.pick(peer, bits, false, 1 + (x % 6), (i, b) => got.push([i, b]));
        outstanding.set(peer, [...(outstanding.get(peer) ?? []), ...got]);
      } else if (op === 2) {
        const r = (outstanding.get(peer) ?? []).shift();
        if (r) {
          p.blockReceived(peer, r[0], r[1]);
          if (p.isPieceComplete(r[0])) p.pieceVerified(r[0]);
        }
      } else if (op === 3) {
        outstanding.set(peer, preempt(p, peer, bits, outstanding.get(peer) ?? []));
      } else {
        p.peerGone(peer);
        outstanding.delete(peer);
      }
      p.checkInvariants();
      // While a reader waits on a piece these peers have, nothing non-critical is picked.
      if (p.servesUrgent(bits)) {
        const probe: number[] = [];
        const prober = {};
        p.pick(prober, bits, false, 100, (i) => probe.push(i));
        for (const i of probe) assert.ok(p.isCritical(i), `non-critical piece ${i} picked while a reader is blocked`);
        p.peerGone(prober);
      }
    }
  }), { seed: 20261202, numRuns: 300 });
});
