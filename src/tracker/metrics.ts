import type { Registry } from 'prom-client';
import { lazyModule } from '../util/lazy-module.js';
import type { AnnounceEvent, StoreStats } from './swarm-store.js';

export type Protocol = 'http' | 'udp';

const promClient = lazyModule<typeof import('prom-client')>('prom-client');

const EVENTS: AnnounceEvent[] = ['none', 'started', 'completed', 'stopped', 'paused'];
const EVENT_INDEX: Record<AnnounceEvent, number> = { none: 0, started: 1, completed: 2, stopped: 3, paused: 4 };
const KEYS: [Protocol, AnnounceEvent][] = [...EVENTS.map((e) => ['http', e] as [Protocol, AnnounceEvent]), ...EVENTS.map((e) => ['udp', e] as [Protocol, AnnounceEvent])];

/** Counts by (protocol, reason) not yet handed to prom-client; reasons are a small fixed set from the front ends. */
type Pending = Map<string, number>;

function bump(m: Pending, protocol: Protocol, reason: string): void {
  const k = `${protocol}\u0000${reason}`;
  m.set(k, (m.get(k) ?? 0) + 1);
}

/**
 * Tracker counters. The hot path bumps plain numbers; prom-client is loaded on the first /metrics
 * scrape and sees the counts from then on (a tracker nobody scrapes does not pay the few MiB it
 * costs). Process metrics that prom-client samples over time (GC, event-loop lag) start at that
 * first scrape; counters cover the whole uptime.
 * One prom-client Registry per server: several trackers may live in one process (tests, embedded
 * seeding) and the global default registry would mix or reject their metrics.
 */
export class TrackerMetrics {
  /** Announces not yet handed to prom-client, indexed like KEYS. */
  private readonly pending = new Float64Array(2 * EVENTS.length);
  private readonly pendingScrapes = new Float64Array(2);
  private pendingConnects = 0;
  private readonly pendingErrors: Pending = new Map();
  private readonly pendingDropped: Pending = new Map();
  /** Announces since start, for the announces/s figure in /stats. */
  announcesTotal = 0;
  private readonly window: number[] = [];
  private readonly rateTimer: NodeJS.Timeout;
  private registryValue: Registry | undefined;

  constructor(private readonly statsSource: () => Promise<StoreStats>) {
    this.rateTimer = setInterval(() => {
      this.window.push(this.announcesTotal);
      if (this.window.length > 11) this.window.shift();
    }, 1000);
    this.rateTimer.unref();
  }

  announce(protocol: Protocol, event: AnnounceEvent): void {
    this.announcesTotal++;
    this.pending[(protocol === 'udp' ? EVENTS.length : 0) + EVENT_INDEX[event]]!++;
  }

  scrape(protocol: Protocol): void { this.pendingScrapes[protocol === 'udp' ? 1 : 0]!++; }
  error(protocol: Protocol, reason: string): void { bump(this.pendingErrors, protocol, reason); }
  drop(protocol: Protocol, reason: string): void { bump(this.pendingDropped, protocol, reason); }
  connect(): void { this.pendingConnects++; }

  /** Average over the last (up to) 10 seconds. */
  announcesPerSecond(): number {
    const w = this.window;
    if (w.length === 0) return 0;
    const first = w[0]!;
    const secs = w.length;
    return Math.round(((this.announcesTotal - first) / secs) * 10) / 10;
  }

  /** The Prometheus registry of this tracker (prom-client is loaded on the first read). */
  get registry(): Registry {
    this.registryValue ??= this.buildRegistry();
    return this.registryValue;
  }

  /** The /metrics response. */
  async render(): Promise<{ body: string; contentType: string }> {
    const r = this.registry;
    return { body: await r.metrics(), contentType: r.contentType };
  }

  close(): void { clearInterval(this.rateTimer); }

  private buildRegistry(): Registry {
    const { Counter, Gauge, Registry, collectDefaultMetrics } = promClient();
    const registry = new Registry();
    const pending = this.pending, pendingScrapes = this.pendingScrapes;
    const announces: InstanceType<typeof Counter<'protocol' | 'event'>> = new Counter({
      name: 'shoal_tracker_announces_total', help: 'Announce requests served, by protocol and event',
      labelNames: ['protocol', 'event'] as const, registers: [registry],
      collect() {
        for (let i = 0; i < pending.length; i++) {
          if (pending[i]! > 0) { announces.labels(KEYS[i]![0], KEYS[i]![1]).inc(pending[i]!); pending[i] = 0; }
        }
      },
    });
    for (const [p, e] of KEYS) announces.labels(p, e); // all series exist from the start, at 0
    const scrapes: InstanceType<typeof Counter<'protocol'>> = new Counter({
      name: 'shoal_tracker_scrapes_total', help: 'Scrape requests served, by protocol',
      labelNames: ['protocol'] as const, registers: [registry],
      collect() {
        (['http', 'udp'] as const).forEach((p, i) => { scrapes.labels(p).inc(pendingScrapes[i]!); pendingScrapes[i] = 0; });
      },
    });
    const labelled = (name: string, help: string, m: Pending): void => {
      const c: InstanceType<typeof Counter<'protocol' | 'reason'>> = new Counter({
        name, help, labelNames: ['protocol', 'reason'] as const, registers: [registry],
        collect() {
          for (const [k, n] of m) {
            const [protocol, reason] = k.split('\u0000') as [string, string];
            c.labels(protocol, reason).inc(n);
          }
          m.clear();
        },
      });
    };
    labelled('shoal_tracker_errors_total', 'Requests answered with a failure reason / error action, by protocol and reason', this.pendingErrors);
    labelled('shoal_tracker_dropped_total', 'Requests dropped without an answer (rate limit, garbage), by protocol and reason', this.pendingDropped);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    new Counter({
      name: 'shoal_tracker_udp_connects_total', help: 'UDP connect requests answered',
      registers: [registry],
      collect() { this.inc(self.pendingConnects); self.pendingConnects = 0; },
    });
    // Gauges read the store when scraped, so they are right in Redis mode across instances too.
    let cached: Promise<StoreStats> | undefined;
    const read = (): Promise<StoreStats> => {
      cached ??= this.statsSource().finally(() => { setTimeout(() => { cached = undefined; }, 0).unref(); });
      return cached;
    };
    const gauge = (name: string, help: string, pick: (s: StoreStats) => number): void => {
      new Gauge({
        name, help, registers: [registry],
        async collect() {
          try { this.set(pick(await read())); } catch { /* storage down: keep last value */ }
        },
      });
    };
    gauge('shoal_tracker_swarms', 'Swarms (info-hashes) with state', (s) => s.swarms);
    gauge('shoal_tracker_seeds', 'Seeding peers across swarms', (s) => s.seeds);
    gauge('shoal_tracker_leechers', 'Leeching peers across swarms', (s) => s.leechers);
    collectDefaultMetrics({ register: registry, prefix: 'shoal_tracker_' });
    return registry;
  }
}
