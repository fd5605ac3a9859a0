/**
 * The contract between the protocol front ends (HTTP, UDP) and swarm state (memory or Redis).
 * Front ends validate and normalise input; stores never see malformed requests.
 */

export type AnnounceEvent = 'none' | 'started' | 'completed' | 'stopped' | 'paused';

export interface AnnounceRequest {
  /** 20 raw bytes. */
  infoHash: Buffer;
  /** Optional: `infoHash` as a latin1 string, when the front end already has it (saves building it twice). */
  infoHashKey?: string;
  /** 20 raw bytes. */
  peerId: Buffer;
  /** Compact address of the announcing peer: 6 bytes (IPv4) or 18 bytes (IPv6), port included. */
  compact: Buffer;
  /**
   * The address the request came from, as the socket saw it (it differs from `compact` when an `ip`
   * parameter is honoured). Stores that limit how fast one source may create swarms key on it.
   */
  source?: string;
  /** True when `left` is 0 (or the event is 'completed'). */
  seed: boolean;
  event: AnnounceEvent;
  /** Already clamped to 0..maxNumwant by the front end. */
  numwant: number;
  /** Which address families the response can carry: UDP carries one, HTTP both. */
  family: 4 | 6 | 0;
  /**
   * The caller only needs compact peers: a store may then fill `compact4`/`compact6` instead of
   * `peers`, which saves building an object per returned peer on the hot path.
   */
  compactOnly?: boolean;
}

/** A peer handed back to a requester. `compact` length tells the family (6 or 18). */
export interface SelectedPeer {
  readonly peerId: Buffer;
  readonly compact: Buffer;
}

export interface AnnounceResult {
  complete: number;
  incomplete: number;
  downloaded: number;
  peers: SelectedPeer[];
  /** Set only for `compactOnly` requests, by stores that support it: the selected peers, concatenated per family. */
  compact4?: Buffer;
  compact6?: Buffer;
}

export interface ScrapeEntry { complete: number; incomplete: number; downloaded: number }

export interface StoreStats { swarms: number; seeds: number; leechers: number }

/** Memory-store results are synchronous so the UDP hot path does not pay for a promise per packet. */
export type MaybePromise<T> = T | Promise<T>;

export interface SwarmStore {
  announce(req: AnnounceRequest): MaybePromise<AnnounceResult>;
  /** Entries in the same order as `infoHashes`; unknown swarms are zeros. */
  scrape(infoHashes: Buffer[]): MaybePromise<ScrapeEntry[]>;
  stats(): MaybePromise<StoreStats>;
  close(): Promise<void>;
}

/** The store cannot serve right now (Redis down); front ends turn it into a retry-later failure. */
export class StoreUnavailableError extends Error {
  constructor(cause?: unknown) {
    super('tracker storage unavailable, retry later', { cause });
    this.name = 'StoreUnavailableError';
  }
}

/** The store refuses new state because a configured bound is reached. */
export class StoreFullError extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'StoreFullError';
  }
}

export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}
