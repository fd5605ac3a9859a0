import { pieceLengthAt, type Metainfo } from '../metainfo/types.js';
import { Storage } from '../storage/index.js';
import { allowedFastSet } from '../wire/allowed-fast.js';
import type { Bitfield } from '../util/bitfield.js';
import type { PeerConnection } from '../connection/connection.js';
import { PiecePicker } from './piece-picker.js';
import { Choker, type ChokerPeer } from './choker.js';
import { RateMeter } from './rate-meter.js';
import { Downloader } from './download.js';
import { Uploader } from './upload.js';
import { InitialSeeder } from './initial-seeding.js';
import type { TorrentContext } from './context.js';
import type { AddOptions } from './types.js';

/** A peer that sends nothing we asked for in this long gets its requests taken back and is marked snubbed. */
const REQUEST_TIMEOUT_MS = 20_000;
/** Requests we accept queued from one peer; advertised as our `reqq`. */
export const MAX_QUEUED_REQUESTS = 1000;
/** Ban a peer that alone delivered this many pieces that failed their hash. */
const SOLE_FAILURES_TO_BAN = 2;
const RECHOKE_TICKS = 10;
/** BEP 6 allowed-fast set size we grant to a peer that has almost nothing (libtorrent grants 10). */
const ALLOWED_FAST_COUNT = 10;

/** What the content needs from its swarm session. */
export interface ContentHost {
  readonly ctx: TorrentContext;
  readonly opts: AddOptions;
  connections(): Iterable<PeerConnection>;
  emit(event: string, ...args: unknown[]): boolean;
  ban(c: PeerConnection, reason: string): void;
  /** Every wanted piece is verified (once per torrent run). */
  completed(): void;
  fail(err: unknown): void;
}

/**
 * The part of a torrent that exists once its info dictionary is known: storage, piece picker, choker, downloader,
 * uploader and initial seeder, and the piece-level reactions to what connections say. It never touches a socket:
 * everything goes through PeerConnection's typed interface.
 */
export class TorrentContent {
  readonly meta: Metainfo;
  private readonly host: ContentHost;
  storage!: Storage;
  picker!: PiecePicker;
  private choker!: Choker;
  downloader!: Downloader;
  private uploader!: Uploader;
  /** Set while initial seeding is spreading pieces; null otherwise. */
  private seeder: InitialSeeder | null = null;
  private ready = false;
  private closed = false;

  readonly downloadMeter = new RateMeter();
  readonly uploadMeter = new RateMeter();
  downloadedBytes = 0;
  uploadedBytes = 0;
  wastedBytes = 0;
  hashFailCount = 0;
  leftBytes = 0;
  wantedTotal = 0;
  private tickCount = 0;
  private rechokePending = false;
  complete = false;

