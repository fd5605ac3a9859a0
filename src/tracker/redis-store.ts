import type { Redis } from 'ioredis';
import { lazyModule } from '../util/lazy-module.js';
import type { Logger } from 'pino';
import { localityTier, type ZoneMap } from './locality.js';
import {
  StoreUnavailableError, type AnnounceRequest, type AnnounceResult, type ScrapeEntry, type SelectedPeer, type StoreStats, type SwarmStore,
} from './swarm-store.js';

const ioredis = lazyModule<typeof import('ioredis')>('ioredis');

/*
 * Layout per swarm (hex info-hash H, in a {H} hash tag so one swarm's keys share a cluster slot):
 *   P{H}:s4 P{H}:l4 P{H}:s6 P{H}:l6   sorted sets of compact peer addresses (IP + port) scored by expiry time (ms)
 *   P{H}:a                             hash address -> 1 byte kind (1..4 = which set) + peer id
 * Peers are keyed by address, as in the memory store: only the endpoint can update or stop its entry.
 *   P{H}:m                             hash with the "downloaded" counter
 * and one P:swarms sorted set (H scored by swarm expiry) that only /stats reads.
 *
 * Expiry needs no sweeper: every announce drops a bounded number of expired members of its swarm,
 * selection ignores members whose score is in the past, and all swarm keys carry a PEXPIRE of one
 * peer TTL, so a swarm nobody announces to disappears through Redis itself. Time comes from Redis
 * TIME, so instances with skewed clocks still agree. Announce is one script: one round trip.
 */

const ANNOUNCE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local exp = now + ttl
local member = ARGV[2]
local pid = ARGV[3]
local seed = ARGV[4] == '1'
local event = ARGV[5]
local numwant = tonumber(ARGV[6])
local family = ARGV[7]
local maxPeers = tonumber(ARGV[9])
local A = KEYS[5]
for i = 1, 4 do
  local gone = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, 100)
  if #gone > 0 then
    redis.call('ZREM', KEYS[i], unpack(gone))
    redis.call('HDEL', A, unpack(gone))
  end
end
local old = redis.call('HGET', A, member)
local oldKind = 0
if old then oldKind = string.byte(old, 1) end
local kind = 2
if seed then kind = 1 end
if string.len(member) == 18 then kind = kind + 2 end
if oldKind > 0 and (event == 'stopped' or oldKind ~= kind) then
  redis.call('ZREM', KEYS[oldKind], member)
  if event == 'stopped' then redis.call('HDEL', A, member) end
end
if event ~= 'stopped' then
  if event == 'completed' and oldKind ~= 1 and oldKind ~= 3 then redis.call('HINCRBY', KEYS[6], 'downloaded', 1) end
  local stored = oldKind > 0
  if not stored then
    local n = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
    stored = n < maxPeers
  end
  if stored then
    redis.call('ZADD', KEYS[kind], exp, member)
    redis.call('HSET', A, member, string.char(kind) .. pid)
  end
end
local c = {}
for i = 1, 4 do c[i] = redis.call('ZCARD', KEYS[i]) end
local dl = tonumber(redis.call('HGET', KEYS[6], 'downloaded') or '0')
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
redis.call('ZADD', KEYS[7], exp, ARGV[8])
local out = { c[1] + c[3], c[2] + c[4], dl }
if event == 'stopped' or numwant <= 0 then return out end
local lists = {}
if family ~= '6' then
  if not seed then table.insert(lists, 1) end
  table.insert(lists, 2)
end
if family ~= '4' then
  if not seed then table.insert(lists, 3) end
  table.insert(lists, 4)
end
local total = 0
for _, i in ipairs(lists) do total = total + c[i] end
local ids = {}
for _, i in ipairs(lists) do
  local k = c[i]
  if total > numwant + 1 then k = math.floor(numwant * c[i] / total) + 1 end
  if k > 0 then
    local picks = redis.call('ZRANDMEMBER', KEYS[i], k, 'WITHSCORES')
    for j = 1, #picks, 2 do
      if picks[j] ~= member and tonumber(picks[j + 1]) > now then table.insert(ids, picks[j]) end
    end
  end
