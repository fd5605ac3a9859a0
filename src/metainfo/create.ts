import { lstat, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { encode } from '../bencode/index.js';
import { ShoalError } from '../util/errors.js';
import { announceFields, MAX_PIECE_LENGTH, parseTorrent } from './parse.js';
import { checkPathComponents } from './paths.js';
import type { HashJob, HashWorkerFile, HashWorkerInit, HashWorkerMessage } from './hash-worker.js';
import type { Metainfo } from './types.js';

export interface CreateOptions {
  name?: string;
  pieceLength?: number;
  /** Tiers, or a flat list meaning one tier per URL (tried in order, as mktorrent and libtorrent do). */
  announce?: string[][] | string[];
  urlList?: string[];
  private?: boolean;
  comment?: string;
  createdBy?: string;
  /** Defaults to now; `false` omits the field (for reproducible output). */
  creationDate?: Date | false;
  threads?: number;
  onProgress?: (hashedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
  /** Called for entries left out: symlinks to directories and special files (sockets, FIFOs, devices). */
  onSkip?: (file: string, reason: string) => void;
}

const MIN_PIECE = 16 * 1024;
const MAX_PIECE = 16 * 1024 * 1024;
const JOB_BYTES = 16 * 1024 * 1024;

/**
 * The smallest power of two from 16 KiB that keeps the piece count at or below 2000, capped at 16 MiB.
 * Unclamped results therefore give 1001..2000 pieces: few enough that the piece hashes (20 bytes each)
 * keep the .torrent small, many enough that peers can trade pieces early and a hash failure costs little.
 */
export function choosePieceLength(totalBytes: number): number {
  let p = MIN_PIECE;
  while (p < MAX_PIECE && totalBytes / p > 2000) p *= 2;
  return p;
}

interface Entry { abs: string; rel: string[]; length: number }

/** Raw-byte order of the '/'-joined path, the order mktorrent uses, so identical trees give identical torrents. */
function compareRel(a: Entry, b: Entry): number {
  return Buffer.compare(Buffer.from(a.rel.join('/')), Buffer.from(b.rel.join('/')));
}

async function walk(dir: string, rel: string[], out: Entry[], onSkip?: CreateOptions['onSkip']): Promise<void> {
  const names = await readdir(dir);
  for (const name of names) {
    const abs = path.join(dir, name);
    const l = await lstat(abs);
    if (l.isDirectory()) {
      await walk(abs, [...rel, name], out, onSkip);
    } else if (l.isFile()) {
      out.push({ abs, rel: [...rel, name], length: l.size });
    } else if (l.isSymbolicLink()) {
      // Follow links to regular files only: links to directories could loop or leave the tree.
      const s = await stat(abs).catch(() => undefined);
      if (s?.isFile()) out.push({ abs, rel: [...rel, name], length: s.size });
      else onSkip?.(abs, s === undefined ? 'dangling symlink' : 'symlink to a non-file');
    } else {
      onSkip?.(abs, 'not a regular file');
    }
  }
}

async function collect(root: string, onSkip?: CreateOptions['onSkip']): Promise<{ entries: Entry[]; multiFile: boolean }> {
  const s = await stat(root).catch((e: NodeJS.ErrnoException) => {
    throw new ShoalError('EUSAGE', `cannot read ${root}: ${e.code ?? e.message}`, { cause: e });
  });
  if (s.isFile()) return { entries: [{ abs: root, rel: [], length: s.size }], multiFile: false };
  if (!s.isDirectory()) throw new ShoalError('EUSAGE', `${root} is neither a file nor a directory`);
  const entries: Entry[] = [];
  try {
    await walk(root, [], entries, onSkip);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ShoalError('EUSAGE', `cannot read ${err.path ?? root}: ${err.code ?? err.message}`, { cause: e });
  }
  entries.sort(compareRel);
  return { entries, multiFile: true };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/** Hash all pieces with a pool of workers; jobs of ~16 MiB are handed out as workers free up. */
export function hashPieces(files: HashWorkerFile[], pieceLength: number, totalLength: number,
  opts: Pick<CreateOptions, 'threads' | 'onProgress' | 'signal'>): Promise<Buffer> {
  const pieceCount = Math.ceil(totalLength / pieceLength);
  const threads = Math.max(1, Math.floor(opts.threads ?? os.availableParallelism()));
  // Several jobs per worker so a slow worker does not hold up the end, and progress moves smoothly.
  const perJob = Math.max(1, Math.min(Math.floor(JOB_BYTES / pieceLength), Math.ceil(pieceCount / (threads * 4))));
  const jobs: HashJob[] = [];
  for (let first = 0, id = 0; first < pieceCount; first += perJob, id++) {
    jobs.push({ id, firstPiece: first, pieceCount: Math.min(perJob, pieceCount - first) });
  }
  const out = Buffer.alloc(pieceCount * 20);
  const init: HashWorkerInit = { files: files.filter((f) => f.length > 0), pieceLength, totalLength };
  const workerUrl = new URL('./hash-worker.js', import.meta.url);

  return new Promise<Buffer>((resolve, reject) => {
    const workers: Worker[] = [];
    let next = 0, completed = 0, hashed = 0, settled = false;

    const shutdown = (): void => {
      opts.signal?.removeEventListener('abort', onAbort);
      // Ask rather than terminate: the worker closes its own file descriptors first.
      for (const w of workers) w.postMessage('close');
    };
    const finish = (err: unknown): void => {
      if (settled) return;
      settled = true;
      shutdown();
      if (err === undefined) resolve(out); else reject(err);
    };
    const onAbort = (): void => finish(abortReason(opts.signal!));
    if (opts.signal?.aborted) { finish(abortReason(opts.signal)); return; }
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const feed = (w: Worker): void => {
      if (settled) return;
      if (next < jobs.length) w.postMessage(jobs[next++]);
    };
    const count = Math.min(threads, jobs.length);
    for (let i = 0; i < count; i++) {
      const w = new Worker(workerUrl, { workerData: init });
      workers.push(w);
      w.on('message', (m: HashWorkerMessage) => {
        if (settled) return;
        if ('error' in m) {
          finish(new ShoalError('ESTORAGE', `hashing failed: ${m.error}`));
          return;
        }
        out.set(m.hashes, jobs[m.id]!.firstPiece * 20);
        hashed += m.bytes;
        completed++;
        opts.onProgress?.(hashed, totalLength);
        if (completed === jobs.length) finish(undefined);
        else feed(w);
      });
      w.on('error', (e) => finish(new ShoalError('ESTORAGE', `hashing worker failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => {
        if (!settled) finish(new ShoalError('ESTORAGE', `hashing worker exited early (code ${code})`));
      });
      feed(w);
    }
  });
}

function tiersOf(announce: CreateOptions['announce']): string[][] {
  if (!announce) return [];
  return announce.map((t) => (Array.isArray(t) ? t : [t]));
}

/** Build a v1 .torrent for a file or a directory tree. */
export async function createTorrent(target: string, opts: CreateOptions = {}): Promise<{ torrent: Buffer; meta: Metainfo }> {
  if (opts.signal?.aborted) throw abortReason(opts.signal);
  const root = path.resolve(target);
  const { entries, multiFile } = await collect(root, opts.onSkip);
  const total = entries.reduce((n, e) => n + e.length, 0);
  if (entries.length === 0) throw new ShoalError('EUSAGE', `nothing to share: ${target} contains no files`);
  if (total === 0) throw new ShoalError('EUSAGE', `nothing to share: ${target} contains only empty files`);

  const name = opts.name ?? path.basename(root);
  checkPathComponents([name], 'name');
  for (const e of entries) if (multiFile) checkPathComponents(e.rel);

  const pieceLength = opts.pieceLength ?? choosePieceLength(total);
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0 || pieceLength > MAX_PIECE_LENGTH) {
    throw new ShoalError('EUSAGE', `piece length ${pieceLength} must be a positive integer up to 256 MiB`);
  }

  let offset = 0;
  const hashFiles: HashWorkerFile[] = entries.map((e) => {
    const f = { path: e.abs, length: e.length, offset };
    offset += e.length;
    return f;
  });
  const pieces = await hashPieces(hashFiles, pieceLength, total, opts);

  const info: Record<string, unknown> = {
    name,
    'piece length': pieceLength,
    pieces,
    private: opts.private ? 1 : undefined,
  };
  if (multiFile) info['files'] = entries.map((e) => ({ length: e.length, path: e.rel }));
  else info['length'] = total;

  const date = opts.creationDate === undefined ? new Date() : opts.creationDate;
  const torrent = encode({
    ...announceFields(tiersOf(opts.announce)),
    comment: opts.comment,
    'created by': opts.createdBy ?? 'Shoal/0.1.0',
    'creation date': date === false ? undefined : Math.floor(date.getTime() / 1000),
    'url-list': opts.urlList && opts.urlList.length > 0 ? opts.urlList : undefined,
    info,
  });
  return { torrent, meta: parseTorrent(torrent) };
}
