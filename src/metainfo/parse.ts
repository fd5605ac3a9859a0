import { readFile } from 'node:fs/promises';
import { BencodeLimitError, decodeWithSpans, encode, isDict, type BDict, type BValue } from '../bencode/index.js';
import { ShoalError } from '../util/errors.js';
import { sha1 } from '../util/sha1.js';
import { checkPathComponents, checkTorrentName } from './paths.js';
import type { Metainfo, TorrentFile } from './types.js';

export const MAX_PIECE_LENGTH = 256 * 1024 * 1024;

/**
 * Bounds on what one .torrent may ask of us. Every per-file structure (paths, stats, open handles, the
 * piece-to-file map) grows with the file count, so a small hostile file must not make us build millions of
 * them: a 1,000,000-file torrent (45 MB) used to take 24 s and 1 GB just to parse, and minutes and gigabytes
 * to open. The defaults are far above real torrents (the largest public ones hold tens of thousands of files).
 */
export interface ParseOptions {
  /** Most files (padding files included) a torrent may list. Default 100 000. */
  maxFiles?: number;
  /** Most components in one file path, the torrent name not counted. Default 64. */
  maxPathDepth?: number;
  /** Longest file path in UTF-8 bytes, name and '/' separators included. Default 4096 (Linux PATH_MAX). */
  maxPathBytes?: number;
}

export const DEFAULT_MAX_FILES = 100_000;
export const DEFAULT_MAX_PATH_DEPTH = 64;
export const DEFAULT_MAX_PATH_BYTES = 4096;

interface Limits { maxFiles: number; maxPathDepth: number; maxPathBytes: number }

function limitsOf(o: ParseOptions | undefined): Limits {
  const pick = (v: number | undefined, d: number, what: string): number => {
    if (v === undefined) return d;
    if (!Number.isSafeInteger(v) || v < 1) throw new ShoalError('EUSAGE', `parse option ${what} must be a positive integer, got ${v}`);
    return v;
  };
  return {
    maxFiles: pick(o?.maxFiles, DEFAULT_MAX_FILES, 'maxFiles'),
    maxPathDepth: pick(o?.maxPathDepth, DEFAULT_MAX_PATH_DEPTH, 'maxPathDepth'),
    maxPathBytes: pick(o?.maxPathBytes, DEFAULT_MAX_PATH_BYTES, 'maxPathBytes'),
  };
}

function bad(message: string): never {
  throw new ShoalError('EMETAINFO', `torrent: ${message}`);
}

function typeName(v: BValue | undefined): string {
  if (v === undefined) return 'missing';
  if (typeof v === 'number') return 'an integer';
  if (Buffer.isBuffer(v)) return 'a string';
  return Array.isArray(v) ? 'a list' : 'a dict';
}

