import type { TokenBucket } from './token-bucket.js';
import type { Dht } from '../dht/index.js';

/** What a torrent needs from the client that owns it. */
export interface TorrentContext {
  readonly peerId: Buffer;
  readonly port: number;
  readonly clientName: string;
  readonly trackers: boolean;
  readonly uploadBucket: TokenBucket | null;
  readonly downloadBucket: TokenBucket | null;
  readonly maxPeersPerTorrent: number;
  /** Cap of the back-off between connection attempts to one address (ClientOptions.peerRetryMaxMs); absent = 30 s. */
  readonly peerRetryMaxMs?: number;
  readonly uploadSlots: number;
  readonly localAddress: string | undefined;
  /** Cross-structure invariants are checked every tick and on every connection change (tests turn this on). */
  readonly debugInvariants: boolean;
  /** Peer exchange (BEP 11) for public torrents. */
  readonly pex: boolean;
  readonly pexIntervalMs: number | undefined;
  /** The client's DHT node, once listening; null when off. */
  readonly dht: Dht | null;
  /** Shared by the client's web seeds (ClientOptions.originLimit); null or absent = no origin limit. */
  readonly originBucket?: TokenBucket | null;
  /** Piece cache per torrent (ClientOptions.cacheBytes); absent = storage's default. */
  readonly cacheBytes?: number;
  /** Web seed connect/headers/stall timeout (ms); absent = the fetcher's default (30 s). */
  readonly webSeedTimeoutMs?: number;
  /** Connections the whole client may still open. */
  globalSlots(): number;
}
