import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitfield } from '../../src/util/bitfield.js';
import { mulberry32 } from '../helpers/random.js';
import { PiecePicker, type PeerKey, type PickerOptions } from '../../src/engine/piece-picker.js';

const BS = 16384;


function bits(n: number, indices: Iterable<number> = []): Bitfield {
  const b = new Bitfield(n);
  for (const i of indices) b.set(i);
  return b;
}
function all(n: number): Bitfield { const b = new Bitfield(n); b.setAll(); return b; }
function range(a: number, b: number): number[] { const r: number[] = []; for (let i = a; i < b; i++) r.push(i); return r; }

interface Req { index: number; begin: number; length: number }

function make(n: number, blocksPerPiece: number, extra: Partial<PickerOptions> = {}, wanted = all(n), have = bits(n)): PiecePicker {
  const picker = new PiecePicker({
    pieceCount: n, pieceLength: blocksPerPiece * BS, lastPieceLength: blocksPerPiece * BS,
    randomFirstPieces: 0, random: mulberry32(1), ...extra,
  }, have, wanted);
  picker.checkInvariants();
  return picker;
}

function pick(p: PiecePicker, peer: PeerKey, peerBits: Bitfield | null, max: number, allowedFast?: ReadonlySet<number>): Req[] {
  const out: Req[] = [];
  const n = p.pick(peer, peerBits, peerBits === null, max, (index, begin, length) => out.push({ index, begin, length }), allowedFast);
  assert.equal(n, out.length);
  p.checkInvariants();
  return out;
}

function peer(name: string): PeerKey { return { name }; }

test('rarest-first: a seed gets pieces in increasing availability', () => {
  const avail = [5, 3, 8, 1, 0, 2, 7, 4, 6, 9];
  const p = make(10, 1);
  avail.forEach((a, i) => { for (let k = 0; k < a; k++) p.addPeerHave(i); });
  p.addHaveAll();   // a seed adds to every piece equally, so the order is unchanged
  const order = pick(p, peer('seed'), null, 10).map((r) => r.index);
  assert.deepEqual(order, [4, 3, 5, 1, 7, 0, 8, 6, 2, 9]);
  assert.equal(p.availability(4), 1);
});

test('rarest-first: a partial peer gets the rarest piece it has, via either scan strategy', () => {
  for (const n of [10, 400]) {   // 400: the peer has few pieces, so its own bitfield is walked instead of buckets
    const p = make(n, 1);
    const others = [bits(n, range(0, n)), bits(n, range(0, n)), bits(n, range(0, Math.floor(n / 2)))];
    for (const b of others) p.addPeerBitfield(b);
    const mine = bits(n, [1, 2, n - 3, n - 2]);
    p.addPeerBitfield(mine);
    p.addPeerHave(n - 2); p.addPeerHave(n - 2);   // n-2 becomes the most common of the four
    const got = pick(p, peer('x'), mine, 4).map((r) => r.index);
    assert.deepEqual(got.slice(0, 1), [n - 3], `n=${n}`);
    assert.deepEqual(new Set(got), new Set([1, 2, n - 3, n - 2]));
    assert.equal(got[3], n - 2);
  }
});

test('rarest-first: ties are broken randomly, not by lowest index', () => {
  const firsts = new Set<number>();
  for (let seed = 1; seed <= 30; seed++) {
    const p = make(20, 1, { random: mulberry32(seed) });
    p.addHaveAll();
    firsts.add(pick(p, peer('s'), null, 1)[0]!.index);
  }
  assert.ok(firsts.size >= 5, `only ${[...firsts]} picked first`);
});

