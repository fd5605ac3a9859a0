import { EventEmitter } from 'node:events';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type { Metainfo } from '../metainfo/types.js';
import { torrentFromInfo } from '../metainfo/from-info.js';
import { formatPeerAddress, parsePeerAddress, type PeerAddress } from '../discovery/compact.js';
import type { HandshakeInfo } from '../wire/types.js';
import type { Bitfield } from '../util/bitfield.js';
import { ShoalError } from '../util/errors.js';
import { INITIAL_SEEDING_KEY, PeerConnection, type ConnectionEvents } from '../connection/connection.js';
import { ExtensionRegistry } from '../connection/registry.js';
import type { PeerSource, PeerSourceKind, SwarmState } from '../peers/source.js';
import { PUBLIC_ONLY_SOURCES } from '../peers/source.js';
import { StaticPeerSource, TrackerSource } from '../peers/tracker-source.js';
import { PeerManager } from './peer-manager.js';
import { MAX_QUEUED_REQUESTS, TorrentContent } from './content.js';
import { checkInvariants } from './invariants.js';
import type { WebSeedSource } from './web-seed-source.js';
import type { TorrentContext } from './context.js';
import type { AddOptions, PeerStats, TorrentState, TorrentStats } from './types.js';

export type { TorrentContext } from './context.js';

const TICK_MS = 1000;
/** Warn that no connection could be made once this many dials in a row failed with nothing connected. */
const FAILED_DIALS_TO_WARN = 3;
/**
 * A connection that moved no payload either way for this long while neither side is interested does nothing for
 * anyone: when slots are full it makes room for a newcomer (peer turnover), and keep-alives do not save it.
 */
const IDLE_TO_EVICT_MS = 5_000;
/** Such a connection is dropped after this long even when nobody needs its slot. */
const IDLE_TO_DROP_MS = 300_000;
/** A download with no connection for this long, after failed attempts, says which addresses failed and why. */
const NO_PEERS_WARN_MS = 15_000;

/** One file of a torrent, readable while it downloads (see `Torrent.files`). */
export interface TorrentFileView {
  readonly index: number;
  /** Path inside the torrent, components joined with '/'. */
  readonly path: string;
  readonly length: number;
  /** First byte of the file within the torrent's data. */
  readonly offset: number;
  createReadStream(range?: { start?: number; end?: number }): Readable;
}

/** How a torrent starts: from a .torrent (meta known) or from a bare info-hash (a magnet link). */
export interface TorrentSpec {
  infoHash: Buffer;
  meta?: Metainfo;
  /** Display name before the metadata is known (magnet `dn`). */
  name?: string;
  /** Trackers from a magnet's `tr`. */
  trackers?: string[];
  /** Peers from a magnet's `x.pe`. */
  magnetPeers?: PeerAddress[];
  /** Web seeds from a magnet's `ws`. */
  webSeeds?: string[];
}

/**
 * One torrent, as a **swarm session** (info-hash, connections, peer sources, BEP 10 extensions) that exists from a
 * bare info-hash, plus a **content** part (storage, picker, downloader, uploader: content.ts) created once the info
 * dictionary is known and verified. The session routes connection events to the content when there is one.
 *
 * Events: 'metadata' (Metainfo; the info dictionary is known), 'checking' (done, total), 'checked' (stats),
 * 'piece' (index), 'done', 'peer' (address), 'disconnect' (address, error?), 'ban' (address, reason),
 * 'hashfail' (index), 'stats' (every second), 'warning' (message), 'error' (ShoalError; emitted only when someone
 * listens), 'close'.
 */
export class Torrent extends EventEmitter implements ConnectionEvents {
  readonly infoHash: Buffer;
  readonly infoHashHex: string;
  readonly path: string;
  readonly ctx: TorrentContext;
  readonly opts: AddOptions;
  readonly registry = new ExtensionRegistry();
  private readonly spec: TorrentSpec;
  private metaValue: Metainfo | null;
  private content: TorrentContent | null = null;
  private readonly peerManager: PeerManager;
  private readonly sources: PeerSource[] = [];
  private sourcesStarted = false;
  private readonly conns = new Map<string, PeerConnection>();
  /** Connected peers by the listen address they told us (BEP 10 `p`), for inbound peers dialed from elsewhere. */
  private readonly byListenAddress = new Map<string, PeerConnection>();
  private readonly tickers: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stateValue: TorrentState;
  private failedDialsWarned = false;
  /** What peer sources see of this torrent. */
  readonly swarmState: SwarmState;
  /** Set when the torrent stopped because of an error (disk full, …). */
  error: Error | null = null;

