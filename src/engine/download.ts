import { pieceHashAt, pieceLengthAt, type Metainfo } from '../metainfo/types.js';
import { sha1, sha1Transfer } from '../util/sha1.js';
import { BLOCK_SIZE } from '../wire/types.js';
import type { PiecePicker } from './piece-picker.js';
import { requestKey, type DownloadSlot, type PeerConnection as Peer } from '../connection/connection.js';
import type { TokenBucket } from './token-bucket.js';

/**
 * Whoever a block was requested from: a peer connection, or a web seed (BEP 19) fetching over HTTP. The picker keys
 * requests by this object; the downloader needs only its request bookkeeping and a way to say "never mind".
 */
export interface BlockSource {
  readonly download: DownloadSlot;
  readonly closed: boolean;
  sendCancel(index: number, begin: number, length: number): void;
}

/** What the downloader needs from its torrent; keeps this file free of sockets, storage and events. */
export interface DownloadHost {
  readonly meta: Metainfo;
  readonly picker: PiecePicker;
  readonly downloadBucket: TokenBucket | null;
  /**
   * Verified data goes to disk; resolves once written. On success `data` is no longer ours: storage keeps it as a
   * cached piece to upload from, and recycles it through allocatePiece later.
   */
  writePiece(index: number, data: Buffer): Promise<void>;
  /** A piece buffer that owns its ArrayBuffer (it moves to a hash worker and back), recycled when possible. */
  allocatePiece(length: number): Buffer;
  /** A buffer from allocatePiece that nobody else has seen can be reused. */
  recyclePiece(buf: Buffer): void;
  pieceVerified(index: number): void;
  pieceFailed(index: number, contributors: Set<BlockSource>): void;
  /** A peer (or web seed) sent data proven wrong by a later good copy of the same piece. */
  banPeer(peer: BlockSource, reason: string): void;
  /** A peer keeps sending blocks that answer none of our requests (wrong offset or size, or never asked for): drop it. */
  dropPeer(peer: BlockSource, reason: string): void;
  storageFailed(err: unknown): void;
  /** Pending verification/writes dropped below the limit again: top up every peer. */
  resumeRequests(): void;
  peerByKey(key: object): BlockSource | undefined;
  /** May this peer be asked for pieces a reader is waiting on (streaming)? Slow peers are not. Default yes. */
  mayTakeDeadlines?(peer: Peer): boolean;
  addWasted(bytes: number): void;
}

interface InFlightPiece {
  buffer: Buffer;
  /** Blocks being copied into `buffer` right now; a buffer goes back to storage for reuse only when this is 0. */
  copying: number;
  /** Who delivered each block, for attributing a failed hash. */
  senders: (BlockSource | undefined)[];
  /** Who is copying each block in right now: one writer per block, so nobody's bytes land under another's name. */
  writers: (BlockSource | undefined)[];
  verifying: boolean;
  verifyWhenIdle: boolean;
  /** When its first block was requested (to tell pieces that stall). */
  startedAt: number;
}

/** Requests kept in flight per peer: the bandwidth–delay product, measured, within these bounds. */
const MIN_QUEUE = 16;
const MAX_QUEUE = 2000;
/** Seconds of the peer's measured rate to keep requested (libtorrent calls this request_queue_time). */
const QUEUE_SECONDS = 0.5;
/** Streaming (a reader waits for pieces in order): seconds of the peer's rate kept requested, and the floor. */
const STREAM_QUEUE_SECONDS = 0.15;
const STREAM_MIN_QUEUE = 6;
/**
 * Refill only when the queue has fallen an eighth below target (at least 4 blocks), so requests go out in
 * batches: on loopback each socket write costs about as much kernel time as tens of blocks of payload.
 */
