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
