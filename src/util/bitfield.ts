/**
 * A fixed-size set of piece indices, stored MSB-first as in the BEP 3 `bitfield` message,
 * so `buffer` can go on the wire as-is. Spare bits in the last byte are always zero.
 */
export class Bitfield {
  readonly length: number;
  readonly buffer: Buffer;
  private setCount = 0;

  constructor(length: number, buffer?: Buffer) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`bitfield length ${length} is not a non-negative integer`);
    this.length = length;
    const bytes = (length + 7) >> 3;
    if (buffer) {
      if (buffer.length !== bytes) throw new RangeError(`bitfield of ${length} bits needs ${bytes} bytes, got ${buffer.length}`);
      this.buffer = Buffer.from(buffer);
      const spare = bytes * 8 - length;
      if (spare > 0 && (this.buffer[bytes - 1]! & ((1 << spare) - 1)) !== 0) {
        throw new RangeError('bitfield has spare bits set past the last piece');
      }
      for (let i = 0; i < bytes; i++) this.setCount += popcount8(this.buffer[i]!);
    } else {
      this.buffer = Buffer.alloc(bytes);
    }
  }

  get(index: number): boolean {
    if (index < 0 || index >= this.length) return false;
    return (this.buffer[index >> 3]! & (0x80 >> (index & 7))) !== 0;
  }

  /** Returns true when the bit changed. */
  set(index: number, value = true): boolean {
    if (index < 0 || index >= this.length) throw new RangeError(`piece index ${index} out of range 0..${this.length - 1}`);
    const byte = index >> 3;
    const mask = 0x80 >> (index & 7);
    const had = (this.buffer[byte]! & mask) !== 0;
    if (had === value) return false;
    if (value) { this.buffer[byte]! |= mask; this.setCount++; } else { this.buffer[byte]! &= ~mask; this.setCount--; }
    return true;
  }

  setAll(): void {
    this.buffer.fill(0xff);
    const spare = this.buffer.length * 8 - this.length;
    if (spare > 0) this.buffer[this.buffer.length - 1] = (0xff << spare) & 0xff;
    this.setCount = this.length;
  }

  clear(): void { this.buffer.fill(0); this.setCount = 0; }

  /** Number of set bits, kept up to date in O(1). */
  get count(): number { return this.setCount; }
  get complete(): boolean { return this.setCount === this.length; }
  get empty(): boolean { return this.setCount === 0; }

  clone(): Bitfield { return new Bitfield(this.length, this.buffer); }

  *indices(): IterableIterator<number> {
    for (let i = 0; i < this.length; i++) if (this.get(i)) yield i;
  }
}

function popcount8(b: number): number {
  b = b - ((b >> 1) & 0x55);
  b = (b & 0x33) + ((b >> 2) & 0x33);
  return (b + (b >> 4)) & 0x0f;
}