test('random-first: random pieces until randomFirstPieces are had, then rarest-first', () => {
  const firsts = new Set<number>();
  for (let seed = 1; seed <= 20; seed++) {
    const p = make(50, 1, { random: mulberry32(seed), randomFirstPieces: 4 });
    p.addPeerBitfield(bits(50, [10]));   // piece 10 is the rarest (everything else has two holders)
    p.addHaveAll(); p.addHaveAll();
    for (let i = 0; i < 50; i++) if (i !== 10) { p.addPeerHave(i); p.addPeerHave(i); }
    firsts.add(pick(p, peer('s'), null, 1)[0]!.index);
  }
  assert.ok(firsts.size >= 8, `random-first should vary, got ${[...firsts]}`);

  const p = make(50, 1, { random: mulberry32(7), randomFirstPieces: 4 });
  for (let i = 0; i < 50; i++) if (i !== 10) p.addPeerHave(i);
  p.addHaveAll();
  const s = peer('s');
  for (const i of [20, 21, 22, 23]) p.pieceVerified(i);
  assert.equal(p.haveCount(), 4);
  assert.equal(pick(p, s, null, 1)[0]!.index, 10);
});

test('partial-piece preference: finish started pieces before starting rarer ones', () => {
  const p = make(4, 4);
  const a = peer('a'), b = peer('b');
  p.addHaveAll();
  for (const i of [0, 1, 3]) p.addPeerHave(i);   // piece 2 is the rarest
  const first = pick(p, a, null, 2);
  assert.deepEqual(first.map((r) => [r.index, r.begin]), [[2, 0], [2, BS]]);
  for (let k = 0; k < 3; k++) p.addPeerHave(2);   // now piece 2 is the most common
  const second = pick(p, b, null, 3);
  assert.deepEqual(second.map((r) => [r.index, r.begin]), [[2, 2 * BS], [2, 3 * BS], [0, 0]]
    .map(([i, x]) => (i === 0 ? [second[2]!.index, 0] : [i, x])));
  assert.notEqual(second[2]!.index, 2);
  assert.equal(p.pieceState(2), 'active');
});

test('partial preference only uses pieces the peer has', () => {
  const p = make(3, 4);
  const a = peer('a'), b = peer('b');
  p.addHaveAll();
  pick(p, a, null, 1);                             // starts some piece x
  const x = [0, 1, 2].find((i) => p.pieceState(i) === 'active')!;
  const bBits = bits(3, [0, 1, 2].filter((i) => i !== x));
  p.addPeerBitfield(bBits);
  const got = pick(p, b, bBits, 4);
  assert.equal(got.length, 4);
  assert.ok(got.every((r) => r.index !== x));
});

test('endgame: duplicates only once everything is requested, capped, never to the same peer', () => {
  const p = make(2, 2, { maxRequestersPerBlock: 2 });
  const [a, b, c] = [peer('a'), peer('b'), peer('c')];
  p.addHaveAll();
  assert.equal(pick(p, a, null, 3).length, 3);
  assert.equal(p.inEndgame, false);
  // One block is still free: b gets it, not a duplicate.
  const bFirst = pick(p, b, null, 1);
  assert.equal(bFirst.length, 1);
  assert.equal(p.inEndgame, true);
  // a already requested 3 blocks; it may only duplicate the one b holds.
  const aDup = pick(p, a, null, 10);
  assert.deepEqual(aDup, bFirst);
  // b may duplicate a's three; every block then has 2 requesters, the cap.
  const bDup = pick(p, b, null, 10);
  assert.equal(bDup.length, 3);
  assert.equal(pick(p, c, null, 10).length, 0);
  assert.equal(pick(p, a, null, 10).length, 0);
  // First copy wins; the duplicate requester is reported for cancelling; the late copy is refused.
  const blk = bDup[0]!;
  assert.equal(p.blockReceived(b, blk.index, blk.begin), true);
  assert.deepEqual(p.othersRequesting(blk.index, blk.begin, b), [a]);
  assert.equal(p.blockReceived(a, blk.index, blk.begin), false);
  assert.deepEqual(p.othersRequesting(blk.index, blk.begin, b), []);
  p.checkInvariants();
});

