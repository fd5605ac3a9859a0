import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { pieceLengthAt, type Metainfo } from '../metainfo/types.js';
import { Storage } from '../storage/index.js';
import { Announcer } from '../discovery/index.js';
import { formatPeerAddress, parsePeerAddress, type PeerAddress } from '../discovery/compact.js';
import { PeerWire } from '../wire/peer-wire.js';
import type { HandshakeInfo, WireHandler } from '../wire/types.js';
import { Bitfield } from '../util/bitfield.js';
import { ShoalError } from '../util/errors.js';
import { PiecePicker } from './piece-picker.js';
import { Choker, type ChokerPeer } from './choker.js';
import { RateMeter } from './rate-meter.js';
import type { TokenBucket } from './token-bucket.js';
import { Downloader } from './download.js';
import { Uploader } from './upload.js';
import { PeerManager } from './peer-manager.js';
import { Peer } from './peer.js';
import { InitialSeeder } from './initial-seeding.js';
import type { AddOptions, PeerStats, TorrentState, TorrentStats } from './types.js';

/** What a torrent needs from the client that owns it. */
export interface TorrentContext {
  readonly peerId: Buffer;
  readonly port: number;
  readonly clientName: string;
  readonly trackers: boolean;
  readonly uploadBucket: TokenBucket | null;
  readonly downloadBucket: TokenBucket | null;
  readonly maxPeersPerTorrent: number;
  readonly uploadSlots: number;
  readonly localAddress: string | undefined;
  /** Connections the whole client may still open. */
  globalSlots(): number;
}

const TICK_MS = 1000;
const RECHOKE_TICKS = 10;
/** A peer that sends nothing we asked for in this long gets its requests taken back and is marked snubbed. */
const REQUEST_TIMEOUT_MS = 20_000;
/** Requests we accept queued from one peer; advertised as our `reqq`. */
const MAX_QUEUED_REQUESTS = 1000;
/** Ban a peer that alone delivered this many pieces that failed their hash. */
const SOLE_FAILURES_TO_BAN = 2;

/**
 * One torrent: owns its storage, piece picker, choker, peers and announcer, and wires their events together.
 *
 * Piece states (the picker holds the invariant, see piece-picker.ts): every wanted piece is exactly one of
 * have / not-started / in-flight / being verified; `Storage.have` marks a piece only after its verified data
 * is written, so `have` here always means "on disk and correct".
 *
 * Events: 'checked' (existing data verified), 'piece' (index), 'done', 'peer' (address), 'disconnect' (address, error?),
 * 'ban' (address, reason), 'hashfail' (index), 'stats' (every second),
 * 'warning' (message), 'error' (ShoalError; emitted only when someone listens), 'close'.
 */
export class Torrent extends EventEmitter {
  readonly meta: Metainfo;
  readonly infoHashHex: string;
  readonly path: string;
  private readonly ctx: TorrentContext;
  private readonly opts: AddOptions;

  private storage!: Storage;
  picker!: PiecePicker;
  private choker!: Choker;
  private downloader!: Downloader;
  private uploader!: Uploader;
  private readonly peerManager: PeerManager;
  private announcer: Announcer | null = null;
  /** Set while initial seeding is spreading pieces; null otherwise. */
  private seeder: InitialSeeder | null = null;
  private readonly peers = new Map<string, Peer>();
  /** Connected peers by the listen address they told us (BEP 10 `p`), for inbound peers dialed from elsewhere. */
  private readonly peersByListenAddress = new Map<string, Peer>();

  private readonly downloadMeter = new RateMeter();
  private readonly uploadMeter = new RateMeter();
  private downloadedBytes = 0;
  private uploadedBytes = 0;
  private wastedBytes = 0;
  private hashFailCount = 0;
  private leftBytes = 0;
  private wantedTotal = 0;
  private tickCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private rechokePending = false;
  private stateValue: TorrentState = 'checking';
  /** Set when the torrent stopped because of an error (disk full, …). */
  error: Error | null = null;

  constructor(ctx: TorrentContext, meta: Metainfo, opts: AddOptions) {
    super();
    this.ctx = ctx;
    this.meta = meta;
    this.infoHashHex = meta.infoHashHex;
    this.path = opts.path;
    this.opts = opts;
    const self = this;
    this.peerManager = new PeerManager({
      infoHash: meta.infoHash,
      peerId: ctx.peerId,
      localAddress: ctx.localAddress,
      connectionSlots: () => Math.min(ctx.maxPeersPerTorrent - self.peers.size, ctx.globalSlots()),
      isConnected: (address) => self.isConnected(address),
      attach: (socket, handshake, rest, addr, outbound) => self.attach(socket, handshake, rest, addr, outbound),
      wantsPeers: () => self.stateValue === 'downloading' || (self.stateValue === 'seeding' && self.opts.seed !== false),
    });
  }