  constructor(ctx: TorrentContext, spec: TorrentSpec, opts: AddOptions) {
    super();
    this.ctx = ctx;
    this.spec = spec;
    this.infoHash = spec.infoHash;
    this.infoHashHex = spec.infoHash.toString('hex');
    this.metaValue = spec.meta ?? null;
    this.path = opts.path;
    this.opts = opts;
    this.stateValue = this.metaValue ? 'checking' : 'metadata';
    const self = this;
    this.swarmState = {
      infoHash: spec.infoHash,
      peerId: ctx.peerId,
      get port() { return ctx.port; },
      left: () => (self.content?.isReady ? self.content.leftBytes : null),
      uploaded: () => self.content?.uploadedBytes ?? 0,
      downloaded: () => self.content?.downloadedBytes ?? 0,
      complete: () => self.done,
    };
    this.peerManager = new PeerManager({
      infoHash: spec.infoHash,
      peerId: ctx.peerId,
      localAddress: ctx.localAddress,
      get dht() { return ctx.dht !== null; },
      connectionSlots: () => Math.min(ctx.maxPeersPerTorrent - self.conns.size, ctx.globalSlots()),
      isConnected: (address) => self.isConnected(address),
      attach: (socket, handshake, rest, addr, outbound) => self.attach(socket, handshake, rest, addr, outbound),
      wantsPeers: () => self.wantsPeers(),
      ...(ctx.peerRetryMaxMs !== undefined ? { maxBackoffMs: ctx.peerRetryMaxMs } : {}),
    });
  }

  /** The torrent's metainfo. Throws before a magnet's metadata has arrived: check `hasMetadata` or wait for 'metadata'. */
  get meta(): Metainfo {
    if (!this.metaValue) throw new ShoalError('EUSAGE', `torrent ${this.infoHashHex}: metadata not known yet`);
    return this.metaValue;
  }

  get hasMetadata(): boolean {
    return this.metaValue !== null;
  }

  /** The name from the metadata, or the magnet's `dn`, or the info-hash. */
  get name(): string {
    return this.metaValue?.name ?? this.spec.name ?? this.infoHashHex;
  }

  get isPrivate(): boolean {
    return this.metaValue?.private === true;
  }

  get state(): TorrentState {
    return this.stateValue;
  }

  get done(): boolean {
    return this.stateValue === 'seeding';
  }

  /** How the last check of existing data went: pieces trusted from resume data vs. hashed from disk. */
  get lastCheck(): { trusted: number; hashed: number } {
    return this.content?.storage?.lastCheck ?? { trusted: 0, hashed: 0 };
  }

  get have(): Bitfield {
    if (!this.content?.isReady) throw new ShoalError('EUSAGE', `torrent ${this.infoHashHex}: not checked yet`);
    return this.content.have;
  }

  /** The picker, once the content exists (tests and benchmarks inspect it). */
  get picker(): TorrentContent['picker'] {
    if (!this.content?.isReady) throw new ShoalError('EUSAGE', `torrent ${this.infoHashHex}: not checked yet`);
    return this.content.picker;
  }

  /**
   * The torrent's files (padding files excluded), each readable while it downloads: `createReadStream({ start, end })`
   * yields bytes as soon as the pieces under them are verified, in order, with back-pressure, and makes those pieces
   * the download's priority. Needs the metadata (a magnet's arrives with 'metadata'); reads wait for the check.
   */
  get files(): TorrentFileView[] {
    const meta = this.meta;
    return meta.files.flatMap((f, index) => (f.padding ? [] : [{
      index,
      path: f.path.join('/'),
      length: f.length,
      offset: f.offset,
      createReadStream: (range: { start?: number; end?: number } = {}) => this.createReadStream(index, range),
    }]));
  }