test('endgame: a higher cap spreads duplicates over the least-requested blocks first', () => {
  const p = make(1, 3, { maxRequestersPerBlock: 3 });
  const [a, b, c] = [peer('a'), peer('b'), peer('c')];
  p.addHaveAll();
  pick(p, a, null, 3);
  const b1 = pick(p, b, null, 1);
  const c1 = pick(p, c, null, 2);
  // c first takes the two blocks with a single requester, not b's already duplicated one.
  assert.ok(c1.every((r) => r.begin !== b1[0]!.begin));
  assert.equal(pick(p, c, null, 5).length, 1);
  assert.equal(pick(p, b, null, 5).length, 2);
  assert.equal(pick(p, peer('d'), null, 5).length, 0);
});

test('cancel and peer loss make blocks pickable again; an idle piece returns to the queue', () => {
  const p = make(2, 4);
  const [a, b] = [peer('a'), peer('b')];
  p.addHaveAll();
  const reqs = pick(p, a, null, 3);
  const idx = reqs[0]!.index;
  p.requestCancelled(a, idx, reqs[1]!.begin);
  p.checkInvariants();
  const again = pick(p, b, null, 2);   // the cancelled block, then the untouched fourth one
  assert.deepEqual(again.map((r) => [r.index, r.begin]), [[idx, reqs[1]!.begin], [idx, 3 * BS]]);
  p.peerGone(b);
  p.checkInvariants();
  assert.equal(p.blockReceived(b, idx, 3 * BS), false);   // released requests are not accepted
  assert.equal(p.blockReceived(a, idx, 0), true);
  p.peerGone(a);
  p.checkInvariants();
  assert.equal(p.pieceState(idx), 'active');               // it has a received block
  const c = pick(p, peer('c'), null, 10);
  assert.deepEqual(c.filter((r) => r.index === idx).map((r) => r.begin), [BS, 2 * BS, 3 * BS]);

  const q = make(1, 2);
  q.addHaveAll();
  const r = pick(q, a, null, 2);
  for (const x of r) q.requestCancelled(a, x.index, x.begin);
  assert.equal(q.pieceState(0), 'queued');
  q.requestCancelled(a, 0, 0);                              // double cancel is harmless
  q.checkInvariants();
});

test('hash failure resets the piece and names every contributor', () => {
  const p = make(2, 4);
  const [a, b, c] = [peer('a'), peer('b'), peer('c')];
  p.addHaveAll();
  const ra = pick(p, a, null, 2);
  const rb = pick(p, b, null, 2);
  const idx = ra[0]!.index;
  assert.ok(rb.every((r) => r.index === idx));
  assert.equal(p.blockReceived(c, idx, ra[0]!.begin), false);   // unrequested data is refused
  for (const r of ra) assert.equal(p.blockReceived(a, r.index, r.begin), true);
  assert.equal(p.isPieceComplete(idx), false);
  for (const r of rb) assert.equal(p.blockReceived(b, r.index, r.begin), true);
  assert.equal(p.isPieceComplete(idx), true);
  assert.equal(p.pieceState(idx), 'pending');
  assert.deepEqual(new Set(p.contributors(idx)), new Set([a, b]));
  p.checkInvariants();
  assert.equal(p.missingCount(), 2);
  const blamed = p.pieceFailed(idx);
  assert.deepEqual(new Set(blamed), new Set([a, b]));
  assert.equal(p.pieceState(idx), 'queued');
  assert.deepEqual(p.contributors(idx), []);
  assert.equal(p.missingCount(), 2);
  p.checkInvariants();
  const re = pick(p, c, null, 8);
  assert.equal(re.filter((r) => r.index === idx).length, 4);
  for (const r of re) p.blockReceived(c, r.index, r.begin);
  p.pieceVerified(idx);
  assert.equal(p.pieceState(idx), 'have');
  assert.equal(p.missingCount(), 1);
  assert.deepEqual(p.pieceFailed(idx), []);
  p.checkInvariants();
});