const REFILL_FRACTION = 8;
/**
 * Bytes of complete pieces waiting for their hash and write. Past this, no new requests go out until the disk
 * catches up: the network is paced to the disk instead of piling pieces up in memory. Storage writes one piece of a
 * file at a time, so a few queued pieces keep the disk busy; more only hold memory. Measured with 1 MiB pieces: the
 * 1 GiB loopback pair (disk-bound) ran as fast with 8 MiB as with 16 (310–339 MB/s against 298–302), and in a
 * 1 GiB swarm whose page cache hits the kernel's dirty limit the downloaders' piece buffers fell by about 9 MiB.
 */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** Blocks at an offset or of a size we never asked for: no honest client sends one, so the sender goes at this many. */
export const BAD_BLOCKS_TO_DROP = 3;
/**
 * Blocks received beyond the blocks requested from a peer. An honest peer sends at most what it was asked for (late
 * answers to cancelled requests included); past this slack it is spraying data at us.
 */
export const UNREQUESTED_BLOCKS_TO_DROP = 64;

/**
 * Block-level downloading: sizes each peer's request pipeline, hands the parser the buffer each block goes into,
 * verifies complete pieces off the event loop and attributes bad data (smart ban: after a hash failure each block's
 * hash and sender are remembered; when the piece later verifies, a peer whose block differed sent bad data).
 */
export class Downloader {
  private readonly host: DownloadHost;
  private readonly inFlight = new Map<number, InFlightPiece>();
  /** Per failed piece: hash of each block as first received, and who sent it. */
  private readonly suspectBlocks = new Map<number, { peer: BlockSource; hash: Buffer }[]>();
  private readonly blocksPerPiece: number;
  private closed = false;
  private requestScratch = new Uint32Array(3 * 64);
  /** Bytes of pieces complete but not yet written (see MAX_PENDING_BYTES). */
  private pendingBytes = 0;
  private throttled = false;

  constructor(host: DownloadHost) {
    this.host = host;
    this.blocksPerPiece = Math.ceil(host.meta.pieceLength / BLOCK_SIZE);
  }

  /** Bytes of piece buffers held now: pieces in flight, being hashed or written. */
  get bufferBytes(): number {
    let n = 0;
    for (const p of this.inFlight.values()) n += p.buffer.length;
    return n;
  }

  /** Target queue depth for a peer: its rate × QUEUE_SECONDS in blocks, capped by its `reqq`. */
  queueTarget(peer: Peer): number {
    const byRate = Math.ceil((peer.download.meter.rate() * QUEUE_SECONDS) / BLOCK_SIZE);
    return Math.min(Math.max(MIN_QUEUE, byRate), peer.maxRequests, MAX_QUEUE);
  }

  /**
   * While readers stream, a shorter pipeline: a peer writes what we asked into its socket at once (hundreds of KiB
   * of kernel buffer on a slow link), where a cancel cannot reach it, so every queued block is delay for the piece a
   * reader asks for next (after a seek, the whole queue). STREAM_QUEUE_SECONDS still covers round trips up to that.
   */
  private streamQueueTarget(peer: Peer): number {
    const byRate = Math.ceil((peer.download.meter.rate() * STREAM_QUEUE_SECONDS) / BLOCK_SIZE);
    return Math.min(this.queueTarget(peer), Math.max(STREAM_MIN_QUEUE, byRate));
  }

