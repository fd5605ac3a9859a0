/**
 * An LRU cache of whole pieces for uploading (read from disk, or just downloaded and verified: peers ask for what
 * we just announced), whose memory is recycled, also as the downloader's next piece buffers.
 *
 * Why recycle: a seed reads every piece it sends once. With a fresh 1 MiB ArrayBuffer per read, V8 sees hundreds of
 * MiB of external memory churn and runs a full mark-compact every ~16 MiB (30 of them for 512 MiB served, a fifth
 * of the seed's CPU), and the kernel faults in and zeroes fresh pages for every read. Reusing evicted buffers
 * removes both.
 *
 * Invariants (an entry is one cached piece buffer):
 *  P1. A buffer is in `free` only if nothing outside this cache can still read it: it was never handed out by
 *      `get()` (`shared` is false) and every `borrow()` of it was matched by a `release()` (`pins` is 0).
 *  P2. `used` is the sum of the lengths of the entries in `byIndex`, and never exceeds `room` (the limit less the
 *      memory lent outside the cache); free buffers beyond MIN_FREE are kept only while entries, free buffers and
 *      memory lent outside fit in the `budget`.
 *  P3. `byMemory` holds exactly the entries in `byIndex` plus the evicted entries that are still pinned.
 *  P4. The recency list (`oldest` … `newest`, linked through `older`/`newer`) holds exactly the entries in `byIndex`,
 *      each once, least recently used first; evicted entries are unlinked.
 * `check()` verifies them (the debug mode of the tests calls it).
 */
interface Entry {
  readonly index: number;
  readonly buf: Buffer;
  /** Blocks borrowed and not yet released (e.g. queued on a socket). */
  pins: number;
  /** Handed out without a matching release: the memory can never be reused. */
  shared: boolean;
  /** No longer in byIndex; recycled when the last pin goes, unless shared. */
  evicted: boolean;
  /** Neighbours in the recency list (P4); null at its ends and once evicted. */
  older: Entry | null;
  newer: Entry | null;
}

/** Free buffers kept beside the cache at least, whatever its limit. */
const MIN_FREE = 4;
/** Pieces the cache may always hold (limit permitting), however much memory is in flight: peers ask for what we just announced. */
const MIN_ENTRIES = 2;
/** Entries allocate() looks at, oldest first, for memory to reuse. */
const EVICT_SCAN = 8;

export class PieceCache {
  private readonly byIndex = new Map<number, Entry>();
  private readonly byMemory = new Map<ArrayBufferLike, Entry>();
  private readonly free: Buffer[] = [];
  /**
   * Least and most recently used entries, ends of a list linked through the entries (P4). A seed serving several
   * peers touches a different piece on nearly every block; kept as the Map's insertion order, each touch was a
   * delete and a set that leave holes the Map must rehash into freshly allocated tables (measured: 3 % of a seed's
   * main thread, most of it page faults, with 4 peers on different pieces). Relinking two entries allocates nothing.
   */
  private oldest: Entry | null = null;
  private newest: Entry | null = null;
  private used = 0;
  /**
   * Piece memory lent outside the cache (the downloader's buffers: in flight, hashing, being written), which the cache
   * yields room to. Counted as it is lent (allocateOutside) and returned (insert/discard with `returning`), so the
   * room follows at once and a returning buffer stays in the cache instead of being dropped; reserve() resets it to
   * the downloader's own count about once a second, so a buffer that never comes back is forgotten.
   */
  private outside = 0;
  /** Recent peak of `outside`, decaying by one piece per reserve() call: the buffers the next burst will want back. */
  private peakOutside = 0;

  /** `recycleLength`: only buffers of this length (the torrent's piece length) are recycled. */
  constructor(private readonly limit: number, private readonly recycleLength: number) {}

  /**
   * May one more free buffer be kept? Within the budget (see there), at least MIN_FREE whatever it says; beyond,
   * they are left to the garbage collector. Measured on a 512 MiB download from libtorrent (which interleaves
   * pieces, so more are in flight): a free list of 4 beside the cache gave 161 fresh allocations and 15
   * mark-compacts, one as large as the cache 73 and 2.
   */
  private mayKeepFree(): boolean {
    const n = this.free.length;
    return n < MIN_FREE || this.held(n + 1) <= this.budget;
  }

  /** Piece memory held if `freeCount` buffers are kept free: cached, lent outside and free. */
  private held(freeCount: number): number {
    return this.used + this.outside + freeCount * this.recycleLength;
  }

  get bytes(): number { return this.used; }

  /**
   * What the cache may hold now: its limit less the piece memory in use outside it (pieces being downloaded, hashed
   * or written), but at least MIN_ENTRIES pieces' worth while the limit allows. So a torrent's piece memory stays
   * near max(limit, buffers in flight) rather than their sum: a swarm downloader with a piece in flight from each of
   * 16 peers would otherwise hold 16 MiB of cache beside 16+ MiB of buffers.
   */
  private get room(): number {
    return Math.max(Math.min(this.limit, MIN_ENTRIES * this.recycleLength), this.limit - this.outside);
  }

