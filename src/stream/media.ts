import type { FileHandle } from 'node:fs/promises';
import { read as fsRead } from 'node:fs';
import { extensionOf } from './content-type.js';

/**
 * What a player needs first from a media file, so a reader can fetch those pieces before the rest.
 *
 * MP4/MOV: the `moov` box (the sample index) must be read before any frame can be decoded. Encoders write it
 * after the media data (`mdat`) unless told otherwise (`-movflags +faststart`), so a player opening such a file
 * reads the head, jumps to the end for `moov`, then comes back. Matroska/WebM: the Cues (the seek index) are
 * usually written at the end too; playback starts without them but the first seek jumps there. AVI: `idx1` ditto.
 */

/** Reads up to `length` bytes at `position`; fewer only at end of file. */
export type ReadAt = (position: number, length: number) => Promise<Buffer>;

export type MoovPosition = 'start' | 'end' | 'unknown';

export interface Mp4Box {
  type: string;
  offset: number;
  /** Whole box, header included. */
  size: number;
}

/** Top-level box walks stop here: real files have a handful (a fragmented MP4 has its moov first, where the walk stops). */
export const MAX_TOP_LEVEL_BOXES = 10_000;

/** Box types seen at the top level of MP4/MOV/3GP files; the first box must be one of them. */
const TOP_LEVEL = new Set(['ftyp', 'styp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pdin', 'uuid', 'meta', 'sidx', 'moof', 'mfra', 'pnot', 'junk']);
const BOX_TYPE = /^[\x20-\x7e]{4}$/;

/**
 * The top-level boxes of an ISO BMFF (MP4/MOV) file, or null when the bytes are not a well-formed box sequence.
 * Reads only box headers (8 or 16 bytes each), so it is cheap even on huge files.
 */
export async function mp4TopLevelBoxes(source: ReadAt | FileHandle | number, size: number): Promise<Mp4Box[] | null> {
  const boxes: Mp4Box[] = [];
  const ok = await walkBoxes(toReadAt(source), size, (b) => { boxes.push(b); return true; });
  return ok ? boxes : null;
}

/**
 * Where the `moov` box is: 'start' when it precedes the media data (players can start at once),
 * 'end' when the media data comes first (players must fetch the end of the file before playing),
 * 'unknown' when the file is not a well-formed MP4 or has no moov.
 */
export async function mp4MoovPosition(source: ReadAt | FileHandle | number, size: number): Promise<MoovPosition> {
  let mediaSeen = false;
  let found: MoovPosition = 'unknown';
  // Stops at the moov: what follows it (fragments, trailing junk) does not change the answer.
  await walkBoxes(toReadAt(source), size, (b) => {
    if (b.type === 'moov') { found = mediaSeen ? 'end' : 'start'; return false; }
    if (b.type === 'mdat') mediaSeen = true;
    return true;
  });
  return found;
}

/** Visits top-level boxes in order until `visit` returns false; false when a malformed box is met first. */
async function walkBoxes(readAt: ReadAt, size: number, visit: (box: Mp4Box) => boolean): Promise<boolean> {
  let pos = 0;
  // Every box is at least 8 bytes, so pos strictly increases; the count bounds hostile files of tiny boxes.
  for (let count = 0; pos < size; count++) {
    if (count >= MAX_TOP_LEVEL_BOXES || size - pos < 8) return false;
    const head = await readAt(pos, Math.min(16, size - pos));
    if (head.length < 8) return false;
    let boxSize = head.readUInt32BE(0);
    const type = head.toString('latin1', 4, 8);
    if (!BOX_TYPE.test(type) || (count === 0 && !TOP_LEVEL.has(type))) return false;
    let header = 8;
    if (boxSize === 1) {
      // 64-bit largesize follows the type
      if (head.length < 16) return false;
      const large = head.readBigUInt64BE(8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) return false;
      boxSize = Number(large);
      header = 16;
    } else if (boxSize === 0) {
      boxSize = size - pos; // extends to the end of the file
    }
    if (boxSize < header || boxSize > size - pos) return false;
    if (!visit({ type, offset: pos, size: boxSize })) return true;
    pos += boxSize;
  }
  return true;
}

function toReadAt(source: ReadAt | FileHandle | number): ReadAt {
  if (typeof source === 'function') return source;
  if (typeof source === 'number') {
    const fd = source;
    return (position, length) => new Promise((resolve, reject) => {
      const buf = Buffer.alloc(length);
      fsRead(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(buf.subarray(0, n))));
    });
  }
  const fh = source;
  return async (position, length) => {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  };
}

export type MediaContainer = 'mp4' | 'matroska' | 'avi' | 'other';