  /**
   * A player is about to open file `index`: fetch its head (and a media file's tail) first, before any read arrives.
   * Applies once the content is ready.
   */
  prefetch(index: number): void {
    if (this.content?.isReady) this.content.streams.prefetch(index);
    else this.once('checked', () => this.content?.streams.prefetch(index));
  }

  /** See `files`. */
  createReadStream(index: number, range: { start?: number; end?: number } = {}): Readable {
    const content = this.content;
    if (content?.isReady) return content.streams.createReadStream(index, range);
    if (!this.metaValue) throw new ShoalError('EUSAGE', `torrent ${this.infoHashHex}: metadata not known yet`);
    // Still checking: hand out a stream now and connect it to a real reader once the content is ready.
    const out = new PassThrough();
    const onChecked = (): void => {
      if (out.destroyed) return;
      try {
        const inner = this.content!.streams.createReadStream(index, range);
        inner.on('error', (err) => out.destroy(err));
        out.on('close', () => inner.destroy());
        inner.pipe(out);
      } catch (err) {
        out.destroy(err as Error);
      }
    };
    this.once('checked', onChecked);
    out.on('close', () => this.off('checked', onChecked));
    return out;
  }

  /** Connections open now. */
  get peerCount(): number {
    return this.conns.size;
  }

  /** Adds a BEP 10 extension and a once-a-second tick for it (extensions are registered before start()). */
  useExtension(ext: Parameters<ExtensionRegistry['register']>[0], tick?: () => void): void {
    this.registry.register(ext);
    if (tick) this.tickers.push(tick);
  }

  /** Adds a peer source; sources run from the moment the torrent knows what it has (after checking). */
  addSource(source: PeerSource): void {
    if (this.isPrivate && PUBLIC_ONLY_SOURCES.has(source.kind)) return;
    this.sources.push(source);
    if (this.sourcesStarted) source.start((peers, kind) => this.peersFound(peers, kind));
  }


  /**
   * Start the session: accept connections, and with metadata, open and check the content. Resolves once checked
   * (a .torrent) or at once (a magnet: 'metadata' follows, then 'checked').
   */
  async start(): Promise<void> {
    const ctx = this.ctx;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    const tiers = ctx.trackers ? [
      ...(this.metaValue?.announce ?? []),
      ...(this.spec.trackers ?? []).map((t) => [t]),
      ...(this.opts.announce ?? []),
    ].filter((t) => t.length > 0) : [];
    if (tiers.length > 0) this.sources.push(new TrackerSource(this.swarmState, dedupeTiers(tiers), (m) => this.emit('warning', m)));
    if ((this.opts.peers ?? []).length > 0) this.sources.push(new StaticPeerSource('explicit', this.opts.peers!));
    if ((this.spec.magnetPeers ?? []).length > 0) this.sources.push(new StaticPeerSource('magnet', this.spec.magnetPeers!));
    if (this.metaValue) {
      await this.openContent(this.metaValue);
    } else {
      this.startSources();
    }
  }

  private startSources(): void {
    if (this.sourcesStarted || this.stateValue === 'closed' || this.stateValue === 'error') return;
    this.sourcesStarted = true;
    for (const s of this.sources) s.start((peers, kind) => this.peersFound(peers, kind));
  }

  private peersFound(peers: PeerAddress[], kind: PeerSourceKind): void {
    for (const p of peers) this.peerManager.add(p, kind);
    this.peerManager.dial();
  }

  /** Addresses an extension learned (PEX): into the peer manager like any source's. */
  peersLearned(peers: PeerAddress[], kind: PeerSourceKind): void {
    if (this.isPrivate && PUBLIC_ONLY_SOURCES.has(kind)) return;
    this.peersFound(peers, kind);
  }

  addPeer(addr: PeerAddress | string, kind: PeerSourceKind = 'explicit'): void {
    const a = typeof addr === 'string' ? parsePeerAddress(addr) : addr;
    this.peerManager.add(a, kind);
    this.peerManager.dial();
  }

  private wantsPeers(): boolean {
    const s = this.stateValue;
    return s === 'metadata' || s === 'downloading' || (s === 'seeding' && this.opts.seed !== false);
  }

  // ---- metadata ----

  /** The verified info dictionary's bytes, for serving ut_metadata (undefined until known). */
  info(): Buffer | undefined {
    return this.metaValue?.infoBuffer;
  }

