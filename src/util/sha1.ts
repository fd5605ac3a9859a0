import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * SHA-1 off the event loop. WebCrypto's digest runs on the calling thread in Node 20, so piece verification
 * goes to a small pool of worker threads instead. `sha1Transfer` moves a buffer's memory to the worker and back
 * (no copy; the downloader's piece buffers go this way); `sha1Async` copies its input into the message.
 *
 * The pool is created on first use and its workers are unref'd: it holds no state beyond in-flight jobs and
 * never keeps a process alive, so several clients in one process can share it safely.
 */
class HashPool {
  private workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: { digest: Buffer; data?: ArrayBuffer }) => void; reject: (e: Error) => void; worker: Worker }>();
  private readonly load = new Map<Worker, number>();
  private nextId = 1;
  private readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./hash-worker.js', import.meta.url));
    w.unref();
    w.on('message', (msg: { id: number; digest: Uint8Array; data?: ArrayBuffer }) => {
      const job = this.pending.get(msg.id);
      if (!job) return;
      this.pending.delete(msg.id);
      const left = (this.load.get(w) ?? 1) - 1;
      this.load.set(w, left);
      // Busy workers keep the process alive (someone awaits their result); idle ones must not.
      if (left === 0) w.unref();
      const digest = Buffer.from(msg.digest.buffer, msg.digest.byteOffset, msg.digest.byteLength);
      job.resolve(msg.data ? { digest, data: msg.data } : { digest });
    });
    w.on('error', (err) => this.retire(w, err));
    w.on('exit', (code) => this.retire(w, new Error(`hash worker exited with code ${code}`)));
    this.workers.push(w);
    this.load.set(w, 0);
    return w;
  }

  private retire(w: Worker, err: Error): void {
    this.workers = this.workers.filter((x) => x !== w);
    this.load.delete(w);
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
    if (best === undefined || (bestLoad > 0 && this.workers.length < this.size)) best = this.spawn();
    return best;
  }

  hash(data: Uint8Array, transfer: boolean): Promise<{ digest: Buffer; data?: ArrayBuffer }> {
    const worker = this.pickWorker();
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

/** Pieces smaller than this are hashed inline: a worker round trip would cost more than the hash. */
const INLINE_BELOW = 64 * 1024;

function hashPool(): HashPool {
  pool ??= new HashPool(Math.max(1, Math.min(4, availableParallelism() - 1)));
  return pool;
}

export async function sha1Async(data: Uint8Array): Promise<Buffer> {
  if (data.byteLength < INLINE_BELOW) return sha1(data);
  return (await hashPool().hash(data, false)).digest;
}

/**
 * Hash `data` in a worker, moving its memory there and back instead of copying. `data` must own its whole
 * ArrayBuffer (e.g. from Buffer.allocUnsafeSlow) and is unusable until the promise resolves with it again.
 */
export async function sha1Transfer(data: Buffer): Promise<{ digest: Buffer; data: Buffer }> {
  if (data.byteLength < INLINE_BELOW || data.byteOffset !== 0 || data.buffer.byteLength !== data.byteLength || !(data.buffer instanceof ArrayBuffer)) {
    return { digest: sha1(data), data };
  }
  const length = data.byteLength; // `data` is detached once posted
  const r = await hashPool().hash(data, true);
  return { digest: r.digest, data: Buffer.from(r.data!, 0, length) };
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