  /** Top up a peer's request pipeline. Called when it unchokes us, has something new, or a block arrives. */
  fill(peer: Peer): void {
    if (this.closed || peer.closed || !peer.amInterested) return;
    if (this.host.picker.urgentCount > 0) this.preempt(peer);
    const choked = peer.peerChoking;
    if (choked && peer.allowedFast.size === 0) return;
    if (this.pendingBytes > MAX_PENDING_BYTES) {
      this.throttled = true;
      return;
    }
    const target = this.host.picker.streaming ? this.streamQueueTarget(peer) : this.queueTarget(peer);
    let want = target - peer.download.outstanding.size;
    if (want < Math.max(4, target / REFILL_FRACTION) && peer.download.outstanding.size > 0) return;
    if (want <= 0) return;
    const bucket = this.host.downloadBucket;
    if (bucket) {
      const affordable = Math.floor(bucket.available() / BLOCK_SIZE);
      if (affordable <= 0) return;
      want = Math.min(want, affordable);
    }
    if (this.requestScratch.length < 3 * want) this.requestScratch = new Uint32Array(3 * want);
    const scratch = this.requestScratch;
    let n = 0;
    this.host.picker.pick(peer, peer.isSeed ? null : peer.bits, peer.isSeed, want, (index, begin, length) => {
      if (!this.inFlight.has(index)) this.startPiece(index);
      peer.download.outstanding.set(requestKey(index, begin), { index, begin, length });
      bucket?.take(length);
      scratch[3 * n] = index;
      scratch[3 * n + 1] = begin;
      scratch[3 * n + 2] = length;
      n++;
    }, choked ? peer.allowedFast : undefined, this.host.mayTakeDeadlines?.(peer) ?? true, peer.servesUnannounced);
    peer.download.requested += n;
    peer.sendRequests(scratch, n);
  }

  /**
   * Streaming: a reader is blocked on a piece this peer could send, and a peer serves its queue in order, so the
   * peer's requests for pieces no reader needs (an old position's window after a seek, rarest-first fill) would come
   * first. Cancel them: the peer drops them from its queue, the picker frees the blocks, and fill() asks for the
   * reader's pieces now. Blocks already on the wire still arrive, and are discarded as unrequested.
   */
  private preempt(peer: Peer): void {
    const picker = this.host.picker;
    const outstanding = peer.download.outstanding;
    if (outstanding.size === 0 || !(this.host.mayTakeDeadlines?.(peer) ?? true)) return;
    if (!picker.servesUrgent(peer.isSeed || peer.servesUnannounced ? null : peer.bits)) return;
    const copying = peer.download.copyTarget as InFlightPiece | null;
    let touched: number[] | null = null;
    for (const [key, req] of outstanding) {
      if (picker.isCritical(req.index)) continue;
      // The block arriving right now is paid for: let it land.
      if (copying !== null && copying === this.inFlight.get(req.index) && peer.download.copyBlock === req.begin / BLOCK_SIZE) continue;
      outstanding.delete(key);
      picker.requestCancelled(peer, req.index, req.begin);
      peer.sendCancel(req.index, req.begin, req.length);
      (touched ??= []).push(req.index);
    }
    if (touched !== null) for (const index of touched) this.dropIfRequeued(index);
  }

  /**
   * Requests up to `max` blocks for a source that is not a wire connection (a web seed, which has every piece and
   * counts in no availability): picked by the same picker, restricted to `allowed` when given, recorded as the
   * source's outstanding requests. Calls `out` per block; returns how many. Honours the pending-bytes bound.
   */
  request(src: BlockSource, max: number, allowed: ReadonlySet<number> | undefined,
    out: (index: number, begin: number, length: number) => void): number {
    if (this.closed || src.closed || max <= 0) return 0;
    if (this.pendingBytes > MAX_PENDING_BYTES) {
      this.throttled = true;
      return 0;
    }
    const outstanding = src.download.outstanding;
    const n = this.host.picker.pick(src, null, true, max, (index, begin, length) => {
      if (!this.inFlight.has(index)) this.startPiece(index);
      outstanding.set(requestKey(index, begin), { index, begin, length });
      out(index, begin, length);
    }, allowed);
    src.download.requested += n;
    return n;
  }

  private startPiece(index: number): InFlightPiece {
    const length = pieceLengthAt(this.host.meta, index);
    const blocks = Math.ceil(length / BLOCK_SIZE);
    const p: InFlightPiece = {
      buffer: this.host.allocatePiece(length), copying: 0, senders: new Array(blocks), writers: new Array(blocks),
      verifying: false, verifyWhenIdle: false, startedAt: Date.now(),
    };
    this.inFlight.set(index, p);
    return p;
  }

