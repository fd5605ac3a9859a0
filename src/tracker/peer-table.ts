import type { Location } from './locality.js';

/**
 * Compact per-swarm peer storage for the memory store: no object, string or Map entry per peer.
 * A peer is one fixed-size record in a Uint32Array (address, port, pick mark, expiry, 20-byte
 * peer id) in one of four lists (seed|leech × IPv4|IPv6); an open-addressing index (an Int32Array
 * of list/position refs, linear probing) finds a peer by address. About 70 bytes per IPv4 peer
 * in total, against ~250 for objects in Maps, and the selection loop reads the same dense array.
 */

/** List numbers: bit 0 = leecher, bit 1 = IPv6. */
export const S4 = 0, L4 = 1, S6 = 2, L6 = 3;

/**
 * Words per record: IPv4 = ip, port, mark, expiry×2, id×5; IPv6 = address×4, port, mark, expiry×2, id×5.
 * The expiry (ms since the epoch) is split in two words so it never wraps; one typed array per list
 * instead of two matters when most swarms are tiny (a typed array costs ~100 bytes of its own).
 */
const W4 = 10, W6 = 13;
const TWO32 = 0x100000000;
// One record to start: most lists hold one or two peers, and a typed array of up to 64 bytes lives on the V8 heap
// instead of costing an ArrayBuffer and a malloc block of its own.
const MIN_CAP = 1;
const MIN_SLOTS = 4;

/** Per-process hash seed, so nobody can precompute addresses that collide in the index. */
const SEED = (Math.random() * 0x100000000) | 0;

/** An announcing peer's address, decoded once per request; also used to leave the requester out of its own answer. */
export class Endpoint {
  v6 = false;
  a0 = 0; a1 = 0; a2 = 0; a3 = 0;
  port = 0;
  hash = 0;