  /**
   * All piece memory this cache keeps or lends (cached, free, outside) stays under the larger of the limit and the
   * recent peak of what is lent outside plus MIN_ENTRIES pieces. Free buffers are what bridges the two: when a burst
   * of pieces in flight has been verified and returned, the next burst (a fast peer's pipeline refilling, pieces
   * queued for the disk) takes them back instead of fresh allocations. Measured on a 512 MiB loopback download: with
   * the free list bounded by the cache's room alone, twice the page faults and 0.4 CPU-s more than without a bound.
   */
  private get budget(): number {
    return Math.max(this.limit, this.peakOutside + MIN_ENTRIES * this.recycleLength);
  }

  /** A buffer for a downloader's piece, counted as lent outside the cache until it comes back (see `outside`). */
  allocateOutside(length: number): Buffer {
    const b = this.allocate(length, 0);
    this.outside += length;
    if (this.outside > this.peakOutside) this.peakOutside = this.outside;
    return b;
  }

  /**
   * The piece memory in use outside the cache, as its holder counts it (about once a second). The cache shrinks at
   * once when that grew (oldest pieces first; pinned ones are recycled when released) and grows back as pieces return.
   */
  reserve(bytes: number): void {
    this.outside = Math.max(0, bytes);
    this.peakOutside = Math.max(this.outside, this.peakOutside - this.recycleLength);
    this.evictDownTo(this.room);
    this.trimFree();
  }

  /** Borrows not yet released, over cached and evicted pieces alike. */
  get lent(): number {
    let n = 0;
    for (const e of this.byMemory.values()) n += e.pins;
    return n;
  }

  has(index: number): boolean { return this.byIndex.has(index); }

  /** The whole piece, for a caller that may keep it: its memory is never recycled. */
  get(index: number): Buffer | undefined {
    const e = this.touch(index);
    if (e === undefined) return undefined;
    e.shared = true;
    return e.buf;
  }

  /** A block of a cached piece that stays valid until `release(block)`; undefined if not cached or out of range. */
  borrow(index: number, begin: number, length: number): Buffer | undefined {
    const e = this.touch(index);
    if (e === undefined || begin + length > e.buf.length) return undefined;
    e.pins++;
    return e.buf.subarray(begin, begin + length);
  }

  /** The borrower is done with `block` (e.g. the socket has taken it). Each borrow is released exactly once. */
  release(block: Buffer): void {
    const e = this.byMemory.get(block.buffer);
    if (e === undefined || e.pins === 0) return;
    if (--e.pins === 0 && e.evicted) this.retire(e);
  }

  /**
   * A buffer for a piece of `length` bytes that owns its ArrayBuffer: recycled when possible. With the free list
   * empty, a cache holding more than `reuseAbove` bytes gives its oldest piece's memory (default: when full).
   * Storage's reads use the default; the downloader passes 0, so pieces in flight take memory from the cache
   * rather than beside it, and give it back when they are stored. Measured on a 512 MiB pair, fresh allocations:
   * reuse only when full 173, above half the limit 115-124, always (0) 37-52.
   */
  allocate(length: number, reuseAbove = this.room - length): Buffer {
    if (length === this.recycleLength) {
      if (this.free.length === 0 && this.used > reuseAbove) this.evictForReuse();
      const b = this.free.pop();
      if (b !== undefined) return b;
    }
    return Buffer.allocUnsafeSlow(length);
  }

  /**
   * A full cache gives its least recently used piece's memory to a new piece (a downloader's next buffer), so
   * pieces in flight take memory from the cache instead of adding to it. Looks at
   * the oldest few entries only: pinned or shared ones cannot be reused, and the scan must stay O(1).
   */
  private evictForReuse(): void {
    let looked = 0;
    for (let e = this.oldest; e !== null; e = e.newer) {
      if (++looked > EVICT_SCAN) return;
      if (e.pins === 0 && !e.shared && e.buf.length === this.recycleLength) {
        this.delete(e.index);
        return;
      }
    }
  }

  /**
   * A buffer from allocate() that nobody else has seen (e.g. its read failed) can be reused at once. `returning`: it
   * came from allocateOutside().
   */
  discard(buf: Buffer, returning = false): void {
    if (returning) this.outside = Math.max(0, this.outside - buf.length);
    if (buf.length === this.recycleLength && this.mayKeepFree() && !this.byMemory.has(buf.buffer)) this.free.push(buf);
  }

