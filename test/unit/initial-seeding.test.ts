import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InitialSeeder, OFFER_SECONDS, type SeedingPeer } from '../../src/engine/initial-seeding.js';

class FakePeer implements SeedingPeer {
  readonly bits = new Set<number>();
  readonly told: number[] = [];
  rate = 0;
  has(i: number): boolean { return this.bits.has(i); }
  advertise(i: number): void { this.told.push(i); }
  uploadRate(): number { return this.rate; }
}

function seeded(): () => number {
  let s = 42;
  return () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
}

const PIECE = 1 << 18;

/** Upload every block of a piece to a peer, as the uploader would. */
function sendPiece(s: InitialSeeder, p: FakePeer, index: number): void {
  for (let off = 0; off < PIECE; off += 16384) s.blockSent(p, index, 16384);
  p.bits.add(index);
}

test('each peer is offered distinct pieces that no one else was offered', () => {
  const s = new InitialSeeder(100, PIECE, PIECE, seeded());
  const peers = [new FakePeer(), new FakePeer(), new FakePeer()];
  for (const p of peers) { s.addPeer(p); s.offer(p); }
  const all = peers.flatMap((p) => p.told);
  assert.equal(all.length, 6, 'two offers each at zero rate');
  assert.equal(new Set(all).size, 6, 'no piece offered twice');
});

test('a fully uploaded piece brings the next offer, and no piece is uploaded twice before all went out once', () => {
  const n = 40;
  const s = new InitialSeeder(n, PIECE, PIECE, seeded());
  const peers = [new FakePeer(), new FakePeer(), new FakePeer(), new FakePeer()];
  for (const p of peers) { s.addPeer(p); s.offer(p); }
  const uploads = new Map<number, number>();
  const cursor = new Map(peers.map((p) => [p, 0]));
  // Round-robin: each peer downloads the oldest piece it was told about and has not got.
  for (let round = 0; round < 200 && s.active; round++) {
    for (const p of peers) {
      const c = cursor.get(p)!;
      const next = p.told.slice(c).find((i) => !p.bits.has(i));
      if (next === undefined) continue;
      cursor.set(p, p.told.indexOf(next) + 1);
      if (s.active) uploads.set(next, (uploads.get(next) ?? 0) + 1);
      sendPiece(s, p, next);
    }
  }
  assert.equal(s.active, false, 'initial seeding ends once every piece went out');
  assert.equal(uploads.size, n);
  for (const [i, count] of uploads) assert.equal(count, 1, `piece ${i} uploaded ${count} times during initial seeding`);
  // After it ends, every peer knows about every piece.
  for (const p of peers) for (let i = 0; i < n; i++) assert.ok(p.told.includes(i) || p.bits.has(i), `peer not told about piece ${i}`);
});

test('offers follow the upload rate, so a fast lone downloader is not starved', () => {
  const s = new InitialSeeder(1000, PIECE, PIECE, seeded());
  const p = new FakePeer();
  p.rate = 400 * PIECE; // 400 pieces per second
  s.addPeer(p);
  s.offer(p);
  assert.equal(p.told.length, Math.ceil(400 * OFFER_SECONDS));
  assert.ok(p.told.length > 2);
});

test('a peer that gets an offered piece elsewhere is offered another; a peer that leaves releases its offers', () => {
  const s = new InitialSeeder(10, PIECE, PIECE, seeded());
  const a = new FakePeer();
  const b = new FakePeer();
  s.addPeer(a); s.offer(a);
  const first = a.told[0]!;
  a.bits.add(first);
  s.peerHas(a, first);
  assert.equal(a.told.length, 3);
  s.removePeer(a);
  s.addPeer(b); s.offer(b);
  // a's released offers are fresh again, so b may be offered them; nothing was sent, so all 10 are unsent.
  assert.equal(s.unsentCount, 10);
  assert.equal(b.told.length, 2);
});

test('a peer that completes an offered piece partly from others: the piece counts as sent and is offered to no one else', () => {
  const s = new InitialSeeder(10, PIECE, PIECE, seeded());
  const a = new FakePeer();
  const b = new FakePeer();
  s.addPeer(a); s.offer(a);
  const piece = a.told[0]!;
  s.blockSent(a, piece, 16384); // one block from us, the rest from other peers
  a.bits.add(piece);
  s.peerHas(a, piece);
  assert.equal(s.unsentCount, 9, 'in the swarm through our upload');
  assert.equal(a.told.length, 3, 'its offer slot went to another piece');
  s.addPeer(b); s.offer(b);
  assert.ok(!b.told.includes(piece), 'not offered again');
});

