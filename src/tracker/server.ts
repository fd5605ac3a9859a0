import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { lazyModule } from '../util/lazy-module.js';
import { ShoalError } from '../util/errors.js';
import type { TrackerContext } from './context.js';
import { createHttpServer } from './http.js';
import { ZoneMap } from './locality.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import { TrackerMetrics } from './metrics.js';
import { RateLimiter, type RateLimitOptions } from './rate-limit.js';
import { isPromise, type SwarmStore } from './swarm-store.js';
import { UdpTracker } from './udp.js';

const pinoModule = lazyModule<typeof import('pino')>('pino');

export interface TrackerOptions {
  /** Bind address. Default '0.0.0.0' (IPv4 only); '::' is dual-stack for HTTP and UDP. */
  host?: string;
  /** Host put into announceUrl/udpUrl. Default: host, or for a wildcard host the first external IPv4 (else 127.0.0.1). */
  publicHost?: string;
  /** 0 = any free port (default); null/false disables HTTP. */
  httpPort?: number | null | false;
  /** 0 = any free port (default); null/false disables UDP. */
  udpPort?: number | null | false;
  /**
   * Seconds between regular announces. Default 300: an organisation's fleet wants new peers found in
   * minutes, and the load is peers/300 announces per second (100k peers ≈ 330/s, far below one core's
   * capacity). Clients still announce at once on started/completed/stopped. Embedded seeding may use less.
   */
  interval?: number;
  /** Seconds; clients must not re-announce faster than this. Default min(60, interval). */
  minInterval?: number;
  /** Seconds without an announce after which a peer is forgotten. Default 2 × interval + 30 (one lost announce is tolerated). */
  peerTtl?: number;
  /** Peers returned when numwant is absent or negative. Default 50. */
  defaultNumwant?: number;
  /** Cap on numwant. Default 200 (≈ 3.6 kB in a UDP reply with IPv6 peers). */
  maxNumwant?: number;
  store?: 'memory' | { redisUrl: string; keyPrefix?: string; commandTimeoutMs?: number };
  /** Private mode: only these hex info-hashes are tracked. A Set/array, or a file path (one hash per line, # comments). */
  allowList?: Iterable<string> | string;
  /** Require /<passkey>/announce with one of these passkeys. */
  passkeys?: Iterable<string>;
  /** CIDR → zone/rack map (or a path to one) for locality-aware peer selection. */
  zones?: ZoneMap | string;
  logger?: Logger;
  /** Take the client address from X-Forwarded-For (only behind a reverse proxy you run). */
  trustProxyHeader?: boolean;
  /** Honour the `ip` announce parameter from any address (it is always honoured from loopback). */
  trustIpParam?: boolean;
  /** Per-address request rate limit for each protocol; false disables it. Default 50/s, burst 200. */
  rateLimit?: RateLimitOptions | false;
  /**
   * How fast one source (IPv4 address or IPv6 /64) may create new swarms, memory store only; false disables it.
   * Default 5/s with a burst of 500 (a seedbox adding hundreds of torrents at once still gets through; the rest
   * are told to retry later), or disabled when `rateLimit` is false.
   */
  swarmCreationLimit?: RateLimitOptions | false;
  /** Memory store bounds. */
  maxPeersPerSwarm?: number;
  maxSwarms?: number;
  maxPeers?: number;
  /** Secret for UDP connection ids; share it between instances behind one UDP address. Default random. */
  udpSecret?: Buffer;
}

const HEX40 = /^[0-9a-fA-F]{40}$/;

export class TrackerServer {
  private readonly opts: TrackerOptions;
  private readonly logger: Logger;
  private readonly trackerId = randomBytes(6).toString('hex');
  private allowHex: Set<string> | undefined;
  private allowRaw: Set<string> | undefined;
  private passkeySet: Set<string> | undefined;
  private store: SwarmStore | undefined;
  private metrics: TrackerMetrics | undefined;
  private http: Server | undefined;
  private udp: UdpTracker | undefined;
  private ports = { httpPort: 0, udpPort: 0 };
  private startedAt = Date.now();
  private listening = false;

