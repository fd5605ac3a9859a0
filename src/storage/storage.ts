import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { STATE_DIR_NAME, checkTorrentName, resolveInside } from '../metainfo/paths.js';
import { pieceHashAt, type Metainfo, type TorrentFile } from '../metainfo/types.js';
import { Bitfield } from '../util/bitfield.js';
import { PieceCache } from './piece-cache.js';
import { ShoalError } from '../util/errors.js';
import { sha1Transfer } from '../util/sha1.js';
import { pieceRange, pieceSpanOfFile, segmentsForRange, type Segment } from './file-map.js';
import { FilePool } from './file-pool.js';
import { MISSING, loadResumeFile, saveResumeFile, type FileStamp, type ResumeData } from './resume.js';

export interface StorageOptions {
  /** Download folder: single-file torrents live at <dir>/<name>, multi-file ones under <dir>/<name>/. */
  dir: string;
  /** Indices into meta.files to download; default all. */
  selectedFiles?: number[];
  /** Resume file path; false disables resume data; default <dir>/.shoal/<infohashhex>.resume. */
  resumeFile?: string | false;
  /** Upper bound on simultaneously open data files (default 64). */
  maxOpenFiles?: number;
  /** Non-fatal problems (unreadable resume file, failed background save). */
  onWarning?: (message: string) => void;
  /** Bytes of whole pieces kept for readBlock and recycled as download buffers (default 16 MiB; 0 disables). */
  cacheBytes?: number;
  /** Minimum delay between automatic resume saves after writes (default 5000 ms). */
  resumeIntervalMs?: number;
  /** Pieces hashed concurrently by verifyExisting (default 6). */
  hashConcurrency?: number;
}

export interface CheckStats { trusted: number; hashed: number }

/** Source id of the part file, which holds bytes of wanted pieces that fall into unselected files. */
const PARTS = -1;

interface Target { src: number; path: string; pos: number; size: number | undefined }

const DEFAULT_CACHE = 16 * 1024 * 1024;
/**
 * Largest single write. On the benchmark VM (Linux 6.18, ext4, a virtio balloon that gives idle memory back to the
 * host) 1 MiB writes into memory left idle for a few seconds cost 2.5–3× the CPU of 512 KiB ones: 256 MiB written
 * after 4 s idle cost 820–890 µs of kernel time per MiB in 1 MiB writes against 130–270 in 512 KiB or 256 KiB writes
 * (fs.writeSync), and 1230–1430 against 390–460 µs per MiB of process CPU through fs.promises. Why (likely the
 * page-cache folio sized by the write, taken from memory the host must back again) is not proven. Without the idle
 * pause all sizes cost the same, so the limit costs one more trip to the thread pool per MiB, no more.
 * `node dist/bench/write-sizes.js` re-measures it.
 */
const MAX_WRITE = 512 * 1024;

/**
 * Piece-level access to a torrent's files on disk.
 *
 * INVARIANT (crash safety): a piece is marked in a saved resume file only if its data was completely written
 * and fdatasync'ed before that resume file was renamed into place, and the recorded size/mtime of every file
 * it touches were taken after those writes. Hence a process killed at any moment never leaves a verified
 * mark for data that is not on disk: either the mark is absent, or the files changed afterwards (mtime/size
 * differ) and the piece is re-hashed on the next start. This holds because:
 *   - `have` is set only after every segment write of the piece resolved, and the written files are added to
 *     `dirty` in the same synchronous step, so a save either sees both or neither;
 *   - a save snapshots `have` and `dirty` together, syncs the dirty files, then stats them, then writes the
 *     record to a temp file, fsyncs it and renames it (resume.ts);
 *   - nothing is saved before verifyExisting() ran, since a record with an empty bitfield would declare
 *     unchanged files' existing data as absent.
 */
export class Storage {
  readonly meta: Metainfo;
  readonly have: Bitfield;
  readonly wanted: Bitfield;
  /** selected[i]: file i is downloaded (padding files are never selected). */
  readonly selected: readonly boolean[];
  /** Absolute path of each file (padding files included, though never created). */
  readonly paths: readonly string[];
  readonly resumePath: string | null;
  readonly partsPath: string;
  /** What the last verifyExisting() did: pieces trusted from resume data vs. hashed from disk. */
  lastCheck: CheckStats = { trusted: 0, hashed: 0 };

