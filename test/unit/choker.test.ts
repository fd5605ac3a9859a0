import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Choker, type ChokerPeer, type ChokeDecision } from '../../src/engine/choker.js';
import { mulberry32 } from '../helpers/random.js';


const HOUR = 3_600_000;

function mkPeer(i: number, over: Partial<ChokerPeer> = {}): ChokerPeer {
  return { key: { i }, interested: true, downloadRate: 0, uploadRate: 0, isSeed: false, connectedAt: -HOUR, amChoking: true, ...over };
}

/** What the torrent does with a decision: flip amChoking. */
function apply(peers: ChokerPeer[], d: ChokeDecision): void {
  for (const p of peers) p.amChoking = !d.unchoke.has(p.key);
}

function regular(d: ChokeDecision): Set<object> {
  const s = new Set(d.unchoke);
  if (d.optimistic) s.delete(d.optimistic);
  return s;
}

test('leeching: regular slots go to the fastest uploaders to us; the optimistic one to someone else', () => {
  const peers = Array.from({ length: 10 }, (_, i) => mkPeer(i, { downloadRate: (i + 1) * 1000 }));
  peers.push(mkPeer(10, { downloadRate: 1e9, interested: false }));   // fast but not interested
  peers.push(mkPeer(11, { downloadRate: 1e9, isSeed: true }));        // a seed needs nothing from us
  const c = new Choker({ random: mulberry32(1) });
  const d = c.rechoke(peers, false, 0);
  assert.equal(d.unchoke.size, 5);
  assert.ok(d.optimistic !== null && d.unchoke.has(d.optimistic));
  const ranked = peers.filter((p) => p.interested && !p.isSeed && p.key !== d.optimistic)
    .sort((a, b) => b.downloadRate - a.downloadRate).slice(0, 4).map((p) => p.key);
  assert.deepEqual(regular(d), new Set(ranked));
  assert.ok(!d.unchoke.has(peers[10]!.key) && !d.unchoke.has(peers[11]!.key));

  // Rates change: the ranking follows at the next round.
  apply(peers, d);
  peers[0]!.downloadRate = 50_000;
  const d2 = c.rechoke(peers, false, 10_000);
  assert.ok(regular(d2).has(peers[0]!.key));
});

test('leeching: configurable slots', () => {
  const peers = Array.from({ length: 10 }, (_, i) => mkPeer(i, { downloadRate: i }));
  const d = new Choker({ uploadSlots: 2, optimisticSlots: 2, random: mulberry32(2) }).rechoke(peers, false, 0);
  assert.equal(d.unchoke.size, 4);
  const none = new Choker({ uploadSlots: 0, optimisticSlots: 0 }).rechoke(peers, false, 0);
  assert.equal(none.unchoke.size, 0);
});

test('leeching: snubbed peers get no regular slot', () => {
  const peers = Array.from({ length: 6 }, (_, i) => mkPeer(i, { downloadRate: (i + 1) * 1000 }));
  peers[5]!.snubbed = true;
  peers[4]!.snubbed = true;
  const d = new Choker({ uploadSlots: 3, optimisticSlots: 0, random: mulberry32(3) }).rechoke(peers, false, 0);
  assert.deepEqual(d.unchoke, new Set([peers[3]!.key, peers[2]!.key, peers[1]!.key]));
});

test('leeching: the optimistic unchoke is kept for 3 rounds (30 s) and then rotates', () => {
  const peers = Array.from({ length: 8 }, (_, i) => mkPeer(i, { downloadRate: i < 4 ? 10_000 + i : 0 }));
  const c = new Choker({ random: mulberry32(4) });
  const seen: object[] = [];
  for (let round = 0; round < 12; round++) {
    const d = c.rechoke(peers, false, round * 10_000);
    apply(peers, d);
    assert.ok(d.optimistic);
    seen.push(d.optimistic);
  }
  for (let r = 0; r < 12; r++) {
    if (r % 3 === 0 && r > 0) assert.notEqual(seen[r], seen[r - 1], `rotation at round ${r}`);
    else if (r % 3 !== 0) assert.equal(seen[r], seen[r - 1], `kept at round ${r}`);
  }
  // Optimistic picks come from peers outside the top four.
  assert.ok(seen.every((k) => (k as { i: number }).i >= 4));
});

test('leeching: a departed or uninterested optimistic peer is replaced at once', () => {
  const peers = Array.from({ length: 8 }, (_, i) => mkPeer(i));
  const c = new Choker({ random: mulberry32(5) });
  const d = c.rechoke(peers, false, 0);
  apply(peers, d);
  const gone = peers.find((p) => p.key === d.optimistic)!;
  gone.interested = false;
  const d2 = c.rechoke(peers, false, 10_000);
  assert.ok(d2.optimistic && d2.optimistic !== gone.key);
  assert.equal(d2.unchoke.size, 5);
});