  constructor(opts: TrackerOptions = {}) {
    this.opts = opts;
    this.logger = opts.logger ?? pinoModule().pino({ level: 'silent' });
    const check = (name: string, v: number | undefined, min: number): void => {
      if (v !== undefined && !(Number.isFinite(v) && v >= min)) throw new ShoalError('EUSAGE', `tracker option ${name} must be a number >= ${min}, got ${v}`);
    };
    check('interval', opts.interval, 1);
    check('minInterval', opts.minInterval, 0);
    check('peerTtl', opts.peerTtl, 0.01);
    check('maxNumwant', opts.maxNumwant, 0);
    check('defaultNumwant', opts.defaultNumwant, 0);
    if (opts.allowList !== undefined && typeof opts.allowList !== 'string') {
      for (const h of opts.allowList) this.allow(h);
      this.allowHex ??= new Set();
      this.allowRaw ??= new Set();
    }
    if (opts.passkeys) this.passkeySet = new Set(opts.passkeys);
  }

  get interval(): number { return Math.round(this.opts.interval ?? 300); }

  async listen(): Promise<{ httpPort: number; udpPort: number }> {
    if (this.listening) throw new ShoalError('EUSAGE', 'tracker is already listening');
    const o = this.opts;
    if (typeof o.allowList === 'string') await this.reloadAllowList();
    const zones = typeof o.zones === 'string' ? await ZoneMap.load(o.zones) : o.zones;
    const interval = this.interval;
    const peerTtlMs = Math.round((o.peerTtl ?? 2 * interval + 30) * 1000);
    const host = o.host ?? '0.0.0.0';

    if (o.store && o.store !== 'memory') {
      const redis = new RedisStore({
        url: o.store.redisUrl, peerTtlMs, logger: this.logger,
        ...(o.store.keyPrefix !== undefined ? { keyPrefix: o.store.keyPrefix } : {}),
        ...(o.store.commandTimeoutMs !== undefined ? { commandTimeoutMs: o.store.commandTimeoutMs } : {}),
        ...(zones ? { zones } : {}),
      });
      // Start even if Redis is down: clients get "retry later" until it is back, which beats refusing to start.
      if (!(await redis.ready(3000))) this.logger.warn({ redis: redactUrl(o.store.redisUrl) }, 'redis not reachable yet; announces will fail until it is');
      this.store = redis;
    } else {
      const creation = o.swarmCreationLimit ?? (o.rateLimit === false ? false : { perSecond: 5, burst: 500 });
      this.store = new MemoryStore({
        peerTtlMs,
        ...(zones ? { zones } : {}),
        ...(o.maxPeersPerSwarm !== undefined ? { maxPeersPerSwarm: o.maxPeersPerSwarm } : {}),
        ...(o.maxSwarms !== undefined ? { maxSwarms: o.maxSwarms } : {}),
        ...(o.maxPeers !== undefined ? { maxPeers: o.maxPeers } : {}),
        ...(creation ? { newSwarmLimit: creation } : {}),
      });
    }
    const store = this.store;
    this.metrics = new TrackerMetrics(async () => { const s = store.stats(); return isPromise(s) ? await s : s; });
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const rate = o.rateLimit === undefined ? { perSecond: 50, burst: 200 } : o.rateLimit;
    const ctx: TrackerContext = {
      store, metrics: this.metrics, logger: this.logger,
      interval, minInterval: Math.round(o.minInterval ?? Math.min(60, interval)),
      defaultNumwant: Math.min(o.defaultNumwant ?? 50, o.maxNumwant ?? 200), maxNumwant: o.maxNumwant ?? 200,
      trackerId: this.trackerId,
      isAllowed: (h) => this.allowRaw === undefined || this.allowRaw.has(h.toString('latin1')),
      isAllowedKey: (k) => this.allowRaw === undefined || this.allowRaw.has(k),
      get passkeys() { return self.passkeySet; },
      trustProxyHeader: o.trustProxyHeader === true,
      trustIpParam: o.trustIpParam === true,
      httpLimiter: rate ? new RateLimiter(rate) : undefined,
      udpLimiter: rate ? new RateLimiter(rate) : undefined,
      statsJson: () => this.statsJson(),
    };
    try {
      if (o.httpPort !== null && o.httpPort !== false) {
        const http = createHttpServer(ctx);
        this.http = http;
        await new Promise<void>((resolve, reject) => {
          http.once('error', reject);
          http.listen(o.httpPort || 0, host, () => { http.off('error', reject); resolve(); });
        });
        http.on('error', (err) => this.logger.error({ err }, 'tracker http server error'));
        this.ports.httpPort = (http.address() as AddressInfo).port;
      }
      if (o.udpPort !== null && o.udpPort !== false) {
        this.udp = new UdpTracker(ctx, o.udpSecret);
        this.ports.udpPort = await this.udp.listen(host, o.udpPort || 0);
      }
    } catch (err) {
      await this.close();
      const e = err as NodeJS.ErrnoException;
      throw new ShoalError('EUSAGE', `tracker cannot listen on ${host}: ${e.code ?? e.message}`, { cause: err });
    }
    this.listening = true;
    this.startedAt = Date.now();
    this.logger.info({ ...this.ports, host, store: o.store && o.store !== 'memory' ? 'redis' : 'memory', private: this.allowRaw !== undefined }, 'tracker listening');
    return { ...this.ports };
  }