  get state(): TorrentState {
    return this.stateValue;
  }

  get done(): boolean {
    return this.stateValue === 'seeding' || this.stateValue === 'done';
  }

  /** How the last check of existing data went: pieces trusted from resume data vs. hashed from disk. */
  get lastCheck(): { trusted: number; hashed: number } {
    return this.storage?.lastCheck ?? { trusted: 0, hashed: 0 };
  }

  get have(): Bitfield {
    return this.storage.have;
  }

  /** Open storage, verify what is already on disk, then start talking to peers and trackers. */
  async start(): Promise<void> {
    const meta = this.meta;
    const storageOpts: Parameters<typeof Storage.open>[1] = {
      dir: this.opts.path,
      onWarning: (msg: string) => this.emit('warning', msg),
    };
    if (this.opts.selectedFiles) storageOpts.selectedFiles = this.opts.selectedFiles;
    if (this.opts.resumeFile !== undefined) storageOpts.resumeFile = this.opts.resumeFile;
    this.storage = await Storage.open(meta, storageOpts);
    await this.storage.verifyExisting({
      recheck: this.opts.recheck === true,
      assumeValid: this.opts.assumeValid === true && this.opts.recheck !== true,
      onProgress: (done, total) => this.emit('checking', done, total),
    });
    if (this.stateValue === 'closed') return;

    const have = this.storage.have;
    const wanted = this.storage.wanted;
    this.picker = new PiecePicker({ pieceCount: meta.pieceCount, pieceLength: meta.pieceLength, lastPieceLength: meta.lastPieceLength }, have, wanted);
    this.choker = new Choker({ uploadSlots: this.ctx.uploadSlots });
    this.downloader = new Downloader({
      meta,
      picker: this.picker,
      downloadBucket: this.ctx.downloadBucket,
      writePiece: (index, data) => this.storage.writePiece(index, data),
      pieceVerified: (index) => this.onPieceVerified(index),
      pieceFailed: (index, contributors) => this.onPieceFailed(index, contributors),
      banPeer: (peer, reason) => this.banPeer(peer, reason),
      storageFailed: (err) => this.fail(err),
      resumeRequests: () => { for (const p of this.peers.values()) this.downloader.fill(p); },
      peerByKey: (key) => (key instanceof Peer ? key : undefined),
      addWasted: (bytes) => { this.wastedBytes += bytes; },
    });
    this.uploader = new Uploader({
      meta,
      have,
      uploadBucket: this.ctx.uploadBucket,
      readBlock: (index, begin, length) => this.storage.readBlock(index, begin, length),
      cachedBlock: (index, begin, length) => this.storage.cachedBlock(index, begin, length),
      uploaded: (peer, index, bytes) => {
        this.seeder?.blockSent(peer, index, bytes);
        peer.uploaded += bytes;
        peer.uploadMeter.add(bytes);
        this.uploadedBytes += bytes;
        this.uploadMeter.add(bytes);
      },
      protocolError: (peer, reason) => peer.wire.destroy(new ShoalError('EWIRE', `peer ${peer.address}: ${reason}`)),
      maxQueuedRequests: MAX_QUEUED_REQUESTS,
    });
    for (let i = 0; i < meta.pieceCount; i++) {
      if (wanted.get(i)) {
        this.wantedTotal++;
        if (!have.get(i)) this.leftBytes += pieceLengthAt(meta, i);
      }
    }
    const complete = this.picker.missingCount() === 0;
    this.stateValue = complete ? 'seeding' : 'downloading';
    if (complete && have.complete && this.opts.initialSeeding !== false) {
      this.seeder = new InitialSeeder(meta.pieceCount, meta.pieceLength, meta.lastPieceLength);
    }
    this.emit('checked', this.stats());
    if (complete) this.emit('done');

    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    for (const p of this.opts.peers ?? []) this.addPeer(p);
    this.startAnnouncer(complete);
  }