function str(v: BValue | undefined): string | undefined {
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

/** BEP 3 `name`/`path` are raw bytes in an unspecified encoding; `.utf-8` variants win when present. */
function preferUtf8(d: BDict, key: string): BValue | undefined {
  const utf8 = d[`${key}.utf-8`];
  const plain = d[key];
  // A mistyped variant must not hide a usable plain field (and the error then names the plain key).
  if (utf8 === undefined || (plain !== undefined && Array.isArray(utf8) !== Array.isArray(plain))) return plain;
  if (plain !== undefined && Buffer.isBuffer(utf8) !== Buffer.isBuffer(plain)) return plain;
  return utf8;
}

function nonNegInt(v: BValue | undefined, what: string): number {
  if (typeof v !== 'number') bad(`${what} is ${typeName(v)}, expected an integer`);
  if (v < 0) bad(`${what} ${v} is negative`);
  return v;
}

function parseFiles(info: BDict, nameBytes: number, lim: Limits): { files: TorrentFile[]; length: number } {
  let offset = 0;
  if (info['files'] !== undefined) {
    if (info['length'] !== undefined) bad('info has both "length" and "files"');
    const list = info['files'];
    if (!Array.isArray(list)) bad(`info.files is ${typeName(list)}, expected a list`);
    if (list.length === 0) bad('info.files is empty');
    if (list.length > lim.maxFiles) bad(`${list.length} files is more than the limit of ${lim.maxFiles} (parse option maxFiles)`);
    const files = new Array<TorrentFile>(list.length);
    const seen = new Set<string>();
    for (let i = 0; i < list.length; i++) {
      const f = list[i];
      if (!isDict(f)) bad(`info.files[${i}] is ${typeName(f)}, expected a dict`);
      const length = nonNegInt(f['length'], `info.files[${i}].length`);
      const rawPath = preferUtf8(f, 'path');
      if (!Array.isArray(rawPath)) bad(`info.files[${i}].path is ${typeName(rawPath)}, expected a list`);
      if (rawPath.length > lim.maxPathDepth) {
        bad(`info.files[${i}].path has ${rawPath.length} components, more than the limit of ${lim.maxPathDepth} (parse option maxPathDepth)`);
      }
      let bytes = nameBytes;
      const path = new Array<string>(rawPath.length);
      for (let j = 0; j < rawPath.length; j++) {
        const c = rawPath[j];
        if (!Buffer.isBuffer(c)) bad(`info.files[${i}].path[${j}] is ${typeName(c)}, expected a string`);
        bytes += 1 + c.length;
        path[j] = c.toString('utf8');
      }
      if (bytes > lim.maxPathBytes) {
        bad(`info.files[${i}].path is ${bytes} bytes long with the name, more than the limit of ${lim.maxPathBytes} (parse option maxPathBytes)`);
      }
      checkPathComponents(path);
      const attr = str(f['attr']);
      const padding = attr !== undefined && attr.includes('p');
      if (!padding) {
        // Padding files may share a path (".pad/N"); they are never written, so they cannot collide.
        const key = path.join('/');
        if (seen.has(key)) throw new ShoalError('EPATH', `torrent: file path ${JSON.stringify(key)} appears more than once`);
        seen.add(key);
      }
      files[i] = { path, length, offset, padding };
      offset += length;
      if (offset > Number.MAX_SAFE_INTEGER) bad('total length is too large');
    }
    return { files, length: offset };
  }
  const length = nonNegInt(info['length'], 'info.length');
  return { files: [{ path: [], length, offset: 0, padding: false }], length };
}

function parseAnnounce(root: BDict): string[][] {
  const tiers: string[][] = [];
  const list = root['announce-list'];
  if (Array.isArray(list)) {
    for (const tier of list) {
      if (!Array.isArray(tier)) continue;
      const urls = tier.map(str).filter((u): u is string => u !== undefined && u !== '');
      if (urls.length > 0) tiers.push(urls);
    }
  }
  // BEP 12: a usable announce-list replaces announce.
  if (tiers.length === 0) {
    const single = str(root['announce']);
    if (single) tiers.push([single]);
  }
  return tiers;
}

function parseUrlList(v: BValue | undefined): string[] {
  const items = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return items.map(str).filter((u): u is string => u !== undefined && u !== '');
}

/**
 * Parse a v1 .torrent. Throws ShoalError: EBENCODE (syntax), EMETAINFO (structure, or past a ParseOptions
 * limit), EPATH (unsafe file names).
 */
export function parseTorrent(input: Uint8Array, opts?: ParseOptions): Metainfo {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const lim = limitsOf(opts);
  let decoded: ReturnType<typeof decodeWithSpans>;
  try {
    // The files list is the only list that is legitimately long. The value budget (3 million, as libtorrent's
    // token limit, or 30 per allowed file if more) bounds memory for many long-but-legal lists; both limits are
    // checked by a scan that allocates nothing, so an oversized torrent is refused before any of it is built.
    decoded = decodeWithSpans(buf, { maxListLength: lim.maxFiles, maxValues: Math.max(3_000_000, lim.maxFiles * 30) });
  } catch (e) {
    if (e instanceof BencodeLimitError) {
      bad(e.limit === 'maxListLength'
        ? `a list has more than ${lim.maxFiles} entries: more files than the limit of ${lim.maxFiles} (parse option maxFiles)`
        : `too large: ${e.message.replace(/^bencode: /, '')} (the budget grows with parse option maxFiles)`);
    }
    throw e;
  }
  const { value: root, spans } = decoded;
  const info = root['info'];
  if (!isDict(info)) bad(info === undefined ? 'missing info dictionary' : `info is ${typeName(info)}, expected a dict`);
  const span = spans.get('info')!;
  const infoBuffer = Buffer.from(buf.subarray(span[0], span[1]));
  const infoHash = sha1(infoBuffer);

  const rawName = preferUtf8(info, 'name');
  if (!Buffer.isBuffer(rawName)) bad(`info.name is ${typeName(rawName)}, expected a string`);
  const name = rawName.toString('utf8');
  checkTorrentName(name);

  const pieceLength = info['piece length'];
  if (typeof pieceLength !== 'number') bad(`info["piece length"] is ${typeName(pieceLength)}, expected an integer`);
  if (pieceLength <= 0) bad(`info["piece length"] ${pieceLength} is not positive`);
  if (pieceLength > MAX_PIECE_LENGTH) bad(`info["piece length"] ${pieceLength} is larger than 256 MiB`);

  const pieces = info['pieces'];
  if (!Buffer.isBuffer(pieces)) bad(`info.pieces is ${typeName(pieces)}, expected a string`);
  if (pieces.length % 20 !== 0) bad(`info.pieces length ${pieces.length} is not a multiple of 20`);

  const { files, length } = parseFiles(info, Buffer.byteLength(name, 'utf8'), lim);
  const multiFile = info['files'] !== undefined;
  if (!multiFile) files[0]!.path = [name];
  if (length === 0) bad('total length is 0');
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieces.length / 20 !== pieceCount) {
    bad(`info.pieces holds ${pieces.length / 20} hashes but ${length} bytes in ${pieceLength}-byte pieces need ${pieceCount}`);
  }

  const meta: Metainfo = {
    infoHash,
    infoHashHex: infoHash.toString('hex'),
    infoBuffer,
    name,
    pieceLength,
    pieceCount,
    pieceHashes: pieces,
    length,
    lastPieceLength: length - (pieceCount - 1) * pieceLength,
    files,
    multiFile,
    announce: parseAnnounce(root),
    urlList: parseUrlList(root['url-list']),
    private: info['private'] === 1,
  };
  const comment = str(preferUtf8(root, 'comment'));
  if (comment !== undefined) meta.comment = comment;
  const createdBy = str(root['created by']);
  if (createdBy !== undefined) meta.createdBy = createdBy;
  const date = root['creation date'];
  if (typeof date === 'number' && date > 0 && date * 1000 <= 8.64e15) meta.creationDate = new Date(date * 1000);
  return meta;
}

