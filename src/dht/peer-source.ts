import type { PeerSink, PeerSource, SwarmState } from '../peers/source.js';
import type { Dht, LookupResult } from './dht.js';

/**
 * The DHT as a peer source for one torrent: looks the info-hash up (announcing our port) once the DHT has
 * bootstrapped, then every `intervalMs`, and pushes what it finds to the sink as it arrives.
 */
export class DhtPeerSource implements PeerSource {
  readonly kind = 'dht' as const;
  private timer: NodeJS.Timeout | undefined;
  private ac: AbortController | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private last: (Omit<LookupResult, 'peers'> & { peers: number; at: string }) | undefined;
  private lastError: string | undefined;
  private lookups = 0;
  private readonly intervalMs: number;

  constructor(private readonly dht: Dht, private readonly state: SwarmState, opts: { intervalMs?: number } = {}) {
    this.intervalMs = opts.intervalMs ?? 15 * 60_000;
  }

  start(sink: PeerSink): void {
    if (this.running || this.stopped) return;
    const round = async (): Promise<void> => {
      if (this.stopped) return;
      this.ac = new AbortController();
      try {
        const ac = this.ac;
        await Promise.race([this.dht.bootstrapped(), new Promise((r) => ac.signal.addEventListener('abort', r, { once: true }))]);
        if (this.stopped) return;
        const port = this.state.port;
        const res = await this.dht.lookup(this.state.infoHash, {
          ...(port > 0 ? { announcePort: port } : {}),
          signal: this.ac.signal,
          onPeers: (peers) => { if (!this.stopped) sink(peers, 'dht'); },
        });
        this.lookups++;
        this.lastError = undefined;
        this.last = { ...res, peers: res.peers.length, at: new Date().toISOString() };
      } catch (e) {
        this.lastError = (e as Error).message;
      }
      if (!this.stopped) {
        this.timer = setTimeout(() => { this.running = round(); }, this.intervalMs);
        this.timer.unref();
      }
    };
    this.running = round();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ac?.abort();
    await this.running;
  }

  describe(): Record<string, unknown> {
    return { lookups: this.lookups, last: this.last, ...(this.lastError ? { lastError: this.lastError } : {}), dht: this.dht.stats() };
  }
}
