/**
 * Per-address token bucket. Memory is bounded: when more than `maxTracked` addresses are known,
 * idle (full) buckets are dropped first, and if a spoofed-source flood still fills the table it
 * is cleared — forgetting limits briefly is better than growing without bound.
 */
export interface RateLimitOptions {
  /** Sustained requests per second per address. */
  perSecond: number;
  /** Requests allowed in a burst. */
  burst: number;
  /** Addresses tracked at once. Default 100 000. */
  maxTracked?: number;
}

interface Bucket { tokens: number; last: number }

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxTracked: number;

  constructor(opts: RateLimitOptions) {
    this.perMs = opts.perSecond / 1000;
    this.burst = opts.burst;
    this.maxTracked = opts.maxTracked ?? 100_000;
  }

  get tracked(): number { return this.buckets.size; }

  /** True if `key` may make one more request now. */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxTracked) this.prune(now);
      b = { tokens: this.burst, last: now };
      this.buckets.set(key, b);
    } else if (now > b.last) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.last) * this.perMs);
      b.last = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private prune(now: number): void {
    const fullAfter = this.burst / this.perMs;
    for (const [k, b] of this.buckets) if (now - b.last >= fullAfter) this.buckets.delete(k);
    if (this.buckets.size >= this.maxTracked) this.buckets.clear();
  }
}

/**
 * The key a request's source is limited under. An IPv6 user normally gets a whole /64 (SLAAC, privacy
 * addresses), so keying on the full address would hand one host 2^64 fresh buckets: IPv6 is limited per /64.
 * IPv4-mapped IPv6 addresses count as the IPv4 address. IPv4 costs no allocation (the UDP hot path).
 */
export function sourceKey(address: string): string {
  if (!address.includes(':')) return address;
  const lower = address.toLowerCase();
  const zone = lower.indexOf('%');
  const a = zone >= 0 ? lower.slice(0, zone) : lower;
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  const dbl = a.indexOf('::');
  let groups: string[];
  if (dbl < 0) groups = a.split(':');
  else {
    const head = a.slice(0, dbl) === '' ? [] : a.slice(0, dbl).split(':');
    const tail = a.slice(dbl + 2) === '' ? [] : a.slice(dbl + 2).split(':');
    groups = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  }
  return `${groups.slice(0, 4).map((g) => (g.replace(/^0+(?=.)/, '') || '0')).join(':')}::/64`;
}