  /**
   * Verified metadata arrived (its SHA-1 is the info-hash): save it as a .torrent so a restart does not fetch it
   * again, then open the content.
   */
  infoReceived(info: Buffer): void {
    if (this.metaValue || this.stateValue === 'closed') return;
    let built: ReturnType<typeof torrentFromInfo>;
    try {
      built = torrentFromInfo(info, { trackers: this.spec.trackers ?? [], webSeeds: this.spec.webSeeds ?? [] });
    } catch (err) {
      // The bytes hash to the info-hash, so every peer would send the same: this torrent cannot be downloaded.
      const e = err as Error;
      this.fail(new ShoalError('EMETAINFO', `the metadata of ${this.infoHashHex} is not a usable torrent: ${e.message}`, { cause: e }));
      return;
    }
    void this.metadataReceived(built.meta, built.bytes);
  }

  private async metadataReceived(meta: Metainfo, torrentBytes: Buffer): Promise<void> {
    if (this.metaValue || this.stateValue === 'closed') return;
    this.metaValue = meta;
    this.stateValue = 'checking';
    try {
      if (this.opts.metadataOnly) {
        if (this.opts.saveTorrent) await writeAtomically(this.opts.saveTorrent, torrentBytes);
      } else {
        await saveTorrentFile(this.opts.path, this.infoHashHex, torrentBytes, this.opts.saveTorrent);
      }
    } catch (err) {
      this.emit('warning', `cannot save the fetched metadata: ${(err as Error).message}`);
    }
    if (this.opts.metadataOnly) {
      this.emit('metadata', meta);
      await this.stopNetwork();
      return;
    }
    if (meta.private) {
      // BEP 27: a private torrent uses only its trackers and explicit peers.
      for (const s of this.sources.filter((x) => PUBLIC_ONLY_SOURCES.has(x.kind))) void s.stop();
    }
    this.emit('metadata', meta);
    try {
      await this.openContent(meta);
    } catch (err) {
      this.fail(err);
    }
  }

  // ---- content ----

  private async openContent(meta: Metainfo): Promise<void> {
    const self = this;
    const content = new TorrentContent({
      ctx: this.ctx,
      opts: this.opts,
      connections: () => self.conns.values(),
      emit: (event, ...args) => self.emit(event, ...args),
      ban: (c, reason) => self.ban(c, reason),
      completed: () => self.onComplete(),
      fail: (err) => self.fail(err),
      webSeedUrls: () => [...(meta.urlList ?? []), ...(self.spec.webSeeds ?? []), ...(self.opts.webSeeds ?? []), ...self.lateWebSeeds],
      hasPeerSources: () => self.sources.length > 0 || self.conns.size > 0 || self.peerManager.knownCount > 0,
    }, meta);
    this.content = content;
    await content.open((done, total) => this.emit('checking', done, total));
    if (this.stateValue === 'closed') return;
    this.stateValue = content.complete ? 'seeding' : 'downloading';
    // Connections that arrived while we fetched metadata or checked data join now.
    for (const c of [...this.conns.values()]) {
      if (c.closed) continue;
      const wasGreeted = c.greeted;
      if (!content.attach(c)) continue;
      if (!wasGreeted) {
        this.greet(c);
      } else {
        // Greeted before we knew what we have (a magnet): tell it piece by piece.
        if (!content.hidesPieces) for (const i of content.have.indices()) c.sendHave(i);
        content.greeted(c);
      }
    }
    this.emit('checked', this.stats());
    if (content.complete) this.emit('done');
    this.startSources();
    this.peerManager.dial();
    this.debugCheck();
  }

  private greet(c: PeerConnection): void {
    const content = this.content?.isReady ? this.content : null;
    const extra: Record<string, unknown> = { v: this.ctx.clientName, reqq: MAX_QUEUED_REQUESTS };
    if (this.ctx.port > 0) extra['p'] = this.ctx.port;
    if (content?.hidesPieces) extra[INITIAL_SEEDING_KEY] = 1;
    c.greet(content ? content.have : null, extra, { hideHave: content?.hidesPieces === true });
    // BEP 5: both sides set the DHT bit, so tell the peer where our node listens.
    const dht = this.ctx.dht;
    if (dht && c.handshake.dht && !this.isPrivate) c.sendDhtPort(dht.port);
    content?.greeted(c);
  }

