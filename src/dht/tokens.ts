import { createHash, randomBytes } from 'node:crypto';

/**
 * announce_peer write tokens (BEP 5): a hash of the requester's IP with a secret that rotates every
 * `rotateMs`; tokens made with the current or the previous secret are accepted, so a token lives 1-2 periods.
 */
export class TokenManager {
  private current = randomBytes(16);
  private previous = randomBytes(16);
  private rotatedAt: number;

  constructor(private readonly rotateMs = 5 * 60_000, private readonly now: () => number = Date.now) {
    this.rotatedAt = now();
  }

  issue(ip: string): Buffer {
    this.maybeRotate();
    return this.make(this.current, ip);
  }

  verify(ip: string, token: Buffer): boolean {
    this.maybeRotate();
    if (token.length !== 8) return false;
    return token.equals(this.make(this.current, ip)) || token.equals(this.make(this.previous, ip));
  }

  /** Forces a rotation (the periodic one happens lazily on use). */
  rotate(): void {
    this.previous = this.current;
    this.current = randomBytes(16);
    this.rotatedAt = this.now();
  }

  private maybeRotate(): void {
    const elapsed = this.now() - this.rotatedAt;
    if (elapsed < this.rotateMs) return;
    this.rotate();
    // Idle for two periods or more: the old secret must not survive either.
    if (elapsed >= 2 * this.rotateMs) this.rotate();
  }

  private make(secret: Buffer, ip: string): Buffer {
    return createHash('sha1').update(secret).update(ip).digest().subarray(0, 8);
  }
}