test('pieces a peer already has are never offered to it; its bitfield releases stale offers', () => {
  const s = new InitialSeeder(6, PIECE, PIECE, seeded());
  const p = new FakePeer();
  s.addPeer(p);
  s.offer(p);
  for (let i = 0; i < 6; i++) if (!p.told.includes(i)) p.bits.add(i);
  for (const i of p.told) p.bits.add(i);
  p.bits.delete(p.told[0]!);
  s.peerBitfield(p);
  assert.equal(new Set(p.told).size, p.told.length, 'never advertised twice');
});

test('the last, shorter piece counts as sent when its own length went out', () => {
  const s = new InitialSeeder(2, PIECE, 1000, seeded());
  const p = new FakePeer();
  s.addPeer(p); s.offer(p);
  s.blockSent(p, 1, 1000);
  assert.equal(s.unsentCount, 1);
  for (let off = 0; off < PIECE; off += 16384) s.blockSent(p, 0, 16384);
  assert.equal(s.active, false);
});

test('offers a peer does not want are taken back: on not-interested, and when stale', () => {
  const s = new InitialSeeder(20, PIECE, PIECE, seeded());
  const p = new FakePeer();
  s.addPeer(p); s.offer(p);
  assert.equal(p.told.length, 2);
  s.peerNotInterested(p);
  assert.equal(p.told.length, 4, 'two fresh offers after not-interested');
  // Nothing fetched for longer than the stale limit, and nothing queued: withdrawn and replaced.
  s.expireStale(Date.now() + 10_000, () => false);
  assert.equal(p.told.length, 6);
  // A queued request keeps its offer.
  s.expireStale(Date.now() + 20_000, () => true);
  assert.equal(p.told.length, 6);
  // A withdrawn offer is free for someone else.
  const q = new FakePeer();
  s.addPeer(q); s.offer(q);
  assert.ok(q.told.every((i) => !p.told.slice(4).includes(i)), 'current offers of p are not offered to q');
});

test('a piece whose only receiver left is offered again once no connected peer has had it for a while', () => {
  const s = new InitialSeeder(3, PIECE, PIECE, seeded());
  const a = new FakePeer();
  s.addPeer(a);
  s.offer(a);
  // A fetches one piece from us in full, then leaves before anyone else gets it.
  const first = a.told[0]!;
  sendPiece(s, a, first);
  s.removePeer(a);
  // B has every other piece (from elsewhere) and lacks only that one.
  const b = new FakePeer();
  for (let i = 0; i < 3; i++) if (i !== first) b.bits.add(i);
  s.addPeer(b);
  s.peerBitfield(b);
  assert.ok(!b.told.includes(first), 'before the check the lost piece is never offered');
  s.topUp();
  assert.ok(!b.told.includes(first), 'not yet: its receiver may still be hashing it');
  s.topUp(Date.now() + 60_000);
  assert.ok(b.told.includes(first), `the lost piece ${first} is offered again: told ${b.told.join(',')}`);
});

test('a request for a piece we did not offer (a streaming reader) counts as that peer\'s offer: sent once, offered to no one else', () => {
  const s = new InitialSeeder(10, PIECE, PIECE, seeded());
  const a = new FakePeer();
  s.addPeer(a);
  s.offer(a);
  const unoffered = [...Array(10).keys()].find((i) => !a.told.includes(i))!;
  s.requested(a, unoffered);
  assert.equal(s.advertisedTo(a, unoffered), true, 'never announced to it later');
  const b = new FakePeer();
  s.addPeer(b);
  s.offer(b);
  assert.ok(!b.told.includes(unoffered), 'while a fetches it, nobody else is offered it');
  const before = s.unsentCount;
  sendPiece(s, a, unoffered);
  assert.equal(s.unsentCount, before - 1, 'its upload counts as the piece going out');
  s.requested(a, 99);
  s.requested(a, -1);

  // An offer taken back (stale) and then requested anyway is accounted as before: not an offer again, and its
  // upload does not count as the piece going out (that would end initial seeding early).
  const c = new FakePeer();
  s.addPeer(c);
  s.offer(c);
  const stale = c.told[0]!;
  s.expireStale(Date.now() + 60_000, () => false);
  s.requested(c, stale);
  const unsent = s.unsentCount;
  sendPiece(s, c, stale);
  assert.equal(s.unsentCount, unsent, 'a taken-back offer fetched later is not counted as sent');
});