  /**
   * Piece buffers come from storage and go back to it: a verified piece becomes a cached piece (peers ask for what
   * we just announced, and it is served without a disk read), and the cache's evicted buffers are the next pieces'
   * buffers, so the kernel need not fault in and zero fresh pages for every piece. (Shared memory would spare the
   * GC pressure of moving buffers to the hash worker, but V8 copies into a SharedArrayBuffer with relaxed
   * atomics, 3-4x slower than memcpy: measured, a wash.) Here: a piece that was not stored gives its buffer back,
   * unless a copy into it is still in progress.
   */
  private release(piece: InFlightPiece): void {
    if (piece.copying === 0 && !this.closed) this.host.recyclePiece(piece.buffer);
  }

  /**
   * Parser asks where a block goes: only into the piece buffer, only for an outstanding request from this peer with
   * exactly this index, begin and length, and only while nobody else is copying the same block in.
   */
  blockTarget(peer: BlockSource, index: number, begin: number, length: number): Buffer | null {
    const req = peer.download.outstanding.get(requestKey(index, begin));
    if (req === undefined || req.index !== index || req.begin !== begin || req.length !== length) return null;
    const piece = this.inFlight.get(index);
    const b = begin / BLOCK_SIZE;
    if (piece === undefined || piece.verifying || piece.senders[b] !== undefined || piece.writers[b] !== undefined) return null;
    piece.copying++;
    piece.writers[b] = peer;
    peer.download.copyTarget = piece;
    peer.download.copyBlock = b;
    return piece.buffer.subarray(begin, begin + length);
  }

  /** The block being copied in from `peer` is finished (or abandoned): the piece may be hashed once nobody copies. */
  private endCopy(peer: BlockSource): InFlightPiece | null {
    const dl = peer.download;
    const target = dl.copyTarget as InFlightPiece | null;
    if (target === null) return null;
    dl.copyTarget = null;
    if (target.writers[dl.copyBlock] === peer) target.writers[dl.copyBlock] = undefined;
    target.copying--;
    if (target.copying === 0 && target.verifyWhenIdle) {
      // A complete piece waits for late duplicate copies to finish before it is hashed (see verify()).
      for (const [index, p] of this.inFlight) if (p === target) void this.verify(index, target);
    }
    return target;
  }

  /** A block finished arriving. Returns true when it was useful. */
  blockReceived(peer: BlockSource, index: number, begin: number, length: number): boolean {
    const key = requestKey(index, begin);
    const target = this.endCopy(peer);
    const dl = peer.download;
    dl.received++;
    const req = dl.outstanding.get(key);
    if (req === undefined || req.index !== index || req.begin !== begin || req.length !== length) {
      this.host.addWasted(length);
      if (req !== undefined || !this.validBlock(index, begin, length)) {
        // Not what we asked for: the request (if any) stays outstanding, and the sender is counted.
        if (++dl.badBlocks >= BAD_BLOCKS_TO_DROP) {
          this.host.dropPeer(peer, `sent ${dl.badBlocks} blocks that match no request (last: piece ${index}, offset ${begin}, ${length} bytes)`);
        }
      } else if (dl.received > dl.requested + UNREQUESTED_BLOCKS_TO_DROP) {
        this.host.dropPeer(peer, `sent ${dl.received} blocks but was asked for ${dl.requested}`);
      }
      return false;
    }
    dl.outstanding.delete(key);
    if (target === null) {
      // Requested but not copied (the piece was already complete): release the picker's record of the request.
      this.host.picker.requestCancelled(peer, index, begin);
      this.host.addWasted(length);
      this.dropIfRequeued(index);
      return false;
    }
    peer.download.lastBlockAt = Date.now();
    peer.download.snubbed = false;
    const picker = this.host.picker;
    if (!picker.blockReceived(peer, index, begin)) {
      this.host.addWasted(length);
      return false;
    }
    const piece = this.inFlight.get(index);
    if (piece === undefined) return false;
    piece.senders[begin / BLOCK_SIZE] = peer;
    // Endgame (or an urgent streaming piece): the same block may be in flight from others; tell them not to bother.
    if (picker.inEndgame || picker.isUrgent(index)) {
      for (const otherKey of picker.othersRequesting(index, begin, peer)) {
        const other = this.host.peerByKey(otherKey);
        if (other && other.download.outstanding.delete(key)) {
          picker.requestCancelled(other, index, begin);
          if (!other.closed) other.sendCancel(index, begin, length);
        }
      }
    }
    if (picker.isPieceComplete(index)) {
      if (piece.copying === 0) void this.verify(index, piece);
      else piece.verifyWhenIdle = true;
    }
    return true;
  }

