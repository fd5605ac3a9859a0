import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AnnounceEvent, StoreStats } from './swarm-store.js';

export type Protocol = 'http' | 'udp';

const EVENTS: AnnounceEvent[] = ['none', 'started', 'completed', 'stopped', 'paused'];
const EVENT_INDEX: Record<AnnounceEvent, number> = { none: 0, started: 1, completed: 2, stopped: 3, paused: 4 };
const KEYS: [Protocol, AnnounceEvent][] = [...EVENTS.map((e) => ['http', e] as [Protocol, AnnounceEvent]), ...EVENTS.map((e) => ['udp', e] as [Protocol, AnnounceEvent])];

interface Inc { inc(n?: number): void }

/**
 * One prom-client Registry per server: several trackers may live in one process (tests, embedded
 * seeding) and the global default registry would mix or reject their metrics.
 * Label children are bound up front so the UDP hot path increments without hashing label sets.
 */
export class TrackerMetrics {
  readonly registry = new Registry();
  /** Announces not yet handed to prom-client, indexed like KEYS. */
  private readonly pending = new Float64Array(2 * EVENTS.length);
  private readonly connects: Inc;
  private readonly scrapes: Record<Protocol, Inc>;
  private readonly errors: Counter<'protocol' | 'reason'>;
  private readonly dropped: Counter<'protocol' | 'reason'>;
  /** Announces since start, for the announces/s figure in /stats. */
  announcesTotal = 0;
  private readonly window: number[] = [];
  private readonly rateTimer: NodeJS.Timeout;

  constructor(statsSource: () => Promise<StoreStats>) {
    // The hot path bumps plain numbers; prom-client sees the difference when scraped.
    const pending = this.pending;
    const announces: Counter<'protocol' | 'event'> = new Counter({
      name: 'shoal_tracker_announces_total', help: 'Announce requests served, by protocol and event',
      labelNames: ['protocol', 'event'] as const, registers: [this.registry],
      collect() {
        for (let i = 0; i < pending.length; i++) {
          if (pending[i]! > 0) { announces.labels(KEYS[i]![0], KEYS[i]![1]).inc(pending[i]!); pending[i] = 0; }
        }
      },
    });
    for (const [p, e] of KEYS) announces.labels(p, e); // all series exist from the start, at 0
    const scrapes = new Counter({
      name: 'shoal_tracker_scrapes_total', help: 'Scrape requests served, by protocol',
      labelNames: ['protocol'] as const, registers: [this.registry],
    });
    this.scrapes = { http: scrapes.labels('http'), udp: scrapes.labels('udp') };
    this.errors = new Counter({
      name: 'shoal_tracker_errors_total', help: 'Requests answered with a failure reason / error action, by protocol and reason',
      labelNames: ['protocol', 'reason'] as const, registers: [this.registry],
    });
    this.dropped = new Counter({
      name: 'shoal_tracker_dropped_total', help: 'Requests dropped without an answer (rate limit, garbage), by protocol and reason',
      labelNames: ['protocol', 'reason'] as const, registers: [this.registry],
    });
    this.connects = new Counter({
      name: 'shoal_tracker_udp_connects_total', help: 'UDP connect requests answered',
      registers: [this.registry],
    });
    // Gauges read the store when scraped, so they are right in Redis mode across instances too.
    let cached: Promise<StoreStats> | undefined;
    const read = (): Promise<StoreStats> => {
      cached ??= statsSource().finally(() => { setTimeout(() => { cached = undefined; }, 0).unref(); });
      return cached;
    };
    const gauge = (name: string, help: string, pick: (s: StoreStats) => number): void => {
      new Gauge({
        name, help, registers: [this.registry],
        async collect() {
          try { this.set(pick(await read())); } catch { /* storage down: keep last value */ }
        },
      });
    };
    gauge('shoal_tracker_swarms', 'Swarms (info-hashes) with state', (s) => s.swarms);
    gauge('shoal_tracker_seeds', 'Seeding peers across swarms', (s) => s.seeds);
    gauge('shoal_tracker_leechers', 'Leeching peers across swarms', (s) => s.leechers);
    collectDefaultMetrics({ register: this.registry, prefix: 'shoal_tracker_' });
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

  scrape(protocol: Protocol): void { this.scrapes[protocol].inc(); }
  error(protocol: Protocol, reason: string): void { this.errors.labels(protocol, reason).inc(); }
  drop(protocol: Protocol, reason: string): void { this.dropped.labels(protocol, reason).inc(); }
  connect(): void { this.connects.inc(); }

  /** Average over the last (up to) 10 seconds. */
  announcesPerSecond(): number {
    const w = this.window;
    if (w.length === 0) return 0;
    const first = w[0]!;
    const secs = w.length;
    return Math.round(((this.announcesTotal - first) / secs) * 10) / 10;
  }

  close(): void { clearInterval(this.rateTimer); }
}
