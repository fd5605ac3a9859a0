import { pieceLengthAt, type Metainfo } from '../metainfo/types.js';
import type { Bitfield } from '../util/bitfield.js';
import type { IncomingRequest, PeerConnection as Peer } from '../connection/connection.js';
import { BLOCK_SIZE } from '../wire/types.js';
import type { TokenBucket } from './token-bucket.js';

/** Largest block we serve; BEP 3 clients use 16 KiB, some ask for up to 128 KiB. */
export const MAX_REQUEST_LENGTH = 128 * 1024;
/** Blocks written per corked batch (16 × 16 KiB = 256 KiB per writev). */
const BATCH_BLOCKS = 16;
/**
 * Bytes a peer's socket may hold unwritten before serving waits for its drain. Not the socket's own high-water mark
 * (16 KiB, one block): in a swarm a peer's requests trickle in a few per read, and stopping at one buffered block
 * sent the first block of a read at the end of the read and the rest one drain later, a second write and a trip
 * through 'drain' for every read (a seed answering paced requests made 9192 writes for 4818 reads). The blocks are
 * borrowed from the piece cache, not copied; a peer that stops reading holds at most this plus one batch of them.
 */
const MAX_SEND_BACKLOG = BATCH_BLOCKS * BLOCK_SIZE;

export interface UploadHost {
  readonly meta: Metainfo;
  readonly have: Bitfield;
  readonly uploadBucket: TokenBucket | null;
  readBlock(index: number, begin: number, length: number): Promise<Buffer>;
  /** The block if it can be had without waiting (piece cache), else undefined; valid until releaseBlock(). */
  borrowBlock(index: number, begin: number, length: number): Buffer | undefined;
  releaseBlock(block: Buffer): void;
  /** Bring a piece into the cache; resolves when borrowBlock would find it (unless evicted meanwhile). */
  preload(index: number): Promise<void>;
  /** Payload bytes of piece `index` sent to a peer. */
  uploaded(peer: Peer, index: number, bytes: number): void;
  protocolError(peer: Peer, reason: string): void;
  /** The peer's request queue is longer than we advertised: it is flooding us. */
  readonly maxQueuedRequests: number;
}

/**
 * Serves peers' requests: validates them, reads from storage (whose piece cache makes consecutive blocks of one
 * piece a single disk read) and writes them to the socket without copying, pausing while the socket's buffer is full
 * and while the upload limit is exhausted. Blocks are borrowed from the cache and released when their write
 * completes (UploadSlot.sent, in write order), so the cache can recycle piece memory instead of allocating.
 */
export class Uploader {
  private readonly host: UploadHost;

  constructor(host: UploadHost) {
    this.host = host;
  }

  /** Returns false when the request is invalid and the peer should be dropped. */
  request(peer: Peer, index: number, begin: number, length: number): void {
    const meta = this.host.meta;
    if (index >= meta.pieceCount || length === 0 || length > MAX_REQUEST_LENGTH || begin + length > pieceLengthAt(meta, index)) {
      this.host.protocolError(peer, `requested out-of-range block piece ${index} offset ${begin} length ${length}`);
      return;
    }
    // Both operands on every request: a branch first taken when a choked peer asks (a choking round in) would throw
    // away the optimized request path for seconds (bench/PROFILE.md, sixth session).
    const granted = peer.upload.granted.has(index);
    const chokedOut = peer.amChoking && !granted;
    if (chokedOut || !this.host.have.get(index) || peer.upload.queue.length >= this.host.maxQueuedRequests) {
      this.refuse(peer, index, begin, length);
      return;
    }
    peer.upload.queue.push({ index, begin, length });
    if (!peer.upload.serving) this.serve(peer);
  }

  /**
   * BEP 6 says answer a request we won't serve with a reject, so the peer can ask elsewhere. A peer that keeps
   * asking past our advertised queue, or while choked, is flooding: rejects are not sent to a peer that is not
   * reading them, and past a bound the peer is dropped, so it cannot make us buffer without limit.
   */
  private refuse(peer: Peer, index: number, begin: number, length: number): void {
    if (++peer.upload.refused > 4 * this.host.maxQueuedRequests) {
      this.host.protocolError(peer, `request flood (${peer.upload.refused} requests refused)`);
      return;
    }
    if (peer.handshake.fast && !peer.needsDrain) peer.sendReject(index, begin, length);
  }

  cancel(peer: Peer, index: number, begin: number, length: number): void {
    const q = peer.upload.queue;
    for (let i = 0; i < q.length; i++) {
      const r = q[i]!;
      if (r.index === index && r.begin === begin && r.length === length) {
        q.splice(i, 1);
        return;
      }
    }
  }

  /** We choked the peer: drop its queue except allowed-fast pieces (BEP 6 says reject each one explicitly). */
  choked(peer: Peer): void {
    const q = peer.upload.queue;
    let kept = 0;
    for (const r of q) {
      if (peer.upload.granted.has(r.index)) q[kept++] = r;
      else peer.sendReject(r.index, r.begin, r.length);
    }
    q.length = kept;
  }

