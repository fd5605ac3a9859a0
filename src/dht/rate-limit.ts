/**
 * Per-IP token buckets for incoming queries. The table of IPs is bounded: when it is full, buckets that have
 * refilled completely (idle senders) are dropped, and if none has, the whole table is reset rather than grown.
 */
export class IpRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxIps = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  allow(ip: string): boolean {
    const now = this.now();
    let b = this.buckets.get(ip);
    if (!b) {
      if (this.buckets.size >= this.maxIps) this.prune(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(ip, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.perSecond) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number { return this.buckets.size; }

  private prune(now: number): void {
    const full = (this.burst * 1000) / this.perSecond;
    for (const [ip, b] of this.buckets) if (now - b.at >= full) this.buckets.delete(ip);
    if (this.buckets.size >= this.maxIps) this.buckets.clear();
  }
}
