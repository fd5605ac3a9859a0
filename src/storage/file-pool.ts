import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** How to open a file. `size` (write mode only): extend the file to at least this length on first open. */
export interface OpenMode { write: boolean; size?: number }

interface Entry {
  path: string;
  writable: boolean;
  /** Shared by every concurrent opener of this path, so one file is opened once. */
  opening: Promise<FileHandle>;
  users: number;
  /** Set once the entry left the map (evicted, upgraded or pool closing); closes when users reach 0. */
  retired: boolean;
  closed: Promise<void> | null;
}

/**
 * A bounded set of open file handles, least-recently-used closed first. At most `maxOpen` descriptors
 * are open at any time, counting ones still draining in-flight operations. Callers never hold two handles
 * at once (each withHandle call is one operation), so waiting for a free slot cannot deadlock.
 */
export class FilePool {
  readonly maxOpen: number;
  /** Insertion order is LRU order: a used entry is re-inserted at the end. */
  private readonly entries = new Map<string, Entry>();
  private openCount = 0;
  private waiters: Array<() => void> = [];
  private closing = false;

  constructor(maxOpen = 64) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) throw new RangeError(`maxOpenFiles must be a positive integer, got ${maxOpen}`);
    this.maxOpen = maxOpen;
  }

  /** Number of descriptors currently open or being opened (for tests and stats). */
  get size(): number { return this.openCount; }

  /** Run `fn` with an open handle for `path`; the handle stays open (pooled) afterwards. */
  async withHandle<T>(path: string, mode: OpenMode, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    const entry = await this.acquire(path, mode);
    try {
      const fh = await entry.opening;
      return await fn(fh);
    } finally {
      this.release(entry);
    }
  }

  /** Close every handle once its in-flight operations finish. The pool cannot be used afterwards. */
  async closeAll(): Promise<void> {
    this.closing = true;
    const all = [...this.entries.values()];
    for (const e of all) this.retire(e);
    await Promise.all(all.map((e) => this.whenClosed(e)));
    this.wake();
  }

  private async acquire(path: string, mode: OpenMode): Promise<Entry> {
    for (;;) {
      if (this.closing) throw new Error('file pool is closed');
      const e = this.entries.get(path);
      if (e) {
        if (mode.write && !e.writable) {
          // A read-only handle cannot be upgraded in place: retire it (closes after its readers finish).
          this.retire(e);
          continue;
        }
        e.users++;
        this.entries.delete(path);
        this.entries.set(path, e);
        return e;
      }
      await this.reserveSlot();
      if (this.closing || this.entries.has(path)) {
        // Someone opened it (or the pool closed) while we waited for a slot.
        this.openCount--;
        this.wake();
        continue;
      }
      const entry: Entry = { path, writable: mode.write, opening: openFile(path, mode), users: 1, retired: false, closed: null };
      this.entries.set(path, entry);
      entry.opening.catch(() => {
        if (this.entries.get(path) === entry) this.entries.delete(path);
        entry.retired = true;
        entry.closed = Promise.resolve();
        this.openCount--;
        this.wake();
      });
      return entry;
    }
  }

  private release(e: Entry): void {
    e.users--;
    if (e.users === 0) {
      if (e.retired) void this.whenClosed(e);
      else this.wake(); // an idle entry is evictable now
    }
  }

  private retire(e: Entry): void {
    if (this.entries.get(e.path) === e) this.entries.delete(e.path);
    e.retired = true;
    if (e.users === 0) void this.whenClosed(e);
  }

  /** Closes a retired entry once idle; resolves when its descriptor is released. */
  private whenClosed(e: Entry): Promise<void> {
    if (e.closed) return e.closed;
    if (e.users > 0) {
      return new Promise((resolve) => {
        const check = (): void => {
          if (e.users === 0) resolve(this.whenClosed(e));
          else this.waiters.push(check);
        };
        this.waiters.push(check);
      });
    }
    e.closed = e.opening.then(
      (fh) => fh.close().catch(() => undefined).then(() => { this.openCount--; this.wake(); }),
      () => undefined, // failed opens already gave their slot back
    );
    return e.closed;
  }

  private async reserveSlot(): Promise<void> {
    for (;;) {
      if (this.openCount < this.maxOpen) { this.openCount++; return; }
      const victim = this.lruIdle();
      if (victim) {
        this.retire(victim);
        await this.whenClosed(victim);
        continue;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private lruIdle(): Entry | undefined {
    for (const e of this.entries.values()) if (e.users === 0) return e;
    return undefined;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

async function openFile(path: string, mode: OpenMode): Promise<FileHandle> {
  if (!mode.write) return fsp.open(path, constants.O_RDONLY);
  const flags = constants.O_RDWR | constants.O_CREAT;
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, flags, 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fsp.mkdir(dirname(path), { recursive: true });
    fh = await fsp.open(path, flags, 0o666);
  }
  if (mode.size !== undefined) {
    try {
      // Sparse preallocation: sizes are right from the first write, and the resume size check is stable.
      const st = await fh.stat();
      if (st.size < mode.size) await fh.truncate(mode.size);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }
  return fh;
}
