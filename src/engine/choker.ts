import type { PeerKey } from './piece-picker.js';

/*
 * Choking: who may download from us. The torrent calls rechoke() every 10 s with a snapshot of its peers
 * and applies the returned unchoke set (everyone else is choked). Decisions are pure functions of that
 * snapshot, `now`, the injected random source and a little per-peer history kept here.
 *
 * Between rounds only free slots are filled (fillFree): when a peer becomes interested, or an unchoked one leaves or
 * loses interest, the best waiting candidate is unchoked if a slot is free, and nobody is choked. In a swarm interest
 * flips on every few haves; re-ranking on each flip (as this module's caller once did) choked and unchoked a
 * downloader's peers 200-450 times in a 50 s transfer instead of a few times per round, every choke throwing away
 * the requests that peer had queued with us.
 *
 * Leeching - tit-for-tat (BEP 3, mainline): the regular slots go to the interested peers that send us data
 * fastest (downloadRate), which rewards reciprocation and finds good partners. Ties (e.g. everyone at 0 at
 * start) prefer peers already unchoked, so the set does not flap, then random. Snubbed peers (unchoked
 * us, sent nothing for 60 s) get no regular slot: they are not reciprocating. One optimistic slot goes to a
 * random currently-choked interested peer and is kept for 30 s (every 3rd round) so it has time to prove
 * itself; peers connected in the last minute are 3x as likely to win it, since they have no rate history
 * and need pieces to trade at all. The optimistic peer is chosen first and the regular slots are filled
 * from the rest, so it cannot be lost to a rate ranking it has not had the time to climb.
 *
 * Seeding - "fastest upload with rotation" (cf. libtorrent's fastest_upload / round_robin seed choking):
 * nobody uploads to a seed, so the only signal is how fast *we* upload to each peer. Fast receivers make the
 * best use of our bandwidth and are likely to have capacity to re-share, so up to `slots - 1` slots go to
 * currently-unchoked peers by uploadRate. But a peer may hold a slot for at most `seedMaxRounds` consecutive
 * rounds when others are waiting; the remaining slots (at least one) go to the interested peers that have
 * waited longest since they were last unchoked. That queue discipline bounds starvation: with N interested
 * peers every one is unchoked within N rounds, so pieces spread across the whole swarm instead of only the
 * fastest few (which would then be the only sources, making the seed a bottleneck again).
 *
 * Auto slots ('auto'): start at `minSlots` regular slots and add one per round while the measured upload
 * to unchoked peers stays under 90% of `uploadCapacity` (the upload limit, or a measured ceiling) and
 * interested peers are still waiting; drop one when upload is saturated (>= 98%). With no known capacity,
 * the libtorrent rate-based rule is used: keep adding slots while the next peer's rate clears a threshold
 * that grows by 1 KiB/s per slot, i.e. only while an additional peer is still worth serving.
 */

export interface ChokerPeer {
  key: PeerKey;
  interested: boolean;
  /** bytes/s we receive from them */
  downloadRate: number;
  /** bytes/s we send them */
  uploadRate: number;
  isSeed: boolean;
  connectedAt: number;
  snubbed?: boolean;
  amChoking: boolean;
}

export interface ChokeDecision {
  unchoke: Set<PeerKey>;
  /** The optimistic unchoke (also in `unchoke`), if any. */
  optimistic: PeerKey | null;
}

export interface ChokerOptions {
  /** Regular (non-optimistic) slots, or 'auto'. Default 4. */
  uploadSlots?: number | 'auto';
  /** Default 1. */
  optimisticSlots?: number;
  random?: () => number;
  optimisticIntervalMs?: number;    // 30000
  newcomerWindowMs?: number;        // 60000: "newly connected" for the 3x optimistic weight
  newcomerWeight?: number;          // 3
  seedMaxRounds?: number;           // 3: consecutive rounds a seed-mode slot is held while others wait
  minSlots?: number;                // auto: 4
  maxSlots?: number;                // auto: 50
  /** Upload capacity in bytes/s for auto slots; 0 = unknown (see setUploadCapacity). */
  uploadCapacity?: number;
}

interface History { lastUnchokedRound: number; run: number }

