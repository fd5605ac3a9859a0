import { pieceLengthAt, type Metainfo } from '../metainfo/types.js';
import { Storage } from '../storage/index.js';
import { allowedFastSet } from '../wire/allowed-fast.js';
import type { Bitfield } from '../util/bitfield.js';
import type { PeerConnection } from '../connection/connection.js';
import { PiecePicker } from './piece-picker.js';
import { Choker, type ChokerPeer } from './choker.js';
import { RateMeter } from './rate-meter.js';
import { Downloader, type BlockSource } from './download.js';
import { WebSeedSource } from './web-seed-source.js';
import { WebSeedError, isWebSeedUrl } from '../webseed/index.js';
import { Uploader } from './upload.js';
import { InitialSeeder } from './initial-seeding.js';
import { StreamManager } from './streaming.js';
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
/** A web seed alone delivering this many pieces that fail their hash is dropped, as a lying peer is banned. */
const WEB_SEED_FAILURES_TO_DROP = 2;
/** Peers get this long after the content is ready to connect and announce before web seeds start (if any peer source exists). */
const WEB_SEED_GRACE_MS = 1000;
/** A peer that owns origin pieces but announced no new piece for this long has given up on them: others take them. */
const OWNER_SILENT_MS = 10_000;
/** Every peer that has pieces we lack has choked us for this long: web seeds fetch any missing piece. */
const CHOKED_MS = 4000;
/** A piece downloading from peers for this long has stalled: web seeds fetch any missing piece. */
const PIECE_STALL_MS = 10_000;
/**
 * Piece memory for pieces being downloaded (the picker's maxPiecesInFlight, in bytes): each holds a piece-sized buffer,
 * beside the piece cache (cacheBytes) and pieces waiting for their write (download.ts, MAX_PENDING_BYTES). Without a
 * bound, a downloader in a 16-host swarm whose peers each sent a different piece held up to 38 MiB of pieces
 * (bench/PROFILE.md, seventh session). At least MIN_PIECES_IN_FLIGHT pieces, so big pieces still spread over peers.
 */
