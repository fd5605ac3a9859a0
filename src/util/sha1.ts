import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * SHA-1 off the event loop. WebCrypto's digest runs on the calling thread in Node 20, so piece verification
 * goes to a small pool of worker threads instead. `sha1Transfer` moves a buffer's memory to the worker and back
 * (no copy; the downloader's piece buffers go this way); `sha1Async` copies its input into the message.
 *
 * Unless little is hashed: a worker costs ~10 MiB of memory, and each round trip a message, a transfer each way
 * and garbage-collector work for the memory that moved. Node hashes ~1.7 GB/s on one core, so while the process
 * hashes less than INLINE_BYTES_PER_SECOND (a download over a 100 Mbit/s link, a few MB/s of seeding checks) the
 * hash runs inline, blocking the event loop at most ~0.6 ms per MiB and costing under 1 % of it; only faster
 * transfers and bulk checks start a worker (see InlineBudget).
 *
 * The pool is created on first use and its workers are unref'd: it holds no state beyond in-flight jobs and
 * never keeps a process alive, so several clients in one process can share it safely. A worker idle for
 * WORKER_IDLE_MS exits and gives its memory back; the next burst starts a new one.
 */
class HashPool {
  private workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: { digest: Buffer; data?: ArrayBuffer }) => void; reject: (e: Error) => void; worker: Worker }>();
  private readonly load = new Map<Worker, number>();
  private readonly lastUse = new Map<Worker, number>();
  private nextId = 1;
  private readonly maxWorkers: number;

  constructor(size: number) {
    this.maxWorkers = size;
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./hash-worker.js', import.meta.url));
    w.unref();
    let idleTimer: NodeJS.Timeout | null = null;
    w.on('message', (msg: { id: number; digest: Uint8Array; data?: ArrayBuffer }) => {
      const job = this.pending.get(msg.id);
      if (!job) return;
      this.pending.delete(msg.id);
      const left = (this.load.get(w) ?? 1) - 1;
      this.load.set(w, left);
      // Busy workers keep the process alive (someone awaits their result); idle ones must not.
      if (left === 0) {
        w.unref();
        if (idleTimer === null) {
          idleTimer = setInterval(() => {
            if (this.load.get(w) !== 0 || Date.now() - this.lastUse.get(w)! < WORKER_IDLE_MS) return;
            clearInterval(idleTimer!);
            this.retire(w, new Error('hash worker retired while idle'));
            void w.terminate();
          }, WORKER_IDLE_MS / 2);
          idleTimer.unref();
        }
      }
      const digest = Buffer.from(msg.digest.buffer, msg.digest.byteOffset, msg.digest.byteLength);
      job.resolve(msg.data ? { digest, data: msg.data } : { digest });
    });
    w.on('error', (err) => this.retire(w, err));
    w.on('exit', (code) => {
      if (idleTimer !== null) clearInterval(idleTimer);
      this.retire(w, new Error(`hash worker exited with code ${code}`));
    });
    this.workers.push(w);
    this.load.set(w, 0);
    return w;
  }

  private retire(w: Worker, err: Error): void {
    this.workers = this.workers.filter((x) => x !== w);
    this.load.delete(w);
    this.lastUse.delete(w);
    for (const [id, job] of this.pending) {
      if (job.worker === w) {
        this.pending.delete(id);
        job.reject(err);
      }
    }
  }

  private pickWorker(): Worker {
    let best: Worker | undefined;
    let bestLoad = Infinity;
    for (const w of this.workers) {
      const l = this.load.get(w) ?? 0;
      if (l < bestLoad) { best = w; bestLoad = l; }
    }
    if (best === undefined || (bestLoad > 0 && this.workers.length < this.maxWorkers)) best = this.spawn();
    return best;
  }

  get size(): number { return this.workers.length; }

  hash(data: Uint8Array, transfer: boolean): Promise<{ digest: Buffer; data?: ArrayBuffer }> {
    const worker = this.pickWorker();
    this.lastUse.set(worker, Date.now());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      const load = (this.load.get(worker) ?? 0) + 1;
      this.load.set(worker, load);
      if (load === 1) worker.ref();
      if (transfer) {
        const ab = data.buffer as ArrayBuffer;
        worker.postMessage({ id, data: ab, offset: data.byteOffset, length: data.byteLength }, [ab]);
      } else {
        worker.postMessage({ id, data, offset: 0, length: data.byteLength });
      }
    });
  }
}

let pool: HashPool | null = null;

/** Pieces smaller than this are always hashed inline: a worker round trip would cost more than the hash. */
const INLINE_BELOW = 64 * 1024;
/** Inline hashing allowed per second (see the comment at the top): ~10 ms of the event loop per second. */
export const INLINE_BYTES_PER_SECOND = 16 * 1024 * 1024;
/** Larger inputs always go to a worker: one inline hash must not hold the event loop for more than ~2.5 ms. */
const INLINE_MAX = 4 * 1024 * 1024;
/** A worker with nothing to do for this long exits. */
const WORKER_IDLE_MS = 30_000;

/**
 * A token bucket of inline hashing: refills at INLINE_BYTES_PER_SECOND up to one second's worth. An input is hashed
 * inline when the bucket covers it, so a slow, steady download never starts a worker and a fast one (or a check of
 * existing data) moves to the pool within its first second.
 */
class InlineBudget {
  private tokens = INLINE_BYTES_PER_SECOND;
  private last = 0;

  take(bytes: number, now: number): boolean {
    if (bytes > INLINE_MAX) return false;
    this.tokens = Math.min(INLINE_BYTES_PER_SECOND, this.tokens + ((now - this.last) * INLINE_BYTES_PER_SECOND) / 1000);
    this.last = now;
    if (this.tokens < bytes) return false;
    this.tokens -= bytes;
    return true;
  }
}

const inline = new InlineBudget();

/** Hash this input on the calling thread? Small ones always; others while the inline budget lasts. */
function hashInline(bytes: number): boolean {
  return bytes < INLINE_BELOW || inline.take(bytes, performance.now());
}

function hashPool(): HashPool {
  pool ??= new HashPool(Math.max(1, Math.min(4, availableParallelism() - 1)));
  return pool;
}

export async function sha1Async(data: Uint8Array): Promise<Buffer> {
  if (hashInline(data.byteLength)) return sha1(data);
  return (await hashPool().hash(data, false)).digest;
}

/**
 * Hash `data` in a worker, moving its memory there and back instead of copying. `data` must own its whole
 * ArrayBuffer (e.g. from Buffer.allocUnsafeSlow) and is unusable until the promise resolves with it again.
 */
export async function sha1Transfer(data: Buffer): Promise<{ digest: Buffer; data: Buffer }> {
  if (data.byteOffset !== 0 || data.buffer.byteLength !== data.byteLength || !(data.buffer instanceof ArrayBuffer) || hashInline(data.byteLength)) {
    return { digest: sha1(data), data };
  }
  const length = data.byteLength; // `data` is detached once posted
  const r = await hashPool().hash(data, true);
  return { digest: r.digest, data: Buffer.from(r.data!, 0, length) };
}

/** Hash worker threads running now (diagnostics and tests: a slow download should start none). */
export function hashWorkerCount(): number {
  return pool?.size ?? 0;
}

/** Synchronous SHA-1 for small inputs (handshakes, info dicts, blocks of a failed piece). */
export function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/** Compare a piece against its expected 20-byte hash without blocking the event loop. */
export async function verifyPiece(data: Uint8Array, expected: Uint8Array): Promise<boolean> {
  const got = await sha1Async(data);
  return got.equals(expected);
}