  /** Socket drained: continue where serve() stopped. */
  drained(peer: Peer): void {
    if (!peer.upload.serving && peer.upload.queue.length > 0) this.serve(peer);
  }

  /**
   * Answers the peer's queued requests. Most blocks come from the piece cache with no rate limit to wait for: those go
   * out from a plain loop, since an async function costs a promise and a suspended frame per call (and the compiler
   * time of a larger function); only a request that must wait (a disk read, the upload limit) takes the async path.
   */
  private serve(peer: Peer): void {
    peer.upload.serving = true;
    let mustWait = false;
    try {
      mustWait = this.host.uploadBucket ? true : !this.sendCached(peer);
    } finally {
      if (!mustWait) peer.upload.serving = false;
    }
    if (mustWait) void this.serveWaiting(peer);
  }

  /** Sends cached blocks in corked batches; false when the queue's head is not cached (the caller reads it). */
  private sendCached(peer: Peer): boolean {
    const q = peer.upload.queue;
    let corked = false;
    let batch = 0;
    try {
      while (q.length > 0 && !peer.closed && (corked || peer.writeBacklog < MAX_SEND_BACKLOG)) {
        const r = q[0]!;
        const block = this.host.borrowBlock(r.index, r.begin, r.length);
        if (block === undefined) return false;
        q.shift();
        if (!corked) { peer.cork(); corked = true; batch = 0; }
        this.sendBorrowed(peer, r, block);
        if (++batch >= BATCH_BLOCKS) { peer.uncork(); corked = false; }
      }
      return true;
    } finally {
      if (corked && !peer.closed) peer.uncork();
    }
  }

  /** serve() for a queue that has to wait: for the upload limit's tokens, or for a piece to be read from disk. */
  private async serveWaiting(peer: Peer): Promise<void> {
    peer.upload.serving = true;
    let corked = false;
    let batch = 0;
    try {
      const q = peer.upload.queue;
      while (q.length > 0 && !peer.closed && (corked || peer.writeBacklog < MAX_SEND_BACKLOG)) {
        const bucket = this.host.uploadBucket;
        const r = q[0]!;
        if (bucket) {
          const wait = bucket.take(r.length);
          if (wait > 0) {
            if (corked) { peer.uncork(); corked = false; }
            await delay(wait);
            if (peer.closed) return;
            if (q[0] !== r) continue; // cancelled while waiting
          }
        }
        let block = this.host.borrowBlock(r.index, r.begin, r.length);
        if (block === undefined) {
          if (corked) { peer.uncork(); corked = false; }
          this.prefetchNext(q, r.index);
          try {
            // Usually the piece is then cached; if many peers evicted it meanwhile, read a copy of our own.
            await this.host.preload(r.index);
            if (peer.closed) return;
            if (q[0] !== r) continue; // cancelled (or choked) while reading
            block = this.host.borrowBlock(r.index, r.begin, r.length);
            if (block === undefined) {
              const copy = await this.host.readBlock(r.index, r.begin, r.length);
              if (peer.closed) return;
              if (q[0] === r) {
                q.shift();
                peer.sendPiece(r.index, r.begin, copy);
                this.host.uploaded(peer, r.index, r.length);
              }
              continue;
            }
          } catch (err) {
            this.host.protocolError(peer, `cannot read piece ${r.index}: ${(err as Error).message}`);
            return;
          }
        }
        q.shift();
        // Blocks from the cache go out in corked batches: one writev for many blocks instead of one per block.
        if (!corked) { peer.cork(); corked = true; batch = 0; }
        this.sendBorrowed(peer, r, block);
        if (++batch >= BATCH_BLOCKS) { peer.uncork(); corked = false; }
      }
    } finally {
      if (corked && !peer.closed) peer.uncork();
      peer.upload.serving = false;
    }
  }

  /** A block borrowed from the cache goes out without a copy; the cache gets it back once the socket wrote it. */
  private sendBorrowed(peer: Peer, r: IncomingRequest, block: Buffer): void {
    peer.upload.sent.push(block);
    peer.sendPiece(r.index, r.begin, block, peer.upload.onBlockWritten ??= this.releaser(peer));
    this.host.uploaded(peer, r.index, r.length);
  }

  /** Start reading the next piece the peer wants while this one is read, so the disk stays busy. */
  private prefetchNext(q: IncomingRequest[], current: number): void {
    for (let i = 1; i < q.length && i < 64; i++) {
      const next = q[i]!;
      if (next.index !== current) {
        this.host.preload(next.index).catch(() => undefined);
        return;
      }
    }
  }

  private releaser(peer: Peer): () => void {
    const sent = peer.upload.sent;
    return () => {
      const block = sent.shift();
      if (block !== undefined) this.host.releaseBlock(block);
    };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 1000)).unref());
}