  private readonly files: readonly TorrentFile[];
  private readonly pool: FilePool;
  private readonly onWarning: ((message: string) => void) | undefined;
  private readonly resumeInterval: number;
  private readonly hashConcurrency: number;
  /** Whole pieces for uploading and readers, in LRU order, their memory recycled (see piece-cache.ts). */
  private readonly cache: PieceCache;
  /** Disk reads in progress for the cache; `shared` once a caller that may keep the buffer awaits it. */
  private readonly reading = new Map<number, { promise: Promise<Buffer>; shared: boolean }>();
  /** Sources written since the last save: they need fdatasync and a fresh stamp before the next record. */
  private readonly dirty = new Set<number>();
  private stamps: FileStamp[];
  private partsStamp: FileStamp = MISSING;
  private checked = false;
  private emptyFilesCreated = false;
  private readonly pendingWrites = new Set<Promise<void>>();
  /** Last write queued per file path (see writeAt). */
  private readonly fileWriteTail = new Map<string, Promise<unknown>>();
  private saveChain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  private constructor(meta: Metainfo, opts: StorageOptions) {
    this.meta = meta;
    this.files = meta.files;
    const root = resolve(opts.dir);
    checkTorrentName(meta.name);
    this.paths = meta.files.map((f) => resolveInside(root, meta.multiFile ? [meta.name, ...f.path] : [meta.name]));
    const sel = new Array<boolean>(meta.files.length).fill(opts.selectedFiles === undefined);
    for (const i of opts.selectedFiles ?? []) {
      if (!Number.isInteger(i) || i < 0 || i >= meta.files.length) {
        throw new ShoalError('EUSAGE', `selected file index ${i} is out of range 0..${meta.files.length - 1}`);
      }
      sel[i] = true;
    }
    meta.files.forEach((f, i) => { if (f.padding) sel[i] = false; });
    this.selected = sel;
    this.wanted = new Bitfield(meta.pieceCount);
    meta.files.forEach((f, i) => {
      const span = sel[i] ? pieceSpanOfFile(f, meta.pieceLength) : null;
      if (span) for (let p = span[0]; p <= span[1]; p++) this.wanted.set(p);
    });
    this.have = new Bitfield(meta.pieceCount);
    this.resumePath = opts.resumeFile === false ? null
      : opts.resumeFile !== undefined ? resolve(opts.resumeFile)
      : join(root, STATE_DIR_NAME, `${meta.infoHashHex}.resume`);
    this.partsPath = join(this.resumePath ? dirname(this.resumePath) : join(root, STATE_DIR_NAME), `${meta.infoHashHex}.parts`);
    this.pool = new FilePool(opts.maxOpenFiles ?? 64);
    this.onWarning = opts.onWarning;
    this.cache = new PieceCache(opts.cacheBytes ?? DEFAULT_CACHE, meta.pieceLength);
    this.resumeInterval = opts.resumeIntervalMs ?? 5000;
    this.hashConcurrency = Math.max(1, opts.hashConcurrency ?? 6);
    this.stamps = meta.files.map(() => MISSING);
  }

  /** Throws ShoalError EPATH if a file path would escape `dir`, EUSAGE for bad options. Touches no files. */
  static async open(meta: Metainfo, opts: StorageOptions): Promise<Storage> {
    return new Storage(meta, opts);
  }

  // ---- writes ----

  /**
   * Store a piece whose hash the caller already verified; `have` is set only once every byte is written. With
   * `adopt`, `data` (from allocatePiece) is handed over on success: it becomes the cached copy of the piece, so
   * the caller must not touch it again.
   */
  async writePiece(index: number, data: Buffer, opts: { adopt?: boolean } = {}): Promise<void> {
    this.assertOpen();
    const { offset, length } = this.range(index);
    if (data.length !== length) {
      throw new ShoalError('EUSAGE', `piece ${index} must be ${length} bytes, got ${data.length}`);
    }
    const p = this.doWrite(index, offset, data, opts.adopt === true);
    this.pendingWrites.add(p);
    try { await p; } finally { this.pendingWrites.delete(p); }
  }

