import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { parseMagnet, parseTorrent, type Metainfo } from '../metainfo/index.js';
import { encodeHandshake, readHandshake } from '../wire/handshake.js';
import { reuseBufferOnAccepted } from '../wire/socket-reader.js';
import { ShoalError } from '../util/errors.js';
import { TokenBucket } from './token-bucket.js';
import { Lsd } from '../discovery/lsd.js';
import { sandboxed } from '../util/sandbox.js';
import { installSwarmFeatures } from './swarm-features.js';
import { Dht } from '../dht/index.js';
import { Torrent, normalizeHost, savedTorrentPath, type TorrentContext, type TorrentSpec } from './torrent.js';
import type { AddOptions, ClientOptions } from './types.js';
import { VERSION } from '../version.js';

export { VERSION };
/** An inbound peer sends its handshake as soon as it connects: one that has not within this long never will. */
const HANDSHAKE_TIMEOUT_MS = 5_000;
/**
 * Inbound connections still handshaking, client-wide. They have this budget of their own (apart from
 * maxConnections), and when it is full the oldest is dropped for the newcomer: silent connections cannot crowd out
 * peers that handshake at once.
 */
export const MAX_PENDING_HANDSHAKES = 32;
/** Default ClientOptions.maxConnectionsPerHost. */
export const DEFAULT_MAX_CONNECTIONS_PER_HOST = 8;

/** Azureus-style peer id: `-SH0100-` then 12 random bytes, so other clients can tell who we are. */
export function makePeerId(): Buffer {
  return Buffer.concat([Buffer.from('-SH0100-'), randomBytes(12)]);
}

/**
 * A BitTorrent client: one listening socket shared by any number of torrents. No global state, so several
 * clients can run in one process (tests and benchmarks do).
 *
 * Events: 'torrent' (Torrent) when one is added, 'error' for listener failures.
 */
export class Client extends EventEmitter {
  readonly peerId: Buffer;
  private readonly opts: ClientOptions;
  private readonly byHash = new Map<string, Torrent>();
  private server: net.Server | null = null;
  /** Local service discovery, shared by the client's torrents; null when off. */
  private lsd: Lsd | null = null;
  /** The DHT node shared by the client's torrents; null when off or not started. */
  private dht: Dht | null = null;
  private listening: Promise<number> | null = null;
  private boundPort = 0;
  private closed = false;
  /** Inbound sockets still handshaking (insertion order: oldest first), and how many per source address. */
  private readonly pending = new Map<net.Socket, string>();
  private readonly pendingByHost = new Map<string, number>();
  private readonly maxConnections: number;
  private readonly maxPerHost: number;
  private readonly uploadBucket: TokenBucket | null;
  private readonly downloadBucket: TokenBucket | null;
  private readonly originBucket: TokenBucket | null;
  private readonly ctx: TorrentContext;