const IN_FLIGHT_BYTES = 12 * 1024 * 1024;
const MIN_PIECES_IN_FLIGHT = 4;
/** Concurrent ranges per web seed while peers deliver (filling holes) and while they do not (carrying the download). */
const WEB_SEED_JOBS_FILL = 1;
const WEB_SEED_JOBS_CARRY = 4;

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
  /** Web seed URLs (BEP 19 url-list, magnet ws, AddOptions.webSeeds); default none. */
  webSeedUrls?(): string[];
  /** Whether any peer source (tracker, explicit peers, …) exists: web seeds then give peers a moment first. */
  hasPeerSources?(): boolean;
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
  /** Readers of files while they download (streaming). */
  streams!: StreamManager;
  /** Fastest download rate among connections, refreshed every tick, for deciding who gets deadline pieces. */
  private fastestRate = 0;
  private closed = false;

  readonly downloadMeter = new RateMeter();
  readonly uploadMeter = new RateMeter();
  downloadedBytes = 0;
  uploadedBytes = 0;
  wastedBytes = 0;
  hashFailCount = 0;
  /** Payload bytes from peers and from web seeds (together: downloadedBytes). */
  fromPeers = 0;
  fromWebSeeds = 0;
  /** Web seeds (BEP 19) as block sources; dropped ones stay listed (closed) for their stats. */
  readonly webSeeds: WebSeedSource[] = [];
  /** Last time a peer that has pieces we lack was unchoking us (or none had any). */
  private lastUnchokedAt = 0;
  /** When each connection last announced a piece (bitfield, have, have-all): is an origin-piece owner still working? */
  private readonly lastAnnounce = new WeakMap<PeerConnection, number>();
  private webSeedStartAt = 0;
  /** 32-bit hashes of peer ids, for spreading origin fetches across downloaders (see webSeedCandidates). */
  private readonly peerHashes = new WeakMap<PeerConnection, number>();
  leftBytes = 0;
  wantedTotal = 0;
  private tickCount = 0;
  private fillPending = false;
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
    if (this.host.ctx.cacheBytes !== undefined) storageOpts.cacheBytes = this.host.ctx.cacheBytes;
    this.storage = await Storage.open(meta, storageOpts);
    await this.storage.verifyExisting({
      recheck: opts.recheck === true,
      assumeValid: opts.assumeValid === true && opts.recheck !== true,
      onProgress,
    });
    if (this.closed) return;

    const have = this.storage.have;
    const wanted = this.storage.wanted;
    this.picker = new PiecePicker({
      pieceCount: meta.pieceCount, pieceLength: meta.pieceLength, lastPieceLength: meta.lastPieceLength,
      maxPiecesInFlight: Math.max(MIN_PIECES_IN_FLIGHT, Math.floor(IN_FLIGHT_BYTES / meta.pieceLength)),
    }, have, wanted);
    this.choker = new Choker({ uploadSlots: this.host.ctx.uploadSlots });
    this.downloader = new Downloader({
      meta,
      picker: this.picker,
      downloadBucket: this.host.ctx.downloadBucket,
      writePiece: (index, data) => this.storage.writePiece(index, data, { adopt: true }),
      allocatePiece: (length) => this.storage.allocatePiece(length),
      recyclePiece: (buf) => this.storage.recyclePiece(buf),
      pieceVerified: (index) => this.onPieceVerified(index),
      pieceFailed: (index, contributors) => this.onPieceFailed(index, contributors),
      banPeer: (peer, reason) => this.banSource(peer, reason),
      dropPeer: (peer, reason) => this.dropSource(peer, reason),
      storageFailed: (err) => this.host.fail(err),
      resumeRequests: () => { for (const p of this.host.connections()) this.downloader.fill(p); this.fillWebSeeds(); },
      mayTakeDeadlines: (peer) => this.mayTakeDeadlines(peer),
      peerByKey: (key) => key as BlockSource,
      addWasted: (bytes) => { this.wastedBytes += bytes; },
    });
    this.streams = new StreamManager({
      meta,
      hasPiece: (index) => this.storage.have.get(index),
      isWanted: (index) => this.storage.wanted.get(index),
      readPiece: (index) => this.storage.readPiece(index),
      setCritical: (indices, urgent, streaming) => {
        this.picker.setCritical(indices, urgent, streaming);
        // New priorities: peers with room in their pipelines ask for them now, not at the next block.
        for (const c of this.host.connections()) this.downloader.fill(c);
      },
    });
    this.uploader = new Uploader({
      meta,
      have,
      uploadBucket: this.host.ctx.uploadBucket,
      readBlock: (index, begin, length) => this.storage.readBlock(index, begin, length),
      borrowBlock: (index, begin, length) => this.storage.borrowBlock(index, begin, length),
      releaseBlock: (block) => this.storage.releaseBlock(block),
      preload: (index) => this.storage.preload(index),
      uploaded: (peer, index, bytes) => {
        this.seeder?.blockSent(peer, index, bytes);
        // One clock read for both meters: per block, and Date.now() is a call into the runtime.
        const now = Date.now();
        peer.upload.bytes += bytes;
        peer.upload.meter.add(bytes, now);
        this.uploadedBytes += bytes;
        this.uploadMeter.add(bytes, now);
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
    if (!this.complete) this.openWebSeeds();
  }

  // ---- web seeds ----

  private openWebSeeds(): void {
    const urls = [...new Set(this.host.webSeedUrls?.() ?? [])];
    if (urls.length === 0) return;
    for (const url of urls) this.addWebSeed(url, false);
    const now = Date.now();
    this.webSeedStartAt = this.host.hasPeerSources?.() === false ? now : now + WEB_SEED_GRACE_MS;
    this.lastUnchokedAt = now;
    this.fillWebSeeds();
    this.fillWebSeedsAtStart();
  }

  /** Start web seeds when the peers' grace period ends, not at the next tick. */
  private fillWebSeedsAtStart(): void {
    const delay = this.webSeedStartAt - Date.now();
    if (delay > 0) setTimeout(() => this.fillWebSeeds(), delay + 5).unref();
  }

  /** Adds a web seed (BEP 19) while running; false (with a warning) when the URL is unusable or already added. */
  addWebSeed(url: string, start = true): boolean {
    if (this.webSeeds.some((w) => w.url === url)) return false;
    if (!isWebSeedUrl(url)) {
      this.host.emit('warning', `web seed ${JSON.stringify(url)} ignored: only http:// and https:// web seeds are supported`);
      return false;
    }
    const ctx = this.host.ctx;
    const origin = ctx.originBucket ?? null;
    const dl = ctx.downloadBucket;
    // Web seed bytes count against the client's download limit as well as its origin limit.
    const limiter = origin && dl ? { take: (n: number) => Math.max(origin.take(n), dl.take(n)) } : origin ?? dl ?? undefined;
    const self = this;
    try {
      const opts: ConstructorParameters<typeof WebSeedSource>[0] = {
        url, meta: this.meta,
        host: {
          get downloader() { return self.downloader; },
          candidates: (src) => self.webSeedCandidates(src),
          deliver: (src, index, begin, length, data, offset) => self.webSeedBlock(src, index, begin, length, data, offset),
          failed: (src, err) => self.webSeedFailed(src, err),
        },
      };
      if (limiter) opts.rateLimiter = limiter;
      if (ctx.webSeedTimeoutMs !== undefined) opts.timeoutMs = ctx.webSeedTimeoutMs;
      this.webSeeds.push(new WebSeedSource(opts));
    } catch (err) {
      this.host.emit('warning', `web seed ${url} ignored: ${(err as Error).message}`);
      return false;
    }
    if (start) {
      if (this.webSeedStartAt === 0) {
        this.webSeedStartAt = Date.now() + (this.host.hasPeerSources?.() === false ? 0 : WEB_SEED_GRACE_MS);
        this.lastUnchokedAt = Date.now();
        this.fillWebSeedsAtStart();
      }
      this.fillWebSeeds();
    }
    return true;
  }

  /** Web seed sources (for the cross-structure invariant checks and stats). */
  webSeedSources(): readonly WebSeedSource[] {
    return this.webSeeds;
  }

  fillWebSeeds(): void {
    if (this.webSeeds.length === 0 || this.complete || this.closed) return;
    const now = Date.now();
    if (now < this.webSeedStartAt) return;
    let attached = 0;
    for (const c of this.host.connections()) if (!c.closed && c.knowsPieceCount) attached++;
    const carry = attached === 0 || this.peersStalled(now, this.host.connections());
    const jobs = carry ? WEB_SEED_JOBS_CARRY : WEB_SEED_JOBS_FILL;
    for (const ws of this.webSeeds) if (ws.usable) ws.fill(jobs);
  }

  /**
   * Peers first. A web seed fetches (1) pieces no connected peer has (availability 0) that this downloader "owns":
   * among itself and its connected non-seed peers, the one whose peer id hashes highest with the piece index
   * (rendezvous hashing). Downloaders that see the same peers agree on owners, so each piece comes from the origin
   * about once and is then traded. (2) Pieces no peer has whose owner announced no new piece for OWNER_SILENT_MS (it
   * has no web seed, a limit, or went quiet). (3) When every peer that has pieces we lack has choked us for CHOKED_MS,
   * or a piece from peers stalled for PIECE_STALL_MS, or there are no peers: any missing piece. Within each set the
   * picker takes the rarest, random among equals.
   */
  private webSeedCandidates(_src: WebSeedSource): (ReadonlySet<number> | null)[] {
    const now = Date.now();
    if (this.complete || now < this.webSeedStartAt) return [];
    const others: number[] = [];
    const owners: PeerConnection[] = [];
    let attached = 0;
    for (const c of this.host.connections()) {
      if (c.closed || !c.knowsPieceCount) continue;
      attached++;
      if (c.hasAll) continue;
      let h = this.peerHashes.get(c);
      if (h === undefined) { h = hash32(c.handshake.peerId); this.peerHashes.set(c, h); }
      others.push(h);
      owners.push(c);
    }
    if (attached === 0) return [null];
    const me = hash32(this.host.ctx.peerId);
    const orphaned = new Set<number>();
    const own = new Set<number>();
    const picker = this.picker;
    const wanted = this.storage.wanted;
    for (let i = 0; i < this.meta.pieceCount; i++) {
      if (picker.availability(i) !== 0 || !wanted.get(i)) continue;
      const st = picker.pieceState(i);
      if (st !== 'queued' && st !== 'active') continue;
      let best = score(me, i);
      let owner = -1;
      for (let k = 0; k < others.length; k++) {
        const sc = score(others[k]!, i);
        if (sc > best) { best = sc; owner = k; }
      }
      if (owner < 0) own.add(i);
      else if (now - (this.lastAnnounce.get(owners[owner]!) ?? 0) > OWNER_SILENT_MS) orphaned.add(i);
    }
    if (this.peersStalled(now, this.host.connections())) return [own, orphaned, null];
    return [own, orphaned];
  }

  /** Every peer with pieces we lack chokes us (for CHOKED_MS), or a piece they are sending is PIECE_STALL_MS old. */
  private peersStalled(now: number, conns: Iterable<PeerConnection>): boolean {
    let interesting = false;
    for (const c of conns) {
      if (c.closed || c.interestingCount === 0) continue;
      interesting = true;
      if (!c.peerChoking) { this.lastUnchokedAt = now; break; }
    }
    if (!interesting) this.lastUnchokedAt = now;   // no peer can help: nothing to wait for
    if (now - this.lastUnchokedAt > CHOKED_MS) return true;
    const fromWeb = new Set<number>();
    for (const ws of this.webSeeds) for (const r of ws.download.outstanding.values()) fromWeb.add(r.index);
    const oldest = this.downloader.oldestPieceStart(fromWeb);
    return oldest > 0 && now - oldest > PIECE_STALL_MS;
  }

  private webSeedBlock(src: WebSeedSource, index: number, begin: number, length: number, data: Buffer, offset: number): void {
    const target = this.downloader.blockTarget(src, index, begin, length);
    if (target !== null) data.copy(target, 0, offset, offset + length);
    src.download.bytes += length;
    src.download.meter.add(length);
    this.fromWebSeeds += length;
    this.downloadedBytes += length;
    this.downloadMeter.add(length);
    this.downloader.blockReceived(src, index, begin, length);
  }

  private webSeedFailed(src: WebSeedSource, err: WebSeedError): void {
    this.host.emit('warning', err.message);
    if (!err.retryable) this.dropWebSeed(src, err.message, false);
  }

  /** Stop using a web seed: its requests go back to the picker for peers and other web seeds. */
  private dropWebSeed(src: WebSeedSource, reason: string, warn: boolean): void {
    if (src.closed) return;
    src.disable(reason);
    this.downloader.releasePeer(src, false);
    this.picker.peerGone(src);
    if (warn) this.host.emit('warning', `web seed ${src.url}: ${reason}; this web seed is disabled`);
    if (!this.webSeeds.some((w) => w.usable)) {
      let peers = 0;
      for (const c of this.host.connections()) if (!c.closed) peers++;
      if (peers === 0) this.host.emit('warning', 'no usable web seed left and no peers connected: the download cannot progress until a peer appears');
    }
    for (const c of this.host.connections()) this.downloader.fill(c);
    this.fillWebSeeds();
  }

  /** Smart ban: a source whose data was proven wrong by a later good copy of the piece. */
  private banSource(src: BlockSource, reason: string): void {
    if (src instanceof WebSeedSource) this.dropWebSeed(src, reason, true);
    else this.host.ban(src as PeerConnection, reason);
  }

  /** A source that sends blocks we never asked for: a peer is disconnected, a web seed disabled. */
  private dropSource(src: BlockSource, reason: string): void {
    if (src instanceof WebSeedSource) this.dropWebSeed(src, reason, true);
    else (src as PeerConnection).close(reason);
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
    this.lastAnnounce.set(c, Date.now());
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
    this.scheduleFill();
  }

  notInterested(c: PeerConnection): void {
    this.seeder?.peerNotInterested(c);
    if (!c.amChoking) this.scheduleFill();
  }

  gotHave(c: PeerConnection, index: number): void {
    this.picker.addPeerHave(index);
    if (this.webSeeds.length > 0) this.lastAnnounce.set(c, Date.now());
    this.seeder?.peerHas(c, index);
    if (this.storage.wanted.get(index) && !this.storage.have.get(index)) {
      c.interestingCount++;
      this.updateInterest(c);
    }
    if (this.complete && c.hasAll) c.destroy();
  }

  gotBitfield(c: PeerConnection): void {
    this.picker.addPeerBitfield(c.bits);
    if (this.webSeeds.length > 0) this.lastAnnounce.set(c, Date.now());
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
    if (this.seeder?.active) this.seeder.requested(c, index);
    this.uploader.request(c, index, begin, length);
  }

  cancel(c: PeerConnection, index: number, begin: number, length: number): void {
    this.uploader.cancel(c, index, begin, length);
  }

  pieceStart(c: PeerConnection, index: number, begin: number, length: number): Buffer | null {
    return this.downloader.blockTarget(c, index, begin, length);
  }

  piece(c: PeerConnection, index: number, begin: number, length: number): void {
    const now = Date.now();
    c.download.bytes += length;
    c.download.meter.add(length, now);
    this.downloadedBytes += length;
    this.fromPeers += length;
    this.downloadMeter.add(length, now);
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
    if (!c.amChoking) this.scheduleFill();
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
    this.streams.pieceVerified(index);
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
    else this.fillWebSeeds();
  }

  private onPieceFailed(index: number, contributors: Set<BlockSource>): void {
    this.hashFailCount++;
    this.picker.pieceFailed(index);
    for (const src of contributors) {
      if (src instanceof WebSeedSource) {
        if (src.closed || contributors.size !== 1) continue;
        src.hashFailures++;
        if (src.hashFailures >= WEB_SEED_FAILURES_TO_DROP) {
          this.dropWebSeed(src, `${src.hashFailures} pieces it sent failed their hash check (the server's file differs from the torrent's)`, true);
        } else {
          this.host.emit('warning', `web seed ${src.url}: piece ${index} failed its hash check; fetching it again (the web seed is dropped after ${WEB_SEED_FAILURES_TO_DROP} such pieces)`);
        }
        continue;
      }
      const c = src as PeerConnection;
      if (c.banned) continue;
      c.download.hashFailures += contributors.size === 1 ? 1 : 0;
      if (c.download.hashFailures >= SOLE_FAILURES_TO_BAN) this.host.ban(c, `${c.download.hashFailures} pieces failed their hash check`);
    }
    this.host.emit('hashfail', index);
    for (const c of this.host.connections()) this.downloader.fill(c);
    this.fillWebSeeds();
  }

  private onComplete(): void {
    this.complete = true;
    void this.storage.saveResume().catch((err) => this.host.emit('warning', `cannot save resume data: ${(err as Error).message}`));
    // 'done' first, then the disconnects it causes (two seeds have nothing to trade).
    this.host.completed();
    for (const c of [...this.host.connections()]) {
      this.updateInterest(c);
      if (c.hasAll) c.destroy();
      else c.flushHaves(); // peers learn at once that we are a seed now
    }
    for (const ws of this.webSeeds) {
      this.downloader.releasePeer(ws, false);
      this.picker.peerGone(ws);
      void ws.close();
    }
  }

  // ---- choking ----

  /** Fill free upload slots soon (once per turn of the event loop, however many peers changed their interest). */
  scheduleFill(): void {
    if (this.fillPending) return;
    this.fillPending = true;
    setImmediate(() => {
      this.fillPending = false;
      this.fillFreeSlots();
    });
  }

  /** Between rounds: unchoke waiting peers into free slots only (see Choker.fillFree). */
  private fillFreeSlots(): void {
    if (this.closed) return;
    for (const c of this.choker.fillFree(this.chokerPeers(Date.now()), this.complete)) (c as PeerConnection).unchoke();
  }

  /** The regular round (every 10 s): re-rank everyone, choke and unchoke. */
  private rechoke(): void {
    if (this.closed) return;
    const now = Date.now();
    const { unchoke } = this.choker.rechoke(this.chokerPeers(now), this.complete, now);
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

  private chokerPeers(now: number): ChokerPeer[] {
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
    return list;
  }

  /**
   * Pieces a reader waits on go to peers that deliver: not to one far slower than the fastest (a quarter of its
   * rate), unless nobody has a measured rate yet.
   */
  private mayTakeDeadlines(c: PeerConnection): boolean {
    if (this.fastestRate === 0) return true;
    return c.download.meter.rate() >= this.fastestRate / 4;
  }

  /** Once a second: rechoke every 10 s, expire initial-seeding offers, take requests back from snubbing peers. */
  tick(now: number): void {
    if (this.closed || !this.ready) return;
    this.tickCount++;
    if (this.streams.readerCount > 0) {
      let fastest = 0;
      for (const c of this.host.connections()) fastest = Math.max(fastest, c.download.meter.rate(now));
      this.fastestRate = fastest;
      this.streams.update();
    }
    if (this.tickCount % RECHOKE_TICKS === 0) this.rechoke();
    // The cache's count of buffers lent to the downloader is kept as they come and go; this resets it to the truth.
    this.storage.reserveCache(this.downloader.bufferBytes);
    if (this.seeder?.active) {
      this.seeder.expireStale(now, (p, index) => (p as PeerConnection).upload.queue.some((r) => r.index === index));
      this.seeder.topUp();
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
    this.fillWebSeeds();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.streams?.close();
    await Promise.all(this.webSeeds.map((ws) => ws.close().catch(() => undefined)));
    this.downloader?.close();
    if (this.storage) await this.storage.close();
  }
}

/** FNV-1a of a peer id: a stable 32-bit number per downloader. */
function hash32(id: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id[i]!, 0x01000193);
  return h >>> 0;
}

/** Rendezvous score of downloader `h` for piece `i` (murmur3 finaliser: well mixed in both arguments). */
function score(h: number, i: number): number {
  let x = (h ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