  private onComplete(): void {
    this.stateValue = 'seeding';
    for (const s of this.sources) s.completed?.();
    this.emit('done');
    if (this.opts.seed === false) void this.stopNetwork();
  }

  // ---- connections ----

  /** Inbound connection whose handshake named this torrent; we have already answered with ours. */
  acceptInbound(socket: Socket, handshake: HandshakeInfo, rest: Buffer): boolean {
    const host = normalizeHost(socket.remoteAddress ?? '');
    if (this.stateValue === 'closed' || this.stateValue === 'error') return false;
    if (this.peerManager.isBanned(host)) return false;
    if (this.conns.size >= this.ctx.maxPeersPerTorrent && !this.makeRoom()) return false;
    if (handshake.peerId.equals(this.ctx.peerId)) return false;
    return this.attach(socket, handshake, rest, { host, port: socket.remotePort ?? 0 }, false);
  }

  /** Returns false when the connection was refused (closing, or a duplicate of a connection we keep). */
  private attach(socket: Socket, handshake: HandshakeInfo, rest: Buffer, addr: PeerAddress, outbound: boolean): boolean {
    const key = formatPeerAddress(addr);
    if (this.conns.has(key) || this.stateValue === 'closed' || this.stateValue === 'error') {
      socket.destroy();
      return false;
    }
    for (const p of this.conns.values()) {
      if (!p.handshake.peerId.equals(handshake.peerId)) continue;
      // The same peer reached twice, typically because both sides dialed each other. Both sides must keep the
      // same one or they drop both: keep the connection opened by the side with the smaller peer id.
      const keepOutbound = Buffer.compare(this.ctx.peerId, handshake.peerId) < 0;
      if (p.outbound === outbound || p.outbound === keepOutbound) {
        socket.destroy();
        return false;
      }
      p.destroy();
      break;
    }
    const content = this.content?.isReady ? this.content : null;
    const c = new PeerConnection(socket, handshake, addr, outbound, rest, this, this.registry, content ? content.meta.pieceCount : null);
    this.conns.set(key, c);
    if (content) {
      if (!content.attach(c)) return true;
      this.greet(c);
    } else if (!this.metaValue) {
      // No metadata yet: greet at once (have-none and our extended handshake) so ut_metadata can start.
      this.greet(c);
    }
    // While checking, the greeting waits until we know what we have (openContent greets it).
    this.failedDialsWarned = false;
    this.emit('peer', key);
    return true;
  }

  /** Is a peer at this address connected, by the address we dialed or the listen port it told us (BEP 10 `p`)? */
  private isConnected(address: string): boolean {
    return this.conns.has(address) || this.byListenAddress.has(address);
  }

  /** Inbound connections from one address (the client limits them per address). */
  inboundFrom(host: string): number {
    let n = 0;
    for (const c of this.conns.values()) if (!c.outbound && c.host === host) n++;
    return n;
  }

  /**
   * How long a connection has been useless: no payload either way since `lastPayloadAt` while neither side is
   * interested (before the metadata: it cannot give us the metadata). 0 when it is useful.
   */
  private uselessFor(c: PeerConnection, now: number): number {
    if (c.closed) return 0;
    const content = this.ready();
    if (content) {
      if (c.peerInterested || c.amInterested || !c.greeted) return 0;
    } else if (this.stateValue !== 'metadata' || c.supports('ut_metadata')) {
      return 0;
    }
    return now - c.lastPayloadAt;
  }

  /** The connection useless for longest, if one has been for IDLE_TO_EVICT_MS. */
  private leastUseful(now: number): PeerConnection | null {
    let worst: PeerConnection | null = null;
    let longest = IDLE_TO_EVICT_MS - 1;
    for (const c of this.conns.values()) {
      const idle = this.uselessFor(c, now);
      if (idle > longest) { longest = idle; worst = c; }
    }
    return worst;
  }

  /** Drop the least useful connection to admit a newcomer; false when none is useless. */
  makeRoom(): boolean {
    const c = this.leastUseful(Date.now());
    if (!c) return false;
    c.destroy(new ShoalError('ETIMEOUT', `peer ${c.address} dropped for a newcomer: no data either way for ${Math.round((Date.now() - c.lastPayloadAt) / 1000)} s and nothing wanted`));
    return true;
  }

