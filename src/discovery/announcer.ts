import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { isShoalError, ShoalError } from '../util/errors.js';
import { announceHttp } from './http-tracker.js';
import { UdpTrackerClient, type UdpTrackerOptions } from './udp-tracker.js';
import { trackerError, trackerLabel, type AnnounceEvent, type AnnounceParams, type AnnounceResult } from './types.js';

export interface AnnouncerStats { uploaded: number; downloaded: number; left: number }

export interface AnnouncerOptions {
  infoHash: Buffer;
  peerId: Buffer;
  port: number;
  /** BEP 12 announce-list tiers (a plain `announce` URL is one tier of one). */
  tiers: string[][];
  getStats: () => AnnouncerStats;
  /** Default 50. */
  numwant?: number;
  /** Per HTTP announce; default 15 s. UDP timing comes from `udp`. */
  timeoutMs?: number;
  udp?: UdpTrackerOptions;
  /**
   * Testing aid, in seconds: replaces the 30 s floor on re-announce intervals and error back-off, and the
   * tracker's `min interval`, so tests need not wait for real-world intervals.
   */
  minIntervalOverride?: number;
  key?: number;
}

export interface AnnounceResponseInfo {
  url: string;
  interval: number;
  minInterval?: number;
  complete?: number;
  incomplete?: number;
  peers: number;
}

interface TrackerState {
  /** The tracker has acknowledged a `started` from us, so it needs `completed`/`stopped` later. */
  contacted: boolean;
  trackerId?: string;
  minInterval?: number;
}

const SUPPORTED = new Set(['http:', 'https:', 'udp:']);
const MIN_INTERVAL_FLOOR_SEC = 30;
/** Trackers asking for day-long intervals would leave a torrent starved if a peer set goes stale. */
const MAX_INTERVAL_SEC = 2 * 60 * 60;
const MAX_BACKOFF_SEC = 30 * 60;
const STOP_WAIT_MS = 3000;

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * Keeps one torrent announced to its trackers (BEP 12 tiers): one successful tracker per round, promoted to
 * the front of its tier. Events: 'peers'(PeerAddress[], url), 'warning'(msg, url), 'error'(ShoalError, url),
 * 'response'(AnnounceResponseInfo). Tracker failures are routine, so 'error' is only emitted when someone
 * listens: an unlistened 'error' would otherwise crash the process.
 */
export class Announcer extends EventEmitter {
  private readonly opts: AnnouncerOptions;
  private readonly tierList: string[][];
  private readonly skipped: string[] = [];
  private readonly state = new Map<string, TrackerState>();
  private readonly key: number;
  private pendingEvent: 'completed' | undefined;
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private inflight: Promise<void> | undefined;
  private rerun = false;
  private nowRequested = false;
  private roundAbort: AbortController | undefined;
  private failures = 0;
  private lastSuccessAt = 0;
  private lastMinIntervalSec = MIN_INTERVAL_FLOOR_SEC;
  private udpClient: UdpTrackerClient | undefined;

  constructor(opts: AnnouncerOptions) {
    super();
    this.opts = opts;
    this.key = opts.key ?? randomInt(0, 0x100000000);
    this.tierList = [];
    for (const tier of opts.tiers) {
      const kept: string[] = [];
      for (const url of tier) {
        if (this.state.has(url) || this.skipped.includes(url)) continue;
        let proto: string | undefined;
        try { proto = new URL(url).protocol; } catch { proto = undefined; }
        if (proto && SUPPORTED.has(proto)) {
          kept.push(url);
          this.state.set(url, { contacted: false });
        } else {
          this.skipped.push(url);
        }
      }
      if (kept.length > 0) this.tierList.push(shuffle(kept));
    }
  }