  private async doWrite(index: number, offset: number, data: Buffer, adopt: boolean): Promise<void> {
    const targets: Target[] = [];
    const segs = segmentsForRange(this.files, offset, data.length);
    const results = await Promise.allSettled(segs.map((seg) => {
      const t = this.target(seg);
      if (!t) return undefined;
      targets.push(t);
      return this.writeAt(t, data, seg.bufferOffset, seg.length);
    }));
    // Wait for every segment before reporting, so a failed write leaves no I/O running behind our back.
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    this.uncache(index);
    if (adopt && !this.closing) this.cache.insert(index, data, false, true);
    for (const t of targets) this.dirty.add(t.src);
    this.have.set(index);
    if (!this.emptyFilesCreated) await this.createEmptyFiles();
    this.scheduleSave();
  }

  /**
   * Writes to one file go one at a time: the kernel takes the file's inode lock for each buffered write, and
   * concurrent writers to the same file spin on it (measured with perf: 14% of the downloader's CPU).
   */
  private writeAt(t: Target, buf: Buffer, off: number, len: number): Promise<void> {
    const prev = this.fileWriteTail.get(t.path);
    const next = (prev ? prev.then(() => this.writeNow(t, buf, off, len), () => this.writeNow(t, buf, off, len)) : this.writeNow(t, buf, off, len));
    const tail = next.catch(() => undefined);
    this.fileWriteTail.set(t.path, tail);
    void tail.then(() => { if (this.fileWriteTail.get(t.path) === tail) this.fileWriteTail.delete(t.path); });
    return next;
  }

