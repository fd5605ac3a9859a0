import { ShoalError } from '../util/errors.js';

/**
 * Token bucket for upload/download limits. Tokens (bytes) refill continuously at `rate` up to `burst`.
 *
 * `take` lets the balance go negative (debt) and says how long to wait: the caller has usually already
 * got the bytes (a received block) or must send a whole message, so refusing is not an option, and
 * waiting out the debt keeps the long-run average at the limit. `tryTake` is the polite variant for
 * callers that can defer; a request larger than the burst succeeds once the bucket is full, otherwise
 * it could never succeed.
 */
export class TokenBucket {
  private rateBps: number;
  private burst: number;
  private readonly burstFixed: boolean;
  private tokens: number;
  private last = -1;

  /** `rateBytesPerSec` 0 means unlimited. Default burst: one second's worth, at least 64 KiB so a few blocks can pass at low rates. */
  constructor(rateBytesPerSec: number, burst?: number) {
    checkRate(rateBytesPerSec);
    this.rateBps = rateBytesPerSec;
    this.burstFixed = burst !== undefined;
    this.burst = burst ?? defaultBurst(rateBytesPerSec);
    this.tokens = this.burst;
  }

  get rate(): number { return this.rateBps; }
  get unlimited(): boolean { return this.rateBps === 0; }

  /** Tokens available at `now` (negative while in debt). */
  available(now: number = Date.now()): number {
    if (this.rateBps === 0) return Infinity;
    this.refill(now);
    return this.tokens;
  }

  tryTake(n: number, now: number = Date.now()): boolean {
    if (this.rateBps === 0) return true;
    this.refill(now);
    if (this.tokens >= n || this.tokens >= this.burst) { this.tokens -= n; return true; }
    return false;
  }

  /** Takes `n` tokens unconditionally; returns the ms to wait until the balance is back to zero (0 = go now). */
  take(n: number, now: number = Date.now()): number {
    if (this.rateBps === 0) return 0;
    this.refill(now);
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rateBps);
  }

  setRate(rateBytesPerSec: number, now: number = Date.now()): void {
    checkRate(rateBytesPerSec);
    // Settle what accrued at the old rate before switching.
    if (this.rateBps !== 0) this.refill(now);
    const wasUnlimited = this.rateBps === 0;
    this.rateBps = rateBytesPerSec;
    if (!this.burstFixed) this.burst = defaultBurst(rateBytesPerSec);
    if (wasUnlimited || this.tokens > this.burst) this.tokens = this.burst;
    this.last = now;
  }

  private refill(now: number): void {
    if (this.last < 0) { this.last = now; return; }
    const dt = now - this.last;
    if (dt <= 0) return;   // clocks that step backwards give nothing rather than draining
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (dt * this.rateBps) / 1000);
  }
}

function defaultBurst(rate: number): number { return Math.max(rate, 65536); }

function checkRate(r: number): void {
  if (!Number.isFinite(r) || r < 0) throw new ShoalError('EUSAGE', `rate limit ${r} is invalid: expected a non-negative number of bytes/s (0 = unlimited)`);
}