  /** Current tier order (after shuffling and promotions); copies. */
  get tiers(): string[][] {
    return this.tierList.map((t) => [...t]);
  }

  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    for (const url of this.skipped) {
      this.emit('warning', `tracker ${trackerLabel(url)}: unsupported URL scheme, skipped`, url);
    }
    this.trigger();
  }

  /** The download finished: tell the tracker now, regardless of intervals. */
  complete(): void {
    if (this.stopping) return;
    this.pendingEvent = 'completed';
    if (this.started) this.trigger();
  }

  /** Ask for peers soon: now if the tracker's min interval has passed, else as soon as it has. */
  announceNow(): void {
    if (!this.started || this.stopping) return;
    // Decide once the round in flight has updated the min interval.
    if (this.inflight) { this.nowRequested = true; return; }
    const earliest = this.lastSuccessAt + this.lastMinIntervalSec * 1000;
    const wait = earliest - Date.now();
    if (wait <= 0 || this.lastSuccessAt === 0) this.trigger();
    else if (!this.timer || this.timerDue > earliest) this.schedule(wait);
  }

  /** Send `stopped` to every tracker that knows us (waiting at most ~3 s), then release timers and sockets. */
  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopping = true;
      this.stopped = this.doStop();
    }
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.clearTimer();
    this.roundAbort?.abort();
    await this.inflight?.catch(() => undefined);
    const contacted = [...this.state].filter(([, st]) => st.contacted).map(([url]) => url);
    if (contacted.length > 0) {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(new Error('stop deadline')), STOP_WAIT_MS);
      t.unref();
      await Promise.allSettled(contacted.map((url) =>
        this.announceTo(url, 'stopped', ac.signal, this.opts.getStats(), Math.min(this.opts.timeoutMs ?? 15_000, STOP_WAIT_MS))));
      clearTimeout(t);
    }
    await this.udpClient?.close();
    this.udpClient = undefined;
  }

  private trigger(): void {
    if (this.stopping) return;
    if (this.inflight) { this.rerun = true; return; }
    this.clearTimer();
    this.inflight = this.round().finally(() => {
      this.inflight = undefined;
      if (this.stopping) return;
      const now = this.nowRequested;
      this.nowRequested = false;
      if (this.rerun) { this.rerun = false; this.trigger(); } else if (now) this.announceNow();
    });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.clearTimer();
    const ms = Math.max(10, Math.round(delayMs));
    this.timerDue = Date.now() + ms;
    this.timer = setTimeout(() => { this.timer = undefined; this.trigger(); }, ms);
    this.timer.unref();
  }

  private floorSec(): number {
    return this.opts.minIntervalOverride ?? MIN_INTERVAL_FLOOR_SEC;
  }

  private async round(): Promise<void> {
    const ac = new AbortController();
    this.roundAbort = ac;
    for (const tier of this.tierList) {
      for (let i = 0; i < tier.length; i++) {
        const url = tier[i]!;
        const st = this.state.get(url)!;
        const event: AnnounceEvent | undefined = st.contacted ? this.pendingEvent : 'started';
        const stats = this.opts.getStats();
        let res: AnnounceResult;
        try {
          res = await this.announceTo(url, event, ac.signal, stats);
        } catch (e) {
          if (ac.signal.aborted || this.stopping) return;
          this.emitError(e, url);
          continue;
        }
        if (ac.signal.aborted || this.stopping) return;
        // `completed` is delivered by sending it, or by a `started` that already said left=0; a complete()
        // that arrived while an ordinary announce was in flight stays pending for the rerun.
        if (event === 'completed' || (event === 'started' && stats.left === 0)) this.pendingEvent = undefined;
        tier.splice(i, 1);
        tier.unshift(url);
        this.onSuccess(url, st, res);
        return;
      }
    }
    if (this.tierList.length === 0) return;
    this.failures++;
    this.schedule(Math.min(this.floorSec() * 2 ** (this.failures - 1), MAX_BACKOFF_SEC) * 1000);
  }

  private onSuccess(url: string, st: TrackerState, res: AnnounceResult): void {
    st.contacted = true;
    if (res.trackerId !== undefined) st.trackerId = res.trackerId;
    st.minInterval = res.minInterval;
    this.failures = 0;
    this.lastSuccessAt = Date.now();
    const floor = this.floorSec();
    this.lastMinIntervalSec = this.opts.minIntervalOverride ?? Math.max(floor, res.minInterval ?? 0);
    const interval = Math.min(Math.max(res.interval, this.lastMinIntervalSec), MAX_INTERVAL_SEC);
    this.schedule(interval * 1000);
    // State is settled before listeners run, so a throwing listener cannot leave the announcer half-updated.
    const info: AnnounceResponseInfo = { url, interval: res.interval, peers: res.peers.length };
    if (res.minInterval !== undefined) info.minInterval = res.minInterval;
    if (res.complete !== undefined) info.complete = res.complete;
    if (res.incomplete !== undefined) info.incomplete = res.incomplete;
    this.emit('response', info);
    if (res.warning) this.emit('warning', `tracker ${trackerLabel(url)}: ${res.warning}`, url);
    if (res.peers.length > 0) this.emit('peers', res.peers, url);
  }

  private emitError(e: unknown, url: string): void {
    if (this.listenerCount('error') === 0) return;
    const err = isShoalError(e) ? e : trackerError(url, (e as Error)?.message ?? String(e), e);
    this.emit('error', err as ShoalError, url);
  }

  private announceTo(url: string, event: AnnounceEvent | undefined, signal: AbortSignal, stats: AnnouncerStats,
    timeoutMs?: number): Promise<AnnounceResult> {
    const st = this.state.get(url)!;
    const params: AnnounceParams = {
      infoHash: this.opts.infoHash,
      peerId: this.opts.peerId,
      port: this.opts.port,
      uploaded: stats.uploaded,
      downloaded: stats.downloaded,
      left: stats.left,
      numwant: event === 'stopped' ? 0 : this.opts.numwant ?? 50,
      key: this.key,
      compact: true,
    };
    if (event) params.event = event;
    if (st.trackerId !== undefined) params.trackerId = st.trackerId;
    if (new URL(url).protocol === 'udp:') {
      this.udpClient ??= new UdpTrackerClient(this.opts.udp);
      return this.udpClient.announce(url, params, { signal });
    }
    return announceHttp(url, params, { timeoutMs: timeoutMs ?? this.opts.timeoutMs ?? 15_000, signal });
  }
}