test('leeching: newly connected peers are about 3x as likely to be the optimistic unchoke', () => {
  const now = 10 * HOUR;
  const trials = 3000;
  let newcomerWins = 0;
  const rnd = mulberry32(6);
  for (let t = 0; t < trials; t++) {
    const peers = Array.from({ length: 10 }, (_, i) => mkPeer(i, { connectedAt: i === 0 ? now - 5_000 : now - HOUR }));
    const d = new Choker({ uploadSlots: 0, random: rnd }).rechoke(peers, false, now);
    if (d.optimistic === peers[0]!.key) newcomerWins++;
  }
  // Weight 3 vs nine peers of weight 1: p = 3/12 = 0.25 (uniform would be 0.10). ~24 sd apart.
  const p = newcomerWins / trials;
  assert.ok(p > 0.21 && p < 0.29, `newcomer won ${p}`);
});

test('seeding: every interested peer is unchoked within a bounded number of rounds', () => {
  const n = 14;
  const peers = Array.from({ length: n }, (_, i) => mkPeer(i, { uploadRate: (n - i) * 10_000, connectedAt: -HOUR + i }));
  peers.push(mkPeer(n, { interested: false }));
  const c = new Choker({ random: mulberry32(7) });
  const firstTurn = new Map<object, number>();
  const run = new Map<object, number>();
  const servedRounds = new Map<object, number>();
  for (let round = 0; round < 3 * n; round++) {
    const d = c.rechoke(peers, true, round * 10_000);
    assert.equal(d.unchoke.size, 5);
    assert.ok(!d.unchoke.has(peers[n]!.key));
    for (const p of peers.slice(0, n)) {
      if (d.unchoke.has(p.key)) {
        if (!firstTurn.has(p.key)) firstTurn.set(p.key, round);
        servedRounds.set(p.key, (servedRounds.get(p.key) ?? 0) + 1);
        run.set(p.key, (run.get(p.key) ?? 0) + 1);
        assert.ok(run.get(p.key)! <= 3, 'a slot held longer than 3 rounds while others wait');
      } else run.set(p.key, 0);
    }
    apply(peers, d);
  }
  assert.equal(firstTurn.size, n, 'someone never got a turn');
  assert.ok(Math.max(...firstTurn.values()) < n, `last first turn at round ${Math.max(...firstTurn.values())}`);
  // Nobody starves over time either, and the rotation is not a pure round-robin: speed still matters.
  const served = peers.slice(0, n).map((p) => servedRounds.get(p.key) ?? 0);
  assert.ok(Math.min(...served) >= 2, `served ${served}`);
});

test('seeding: with no more interested peers than slots, all are unchoked every round', () => {
  const peers = Array.from({ length: 4 }, (_, i) => mkPeer(i, { uploadRate: i }));
  const c = new Choker();
  for (let r = 0; r < 6; r++) {
    const d = c.rechoke(peers, true, r * 10_000);
    assert.equal(d.unchoke.size, 4);
    apply(peers, d);
  }
});

test('seeding: the fastest downloaders from us keep their slots until their run is up', () => {
  const peers = Array.from({ length: 10 }, (_, i) => mkPeer(i, { connectedAt: -HOUR + i }));
  const c = new Choker({ random: mulberry32(8) });
  const d1 = c.rechoke(peers, true, 0);
  apply(peers, d1);
  // Everyone unchoked now turns out fast or slow; the fast ones stay for the next round.
  const unchoked = peers.filter((p) => !p.amChoking);
  unchoked.forEach((p, k) => { p.uploadRate = k < 2 ? 1e6 : 10; });
  const d2 = c.rechoke(peers, true, 10_000);
  for (const p of unchoked.slice(0, 2)) assert.ok(d2.unchoke.has(p.key));
});

test('auto slots grow while upload capacity is unused and shrink when saturated', () => {
  const peers = Array.from({ length: 20 }, (_, i) => mkPeer(i, { downloadRate: 1000 }));
  const c = new Choker({ uploadSlots: 'auto', uploadCapacity: 1_000_000, random: mulberry32(9) });
  assert.equal(c.regularSlots, 4);
  for (let r = 0; r < 3; r++) {
    const d = c.rechoke(peers, false, r * 10_000);
    apply(peers, d);
    for (const p of peers) p.uploadRate = p.amChoking ? 0 : 10_000;   // far below capacity
  }
  assert.equal(c.regularSlots, 7);
  for (const p of peers) p.uploadRate = p.amChoking ? 0 : 500_000;   // saturated
  c.rechoke(peers, false, 30_000);
  assert.equal(c.regularSlots, 6);

  // Unknown capacity: as many slots as peers clear a threshold rising 1 KiB/s per slot.
  const rb = new Choker({ uploadSlots: 'auto', random: mulberry32(10) });
  const fast = Array.from({ length: 12 }, (_, i) => mkPeer(i, { downloadRate: 100_000 - i }));
  rb.rechoke(fast, false, 0);
  assert.equal(rb.regularSlots, 12);
  rb.rechoke(fast.map((p) => ({ ...p, downloadRate: 0 })), false, 10_000);
  assert.equal(rb.regularSlots, 4);
});


