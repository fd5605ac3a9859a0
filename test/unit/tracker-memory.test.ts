import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Memory budgets of the memory-mode tracker and of a process that embeds the library, measured in a fresh child
// process (with --expose-gc, so the figures are live data, not garbage) to keep other tests' modules and heap out.

const serverJs = fileURLToPath(new URL('../../src/tracker/server.js', import.meta.url));
const storeJs = fileURLToPath(new URL('../../src/tracker/memory-store.js', import.meta.url));

function runChild(script: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) { reject(new Error(`${err.message}\n${stderr}`)); return; }
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>);
    });
  });
}

test('a memory-mode tracker loads neither ioredis nor prom-client until /metrics is scraped', { timeout: 25_000 }, async () => {
  const r = await runChild(`
    import { createRequire } from 'node:module';
    const { TrackerServer } = await import(${JSON.stringify(serverJs)});
    const loaded = (name) => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/' + name + '/'));
    const t = new TrackerServer({ host: '127.0.0.1', udpPort: false, rateLimit: false });
    const { httpPort } = await t.listen();
    const before = { ioredis: loaded('ioredis'), prom: loaded('prom-client') };
    const res = await fetch('http://127.0.0.1:' + httpPort + '/metrics');
    const text = await res.text();
    const after = { ioredis: loaded('ioredis'), prom: loaded('prom-client') };
    await t.close();
    console.log(JSON.stringify({ before, after, status: res.status, hasCounter: /shoal_tracker_announces_total/.test(text) }));
  `);
  assert.deepEqual(r.before, { ioredis: false, prom: false });
  // The check above means something only if the probe sees a module once it is loaded.
  assert.deepEqual(r.after, { ioredis: false, prom: true });
  assert.equal(r.status, 200);
  assert.equal(r.hasCounter, true);
});

test('100 000 peers in 2 000 swarms cost under 16 MiB of heap and array buffers, and all of it is given back', { timeout: 25_000 }, async () => {
  const r = await runChild(`
    const { MemoryStore } = await import(${JSON.stringify(storeJs)});
    const N = 100000, SWARMS = 2000;
    const hashes = Array.from({ length: SWARMS }, (_, i) => { const b = Buffer.alloc(20); b.writeUInt32BE(i + 1, 0); return b; });
    const id = Buffer.from('-MT0001-abcdefghijkl');
    const compact = Buffer.alloc(6);
    const used = () => { gc(); gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
    const store = new MemoryStore({ peerTtlMs: 3600000, sweepIntervalMs: 3600000 });
    // Zipf-like popularity, as in the tracker bench: a few big swarms, a long tail.
    const req = { infoHash: hashes[0], peerId: id, compact, seed: false, event: 'started', numwant: 0, family: 4, compactOnly: true };
    const u0 = used();
    for (let p = 0; p < N; p++) {
      const s = Math.min(SWARMS - 1, Math.floor(Math.exp(Math.random() * Math.log(SWARMS + 1))) - 1);
      req.infoHash = hashes[s];
      compact.writeUInt32BE(0x0a000000 + p, 0); compact.writeUInt16BE(6881, 4);
      req.seed = p % 3 === 0;
      store.announce(req);
    }
    const u1 = used();
    const peers = store.peerCount;
    // One sweep tick examines a bounded number of peers; a few ticks cover the table.
    for (let i = 0; i < 10 && store.stats().swarms > 0; i++) store.sweep(Date.now() + 3600001);
    const u2 = used();
    console.log(JSON.stringify({ peers, swarms: store.stats().swarms, grewMiB: (u1 - u0) / 1048576, leftMiB: (u2 - u0) / 1048576 }));
    await store.close();
  `);
  assert.equal(r.peers, 100_000);
  assert.equal(r.swarms, 0);
  assert.ok((r.grewMiB as number) < 16, `100k peers took ${(r.grewMiB as number).toFixed(1)} MiB`);
  assert.ok((r.leftMiB as number) < 1, `${(r.leftMiB as number).toFixed(1)} MiB still held after every peer expired`);
});

const indexJs = fileURLToPath(new URL('../../src/index.js', import.meta.url));

test('importing the library and running a client loads no third-party module until it is used (web seeds: undici)', { timeout: 25_000 }, async () => {
  const r = await runChild(`
    import { createRequire } from 'node:module';
    const lib = await import(${JSON.stringify(indexJs)});
    const cache = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/'));
    const names = () => [...new Set(cache().map((k) => k.split('/node_modules/').pop().split('/')[0]))].sort();
    const c = new lib.Client({ port: 0, host: '127.0.0.1', trackers: false, dht: false, lsd: false });
    await c.listen();
    const idle = names();
    const { WebSeed } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/webseed/index.js', import.meta.url)))});
    const meta = { infoHash: Buffer.alloc(20), pieceLength: 16384, length: 16384, pieceCount: 1, lastPieceLength: 16384, name: 'x', files: [{ path: ['x'], length: 16384, offset: 0 }], multiFile: false };
    const ws = new WebSeed({ url: 'http://127.0.0.1:9/x', meta, timeoutMs: 2000 });
    await ws.fetch(0, 0, 16384, Buffer.alloc(16384)).catch(() => undefined);
    await ws.close();
    await c.close();
    console.log(JSON.stringify({ idle, afterWebSeed: names() }));
  `);
  assert.deepEqual(r.idle, [], 'ioredis, prom-client, pino and undici stay unloaded');
  // The probe sees a module once it is loaded: the web seed's first request loads undici.
  assert.ok((r.afterWebSeed as string[]).includes('undici'), `after a web-seed request: ${JSON.stringify(r.afterWebSeed)}`);
});