test('unwanted pieces are never picked; setWanted takes effect immediately', () => {
  const n = 8;
  const p = make(n, 2, {}, bits(n, [0, 2, 4, 6]));
  p.addHaveAll();
  assert.equal(p.missingCount(), 4);
  const got = pick(p, peer('a'), null, 100);
  assert.deepEqual([...new Set(got.map((r) => r.index))].sort(), [0, 2, 4, 6]);
  p.setWanted(1, true);
  assert.equal(p.missingCount(), 5);
  assert.deepEqual(pick(p, peer('b'), null, 2).map((r) => r.index), [1, 1]);

  // Deselecting an in-flight piece: no new requests for it, yet what arrives is still accepted.
  const q = make(3, 4);
  const [qa, qb] = [peer('a'), peer('b')];
  q.addHaveAll();
  const first = pick(q, qa, null, 5);   // one whole piece and the first block of a second
  const idx = first[4]!.index;
  q.setWanted(idx, false);
  q.checkInvariants();
  const third = pick(q, qa, null, 1)[0]!.index;   // another partly requested piece, so b starts with partial pieces
  assert.ok(third !== idx && q.pieceState(third) === 'active');
  const more = pick(q, qb, null, 100);
  assert.ok(more.length > 0 && more.every((r) => r.index !== idx));
  assert.equal(q.blockReceived(qb, idx, 0), false);
  assert.equal(q.blockReceived(qa, idx, 0), true);
  assert.equal(q.pieceState(idx), 'active');
  q.setWanted(idx, true);
  assert.deepEqual(pick(q, peer('c'), null, 3).map((r) => [r.index, r.begin]), [[idx, BS], [idx, 2 * BS], [idx, 3 * BS]]);
  q.checkInvariants();
});

test('allowed-fast: a choked peer is only asked for allowed pieces it has', () => {
  const n = 10;
  const p = make(n, 2);
  const theirs = bits(n, [1, 3, 5, 7]);
  p.addPeerBitfield(theirs);
  const a = peer('a');
  const allowed = new Set([3, 5, 8]);   // 8: allowed but they do not have it
  const got = pick(p, a, theirs, 100, allowed);
  assert.deepEqual([...new Set(got.map((r) => r.index))].sort(), [3, 5]);
  assert.equal(got.length, 4);
  assert.equal(pick(p, a, theirs, 100, allowed).length, 0);
  // Once unchoked (no set), the rest is fair game.
  assert.deepEqual([...new Set(pick(p, a, theirs, 100).map((r) => r.index))].sort(), [1, 7]);
});

test('last piece: short final block, and a last piece smaller than one block', () => {
  const p = new PiecePicker({ pieceCount: 3, pieceLength: 2 * BS, lastPieceLength: BS + 3616, random: mulberry32(3) }, bits(3), all(3));
  p.addHaveAll();
  const got = pick(p, peer('a'), null, 100).filter((r) => r.index === 2).sort((x, y) => x.begin - y.begin);
  assert.deepEqual(got, [{ index: 2, begin: 0, length: BS }, { index: 2, begin: BS, length: 3616 }]);
  assert.equal(p.blocksIn(0), 2);
  assert.equal(p.blockReceived(peer('a'), 2, 2 * BS), false);   // past the end
  assert.equal(p.blockReceived(peer('a'), 2, 100), false);      // misaligned

  const q = new PiecePicker({ pieceCount: 2, pieceLength: 3 * BS, lastPieceLength: 100 }, bits(2), all(2));
  q.addHaveAll();
  const last = pick(q, peer('a'), null, 100).filter((r) => r.index === 1);
  assert.deepEqual(last, [{ index: 1, begin: 0, length: 100 }]);
});

test('availability bookkeeping: have-all is a counter; bitfield removal restores order', () => {
  const n = 6;
  const p = make(n, 1);
  const x = bits(n, [0, 1, 2]);
  p.addPeerBitfield(x);
  p.addPeerBitfield(bits(n, [0, 1]));
  p.addPeerBitfield(bits(n, [0]));
  p.addHaveAll();
  assert.deepEqual(range(0, n).map((i) => p.availability(i)), [4, 3, 2, 1, 1, 1]);
  p.removePeerBitfield(x);
  p.removeHaveAll();
  p.removeHaveAll();   // unbalanced: stays at zero
  assert.deepEqual(range(0, n).map((i) => p.availability(i)), [2, 1, 0, 0, 0, 0]);
  p.checkInvariants();
  const has = bits(n, [0, 1, 5]);
  p.addPeerBitfield(has);
  assert.deepEqual(pick(p, peer('y'), has, 3).map((r) => r.index), [5, 1, 0]);
  assert.throws(() => p.addPeerBitfield(bits(n + 1)), RangeError);
});

