import type { PeerAddress } from '../discovery/compact.js';

/**
 * Where a peer address came from. Explicit sources (`--peer`, magnet `x.pe`, a fleet's origin) are retried for as
 * long as the torrent runs; addresses from the others may be forgotten and come back when heard of again.
 */
export type PeerSourceKind = 'tracker' | 'explicit' | 'magnet' | 'pex' | 'lsd' | 'dht' | 'incoming';

/** Sources that must never be used for a private torrent (BEP 27). */
export const PUBLIC_ONLY_SOURCES: ReadonlySet<PeerSourceKind> = new Set(['pex', 'lsd', 'dht']);

/** Where a source delivers the addresses it learns; the swarm session dedupes, bounds and dials them. */
export type PeerSink = (peers: PeerAddress[], kind: PeerSourceKind) => void;

/** What a source may ask of the torrent it serves. */
export interface SwarmState {
  readonly infoHash: Buffer;
  readonly peerId: Buffer;
  /** Our peer listen port (TCP; the DHT uses the same number over UDP). */
  readonly port: number;
  /** Bytes left to download (0 when seeding; the size is unknown before the metadata, then this is null). */
  left(): number | null;
  uploaded(): number;
  downloaded(): number;
  /** True once every wanted piece is verified. */
  complete(): boolean;
}

/**
 * One way of finding peers: trackers, explicit addresses, PEX, LSD, the DHT. A source is started once, pushes
 * whatever it learns into the sink, and is stopped once (stop() resolves when it has said goodbye, e.g. a tracker's
 * `stopped` announce). `completed()` is called once when the download finishes (trackers send `completed`).
 */
export interface PeerSource {
  readonly kind: PeerSourceKind;
  start(sink: PeerSink): void;
  completed?(): void;
  stop(): Promise<void>;
  /** Diagnostics for stats / --json: what the source is doing, e.g. last error. */
  describe?(): Record<string, unknown>;
}