export class Choker {
  private readonly random: () => number;
  private readonly auto: boolean;
  private slots: number;
  private readonly optimisticSlots: number;
  private readonly optimisticInterval: number;
  private readonly newcomerWindow: number;
  private readonly newcomerWeight: number;
  private readonly seedMaxRounds: number;
  private readonly minSlots: number;
  private readonly maxSlots: number;
  private capacity: number;
  private round = 0;
  private optimistic: PeerKey[] = [];
  private optimisticAt = -Infinity;
  private history = new WeakMap<PeerKey, History>();

  constructor(opts: ChokerOptions = {}) {
    this.random = opts.random ?? Math.random;
    this.auto = opts.uploadSlots === 'auto';
    this.minSlots = Math.max(1, opts.minSlots ?? 4);
    this.maxSlots = Math.max(this.minSlots, opts.maxSlots ?? 50);
    this.slots = opts.uploadSlots === 'auto' || opts.uploadSlots === undefined ? (this.auto ? this.minSlots : 4) : Math.max(0, opts.uploadSlots);
    this.optimisticSlots = Math.max(0, opts.optimisticSlots ?? 1);
    this.optimisticInterval = opts.optimisticIntervalMs ?? 30_000;
    this.newcomerWindow = opts.newcomerWindowMs ?? 60_000;
    this.newcomerWeight = opts.newcomerWeight ?? 3;
    this.seedMaxRounds = Math.max(1, opts.seedMaxRounds ?? 3);
    this.capacity = opts.uploadCapacity ?? 0;
  }

  /** Current number of regular slots (changes over time in 'auto' mode). */
  get regularSlots(): number { return this.slots; }
  setUploadCapacity(bytesPerSec: number): void { this.capacity = Math.max(0, bytesPerSec); }

  rechoke(peers: ChokerPeer[], seeding: boolean, now: number): ChokeDecision {
    this.round++;
    const candidates = peers.filter((p) => p.interested && !p.isSeed);
    if (this.auto) this.adjustSlots(peers, candidates, seeding);
    const unchoke = new Set<PeerKey>();
    let optimistic: PeerKey | null = null;
    if (seeding) this.seedChoke(candidates, unchoke);
    else optimistic = this.leechChoke(candidates, unchoke, now);
    for (const p of peers) {
      const h = this.hist(p.key);
      if (unchoke.has(p.key)) { h.run = p.amChoking ? 1 : h.run + 1; h.lastUnchokedRound = this.round; }
      else h.run = 0;
    }
    return { unchoke, optimistic };
  }

  /**
   * Between rounds: which choked, interested peers to unchoke into slots nobody interested holds (slots + optimistic
   * slots, less the interested peers already unchoked). The best candidates by this round's rules: leeching, the
   * fastest senders to us (snubbed ones never); seeding, those waiting longest. Chokes nobody and does not count as a
   * round, so the regular rounds keep their rhythm (optimistic rotation, the seed's maximum run, auto slots).
   */
  fillFree(peers: ChokerPeer[], seeding: boolean): Set<PeerKey> {
    const unchoke = new Set<PeerKey>();
    let held = 0;
    for (const p of peers) if (!p.amChoking && p.interested && !p.isSeed) held++;
    const free = this.slots + this.optimisticSlots - held;
    if (free <= 0) return unchoke;
    const waiting = peers.filter((p) => p.amChoking && p.interested && !p.isSeed && !(p.snubbed && !seeding));
    if (waiting.length === 0) return unchoke;
    const tie = this.tieBreakers(waiting);
    if (seeding) {
      waiting.sort((a, b) => this.hist(a.key).lastUnchokedRound - this.hist(b.key).lastUnchokedRound
        || a.connectedAt - b.connectedAt || tie.get(a)! - tie.get(b)!);
    } else {
      waiting.sort((a, b) => b.downloadRate - a.downloadRate || tie.get(a)! - tie.get(b)!);
    }
    for (const p of waiting.slice(0, free)) {
      unchoke.add(p.key);
      // Unchoked during this round: its run starts with the next one.
      const h = this.hist(p.key);
      h.lastUnchokedRound = this.round;
      h.run = 0;
    }
    return unchoke;
  }