  /** From a compact address: 6 bytes (IPv4) or 18 (IPv6), port last. */
  set(c: Buffer): this {
    if (c.length === 6) {
      this.v6 = false;
      this.a0 = c.readUInt32BE(0); this.a1 = this.a2 = this.a3 = 0;
      this.port = (c[4]! << 8) | c[5]!;
      this.hash = hash4(this.a0, this.port);
    } else {
      this.v6 = true;
      this.a0 = c.readUInt32BE(0); this.a1 = c.readUInt32BE(4); this.a2 = c.readUInt32BE(8); this.a3 = c.readUInt32BE(12);
      this.port = (c[16]! << 8) | c[17]!;
      this.hash = hash6(this.a0, this.a1, this.a2, this.a3, this.port);
    }
    return this;
  }
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51); k = (k << 15) | (k >>> 17); k = Math.imul(k, 0x1b873593);
  h ^= k; h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fin(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function hash4(ip: number, port: number): number { return fin(mix(mix(SEED, ip), port)); }
function hash6(a0: number, a1: number, a2: number, a3: number, port: number): number {
  return fin(mix(mix(mix(mix(mix(SEED, a0), a1), a2), a3), port | 0x10000));
}

/** One of a swarm's four lists: parallel dense arrays, removal swaps the last record in. */
export class PeerList {
  /** Words per record. */
  readonly w: number;
  /** Word offsets in a record of the port, the pick mark, the expiry and the peer id. */
  readonly portAt: number;
  readonly markAt: number;
  readonly expAt: number;
  readonly idAt: number;
  readonly seeds: boolean;
  readonly v6: boolean;
  d: Uint32Array;
  /** Peer locations, only when the store has a zone map. */
  locs: (Location | undefined)[] | undefined;
  len = 0;

  constructor(readonly no: number, withLocations: boolean) {
    this.v6 = no >= S6;
    this.seeds = (no & 1) === 0;
    this.w = this.v6 ? W6 : W4;
    this.portAt = this.v6 ? 4 : 1;
    this.markAt = this.portAt + 1;
    this.expAt = this.portAt + 2;
    this.idAt = this.portAt + 4;
    this.d = new Uint32Array(MIN_CAP * this.w);
    if (withLocations) this.locs = [];
  }

  get capacity(): number { return this.d.length / this.w; }

  /** Expiry of record `i`, in ms since the epoch. */
  expires(i: number): number {
    const o = i * this.w + this.expAt;
    return this.d[o]! * TWO32 + this.d[o + 1]!;
  }

  setExpires(i: number, t: number): void {
    const o = i * this.w + this.expAt, hi = Math.floor(t / TWO32);
    this.d[o] = hi;
    this.d[o + 1] = t - hi * TWO32;
  }

  /** The record at `i` as a compact address (6 or 18 bytes) written into `out` at `off`; returns bytes written. */
  writeCompact(i: number, out: Uint8Array, off: number): number {
    const d = this.d, o = i * this.w;
    let n = 0;
    for (let k = 0; k < this.portAt; k++) {
      const x = d[o + k]!;
      out[off + n] = x >>> 24; out[off + n + 1] = (x >>> 16) & 255; out[off + n + 2] = (x >>> 8) & 255; out[off + n + 3] = x & 255;
      n += 4;
    }
    const port = d[o + this.portAt]!;
    out[off + n] = port >>> 8; out[off + n + 1] = port & 255;
    return n + 2;
  }

  compact(i: number): Buffer {
    const b = Buffer.allocUnsafe(this.v6 ? 18 : 6);
    this.writeCompact(i, b, 0);
    return b;
  }

  peerId(i: number): Buffer {
    const b = Buffer.allocUnsafe(20), d = this.d, o = i * this.w + this.idAt;
    for (let k = 0; k < 5; k++) b.writeUInt32BE(d[o + k]!, k * 4);
    return b;
  }

  matches(i: number, e: Endpoint): boolean {
    const d = this.d, o = i * this.w;
    if (this.v6 !== e.v6 || d[o + this.portAt] !== e.port || d[o] !== e.a0) return false;
    return !this.v6 || (d[o + 1] === e.a1 && d[o + 2] === e.a2 && d[o + 3] === e.a3);
  }

  hashAt(i: number): number {
    const d = this.d, o = i * this.w;
    return this.v6 ? hash6(d[o]!, d[o + 1]!, d[o + 2]!, d[o + 3]!, d[o + 4]!) : hash4(d[o]!, d[o + 1]!);
  }

  /** Appends a record; returns its position. */
  push(e: Endpoint, id: Buffer, expires: number, loc: Location | undefined): number {
    if (this.len === this.capacity) this.resize(this.capacity * 2);
    const i = this.len++, d = this.d, o = i * this.w;
    d[o] = e.a0;
    if (this.v6) { d[o + 1] = e.a1; d[o + 2] = e.a2; d[o + 3] = e.a3; }
    d[o + this.portAt] = e.port;
    d[o + this.markAt] = 0;
    this.setId(i, id);
    this.setExpires(i, expires);
    if (this.locs) this.locs[i] = loc;
    return i;
  }

  setId(i: number, id: Buffer): void {
    const d = this.d, o = i * this.w + this.idAt;
    d[o] = id.readUInt32BE(0); d[o + 1] = id.readUInt32BE(4); d[o + 2] = id.readUInt32BE(8);
    d[o + 3] = id.readUInt32BE(12); d[o + 4] = id.readUInt32BE(16);
  }

  /** Removes record `i` by moving the last one into its place; returns the old position of the moved record, or -1. */
  removeAt(i: number): number {
    const last = --this.len;
    let moved = -1;
    if (i !== last) {
      const w = this.w;
      this.d.copyWithin(i * w, last * w, last * w + w);
      if (this.locs) this.locs[i] = this.locs[last];
      moved = last;
    }
    if (this.locs) this.locs.length = last;
    // Give memory back once a list that grew big has mostly emptied.
    const cap = this.capacity;
    if (cap > 8 && last < cap >> 2) this.resize(cap >> 1);
    return moved;
  }

  private resize(cap: number): void {
    const d = new Uint32Array(cap * this.w);
    d.set(this.d.subarray(0, this.len * this.w));
    this.d = d;
  }
}

/**
 * All peers of one swarm, keyed by address (like opentracker: only the endpoint itself can update or
 * stop its entry, and a restarted client with a new peer id replaces its old entry). A ref names a
 * record: position × 4 + list number; the index holds ref + 1 (0 = empty slot).
 */
export class SwarmPeers {
  readonly lists: (PeerList | undefined)[] = [undefined, undefined, undefined, undefined];
  size = 0;
  private slots = new Int32Array(MIN_SLOTS);
  /** Index slot of the last successful find(). */
  private found = -1;

  constructor(private readonly withLocations: boolean) {}

  get seeds(): number { return (this.lists[S4]?.len ?? 0) + (this.lists[S6]?.len ?? 0); }
  get leechers(): number { return (this.lists[L4]?.len ?? 0) + (this.lists[L6]?.len ?? 0); }

  /** The ref of the peer at this address, or -1. */
  find(e: Endpoint): number {
    const slots = this.slots, mask = slots.length - 1, lists = this.lists;
    for (let h = e.hash & mask; ; h = (h + 1) & mask) {
      const v = slots[h]!;
      if (v === 0) return -1;
      const ref = v - 1;
      if (lists[ref & 3]!.matches(ref >>> 2, e)) { this.found = h; return ref; }
    }
  }

  /** Adds a peer that find() did not find; returns its ref. */
  add(no: number, e: Endpoint, id: Buffer, expires: number, loc: Location | undefined): number {
    // Grow the index first: rehash() places every record already in the lists.
    if ((this.size + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    const list = (this.lists[no] ??= new PeerList(no, this.withLocations));
    const ref = list.push(e, id, expires, loc) * 4 + no;
    this.place(ref, e.hash);
    this.size++;
    return ref;
  }

  /**
   * Refreshes the peer `ref` (which the last find() returned): new id and expiry, and a move to list
   * `no` when it changed between seed and leecher. Returns its (possibly new) ref.
   */
  update(ref: number, no: number, id: Buffer, expires: number): number {
    const from = ref & 3, i = ref >>> 2, list = this.lists[from]!;
    if (from === no) {
      list.setExpires(i, expires);
      list.setId(i, id);
      return ref;
    }
    const slot = this.found;
    const to = (this.lists[no] ??= new PeerList(no, this.withLocations));
    const j = to.len;
    if (j === to.capacity) to.push(ENDPOINT_UNUSED, id, expires, undefined); else to.len++;
    // Same family: copy the address words and mark, then the new id and expiry.
    to.d.set(list.d.subarray(i * list.w, i * list.w + list.w), j * to.w);
    to.setId(j, id);
    to.setExpires(j, expires);
    if (to.locs) to.locs[j] = list.locs?.[i];
    const nref = j * 4 + no;
    this.slots[slot] = nref + 1;
    this.detach(list, i);
    return nref;
  }

  /** Removes the peer `ref`. */
  remove(ref: number): void {
    const list = this.lists[ref & 3]!, i = ref >>> 2;
    this.unplace(this.slotOf(ref, list.hashAt(i)));
    this.detach(list, i);
    this.size--;
    if (this.slots.length > MIN_SLOTS && this.size * 8 < this.slots.length) this.rehash(this.slots.length >> 1);
  }

  /** Removes every peer whose expiry is at or before `now`; returns how many seeds and leechers went. */
  expire(now: number, out: { seeds: number; leechers: number }): void {
    for (let no = 0; no < 4; no++) {
      const list = this.lists[no];
      if (!list) continue;
      // Backwards: removal swaps in the last record, which has already been checked.
      for (let i = list.len - 1; i >= 0; i--) {
        if (list.expires(i) > now) continue;
        if (list.seeds) out.seeds++; else out.leechers++;
        this.remove(i * 4 + no);
        if (this.lists[no] !== list) break;
      }
    }
  }

  /** Takes record `i` out of `list` (the index entry is already gone or repointed), fixing the moved record's ref. */
  private detach(list: PeerList, i: number): void {
    const moved = list.removeAt(i);
    if (moved >= 0) this.slots[this.slotOf(moved * 4 + list.no, list.hashAt(i))] = i * 4 + list.no + 1;
    if (list.len === 0) this.lists[list.no] = undefined;
  }

  private slotOf(ref: number, hash: number): number {
    const slots = this.slots, mask = slots.length - 1, v = ref + 1;
    for (let h = hash & mask; ; h = (h + 1) & mask) if (slots[h] === v) return h;
  }

  private place(ref: number, hash: number): void {
    const slots = this.slots, mask = slots.length - 1;
    let h = hash & mask;
    while (slots[h] !== 0) h = (h + 1) & mask;
    slots[h] = ref + 1;
  }

  /** Backward-shift deletion: no tombstones, so probes stay short under churn. */
  private unplace(hole: number): void {
    const slots = this.slots, mask = slots.length - 1, lists = this.lists;
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const v = slots[j]!;
      if (v === 0) break;
      const ref = v - 1;
      const home = lists[ref & 3]!.hashAt(ref >>> 2) & mask;
      // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
      if (hole <= j ? home <= hole || home > j : home <= hole && home > j) {
        slots[hole] = v;
        hole = j;
      }
    }
    slots[hole] = 0;
  }

  private rehash(n: number): void {
    this.slots = new Int32Array(Math.max(MIN_SLOTS, n));
    for (let no = 0; no < 4; no++) {
      const list = this.lists[no];
      if (list) for (let i = 0; i < list.len; i++) this.place(i * 4 + no, list.hashAt(i));
    }
  }
}

/** Placeholder for growing a list before its record is overwritten. */
const ENDPOINT_UNUSED = new Endpoint();