test('between rounds: free slots go to the fastest waiting peers, nobody is choked and no round passes', () => {
  const peers = Array.from({ length: 8 }, (_, i) => mkPeer(i, { downloadRate: (i + 1) * 1000 }));
  const c = new Choker({ uploadSlots: 3, optimisticSlots: 1, random: mulberry32(10) });
  const d = c.rechoke(peers, false, 0);
  apply(peers, d);
  assert.equal(d.unchoke.size, 4);
  // Nothing changed: all slots held, nothing to do, however the rates moved since.
  peers[0]!.downloadRate = 1e9;
  assert.equal(c.fillFree(peers, false).size, 0);
  // Two unchoked peers lose interest: their slots go to the two fastest choked, interested peers.
  const unchoked = peers.filter((p) => !p.amChoking && p.key !== d.optimistic);
  unchoked[0]!.interested = false;
  unchoked[1]!.interested = false;
  const waiting = peers.filter((p) => p.amChoking).sort((a, b) => b.downloadRate - a.downloadRate);
  const filled = c.fillFree(peers, false);
  assert.deepEqual(filled, new Set([waiting[0]!.key, waiting[1]!.key]));
  for (const p of peers) if (filled.has(p.key)) p.amChoking = false;
  // The peers that lost interest stay unchoked (they ask for nothing) until the round.
  assert.ok(!unchoked[0]!.amChoking && !unchoked[1]!.amChoking);
  const more = c.fillFree(peers, false);
  assert.equal(more.size, 0);
  // The optimistic peer chosen at round 1 is kept at the next round (30 s): fills did not count as rounds.
  const d2 = c.rechoke(peers, false, 10_000);
  assert.equal(d2.optimistic, d.optimistic ?? null);
});

test('between rounds, seeding: a freed slot goes to the peer waiting longest; its run starts with the next round', () => {
  const n = 8;
  const peers = Array.from({ length: n }, (_, i) => mkPeer(i, { connectedAt: -HOUR + i }));
  const c = new Choker({ uploadSlots: 1, optimisticSlots: 1, seedMaxRounds: 2, random: mulberry32(11) });
  const d1 = c.rechoke(peers, true, 0);
  apply(peers, d1);
  const d2 = c.rechoke(peers, true, 10_000);
  apply(peers, d2);
  // Someone unchoked leaves: the longest waiter (never unchoked, earliest connection) gets the slot.
  const leaving = peers.find((p) => !p.amChoking)!;
  const rest = peers.filter((p) => p !== leaving);
  const never = rest.filter((p) => p.amChoking && !d1.unchoke.has(p.key) && !d2.unchoke.has(p.key));
  const filled = c.fillFree(rest, true);
  assert.deepEqual(filled, new Set([never[0]!.key]));
  for (const p of rest) if (filled.has(p.key)) p.amChoking = false;
  // At the next round it is one of the holders: kept while it is among the fastest receivers, for seedMaxRounds.
  never[0]!.uploadRate = 1e6;
  const d3 = c.rechoke(rest, true, 20_000);
  assert.ok(d3.unchoke.has(never[0]!.key));
  apply(rest, d3);
  const d4 = c.rechoke(rest, true, 30_000);
  assert.ok(d4.unchoke.has(never[0]!.key));
  apply(rest, d4);
  // Two rounds held (seedMaxRounds): the slot goes to someone waiting, however fast it is.
  const d5 = c.rechoke(rest, true, 40_000);
  assert.ok(!d5.unchoke.has(never[0]!.key));
});

test('between rounds: a seed, an uninterested or (leeching) a snubbed peer never takes a slot; with no free slot nothing happens', () => {
  const peers = [mkPeer(0, { isSeed: true }), mkPeer(1, { interested: false }), mkPeer(2), mkPeer(4, { snubbed: true, downloadRate: 1e9 })];
  const c = new Choker({ uploadSlots: 1, optimisticSlots: 0 });
  // Seeding, nobody sends to us, so being snubbed means nothing: the longest waiter (earliest id here) is first.
  assert.equal(c.fillFree(peers, true).size, 1);
  assert.deepEqual(c.fillFree(peers, false), new Set([peers[2]!.key]));
  peers[2]!.amChoking = false;
  peers.push(mkPeer(3, { downloadRate: 1e9 }));
  assert.equal(c.fillFree(peers, false).size, 0);
});
