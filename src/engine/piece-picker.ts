import type { Bitfield } from '../util/bitfield.js';

/*
 * Piece picker: decides which 16 KiB blocks to request from which peer.
 *
 * STATE INVARIANTS (checked by checkInvariants(), exercised by a property test):
 *
 *  1. Every piece is in exactly one state:
 *       HAVE     - verified; `have` bit set. Never requested again.
 *       QUEUED   - not started: wanted, not had, no block requested or received. Lives in exactly one
 *                  availability bucket (buckets[avail[i]]), and only QUEUED pieces live in buckets.
 *       ACTIVE   - in flight: at least one block requested or received, not all received. Has a Piece
 *                  record in `pieces` and is in `active`.
 *       PENDING  - every block received, waiting for the caller to hash it (pieceVerified/pieceFailed).
 *                  Has a Piece record, not in `active`.
 *       NONE     - unwanted and not had: in no structure.
 *  2. A wanted piece that we do not have is QUEUED, ACTIVE or PENDING. An unwanted piece we do not have is
 *     NONE, or ACTIVE/PENDING left over from before it was deselected: those keep their received blocks
 *     (in case it is selected again) but never get a new request.
 *  3. Per block of an ACTIVE/PENDING piece: FREE (no requester), REQUESTED (>= 1 requester, not received)
 *     or RECEIVED (`from` = the peer whose copy we accepted). Outside endgame (and urgent streaming pieces, see 6)
 *     a block has at most one requester; otherwise at most `maxRequestersPerBlock`, never the same peer twice. A RECEIVED block may
 *     keep requesters: endgame duplicates still in flight, until cancelled or they arrive.
 *  4. An ACTIVE piece whose blocks all become FREE again (every request cancelled, nothing received) goes
 *     back to QUEUED, so "in flight" always means some progress or some request exists.
 *  5. Counters `queued`, `missing` (wanted && !have) and `freeWanted` (FREE blocks of wanted ACTIVE pieces)
 *     always match the structures; endgame is exactly `missing > 0 && queued == 0 && freeWanted == 0`.
 *  6. Streaming adds a priority, not a second picker: `critical` lists pieces a reader needs next, most urgent
 *     first. Every entry is a wanted piece we do not have, and appears once (`criticalSet` mirrors it); a piece
 *     leaves the list when verified or unwanted. The first `urgent` entries are pieces a reader is blocked on: their
 *     blocks may have up to `maxRequestersPerBlock` requesters outside endgame (duplicate requests to beat a
 *     deadline), never the same peer twice. `urgentSet` is a subset of `criticalSet`.
 *     Policy on top (not state): while an urgent piece is still to be fetched (QUEUED or ACTIVE) from a peer that has
 *     it (`servesUrgent`), `pick` gives that peer critical pieces only, and the caller cancels the peer's requests for
 *     pieces that are not critical (`isCritical`; requestCancelled frees them), so a seek is not served after the
 *     old position's pieces.
 *     While the list is non-empty, a choked peer is asked (allowed fast) only for urgent pieces: anything else would
 *     hold the link when the unchoke comes.
 *
 * Availability: avail[i] counts peers that announced piece i via bitfield/have; peers with have-all (and
 * seeds the caller reports as such) are only a counter, since they add the same amount to every piece and
 * so never change the rarest-first order. QUEUED pieces are bucketed by avail so rarest-first walks
 * buckets upward and a have/bitfield update moves a piece between buckets in O(1) (swap-remove + push).
 * For a peer that is not a seed, bucket 0 is skipped: the peer's own announcement would have lifted any
 * piece it has to >= 1 (so callers must report every peer's bitfield/haves, or call it a seed).
 */

/** Above any availability (a count of peers): a small integer, so comparisons with counts stay integer compares. */
const NO_AVAILABILITY_YET = 0x3fffffff;

export type PeerKey = object;

export interface PickerOptions {
  pieceCount: number;
  pieceLength: number;
  lastPieceLength: number;
  blockSize?: number;
  /** Pick random pieces until we have this many, so a new peer quickly has something to trade. */
  randomFirstPieces?: number;
  random?: () => number;
  /** Endgame: at most this many peers request the same block (>= 1; default 2). */
  maxRequestersPerBlock?: number;
  /**
   * No new piece is started while this many ACTIVE pieces have requests out (>= 1; default: no limit). Each piece in
   * flight holds a piece-sized buffer, so this bounds a downloader's memory when many peers each send a different
   * piece. Pieces with nothing requested (their only sender left) do not count, so the limit never stops a download;
   * pieces a reader needs (setCritical) are started regardless.
   */
  maxPiecesInFlight?: number;
}

