import type { Logger } from 'pino';
import type { TrackerMetrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { SwarmStore } from './swarm-store.js';

/** What the HTTP and UDP front ends need from the server; kept as an interface so neither imports server.ts. */
export interface TrackerContext {
  readonly store: SwarmStore;
  readonly metrics: TrackerMetrics;
  readonly logger: Logger;
  readonly interval: number;
  readonly minInterval: number;
  readonly defaultNumwant: number;
  readonly maxNumwant: number;
  /** Returned as `tracker id` in HTTP responses: identifies the instance that answered. */
  readonly trackerId: string;
  /** Private mode: false for info-hashes that are not on the allow-list. */
  isAllowed(infoHash: Buffer): boolean;
  /** Same, for an info-hash given as a latin1 string. */
  isAllowedKey(infoHashKey: string): boolean;
  /** undefined = passkeys not required. */
  readonly passkeys: ReadonlySet<string> | undefined;
  readonly trustProxyHeader: boolean;
  /** Honour the `ip` announce parameter from any address, not only loopback. */
  readonly trustIpParam: boolean;
  readonly httpLimiter: RateLimiter | undefined;
  readonly udpLimiter: RateLimiter | undefined;
  statsJson(): Promise<Record<string, unknown>>;
}

/** Strip the IPv4-mapped prefix dual-stack sockets report, so one peer has one address form. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}
