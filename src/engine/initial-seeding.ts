/**
 * Initial seeding, in the spirit of BEP 16 (super-seeding).
 *
 * Why: when one origin serves many downloaders, the origin's upload is the floor on the whole fleet's finish time
 * (Kumar–Ross: T ≥ F/u_s). Every piece the origin sends twice before every piece has gone out once costs that time
 * directly. Rarest-first at the downloaders does not prevent it: two downloaders that pick the same piece at the
 * same moment both fetch it from the origin.
 *
 * How: while some piece has never been uploaded, the origin does not advertise a full bitfield. It tells each peer
 * (with HAVE messages) about a few pieces only, choosing pieces that have not been sent or offered to anyone yet,
 * and offers the next one as soon as a piece has been fully uploaded to that peer (or the peer got it elsewhere).
 * The number of outstanding offers per peer follows the upload rate to it, so a fast lone downloader is never
 * starved. Once every piece has been uploaded at least once, the origin advertises everything and behaves like an
 * ordinary seed. This works with every client: they only see a peer that announces pieces one by one.
 *
 * Streaming: a reader blocked on a piece cannot wait for it to be offered, so our extended handshake says we serve
 * any piece (`shoal_initial_seeding`); a Shoal peer then asks for the pieces its readers need, and such a request
 * makes the piece one of that peer's offers. Other clients only ever ask for what we announced.
 *
 * Invariant: a piece is "offered" to a peer from the HAVE we send (or its unannounced request) until the peer has all
 * its bytes from us or has it from elsewhere; `offered[i]` counts those peers; `sent[i]` counts complete uploads of
 * piece i.
 */
export interface SeedingPeer {
  /** Pieces the peer has (from its bitfield and HAVEs). */
  has(index: number): boolean;
  /** Tell the peer we have this piece (sends HAVE). */
  advertise(index: number): void;
  /** Bytes per second we upload to it, to size its offers. */
  uploadRate(): number;
}

interface PeerOffers {
  /** Offered piece → bytes of it uploaded to the peer so far. */
  offered: Map<number, number>;
  /** Offered piece → when it was offered, to notice offers the peer does not want. */
  offeredAt: Map<number, number>;
  /** Every piece we told this peer about, so a piece is never advertised twice. */
  advertised: Set<number>;
}

const MIN_OFFERS = 2;
/**
 * An offer the peer has not started to fetch after this long is taken back (the peer may not want it, e.g. it
 * selected other files); it stays advertised, but no longer holds the peer's offer budget or the piece.
 */
export const STALE_OFFER_MS = 5000;
/** A piece uploaded this long ago that no connected peer has left the swarm with its receiver (time to hash and announce). */
export const LOST_AFTER_MS = 10_000;
/** Seconds of upload to a peer that its outstanding offers should cover. */
export const OFFER_SECONDS = 0.25;

export class InitialSeeder {
  private readonly pieceCount: number;
  private readonly pieceLength: number;
  private readonly lastPieceLength: number;
  private readonly sent: Uint16Array;
  private readonly offeredCount: Uint16Array;
  /** When each piece last finished uploading (ms): a peer announces it only after hashing it. */
  private readonly sentAt: Float64Array;
  /** Pieces never uploaded, in random order; consumed from the front. */
  private readonly queue: number[];
  private unsent: number;
  private readonly peers = new Map<SeedingPeer, PeerOffers>();
  private activeFlag: boolean;

  constructor(pieceCount: number, pieceLength: number, lastPieceLength: number, random: () => number = Math.random) {
    this.pieceCount = pieceCount;
    this.pieceLength = pieceLength;
    this.lastPieceLength = lastPieceLength;
    this.sent = new Uint16Array(pieceCount);
    this.offeredCount = new Uint16Array(pieceCount);
    this.sentAt = new Float64Array(pieceCount);
    this.queue = Array.from({ length: pieceCount }, (_, i) => i);
    for (let i = pieceCount - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [this.queue[i], this.queue[j]] = [this.queue[j]!, this.queue[i]!];
    }
    this.unsent = pieceCount;
    this.activeFlag = pieceCount > 1;
  }

