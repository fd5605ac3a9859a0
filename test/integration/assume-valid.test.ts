import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, createTorrent } from '../../src/index.js';

// `shoal seed <path>` creates a torrent and seeds it at once; the data was just hashed, so it is not hashed again.
test('assumeValid trusts data that is all there, and falls back to hashing when it is not', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-assume-'));
  const file = join(dir, 'd.bin');
  await writeFile(file, randomBytes(1024 * 1024 + 123));
  try {
    const { meta } = await createTorrent(file, { pieceLength: 64 * 1024 });
    for (const [label, assumeValid] of [['hashes', false], ['trusts', true]] as const) {
      const c = new Client({ host: '127.0.0.1', port: 0, trackers: false });
      try {
        const t = await c.add(meta, { path: dir, resumeFile: false, assumeValid });
        assert.equal(t.done, true, label);
        assert.deepEqual(t.lastCheck, assumeValid ? { trusted: meta.pieceCount, hashed: 0 } : { trusted: 0, hashed: meta.pieceCount }, label);
      } finally {
        await c.close();
      }
    }
    // A file of the wrong length is not trusted: the normal check runs and finds the missing tail.
    await truncate(file, 512 * 1024);
    const c = new Client({ host: '127.0.0.1', port: 0, trackers: false });
    try {
      const t = await c.add(meta, { path: dir, resumeFile: false, assumeValid: true });
      assert.equal(t.done, false);
      assert.ok(t.lastCheck.hashed > 0);
      assert.equal(t.stats().have, 8, 'the first 512 KiB (8 pieces of 64 KiB) verify, the rest do not');
    } finally {
      await c.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
