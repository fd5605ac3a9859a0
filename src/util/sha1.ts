import { createHash, webcrypto } from 'node:crypto';

/**
 * SHA-1 on libuv's thread pool through WebCrypto, so verifying a piece never blocks the event loop.
 * (Node copies the input into the job; one memcpy per piece is far cheaper than hashing on the main thread.)
 */
export async function sha1Async(data: Uint8Array): Promise<Buffer> {
  const digest = await webcrypto.subtle.digest('SHA-1', data);
  return Buffer.from(digest);
}

/** Synchronous SHA-1 for small inputs (handshakes, info dicts). */
export function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/** Compare a piece against its expected 20-byte hash without blocking the event loop. */
export async function verifyPiece(data: Uint8Array, expected: Uint8Array): Promise<boolean> {
  const got = await sha1Async(data);
  return got.equals(expected);
}
