import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { FilePool } from '../../src/storage/file-pool.js';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-pool-'));
  try { await fn(dir); } finally { await fsp.rm(dir, { recursive: true, force: true }); }
}

test('never more than maxOpen descriptors, under concurrent use of many files', async () => {
  await withTmp(async (dir) => {
    const pool = new FilePool(3);
    let peak = 0;
    const ops = Array.from({ length: 60 }, (_, k) => pool.withHandle(join(dir, 'n', `f${k % 10}`), { write: true, size: 64 }, async (fh) => {
      peak = Math.max(peak, pool.size);
      await fh.write(Buffer.from([k]), 0, 1, k % 64);
      await new Promise((r) => setTimeout(r, 1));
      peak = Math.max(peak, pool.size);
    }));
    await Promise.all(ops);
    assert.ok(peak <= 3, `peak ${peak}`);
    for (let f = 0; f < 10; f++) assert.equal((await fsp.stat(join(dir, 'n', `f${f}`))).size, 64, 'preallocated to size');
    await pool.closeAll();
    assert.equal(pool.size, 0);
  });
});

test('concurrent opens of one file share a handle; read-only handle is upgraded for writing', async () => {
  await withTmp(async (dir) => {
    const p = join(dir, 'x');
    await fsp.writeFile(p, 'hello');
    const pool = new FilePool(4);
    const fds = await Promise.all(Array.from({ length: 5 }, () => pool.withHandle(p, { write: false }, async (fh) => fh.fd)));
    assert.equal(new Set(fds).size, 1);
    assert.equal(pool.size, 1);
    await assert.rejects(pool.withHandle(p, { write: false }, (fh) => fh.write(Buffer.from('J'), 0, 1, 0)));
    await pool.withHandle(p, { write: true }, (fh) => fh.write(Buffer.from('J'), 0, 1, 0));
    assert.equal(await fsp.readFile(p, 'utf8'), 'Jello');
    assert.equal(pool.size, 1);
    await pool.closeAll();
  });
});

test('closeAll waits for in-flight operations; failed opens free their slot', async () => {
  await withTmp(async (dir) => {
    const pool = new FilePool(1);
    await assert.rejects(pool.withHandle(join(dir, 'missing'), { write: false }, async () => undefined), { code: 'ENOENT' });
    assert.equal(pool.size, 0);
    let finished = false;
    const op = pool.withHandle(join(dir, 'y'), { write: true }, async (fh) => {
      await new Promise((r) => setTimeout(r, 20));
      await fh.write(Buffer.from('ok'), 0, 2, 0);
      finished = true;
    });
    await new Promise((r) => setImmediate(r));
    await pool.closeAll();
    assert.equal(finished, true);
    await op;
    assert.equal(await fsp.readFile(join(dir, 'y'), 'utf8'), 'ok');
    await assert.rejects(pool.withHandle(join(dir, 'y'), { write: false }, async () => undefined));
  });
});
