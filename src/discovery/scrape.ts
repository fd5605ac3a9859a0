import { scrapeHttp } from './http-tracker.js';
import { scrapeUdp, type UdpTrackerOptions } from './udp-tracker.js';
import { trackerError, type ScrapeResult } from './types.js';

export interface ScrapeOptions {
  /** HTTP(S) only; default 15 s. */
  timeoutMs?: number;
  udp?: UdpTrackerOptions;
  signal?: AbortSignal;
}

/**
 * Swarm counts for each info-hash, keyed by lowercase hex. `url` is the tracker's announce URL; for HTTP the
 * scrape URL is derived from it (BEP 48), which fails with ETRACKER when the tracker does not follow the convention.
 */
export async function scrape(url: string, infoHashes: Buffer[], opts: ScrapeOptions = {}): Promise<ScrapeResult> {
  let proto: string;
  try { proto = new URL(url).protocol; } catch { throw trackerError(url, 'not a valid URL'); }
  if (proto === 'http:' || proto === 'https:') {
    const o: { timeoutMs: number; signal?: AbortSignal } = { timeoutMs: opts.timeoutMs ?? 15_000 };
    if (opts.signal) o.signal = opts.signal;
    return scrapeHttp(url, infoHashes, o);
  }
  if (proto === 'udp:') {
    return scrapeUdp(url, infoHashes, opts.signal ? { ...opts.udp, signal: opts.signal } : { ...opts.udp });
  }
  throw trackerError(url, `scrape not supported for ${proto} trackers`);
}
