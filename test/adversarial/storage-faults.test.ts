import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Storage } from '../../src/storage/index.js';
import { isShoalError } from '../../src/util/errors.js';
import type { Metainfo } from '../../src/metainfo/types.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ci = process.env['CI'] === 'true';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-faults-'));
  try { await fn(dir); } finally { await fsp.rm(dir, { recursive: true, force: true }); }
}

/** Mount a tmpfs at `dir`; returns why not when this machine does not allow it. */
function mountTmpfs(dir: string, options: string): string | null {
  if (!isRoot) return 'needs root to mount a tmpfs';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8', timeout: 10000 });
  return r.status === 0 ? null : `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}`;
}

function umount(dir: string): void {
  const r = spawnSync('umount', [dir], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) spawnSync('umount', ['-l', dir], { timeout: 10000 });
}

function piece(meta: Metainfo, data: Buffer, i: number): Buffer {
  return Buffer.from(data.subarray(i * meta.pieceLength, Math.min(data.length, (i + 1) * meta.pieceLength)));
}

test('disk full: ESTORAGE "disk full", earlier pieces still verified after reopen', async (t) => {
  await withTmp(async (base) => {
    const mnt = join(base, 'mnt');
    await fsp.mkdir(mnt);
    const why = mountTmpfs(mnt, 'size=256k');
    if (why) {
      assert.ok(!ci, `must run under CI=true: ${why}`);
      t.skip(why);
      return;
    }
    try {
      const { meta, data } = makeMetainfo([{ path: ['big.bin'], data: pseudoRandom(640 * 1024, 7) }], 16 * 1024, 'big.bin');
      // Resume data lives off the full disk, so it can still be saved.
      const resumeFile = join(base, 'state', 'big.resume');
      const s = await Storage.open(meta, { dir: mnt, resumeFile });
      await s.verifyExisting();
      let failedAt = -1;
      for (let i = 0; i < meta.pieceCount; i++) {
        try {
          await s.writePiece(i, piece(meta, data, i));
        } catch (err) {
          assert.ok(isShoalError(err, 'ESTORAGE'), `expected ESTORAGE, got ${String(err)}`);
          assert.match((err as Error).message, /disk full while writing .*big\.bin/);
          failedAt = i;
          break;
        }
      }
      assert.ok(failedAt > 0, 'the 256 KiB tmpfs must fill up before 640 KiB are written');
      assert.equal(s.have.get(failedAt), false, 'a failed write leaves have unchanged');
      assert.equal(s.have.count, failedAt);
      await s.close();

      const r = await Storage.open(meta, { dir: mnt, resumeFile });
      await r.verifyExisting();
      for (let i = 0; i < failedAt; i++) assert.ok(r.have.get(i), `piece ${i} kept`);
      for (let i = 0; i < failedAt; i++) assert.deepEqual(await r.readPiece(i), piece(meta, data, i));
      await r.verifyExisting({ recheck: true });
      for (let i = 0; i < failedAt; i++) assert.ok(r.have.get(i), `piece ${i} hashes correctly`);
      await r.close();
    } finally {
      umount(mnt);
    }
  });
});

test('a file replaced by a directory: missing on check, ESTORAGE on write', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo([
      { path: ['a'], data: pseudoRandom(300, 1) },
      { path: ['b'], data: pseudoRandom(300, 2) },
    ], 128, 'm');
    await fsp.mkdir(join(dir, 'm', 'a'), { recursive: true });
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting({ recheck: true });
    assert.equal(s.have.count, 0);
    await assert.rejects(s.writePiece(0, piece(meta, data, 0)), (e) => isShoalError(e, 'ESTORAGE') && /m\/a.*directory/.test((e as Error).message));
    assert.equal(s.have.get(0), false);
    // A piece entirely in the healthy file still works.
    await s.writePiece(3, piece(meta, data, 3));
    assert.ok(s.have.get(3));
    await s.close();
  });
});

test('a parent path that is a file: ESTORAGE naming the path', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo([{ path: ['sub', 'x'], data: pseudoRandom(100, 3) }], 64, 'p');
    await fsp.mkdir(join(dir, 'p'), { recursive: true });
    await fsp.writeFile(join(dir, 'p', 'sub'), 'not a dir');
    const s = await Storage.open(meta, { dir, resumeFile: false });
    await assert.rejects(s.writePiece(0, piece(meta, data, 0)), (e) => isShoalError(e, 'ESTORAGE') && (e as Error).message.includes(join(dir, 'p', 'sub', 'x')));
    await s.close();
  });
});

test('permission denied / read-only file system: ESTORAGE naming the path', async (t) => {
  await withTmp(async (base) => {
    const { meta, data } = makeMetainfo([{ path: ['f.bin'], data: pseudoRandom(100, 4) }], 64, 'f.bin');
    const target = join(base, 'ro');
    await fsp.mkdir(target);
    let cleanup = async (): Promise<void> => undefined;
    if (isRoot) {
      // Root ignores file modes, so use a read-only mount instead.
      const why = mountTmpfs(target, 'ro,size=64k');
      if (why) {
        assert.ok(!ci, `must run under CI=true: ${why}`);
        t.skip(why);
        return;
      }
      cleanup = async () => umount(target);
    } else {
      await fsp.chmod(target, 0o555);
      cleanup = async () => fsp.chmod(target, 0o755);
    }
    try {
      const s = await Storage.open(meta, { dir: target, resumeFile: join(base, 'r.resume') });
      await assert.rejects(s.writePiece(0, piece(meta, data, 0)), (e) =>
        isShoalError(e, 'ESTORAGE') && /(permission denied|read-only file system) while writing|permission denied writing/.test((e as Error).message)
        && (e as Error).message.includes(join(target, 'f.bin')));
      assert.equal(s.have.count, 0);
      await s.close();
    } finally {
      await cleanup();
    }
  });
});