  private startAnnouncer(complete: boolean): void {
    const tiers = [...this.meta.announce, ...(this.opts.announce ?? [])].filter((t) => t.length > 0);
    if (!this.ctx.trackers || tiers.length === 0) return;
    if (complete && this.opts.seed === false) return;
    this.announcer = new Announcer({
      infoHash: this.meta.infoHash,
      peerId: this.ctx.peerId,
      port: this.ctx.port,
      tiers,
      getStats: () => ({ uploaded: this.uploadedBytes, downloaded: this.downloadedBytes, left: this.leftBytes }),
    });
    this.announcer.on('peers', (peers: PeerAddress[]) => {
      for (const p of peers) this.peerManager.add(p);
      this.peerManager.dial();
    });
    this.announcer.on('warning', (msg: string) => this.emit('warning', msg));
    this.announcer.on('error', (err: Error) => this.emit('warning', err.message));
    this.announcer.start();
  }

  addPeer(addr: PeerAddress | string): void {
    const a = typeof addr === 'string' ? parsePeerAddress(addr) : addr;
    this.peerManager.add(a);
    if (this.picker) this.peerManager.dial();
  }

  /** Inbound connection whose handshake named this torrent; we have already answered with ours. */
  acceptInbound(socket: Socket, handshake: HandshakeInfo, rest: Buffer): boolean {
    const host = normalizeHost(socket.remoteAddress ?? '');
    if (!this.picker || this.stateValue === 'closed' || this.stateValue === 'error') return false;
    if (this.peerManager.isBanned(host)) return false;
    if (this.peers.size >= this.ctx.maxPeersPerTorrent) return false;
    if (handshake.peerId.equals(this.ctx.peerId)) return false;
    return this.attach(socket, handshake, rest, { host, port: socket.remotePort ?? 0 }, false);
  }

  /** Returns false when the connection was refused (closing, or a duplicate of a connection we keep). */
  private attach(socket: Socket, handshake: HandshakeInfo, rest: Buffer, addr: PeerAddress, outbound: boolean): boolean {
    const key = formatPeerAddress(addr);
    if (this.peers.has(key) || this.stateValue === 'closed') {
      socket.destroy();
      return false;
    }
    for (const p of this.peers.values()) {
      if (!p.handshake.peerId.equals(handshake.peerId)) continue;
      // The same peer reached twice, typically because both sides dialed each other. Both sides must keep the
      // same one or they drop both: keep the connection opened by the side with the smaller peer id.
      const keepOutbound = Buffer.compare(this.ctx.peerId, handshake.peerId) < 0;
      if (p.outbound === outbound || p.outbound === keepOutbound) {
        socket.destroy();
        return false;
      }
      p.wire.destroy();
      break;
    }
    const peer = new Peer(handshake, addr.host, addr.port, outbound, this.meta.pieceCount);
    const wire = new PeerWire(socket, this.wireHandler(peer), { fast: handshake.fast, extended: handshake.extended, rest });
    peer.wire = wire;
    this.peers.set(key, peer);
    this.sendHello(peer);
    this.emit('peer', key);
    return true;
  }

  /** Is a peer at this address connected, by the address we dialed or the listen port it told us (BEP 10 `p`)? */
  private isConnected(address: string): boolean {
    return this.peers.has(address) || this.peersByListenAddress.has(address);
  }

  /** Connections open now. */
  get peerCount(): number {
    return this.peers.size;
  }

  private sendHello(peer: Peer): void {
    const wire = peer.wire;
    const have = this.storage.have;
    const seeder = this.seeder?.active ? this.seeder : null;
    wire.cork();
    if (seeder) {
      // Initial seeding: reveal pieces one offer at a time (below) instead of a full bitfield.
      if (peer.handshake.fast) wire.haveNone();
    } else if (peer.handshake.fast && have.empty) wire.haveNone();
    else if (peer.handshake.fast && have.complete) wire.haveAll();
    else if (!have.empty) wire.bitfield(have.buffer);
    if (peer.handshake.extended) {
      const ext: Record<string, unknown> = { m: {}, v: this.ctx.clientName, reqq: MAX_QUEUED_REQUESTS };
      if (this.ctx.port > 0) ext['p'] = this.ctx.port;
      wire.extendedHandshake(ext);
    }
    if (seeder) {
      seeder.addPeer(peer);
      seeder.offer(peer);
    }
    wire.uncork();
  }

