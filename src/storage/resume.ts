import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { decode, encode, isDict, type BValue } from '../bencode/index.js';
import { ShoalError } from '../util/errors.js';
import { sha1 } from '../util/sha1.js';

/**
 * What a file looked like when the resume was saved. A file that did not exist (or was not a regular file)
 * is recorded as length -1, mtime 0, so "exists now but not then" is a mismatch.
 */
export interface FileStamp { length: number; mtime: number }

export const MISSING: FileStamp = Object.freeze({ length: -1, mtime: 0 });

/**
 * On-disk resume record (bencoded dict):
 *   version: 2, 'info-hash': 20 bytes, 'piece-length': int, pieces: bitfield bytes (BEP 3 order),
 *   files: [{ length, mtime (ms, integer) }] one per torrent file, parts: { length, mtime } of the part file,
 *   sha1: SHA-1 of the bencoding of the same dict without `sha1`.
 * The checksum exists because a flipped bit in `pieces` would otherwise make a restart trust a piece that is
 * not on disk (files unchanged, so nothing else catches it). Version-1 records carry no checksum and cannot be
 * verified, so they are refused like corrupt ones: the caller rechecks from disk (one rehash after upgrading).
 */
export interface ResumeData {
  infoHash: Buffer;
  pieceLength: number;
  pieces: Buffer;
  files: FileStamp[];
  parts: FileStamp;
}

export const RESUME_VERSION = 2;

/** The record always ends with these keys (sorted last), so the checksum sits at a fixed place from the end. */
const SUM_KEY = Buffer.from('4:sha120:');
const TAIL = Buffer.from(`7:versioni${RESUME_VERSION}ee`);

function stampText(f: FileStamp): string {
  if (!Number.isSafeInteger(f.length) || !Number.isSafeInteger(f.mtime)) throw new ShoalError('ESTORAGE', 'resume data: invalid file stamp');
  return `d6:lengthi${f.length}e5:mtimei${f.mtime}ee`;
}

/**
 * Written by hand rather than through the generic encoder: a record holds one stamp per file, is rewritten
 * every few seconds while downloading, and a 100 000-file torrent made the generic path the main cost.
 * The bytes are canonical bencode all the same (keys in order), which decodeResume checks.
 */
export function encodeResume(d: ResumeData): Buffer {
  const files = d.files.map(stampText).join('');
  const body = Buffer.concat([
    Buffer.from(`d5:filesl${files}e9:info-hash`, 'latin1'),
    encode(d.infoHash),
    Buffer.from(`5:parts${stampText(d.parts)}12:piece-lengthi${d.pieceLength}e6:pieces`, 'latin1'),
    encode(d.pieces),
  ]);
  return Buffer.concat([body, SUM_KEY, sha1(Buffer.concat([body, TAIL])), TAIL]);
}

/** The checksum covers every byte except its own entry, i.e. the record as it would be without `sha1`. */
function checksumMatches(buf: Buffer): boolean {
  const tailAt = buf.length - TAIL.length;
  const keyAt = tailAt - 20 - SUM_KEY.length;
  if (keyAt < 1 || !buf.subarray(tailAt).equals(TAIL) || !buf.subarray(keyAt, keyAt + SUM_KEY.length).equals(SUM_KEY)) return false;
  const sum = buf.subarray(keyAt + SUM_KEY.length, tailAt);
  return sha1(Buffer.concat([buf.subarray(0, keyAt), TAIL])).equals(sum);
}

function bad(what: string): never {
  throw new ShoalError('ESTORAGE', `resume data is corrupt: ${what}`);
}

function stamp(v: BValue | undefined, what: string): FileStamp {
  if (!isDict(v)) bad(`${what} is not a dictionary`);
  const { length, mtime } = v;
  if (typeof length !== 'number' || typeof mtime !== 'number' || length < -1) bad(`${what} has no valid length/mtime`);
  return { length, mtime };
}

/**
 * Parse resume bytes; throws ShoalError ESTORAGE (or EBENCODE) when they are not a valid, checksummed
 * version-2 record. Never trust a record this rejects: treat it as absent.
 */
export function decodeResume(buf: Uint8Array): ResumeData {
  const v = decode(buf, { maxLength: 64 * 1024 * 1024 });
  if (!isDict(v)) bad('top level is not a dictionary');
  if (v['version'] === 1) bad('version 1 has no checksum and cannot be verified');
  if (v['version'] !== RESUME_VERSION) bad(`unsupported version ${String(v['version'])}`);
  if (!checksumMatches(Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength))) bad('checksum mismatch');
  const infoHash = v['info-hash'];
  const pieceLength = v['piece-length'];
  const pieces = v['pieces'];
  const files = v['files'];
  if (!Buffer.isBuffer(infoHash) || infoHash.length !== 20) bad('info-hash is not 20 bytes');
  if (typeof pieceLength !== 'number' || pieceLength <= 0) bad('piece-length is not a positive integer');
  if (!Buffer.isBuffer(pieces)) bad('pieces is not a byte string');
  if (!Array.isArray(files)) bad('files is not a list');
  return {
    infoHash,
    pieceLength,
    pieces,
    files: files.map((f, i) => stamp(f, `files[${i}]`)),
    parts: v['parts'] === undefined ? MISSING : stamp(v['parts'], 'parts'),
  };
}

/** Returns null when the file does not exist; throws when it exists but cannot be read or parsed. */
export async function loadResumeFile(path: string): Promise<ResumeData | null> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return decodeResume(buf);
}

/**
 * Atomically replace the resume file: write a temp file, fsync it, rename over the old one, fsync the directory.
 * A crash at any point leaves either the old or the new complete record, never a torn one.
 * The caller must have made the data files durable before calling, so the record never gets ahead of the data.
 */
export async function saveResumeFile(path: string, data: ResumeData): Promise<void> {
  const dir = dirname(path);
  await fsp.mkdir(dir, { recursive: true });
  // A fixed name, so a temp file left by a killed process is simply overwritten next time.
  const tmp = `${path}.tmp`;
  const fh = await fsp.open(tmp, 'w', 0o644);
  try {
    const bytes = encodeResume(data);
    let off = 0;
    while (off < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, off);
      if (bytesWritten === 0) throw new Error('short write');
      off += bytesWritten;
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  // Make the rename itself durable; some filesystems refuse fsync on directories, which is harmless here.
  try {
    const d = await fsp.open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  } catch { /* best effort */ }
}
