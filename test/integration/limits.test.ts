import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, createTorrent, type Torrent } from '../../src/index.js';

async function fixture(size: number): Promise<{ dir: string; file: string; data: Buffer; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-limits-'));
  const data = randomBytes(size);
  const file = join(dir, 'data.bin');
  await writeFile(file, data);
  return { dir, file, data, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function whenDone(t: Torrent, timeoutMs: number): Promise<void> {
  if (t.done) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not done after ${timeoutMs} ms: ${JSON.stringify(t.stats())}`)), timeoutMs);
    t.once('done', () => { clearTimeout(timer); resolve(); });
  });
}

// Rate limits are checked from below only: a limit must make a transfer take at least size/rate (minus the
// bucket's burst). A slow, busy machine can only make it take longer, so this cannot flake the other way.
for (const side of ['download', 'upload'] as const) {
  test(`${side} limit holds the transfer to the configured rate`, { timeout: 60_000 }, async () => {
    const size = 3 * 1024 * 1024;
    const rate = 1024 * 1024;
    const f = await fixture(size);
    const seed = new Client({ host: '127.0.0.1', port: 0, trackers: false, ...(side === 'upload' ? { uploadLimit: rate } : {}) });
    const leech = new Client({ host: '127.0.0.1', port: 0, trackers: false, ...(side === 'download' ? { downloadLimit: rate } : {}) });
    try {
      const { meta } = await createTorrent(f.file, { pieceLength: 64 * 1024 });
      await seed.add(meta, { path: f.dir, resumeFile: false });
      const start = Date.now();
      const t = await leech.add(meta, { path: join(f.dir, 'out'), resumeFile: false, peers: [{ host: '127.0.0.1', port: seed.port }] });
      await whenDone(t, 50_000);
      const seconds = (Date.now() - start) / 1000;
      // burst ≤ 1 s of rate, so at least (size − rate)/rate seconds.
      const floor = (size - rate) / rate;
      assert.ok(seconds >= floor * 0.95, `${side} limit of ${rate} B/s moved ${size} B in ${seconds.toFixed(2)} s (< ${floor} s)`);
      assert.ok((await readFile(join(f.dir, 'out', 'data.bin'))).equals(f.data));
    } finally {
      await leech.close();
      await seed.close();
      await f.cleanup();
    }
  });
}

test('maxPeersPerTorrent caps a seed\'s connections', { timeout: 60_000 }, async () => {
  const f = await fixture(512 * 1024);
  // A slow seed, so nobody finishes (and frees a slot) while we look.
  const seed = new Client({ host: '127.0.0.1', port: 0, trackers: false, maxPeersPerTorrent: 2, uploadLimit: 32 * 1024 });
  const leeches = [0, 1, 2, 3].map(() => new Client({ host: '127.0.0.1', port: 0, trackers: false }));
  try {
    const { meta } = await createTorrent(f.file, { pieceLength: 16 * 1024 });
    const st = await seed.add(meta, { path: f.dir, resumeFile: false, initialSeeding: false });
    let maxPeers = 0;
    st.on('peer', () => { maxPeers = Math.max(maxPeers, st.stats().peers); });
    // Downloaders know only the seed, so each needs one of its two slots.
    const ts = await Promise.all(leeches.map((c, i) => c.add(meta, { path: join(f.dir, `out${i}`), resumeFile: false, peers: [{ host: '127.0.0.1', port: seed.port }] })));
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(maxPeers <= 2, `seed had ${maxPeers} peers with a limit of 2`);
    assert.ok(st.stats().peers <= 2);
    const connected = ts.filter((t) => t.stats().peers > 0).length;
    assert.equal(connected, 2, `${connected} downloaders connected`);
  } finally {
    await Promise.all(leeches.map((c) => c.close()));
    await seed.close();
    await f.cleanup();
  }
});