export type PieceStateName = 'have' | 'queued' | 'active' | 'pending' | 'none';

const NONE = 0, QUEUED = 1, ACTIVE = 2, PENDING = 3, HAVE = 4;
const STATE_NAMES: PieceStateName[] = ['none', 'queued', 'active', 'pending', 'have'];
const FREE = 0, REQUESTED = 1, RECEIVED = 2;

class Piece {
  readonly state: Uint8Array;
  /** First requester of each block; in endgame further ones go to `dup`. */
  readonly req: (PeerKey | undefined)[];
  dup: (PeerKey[] | undefined)[] | null = null;
  readonly from: (PeerKey | undefined)[];
  free: number;
  received = 0;
  /** Every block before `cursor` is known not to be FREE. */
  cursor = 0;
  constructor(readonly index: number, readonly blocks: number) {
    this.state = new Uint8Array(blocks);
    this.req = new Array(blocks).fill(undefined);
    this.from = new Array(blocks).fill(undefined);
    this.free = blocks;
  }
  requesters(b: number): number {
    return (this.req[b] === undefined ? 0 : 1) + (this.dup?.[b]?.length ?? 0);
  }
  isRequester(b: number, peer: PeerKey): boolean {
    return this.req[b] === peer || (this.dup?.[b]?.includes(peer) ?? false);
  }
  removeRequester(b: number, peer: PeerKey): boolean {
    const d = this.dup?.[b];
    if (this.req[b] === peer) {
      this.req[b] = d && d.length > 0 ? d.pop() : undefined;
      return true;
    }
    if (d) {
      const k = d.indexOf(peer);
      if (k >= 0) { d[k] = d[d.length - 1]!; d.pop(); return true; }
    }
    return false;
  }
  addRequester(b: number, peer: PeerKey): void {
    if (this.req[b] === undefined) { this.req[b] = peer; return; }
    const dup = (this.dup ??= new Array(this.blocks).fill(undefined));
    (dup[b] ??= []).push(peer);
  }
  contributors(): PeerKey[] {
    const out: PeerKey[] = [];
    for (const p of this.from) if (p !== undefined && !out.includes(p)) out.push(p);
    return out;
  }
}

export class PiecePicker {
  readonly pieceCount: number;
  readonly pieceLength: number;
  readonly lastPieceLength: number;
  readonly blockSize: number;
  private readonly randomFirst: number;
  private readonly random: () => number;
  private readonly maxReq: number;
  private readonly maxInFlight: number;
  /** The picker's own copies; the caller's bitfields are not modified. */
  private readonly have: Bitfield;
  private readonly wanted: Bitfield;
  private readonly pstate: Uint8Array;
  private readonly avail: Uint32Array;
  private seeds = 0;
  private readonly buckets: number[][] = [[]];
  private readonly pos: Int32Array;
  private queued = 0;
  private missing = 0;
  /** Streaming: pieces readers need next, most urgent first (invariant 6). */
  private critical: number[] = [];
  private readonly criticalSet = new Set<number>();
  private urgentSet = new Set<number>();
  private streamingValue = false;
  private freeWanted = 0;
  private readonly pieces = new Map<number, Piece>();
  /** ACTIVE pieces in the order they were started: oldest first, to finish what was started. */
  private readonly active = new Set<Piece>();
  /**
   * Per peer: piece -> number of its outstanding requests there, kept exact so the map stays as small as
   * the peer's request pipeline and peerGone need not scan every in-flight piece.
   */
  private readonly peerPieces = new WeakMap<PeerKey, Map<number, number>>();

