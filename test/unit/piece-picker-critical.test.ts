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