  private async verify(index: number, piece: InFlightPiece): Promise<void> {
    if (piece.verifying) return;
    piece.verifying = true;
    piece.verifyWhenIdle = false;
    const size = piece.buffer.length;
    this.pendingBytes += size;
    try {
      await this.verifyAndWrite(index, piece);
    } finally {
      this.pendingBytes -= size;
      if (this.throttled && this.pendingBytes <= MAX_PENDING_BYTES / 2 && !this.closed) {
        this.throttled = false;
        this.host.resumeRequests();
      }
    }
  }

  private async verifyAndWrite(index: number, piece: InFlightPiece): Promise<void> {
    const host = this.host;
    let ok: boolean;
    try {
      // The buffer travels to the hash worker and back; nothing may touch it meanwhile (copying is 0 here).
      const r = await sha1Transfer(piece.buffer);
      piece.buffer = r.data;
      ok = r.digest.equals(pieceHashAt(host.meta, index));
    } catch (err) {
      ok = false;
    }
    if (this.closed) return;
    if (!ok) {
      this.rememberSuspects(index, piece);
      const contributors = new Set<BlockSource>();
      for (const p of piece.senders) if (p) contributors.add(p);
      this.inFlight.delete(index);
      this.release(piece);
      host.addWasted(piece.buffer.length);
      host.pieceFailed(index, contributors);
      return;
    }
    this.judgeSuspects(index, piece);
    try {
      await host.writePiece(index, piece.buffer);
    } catch (err) {
      this.inFlight.delete(index);
      host.storageFailed(err);
      return;
    }
    // Stored: the buffer now belongs to the storage's piece cache.
    this.inFlight.delete(index);
    if (!this.closed) host.pieceVerified(index);
  }

  private rememberSuspects(index: number, piece: InFlightPiece): void {
    if (this.suspectBlocks.has(index)) return; // the first bad copy is enough evidence to compare against
    const list: { peer: BlockSource; hash: Buffer }[] = [];
    for (let b = 0; b < piece.senders.length; b++) {
      const peer = piece.senders[b];
      if (!peer) continue;
      const start = b * BLOCK_SIZE;
      list[b] = { peer, hash: sha1(piece.buffer.subarray(start, Math.min(start + BLOCK_SIZE, piece.buffer.length))) };
    }
    this.suspectBlocks.set(index, list);
  }

  private judgeSuspects(index: number, piece: InFlightPiece): void {
    const list = this.suspectBlocks.get(index);
    if (!list) return;
    this.suspectBlocks.delete(index);
    for (let b = 0; b < list.length; b++) {
      const s = list[b];
      if (!s) continue;
      const start = b * BLOCK_SIZE;
      const good = sha1(piece.buffer.subarray(start, Math.min(start + BLOCK_SIZE, piece.buffer.length)));
      if (!good.equals(s.hash)) this.host.banPeer(s.peer, `sent corrupt data for piece ${index}`);
    }
  }

