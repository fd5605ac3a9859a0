import { DownloadSlot } from '../connection/connection.js';
import type { Metainfo } from '../metainfo/types.js';
import { WebSeed, WebSeedError } from '../webseed/index.js';
import type { BlockSource, Downloader } from './download.js';

/** What a web seed source needs from the torrent's content. */
export interface WebSeedHost {
  readonly downloader: Downloader;
  /**
   * Which pieces this source may fetch now, most preferred set first (each tried in turn until one yields blocks);
   * `null` as a set means "any missing piece"; an empty list means "nothing now".
   */
  candidates(src: WebSeedSource): (ReadonlySet<number> | null)[];
  /** Bytes of one block arrived (already in the scratch buffer); the host hands them to the downloader. */
  deliver(src: WebSeedSource, index: number, begin: number, length: number, data: Buffer, offset: number): void;
  /** A fetch failed: the message is user-facing (WebSeedError's). */
  failed(src: WebSeedSource, err: WebSeedError): void;
}

/** One run of consecutive blocks of one piece, fetched with one ranged GET (per file it touches). */
interface Job {
  index: number;
  begin: number;
  length: number;
  /** Block lengths in order (the last block of the last piece may be short). */
  blocks: number[];
  buffer: Buffer;
  abort: AbortController;
}

/**
 * A BEP 19 web seed as a block source: it asks the downloader's picker for blocks like a peer does (it has every
 * piece and adds to no piece's availability), fetches runs of consecutive blocks over HTTP into a scratch buffer,
 * and hands each block to the downloader through the same path as a peer's block (so the piece is verified the
 * same way and attributed to this source). The extra copy is per piece, not per block of the peer path.
 */
export class WebSeedSource implements BlockSource {
  readonly url: string;
  readonly download = new DownloadSlot();
  /** Pieces this source alone delivered that failed their hash. */
  hashFailures = 0;
  closed = false;
  /** Why it was dropped (a permanent HTTP failure or bad data), once it was. */
  disabledReason: string | undefined;
  /** Payload bytes delivered into pieces. */
  bytes = 0;
  private readonly seed: WebSeed;
  private readonly host: WebSeedHost;
  private readonly jobs = new Set<Job>();
  private readonly pool: Buffer[] = [];
  private readonly pieceLength: number;
  /** Epoch ms before which no new fetch starts (after a retryable failure). */
  private waitUntil = 0;
  /** The kind of the last failure warned about: repeats of the same outage are not warned again until a success. */
  private lastWarned: string | undefined;

  constructor(opts: { url: string; meta: Metainfo; host: WebSeedHost; rateLimiter?: { take(bytes: number): number }; timeoutMs?: number }) {
    this.url = opts.url;
    this.host = opts.host;
    this.pieceLength = opts.meta.pieceLength;
    const wsOpts: ConstructorParameters<typeof WebSeed>[0] = { url: opts.url, meta: opts.meta };
    if (opts.rateLimiter) wsOpts.rateLimiter = opts.rateLimiter;
    if (opts.timeoutMs !== undefined) wsOpts.timeoutMs = opts.timeoutMs;
    this.seed = new WebSeed(wsOpts);
  }

  /** Runs of blocks being fetched. */
  get activeJobs(): number { return this.jobs.size; }
  get usable(): boolean { return !this.closed && !this.seed.disabled; }
  get bytesReceived(): number { return this.seed.bytesReceived; }
  get backingOff(): boolean { return this.waitUntil > Date.now(); }

  /** An HTTP cancel is not worth a new request: late blocks are simply not outstanding any more when they arrive. */
  sendCancel(): void { /* nothing to send */ }