  /**
   * Once a tick: note which connections moved payload; drop those useless for IDLE_TO_DROP_MS; when the torrent is
   * full and the peer manager has addresses waiting, turn one useless connection over.
   */
  private turnOver(now: number): void {
    for (const c of this.conns.values()) {
      const bytes = c.download.bytes + c.upload.bytes;
      if (bytes !== c.payloadSeen) { c.payloadSeen = bytes; c.lastPayloadAt = now; }
    }
    for (const c of [...this.conns.values()]) {
      if (this.uselessFor(c, now) >= IDLE_TO_DROP_MS) c.destroy(new ShoalError('ETIMEOUT', `peer ${c.address}: no data either way for ${Math.round((now - c.lastPayloadAt) / 1000)} s and nothing wanted`));
    }
    const full = this.conns.size >= this.ctx.maxPeersPerTorrent || this.ctx.globalSlots() <= 0;
    if (full && this.wantsPeers() && this.peerManager.hasDialable()) this.makeRoom();
  }

  /** Connected peers (for extensions such as PEX). */
  connections(): IterableIterator<PeerConnection> {
    return this.conns.values();
  }

  private ready(): TorrentContent | null {
    return this.content?.isReady && this.content.meta && this.stateValue !== 'closed' ? this.content : null;
  }

  // ConnectionEvents: the connection has updated its own state; piece-level work goes to the content.
  choked(c: PeerConnection): void { this.ready()?.choked(c); }
  unchoked(c: PeerConnection): void { this.ready()?.unchoked(c); }
  interested(): void { this.ready()?.interested(); }
  notInterested(c: PeerConnection): void { this.ready()?.notInterested(c); }
  // Piece announcements are only reported once the connection knows the piece count, i.e. it joined the content.
  gotHave(c: PeerConnection, index: number): void { this.ready()?.gotHave(c, index); }
  gotBitfield(c: PeerConnection): void { this.ready()?.gotBitfield(c); }
  gotHaveAll(c: PeerConnection, previous: Bitfield | null): void { this.ready()?.gotHaveAll(c, previous); }
  request(c: PeerConnection, index: number, begin: number, length: number): void {
    const content = this.ready();
    if (content && c.greeted) content.request(c, index, begin, length);
    else c.sendReject(index, begin, length);
  }
  cancel(c: PeerConnection, index: number, begin: number, length: number): void { this.ready()?.cancel(c, index, begin, length); }
  pieceStart(c: PeerConnection, index: number, begin: number, length: number): Buffer | null {
    return this.ready()?.pieceStart(c, index, begin, length) ?? null;
  }
  piece(c: PeerConnection, index: number, begin: number, length: number): void { this.ready()?.piece(c, index, begin, length); }
  reject(c: PeerConnection, index: number, begin: number, length: number): void { this.ready()?.reject(c, index, begin, length); }
  allowedFast(c: PeerConnection): void { this.ready()?.allowedFast(c); }
  /** BEP 5 PORT: the peer runs a DHT node there; our node pings it and keeps it if it answers. */
  dhtPort(c: PeerConnection, port: number): void {
    if (!this.isPrivate) this.ctx.dht?.addNode({ host: c.host, port });
  }
  drain(c: PeerConnection): void { this.ready()?.drain(c); }

  extendedHandshake(c: PeerConnection): void {
    if (c.advertisedPort > 0) {
      const listenKey = formatPeerAddress({ host: c.host, port: c.advertisedPort });
      this.byListenAddress.set(listenKey, c);
      // An inbound peer's source port is ephemeral; its listen port is where others (and we, later) reach it.
      if (!c.outbound) this.peerManager.add({ host: c.host, port: c.advertisedPort }, 'incoming');
    }
  }

  closed(c: PeerConnection, err?: Error): void {
    const key = c.address;
    if (this.conns.get(key) === c) this.conns.delete(key);
    if (c.advertisedPort > 0) {
      const listenKey = formatPeerAddress({ host: c.host, port: c.advertisedPort });
      if (this.byListenAddress.get(listenKey) === c) this.byListenAddress.delete(listenKey);
    }
    const content = this.content?.isReady ? this.content : null;
    if (content && c.knowsPieceCount) content.detach(c);
    this.emit('disconnect', key, err);
    if (c.outbound) this.peerManager.disconnected({ host: c.host, port: c.port }, err !== undefined);
    this.peerManager.dial();
    this.debugCheck();
  }

