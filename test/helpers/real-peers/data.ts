import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { run } from './proc.js';
import { decodeWithSpans } from '../../../src/bencode/index.js';

/** Writes `size` random bytes to `path` in 1 MiB chunks (no whole-file buffer). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'w');
  try {
    for (let off = 0; off < size; off += 1 << 20) await fh.write(randomBytes(Math.min(1 << 20, size - off)));
  } finally {
    await fh.close();
  }
}

/** Creates `root/<relpath>` for each entry; returns `root`. */
export async function writeTree(root: string, files: Record<string, number>): Promise<string> {
  for (const [rel, size] of Object.entries(files)) await writeRandomFile(join(root, rel), size);
  return root;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

/** sha256 of every regular file under `path` (or of `path` itself), keyed by path relative to it. */
export async function hashTree(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const st = await stat(path);
  if (st.isFile()) { out.set('', await sha256File(path)); return out; }
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.set(relative(path, p), await sha256File(p));
    }
  };
  await walk(path);
  return out;
}

/**
 * Throws unless `actual` holds exactly the files of `expected` with identical contents. Extra files fail
 * too: a client writing stray data (or another torrent's files) into the folder is a bug.
 */
export async function assertSameTree(expected: string, actual: string): Promise<void> {
  const [e, a] = await Promise.all([hashTree(expected), hashTree(actual)]);
  const problems: string[] = [];
  for (const [k, h] of e) {
    const got = a.get(k);
    if (got === undefined) problems.push(`missing ${k || '(file)'}`);
    else if (got !== h) problems.push(`content differs: ${k || '(file)'}`);
  }
  for (const k of a.keys()) if (!e.has(k)) problems.push(`unexpected file ${k}`);
  if (problems.length) throw new Error(`${actual} does not match ${expected}: ${problems.join('; ')}`);
}

/** A torrent made by mktorrent (needs at least one tracker). Returns the info-hash (hex). */
export function mktorrent(opts: { path: string; out: string; pieceLength: number; announce: string[] }): void {
  const log2 = Math.log2(opts.pieceLength);
  if (!Number.isInteger(log2)) throw new Error(`piece length must be a power of two: ${opts.pieceLength}`);
  run('mktorrent', ['-l', String(log2), '-o', opts.out, '-t', '2', ...opts.announce.flatMap((a) => ['-a', a]), opts.path]);
}

/** SHA-1 of the raw `info` bytes of a .torrent file, computed independently of Shoal's metainfo module. */
export function infoHashOf(torrentPath: string): string {
  const buf = readFileSync(torrentPath);
  const span = decodeWithSpans(buf, { allowUnsortedKeys: true }).spans.get('info');
  if (!span) throw new Error(`${torrentPath} has no info dictionary`);
  return createHash('sha1').update(buf.subarray(span[0], span[1])).digest('hex');
}