test('pieces we already have are never requested and count as done', () => {
  const n = 5;
  const p = make(n, 1, {}, all(n), bits(n, [0, 1, 2]));
  p.addHaveAll();
  assert.equal(p.missingCount(), 2);
  assert.deepEqual(pick(p, peer('a'), null, 10).map((r) => r.index).sort(), [3, 4]);
  p.blockReceived(peer('a'), 3, 0);
  p.blockReceived(peer('a'), 4, 0);
  p.pieceVerified(3);
  p.pieceVerified(4);
  assert.equal(p.missingCount(), 0);
  assert.equal(p.inEndgame, false);
  assert.equal(pick(p, peer('b'), null, 10).length, 0);
});

// ---------------------------------------------------------------------------------------------------
// Property test: random operation sequences against a model of outstanding requests.

type Op =
  | { t: 'pick'; peer: number; max: number; fast: boolean }
  | { t: 'recv'; k: number; cancelOthers: boolean }
  | { t: 'recvUnrequested'; peer: number; piece: number; block: number }
  | { t: 'cancel'; k: number }
  | { t: 'gone'; peer: number }
  | { t: 'verify'; piece: number; ok: boolean }
  | { t: 'wanted'; piece: number; on: boolean }
  | { t: 'have'; peer: number; piece: number };

const PEERS = 4;
const opArb = (n: number): fc.Arbitrary<Op> => fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('pick' as const), peer: fc.nat(PEERS - 1), max: fc.integer({ min: 1, max: 6 }), fast: fc.boolean() }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('recv' as const), k: fc.nat(), cancelOthers: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('recvUnrequested' as const), peer: fc.nat(PEERS - 1), piece: fc.nat(n - 1), block: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('cancel' as const), k: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('gone' as const), peer: fc.nat(PEERS - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('verify' as const), piece: fc.nat(n - 1), ok: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('wanted' as const), piece: fc.nat(n - 1), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('have' as const), peer: fc.nat(PEERS - 1), piece: fc.nat(n - 1) }) },
);

const scenarioArb = fc.integer({ min: 1, max: 10 }).chain((n) => fc.record({
  n: fc.constant(n),
  blocksPerPiece: fc.integer({ min: 1, max: 4 }),
  lastBlocks: fc.integer({ min: 1, max: 4 }),
  lastTail: fc.integer({ min: 1, max: BS }),
  maxReq: fc.integer({ min: 1, max: 3 }),
  randomFirst: fc.integer({ min: 0, max: 3 }),
  seed: fc.integer(),
  peerBits: fc.array(fc.array(fc.boolean(), { minLength: n, maxLength: n }), { minLength: PEERS, maxLength: PEERS }),
  seeds: fc.array(fc.boolean(), { minLength: PEERS, maxLength: PEERS }),
  wanted: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
  have: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
  allowed: fc.uniqueArray(fc.nat(n - 1), { maxLength: 3 }),
  ops: fc.array(opArb(n), { maxLength: 150 }),
}));