  constructor(opts: ClientOptions = {}) {
    super();
    this.opts = opts;
    if (opts.peerId && opts.peerId.length !== 20) throw new ShoalError('EUSAGE', 'peerId must be 20 bytes');
    this.peerId = opts.peerId ?? makePeerId();
    this.maxConnections = opts.maxConnections ?? 200;
    this.maxPerHost = opts.maxConnectionsPerHost ?? DEFAULT_MAX_CONNECTIONS_PER_HOST;
    if (!(Number.isInteger(this.maxPerHost) && this.maxPerHost >= 1)) {
      throw new ShoalError('EUSAGE', `maxConnectionsPerHost must be a positive integer, got ${opts.maxConnectionsPerHost}`);
    }
    this.uploadBucket = opts.uploadLimit ? new TokenBucket(opts.uploadLimit) : null;
    this.downloadBucket = opts.downloadLimit ? new TokenBucket(opts.downloadLimit) : null;
    this.originBucket = opts.originLimit ? new TokenBucket(opts.originLimit) : null;
    if (opts.peerRetryMaxMs !== undefined && !(Number.isInteger(opts.peerRetryMaxMs) && opts.peerRetryMaxMs > 0)) {
      throw new ShoalError('EUSAGE', `peerRetryMaxMs must be a positive number of milliseconds, got ${opts.peerRetryMaxMs}`);
    }
    if (opts.webSeedTimeout !== undefined && !(Number.isInteger(opts.webSeedTimeout) && opts.webSeedTimeout > 0)) {
      throw new ShoalError('EUSAGE', `webSeedTimeout must be a positive number of milliseconds, got ${opts.webSeedTimeout}`);
    }
    if (opts.cacheBytes !== undefined && !(Number.isSafeInteger(opts.cacheBytes) && opts.cacheBytes >= 0)) {
      throw new ShoalError('EUSAGE', `cacheBytes must be a whole number of bytes >= 0, got ${opts.cacheBytes}`);
    }
    const client = this;
    this.ctx = {
      peerId: this.peerId,
      get port() { return client.boundPort; },
      clientName: opts.clientName ?? `Shoal ${VERSION}`,
      trackers: opts.trackers !== false,
      uploadBucket: this.uploadBucket,
      downloadBucket: this.downloadBucket,
      originBucket: this.originBucket,
      ...(opts.webSeedTimeout !== undefined ? { webSeedTimeoutMs: opts.webSeedTimeout } : {}),
      ...(opts.cacheBytes !== undefined ? { cacheBytes: opts.cacheBytes } : {}),
      maxPeersPerTorrent: opts.maxPeersPerTorrent ?? 60,
      ...(opts.peerRetryMaxMs !== undefined ? { peerRetryMaxMs: opts.peerRetryMaxMs } : {}),
      uploadSlots: opts.uploadSlots ?? 4,
      localAddress: opts.localAddress,
      debugInvariants: opts.debugInvariants ?? process.env['SHOAL_DEBUG_INVARIANTS'] === '1',
      pex: opts.pex !== false,
      pexIntervalMs: opts.pexIntervalMs,
      get dht() { return client.dht; },
      globalSlots: () => client.maxConnections - client.connectionCount(),
    };
  }

  get port(): number {
    return this.boundPort;
  }

  get torrents(): Torrent[] {
    return [...this.byHash.values()];
  }

  /** Connections past the handshake, all torrents (handshaking ones have their own budget). */
  private connectionCount(): number {
    let n = 0;
    for (const t of this.byHash.values()) n += t.peerCount;
    return n;
  }

  /** Inbound connections from one address, handshaking or not, all torrents. */
  private inboundFrom(host: string): number {
    let n = this.pendingByHost.get(host) ?? 0;
    for (const t of this.byHash.values()) n += t.inboundFrom(host);
    return n;
  }

  private forgetPending(socket: net.Socket): void {
    const host = this.pending.get(socket);
    if (host === undefined) return;
    this.pending.delete(socket);
    const n = (this.pendingByHost.get(host) ?? 1) - 1;
    if (n > 0) this.pendingByHost.set(host, n); else this.pendingByHost.delete(host);
  }

