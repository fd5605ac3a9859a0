/**
 * Piece hashing worker for createTorrent. Each worker owns its file descriptors and reads its jobs'
 * byte ranges of the concatenated file data synchronously: a dedicated thread gains nothing from async I/O,
 * and sync reads into one reused buffer avoid per-piece allocations.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';

export interface HashWorkerFile { path: string; length: number; offset: number }
export interface HashWorkerInit { files: HashWorkerFile[]; pieceLength: number; totalLength: number }
export interface HashJob { id: number; firstPiece: number; pieceCount: number }
export type HashWorkerMessage =
  | { id: number; hashes: Uint8Array; bytes: number }
  | { id: number; error: string; code?: string };

const BATCH_BYTES = 4 * 1024 * 1024; // read several small pieces per syscall

const init = workerData as HashWorkerInit;
const fds = new Map<number, number>();
let scratch: Buffer | undefined;

function fdFor(i: number): number {
  let fd = fds.get(i);
  if (fd === undefined) {
    fd = openSync(init.files[i]!.path, 'r');
    fds.set(i, fd);
  }
  return fd;
}

/** Index of the file containing byte `pos` (files with length 0 never contain a byte). */
function fileAt(pos: number): number {
  const files = init.files;
  let lo = 0, hi = files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (files[mid]!.offset <= pos) lo = mid; else hi = mid - 1;
  }
  while (files[lo]!.length === 0 || files[lo]!.offset + files[lo]!.length <= pos) lo++;
  return lo;
}

/** Fill dst with the concatenated data starting at byte `start`. */
function readRange(dst: Buffer, length: number, start: number): void {
  let done = 0;
  let fi = fileAt(start);
  while (done < length) {
    const f = init.files[fi]!;
    const inFile = start + done - f.offset;
    const want = Math.min(length - done, f.length - inFile);
    let got = 0;
    while (got < want) {
      const n = readSync(fdFor(fi), dst, done + got, want - got, inFile + got);
      if (n === 0) {
        const err = new Error(`file ${f.path} is shorter than ${f.length} bytes (changed while hashing?)`) as NodeJS.ErrnoException;
        err.code = 'ESHORT';
        throw err;
      }
      got += n;
    }
    done += want;
    fi++;
  }
}

function runJob(job: HashJob): HashWorkerMessage {
  const { pieceLength, totalLength } = init;
  const hashes = new Uint8Array(job.pieceCount * 20);
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / pieceLength));
  if (scratch === undefined) scratch = Buffer.allocUnsafe(perBatch * pieceLength);
  let bytes = 0;
  for (let p = 0; p < job.pieceCount; p += perBatch) {
    const n = Math.min(perBatch, job.pieceCount - p);
    const start = (job.firstPiece + p) * pieceLength;
    const len = Math.min(n * pieceLength, totalLength - start);
    readRange(scratch, len, start);
    for (let k = 0; k < n; k++) {
      const s = k * pieceLength;
      const e = Math.min(s + pieceLength, len);
      hashes.set(createHash('sha1').update(scratch.subarray(s, e)).digest(), (p + k) * 20);
    }
    bytes += len;
  }
  return { id: job.id, hashes, bytes };
}

function closeAll(): void {
  for (const fd of fds.values()) {
    try { closeSync(fd); } catch { /* already gone */ }
  }
  fds.clear();
}

parentPort!.on('message', (msg: HashJob | 'close') => {
  if (msg === 'close') {
    closeAll();
    parentPort!.close();
    return;
  }
  let reply: HashWorkerMessage;
  try {
    reply = runJob(msg);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    reply = { id: msg.id, error: err.message, ...(err.code !== undefined ? { code: err.code } : {}) };
  }
  if ('hashes' in reply) parentPort!.postMessage(reply, [reply.hashes.buffer as ArrayBuffer]);
  else parentPort!.postMessage(reply);
});