  constructor(opts: PickerOptions, have: Bitfield, wanted: Bitfield) {
    const n = opts.pieceCount;
    const bs = opts.blockSize ?? 16384;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`piece count ${n} is invalid`);
    if (have.length !== n || wanted.length !== n) throw new RangeError(`have/wanted bitfields must have ${n} bits`);
    if (!(bs > 0) || !(opts.pieceLength > 0)) throw new RangeError('piece and block sizes must be positive');
    if (n > 0 && !(opts.lastPieceLength > 0 && opts.lastPieceLength <= opts.pieceLength)) {
      throw new RangeError(`last piece length ${opts.lastPieceLength} must be in 1..${opts.pieceLength}`);
    }
    this.pieceCount = n;
    this.pieceLength = opts.pieceLength;
    this.lastPieceLength = opts.lastPieceLength;
    this.blockSize = bs;
    this.randomFirst = opts.randomFirstPieces ?? 4;
    this.random = opts.random ?? Math.random;
    this.maxReq = Math.max(1, opts.maxRequestersPerBlock ?? 2);
    this.maxInFlight = Math.max(1, opts.maxPiecesInFlight ?? Number.MAX_SAFE_INTEGER);
    this.have = have.clone();
    this.wanted = wanted.clone();
    this.pstate = new Uint8Array(n);
    this.avail = new Uint32Array(n);
    this.pos = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      if (this.have.get(i)) this.pstate[i] = HAVE;
      else if (this.wanted.get(i)) { this.enqueue(i); this.missing++; }
    }
  }

  // ---- geometry ----

  // Both lengths read every time: a load first made when the last piece is picked, mid-download, would throw away the
  // optimized pick path (bench/PROFILE.md, sixth session).
  pieceSize(index: number): number {
    const last = this.lastPieceLength, normal = this.pieceLength;
    return index === this.pieceCount - 1 ? last : normal;
  }
  blocksIn(index: number): number { return Math.ceil(this.pieceSize(index) / this.blockSize); }
  blockLength(index: number, block: number): number {
    return Math.min(this.blockSize, this.pieceSize(index) - block * this.blockSize);
  }

  // ---- availability ----

  addPeerBitfield(bits: Bitfield): void { this.forEachSet(bits, (i) => this.incAvail(i)); }
  removePeerBitfield(bits: Bitfield): void { this.forEachSet(bits, (i) => this.decAvail(i)); }
  addPeerHave(index: number): void { if (index >= 0 && index < this.pieceCount) this.incAvail(index); }
  addHaveAll(): void { this.seeds++; }
  removeHaveAll(): void { if (this.seeds > 0) this.seeds--; }
  /** Peers counted for piece i by bitfield/have, without have-all peers (for cross-structure checks). */
  announcedCount(index: number): number { return this.avail[index]!; }
  /** Peers counted as having everything. */
  get haveAllCount(): number { return this.seeds; }
  /** Is `peer` one of the requesters of the block at (index, begin)? */
  isRequester(peer: PeerKey, index: number, begin: number): boolean {
    const p = this.pieces.get(index);
    const b = this.blockOf(p, begin);
    return p !== undefined && b >= 0 && p.isRequester(b, peer);
  }
  /** Number of connected peers known to have the piece. */
  availability(index: number): number { return this.avail[index]! + this.seeds; }

  // ---- state queries ----

  // Every field is read on every call (no short-circuit): a branch first taken at the endgame would throw away the
  // optimized per-block code that inlines this (bench/PROFILE.md, sixth session). Both counts are ≥ 0.
  get inEndgame(): boolean { return this.missing > 0 && (this.queued | this.freeWanted) === 0; }
  missingCount(): number { return this.missing; }
  hasPiece(index: number): boolean { return this.pstate[index] === HAVE; }
  haveCount(): number { return this.have.count; }
  pieceState(index: number): PieceStateName { return STATE_NAMES[this.pstate[index]!]!; }
  isPieceComplete(index: number): boolean { return this.pstate[index] === PENDING; }
  /** Pieces with at least one block in flight or received (not yet complete). */
  activeCount(): number { return this.active.size; }
  contributors(index: number): PeerKey[] { return this.pieces.get(index)?.contributors() ?? []; }

  othersRequesting(index: number, begin: number, except: PeerKey): PeerKey[] {
    const p = this.pieces.get(index);
    const b = this.blockOf(p, begin);
    if (!p || b < 0) return [];
    const out: PeerKey[] = [];
    const r = p.req[b];
    if (r !== undefined && r !== except) out.push(r);
    const d = p.dup?.[b];
    if (d) for (const x of d) if (x !== except) out.push(x);
    return out;
  }

  // ---- streaming priority ----

  /**
   * Pieces readers need next, most urgent first; the first `urgent` of them may get duplicate requests (a reader is
   * waiting on them). Pieces we have or do not want are dropped from the list. Replaces the previous list.
   * `streaming`: readers exist (or are expected), even if every piece they need is here (see `streaming`).
   */
  setCritical(indices: readonly number[], urgent = 0, streaming = indices.length > 0): void {
    this.streamingValue = streaming;
    this.critical = [];
    this.criticalSet.clear();
    this.urgentSet = new Set();
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      if (i < 0 || i >= this.pieceCount || this.criticalSet.has(i)) continue;
      if (this.pstate[i] === HAVE || !this.wanted.get(i)) continue;
      if (k < urgent) this.urgentSet.add(i);
      this.critical.push(i);
      this.criticalSet.add(i);
    }
  }

  get criticalPieces(): readonly number[] { return this.critical; }
  /** Readers are streaming (last `setCritical`): the caller keeps request pipelines short, every queued block being delay for their next piece. */
  get streaming(): boolean { return this.streamingValue; }
  isUrgent(index: number): boolean { return this.urgentSet.has(index); }
  isCritical(index: number): boolean { return this.criticalSet.has(index); }

  /**
   * Is a reader blocked on a piece this peer has (`bits` null: a seed) that is still to be fetched (not every block
   * received)? Then the peer is asked for critical pieces only (see pick).
   */
  servesUrgent(bits: Bitfield | null): boolean {
    for (const i of this.urgentSet) {
      const st = this.pstate[i];
      if ((st === QUEUED || st === ACTIVE) && (bits === null || bits.get(i))) return true;
    }
    return false;
  }

  /** Pieces readers are blocked on (the first `urgent` of `setCritical`) that are still wanted and missing. */
  get urgentCount(): number { return this.urgentSet.size; }

  private dropCritical(index: number): void {
    if (!this.criticalSet.delete(index)) return;
    this.urgentSet.delete(index);
    const k = this.critical.indexOf(index);
    if (k >= 0) this.critical.splice(k, 1);
  }

  /** Free blocks of critical pieces first; for urgent ones, also second copies of blocks requested elsewhere. */
  private pickCritical(peer: PeerKey, bits: Bitfield | null, max: number,
    out: (index: number, begin: number, length: number) => void, allowedFast: ReadonlySet<number> | undefined, urgentOnly: boolean): number {
    let n = 0;
    for (const i of this.critical) {
      if (n >= max) break;
      if (urgentOnly && !this.urgentSet.has(i)) continue;
      if (bits !== null && !bits.get(i)) continue;
      if (allowedFast !== undefined && !allowedFast.has(i)) continue;
      const st = this.pstate[i];
      if (st === QUEUED) n += this.pickFree(this.activate(i), peer, max - n, out);
      else if (st === ACTIVE) {
        const p = this.pieces.get(i)!;
        if (p.free > 0) n += this.pickFree(p, peer, max - n, out);
        if (n < max && p.free === 0 && this.urgentSet.has(i)) n += this.duplicate(p, peer, max - n, out);
      }
    }
    return n;
  }

  /** Second requests for blocks of `p` in flight from other peers (endgame, or an urgent streaming piece). */
  private duplicate(p: Piece, peer: PeerKey, max: number, out: (index: number, begin: number, length: number) => void): number {
    let n = 0;
    for (let b = 0; b < p.blocks && n < max; b++) {
      if (p.state[b] !== REQUESTED || p.requesters(b) >= this.maxReq || p.isRequester(b, peer)) continue;
      p.addRequester(b, peer);
      this.notePeer(peer, p.index, 1);
      out(p.index, b * this.blockSize, this.blockLength(p.index, b));
      n++;
    }
    return n;
  }

  // ---- picking ----

  /**
   * Preference: (1) free blocks of in-flight pieces the peer has, oldest piece first; (2) new pieces, while fewer than
   * `maxPiecesInFlight` have requests out: random while we have fewer than `randomFirstPieces`, else rarest-first
   * with random tie-breaks;
   * (3) endgame duplicates of blocks requested from other peers, fewest requesters first.
   * `allowedFast`, when given (the peer is choking us), restricts every step to those pieces.
   * Before all of these, pieces a reader needs (`setCritical`) when `critical` is true: the caller passes false for
   * peers too slow to be trusted with a deadline. `servesUnannounced`: the peer has every piece though it announces
   * them a few at a time (an origin in initial seeding), so critical pieces are asked of it whatever it announced.
   */
  pick(peer: PeerKey, peerBits: Bitfield | null, isSeed: boolean, max: number,
    out: (index: number, begin: number, length: number) => void, allowedFast?: ReadonlySet<number>, critical = true,
    servesUnannounced = false): number {
    if (max <= 0 || this.missing === 0) return 0;
    const bits = isSeed ? null : peerBits;
    const nothingAnnounced = bits === null ? !isSeed : bits.empty;
    if (nothingAnnounced && !servesUnannounced) return 0;
    let n = 0;
    if (critical && this.critical.length > 0) {
      const criticalBits = servesUnannounced ? null : bits;
      // Choked: only a piece a reader is blocked on is worth an allowed-fast request; anything else would still be
      // arriving when the unchoke (usually a round trip away) lets the readers' pieces go.
      if (allowedFast !== undefined) return this.pickCritical(peer, criticalBits, max, out, allowedFast, true);
      n += this.pickCritical(peer, criticalBits, max, out, undefined, false);
      if (n >= max) return n;
      // A reader is blocked on a piece this peer has: anything else asked now would be served before it.
      if (this.urgentSet.size > 0 && this.servesUrgent(criticalBits)) return n;
    }
    if (nothingAnnounced) return n;
    if (this.freeWanted > 0) {
      for (const p of this.active) {
        if (p.free === 0 || !this.wanted.get(p.index)) continue;
        if (bits !== null && !bits.get(p.index)) continue;
        if (allowedFast !== undefined && !allowedFast.has(p.index)) continue;
        n += this.pickFree(p, peer, max - n, out);
        if (n >= max) return n;
      }
    }
    while (n < max && this.queued > 0 && this.mayStartPiece()) {
      const i = allowedFast !== undefined ? this.chooseAllowed(bits, allowedFast)
        : this.have.count < this.randomFirst ? this.chooseRandom(bits)
        : this.chooseRarest(bits);
      if (i < 0) break;
      n += this.pickFree(this.activate(i), peer, max - n, out);
    }
    if (n < max && this.inEndgame) n += this.pickEndgame(peer, bits, max - n, out, allowedFast);
    return n;
  }

  blockReceived(peer: PeerKey, index: number, begin: number): boolean {
    const p = this.pieces.get(index);
    const b = this.blockOf(p, begin);
    if (!p || b < 0) return false;
    if (p.state[b] !== REQUESTED) {
      // A late endgame duplicate: it is no longer in flight.
      if (p.removeRequester(b, peer)) this.releaseNote(peer, index);
      return false;
    }
    // Only the peers we asked may fill a block: unrequested data is not evidence of anything and would
    // let a peer inject blocks into pieces others are sending.
    if (!p.removeRequester(b, peer)) return false;
    this.releaseNote(peer, index);
    p.state[b] = RECEIVED;
    p.from[b] = peer;
    if (++p.received === p.blocks) {
      this.active.delete(p);
      this.pstate[index] = PENDING;
    }
    return true;
  }

  requestCancelled(peer: PeerKey, index: number, begin: number): void {
    const p = this.pieces.get(index);
    const b = this.blockOf(p, begin);
    if (!p || b < 0 || !p.removeRequester(b, peer)) return;
    this.releaseNote(peer, index);
    this.afterRemoval(p, b);
    this.maybeRequeue(p);
  }

  peerGone(peer: PeerKey): void {
    const m = this.peerPieces.get(peer);
    if (!m) return;
    this.peerPieces.delete(peer);
    for (const index of m.keys()) {
      const p = this.pieces.get(index);
      if (!p) continue;
      for (let b = 0; b < p.blocks; b++) if (p.removeRequester(b, peer)) this.afterRemoval(p, b);
      this.maybeRequeue(p);
    }
  }

  pieceVerified(index: number): void {
    const st = this.pstate[index];
    if (st === undefined || st === HAVE) return;
    if (st === QUEUED) this.dequeue(index);
    else if (st === ACTIVE || st === PENDING) this.drop(index);
    this.pstate[index] = HAVE;
    this.have.set(index);
    if (this.wanted.get(index)) this.missing--;
    this.dropCritical(index);
  }

  pieceFailed(index: number): PeerKey[] {
    const st = this.pstate[index];
    if (st !== ACTIVE && st !== PENDING) return [];
    const who = this.pieces.get(index)!.contributors();
    this.drop(index);
    if (this.wanted.get(index)) this.enqueue(index); else this.pstate[index] = NONE;
    return who;
  }

  setWanted(index: number, wanted: boolean): void {
    if (index < 0 || index >= this.pieceCount || this.wanted.get(index) === wanted) return;
    this.wanted.set(index, wanted);
    if (!wanted) this.dropCritical(index);
    const st = this.pstate[index];
    if (st === HAVE) return;
    this.missing += wanted ? 1 : -1;
    if (st === QUEUED && !wanted) { this.dequeue(index); this.pstate[index] = NONE; }
    else if (st === NONE && wanted) this.enqueue(index);
    else if (st === ACTIVE) this.freeWanted += (wanted ? 1 : -1) * this.pieces.get(index)!.free;
  }

  // ---- internals ----

  private blockOf(p: Piece | undefined, begin: number): number {
    if (!p || begin < 0 || begin % this.blockSize !== 0) return -1;
    const b = begin / this.blockSize;
    return b < p.blocks ? b : -1;
  }

  private pickFree(p: Piece, peer: PeerKey, max: number, out: (i: number, begin: number, len: number) => void): number {
    let k = 0;
    let b = p.cursor;
    for (; b < p.blocks && k < max; b++) {
      if (p.state[b] !== FREE) continue;
      p.state[b] = REQUESTED;
      p.req[b] = peer;
      p.free--;
      k++;
      out(p.index, b * this.blockSize, this.blockLength(p.index, b));
    }
    p.cursor = b;
    if (k > 0) {
      if (this.wanted.get(p.index)) this.freeWanted -= k;
      this.notePeer(peer, p.index, k);
    }
    return k;
  }

  private pickEndgame(peer: PeerKey, bits: Bitfield | null, max: number,
    out: (i: number, begin: number, len: number) => void, allowed?: ReadonlySet<number>): number {
    let n = 0;
    // Fewest requesters first, so duplicates spread over the remaining blocks instead of piling up.
    for (let level = 1; level < this.maxReq; level++) {
      for (const p of this.active) {
        if (!this.wanted.get(p.index)) continue;
        if (bits !== null && !bits.get(p.index)) continue;
        if (allowed !== undefined && !allowed.has(p.index)) continue;
        for (let b = 0; b < p.blocks; b++) {
          if (p.state[b] !== REQUESTED || p.requesters(b) !== level || p.isRequester(b, peer)) continue;
          p.addRequester(b, peer);
          this.notePeer(peer, p.index, 1);
          out(p.index, b * this.blockSize, this.blockLength(p.index, b));
          if (++n >= max) break;
        }
        if (n >= max) return n;
      }
    }
    return n;
  }

  /**
   * Under maxPiecesInFlight: fewer ACTIVE pieces with a block requested. Asked only when the peer found no free block in
   * the pieces in flight; it walks them (at most the limit's worth of counted pieces, about a dozen) only when there
   * are at least that many, so a download under the limit pays one comparison.
   */
  private mayStartPiece(): boolean {
    const limit = this.maxInFlight;
    if (this.active.size < limit) return true;
    let requested = 0;
    for (const p of this.active) {
      if (p.blocks - p.free - p.received > 0 && ++requested >= limit) return false;
    }
    return true;
  }

  private notePeer(peer: PeerKey, index: number, k: number): void {
    let m = this.peerPieces.get(peer);
    if (!m) this.peerPieces.set(peer, (m = new Map()));
    m.set(index, (m.get(index) ?? 0) + k);
  }

  private releaseNote(peer: PeerKey, index: number): void {
    const m = this.peerPieces.get(peer);
    const c = m?.get(index);
    if (c === undefined) return;
    if (c <= 1) m!.delete(index); else m!.set(index, c - 1);
  }

  /** Outstanding requests of `peer` known to the picker. */
  requestCount(peer: PeerKey): number {
    let n = 0;
    const m = this.peerPieces.get(peer);
    if (m) for (const c of m.values()) n += c;
    return n;
  }

  /** A requester was removed from block b: free it if nobody else is fetching it. */
  private afterRemoval(p: Piece, b: number): void {
    if (p.state[b] !== REQUESTED || p.req[b] !== undefined) return;
    p.state[b] = FREE;
    p.free++;
    if (b < p.cursor) p.cursor = b;
    if (this.pstate[p.index] === ACTIVE && this.wanted.get(p.index)) this.freeWanted++;
  }

  private maybeRequeue(p: Piece): void {
    if (this.pstate[p.index] !== ACTIVE || p.free !== p.blocks) return;
    this.drop(p.index);
    if (this.wanted.get(p.index)) this.enqueue(p.index); else this.pstate[p.index] = NONE;
  }

  private activate(i: number): Piece {
    this.dequeue(i);
    const p = new Piece(i, this.blocksIn(i));
    this.pieces.set(i, p);
    this.active.add(p);
    this.pstate[i] = ACTIVE;
    this.freeWanted += p.free;   // only wanted pieces are ever activated
    return p;
  }

  /** Forget an ACTIVE/PENDING piece's block state; the caller sets the new piece state. */
  private drop(i: number): void {
    const p = this.pieces.get(i)!;
    // Requests still out for it (endgame duplicates, or a piece verified early) stop being tracked.
    for (let b = 0; b < p.blocks; b++) {
      const r = p.req[b];
      if (r !== undefined) this.releaseNote(r, i);
      const d = p.dup?.[b];
      if (d) for (const x of d) this.releaseNote(x, i);
    }
    if (this.pstate[i] === ACTIVE && this.wanted.get(i)) this.freeWanted -= p.free;
    this.active.delete(p);
    this.pieces.delete(i);
  }

  private enqueue(i: number): void {
    const b = this.bucket(this.avail[i]!);
    this.pos[i] = b.length;
    b.push(i);
    this.pstate[i] = QUEUED;
    this.queued++;
  }

  private dequeue(i: number): void {
    this.unlink(i);
    this.queued--;
  }

  private unlink(i: number): void {
    const b = this.buckets[this.avail[i]!]!;
    const p = this.pos[i]!;
    const last = b.pop()!;
    if (last !== i) { b[p] = last; this.pos[last] = p; }
    this.pos[i] = -1;
  }

  private bucket(a: number): number[] {
    while (this.buckets.length <= a) this.buckets.push([]);
    return this.buckets[a]!;
  }

  private incAvail(i: number): void {
    if (this.pstate[i] !== QUEUED) { this.avail[i]!++; return; }
    this.unlink(i);
    this.avail[i]!++;
    const b = this.bucket(this.avail[i]!);
    this.pos[i] = b.length;
    b.push(i);
  }

  private decAvail(i: number): void {
    if (this.avail[i] === 0) return;   // unbalanced remove: never wrap around
    if (this.pstate[i] !== QUEUED) { this.avail[i]!--; return; }
    this.unlink(i);
    this.avail[i]!--;
    const b = this.buckets[this.avail[i]!]!;
    this.pos[i] = b.length;
    b.push(i);
  }

  private forEachSet(bits: Bitfield, fn: (i: number) => void): void {
    if (bits.length !== this.pieceCount) throw new RangeError(`peer bitfield has ${bits.length} bits, torrent has ${this.pieceCount} pieces`);
    const buf = bits.buffer;
    for (let byte = 0; byte < buf.length; byte++) {
      const v = buf[byte]!;
      if (v === 0) continue;
      for (let k = 0; k < 8; k++) if (v & (0x80 >> k)) fn(byte * 8 + k);
    }
  }

  /** Rarest QUEUED piece the peer has, random among equals; -1 if none. */
  private chooseRarest(bits: Bitfield | null): number {
    // A peer with few pieces: walking its bitfield is cheaper than walking buckets of pieces it lacks.
    if (bits !== null && bits.count * 4 < this.queued) return this.rarestFromPeerBits(bits);
    for (let a = bits === null ? 0 : 1; a < this.buckets.length; a++) {
      const b = this.buckets[a]!;
      const len = b.length;
      if (len === 0) continue;
      const start = Math.floor(this.random() * len);
      for (let j = 0; j < len; j++) {
        const i = b[(start + j) % len]!;
        if (bits === null || bits.get(i)) return i;
      }
    }
    return -1;
  }

  private rarestFromPeerBits(bits: Bitfield): number {
    let best = -1, bestAvail = NO_AVAILABILITY_YET, ties = 0;
    const buf = bits.buffer;
    for (let byte = 0; byte < buf.length; byte++) {
      const v = buf[byte]!;
      if (v === 0) continue;
      for (let k = 0; k < 8; k++) {
        if (!(v & (0x80 >> k))) continue;
        const i = byte * 8 + k;
        if (this.pstate[i] !== QUEUED) continue;
        const a = this.avail[i]!;
        const tie = a === bestAvail; // compared every time, so its first use is not a deopt (PROFILE.md, sixth session)
        if (a < bestAvail) { best = i; bestAvail = a; ties = 1; }
        else if (tie && this.random() * ++ties < 1) best = i;   // reservoir sampling
      }
    }
    return best;
  }

  /** A uniformly placed start, then the first QUEUED piece the peer has, wrapping around. */
  private chooseRandom(bits: Bitfield | null): number {
    const n = this.pieceCount;
    const start = Math.floor(this.random() * n);
    for (let j = 0; j < n; j++) {
      const i = start + j < n ? start + j : start + j - n;
      if (this.pstate[i] === QUEUED && (bits === null || bits.get(i))) return i;
    }
    return -1;
  }

  private chooseAllowed(bits: Bitfield | null, allowed: ReadonlySet<number>): number {
    let best = -1, bestAvail = NO_AVAILABILITY_YET, ties = 0;
    for (const i of allowed) {
      if (this.pstate[i] !== QUEUED || (bits !== null && !bits.get(i))) continue;
      const a = this.avail[i]!;
      const tie = a === bestAvail;
      if (a < bestAvail) { best = i; bestAvail = a; ties = 1; }
      else if (tie && this.random() * ++ties < 1) best = i;
    }
    return best;
  }

  /** Throws describing the first broken invariant. O(pieces + in-flight blocks): for tests and debugging. */
  checkInvariants(): void {
    const fail = (msg: string): never => { throw new Error(`picker invariant: ${msg}`); };
    let queued = 0, missing = 0, freeWanted = 0, bucketed = 0;
    for (const b of this.buckets) bucketed += b.length;
    for (let i = 0; i < this.pieceCount; i++) {
      const st = this.pstate[i]!;
      const w = this.wanted.get(i), h = this.have.get(i);
      if (h !== (st === HAVE)) fail(`piece ${i} have=${h} but state ${STATE_NAMES[st]}`);
      if (w && !h) {
        missing++;
        if (st === NONE) fail(`wanted piece ${i} is in no state`);
      }
      if (!w && st === QUEUED) fail(`unwanted piece ${i} is queued`);
      if ((st === QUEUED) !== (this.pos[i]! >= 0)) fail(`piece ${i} state ${STATE_NAMES[st]} but pos ${this.pos[i]}`);
      if (st === QUEUED) {
        queued++;
        if (this.buckets[this.avail[i]!]?.[this.pos[i]!] !== i) fail(`piece ${i} not at its bucket position`);
      }
      const p = this.pieces.get(i);
      if ((st === ACTIVE || st === PENDING) !== (p !== undefined)) fail(`piece ${i} state ${STATE_NAMES[st]} vs record ${!!p}`);
      if ((st === ACTIVE) !== (p !== undefined && this.active.has(p))) fail(`piece ${i} active-set mismatch`);
      if (!p) continue;
      let free = 0, recv = 0;
      for (let b = 0; b < p.blocks; b++) {
        const s = p.state[b]!;
        const n = p.requesters(b);
        if (s === FREE) { free++; if (n !== 0) fail(`free block ${i}/${b} has requesters`); if (b < p.cursor) fail(`free block ${i}/${b} before cursor`); }
        if (s === REQUESTED && n === 0) fail(`requested block ${i}/${b} has no requester`);
        if (s === RECEIVED) recv++;
        if ((s === RECEIVED) !== (p.from[b] !== undefined)) fail(`block ${i}/${b} attribution mismatch`);
        if (n > this.maxReq) fail(`block ${i}/${b} has ${n} requesters`);
        if (p.req[b] === undefined && (p.dup?.[b]?.length ?? 0) > 0) fail(`block ${i}/${b} has dups but no primary`);
        const all = [p.req[b], ...(p.dup?.[b] ?? [])].filter((x) => x !== undefined);
        if (new Set(all).size !== all.length) fail(`block ${i}/${b} requested twice by one peer`);
      }
      if (free !== p.free || recv !== p.received) fail(`piece ${i} counters free ${p.free}/${free} recv ${p.received}/${recv}`);
      if (st === ACTIVE && (recv === p.blocks || free === p.blocks)) fail(`active piece ${i} is complete or idle`);
      if (st === PENDING && recv !== p.blocks) fail(`pending piece ${i} is incomplete`);
      if (st === ACTIVE && w) freeWanted += free;
    }
    if (this.criticalSet.size !== this.critical.length) fail(`critical list ${this.critical.length} vs set ${this.criticalSet.size}`);
    for (const i of this.critical) {
      if (!this.criticalSet.has(i)) fail(`critical piece ${i} missing from its set`);
      if (this.pstate[i] === HAVE || !this.wanted.get(i)) fail(`critical piece ${i} is ${STATE_NAMES[this.pstate[i]!]}, wanted=${this.wanted.get(i)}`);
    }
    for (const i of this.urgentSet) if (!this.criticalSet.has(i)) fail(`urgent piece ${i} is not critical`);
    if (queued !== this.queued || bucketed !== queued) fail(`queued counter ${this.queued}, states ${queued}, buckets ${bucketed}`);
    if (missing !== this.missing) fail(`missing counter ${this.missing}, actual ${missing}`);
    if (freeWanted !== this.freeWanted) fail(`freeWanted counter ${this.freeWanted}, actual ${freeWanted}`);
  }
}
