import { ShoalError } from '../util/errors.js';
import type { PeerAddress } from './compact.js';

export type AnnounceEvent = 'started' | 'completed' | 'stopped';

export interface AnnounceParams {
  infoHash: Buffer;
  peerId: Buffer;
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event?: AnnounceEvent;
  numwant?: number;
  /** Unsigned 32-bit value identifying this client across IP changes. */
  key?: number;
  /** Defaults to true: ask for BEP 23 compact peers. */
  compact?: boolean;
  /** Opaque `tracker id` from a previous response, as a latin1 ("binary") string. */
  trackerId?: string;
  ipv6?: string;
}

/** Non-compact HTTP responses may carry each peer's id. */
export interface TrackerPeer extends PeerAddress {
  peerId?: Buffer;
}

export interface AnnounceResult {
  /** Seconds until the tracker wants the next regular announce. */
  interval: number;
  minInterval?: number;
  peers: TrackerPeer[];
  complete?: number;
  incomplete?: number;
  /** latin1 ("binary") string; send it back unchanged. */
  trackerId?: string;
  warning?: string;
}

export interface ScrapeEntry {
  complete: number;
  incomplete: number;
  downloaded: number;
}

/** Scrape results keyed by lowercase hex info-hash. */
export type ScrapeResult = Map<string, ScrapeEntry>;

/**
 * Announce URLs often carry private passkeys in the query string; errors and warnings end up in logs,
 * so they name the tracker without its query.
 */
export function trackerLabel(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname === '/' && u.protocol === 'udp:' ? '' : u.pathname}`;
  } catch {
    return String(url).replace(/\?.*$/s, '');
  }
}

export function trackerError(url: string | URL, what: string, cause?: unknown): ShoalError {
  return new ShoalError('ETRACKER', `tracker ${trackerLabel(url)}: ${what}`, cause === undefined ? undefined : { cause });
}

/** Tracker-supplied text is untrusted: keep it to one printable line of bounded length. */
export function sanitizeTrackerText(s: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const one = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return one.length > max ? one.slice(0, max) + '…' : one;
}