  private wireHandler(peer: Peer): WireHandler {
    const t = this;
    return {
      onChoke() {
        peer.peerChoking = true;
        // BEP 6: with the fast extension a choke does not cancel requests; the peer rejects them explicitly.
        if (!peer.handshake.fast) t.downloader.releasePeer(peer, false);
      },
      onUnchoke() {
        peer.peerChoking = false;
        peer.lastBlockAt = Date.now();
        t.downloader.fill(peer);
      },
      onInterested() {
        peer.peerInterested = true;
        t.scheduleRechoke();
      },
      onNotInterested() {
        peer.peerInterested = false;
        t.seeder?.peerNotInterested(peer);
        if (!peer.amChoking) t.scheduleRechoke();
      },
      onHave(index) {
        if (index >= t.meta.pieceCount) return t.protocolError(peer, `have for piece ${index} out of range`);
        t.peerGotPiece(peer, index);
      },
      onBitfield(bits) {
        let parsed: Bitfield;
        try {
          parsed = new Bitfield(t.meta.pieceCount, bits);
        } catch (err) {
          return t.protocolError(peer, `bad bitfield: ${(err as Error).message}`);
        }
        if (peer.isSeed) return;
        if (!peer.bits.empty) {
          // BEP 3 allows a bitfield only first, but aria2 sends later ones as updates: treat new bits as haves.
          for (const i of parsed.indices()) t.peerGotPiece(peer, i);
          return;
        }
        peer.bits = parsed;
        t.picker.addPeerBitfield(parsed);
        peer.interestingCount = t.countInteresting(parsed);
        if (t.done && parsed.complete) return peer.wire.destroy();
        t.seeder?.peerBitfield(peer);
        t.updateInterest(peer);
      },
      onHaveAll() {
        if (peer.isSeed) return;
        peer.isSeed = true;
        t.picker.addHaveAll();
        peer.interestingCount = t.picker.missingCount();
        if (t.done) return peer.wire.destroy();
        t.updateInterest(peer);
      },
      onHaveNone() { /* nothing to record */ },
      onRequest(index, begin, length) {
        t.uploader.request(peer, index, begin, length);
      },
      onCancel(index, begin, length) {
        t.uploader.cancel(peer, index, begin, length);
      },
      onPieceStart(index, begin, length) {
        return t.downloader.blockTarget(peer, index, begin, length);
      },
      onPiece(index, begin, length) {
        peer.downloaded += length;
        peer.downloadMeter.add(length);
        t.downloadedBytes += length;
        t.downloadMeter.add(length);
        t.downloader.blockReceived(peer, index, begin, length);
        t.downloader.fill(peer);
      },
      onPort() { /* DHT is not enabled */ },
      onSuggest() { /* rarest-first already knows better for our needs */ },
      onReject(index, begin, length) {
        t.downloader.rejected(peer, index, begin, length);
        if (!peer.peerChoking) t.downloader.fill(peer);
      },
      onAllowedFast(index) {
        if (index >= t.meta.pieceCount || peer.allowedFast.size >= 64) return;
        peer.allowedFast.add(index);
        if (peer.peerChoking) t.downloader.fill(peer);
      },
      onExtendedHandshake(dict) {
        const reqq = dict['reqq'];
        if (typeof reqq === 'number' && reqq > 0) peer.maxRequests = Math.min(reqq, 2000);
        const v = dict['v'];
        if (Buffer.isBuffer(v)) peer.clientName = v.toString('utf8').slice(0, 64);
        const p = dict['p'];
        if (typeof p === 'number' && p > 0 && p < 65536) {
          if (peer.listenPort > 0) t.peersByListenAddress.delete(formatPeerAddress({ host: peer.host, port: peer.listenPort }));
          peer.listenPort = p;
          t.peersByListenAddress.set(formatPeerAddress({ host: peer.host, port: p }), peer);
          // An inbound peer's source port is ephemeral; its listen port is where others (and we, later) reach it.
          if (!peer.outbound) t.peerManager.add({ host: peer.host, port: p });
        }
      },
      onExtended() { /* no extensions registered yet */ },
      onDrain() {
        t.uploader.drained(peer);
      },
      onClose(err) {
        t.removePeer(peer, err);
      },
    };
  }

  /** The peer announced a piece (HAVE, or a later bitfield). */
  private peerGotPiece(peer: Peer, index: number): void {
    if (peer.isSeed || peer.bits.get(index)) return;
    peer.bits.set(index);
    this.picker.addPeerHave(index);
    this.seeder?.peerHas(peer, index);
    if (this.storage.wanted.get(index) && !this.storage.have.get(index)) {
      peer.interestingCount++;
      this.updateInterest(peer);
    }
    if (this.done && peer.bits.complete) peer.wire.destroy(); // both seeds: nothing to trade
  }

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