  /** False once every piece has been uploaded at least once: from then on, seed normally. */
  get active(): boolean {
    return this.activeFlag;
  }

  /** Pieces never uploaded in full to anyone. */
  get unsentCount(): number {
    return this.unsent;
  }

  addPeer(peer: SeedingPeer): void {
    if (!this.activeFlag || this.peers.has(peer)) return;
    this.peers.set(peer, { offered: new Map(), offeredAt: new Map(), advertised: new Set() });
  }

  /** Top up a peer's offers (after it connected, sent its bitfield, or finished an offered piece). */
  offer(peer: SeedingPeer, allowShared = true): void {
    const st = this.peers.get(peer);
    if (!st || !this.activeFlag) return;
    const want = Math.max(MIN_OFFERS, Math.ceil((peer.uploadRate() * OFFER_SECONDS) / this.pieceLength));
    while (st.offered.size < want) {
      const index = this.choose(peer, st, allowShared);
      if (index < 0) return;
      st.offered.set(index, 0);
      st.offeredAt.set(index, Date.now());
      st.advertised.add(index);
      this.offeredCount[index]!++;
      peer.advertise(index);
    }
  }

  /**
   * The piece to offer next: never sent and never offered, else (when `allowShared`) never sent but offered to a slow
   * peer that holds it, else none.
   */
  private choose(peer: SeedingPeer, st: PeerOffers, allowShared: boolean): number {
    const q = this.queue;
    while (q.length > 0 && this.sent[q[0]!]! > 0) q.shift();
    let fallback = -1;
    for (let k = 0; k < q.length; k++) {
      const i = q[k]!;
      if (this.sent[i]! > 0 || st.advertised.has(i) || peer.has(i)) continue;
      if (this.offeredCount[i] === 0) return i;
      if (fallback < 0) fallback = i;
    }
    return allowShared ? fallback : -1;
  }

  /**
   * The peer asked for a piece we did not offer it (a streaming reader needs it now; we say in our extended handshake
   * that we serve any piece). It becomes one of the peer's offers, so the upload counts as the piece going out and it
   * is not offered to anyone else meanwhile.
   */
  requested(peer: SeedingPeer, index: number): void {
    const st = this.peers.get(peer);
    // A piece we announced (offered now, or an offer taken back) is accounted as before: counting uploads of
    // taken-back offers as sent ends initial seeding early (1.63 origin copies instead of 1.24 in the 16-host swarm).
    if (!st || st.advertised.has(index) || index < 0 || index >= this.pieceCount) return;
    st.offered.set(index, 0);
    st.offeredAt.set(index, Date.now());
    st.advertised.add(index);
    this.offeredCount[index]!++;
  }

  /** We uploaded a block of `index` to the peer. */
  blockSent(peer: SeedingPeer, index: number, length: number): void {
    const st = this.peers.get(peer);
    if (!st) return;
    const sofar = st.offered.get(index);
    if (sofar === undefined) return;
    const total = sofar + length;
    const size = index === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength;
    if (total < size) {
      st.offered.set(index, total);
      return;
    }
    this.markSent(st, index);
    if (this.activeFlag) this.offer(peer);
  }

  /** The offer of `index` to this peer is fulfilled: one more copy of it has left the origin. */
  private markSent(st: PeerOffers, index: number): void {
    this.withdraw(st, index);
    this.sentAt[index] = Date.now();
    if (this.sent[index]!++ === 0) this.unsent--;
    if (this.unsent === 0) this.finish();
  }

  /** The peer's bitfield (or have-all) arrived: drop offers of pieces it already has, then top up. */
  peerBitfield(peer: SeedingPeer): void {
    const st = this.peers.get(peer);
    if (!st) return;
    for (const i of [...st.offered.keys()]) if (peer.has(i)) this.withdraw(st, i);
    this.offer(peer);
  }

