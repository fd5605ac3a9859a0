import { Announcer } from '../discovery/announcer.js';
import type { PeerAddress } from '../discovery/compact.js';
import { mayContact } from '../util/sandbox.js';
import type { PeerSink, PeerSource, SwarmState } from './source.js';

/** While the size is unknown (a magnet before its metadata) trackers are told "something left", never "seeding". */
const UNKNOWN_LEFT = 16384;

/**
 * The torrent's trackers (BEP 3/12/15) as a peer source. Under SHOAL_SANDBOX=1 a tracker whose host is not
 * loopback or 198.18.0.0/15 is skipped with a warning.
 */
export class TrackerSource implements PeerSource {
  readonly kind = 'tracker' as const;
  private announcer: Announcer | null = null;
  private readonly tiers: string[][];
  private readonly state: SwarmState;
  private readonly warn: (msg: string) => void;
  private lastError: string | undefined;

  constructor(state: SwarmState, tiers: string[][], warn: (msg: string) => void) {
    this.state = state;
    this.warn = warn;
    this.tiers = tiers.map((tier) => tier.filter((url) => {
      const host = hostOf(url);
      if (host !== null && mayContact(host)) return true;
      warn(`tracker ${url} skipped: SHOAL_SANDBOX=1 allows only loopback and 198.18.0.0/15`);
      return false;
    })).filter((t) => t.length > 0);
  }

  get empty(): boolean {
    return this.tiers.length === 0;
  }

  start(sink: PeerSink): void {
    if (this.tiers.length === 0) return;
    const state = this.state;
    this.announcer = new Announcer({
      infoHash: state.infoHash,
      peerId: state.peerId,
      port: state.port,
      tiers: this.tiers,
      getStats: () => ({ uploaded: state.uploaded(), downloaded: state.downloaded(), left: state.left() ?? UNKNOWN_LEFT }),
    });
    this.announcer.on('peers', (peers: PeerAddress[]) => sink(peers, 'tracker'));
    this.announcer.on('warning', (msg: string) => { this.lastError = msg; this.warn(msg); });
    this.announcer.on('error', (err: Error) => { this.lastError = err.message; this.warn(err.message); });
    this.announcer.start();
  }

  completed(): void {
    this.announcer?.complete();
  }

  async stop(): Promise<void> {
    const a = this.announcer;
    this.announcer = null;
    if (a) await a.stop().catch(() => undefined);
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, trackers: this.tiers.flat().length, lastError: this.lastError };
  }
}

function hostOf(url: string): string | null {
  try {
    const h = new URL(url).hostname;
    return h.startsWith('[') ? h.slice(1, -1) : h;
  } catch {
    return null;
  }
}

/** Addresses given up front: `--peer`, a magnet's `x.pe`, a fleet's origin. They are retried for as long as the torrent runs. */
export class StaticPeerSource implements PeerSource {
  readonly kind: 'explicit' | 'magnet';
  private readonly peers: PeerAddress[];

  constructor(kind: 'explicit' | 'magnet', peers: PeerAddress[]) {
    this.kind = kind;
    this.peers = peers;
  }

  start(sink: PeerSink): void {
    if (this.peers.length > 0) sink(this.peers, this.kind);
  }

  async stop(): Promise<void> { /* nothing to say goodbye to */ }

  describe(): Record<string, unknown> {
    return { kind: this.kind, peers: this.peers.length };
  }
}
