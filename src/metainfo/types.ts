/** One file of a torrent, in torrent order. `offset` is its first byte within the torrent's concatenated data. */
export interface TorrentFile {
  /** Path components, validated: none is empty, '.', '..', contains a separator or NUL, or is a reserved name. */
  path: string[];
  length: number;
  offset: number;
  /** BEP 47 padding file (attr contains 'p'): never written to disk, reads as zeros. */
  padding: boolean;
}

/** A parsed BitTorrent v1 metainfo (.torrent) or what a magnet gave plus fetched info. */
export interface Metainfo {
  /** SHA-1 of the original bencoded `info` bytes (never of a re-encoding). */
  infoHash: Buffer;
  infoHashHex: string;
  /** The exact bencoded `info` dictionary bytes, as found in the file. */
  infoBuffer: Buffer;
  name: string;
  pieceLength: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 piece hashes. */
  pieceHashes: Buffer;
  /** Total length of all files (including padding files). */
  length: number;
  lastPieceLength: number;
  files: TorrentFile[];
  /** True when the info dict has `files` (multi-file mode): data lives under a folder named `name`. */
  multiFile: boolean;
  /** BEP 12 tiers; a lone `announce` becomes one tier of one URL. */
  announce: string[][];
  /** BEP 19 web seeds (`url-list`). */
  urlList: string[];
  private: boolean;
  comment?: string;
  createdBy?: string;
  creationDate?: Date;
}

export function pieceLengthAt(m: Pick<Metainfo, 'pieceCount' | 'pieceLength' | 'lastPieceLength'>, index: number): number {
  // Both read every time: this is inlined into per-request code, which V8 would throw away the first time a request
  // for the last piece made a load it had never seen (bench/PROFILE.md, sixth session).
  const last = m.lastPieceLength, normal = m.pieceLength;
  return index === m.pieceCount - 1 ? last : normal;
}

export function pieceHashAt(m: Pick<Metainfo, 'pieceHashes'>, index: number): Buffer {
  return m.pieceHashes.subarray(index * 20, index * 20 + 20);
}