test('property: random operation sequences keep every invariant', () => {
  fc.assert(fc.property(scenarioArb, (s) => {
    const lastBlocks = Math.min(s.lastBlocks, s.blocksPerPiece);
    const pieceLength = s.blocksPerPiece * BS;
    const lastPieceLength = (lastBlocks - 1) * BS + s.lastTail;
    const wanted = bits(s.n, range(0, s.n).filter((i) => s.wanted[i]));
    const have = bits(s.n, range(0, s.n).filter((i) => s.have[i]));
    const p = new PiecePicker({ pieceCount: s.n, pieceLength, lastPieceLength, randomFirstPieces: s.randomFirst,
      maxRequestersPerBlock: s.maxReq, random: mulberry32(s.seed) }, have, wanted);
    const peers = range(0, PEERS).map((i) => peer(`p${i}`));
    const pbits = s.peerBits.map((arr) => bits(s.n, range(0, s.n).filter((i) => arr[i])));
    for (let i = 0; i < PEERS; i++) { if (s.seeds[i]) p.addHaveAll(); else p.addPeerBitfield(pbits[i]!); }
    const allowed = new Set(s.allowed);
    const modelWanted = [...s.wanted];
    const modelHave = [...s.have];
    // Model: outstanding requests (peer, piece, begin) and received blocks "piece:begin".
    let outstanding: { peer: number; index: number; begin: number }[] = [];
    const received = new Set<string>();
    const isOut = (pi: number, index: number, begin: number) => outstanding.some((o) => o.peer === pi && o.index === index && o.begin === begin);
    const dropPiece = (index: number) => {
      // What the torrent does: cancel whatever is still in flight for a piece that is finished or reset.
      for (const o of outstanding) if (o.index === index) p.requestCancelled(peers[o.peer]!, o.index, o.begin);
      outstanding = outstanding.filter((o) => o.index !== index);
      for (const k of [...received]) if (k.startsWith(`${index}:`)) received.delete(k);
    };

    for (const op of s.ops) {
      switch (op.t) {
        case 'pick': {
          const pk = peers[op.peer]!;
          const seed = s.seeds[op.peer]!;
          const fast = op.fast ? allowed : undefined;
          const wasQueued = range(0, s.n).some((i) => p.pieceState(i) === 'queued' && (seed || pbits[op.peer]!.get(i)) && (!fast || fast.has(i)));
          let count = 0;
          const n = p.pick(pk, seed ? null : pbits[op.peer]!, seed, op.max, (index, begin, length) => {
            count++;
            assert.ok(modelWanted[index] && !modelHave[index], `picked unwanted/had piece ${index}`);
            assert.ok(seed || pbits[op.peer]!.get(index), 'picked a piece the peer lacks');
            assert.ok(!fast || fast.has(index), 'picked outside allowed-fast');
            assert.equal(begin % BS, 0);
            const last = index === s.n - 1;
            const size = last ? lastPieceLength : pieceLength;
            assert.equal(length, Math.min(BS, size - begin));
            assert.ok(length > 0);
            assert.ok(!isOut(op.peer, index, begin), 'same block requested twice from one peer');
            assert.ok(!received.has(`${index}:${begin}`), 'received block requested again');
            const others = outstanding.filter((o) => o.index === index && o.begin === begin).length;
            if (others > 0) assert.ok(p.inEndgame, 'duplicate request outside endgame');
            assert.ok(others < s.maxReq, 'duplicate cap exceeded');
            outstanding.push({ peer: op.peer, index, begin });
          }, fast);
          assert.equal(n, count);
          // Liveness: something startable for this peer means it gets at least one request.
          if (wasQueued) assert.ok(n >= 1, 'a pickable piece was not picked');
          break;
        }
        case 'recv': {
          if (outstanding.length === 0) break;
          const o = outstanding[op.k % outstanding.length]!;
          const first = !received.has(`${o.index}:${o.begin}`);
          assert.equal(p.blockReceived(peers[o.peer]!, o.index, o.begin), first);
          outstanding = outstanding.filter((x) => x !== o);
          if (first) {
            received.add(`${o.index}:${o.begin}`);
            const others = p.othersRequesting(o.index, o.begin, peers[o.peer]!);
            assert.equal(others.length, outstanding.filter((x) => x.index === o.index && x.begin === o.begin).length);
            if (op.cancelOthers) {
              for (const who of others) p.requestCancelled(who, o.index, o.begin);
              outstanding = outstanding.filter((x) => !(x.index === o.index && x.begin === o.begin));
            }
          }
          break;
        }
        case 'recvUnrequested': {
          const begin = op.block * BS;
          if (isOut(op.peer, op.piece, begin)) break;
          assert.equal(p.blockReceived(peers[op.peer]!, op.piece, begin), false);
          break;
        }
        case 'cancel': {
          if (outstanding.length === 0) break;
          const o = outstanding[op.k % outstanding.length]!;
          p.requestCancelled(peers[o.peer]!, o.index, o.begin);
          outstanding = outstanding.filter((x) => x !== o);
          break;
        }
        case 'gone': {
          p.peerGone(peers[op.peer]!);
          outstanding = outstanding.filter((o) => o.peer !== op.peer);
          break;
        }
        case 'verify': {
          if (!p.isPieceComplete(op.piece)) break;
          const blocks = p.blocksIn(op.piece);
          for (let b = 0; b < blocks; b++) assert.ok(received.has(`${op.piece}:${b * BS}`), 'complete piece with a missing block');
          if (op.ok) {
            p.pieceVerified(op.piece);
            modelHave[op.piece] = true;
          } else {
            const contributors = new Set(p.contributors(op.piece));
            assert.deepEqual(new Set(p.pieceFailed(op.piece)), contributors);
            assert.ok(contributors.size >= 1);
          }
          dropPiece(op.piece);
          break;
        }
        case 'wanted':
          p.setWanted(op.piece, op.on);
          modelWanted[op.piece] = op.on;
          break;
        case 'have':
          if (s.seeds[op.peer] || pbits[op.peer]!.get(op.piece)) break;
          pbits[op.peer]!.set(op.piece);
          p.addPeerHave(op.piece);
          break;
      }
      p.checkInvariants();
      assert.equal(p.missingCount(), range(0, s.n).filter((i) => modelWanted[i] && !modelHave[i]).length);
      for (const o of outstanding) {
        assert.ok(p.othersRequesting(o.index, o.begin, {}).includes(peers[o.peer]!), 'picker lost track of a request');
      }
      for (let k = 0; k < PEERS; k++) {
        assert.equal(p.requestCount(peers[k]!), outstanding.filter((o) => o.peer === k).length, 'per-peer request count');
      }
    }
  }), { numRuns: 300, seed: 0x5ea1 });
});