  private updateInterest(peer: Peer): void {
    if (peer.closed) return;
    const want = peer.interestingCount > 0 && !this.done;
    if (want === peer.amInterested) return;
    peer.amInterested = want;
    if (want) {
      peer.wire.interested();
      this.downloader.fill(peer);
    } else {
      peer.wire.notInterested();
    }
  }

  private protocolError(peer: Peer, reason: string): void {
    peer.wire.destroy(new ShoalError('EWIRE', `peer ${peer.address}: ${reason}`));
  }

  private removePeer(peer: Peer, err?: Error): void {
    if (peer.closed) return;
    peer.closed = true;
    const key = peer.address;
    if (this.peers.get(key) === peer) this.peers.delete(key);
    if (peer.listenPort > 0) {
      const listenKey = formatPeerAddress({ host: peer.host, port: peer.listenPort });
      if (this.peersByListenAddress.get(listenKey) === peer) this.peersByListenAddress.delete(listenKey);
    }
    if (this.picker) {
      this.downloader.releasePeer(peer, false);
      this.picker.peerGone(peer);
      if (peer.isSeed) this.picker.removeHaveAll();
      else if (!peer.bits.empty) this.picker.removePeerBitfield(peer.bits);
    }
    peer.uploadQueue.length = 0;
    this.seeder?.removePeer(peer);
    this.emit('disconnect', key, err);
    if (peer.outbound) this.peerManager.disconnected({ host: peer.host, port: peer.port }, err !== undefined);
    if (!peer.amChoking) this.scheduleRechoke();
    // Others may pick up the blocks it had in flight.
    for (const p of this.peers.values()) this.downloader.fill(p);
    this.peerManager.dial();
  }

  private onPieceVerified(index: number): void {
    this.picker.pieceVerified(index);
    this.leftBytes -= pieceLengthAt(this.meta, index);
    for (const p of this.peers.values()) {
      if (p.closed) continue;
      const theyHave = p.isSeed || p.bits.get(index);
      if (theyHave) {
        p.interestingCount--;
        this.updateInterest(p);
      } else {
        p.wire.have(index);
      }
    }
    this.emit('piece', index);
    if (this.picker.missingCount() === 0 && this.stateValue === 'downloading') this.onDone();
  }

  private onPieceFailed(index: number, contributors: Set<Peer>): void {
    this.hashFailCount++;
    this.picker.pieceFailed(index);
    for (const p of contributors) {
      if (p.banned) continue;
      p.hashFailures += contributors.size === 1 ? 1 : 0;
      if (p.hashFailures >= SOLE_FAILURES_TO_BAN) this.banPeer(p, `${p.hashFailures} pieces failed their hash check`);
    }
    this.emit('hashfail', index);
    for (const p of this.peers.values()) this.downloader.fill(p);
  }

  private banPeer(peer: Peer, reason: string): void {
    if (peer.banned) return;
    peer.banned = true;
    this.peerManager.ban(peer.address);
    if (peer.listenPort) this.peerManager.ban(formatPeerAddress({ host: peer.host, port: peer.listenPort }));
    this.emit('ban', peer.address, reason);
    peer.wire.destroy(new ShoalError('EWIRE', `peer ${peer.address} banned: ${reason}`));
  }

  private onDone(): void {
    this.stateValue = 'seeding';
    void this.storage.saveResume().catch((err) => this.emit('warning', `cannot save resume data: ${(err as Error).message}`));
    for (const p of this.peers.values()) {
      this.updateInterest(p);
      if (p.hasAll) p.wire.destroy();
    }
    this.announcer?.complete();
    this.emit('done');
    if (this.opts.seed === false) void this.stopNetwork();
  }