  private async writeNow(t: Target, buf: Buffer, off: number, len: number): Promise<void> {
    try {
      await this.pool.withHandle(t.path, { write: true, size: t.size }, async (fh) => {
        let done = 0;
        while (done < len) {
          const { bytesWritten } = await fh.write(buf, off + done, Math.min(len - done, MAX_WRITE), t.pos + done);
          if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'ENOSPC' });
          done += bytesWritten;
        }
      });
    } catch (err) {
      throw storageError('write', t.path, err);
    }
  }

  /** Zero-length selected files hold no piece, so no write would ever create them. */
  private async createEmptyFiles(): Promise<void> {
    this.emptyFilesCreated = true;
    await Promise.all(this.files.map(async (f, i) => {
      if (f.length !== 0 || !this.selected[i]) return;
      const path = this.paths[i]!;
      try {
        await this.pool.withHandle(path, { write: true }, async () => undefined);
      } catch (err) {
        throw storageError('write', path, err);
      }
      this.dirty.add(i);
    }));
  }

  /**
   * A buffer for a piece of `length` bytes that owns its ArrayBuffer, recycled from the piece cache when possible:
   * the cache's oldest unpinned piece gives its memory, and the cache counts the buffer as lent (its room shrinks
   * until recyclePiece or an adopting writePiece returns it), so cached plus in-flight pieces stay near the larger
   * of the cache limit and the pieces in flight.
   */
  allocatePiece(length: number): Buffer {
    return this.cache.allocateOutside(length);
  }

  /** Give back a buffer from allocatePiece that nobody else has seen (e.g. its piece failed its hash check). */
  recyclePiece(buf: Buffer): void {
    this.cache.discard(buf, true);
  }

  // ---- reads ----

  /** Read part of a piece we have. The returned buffer shares memory with the piece cache: do not modify it. */
  async readBlock(index: number, begin: number, length: number): Promise<Buffer> {
    this.assertOpen();
    const range = this.range(index);
    if (!Number.isInteger(begin) || !Number.isInteger(length) || begin < 0 || length < 0 || begin + length > range.length) {
      throw new ShoalError('EUSAGE', `block ${begin}+${length} is outside piece ${index} (${range.length} bytes)`);
    }
    const piece = await this.getPiece(index);
    return piece.subarray(begin, begin + length);
  }

  /**
   * A block of a cached piece, without a promise (a seed sends the blocks of one piece in a row, and skipping an
   * await per block matters at hundreds of MB/s), valid until `releaseBlock(block)`: its memory is not recycled
   * before. Undefined means "not cached: preload() it, or use readBlock".
   */
  borrowBlock(index: number, begin: number, length: number): Buffer | undefined {
    return this.cache.borrow(index, begin, length);
  }

  /** The borrower of `block` is done with it (for a socket: the write completed). Once per borrow. */
  releaseBlock(block: Buffer): void {
    this.cache.release(block);
  }

  /** Bring piece `index` (which we have) into the cache; resolves when it is there (or could not be kept). */
  async preload(index: number): Promise<void> {
    this.assertOpen();
    this.range(index);
    if (this.cache.has(index)) return;
    if (!this.have.get(index)) throw new ShoalError('EUSAGE', `piece ${index} is not available on disk`);
    await this.startRead(index, false);
  }

  /** Read a whole piece we have. The returned buffer may be shared with the piece cache: do not modify it. */
  async readPiece(index: number): Promise<Buffer> {
    this.assertOpen();
    this.range(index);
    return this.getPiece(index);
  }

  /** The piece for a caller that may keep it: its memory is never recycled. */
  private getPiece(index: number): Promise<Buffer> {
    if (!this.have.get(index)) return Promise.reject(new ShoalError('EUSAGE', `piece ${index} is not available on disk`));
    const hit = this.cache.get(index);
    if (hit) return Promise.resolve(hit);
    return this.startRead(index, true);
  }

  private startRead(index: number, shared: boolean): Promise<Buffer> {
    const running = this.reading.get(index);
    if (running) {
      if (shared) running.shared = true;
      return running.promise;
    }
    const rec = { promise: null as unknown as Promise<Buffer>, shared };
    const current = (): boolean => this.reading.get(index) === rec;
    rec.promise = this.readRange(index, true, true).then((buf) => {
      // Leave `reading` before the insert, so no caller can join a read whose buffer is already cached unshared.
      if (current()) {
        this.reading.delete(index);
        if (this.have.get(index)) this.cache.insert(index, buf, rec.shared);
      }
      return buf;
    }, (err: unknown) => {
      if (current()) this.reading.delete(index);
      throw err;
    });
    this.reading.set(index, rec);
    return rec.promise;
  }

  /**
   * Assemble a piece from its files. Padding reads as zeros. With `strict`, a file shorter than expected is an
   * error (someone truncated it under us); otherwise the missing bytes read as zeros and simply fail the hash.
   * `reuse`: a buffer of exactly this piece's length that owns its ArrayBuffer and nobody else reads, to fill.
   */
  private async readRange(index: number, strict: boolean, forCache = false, reuse?: Buffer): Promise<Buffer> {
    const { offset, length } = this.range(index);
    // Its own ArrayBuffer, so a recheck can move it to the hash worker instead of copying it. Every byte of it is
    // written below (a short file reads as zeros), so a reused buffer carries nothing of its last piece.
    const buf = reuse !== undefined && reuse.length === length && reuse.byteOffset === 0 && reuse.buffer.byteLength === length
      ? reuse
      : forCache ? this.cache.allocate(length) : Buffer.allocUnsafeSlow(length);
    await Promise.all(segmentsForRange(this.files, offset, length).map(async (seg) => {
      const t = this.target(seg);
      if (!t) { buf.fill(0, seg.bufferOffset, seg.bufferOffset + seg.length); return; }
      try {
        await this.pool.withHandle(t.path, { write: false }, async (fh) => readFully(fh, buf, seg.bufferOffset, seg.length, t.pos, strict));
      } catch (err) {
        throw storageError('read', t.path, err);
      }
    }));
    return buf;
  }

  private uncache(index: number): void {
    this.cache.delete(index);
    this.reading.delete(index);
  }

  /** Bytes of pieces in the cache, and blocks lent by borrowBlock and not yet released. */
  get cacheBytes(): number { return this.cache.bytes; }
  get lentBlocks(): number { return this.cache.lent; }
  /** Piece memory the downloader holds (buffers in flight, hashing or being written): the cache yields it room. */
  reserveCache(bytes: number): void { this.cache.reserve(bytes); }

  /** Throws if the piece cache's invariants do not hold (debug mode). */
  checkInvariants(): void {
    this.cache.check();
  }

  // ---- checking ----

  /**
   * Decide which pieces are on disk. With valid resume data, pieces it marks whose files are unchanged (size and
   * mtime) are trusted; pieces touching changed or unrecorded files are hashed; pieces touching missing files
   * are missing. Without resume data (or with recheck) every piece that could be present is hashed.
   * Updates and returns `have`, then saves the resume file.
   */
  /**
   * `assumeValid`: the caller knows the data matches (it just hashed it to create the torrent). If every file is
   * selected and present at its exact length, all pieces are marked verified without reading them; otherwise the
   * normal check runs. A later restart still goes through resume data and mtimes as usual.
   */
  async verifyExisting(opts: { recheck?: boolean; assumeValid?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<Bitfield> {
    this.assertOpen();
    const resume = this.resumePath && !opts.recheck ? await this.loadResume(this.resumePath) : null;
    const marked = resume ? new Bitfield(this.meta.pieceCount, resume.pieces) : null;
    const [stamps, partsStamp] = await Promise.all([
      statFiles(this.paths, this.files.map((f) => f.padding)),
      statStamp(this.partsPath),
    ]);
    const status = (src: number): 'missing' | 'match' | 'changed' => {
      const cur = src === PARTS ? partsStamp : stamps[src]!;
      if (cur.length < 0) return 'missing';
      const rec = resume ? (src === PARTS ? resume.parts : resume.files[src]) : undefined;
      return rec && rec.length === cur.length && rec.mtime === cur.mtime ? 'match' : 'changed';
    };

    this.have.clear();
    this.cache.clear();
    this.reading.clear();
    const toHash: number[] = [];
    let trusted = 0;
    for (let i = 0; i < this.meta.pieceCount; i++) {
      const { offset, length } = this.range(i);
      let missing = false;
      let changed = false;
      for (const seg of segmentsForRange(this.files, offset, length)) {
        const t = this.target(seg);
        if (!t) continue;
        const s = status(t.src);
        if (s === 'missing') { missing = true; break; }
        if (s === 'changed') changed = true;
      }
      if (missing) continue;
      if (!changed && resume) {
        if (marked!.get(i)) { this.have.set(i); trusted++; }
        continue;
      }
      if (this.wanted.get(i) || marked?.get(i)) toHash.push(i);
    }
    const allPresent = this.files.every((f, i) => f.padding || (this.selected[i] && stamps[i]!.length === f.length));
    if (opts.assumeValid && allPresent) {
      this.have.setAll();
      trusted = this.meta.pieceCount;
      toHash.length = 0;
    }

    const total = this.meta.pieceCount;
    let done = total - toHash.length;
    opts.onProgress?.(done, total);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      // Each loop reads its next piece into the buffer its last one came back from the hash worker in: a check of
      // many pieces then holds hashConcurrency buffers, not a fresh one per piece for the GC to find later (a seed
      // checking 1 GiB peaked near 110 MiB, and faulted in fresh pages for every piece).
      let spare: Buffer | undefined;
      while (!failed && next < toHash.length) {
        const i = toHash[next++]!;
        let ok = false;
        try {
          const buf = await this.readRange(i, false, false, spare);
          spare = undefined;
          const hashed = await sha1Transfer(buf);
          spare = hashed.data;
          ok = hashed.digest.equals(pieceHashAt(this.meta, i));
        } catch (err) {
          if (!isGoneError(err)) { failed = true; throw err; }
        }
        if (ok) this.have.set(i);
        done++;
        opts.onProgress?.(done, total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.hashConcurrency, toHash.length) }, worker));

    this.lastCheck = { trusted, hashed: toHash.length };
    this.stamps = stamps;
    this.partsStamp = partsStamp;
    this.checked = true;
    if (this.have.count > 0 && !this.emptyFilesCreated) await this.createEmptyFiles();
    try {
      await this.saveResume();
    } catch (err) {
      this.warn(`could not save resume data to ${this.resumePath}: ${(err as Error).message}`);
    }
    return this.have;
  }

  private async loadResume(path: string): Promise<ResumeData | null> {
    let r: ResumeData | null;
    try {
      r = await loadResumeFile(path);
    } catch (err) {
      const corrupt = err instanceof ShoalError && (err.code === 'ESTORAGE' || err.code === 'EBENCODE');
      this.warn(corrupt
        ? `resume data corrupt, rechecking all pieces (${path}: ${(err as Error).message})`
        : `ignoring unreadable resume file ${path} (${(err as Error).message}); rechecking all pieces`);
      return null;
    }
    if (!r) return null;
    let why: string | undefined;
    if (!r.infoHash.equals(this.meta.infoHash)) why = 'it belongs to another torrent';
    else if (r.pieceLength !== this.meta.pieceLength) why = 'its piece length differs';
    else if (r.files.length !== this.files.length) why = 'its file list differs';
    else {
      try { new Bitfield(this.meta.pieceCount, r.pieces); } catch { why = 'its piece bitfield has the wrong size'; }
    }
    if (why) {
      this.warn(`ignoring resume file ${path}: ${why}; rechecking all pieces`);
      return null;
    }
    return r;
  }

  // ---- resume ----

  /** Persist which pieces are on disk (no-op when resume is disabled or before verifyExisting ran). */
  saveResume(): Promise<void> {
    if (this.closing) return Promise.reject(new ShoalError('EUSAGE', 'storage is closed'));
    return this.queueSave();
  }

  private queueSave(): Promise<void> {
    const run = this.saveChain.then(() => this.doSave());
    this.saveChain = run.catch(() => undefined);
    return run;
  }

  private async doSave(): Promise<void> {
    const path = this.resumePath;
    if (!path || !this.checked) return;
    // Snapshot first: only pieces whose writes already completed, and exactly the files those writes touched.
    const pieces = Buffer.from(this.have.buffer);
    const dirty = [...this.dirty];
    this.dirty.clear();
    try {
      await Promise.all(dirty.map((src) => this.syncSource(src)));
      const fresh = await Promise.all(dirty.map((src) => statStamp(this.sourcePath(src))));
      dirty.forEach((src, k) => {
        if (src === PARTS) this.partsStamp = fresh[k]!;
        else this.stamps[src] = fresh[k]!;
      });
    } catch (err) {
      for (const src of dirty) this.dirty.add(src);
      throw err;
    }
    await saveResumeFile(path, {
      infoHash: this.meta.infoHash,
      pieceLength: this.meta.pieceLength,
      pieces,
      files: this.stamps,
      parts: this.partsStamp,
    });
  }

  private async syncSource(src: number): Promise<void> {
    const path = this.sourcePath(src);
    try {
      await this.pool.withHandle(path, { write: false }, (fh) => fh.datasync());
    } catch (err) {
      // Deleted under us: the next record says missing, which is safe.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw storageError('sync', path, err);
    }
  }

  private scheduleSave(): void {
    if (!this.resumePath || !this.checked || this.timer || this.closing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closing) return;
      this.queueSave().catch((err: unknown) => {
        this.warn(`could not save resume data to ${this.resumePath}: ${(err as Error).message}`);
      });
    }, this.resumeInterval);
    this.timer.unref();
  }

  /** Finish in-flight writes, save resume data, close every file. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    await Promise.allSettled([...this.pendingWrites]);
    try {
      await this.queueSave();
    } catch (err) {
      this.warn(`could not save resume data to ${this.resumePath}: ${(err as Error).message}`);
    }
    await this.pool.closeAll();
    this.cache.clear();
  }

  // ---- helpers ----

  private range(index: number): { offset: number; length: number } {
    if (!Number.isInteger(index) || index < 0 || index >= this.meta.pieceCount) {
      throw new ShoalError('EUSAGE', `piece index ${index} is out of range 0..${this.meta.pieceCount - 1}`);
    }
    return pieceRange(this.meta, index);
  }

  /** Where a segment's bytes live: its own file if selected, the part file if not, nowhere for padding. */
  private target(seg: Segment): Target | null {
    const f = this.files[seg.fileIndex]!;
    if (f.padding) return null;
    if (this.selected[seg.fileIndex]) {
      return { src: seg.fileIndex, path: this.paths[seg.fileIndex]!, pos: seg.fileOffset, size: f.length };
    }
    return { src: PARTS, path: this.partsPath, pos: f.offset + seg.fileOffset, size: undefined };
  }

  private sourcePath(src: number): string {
    return src === PARTS ? this.partsPath : this.paths[src]!;
  }

  private assertOpen(): void {
    if (this.closing) throw new ShoalError('EUSAGE', 'storage is closed');
  }

  private warn(message: string): void {
    this.onWarning?.(message);
  }
}