  private ban(c: PeerConnection, reason: string): void {
    if (c.banned) return;
    c.banned = true;
    this.peerManager.ban(c.address, c.host);
    if (c.advertisedPort) this.peerManager.ban(formatPeerAddress({ host: c.host, port: c.advertisedPort }));
    this.emit('ban', c.address, reason);
    c.destroy(new ShoalError('EWIRE', `peer ${c.address} banned: ${reason}`));
  }

  private fail(err: unknown): void {
    if (this.stateValue === 'error' || this.stateValue === 'closed') return;
    const e = err instanceof Error ? err : new Error(String(err));
    this.error = e;
    this.stateValue = 'error';
    void this.stopNetwork();
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private tick(): void {
    if (this.stateValue === 'closed' || this.stateValue === 'error') return;
    const now = Date.now();
    this.content?.tick(now);
    this.turnOver(now);
    for (const t of this.tickers) t();
    this.peerManager.dial();
    this.warnIfUnreachable(now);
    this.debugCheck();
    this.emit('stats', this.stats());
  }

  /**
   * Peers were found but every connection attempt failed, or the download has had no peer for NO_PEERS_WARN_MS
   * after failed attempts: say so once (again only after a peer connected in between), naming each address tried
   * and its last error, rather than showing "0 peers" forever.
   */
  private warnIfUnreachable(now: number): void {
    const pm = this.peerManager;
    if (this.conns.size > 0) { this.noPeersSince = 0; return; }
    if (this.noPeersSince === 0) this.noPeersSince = now;
    if (this.failedDialsWarned || pm.failures === 0) return;
    if (!this.wantsPeers() || this.stateValue === 'seeding') return;
    const allFailed = pm.failures >= FAILED_DIALS_TO_WARN && pm.succeeded === 0;
    if (!allFailed && now - this.noPeersSince < NO_PEERS_WARN_MS) return;
    this.failedDialsWarned = true;
    const tried = pm.failureSummary() || (pm.lastFailure ?? 'unknown');
    const head = allFailed
      ? `found ${pm.knownCount} peer address(es) but every connection failed (${pm.failures} attempts)`
      : `no peer connected for ${Math.round((now - this.noPeersSince) / 1000)} s (${pm.knownCount} address(es) known)`;
    this.emit('warning', `${head}; still retrying. Tried: ${tried}`);
  }
  private noPeersSince = 0;

  private debugCheck(): void {
    if (!this.ctx.debugInvariants) return;
    // A torrent that failed (disk full) stopped mid-piece on purpose: its structures are no longer kept in step.
    const content = this.content?.isReady ? this.content : null;
    if (content && this.stateValue !== 'closed' && this.stateValue !== 'error') checkInvariants(content, this.conns.values());
  }

  stats(): TorrentStats {
    const now = Date.now();
    const content = this.content?.isReady ? this.content : null;
    const meta = this.metaValue;
    let seeds = 0;
    for (const c of this.conns.values()) if (c.hasAll) seeds++;
    const wantedTotal = content?.wantedTotal ?? 0;
    const wantedHave = content ? wantedTotal - content.picker.missingCount() : 0;
    const downloadRate = content ? content.downloadMeter.rate(now) : 0;
    const left = content ? content.leftBytes : meta ? meta.length : 0;
    const dht = this.ctx.dht?.stats();
    return {
      infoHash: this.infoHashHex,
      name: this.name,
      downloaded: content?.downloadedBytes ?? 0,
      fromPeers: content?.fromPeers ?? 0,
      fromWebSeeds: content?.fromWebSeeds ?? 0,
      webSeeds: content ? content.webSeeds.filter((w) => w.usable).length : 0,
      webSeedsTotal: content?.webSeeds.length ?? 0,
      uploaded: content?.uploadedBytes ?? 0,
      downloadRate,
      uploadRate: content ? content.uploadMeter.rate(now) : 0,
      have: content?.have.count ?? 0,
      pieceCount: meta?.pieceCount ?? 0,
      wantedPieces: content ? wantedTotal : meta?.pieceCount ?? 0,
      wantedHave,
      progress: wantedTotal > 0 ? wantedHave / wantedTotal : content ? 1 : 0,
      left,
      peers: this.conns.size,
      seeds,
      eta: this.done ? 0 : downloadRate > 0 ? Math.ceil(left / downloadRate) : null,
      wasted: content?.wastedBytes ?? 0,
      hashFails: content?.hashFailCount ?? 0,
      done: this.done,
      state: this.stateValue,
      knownPeers: this.peerManager.knownCount,
      piecesInFlight: content?.downloader.piecesInFlight ?? 0,
      cacheBytes: content?.storage.cacheBytes ?? 0,
      lentBlocks: content?.storage.lentBlocks ?? 0,
      ...(dht ? { dht: { nodes: dht.nodes, lookups: dht.lookups } } : {}),
    };
  }

  /**
   * Adds a web seed (BEP 19 HTTP origin) to a running torrent, like AddOptions.webSeeds. Before the content is
   * ready it is kept for then; once complete there is nothing to fetch. Returns false for a duplicate or bad URL.
   */
  addWebSeed(url: string): boolean {
    if (this.content?.isReady) return this.content.complete ? false : this.content.addWebSeed(url);
    if (this.lateWebSeeds.includes(url)) return false;
    this.lateWebSeeds.push(url);
    return true;
  }
  private readonly lateWebSeeds: string[] = [];

  /** Per web seed: URL, bytes delivered, whether still in use and why not. */
  webSeedStats(): ReturnType<WebSeedSource['stats']>[] {
    return this.content?.webSeeds.map((w) => w.stats()) ?? [];
  }

  peerStats(): PeerStats[] {
    const now = Date.now();
    const pieceCount = this.metaValue?.pieceCount ?? 0;
    return [...this.conns.values()].map((c) => ({
      address: c.address,
      client: c.clientName,
      outbound: c.outbound,
      downloaded: c.download.bytes,
      uploaded: c.upload.bytes,
      downloadRate: c.download.meter.rate(now),
      uploadRate: c.upload.meter.rate(now),
      progress: c.hasAll ? 1 : pieceCount > 0 ? c.bits.count / pieceCount : 0,
      amChoking: c.amChoking,
      amInterested: c.amInterested,
      peerChoking: c.peerChoking,
      peerInterested: c.peerInterested,
      outstandingRequests: c.download.outstanding.size,
      queuedRequests: c.upload.queue.length,
      sendBacklog: c.writeBacklog,
      hashFailures: c.download.hashFailures,
    }));
  }

  /** Disconnect from everyone and tell the sources we stopped; storage stays open. */
  private async stopNetwork(): Promise<void> {
    this.peerManager.close();
    for (const c of [...this.conns.values()]) c.destroy();
    const sources = this.sources.splice(0);
    await Promise.all(sources.map((s) => s.stop().catch(() => undefined)));
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.stopNetwork();
    if (this.content) await this.content.close();
    this.emit('close');
  }
}

function dedupeTiers(tiers: string[][]): string[][] {
  const seen = new Set<string>();
  const out: string[][] = [];
  for (const tier of tiers) {
    const t = tier.filter((u) => !seen.has(u) && seen.add(u));
    if (t.length > 0) out.push(t);
  }
  return out;
}

/** `<dir>/.shoal/<info-hash>.torrent` (and `saveAs` if given), written atomically. */
async function saveTorrentFile(dir: string, infoHashHex: string, bytes: Buffer, saveAs: string | undefined): Promise<void> {
  const stateDir = join(dir, '.shoal');
  await mkdir(stateDir, { recursive: true });
  await writeAtomically(join(stateDir, `${infoHashHex}.torrent`), bytes);
  if (saveAs) await writeAtomically(saveAs, bytes);
}

async function writeAtomically(path: string, bytes: Buffer): Promise<void> {
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
}

/** Where a magnet download keeps the metadata it fetched. */
export function savedTorrentPath(dir: string, infoHashHex: string): string {
  return join(dir, '.shoal', `${infoHashHex}.torrent`);
}

/** `::ffff:1.2.3.4` from a dual-stack socket is an IPv4 peer. */
export function normalizeHost(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}