test('maxPiecesInFlight: no new piece while that many have requests out; a piece whose sender left does not count', () => {
  const n = 6;
  const p = make(n, 4, { maxPiecesInFlight: 2 });
  const [a, b, c] = [peer('a'), peer('b'), peer('c')];
  const bitsA = bits(n, [0]), bitsB = bits(n, [1]), bitsC = bits(n, [2, 3]);
  for (const x of [bitsA, bitsB, bitsC]) p.addPeerBitfield(x);
  // Each peer has only its own pieces, so each would start one: two pieces in flight, then the limit.
  assert.deepEqual(new Set(pick(p, a, bitsA, 4).map((r) => r.index)), new Set([0]));
  assert.deepEqual(new Set(pick(p, b, bitsB, 4).map((r) => r.index)), new Set([1]));
  assert.deepEqual(pick(p, c, bitsC, 4), []);
  // A piece done frees its place in flight.
  for (let k = 0; k < 4; k++) assert.ok(p.blockReceived(b, 1, k * BS));
  p.pieceVerified(1);
  assert.deepEqual(new Set(pick(p, c, bitsC, 4).map((r) => r.index)), new Set([2]));
  // a leaves after one of its blocks arrived: piece 0 stays in flight with nothing requested, and is not counted,
  // so c can still start a piece (with a plain count of pieces in flight, the download would stop here).
  assert.ok(p.blockReceived(a, 0, 0));
  p.peerGone(a);
  assert.equal(p.pieceState(0), 'active');
  assert.deepEqual(new Set(pick(p, c, bitsC, 4).map((r) => r.index)), new Set([3]));
});

test('maxPiecesInFlight: pieces a reader needs are started regardless', () => {
  const n = 4;
  const p = make(n, 2, { maxPiecesInFlight: 1 });
  const s = peer('seed');
  const first = new Set(pick(p, s, null, 2).map((r) => r.index));
  assert.equal(first.size, 1);
  assert.deepEqual(pick(p, s, null, 2), []);
  const needed = [0, 1, 2, 3].find((i) => !first.has(i))!;
  p.setCritical([needed]);
  assert.deepEqual(new Set(pick(p, s, null, 2).map((r) => r.index)), new Set([needed]));
});
