import { createHash } from 'node:crypto';
import { encode } from '../../src/bencode/index.js';
import type { Metainfo, TorrentFile } from '../../src/metainfo/types.js';

export interface MakeFile { path: string[]; data: Buffer; /** BEP 47 padding file (data should be zeros). */ padding?: boolean }

/**
 * Build a real Metainfo (correct piece hashes, info dict bytes and info-hash) for in-memory data.
 * One file whose path is [name] and no `multi` flag gives a single-file torrent; anything else is multi-file.
 * Returns the concatenated torrent data too.
 */
export function makeMetainfo(files: MakeFile[], pieceLength: number, name: string, opts: { multiFile?: boolean } = {}): { meta: Metainfo; data: Buffer } {
  const multiFile = opts.multiFile ?? !(files.length === 1 && files[0]!.path.length === 1 && files[0]!.path[0] === name);
  const data = Buffer.concat(files.map((f) => f.data));
  const pieceCount = Math.ceil(data.length / pieceLength);
  const hashes = Buffer.alloc(pieceCount * 20);
  for (let i = 0; i < pieceCount; i++) {
    createHash('sha1').update(data.subarray(i * pieceLength, (i + 1) * pieceLength)).digest().copy(hashes, i * 20);
  }
  const info: Record<string, unknown> = { name, 'piece length': pieceLength, pieces: hashes };
  if (multiFile) {
    info['files'] = files.map((f) => ({ length: f.data.length, path: f.path, attr: f.padding ? 'p' : undefined }));
  } else {
    info['length'] = data.length;
  }
  const infoBuffer = encode(info);
  const infoHash = createHash('sha1').update(infoBuffer).digest();
  let offset = 0;
  const tfiles: TorrentFile[] = files.map((f) => {
    const tf = { path: multiFile ? f.path : [name], length: f.data.length, offset, padding: f.padding ?? false };
    offset += f.data.length;
    return tf;
  });
  const meta: Metainfo = {
    infoHash,
    infoHashHex: infoHash.toString('hex'),
    infoBuffer,
    name,
    pieceLength,
    pieceCount,
    pieceHashes: hashes,
    length: data.length,
    lastPieceLength: data.length - (pieceCount - 1) * pieceLength,
    files: tfiles,
    multiFile,
    announce: [],
    urlList: [],
    private: false,
  };
  return { meta, data };
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function pseudoRandom(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