  /**
   * Cache piece `index`, evicting least recently used pieces to stay within the limit. `shared`: the buffer has
   * already been handed to a caller that may keep it. `returning`: it came from allocateOutside().
   */
  insert(index: number, buf: Buffer, shared: boolean, returning = false): void {
    if (returning) this.outside = Math.max(0, this.outside - buf.length);
    const room = this.room;
    if (buf.length > room) return;
    this.delete(index);
    this.evictDownTo(room - buf.length);
    const e: Entry = { index, buf, pins: 0, shared, evicted: false, older: null, newer: null };
    this.byIndex.set(index, e);
    this.link(e);
    this.byMemory.set(buf.buffer, e);
    this.used += buf.length;
    // The piece now counts against the budget: free buffers beyond it go to the garbage collector.
    this.trimFree();
  }

  /** Drop piece `index` (its data changed or is being evicted); its memory is recycled once unpinned. */
  delete(index: number): void {
    const e = this.byIndex.get(index);
    if (e === undefined) return;
    this.byIndex.delete(index);
    this.unlink(e);
    this.used -= e.buf.length;
    e.evicted = true;
    if (e.pins === 0) this.retire(e);
  }

  /** Forget every piece; pinned ones are recycled when released, as after delete(). */
  clear(): void {
    for (const index of [...this.byIndex.keys()]) this.delete(index);
  }

  /** Throws if P1–P4 do not hold. */
  check(): void {
    let sum = 0;
    for (const [index, e] of this.byIndex) {
      if (e.index !== index || e.evicted) throw new Error(`piece cache: entry ${index} is misfiled`);
      if (this.byMemory.get(e.buf.buffer) !== e) throw new Error(`piece cache P3: piece ${index} is not indexed by memory`);
      sum += e.buf.length;
    }
    if ((this.oldest === null) !== (this.newest === null)) throw new Error('piece cache P4: one end of the recency list is missing');
    let linked = 0;
    for (let e = this.oldest, prev: Entry | null = null; e !== null; prev = e, e = e.newer) {
      if (++linked > this.byIndex.size) throw new Error('piece cache P4: the recency list is longer than the index (a cycle?)');
      if (e.older !== prev) throw new Error(`piece cache P4: piece ${e.index} is linked to the wrong older neighbour`);
      if (this.byIndex.get(e.index) !== e) throw new Error(`piece cache P4: piece ${e.index} is in the recency list but not cached`);
      if (e.newer === null && e !== this.newest) throw new Error(`piece cache P4: the list ends at piece ${e.index}, not at the newest`);
    }
    if (linked !== this.byIndex.size) throw new Error(`piece cache P4: ${linked} pieces in the recency list, ${this.byIndex.size} cached`);
    if (sum !== this.used) throw new Error(`piece cache P2: used ${this.used} but entries hold ${sum}`);
    if (this.used > this.room) throw new Error(`piece cache P2: used ${this.used} over the room ${this.room} (limit ${this.limit}, ${this.outside} lent outside)`);
    for (const e of this.byMemory.values()) {
      if (e.evicted && e.pins === 0) throw new Error(`piece cache P3: evicted piece ${e.index} kept without pins`);
      if (!e.evicted && this.byIndex.get(e.index) !== e) throw new Error(`piece cache P3: piece ${e.index} lost`);
      if (e.evicted && (e.older !== null || e.newer !== null)) throw new Error(`piece cache P4: evicted piece ${e.index} is still linked`);
    }
    for (const b of this.free) {
      if (this.byMemory.has(b.buffer)) throw new Error('piece cache P1: a free buffer is still in use');
    }
    if (this.free.length > MIN_FREE && this.held(this.free.length) > this.budget) {
      throw new Error(`piece cache P2: ${this.free.length} free buffers beside ${this.used} bytes cached and ${this.outside} lent exceed the budget ${this.budget}`);
    }
  }

  /** Evict least recently used pieces until at most `bytes` are cached. */
  private evictDownTo(bytes: number): void {
    while (this.used > bytes && this.oldest !== null) this.delete(this.oldest.index);
  }

  private trimFree(): void {
    const budget = this.budget;
    while (this.free.length > MIN_FREE && this.held(this.free.length) > budget) this.free.pop();
  }

  private touch(index: number): Entry | undefined {
    const e = this.byIndex.get(index);
    if (e !== undefined && e !== this.newest) {
      this.unlink(e);
      this.link(e);
    }
    return e;
  }

  /** Append `e` (not linked) as the most recently used entry. */
  private link(e: Entry): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest !== null) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: Entry): void {
    if (e.older !== null) e.older.newer = e.newer;
    else if (this.oldest === e) this.oldest = e.newer;
    if (e.newer !== null) e.newer.older = e.older;
    else if (this.newest === e) this.newest = e.older;
    e.older = null;
    e.newer = null;
  }

  private retire(e: Entry): void {
    this.byMemory.delete(e.buf.buffer);
    if (!e.shared && e.buf.length === this.recycleLength && this.mayKeepFree()) this.free.push(e.buf);
  }
}