  constructor(host: ContentHost, meta: Metainfo) {
    this.host = host;
    this.meta = meta;
    for (let i = 0; i < meta.pieceCount; i++) this.leftBytes += pieceLengthAt(meta, i);
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Open storage and verify what is already on disk. */
  async open(onProgress: (done: number, total: number) => void): Promise<void> {
    const meta = this.meta;
    const opts = this.host.opts;
    const storageOpts: Parameters<typeof Storage.open>[1] = {
      dir: opts.path,
      onWarning: (msg: string) => this.host.emit('warning', msg),
    };
    if (opts.selectedFiles) storageOpts.selectedFiles = opts.selectedFiles;
    if (opts.resumeFile !== undefined) storageOpts.resumeFile = opts.resumeFile;
    this.storage = await Storage.open(meta, storageOpts);
    await this.storage.verifyExisting({
      recheck: opts.recheck === true,
      assumeValid: opts.assumeValid === true && opts.recheck !== true,
      onProgress,
    });
    if (this.closed) return;

    const have = this.storage.have;
    const wanted = this.storage.wanted;
    this.picker = new PiecePicker({ pieceCount: meta.pieceCount, pieceLength: meta.pieceLength, lastPieceLength: meta.lastPieceLength }, have, wanted);
    this.choker = new Choker({ uploadSlots: this.host.ctx.uploadSlots });
    this.downloader = new Downloader({
      meta,
      picker: this.picker,
      downloadBucket: this.host.ctx.downloadBucket,
      writePiece: (index, data) => this.storage.writePiece(index, data),
      pieceVerified: (index) => this.onPieceVerified(index),
      pieceFailed: (index, contributors) => this.onPieceFailed(index, contributors),
      banPeer: (peer, reason) => this.host.ban(peer, reason),
      storageFailed: (err) => this.host.fail(err),
      resumeRequests: () => { for (const p of this.host.connections()) this.downloader.fill(p); },
      peerByKey: (key) => key as PeerConnection,
      addWasted: (bytes) => { this.wastedBytes += bytes; },
    });
    this.uploader = new Uploader({
      meta,
      have,
      uploadBucket: this.host.ctx.uploadBucket,
      readBlock: (index, begin, length) => this.storage.readBlock(index, begin, length),
      cachedBlock: (index, begin, length) => this.storage.cachedBlock(index, begin, length),
      uploaded: (peer, index, bytes) => {
        this.seeder?.blockSent(peer, index, bytes);
        peer.upload.bytes += bytes;
        peer.upload.meter.add(bytes);
        this.uploadedBytes += bytes;
        this.uploadMeter.add(bytes);
      },
      protocolError: (peer, reason) => peer.close(reason),
      maxQueuedRequests: MAX_QUEUED_REQUESTS,
    });
    this.leftBytes = 0;
    for (let i = 0; i < meta.pieceCount; i++) {
      if (wanted.get(i)) {
        this.wantedTotal++;
        if (!have.get(i)) this.leftBytes += pieceLengthAt(meta, i);
      }
    }
    this.complete = this.picker.missingCount() === 0;
    if (this.complete && have.complete && this.host.opts.initialSeeding !== false) {
      this.seeder = new InitialSeeder(meta.pieceCount, meta.pieceLength, meta.lastPieceLength);
    }
    this.ready = true;
  }

  get have(): Bitfield {
    return this.storage.have;
  }

  /** Our greeting hides our pieces while initial seeding reveals them a few at a time. */
  get hidesPieces(): boolean {
    return this.seeder?.active === true;
  }

  /**
   * A connection joins the content: one that was open before the content was ready (it connected while we fetched
   * metadata or checked data) or a new one. Returns false when it must be dropped.
   */
  attach(c: PeerConnection): boolean {
    try {
      c.setPieceCount(this.meta.pieceCount);
    } catch (err) {
      c.destroy(err as Error);
      return false;
    }
    if (c.isSeed) {
      this.picker.addHaveAll();
      c.interestingCount = this.picker.missingCount();
    } else if (!c.bits.empty) {
      this.picker.addPeerBitfield(c.bits);
      c.interestingCount = this.countInteresting(c.bits);
    }
    if (this.complete && c.hasAll) {
      c.destroy(); // both seeds: nothing to trade
      return false;
    }
    return true;
  }

  /** After our greeting went out: offer initial-seeding pieces, grant allowed-fast pieces, show interest. */
  greeted(c: PeerConnection): void {
    if (this.seeder?.active) {
      c.cork();
      this.seeder.addPeer(c);
      this.seeder.offer(c);
      c.uncork();
    }
    this.grantAllowedFast(c);
    this.updateInterest(c);
  }

  /**
   * BEP 6: a peer with (almost) nothing gets a few pieces it may request while we choke it, so it has something to
   * trade before its first unchoke. Only IPv4 peers: the spec's set is defined over IPv4 addresses.
   */
  private grantAllowedFast(c: PeerConnection): void {
    if (!c.fast || this.seeder?.active || c.host.includes(':')) return;
    const have = this.storage.have;
    if (have.empty || c.isSeed || c.bits.count > ALLOWED_FAST_COUNT) return;
    for (const index of allowedFastSet(ALLOWED_FAST_COUNT, this.meta.infoHash, c.host, this.meta.pieceCount)) {
      if (!have.get(index) || c.bits.get(index)) continue;
      c.upload.granted.add(index);
      c.sendAllowedFast(index);
    }
  }

  // ---- reactions to connection events (the session forwards them once the content is ready) ----

  choked(c: PeerConnection): void {
    // BEP 6: with the fast extension a choke does not cancel requests; the peer rejects them explicitly.
    if (!c.fast) this.downloader.releasePeer(c, false);
  }

  unchoked(c: PeerConnection): void {
    this.downloader.fill(c);
  }

  interested(): void {
    this.scheduleRechoke();
  }

  notInterested(c: PeerConnection): void {
    this.seeder?.peerNotInterested(c);
    if (!c.amChoking) this.scheduleRechoke();
  }

  gotHave(c: PeerConnection, index: number): void {
    this.picker.addPeerHave(index);
    this.seeder?.peerHas(c, index);
    if (this.storage.wanted.get(index) && !this.storage.have.get(index)) {
      c.interestingCount++;
      this.updateInterest(c);
    }
    if (this.complete && c.hasAll) c.destroy();
  }

  gotBitfield(c: PeerConnection): void {
    this.picker.addPeerBitfield(c.bits);
    c.interestingCount = this.countInteresting(c.bits);
    if (this.complete && c.hasAll) return c.destroy();
    this.seeder?.peerBitfield(c);
    this.updateInterest(c);
  }

  gotHaveAll(c: PeerConnection, previous: Bitfield | null): void {
    // The haves it sent before are now covered by the seed counter: take them out, or they outlive the connection.
    if (previous) this.picker.removePeerBitfield(previous);
    this.picker.addHaveAll();
    c.interestingCount = this.picker.missingCount();
    if (this.complete) return c.destroy();
    this.updateInterest(c);
  }

  request(c: PeerConnection, index: number, begin: number, length: number): void {
    this.uploader.request(c, index, begin, length);
  }

  cancel(c: PeerConnection, index: number, begin: number, length: number): void {
    this.uploader.cancel(c, index, begin, length);
  }

  pieceStart(c: PeerConnection, index: number, begin: number, length: number): Buffer | null {
    return this.downloader.blockTarget(c, index, begin, length);
  }

  piece(c: PeerConnection, index: number, begin: number, length: number): void {
    c.download.bytes += length;
    c.download.meter.add(length);
    this.downloadedBytes += length;
    this.downloadMeter.add(length);
    this.downloader.blockReceived(c, index, begin, length);
    this.downloader.fill(c);
  }

  reject(c: PeerConnection, index: number, begin: number, length: number): void {
    this.downloader.rejected(c, index, begin, length);
    if (!c.peerChoking) this.downloader.fill(c);
  }

  allowedFast(c: PeerConnection): void {
    if (c.peerChoking) this.downloader.fill(c);
  }

  drain(c: PeerConnection): void {
    this.uploader.drained(c);
  }

  /** The connection ended: give back its requests and its share of availability. */
  detach(c: PeerConnection): void {
    this.downloader.releasePeer(c, false);
    this.picker.peerGone(c);
    if (c.isSeed) this.picker.removeHaveAll();
    else if (!c.bits.empty) this.picker.removePeerBitfield(c.bits);
    c.upload.queue.length = 0;
    this.seeder?.removePeer(c);
    if (!c.amChoking) this.scheduleRechoke();
    // Others may pick up the blocks it had in flight.
    for (const p of this.host.connections()) if (p !== c) this.downloader.fill(p);
  }

  // ---- pieces ----

  private countInteresting(bits: Bitfield): number {
    const have = this.storage.have.buffer;
    const wanted = this.storage.wanted.buffer;
    const theirs = bits.buffer;
    let n = 0;
    for (let i = 0; i < theirs.length; i++) {
      let b = theirs[i]! & wanted[i]! & ~have[i]!;
      while (b) { n += b & 1; b >>= 1; }
    }
    return n;
  }

  updateInterest(c: PeerConnection): void {
    if (c.closed) return;
    const want = c.interestingCount > 0 && !this.complete;
    if (want === c.amInterested) return;
    c.setInterested(want);
    if (want) this.downloader.fill(c);
  }

  private onPieceVerified(index: number): void {
    this.picker.pieceVerified(index);
    this.leftBytes -= pieceLengthAt(this.meta, index);
    for (const c of this.host.connections()) {
      if (c.closed || !c.greeted) continue;
      if (c.has(index)) {
        c.interestingCount--;
        this.updateInterest(c);
      } else {
        c.sendHave(index);
      }
    }
    this.host.emit('piece', index);
    if (this.picker.missingCount() === 0 && !this.complete) this.onComplete();
  }

  private onPieceFailed(index: number, contributors: Set<PeerConnection>): void {
    this.hashFailCount++;
    this.picker.pieceFailed(index);
    for (const c of contributors) {
      if (c.banned) continue;
      c.download.hashFailures += contributors.size === 1 ? 1 : 0;
      if (c.download.hashFailures >= SOLE_FAILURES_TO_BAN) this.host.ban(c, `${c.download.hashFailures} pieces failed their hash check`);
    }
    this.host.emit('hashfail', index);
    for (const c of this.host.connections()) this.downloader.fill(c);
  }

  private onComplete(): void {
    this.complete = true;
    void this.storage.saveResume().catch((err) => this.host.emit('warning', `cannot save resume data: ${(err as Error).message}`));
    // 'done' first, then the disconnects it causes (two seeds have nothing to trade).
    this.host.completed();
    for (const c of [...this.host.connections()]) {
      this.updateInterest(c);
      if (c.hasAll) c.destroy();
    }
  }

  // ---- choking ----

  scheduleRechoke(): void {
    if (this.rechokePending) return;
    this.rechokePending = true;
    setImmediate(() => {
      this.rechokePending = false;
      this.rechoke();
    });
  }

  private rechoke(): void {
    if (this.closed) return;
    const now = Date.now();
    const list: ChokerPeer[] = [];
    for (const c of this.host.connections()) {
      if (c.closed || !c.greeted) continue;
      list.push({
        key: c,
        interested: c.peerInterested,
        downloadRate: c.download.meter.rate(now),
        uploadRate: c.upload.meter.rate(now),
        isSeed: c.hasAll,
        connectedAt: c.connectedAt,
        snubbed: c.download.snubbed,
        amChoking: c.amChoking,
      });
    }
    const { unchoke } = this.choker.rechoke(list, this.complete, now);
    for (const c of this.host.connections()) {
      if (c.closed || !c.greeted) continue;
      const shouldUnchoke = unchoke.has(c);
      if (shouldUnchoke && c.amChoking) {
        c.unchoke();
      } else if (!shouldUnchoke && !c.amChoking) {
        c.choke();
        this.uploader.choked(c);
      }
    }
  }

  /** Once a second: rechoke every 10 s, expire initial-seeding offers, take requests back from snubbing peers. */
  tick(now: number): void {
    if (this.closed || !this.ready) return;
    this.tickCount++;
    if (this.tickCount % RECHOKE_TICKS === 0) this.rechoke();
    if (this.seeder?.active) {
      this.seeder.expireStale(now, (p, index) => (p as PeerConnection).upload.queue.some((r) => r.index === index));
    } else if (this.seeder) {
      this.seeder = null;
    }
    for (const c of this.host.connections()) {
      if (c.closed || !c.greeted) continue;
      const dl = c.download;
      if (dl.outstanding.size > 0 && now - dl.lastBlockAt > REQUEST_TIMEOUT_MS) {
        // Take its requests back so faster peers can serve them; cancel so it stops sending.
        dl.snubbed = true;
        this.downloader.releasePeer(c, true);
        for (const other of this.host.connections()) if (other !== c) this.downloader.fill(other);
      } else if (dl.outstanding.size === 0) {
        this.downloader.fill(c);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.downloader?.close();
    if (this.storage) await this.storage.close();
  }
}