  async close(): Promise<void> {
    this.listening = false;
    const http = this.http;
    this.http = undefined;
    if (http) {
      await new Promise<void>((resolve) => { http.close(() => resolve()); http.closeAllConnections(); });
    }
    await this.udp?.close();
    this.udp = undefined;
    this.metrics?.close();
    await this.store?.close();
    this.store = undefined;
  }

  get httpPort(): number { return this.ports.httpPort; }
  get udpPort(): number { return this.ports.udpPort; }

  /** http://host:port/announce (without passkey). */
  get announceUrl(): string { return `http://${this.urlHost()}:${this.ports.httpPort}/announce`; }
  get udpUrl(): string { return `udp://${this.urlHost()}:${this.ports.udpPort}/announce`; }

  /** Adds an info-hash to the allow-list; the first call on a public tracker turns private mode on. */
  allow(infoHashHex: string): void {
    if (!HEX40.test(infoHashHex)) throw new ShoalError('EUSAGE', `allow-list entry "${infoHashHex}" is not a 40-character hex info-hash`);
    const hex = infoHashHex.toLowerCase();
    (this.allowHex ??= new Set()).add(hex);
    (this.allowRaw ??= new Set()).add(Buffer.from(hex, 'hex').toString('latin1'));
  }

  disallow(infoHashHex: string): void {
    const hex = infoHashHex.toLowerCase();
    this.allowHex?.delete(hex);
    if (HEX40.test(hex)) this.allowRaw?.delete(Buffer.from(hex, 'hex').toString('latin1'));
  }

  /** Hex info-hashes allowed, or undefined when the tracker is public. */
  allowed(): string[] | undefined { return this.allowHex ? [...this.allowHex] : undefined; }

  addPasskey(key: string): void { (this.passkeySet ??= new Set()).add(key); }
  removePasskey(key: string): void { this.passkeySet?.delete(key); }

  /** Re-reads the allow-list file given as `allowList` (e.g. on SIGHUP); the old list stays if the file is bad. */
  async reloadAllowList(): Promise<number> {
    const path = this.opts.allowList;
    if (typeof path !== 'string') throw new ShoalError('EUSAGE', 'no allow-list file configured');
    let text: string;
    try { text = await readFile(path, 'utf8'); } catch (e) {
      throw new ShoalError('EUSAGE', `cannot read allow-list ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const hex = new Set<string>();
    text.split(/\r?\n/).forEach((line, i) => {
      const t = line.replace(/#.*/, '').trim();
      if (!t) return;
      if (!HEX40.test(t)) throw new ShoalError('EUSAGE', `${path}:${i + 1}: "${t.slice(0, 60)}" is not a 40-character hex info-hash`);
      hex.add(t.toLowerCase());
    });
    this.allowHex = hex;
    this.allowRaw = new Set([...hex].map((h) => Buffer.from(h, 'hex').toString('latin1')));
    this.logger.info({ file: path, count: hex.size }, 'allow-list loaded');
    return hex.size;
  }

  /** What GET /stats returns. */
  async statsJson(): Promise<Record<string, unknown>> {
    const store = this.store;
    if (!store) throw new ShoalError('EUSAGE', 'tracker is not listening');
    const s = store.stats();
    const st = isPromise(s) ? await s : s;
    return {
      swarms: st.swarms, seeds: st.seeds, leechers: st.leechers,
      announcesPerSecond: this.metrics?.announcesPerSecond() ?? 0,
      announcesTotal: this.metrics?.announcesTotal ?? 0,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      store: store instanceof MemoryStore ? 'memory' : 'redis',
      instance: this.trackerId,
    };
  }

  private urlHost(): string {
    const o = this.opts;
    let h = o.publicHost ?? o.host ?? '0.0.0.0';
    if (!o.publicHost && (h === '0.0.0.0' || h === '::')) h = externalIPv4() ?? '127.0.0.1';
    return h.includes(':') ? `[${h}]` : h;
  }
}

function externalIPv4(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