async function readFully(fh: FileHandle, buf: Buffer, off: number, len: number, pos: number, strict: boolean): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, off + done, len - done, pos + done);
    if (bytesRead === 0) {
      if (strict) throw Object.assign(new Error(`file is shorter than expected (no data at byte ${pos + done})`), { code: 'ESHORT' });
      buf.fill(0, off + done, off + len);
      return;
    }
    done += bytesRead;
  }
}

/** Run `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const STAT_CONCURRENCY = 32;
/**
 * Whether a folder listing names files exactly as we spell them. Not on macOS and Windows, whose usual file
 * systems match names case- and normalization-insensitively: there a listed folder's files are all stat'ed
 * (a missing folder still skips them all, which is the case that matters: a fresh download).
 */
const EXACT_NAMES = process.platform === 'linux';

/**
 * Stamps of every file, without one failing stat per missing file: a fresh download of a 100 000-file torrent
 * used to fire 100 000 concurrent stats, each rejecting with an ENOENT error object (15 s, 600 MB). Folders are
 * listed once each, shallowest first, and a folder under a missing one is not even listed; only files that a
 * listing shows are stat'ed, a bounded number at a time.
 */
async function statFiles(paths: readonly string[], skip: readonly boolean[]): Promise<FileStamp[]> {
  const stamps = new Array<FileStamp>(paths.length).fill(MISSING);
  const byDir = new Map<string, number[]>();
  for (let i = 0; i < paths.length; i++) {
    if (skip[i]) continue;
    const d = dirname(paths[i]!);
    const list = byDir.get(d);
    if (list) list.push(i); else byDir.set(d, [i]);
  }
  const dirs = [...byDir.keys()].sort((a, b) => a.length - b.length);
  const missingDirs = new Set<string>();
  const underMissing = (d: string): boolean => {
    for (let p = dirname(d); ; p = dirname(p)) {
      if (missingDirs.has(p)) return true;
      if (dirname(p) === p) return false;
    }
  };
  const toStat: number[] = [];
  // Shallowest first, in depth waves, so a missing parent is known before its children are looked at.
  let k = 0;
  while (k < dirs.length) {
    const depth = dirs[k]!.length;
    const wave: string[] = [];
    while (k < dirs.length && dirs[k]!.length === depth) wave.push(dirs[k++]!);
    await forEachLimit(wave, STAT_CONCURRENCY, async (d) => {
      const files = byDir.get(d)!;
      if (underMissing(d)) { missingDirs.add(d); return; }
      let names: Set<string>;
      try {
        names = new Set(await fsp.readdir(d));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') { missingDirs.add(d); return; }
        for (const i of files) toStat.push(i); // unlistable: let stat report what is wrong
        return;
      }
      for (const i of files) if (EXACT_NAMES ? names.has(basename(paths[i]!)) : true) toStat.push(i);
    });
  }
  await forEachLimit(toStat, STAT_CONCURRENCY, async (i) => { stamps[i] = await statStamp(paths[i]!); });
  return stamps;
}

