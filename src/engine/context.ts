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
  readonly uploadSlots: number;
  readonly localAddress: string | undefined;
  /** Cross-structure invariants are checked every tick and on every connection change (tests turn this on). */
  readonly debugInvariants: boolean;
  /** Peer exchange (BEP 11) for public torrents. */
  readonly pex: boolean;
  readonly pexIntervalMs: number | undefined;
  /** The client's DHT node, once listening; null when off. */
  readonly dht: Dht | null;
  /** Connections the whole client may still open. */
  globalSlots(): number;
}
