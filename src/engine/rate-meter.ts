/**
 * Sliding-window transfer rate. `add` runs once per block on the hot path, so it is O(1) amortised and
 * allocation-free: bytes go into a ring of fixed-width time buckets and a running sum of the ring is kept,
 * so `rate` never has to add the buckets up.
 *
 * The window is the last `windowMs` including the current, partly elapsed bucket; dividing by the span
 * actually covered (rather than the nominal window) keeps the figure honest right after a bucket boundary
 * and during the first seconds after the first sample, when a nominal 5 s divisor would under-report.
 */
export class RateMeter {
  /** All bytes ever added. */
  total = 0;
  private readonly bucketMs: number;
  private readonly buckets: Float64Array;
  /** Absolute bucket number (time / bucketMs) that buckets[head % n] holds; -1 before the first sample. */
  private headSlot = -1;
  private sum = 0;
  private startMs = 0;

  constructor(readonly windowMs = 5000, bucketMs = 250) {
    if (!(windowMs > 0) || !(bucketMs > 0)) throw new RangeError('rate meter window and bucket must be positive');
    this.bucketMs = Math.min(bucketMs, windowMs);
    this.buckets = new Float64Array(Math.max(1, Math.round(windowMs / this.bucketMs)));
  }

  add(bytes: number, now: number = Date.now()): void {
    this.total += bytes;
    if (this.headSlot < 0) { this.headSlot = Math.floor(now / this.bucketMs); this.startMs = now; }
    else this.advance(now);
    // A clock that steps backwards lands in the current bucket rather than corrupting older ones.
    this.buckets[this.headSlot % this.buckets.length]! += bytes;
    this.sum += bytes;
  }

  /** Bytes per second over the window ending at `now`. */
  rate(now: number = Date.now()): number {
    if (this.headSlot < 0) return 0;
    this.advance(now);
    if (this.sum <= 0) return 0;
    const n = this.buckets.length;
    // Span covered: the n-1 whole buckets before the head plus the elapsed part of the head bucket...
    let span = (n - 1) * this.bucketMs + Math.max(0, now - this.headSlot * this.bucketMs);
    // ...but never more than we have been measuring, and at least one bucket so a single early sample
    // cannot produce an absurd spike.
    span = Math.max(this.bucketMs, Math.min(span, now - this.startMs));
    return (this.sum * 1000) / span;
  }

  reset(): void {
    this.buckets.fill(0);
    this.sum = 0;
    this.total = 0;
    this.headSlot = -1;
  }

  /**
   * One loop whatever the gap: no branch that runs only after an idle spell. Optimized code that inlines this
   * (the per-block handlers do) is thrown away the first time it meets a branch it never saw run, and at swarm
   * rates it takes V8 many seconds to optimize it again (bench/PROFILE.md, sixth session).
   */
  private advance(now: number): void {
    const slot = Math.floor(now / this.bucketMs);
    if (slot <= this.headSlot) return;
    const buckets = this.buckets;
    const n = buckets.length;
    const steps = Math.min(slot - this.headSlot, n);
    let sum = this.sum;
    for (let s = slot - steps + 1; s <= slot; s++) {
      const i = s % n;
      sum -= buckets[i]!;
      buckets[i] = 0;
    }
    // Float drift from repeated add/subtract must never leave a phantom rate behind (and a gap longer than the
    // window has cleared every bucket, so the sum is zero up to that drift).
    this.sum = sum < 1e-6 ? 0 : sum;
    this.headSlot = slot;
  }
}