  /** Start fetches up to `maxJobs` runs at once. */
  fill(maxJobs: number): void {
    this.lastMaxJobs = maxJobs;
    if (!this.usable || this.jobs.size >= maxJobs || this.waitUntil > Date.now()) return;
    const downloader = this.host.downloader;
    for (const allowed of this.host.candidates(this)) {
      while (this.jobs.size < maxJobs) {
        const n = this.startJobs(downloader, allowed === null ? undefined : allowed);
        if (n === 0) break;
      }
      if (this.jobs.size >= maxJobs) return;
    }
  }

  /** Picks up to one piece's worth of blocks and starts one job per run of consecutive blocks. */
  private startJobs(downloader: Downloader, allowed: ReadonlySet<number> | undefined): number {
    let job: Job | null = null;
    const started: Job[] = [];
    const blocks = Math.max(1, Math.ceil(this.pieceLength / 16384));
    const n = downloader.request(this, blocks, allowed, (index, begin, length) => {
      if (job !== null && job.index === index && job.begin + job.length === begin) {
        job.length += length;
        job.blocks.push(length);
        return;
      }
      job = { index, begin, length, blocks: [length], buffer: null as unknown as Buffer, abort: new AbortController() };
      started.push(job);
    });
    for (const j of started) this.run(j);
    return n;
  }

  private run(job: Job): void {
    job.buffer = this.pool.pop() ?? Buffer.allocUnsafeSlow(this.pieceLength);
    this.jobs.add(job);
    this.seed.fetch(job.index, job.begin, job.length, job.buffer, job.abort.signal).then(() => {
      this.jobs.delete(job);
      if (this.closed) return;
      this.lastWarned = undefined;
      let off = 0;
      for (const len of job.blocks) {
        this.host.deliver(this, job.index, job.begin + off, len, job.buffer, off);
        off += len;
      }
      this.bytes += job.length;
      this.recycle(job.buffer);
      this.fill(this.lastMaxJobs);
    }, (err: unknown) => {
      this.jobs.delete(job);
      this.giveBack(job);
      this.recycle(job.buffer);
      if (this.closed) return;
      if (err instanceof WebSeedError) {
        if (err.retryAt !== undefined) this.waitUntil = Math.max(this.waitUntil, err.retryAt);
        const key = `${err.kind}:${err.retryable}`;
        if (!err.retryable || key !== this.lastWarned) {
          this.lastWarned = key;
          this.host.failed(this, err);
        }
      } else if (!job.abort.signal.aborted) {
        this.host.failed(this, new WebSeedError({ kind: 'network', retryable: true, url: this.url, detail: (err as Error)?.message ?? String(err) }));
      }
    });
  }

  /** The blocks of a job that failed go back to the picker (those still outstanding from this source). */
  private giveBack(job: Job): void {
    if (this.closed) return;
    let off = 0;
    for (const len of job.blocks) {
      this.host.downloader.rejected(this, job.index, job.begin + off, len);
      off += len;
    }
  }

  private recycle(buf: Buffer): void {
    if (this.pool.length < 4) this.pool.push(buf);
  }

  /** The concurrency of the last fill(), so a completing job refills with the same. */
  private lastMaxJobs = 1;

  /** Stop using this web seed: abort fetches; the caller releases its requests in the picker. */
  disable(reason: string): void {
    if (this.disabledReason === undefined) this.disabledReason = reason;
    void this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const j of this.jobs) j.abort.abort();
    this.jobs.clear();
    this.pool.length = 0;
    await this.seed.close();
  }

  stats(): { url: string; bytes: number; usable: boolean; activeJobs: number; hashFailures: number; disabledReason?: string; lastError?: string } {
    const s = this.seed.stats();
    const out: ReturnType<WebSeedSource['stats']> = { url: this.url, bytes: this.bytes, usable: this.usable, activeJobs: this.jobs.size, hashFailures: this.hashFailures };
    const reason = this.disabledReason ?? (this.seed.disabled ? s.lastError : undefined);
    if (reason !== undefined) out.disabledReason = reason;
    if (s.lastError !== undefined) out.lastError = s.lastError;
    return out;
  }
}
