// Test data for the scenarios: random files, their .torrent (made by mktorrent, so no engine under
// test makes its own input), info-hashes, and sizes/rates as the options spell them.
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { run } from './proc.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1 << 20, g: 1e9, gb: 1e9, gib: 1 << 30 };

/** "1GiB", "256KiB", "64MiB", "1000000" -> bytes. */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: "${s}" (use e.g. 1GiB, 256KiB, 64MiB)`);
  return Math.round(Number(m[1]) * unit);
}

/** tc-style rate "200mbit" -> bits per second. */
export function parseRate(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$/i.exec(s);
  if (!m) throw new Error(`not a rate: "${s}" (use e.g. 200mbit)`);
  const mult = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2]!.toLowerCase() as 'bit'];
  return Number(m[1]) * mult;
}

export function fmtSize(n: number): string {
  if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)} GiB`;
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

/** Writes `size` random bytes (fresh randomness per chunk, so no two pieces are alike). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const chunk = Buffer.allocUnsafe(16 << 20);
    for (let off = 0; off < size; off += chunk.length) {
      const n = Math.min(chunk.length, size - off);
      randomFillSync(chunk, 0, n);
      await fh.write(chunk, 0, n, off);
    }
  } finally {
    await fh.close();
  }
}

/** Reads a file once so its pages are in the page cache. */
export async function warmCache(path: string): Promise<void> {
  for await (const _ of createReadStream(path, { highWaterMark: 4 << 20 })) { /* discard */ }
}

/** Makes a trackerless single-file .torrent with mktorrent; pieceLength must be a power of two. */
export async function makeTorrent(file: string, out: string, pieceLength: number): Promise<void> {
  const log2 = Math.log2(pieceLength);
  if (!Number.isInteger(log2) || log2 < 15 || log2 > 28) throw new Error(`piece length must be a power of two from 32 KiB to 256 MiB: ${pieceLength}`);
  await run('mktorrent', ['-l', String(log2), '-o', out, file]);
}

/** Info-hash (hex) of a .torrent, found by walking the bencode just far enough to span `info`. */
export async function infoHashOf(torrentPath: string): Promise<string> {
  const b = await readFile(torrentPath);
  let i = 0;
  const skip = (): void => {
    const c = b[i]!;
    if (c === 0x69) { i = b.indexOf(0x65, i) + 1; return; } // i...e
    if (c === 0x6c || c === 0x64) { i++; while (b[i] !== 0x65) skip(); i++; return; } // l...e, d...e
    const colon = b.indexOf(0x3a, i);
    i = colon + 1 + Number(b.toString('latin1', i, colon));
  };
  if (b[i] !== 0x64) throw new Error(`${torrentPath}: not a bencoded dictionary`);
  i++;
  while (i < b.length && b[i] !== 0x65) {
    const keyStart = i;
    skip();
    const key = b.toString('latin1', b.indexOf(0x3a, keyStart) + 1, i);
    const valStart = i;
    skip();
    if (key === 'info') return createHash('sha1').update(b.subarray(valStart, i)).digest('hex');
  }
  throw new Error(`${torrentPath}: no info dictionary`);
}