  private fail(err: unknown): void {
    if (this.stateValue === 'error' || this.stateValue === 'closed') return;
    const e = err instanceof Error ? err : new Error(String(err));
    this.error = e;
    this.stateValue = 'error';
    void this.stopNetwork();
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private scheduleRechoke(): void {
    if (this.rechokePending) return;
    this.rechokePending = true;
    setImmediate(() => {
      this.rechokePending = false;
      this.rechoke();
    });
  }

  private rechoke(): void {
    if (!this.choker || this.stateValue === 'closed') return;
    const now = Date.now();
    const list: ChokerPeer[] = [];
    for (const p of this.peers.values()) {
      if (p.closed) continue;
      list.push({
        key: p,
        interested: p.peerInterested,
        downloadRate: p.downloadMeter.rate(now),
        uploadRate: p.uploadMeter.rate(now),
        isSeed: p.hasAll,
        connectedAt: p.connectedAt,
        snubbed: p.snubbed,
        amChoking: p.amChoking,
      });
    }
    const { unchoke } = this.choker.rechoke(list, this.done, now);
    for (const p of this.peers.values()) {
      if (p.closed) continue;
      const shouldUnchoke = unchoke.has(p);
      if (shouldUnchoke && p.amChoking) {
        p.amChoking = false;
        p.refusedRequests = 0;
        p.wire.unchoke();
      } else if (!shouldUnchoke && !p.amChoking) {
        p.amChoking = true;
        p.wire.choke();
        this.uploader.choked(p);
      }
    }
  }

  private tick(): void {
    if (this.stateValue === 'closed' || this.stateValue === 'error') return;
    this.tickCount++;
    const now = Date.now();
    if (this.tickCount % RECHOKE_TICKS === 0) this.rechoke();
    if (this.seeder?.active) {
      this.seeder.expireStale(now, (p, index) => (p as Peer).uploadQueue.some((r) => r.index === index));
    } else if (this.seeder) {
      this.seeder = null;
    }
    for (const p of this.peers.values()) {
      if (p.closed) continue;
      if (p.outstanding.size > 0 && now - p.lastBlockAt > REQUEST_TIMEOUT_MS) {
        // Take its requests back so faster peers can serve them; cancel so it stops sending.
        p.snubbed = true;
        this.downloader.releasePeer(p, true);
        for (const other of this.peers.values()) if (other !== p) this.downloader.fill(other);
      } else if (p.outstanding.size === 0) {
        this.downloader.fill(p);
      }
    }
    this.peerManager.dial();
    this.emit('stats', this.stats());
  }

  stats(): TorrentStats {
    const now = Date.now();
    const meta = this.meta;
    const have = this.storage?.have;
    const wanted = this.storage?.wanted;
    const downloadRate = this.downloadMeter.rate(now);
    let seeds = 0;
    for (const p of this.peers.values()) if (p.hasAll) seeds++;
    const wantedHave = this.picker ? this.wantedTotal - this.picker.missingCount() : 0;
    return {
      infoHash: this.infoHashHex,
      name: meta.name,
      downloaded: this.downloadedBytes,
      uploaded: this.uploadedBytes,
      downloadRate,
      uploadRate: this.uploadMeter.rate(now),
      have: have?.count ?? 0,
      pieceCount: meta.pieceCount,
      wantedPieces: wanted ? this.wantedTotal : meta.pieceCount,
      wantedHave,
      progress: this.wantedTotal > 0 ? wantedHave / this.wantedTotal : this.picker ? 1 : 0,
      left: this.leftBytes,
      peers: this.peers.size,
      seeds,
      eta: this.done ? 0 : downloadRate > 0 ? Math.ceil(this.leftBytes / downloadRate) : null,
      wasted: this.wastedBytes,
      hashFails: this.hashFailCount,
      done: this.done,
      state: this.stateValue,
    };
  }

  peerStats(): PeerStats[] {
    const now = Date.now();
    return [...this.peers.values()].map((p) => ({
      address: p.address,
      client: p.clientName,
      outbound: p.outbound,
      downloaded: p.downloaded,
      uploaded: p.uploaded,
      downloadRate: p.downloadMeter.rate(now),
      uploadRate: p.uploadMeter.rate(now),
      progress: p.hasAll ? 1 : p.bits.count / this.meta.pieceCount,
      amChoking: p.amChoking,
      amInterested: p.amInterested,
      peerChoking: p.peerChoking,
      peerInterested: p.peerInterested,
      outstandingRequests: p.outstanding.size,
      queuedRequests: p.uploadQueue.length,
      sendBacklog: p.wire.writeBacklog,
      hashFailures: p.hashFailures,
    }));
  }

  /** Disconnect from everyone and tell the trackers we stopped; storage stays open. */
  private async stopNetwork(): Promise<void> {
    this.peerManager.close();
    for (const p of [...this.peers.values()]) p.wire.destroy();
    const announcer = this.announcer;
    this.announcer = null;
    if (announcer) await announcer.stop().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    const wasStarted = this.picker !== undefined;
    this.stateValue = 'closed';
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.stopNetwork();
    this.downloader?.close();
    if (this.storage) await this.storage.close();
    if (wasStarted) this.emit('close');
  }
}

/** `::ffff:1.2.3.4` from a dual-stack socket is an IPv4 peer. */
export function normalizeHost(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}