  /** Start accepting peers. add() calls it; call it yourself to learn the port first. */
  listen(): Promise<number> {
    if (this.listening) return this.listening;
    this.listening = new Promise<number>((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.onConnection(socket));
      this.server = server;
      const host = this.opts.host ?? '::';
      const port = this.opts.port ?? 0;
      const onError = (err: NodeJS.ErrnoException): void => {
        // No IPv6 on this machine: fall back to IPv4 only.
        if (this.opts.host === undefined && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) {
          server.listen({ port, host: '0.0.0.0' });
          return;
        }
        reject(new ShoalError('EUSAGE', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
      };
      server.once('error', onError);
      server.once('listening', () => {
        server.off('error', onError);
        server.on('error', (err) => this.emit('error', err));
        const addr = server.address();
        this.boundPort = typeof addr === 'object' && addr ? addr.port : 0;
        resolve(this.boundPort);
      });
      server.listen({ port, host, ipv6Only: false });
    });
    return this.listening;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    reuseBufferOnAccepted(socket);
    const host = normalizeHost(socket.remoteAddress ?? '');
    if (this.closed || this.inboundFrom(host) >= this.maxPerHost) {
      socket.destroy();
      return;
    }
    if (this.pending.size >= MAX_PENDING_HANDSHAKES) {
      // The oldest has had the longest to say something; an honest peer handshakes within a round trip.
      const oldest = this.pending.keys().next().value as net.Socket;
      this.forgetPending(oldest);
      oldest.destroy();
    }
    this.pending.set(socket, host);
    this.pendingByHost.set(host, (this.pendingByHost.get(host) ?? 0) + 1);
    readHandshake(socket, HANDSHAKE_TIMEOUT_MS).then(({ handshake, rest }) => {
      this.forgetPending(socket);
      const torrent = this.byHash.get(handshake.infoHash.toString('hex'));
      if (!torrent || this.closed || socket.destroyed) {
        socket.destroy();
        return;
      }
      // Client-wide limit: a connection that does nothing for anyone makes room, else the newcomer is refused.
      if (this.connectionCount() >= this.maxConnections && !this.makeRoom(torrent)) {
        socket.destroy();
        return;
      }
      socket.write(encodeHandshake(torrent.infoHash, this.peerId, { fast: true, extended: true, dht: this.dht !== null }));
      if (!torrent.acceptInbound(socket, handshake, rest)) socket.destroy();
    }, () => {
      this.forgetPending(socket);
      socket.destroy();
    });
  }

  /** Drop the least useful connection, preferring the torrent a newcomer wants; false when every one is useful. */
  private makeRoom(preferred: Torrent): boolean {
    if (preferred.makeRoom()) return true;
    for (const t of this.byHash.values()) if (t !== preferred && t.makeRoom()) return true;
    return false;
  }

  /**
   * Add a torrent. `source` is a path to a .torrent file, its bytes, a parsed Metainfo, or a magnet URI.
   * With metadata, resolves once the data on disk is checked and the torrent is talking to peers. With a magnet,
   * resolves at once: the torrent fetches the info dictionary from peers and emits 'metadata', then 'checked'. A
   * magnet whose metadata was fetched before (saved as `<path>/.shoal/<info-hash>.torrent`) starts from that file.
   */
  async add(source: string | Buffer | Metainfo, opts: AddOptions): Promise<Torrent> {
    if (this.closed) throw new ShoalError('EUSAGE', 'client is closed');
    if (!opts || typeof opts.path !== 'string' || opts.path === '') throw new ShoalError('EUSAGE', 'add() needs { path } for the download folder');
    const spec = await toSpec(source, opts.path);
    const hex = spec.infoHash.toString('hex');
    if (this.byHash.has(hex)) throw new ShoalError('EUSAGE', `torrent ${hex} is already added`);
    await this.listen();
    await this.startLsd();
    await this.startDht();
    const torrent = new Torrent(this.ctx, spec, opts);
    installSwarmFeatures(torrent, { lsd: this.lsd, dht: this.dht, pex: this.ctx.pex, pexIntervalMs: this.ctx.pexIntervalMs });
    for (const hook of this.torrentHooks) hook(torrent);
    // Registered before checking starts, so peers that connect meanwhile are kept (greeted when the check ends).
    this.byHash.set(hex, torrent);
    torrent.once('close', () => {
      if (this.byHash.get(hex) === torrent) this.byHash.delete(hex);
    });
    try {
      await torrent.start();
    } catch (err) {
      this.byHash.delete(hex);
      await torrent.close().catch(() => undefined);
      throw err;
    }
    this.emit('torrent', torrent);
    return torrent;
  }

  /** Called for every torrent before it starts: the place to add extensions and peer sources. */
  private readonly torrentHooks: ((t: Torrent) => void)[] = [];
  onTorrentCreated(hook: (t: Torrent) => void): void {
    this.torrentHooks.push(hook);
  }

  get(infoHash: string | Buffer): Torrent | undefined {
    return this.byHash.get(typeof infoHash === 'string' ? infoHash.toLowerCase() : infoHash.toString('hex'));
  }

  async remove(t: Torrent | string): Promise<void> {
    const torrent = typeof t === 'string' ? this.get(t) : t;
    if (!torrent) return;
    this.byHash.delete(torrent.infoHashHex);
    await torrent.close();
  }

  private lsdStarting: Promise<void> | null = null;
  /**
   * LSD multicasts on the LAN: on by default, but under SHOAL_SANDBOX=1 only when a test asks for it inside its own
   * network namespaces (SHOAL_LSD_IN_SANDBOX=1 and an interface in 198.18.0.0/15; Lsd itself enforces that).
   */
  private startLsd(): Promise<void> {
    if (this.lsdStarting) return this.lsdStarting;
    this.lsdStarting = (async () => {
      if (this.opts.lsd === false || this.boundPort === 0) return;
      if (sandboxed() && process.env['SHOAL_LSD_IN_SANDBOX'] !== '1') return;
      const lsdOpts: ConstructorParameters<typeof Lsd>[0] = { port: this.boundPort };
      if (this.opts.lsdInterface !== undefined) lsdOpts.interfaceAddress = this.opts.lsdInterface;
      const lsd = new Lsd(lsdOpts);
      lsd.on('warning', (msg: string) => this.emit('warning', msg));
      await lsd.start();
      this.lsd = lsd;
    })();
    return this.lsdStarting;
  }

  private dhtStarting: Promise<void> | null = null;
  /**
   * One DHT node on UDP at the peer port's number (as libtorrent does), so one port covers both. If that UDP port is
   * taken, any free one is used with a warning; an IPv6-only listen address leaves the (IPv4) DHT off.
   */
  private startDht(): Promise<void> {
    if (this.dhtStarting) return this.dhtStarting;
    this.dhtStarting = (async () => {
      const cfg = this.opts.dht;
      if (cfg === false) return;
      const host = this.opts.host;
      if (host !== undefined && host.includes(':') && host !== '::') return;
      const dhtOpts: ConstructorParameters<typeof Dht>[0] = { port: this.boundPort };
      if (host !== undefined && !host.includes(':')) dhtOpts.host = host;
      if (typeof cfg === 'object') {
        if (cfg.bootstrap) dhtOpts.bootstrap = cfg.bootstrap;
        if (cfg.stateFile) dhtOpts.stateFile = cfg.stateFile;
      }
      let dht = new Dht(dhtOpts);
      try {
        await dht.listen();
      } catch (err) {
        this.emit('warning', `DHT: UDP port ${this.boundPort} unavailable (${(err as Error).message}); using another`);
        dht = new Dht({ ...dhtOpts, port: 0 });
        try {
          await dht.listen();
        } catch (err2) {
          this.emit('warning', `DHT off: ${(err2 as Error).message}`);
          return;
        }
      }
      dht.on('warning', (msg: string) => this.emit('warning', msg));
      this.dht = dht;
    })();
    return this.dhtStarting;
  }

  /** DHT figures for stats lines; undefined when the client runs no DHT. */
  dhtStats(): { nodes: number; lookups: number } | undefined {
    if (!this.dht) return undefined;
    const s = this.dht.stats();
    return { nodes: s.nodes, lookups: s.lookups };
  }

  /** Stop every torrent (announcing `stopped`, saving resume data) and the listener. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const torrents = [...this.byHash.values()];
    this.byHash.clear();
    await Promise.all(torrents.map((t) => t.close()));
    for (const s of this.pending.keys()) s.destroy();
    this.pending.clear();
    this.pendingByHost.clear();
    await this.lsd?.close();
    await this.dht?.close().catch((err: Error) => this.emit('warning', `DHT: ${err.message}`));
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function toSpec(source: string | Buffer | Metainfo, dir: string): Promise<TorrentSpec> {
  if (typeof source === 'string' && source.slice(0, 7).toLowerCase() === 'magnet:') {
    const m = parseMagnet(source);
    const spec: TorrentSpec = { infoHash: m.infoHash, trackers: m.trackers, magnetPeers: m.peers, webSeeds: m.webSeeds };
    if (m.name !== undefined) spec.name = m.name;
    // Fetched before: start from the saved .torrent instead of asking peers again.
    const saved = await readFile(savedTorrentPath(dir, m.infoHashHex)).catch(() => null);
    if (saved) {
      try {
        const meta = parseTorrent(saved);
        if (meta.infoHash.equals(m.infoHash)) spec.meta = meta;
      } catch { /* a damaged file: fetch again */ }
    }
    return spec;
  }
  const meta = await toMetainfo(source);
  return { infoHash: meta.infoHash, meta };
}

async function toMetainfo(source: string | Buffer | Metainfo): Promise<Metainfo> {
  if (Buffer.isBuffer(source)) return parseTorrent(source);
  if (typeof source === 'string') {
    let bytes: Buffer;
    try {
      bytes = await readFile(source);
    } catch (err) {
      throw new ShoalError('EUSAGE', `cannot read torrent file ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return parseTorrent(bytes);
  }
  return source;
}
