// Web seeds (BEP 19) as a block source of the engine: "an HTTP server and a .torrent" is a complete distribution
// setup. nginx serves the files; Shoal downloads with no peer at all, via the library and via `shoal get`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../src/engine/index.js';
import { createTorrent } from '../../src/metainfo/index.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import { requireNginx, startNginx, type NginxHandle } from '../helpers/nginx.js';
import { jsonLines, runCli } from '../helpers/cli.js';

const TIMEOUT = 30_000;

async function withNginx<T>(fn: (root: string, nginx: NginxHandle, work: string) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'shoal-wsdl-root-'));
  const work = await mkdtemp(join(tmpdir(), 'shoal-wsdl-work-'));
  const nginx = await startNginx(root);
  try {
    return await fn(root, nginx, work);
  } finally {
    await nginx.stop();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
}

function waitDone(t: { done: boolean; once(ev: string, fn: (...a: unknown[]) => void): unknown }, ms: number): Promise<void> {
  if (t.done) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not done after ${ms} ms`)), ms);
    t.once('done', () => { clearTimeout(timer); resolve(); });
  });
}

test('single-file torrent downloads from the web seed alone (library), byte for byte', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx, work) => {
    const data = pseudoRandom(3 * 1024 * 1024 + 12345, 11);
    await writeFile(join(root, 'one.bin'), data);
    const { torrent } = await createTorrent(join(root, 'one.bin'), { pieceLength: 256 * 1024, urlList: [`${nginx.url}/`] });
    const client = new Client({ trackers: false });
    const warnings: string[] = [];
    try {
      const tor = await client.add(torrent, { path: join(work, 'dl'), seed: false });
      tor.on('warning', (m: string) => warnings.push(m));
      await waitDone(tor, 20_000);
      const s = tor.stats();
      assert.ok((await readFile(join(work, 'dl', 'one.bin'))).equals(data), 'downloaded file differs');
      assert.equal(s.fromPeers, 0);
      assert.equal(s.fromWebSeeds, data.length, 'every byte came from the web seed exactly once');
      assert.equal(s.downloaded, s.fromPeers + s.fromWebSeeds);
      assert.equal(s.hashFails, 0);
      assert.deepEqual(warnings, []);
      // nginx served each byte once (no duplicate ranges).
      assert.equal(await nginx.bodyBytesServed(), data.length);
    } finally {
      await client.close();
    }
  });
});

test('multi-file torrent (nested folders, an empty file) downloads from the web seed alone (library)', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx, work) => {
    const files: [string[], Buffer][] = [
      [['a.bin'], pseudoRandom(700_001, 1)],
      [['sub dir', 'b #1.bin'], pseudoRandom(1_300_000, 2)],
      [['sub dir', 'empty'], Buffer.alloc(0)],
      [['z', 'y', 'c.txt'], pseudoRandom(90_000, 3)],
    ];
    for (const [p, d] of files) {
      await mkdir(join(root, 'pkg', ...p.slice(0, -1)), { recursive: true });
      await writeFile(join(root, 'pkg', ...p), d);
    }
    const { torrent, meta } = await createTorrent(join(root, 'pkg'), { pieceLength: 64 * 1024, urlList: [nginx.url] });
    assert.equal(meta.multiFile, true);
    const client = new Client({ trackers: false });
    try {
      const tor = await client.add(torrent, { path: join(work, 'dl'), seed: false });
      await waitDone(tor, 20_000);
      for (const [p, d] of files) assert.ok((await readFile(join(work, 'dl', 'pkg', ...p))).equals(d), `${p.join('/')} differs`);
      const total = files.reduce((n, [, d]) => n + d.length, 0);
      assert.equal(tor.stats().fromWebSeeds, total);
    } finally {
      await client.close();
    }
  });
});

test('shoal get: url-list torrent, --web-seed on a torrent without one, and a mktorrent -w torrent', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx, work) => {
    const data = pseudoRandom(2 * 1024 * 1024 + 7, 5);
    await writeFile(join(root, 'file.iso'), data);
    const withList = join(work, 'with.torrent');
    const without = join(work, 'without.torrent');
    await writeFile(withList, (await createTorrent(join(root, 'file.iso'), { pieceLength: 128 * 1024, urlList: [`${nginx.url}/file.iso`] })).torrent);
    await writeFile(without, (await createTorrent(join(root, 'file.iso'), { pieceLength: 128 * 1024 })).torrent);

    // --json: progress and done lines carry fromPeers / fromWebSeeds.
    const r1 = await runCli(['--json', 'get', withList, '-o', join(work, 'a'), '--timeout', '20'], { timeoutMs: 25_000 });
    assert.equal(r1.code, 0, r1.stderr + r1.stdout);
    const done = jsonLines(r1.stdout).find((e) => e.type === 'done')!;
    assert.equal(done['fromWebSeeds'], data.length);
    assert.equal(done['fromPeers'], 0);
    assert.ok((await readFile(join(work, 'a', 'file.iso'))).equals(data));

    // Human output: the summary says where the bytes came from.
    const r2 = await runCli(['get', without, '-o', join(work, 'b'), '--web-seed', `${nginx.url}/`, '--timeout', '20'], { timeoutMs: 25_000 });
    assert.equal(r2.code, 0, r2.stderr + r2.stdout);
    assert.match(r2.stdout, /0 B from peers, 2\.00 MiB from web seeds \(0% from peers\)/);
    assert.ok((await readFile(join(work, 'b', 'file.iso'))).equals(data));

    // A torrent made by mktorrent with -w.
    if (spawnSync('mktorrent', ['-h'], { encoding: 'utf8' }).error) {
      if (process.env.CI === 'true') throw new Error('mktorrent not installed (required under CI=true)');
      t.diagnostic('mktorrent not installed: skipped that part');
      return;
    }
    const mk = join(work, 'mk.torrent');
    const m = spawnSync('mktorrent', ['-l', '16', '-w', `${nginx.url}/file.iso`, '-o', mk, join(root, 'file.iso')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(m.status, 0, m.stderr);
    const r3 = await runCli(['get', mk, '-o', join(work, 'c'), '--timeout', '20'], { timeoutMs: 25_000 });
    assert.equal(r3.code, 0, r3.stderr + r3.stdout);
    assert.ok((await readFile(join(work, 'c', 'file.iso'))).equals(data));
  });
});

test('shoal get --web-seed rejects a URL that is not http(s) before touching the network', { timeout: TIMEOUT }, async () => {
  const work = await mkdtemp(join(tmpdir(), 'shoal-wsdl-bad-'));
  try {
    await writeFile(join(work, 'f'), pseudoRandom(1000, 1));
    await writeFile(join(work, 'f.torrent'), (await createTorrent(join(work, 'f'), { pieceLength: 16384 })).torrent);
    const r = await runCli(['get', join(work, 'f.torrent'), '-o', join(work, 'o'), '--web-seed', 'ftp://127.0.0.1/f'], { timeoutMs: 15_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--web-seed takes an http:\/\/ or https:\/\/ URL/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