  /**
   * The peer announced a piece we had offered it. Untouched, it got the piece elsewhere: offer another. Partly
   * uploaded, it took the rest from other peers: the piece is in the swarm through our upload, so it counts as sent.
   * Withdrawing it unsent would offer it to someone else, and the origin would send it again. (Most clients announce
   * every piece they get; Shoal's own downloaders skip haves for pieces the origin announced to them.)
   */
  peerHas(peer: SeedingPeer, index: number): void {
    const st = this.peers.get(peer);
    if (!st) return;
    const bytes = st.offered.get(index);
    if (bytes === undefined) return;
    if (bytes > 0) {
      this.markSent(st, index);
      if (!this.activeFlag) return;
    } else {
      this.withdraw(st, index);
    }
    this.offer(peer);
  }

  /** The peer said it is not interested: none of its untouched offers are wanted; offer others. */
  peerNotInterested(peer: SeedingPeer): void {
    const st = this.peers.get(peer);
    if (!st) return;
    let changed = false;
    for (const [i, bytes] of [...st.offered]) {
      if (bytes === 0) { this.withdraw(st, i); changed = true; }
    }
    if (changed) this.offer(peer);
  }

  /** Take back offers nobody started to fetch for STALE_OFFER_MS (unless a request for them is queued). */
  expireStale(now: number, isQueued: (peer: SeedingPeer, index: number) => boolean): void {
    for (const [peer, st] of this.peers) {
      let changed = false;
      for (const [i, bytes] of [...st.offered]) {
        if (bytes === 0 && now - st.offeredAt.get(i)! >= STALE_OFFER_MS && !isQueued(peer, i)) {
          this.withdraw(st, i);
          changed = true;
        }
      }
      if (changed) this.offer(peer);
    }
  }

  /**
   * Once a second: a piece we uploaded that no connected peer has had for LOST_AFTER_MS, and that nobody is fetching,
   * left with the peer that got it: it becomes unsent again and is offered anew. Then offer to every peer below its
   * budget. Without these, a downloader that lacks only such a piece waits for an event that never comes, and the swarm
   * stalls on its last piece.
   *
   * Pieces that peers hold are deliberately *not* counted as sent here: that would end initial seeding early, and
   * advertising everything at once made the origin send 1.4 copies instead of 1.2 in the 16-host swarm benchmark.
   */
  topUp(now = Date.now()): void {
    if (!this.activeFlag) return;
    const peers = [...this.peers.keys()];
    if (peers.length > 0) {
      for (let i = 0; i < this.pieceCount; i++) {
        if (this.sent[i] === 0 || this.offeredCount[i] !== 0 || now - this.sentAt[i]! < LOST_AFTER_MS) continue;
        if (peers.some((p) => p.has(i))) continue;
        this.sent[i] = 0;
        this.unsent++;
        this.queue.push(i);
        for (const st of this.peers.values()) st.advertised.delete(i);
      }
    }
    // Only pieces nobody holds an offer for: sharing an offer here, every second, would have two peers pull the same
    // piece from the origin (the event-driven offers still fall back to shared pieces when nothing else is left).
    for (const [peer, st] of this.peers) if (st.offered.size < MIN_OFFERS) this.offer(peer, false);
  }

  private withdraw(st: PeerOffers, index: number): void {
    if (!st.offered.delete(index)) return;
    st.offeredAt.delete(index);
    this.offeredCount[index]!--;
  }

  removePeer(peer: SeedingPeer): void {
    const st = this.peers.get(peer);
    if (!st) return;
    for (const i of st.offered.keys()) this.offeredCount[i]!--;
    this.peers.delete(peer);
  }

  /** Has this peer been told about the piece (so a request for it is expected)? */
  advertisedTo(peer: SeedingPeer, index: number): boolean {
    return this.peers.get(peer)?.advertised.has(index) ?? false;
  }

  /** Every piece has gone out once: advertise the rest to everyone and stop. */
  private finish(): void {
    this.activeFlag = false;
    for (const [peer, st] of this.peers) {
      for (let i = 0; i < this.pieceCount; i++) if (!st.advertised.has(i) && !peer.has(i)) peer.advertise(i);
    }
    this.peers.clear();
  }

  /** Stop early (e.g. the torrent is closing, or the user turned it off): advertise everything. */
  stop(): void {
    if (this.activeFlag) this.finish();
  }
}
