import { randomBytes } from 'node:crypto';

export const ID_BYTES = 20;
export const ID_BITS = 160;

export function randomNodeId(): Buffer {
  return randomBytes(ID_BYTES);
}

/** Number of leading bits `a` and `b` share (160 when equal). */
export function commonPrefixBits(a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return ID_BITS;
}

/** XOR distance as a new buffer (for tests and diagnostics; comparisons use compareDistance). */
export function xorDistance(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ID_BYTES);
  for (let i = 0; i < ID_BYTES; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Sign of distance(a, target) - distance(b, target), without allocating. */
export function compareDistance(a: Buffer, b: Buffer, target: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const da = a[i]! ^ target[i]!, db = b[i]! ^ target[i]!;
    if (da !== db) return da < db ? -1 : 1;
  }
  return 0;
}

/** A random id that shares exactly `prefix` leading bits with `own` (or at least `prefix` when `exact` is false). */
export function randomIdWithPrefix(own: Buffer, prefix: number, exact: boolean): Buffer {
  const id = randomBytes(ID_BYTES);
  if (prefix >= ID_BITS) return Buffer.from(own);
  const fullBytes = prefix >> 3, bits = prefix & 7;
  own.copy(id, 0, 0, fullBytes);
  const mask = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  id[fullBytes] = (own[fullBytes]! & mask) | (id[fullBytes]! & ~mask & 0xff);
  const flip = 0x80 >> bits;
  if (exact) id[fullBytes] = (id[fullBytes]! & ~flip & 0xff) | (~own[fullBytes]! & flip & 0xff);
  return id;
}
