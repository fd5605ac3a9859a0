/**
 * Shared plumbing for the Shoal-with-Shoal integration and adversarial tests: temp dirs, seeds over in-memory
 * data, bounded waits on torrent events, and byte-for-byte checks of what landed on disk.
 */
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Client } from '../../../src/engine/index.js';
import type { Torrent } from '../../../src/engine/index.js';
import type { ClientOptions } from '../../../src/engine/types.js';
import type { Metainfo } from '../../../src/metainfo/types.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Runs `fn` with a fresh temp dir and everything it registers for cleanup; cleans up in reverse order. */
export async function withScope<T>(prefix: string, fn: (s: Scope) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(join(tmpdir(), `shoal-${prefix}-`));
  const s = new Scope(dir);
  try {
    return await fn(s);
  } finally {
    await s.cleanup();
  }
}

export class Scope {
  readonly dir: string;
  private readonly cleanups: (() => unknown)[] = [];
  constructor(dir: string) {
    this.dir = dir;
  }

  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** A Client on 127.0.0.1 (or `host`) with an ephemeral port and no trackers, closed at scope end. */
  async client(opts: ClientOptions = {}): Promise<Client> {
    const c = new Client({ port: 0, host: '127.0.0.1', trackers: false, ...opts });
    this.defer(() => c.close());
    await c.listen();
    return c;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    await fsp.rm(this.dir, { recursive: true, force: true });
    if (errors.length > 0) throw errors[0];
  }
}

/** Where each torrent file lives under a download folder. */
export function filePaths(meta: Metainfo, dir: string): string[] {
  return meta.files.map((f) => (meta.multiFile ? join(dir, meta.name, ...f.path) : join(dir, meta.name)));
}

/** Writes the torrent's content under `dir` the way a finished download would look. */
export async function writeContent(meta: Metainfo, data: Buffer, dir: string): Promise<void> {
  const paths = filePaths(meta, dir);
  for (let i = 0; i < meta.files.length; i++) {
    const f = meta.files[i]!;
    await fsp.mkdir(join(paths[i]!, '..'), { recursive: true });
    await fsp.writeFile(paths[i]!, data.subarray(f.offset, f.offset + f.length));
  }
}

/** A seeding Client over `data` written to `<scope>/<name>`; resolves once the torrent is checked and complete. */
export async function startSeed(s: Scope, meta: Metainfo, data: Buffer, name = 'seed', opts: ClientOptions = {}): Promise<{ client: Client; torrent: Torrent; dir: string }> {
  const dir = join(s.dir, name);
  await writeContent(meta, data, dir);
  const client = await s.client(opts);
  const torrent = await client.add(meta, { path: dir });
  if (!torrent.done) throw new Error(`seed over complete data is not done: ${JSON.stringify(torrent.stats())}`);
  return { client, torrent, dir };
}

export function describe(t: Torrent): string {
  return `${JSON.stringify(t.stats())}\npeers: ${JSON.stringify(t.peerStats())}`;
}

/**
 * Resolves when `t` is done (now or later); rejects on 'error', on the torrent closing, or after `timeoutMs`
 * with the torrent's stats in the message so a stall can be diagnosed.
 */
export function waitDone(t: Torrent, timeoutMs: number, label = 'torrent'): Promise<void> {
  if (t.done) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      t.off('done', onDone);
      t.off('error', onError);
      t.off('close', onClose);
    };
    const onDone = (): void => { cleanup(); resolve(); };
    const onError = (err: Error): void => { cleanup(); reject(new Error(`${label} failed: ${err.message}`, { cause: err })); };
    const onClose = (): void => { cleanup(); reject(new Error(`${label} closed before it was done`)); };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${label} not done after ${timeoutMs} ms: ${describe(t)}`)); }, timeoutMs);
    t.on('done', onDone);
    t.on('error', onError);
    t.on('close', onClose);
  });
}

/** Resolves with the arguments of the first `event` for which `pred` holds; rejects after `timeoutMs`. */
export function waitEvent<A extends unknown[]>(
  emitter: NodeJS.EventEmitter, event: string, timeoutMs: number, pred: (...args: A) => boolean = () => true,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const on = (...args: unknown[]): void => {
      if (!pred(...(args as A))) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args as A);
    };
    const timer = setTimeout(() => { emitter.off(event, on); reject(new Error(`no '${event}' within ${timeoutMs} ms`)); }, timeoutMs);
    emitter.on(event, on);
  });
}

/** Polls `cond` every 20 ms until it holds; rejects with `what` after `timeoutMs`. */
export async function until(what: string, timeoutMs: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/**
 * Asserts every file of `meta` (or only the `selected` ones) under `dir` is byte-identical to its slice of
 * `data`; returns the list of mismatches (empty when all good) so callers can assert with context.
 */
export async function compareContent(meta: Metainfo, data: Buffer, dir: string, selected?: number[]): Promise<string[]> {
  const paths = filePaths(meta, dir);
  const problems: string[] = [];
  for (let i = 0; i < meta.files.length; i++) {
    if (selected && !selected.includes(i)) continue;
    const f = meta.files[i]!;
    let got: Buffer;
    try {
      got = await fsp.readFile(paths[i]!);
    } catch (err) {
      problems.push(`${paths[i]}: ${(err as NodeJS.ErrnoException).code}`);
      continue;
    }
    const want = data.subarray(f.offset, f.offset + f.length);
    if (got.length !== want.length) problems.push(`${paths[i]}: ${got.length} bytes, want ${want.length}`);
    else if (sha256(got) !== sha256(want)) problems.push(`${paths[i]}: content differs`);
  }
  return problems;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * What the torrent's storage did in its last check (pieces trusted from resume data vs. hashed).
 * Torrent keeps its Storage private; this reaches in at runtime because there is no public accessor yet.
 */
export function lastCheck(t: Torrent): { trusted: number; hashed: number } {
  return t.lastCheck;
}

/** Per-peer figures for the flood tests. */
export interface PeerInternals { address: string; uploadQueue: number; writeBacklog: number }
export function peerInternals(t: Torrent): PeerInternals[] {
  return t.peerStats().map((p) => ({ address: p.address, uploadQueue: p.queuedRequests, writeBacklog: p.sendBacklog }));
}

