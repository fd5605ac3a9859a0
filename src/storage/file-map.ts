/** Pure mapping between torrent byte ranges (pieces) and the files that hold them. No I/O here. */

/** The part of a TorrentFile the mapping needs: files are contiguous and in torrent order. */
export interface FileExtent { offset: number; length: number }

/** One contiguous run of a range that lives in a single file. */
export interface Segment {
  fileIndex: number;
  /** Byte offset inside the file. */
  fileOffset: number;
  length: number;
  /** Byte offset inside the caller's buffer for the whole range. */
  bufferOffset: number;
}

/**
 * Index of the first file whose end lies past `offset`, i.e. the file holding byte `offset`
 * (zero-length files end where they start, so they are never returned for a byte they cannot hold).
 * Returns files.length when offset is at or past the end.
 */
export function fileIndexAt(files: readonly FileExtent[], offset: number): number {
  let lo = 0;
  let hi = files.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const f = files[mid]!;
    if (f.offset + f.length > offset) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function totalLength(files: readonly FileExtent[]): number {
  const last = files[files.length - 1];
  return last ? last.offset + last.length : 0;
}

/**
 * Split the torrent range [offset, offset+length) into per-file segments, in order, covering every byte
 * exactly once. Zero-length files produce no segment. O(log files + segments).
 */
export function segmentsForRange(files: readonly FileExtent[], offset: number, length: number): Segment[] {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > totalLength(files)) {
    throw new RangeError(`range ${offset}+${length} is outside the torrent (${totalLength(files)} bytes)`);
  }
  const out: Segment[] = [];
  if (length === 0) return out;
  const end = offset + length;
  let pos = offset;
  for (let i = fileIndexAt(files, offset); pos < end && i < files.length; i++) {
    const f = files[i]!;
    if (f.length === 0) continue;
    const fileEnd = f.offset + f.length;
    const n = Math.min(fileEnd, end) - pos;
    out.push({ fileIndex: i, fileOffset: pos - f.offset, length: n, bufferOffset: pos - offset });
    pos += n;
  }
  return out;
}

/** First and last (inclusive) piece a non-empty file overlaps, or null for a zero-length file. */
export function pieceSpanOfFile(file: FileExtent, pieceLength: number): [first: number, last: number] | null {
  if (file.length === 0) return null;
  return [Math.floor(file.offset / pieceLength), Math.floor((file.offset + file.length - 1) / pieceLength)];
}

/** Torrent byte range of piece `index`. */
export function pieceRange(m: { pieceLength: number; pieceCount: number; lastPieceLength: number }, index: number): { offset: number; length: number } {
  return { offset: index * m.pieceLength, length: index === m.pieceCount - 1 ? m.lastPieceLength : m.pieceLength };
}
