import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { lazyModule } from '../util/lazy-module.js';
import { ShoalError } from '../util/errors.js';
import { FleetStore } from './store.js';
import type { AgentRecord, Release } from './types.js';

const ioredis = lazyModule<typeof import('ioredis')>('ioredis');

interface Message { from: string; kind: 'release' | 'agent' | 'origin'; data: Release | AgentRecord }

/**
 * Controller state in Redis, so several controller instances (behind one name or load balancer) serve one fleet.
 * Each instance keeps the whole state in memory for reads and views; writes go to Redis hashes and are announced on a
 * pub/sub channel, carrying the record, so every other instance updates its copy and relays the change to its own
 * event streams. Release versions are unique through HSETNX and ordered by one INCR counter.
 */
export class RedisFleetStore extends FleetStore {
  private readonly redis: Redis;
  private readonly sub: Redis;
  private readonly instance = randomBytes(6).toString('hex');
  private readonly k: { releases: string; agents: string; seq: string; events: string };

  constructor(url: string, prefix = 'shoal:fleet:') {
    super(undefined);
    const opts = { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 5000 };
    const { Redis: RedisClient } = ioredis();
    this.redis = new RedisClient(url, opts);
    this.sub = new RedisClient(url, opts);
    this.redis.on('error', () => undefined);
    this.sub.on('error', () => undefined);
    this.k = { releases: `${prefix}releases`, agents: `${prefix}agents`, seq: `${prefix}seq`, events: `${prefix}events` };
  }

  override async load(): Promise<void> {
    try {
      await this.redis.connect();
      await this.sub.connect();
    } catch (e) {
      throw new ShoalError('EUSAGE', `--redis: cannot connect (${(e as Error).message})`);
    }
    this.sub.on('message', (_ch: string, text: string) => this.onMessage(text));
    await this.sub.subscribe(this.k.events);
    const [releases, agents] = await Promise.all([this.redis.hgetall(this.k.releases), this.redis.hgetall(this.k.agents)]);
    for (const v of Object.values(releases)) { try { this.insertRelease(JSON.parse(v) as Release); } catch { /* skip a bad record */ } }
    for (const v of Object.values(agents)) { try { const a = JSON.parse(v) as AgentRecord; this.agentMap.set(a.id, a); } catch { /* skip */ } }
  }

  override async addRelease(r: Omit<Release, 'seq'>): Promise<Release> {
    if (this.release(r.channel, r.version)) throw new ShoalError('EUSAGE', `channel ${r.channel} already has version ${r.version}`);
    const rel: Release = { ...r, seq: await this.call(() => this.redis.incr(this.k.seq)) };
    const added = await this.call(() => this.redis.hsetnx(this.k.releases, `${r.channel}/${r.version}`, JSON.stringify(rel)));
    if (!added) throw new ShoalError('EUSAGE', `channel ${r.channel} already has version ${r.version}`);
    this.insertRelease(rel);
    this.announce('release', rel);
    return rel;
  }

  override setOriginStats(channel: string, version: string, stats: NonNullable<Release['originStats']>): boolean {
    const r = this.release(channel, version);
    if (!r) return false;
    r.originStats = stats;
    this.redis.hset(this.k.releases, `${channel}/${version}`, JSON.stringify(r)).catch(() => undefined);
    this.announce('origin', r);
    return true;
  }

  override putAgent(a: AgentRecord): void {
    this.agentMap.set(a.id, a);
    this.redis.hset(this.k.agents, a.id, JSON.stringify(a)).catch(() => undefined);
    this.announce('agent', a);
  }

  override saveNow(): Promise<void> { return Promise.resolve(); }

  override async close(): Promise<void> {
    this.sub.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private announce(kind: Message['kind'], data: Message['data']): void {
    const m: Message = { from: this.instance, kind, data };
    this.redis.publish(this.k.events, JSON.stringify(m)).catch(() => undefined);
  }

  private onMessage(text: string): void {
    let m: Message;
    try { m = JSON.parse(text) as Message; } catch { return; }
    if (m.from === this.instance) return;
    if (m.kind === 'release' || m.kind === 'origin') this.insertRelease(m.data as Release);
    else if (m.kind === 'agent') this.agentMap.set((m.data as AgentRecord).id, m.data as AgentRecord);
    else return;
    this.onRemote?.(m.kind, m.data);
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try { return await fn(); } catch (e) {
      throw Object.assign(new Error(`state store (Redis) unavailable: ${(e as Error).message}`), { status: 503 });
    }
  }
}