export async function readTorrentFile(file: string, opts?: ParseOptions): Promise<Metainfo> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ShoalError('EUSAGE', `cannot read torrent file ${file}: ${code}`, { cause: e });
  }
  return parseTorrent(buf, opts);
}

/** Announce tiers as the `announce` / `announce-list` pair: the list only when it says more than the single URL. */
export function announceFields(tiers: string[][]): { announce?: string; 'announce-list'?: string[][] } {
  const clean = tiers.map((t) => t.filter((u) => u !== '')).filter((t) => t.length > 0);
  if (clean.length === 0) return {};
  const out: { announce?: string; 'announce-list'?: string[][] } = { announce: clean[0]![0]! };
  if (clean.length > 1 || clean[0]!.length > 1) out['announce-list'] = clean;
  return out;
}

/** Re-encode a Metainfo; the info dict is spliced in byte for byte so the info-hash cannot change. */
export function encodeTorrent(meta: Metainfo): Buffer {
  const fields: Record<string, unknown> = {
    ...announceFields(meta.announce),
    comment: meta.comment,
    'created by': meta.createdBy,
    'creation date': meta.creationDate ? Math.floor(meta.creationDate.getTime() / 1000) : undefined,
    'url-list': meta.urlList.length > 0 ? meta.urlList : undefined,
  };
  const keys = Object.keys(fields).filter((k) => fields[k] !== undefined);
  keys.push('info');
  keys.sort(); // ASCII keys: JS order is byte order
  const parts: Buffer[] = [Buffer.from('d')];
  for (const k of keys) {
    parts.push(encode(k));
    parts.push(k === 'info' ? meta.infoBuffer : encode(fields[k]));
  }
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}