  private leechChoke(candidates: ChokerPeer[], unchoke: Set<PeerKey>, now: number): PeerKey | null {
    const rotate = now - this.optimisticAt >= this.optimisticInterval;
    const keep = rotate ? [] : this.optimistic.filter((k) => candidates.some((p) => p.key === k));
    const want = Math.min(this.optimisticSlots, candidates.length);
    if (keep.length < want) {
      // Someone we are choking (the point is to try a new partner), not last round's optimistic peer;
      // relax both only when nobody else is left.
      const fresh = (p: ChokerPeer) => !keep.includes(p.key) && !this.optimistic.includes(p.key);
      let pool = candidates.filter((p) => p.amChoking && fresh(p));
      if (pool.length === 0) pool = candidates.filter(fresh);
      if (pool.length === 0) pool = candidates.filter((p) => !keep.includes(p.key));
      while (keep.length < want && pool.length > 0) {
        const i = this.weightedIndex(pool, now);
        keep.push(pool[i]!.key);
        pool.splice(i, 1);
      }
      // A replacement (for a peer that left or lost interest) gets a full interval too.
      this.optimisticAt = now;
    }
    this.optimistic = keep;
    for (const k of keep) unchoke.add(k);

    const ranked = candidates.filter((p) => !p.snubbed && !unchoke.has(p.key));
    const tie = this.tieBreakers(ranked);
    ranked.sort((a, b) => b.downloadRate - a.downloadRate || Number(a.amChoking) - Number(b.amChoking) || tie.get(a)! - tie.get(b)!);
    for (let i = 0; i < ranked.length && i < this.slots; i++) unchoke.add(ranked[i]!.key);
    return keep[0] ?? null;
  }

  private seedChoke(candidates: ChokerPeer[], unchoke: Set<PeerKey>): void {
    const total = this.slots + this.optimisticSlots;
    if (total === 0) return;
    if (candidates.length <= total) { for (const p of candidates) unchoke.add(p.key); return; }
    const speedSlots = Math.max(0, total - Math.max(1, this.optimisticSlots));
    const holding = candidates.filter((p) => !p.amChoking && this.hist(p.key).run < this.seedMaxRounds);
    holding.sort((a, b) => b.uploadRate - a.uploadRate);
    for (let i = 0; i < holding.length && i < speedSlots; i++) unchoke.add(holding[i]!.key);
    const waiting = candidates.filter((p) => !unchoke.has(p.key));
    const tie = this.tieBreakers(waiting);
    // Longest wait first (never unchoked = longest); among equals, the earlier connection, then random.
    waiting.sort((a, b) => this.hist(a.key).lastUnchokedRound - this.hist(b.key).lastUnchokedRound
      || a.connectedAt - b.connectedAt || tie.get(a)! - tie.get(b)!);
    for (let i = 0; i < waiting.length && unchoke.size < total; i++) unchoke.add(waiting[i]!.key);
  }

  private adjustSlots(peers: ChokerPeer[], candidates: ChokerPeer[], seeding: boolean): void {
    const waiting = candidates.length > this.slots + this.optimisticSlots;
    if (this.capacity > 0) {
      let used = 0;
      for (const p of peers) if (!p.amChoking) used += p.uploadRate;
      if (used < 0.9 * this.capacity && waiting) this.slots = Math.min(this.maxSlots, this.slots + 1);
      else if (used >= 0.98 * this.capacity) this.slots = Math.max(this.minSlots, this.slots - 1);
      return;
    }
    // Rate-based: count the peers (best first) whose rate clears a threshold rising 1 KiB/s per slot.
    const rates = candidates.map((p) => (seeding ? p.uploadRate : p.downloadRate)).sort((a, b) => b - a);
    let n = 0;
    while (n < rates.length && rates[n]! > 1024 * (n + 1)) n++;
    this.slots = Math.min(this.maxSlots, Math.max(this.minSlots, n));
  }

  private weightedIndex(pool: ChokerPeer[], now: number): number {
    let sum = 0;
    for (const p of pool) sum += now - p.connectedAt < this.newcomerWindow ? this.newcomerWeight : 1;
    let r = this.random() * sum;
    for (let i = 0; i < pool.length; i++) {
      r -= now - pool[i]!.connectedAt < this.newcomerWindow ? this.newcomerWeight : 1;
      if (r < 0) return i;
    }
    return pool.length - 1;
  }

  private tieBreakers(peers: ChokerPeer[]): Map<ChokerPeer, number> {
    const m = new Map<ChokerPeer, number>();
    for (const p of peers) m.set(p, this.random());
    return m;
  }

  private hist(key: PeerKey): History {
    let h = this.history.get(key);
    if (!h) this.history.set(key, (h = { lastUnchokedRound: -Infinity, run: 0 }));
    return h;
  }
}