end
if #ids > 0 then
  local addrs = redis.call('HMGET', A, unpack(ids))
  for j = 1, #ids do
    if addrs[j] then
      table.insert(out, ids[j])
      table.insert(out, addrs[j])
    end
  end
end
return out
`;

/** KEYS: 5 per hash (s4 l4 s6 l6 m). Counts only unexpired members. */
const SCRAPE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for b = 0, #KEYS / 5 - 1 do
  local k = b * 5
  local s = redis.call('ZCOUNT', KEYS[k + 1], now, '+inf') + redis.call('ZCOUNT', KEYS[k + 3], now, '+inf')
  local l = redis.call('ZCOUNT', KEYS[k + 2], now, '+inf') + redis.call('ZCOUNT', KEYS[k + 4], now, '+inf')
  local d = tonumber(redis.call('HGET', KEYS[k + 5], 'downloaded') or '0')
  table.insert(out, s)
  table.insert(out, d)
  table.insert(out, l)
end
return out
`;

/** KEYS[1] = swarm index; ARGV[1] = key prefix, ARGV[2] = most swarms to count. */
const STATS_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local hs = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local seeds, leechers = 0, 0
for _, h in ipairs(hs) do
  local p = ARGV[1] .. '{' .. h .. '}:'
  seeds = seeds + redis.call('ZCOUNT', p .. 's4', now, '+inf') + redis.call('ZCOUNT', p .. 's6', now, '+inf')
  leechers = leechers + redis.call('ZCOUNT', p .. 'l4', now, '+inf') + redis.call('ZCOUNT', p .. 'l6', now, '+inf')