const CONTAINERS: Readonly<Record<string, MediaContainer>> = {
  mp4: 'mp4', m4v: 'mp4', m4a: 'mp4', m4b: 'mp4', mov: 'mp4', '3gp': 'mp4',
  mkv: 'matroska', mka: 'matroska', webm: 'matroska',
  avi: 'avi',
};

/** The container a file name suggests. */
export function mediaContainerOf(path: string): MediaContainer {
  return CONTAINERS[extensionOf(path)] ?? 'other';
}

/** MP4/MOV files whose moov position `shoal create` checks. */
export function isMp4Video(path: string): boolean {
  return ['mp4', 'm4v', 'mov'].includes(extensionOf(path));
}

/** Pieces first..last, inclusive, in torrent piece indices. */
export interface PieceRange { first: number; last: number }

const MiB = 1024 * 1024;
/**
 * The head a player reads before the first frame: container headers, track info, a faststart moov,
 * Matroska attachments (fonts), and the first frames. 2 MiB covers these in ordinary files.
 */
export const HEAD_BYTES = 2 * MiB;

/**
 * The tail to fetch with the head when the index is at the end.
 * MP4: moov is about 12-20 bytes per sample (half a million samples in a two-hour film: 6-10 MB), roughly
 * 0.2-0.4% of the file, so 1/256 of the length, at least 1 MiB, at most 16 MiB.
 * Matroska/AVI: Cues and idx1 are a few tens of KiB even for long films; 1 MiB leaves room for trailing tags.
 */
export function tailBytes(length: number, container: MediaContainer): number {
  if (container === 'mp4') return Math.min(16 * MiB, Math.max(MiB, Math.ceil(length / 256)));
  if (container === 'matroska' || container === 'avi') return MiB;
  return 0;
}

/**
 * Which pieces to fetch before the rest when a player opens this file: the head, and the tail when the
 * container keeps its index at the end (an MP4 whose moov is known to be at the start needs no tail).
 * `file.offset` is the file's first byte in the torrent. Ranges are ascending and do not overlap.
 */
export function mediaHeadTailPieces(
  file: { offset: number; length: number }, pieceLength: number, container: MediaContainer, moov: MoovPosition = 'unknown',
): PieceRange[] {
  if (file.length <= 0) return [];
  const pieceOf = (byte: number): number => Math.floor(byte / pieceLength);
  const fileEnd = file.offset + file.length - 1;
  const head: PieceRange = { first: pieceOf(file.offset), last: pieceOf(file.offset + Math.min(file.length, HEAD_BYTES) - 1) };
  const tailLen = container === 'mp4' && moov === 'start' ? 0 : Math.min(file.length, tailBytes(file.length, container));
  if (tailLen === 0) return [head];
  const tail: PieceRange = { first: pieceOf(fileEnd - tailLen + 1), last: pieceOf(fileEnd) };
  if (tail.first <= head.last + 1) return [{ first: head.first, last: tail.last }];
  return [head, tail];
}

/** What the head of an MP4 file says about where a player reads its index (see `mp4LayoutFromHead`). */
export type Mp4Layout =
  | { moov: 'start' }
  /** `indexAt`: file offset of the first top-level box after the media data; the moov is there or after it. */
  | { moov: 'end'; indexAt: number };

/**
 * Where an MP4's index is, from its first bytes only (a streaming reader has the head long before the rest):
 * walks the top-level box headers that lie inside `head`. A moov before any mdat means the index is at the start;
 * an mdat whose end lies beyond `head` with no moov before it means the index is in the file's tail, from the end
 * of that mdat (exact, so a player's jump to the index can be fetched ahead of it). Null when the bytes are not a
 * well-formed MP4 or do not tell.
 */
export function mp4LayoutFromHead(head: Buffer, fileLength: number): Mp4Layout | null {
  let pos = 0;
  let mediaSeen = false;
  for (let count = 0; count < MAX_TOP_LEVEL_BOXES && pos < fileLength; count++) {
    if (pos + 8 > head.length) return mediaSeen ? { moov: 'end', indexAt: pos } : null;
    let boxSize = head.readUInt32BE(pos);
    const type = head.toString('latin1', pos + 4, pos + 8);
    if (!BOX_TYPE.test(type) || (count === 0 && !TOP_LEVEL.has(type))) return null;
    let header = 8;
    if (boxSize === 1) {
      if (pos + 16 > head.length) return null;
      const large = head.readBigUInt64BE(pos + 8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) return null;
      boxSize = Number(large);
      header = 16;
    } else if (boxSize === 0) {
      boxSize = fileLength - pos;
    }
    if (boxSize < header || boxSize > fileLength - pos) return null;
    if (type === 'moov') return mediaSeen ? { moov: 'end', indexAt: pos } : { moov: 'start' };
    if (type === 'mdat') mediaSeen = true;
    pos += boxSize;
  }
  return null;
}