async function statStamp(path: string): Promise<FileStamp> {
  try {
    const st = await fsp.stat(path);
    return st.isFile() ? { length: st.size, mtime: Math.floor(st.mtimeMs) } : MISSING;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return MISSING;
    throw storageError('stat', path, err);
  }
}

function errCode(err: unknown): string | undefined {
  if (err instanceof ShoalError) return errCode(err.cause);
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A file vanished or turned into something else between stat and read: its pieces are simply missing. */
function isGoneError(err: unknown): boolean {
  const c = errCode(err);
  return c === 'ENOENT' || c === 'EISDIR' || c === 'ENOTDIR';
}

export function storageError(op: 'read' | 'write' | 'sync' | 'stat', path: string, err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const doing = op === 'write' ? 'writing' : op === 'read' ? 'reading' : op === 'sync' ? 'syncing' : 'checking';
  let msg: string;
  switch (code) {
    case 'ENOSPC': case 'EDQUOT': msg = `disk full while ${doing} ${path}`; break;
    case 'EACCES': case 'EPERM': msg = `permission denied ${doing} ${path}`; break;
    case 'EROFS': msg = `read-only file system while ${doing} ${path}`; break;
    case 'EISDIR': msg = `cannot use ${path}: it is a directory, expected a file`; break;
    case 'ENOTDIR': msg = `cannot use ${path}: a parent of it is not a directory`; break;
    case 'ENOENT': msg = `file ${path} is missing (deleted while in use?)`; break;
    case 'ESHORT': msg = `file ${path} is shorter than expected (truncated while in use?)`; break;
    default: msg = `I/O error while ${doing} ${path}: ${(err as Error).message}`;
  }
  return new ShoalError('ESTORAGE', msg, { cause: err });
}