  /** Is (index, begin, length) a block as we request them: 16 KiB aligned, full length except at a piece's end? */
  private validBlock(index: number, begin: number, length: number): boolean {
    const meta = this.host.meta;
    if (index >= meta.pieceCount || begin % BLOCK_SIZE !== 0) return false;
    const pieceLength = pieceLengthAt(meta, index);
    return begin < pieceLength && length === Math.min(BLOCK_SIZE, pieceLength - begin);
  }

  /** Give back everything a peer had in flight (it choked us, went away, or timed out). */
  releasePeer(peer: BlockSource, sendCancel: boolean): void {
    // Gone in the middle of a block: that block's bytes are abandoned (its next sender overwrites them all).
    if (peer.closed) this.endCopy(peer);
    const picker = this.host.picker;
    const outstanding = peer.download.outstanding;
    if (outstanding.size === 0) return;
    const touched = new Set<number>();
    for (const req of outstanding.values()) {
      picker.requestCancelled(peer, req.index, req.begin);
      touched.add(req.index);
      if (sendCancel && !peer.closed) peer.sendCancel(req.index, req.begin, req.length);
    }
    outstanding.clear();
    for (const index of touched) this.dropIfRequeued(index);
  }

  /** The peer rejected one request (BEP 6), or a web seed could not fetch it: the block is free again. */
  rejected(peer: BlockSource, index: number, begin: number, length: number): void {
    const req = peer.download.outstanding.get(requestKey(index, begin));
    if (req === undefined || req.length !== length) return;
    peer.download.outstanding.delete(requestKey(index, begin));
    this.host.picker.requestCancelled(peer, index, begin);
    this.dropIfRequeued(index);
  }

  /**
   * Every request of a piece was cancelled before any block arrived: the picker has put it back in the queue, so its
   * buffer goes back to storage for reuse rather than sitting outside the pending-bytes bound until the piece is picked again.
   */
  private dropIfRequeued(index: number): void {
    const piece = this.inFlight.get(index);
    if (piece === undefined || piece.verifying || piece.copying > 0) return;
    if (this.host.picker.pieceState(index) !== 'queued') return;
    this.inFlight.delete(index);
    this.release(piece);
  }

  /**
   * Invariant C6 (see invariants.ts): a piece's `copying` count is the number of blocks with a writer; each writer is
   * an open source whose copy target is that piece and block. Returns what is wrong, or null.
   */
  checkCopies(): string | null {
    for (const [index, p] of this.inFlight) {
      let writers = 0;
      for (let b = 0; b < p.writers.length; b++) {
        const w = p.writers[b];
        if (w === undefined) continue;
        writers++;
        if (w.closed) return `piece ${index} block ${b} is being copied in from a closed source`;
        if (w.download.copyTarget !== p || w.download.copyBlock !== b) return `piece ${index} block ${b}: its writer is copying elsewhere`;
        if (p.senders[b] !== undefined) return `piece ${index} block ${b} has a writer and a sender`;
      }
      if (writers !== p.copying) return `piece ${index} counts ${p.copying} copies in progress but has ${writers} writers`;
    }
    return null;
  }

  /** Pieces with a buffer here (for the cross-structure invariant checks). */
  inFlightIndices(): IterableIterator<number> {
    return this.inFlight.keys();
  }

  /** When the oldest piece still being downloaded (not verifying) was started, skipping `except`; 0 when none. */
  oldestPieceStart(except?: ReadonlySet<number>): number {
    let oldest = 0;
    for (const [index, p] of this.inFlight) {
      if (p.verifying || p.verifyWhenIdle || except?.has(index)) continue;
      if (oldest === 0 || p.startedAt < oldest) oldest = p.startedAt;
    }
    return oldest;
  }

  isVerifying(index: number): boolean {
    return this.inFlight.get(index)?.verifying === true;
  }

  get piecesInFlight(): number {
    return this.inFlight.size;
  }

  close(): void {
    this.closed = true;
    this.inFlight.clear();
    this.suspectBlocks.clear();
  }

  get blocksPerFullPiece(): number {
    return this.blocksPerPiece;
  }
}