end
return { redis.call('ZCARD', KEYS[1]), seeds, leechers }
`;

type Arg = string | Buffer | number;
interface ScriptCommands {
  shoalAnnounceBuffer(...args: Arg[]): Promise<(number | Buffer)[]>;
  shoalScrape(...args: Arg[]): Promise<number[]>;
  shoalStats(...args: Arg[]): Promise<number[]>;
}

export interface RedisStoreOptions {
  url: string;
  peerTtlMs: number;
  /** Default 'shoal:tracker:'. */
  keyPrefix?: string;
  /** A command not answered within this time fails, so clients get "retry later" instead of hanging. Default 1000. */
  commandTimeoutMs?: number;
  maxPeersPerSwarm?: number;
  zones?: ZoneMap;
  logger: Logger;
}

/** Stats walk every swarm; cap the walk and cache the answer so /stats and /metrics cannot load Redis much. */
const STATS_MAX_SWARMS = 50_000;
const STATS_CACHE_MS = 2000;

export class RedisStore implements SwarmStore {
  private readonly redis: Redis;
  private readonly cmd: ScriptCommands;
  private readonly prefix: string;
  private readonly ttl: number;
  private readonly maxPeers: number;
  private readonly zones: ZoneMap | undefined;
  private readonly logger: Logger;
  private up = false;
  private statsCache: { at: number; value: Promise<StoreStats> } | undefined;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix ?? 'shoal:tracker:';
    this.ttl = opts.peerTtlMs;
    this.maxPeers = opts.maxPeersPerSwarm ?? 50_000;
    this.zones = opts.zones;
    this.logger = opts.logger;
    const { Redis: RedisClient } = ioredis();
    this.redis = new RedisClient(opts.url, {
      // Fail fast while disconnected rather than queueing: a queued announce would be answered long after the client gave up.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(100 * times, 2000),
    });
    this.redis.defineCommand('shoalAnnounce', { numberOfKeys: 7, lua: ANNOUNCE_LUA });
    this.redis.defineCommand('shoalScrape', { lua: SCRAPE_LUA });
    this.redis.defineCommand('shoalStats', { numberOfKeys: 1, lua: STATS_LUA });
    this.cmd = this.redis as unknown as ScriptCommands;
    this.redis.on('ready', () => {
      if (!this.up) this.logger.info('redis swarm store connected');
      this.up = true;
    });
    this.redis.on('error', (err: Error) => {
      if (this.up) this.logger.warn({ err: err.message }, 'redis swarm store unavailable; announces fail with retry-later until it returns');
      this.up = false;
    });
    this.redis.on('close', () => {
      if (this.up) this.logger.warn('redis connection closed; reconnecting');
      this.up = false;
    });
  }

  /** Resolves true once connected, false if not within `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => { clearTimeout(timer); this.redis.off('ready', onReady); resolve(ok); };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  private keys(h: string): string[] {
    const p = `${this.prefix}{${h}}:`;
    return [p + 's4', p + 'l4', p + 's6', p + 'l6', p + 'a', p + 'm'];
  }

  async announce(req: AnnounceRequest): Promise<AnnounceResult> {
    const hex = req.infoHash.toString('hex');
    const selfLoc = this.zones?.lookup(req.compact);
    // With locality, fetch a wider random sample and order it here; Redis has no notion of racks.
    const fetch = selfLoc ? Math.min(req.numwant * 4, 1000) : req.numwant;
    let reply: (number | Buffer)[];
    try {
      reply = await this.cmd.shoalAnnounceBuffer(
        ...this.keys(hex), this.prefix + 'swarms',
        this.ttl, req.compact, req.peerId, req.seed ? '1' : '0', req.event, fetch, String(req.family), hex, this.maxPeers,
      );
    } catch (err) {
      throw this.unavailable(err);
    }
    const peers: SelectedPeer[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) {
      const compact = reply[i] as Buffer, value = reply[i + 1] as Buffer;
      peers.push({ peerId: value.subarray(1), compact });
    }
    shuffle(peers);
    if (selfLoc) {
      const zones = this.zones!;
      const tiers = peers.map((p) => localityTier(selfLoc, zones.lookup(p.compact)));
      const order = peers.map((_, i) => i).sort((a, b) => tiers[a]! - tiers[b]!);
      const sorted = order.map((i) => peers[i]!);
      peers.length = 0;
      peers.push(...sorted);
    }
    if (peers.length > req.numwant) peers.length = req.numwant;
    return { complete: Number(reply[0]), incomplete: Number(reply[1]), downloaded: Number(reply[2]), peers };
  }

  async scrape(infoHashes: Buffer[]): Promise<ScrapeEntry[]> {
    if (infoHashes.length === 0) return [];
    const keys: string[] = [];
    for (const h of infoHashes) {
      const k = this.keys(h.toString('hex'));
      keys.push(k[0]!, k[1]!, k[2]!, k[3]!, k[5]!);
    }
    let r: number[];
    try { r = await this.cmd.shoalScrape(keys.length, ...keys); } catch (err) { throw this.unavailable(err); }
    return infoHashes.map((_, i) => ({ complete: Number(r[3 * i]), downloaded: Number(r[3 * i + 1]), incomplete: Number(r[3 * i + 2]) }));
  }

  stats(): Promise<StoreStats> {
    const now = Date.now();
    if (this.statsCache && now - this.statsCache.at < STATS_CACHE_MS) return this.statsCache.value;
    const value = this.cmd.shoalStats(this.prefix + 'swarms', this.prefix, STATS_MAX_SWARMS).then(
      (r) => ({ swarms: Number(r[0]), seeds: Number(r[1]), leechers: Number(r[2]) }),
      (err: unknown) => { this.statsCache = undefined; throw this.unavailable(err); },
    );
    this.statsCache = { at: now, value };
    return value;
  }

  async close(): Promise<void> {
    this.up = false;
    this.redis.removeAllListeners('error');
    this.redis.on('error', () => { /* closing: nothing to report */ });
    try {
      if (this.redis.status === 'ready') await this.redis.quit();
      else this.redis.disconnect();
    } catch {
      this.redis.disconnect();
    }
  }

  private unavailable(err: unknown): StoreUnavailableError {
    const msg = (err as Error)?.message ?? String(err);
    // Script bugs would look the same to clients; make them visible to operators.
    if (/ERR|WRONGTYPE/.test(msg) && !/Connection|writeable|timed out/i.test(msg)) this.logger.error({ err: msg }, 'redis swarm store command failed');
    return new StoreUnavailableError(err);
  }
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i]!; a[i] = a[j]!; a[j] = t;
  }
}
