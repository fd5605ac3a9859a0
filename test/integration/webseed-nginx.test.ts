// BEP 19 web seeds against a real nginx: every piece fetched over HTTP(S) must hash to the torrent's piece hash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSeed, WebSeedError, webSeedUrlFor } from '../../src/webseed/index.js';
import { encodeTorrent, parseTorrent } from '../../src/metainfo/parse.js';
import { pieceHashAt, pieceLengthAt, type Metainfo } from '../../src/metainfo/types.js';
import { TokenBucket } from '../../src/engine/token-bucket.js';
import { makeMetainfo, pseudoRandom, type MakeFile } from '../helpers/make-meta.js';
import { requireNginx, startNginx, type NginxHandle } from '../helpers/nginx.js';
import { requirePeer } from '../helpers/real-peers/require-peer.js';

const TIMEOUT = 20_000;

/** A torrent as a .torrent file would give it: encoded, then parsed by Shoal's real parser. */
function torrentFor(files: MakeFile[], pieceLength: number, name: string, urlList: string[]): Metainfo {
  const { meta } = makeMetainfo(files, pieceLength, name);
  return parseTorrent(encodeTorrent({ ...meta, urlList }));
}

/** Writes the non-padding files where a web server rooted at `root` serves them under `base`. */
async function publish(root: string, base: string[], meta: Metainfo, files: MakeFile[]): Promise<void> {
  for (let i = 0; i < files.length; i++) {
    if (files[i]!.padding) continue;
    const rel = meta.multiFile ? [meta.name, ...meta.files[i]!.path] : [meta.name];
    await mkdir(join(root, ...base, ...rel.slice(0, -1)), { recursive: true });
    await writeFile(join(root, ...base, ...rel), files[i]!.data);
  }
}

/** Fetches every piece (some in two halves) and checks each against its SHA-1. Returns payload bytes fetched. */
async function fetchAllAndVerify(ws: WebSeed, meta: Metainfo): Promise<void> {
  await Promise.all(Array.from({ length: meta.pieceCount }, async (_, i) => {
    const pl = pieceLengthAt(meta, i);
    const buf = Buffer.alloc(pl, 0xee);   // not zeros: padding must be written, not left as it was
    if (i % 3 === 1 && pl > 1) {
      const half = Math.floor(pl / 2);
      await Promise.all([ws.fetch(i, 0, half, buf.subarray(0, half)), ws.fetch(i, half, pl - half, buf.subarray(half))]);
    } else {
      await ws.fetch(i, 0, pl, buf);
    }
    const got = createHash('sha1').update(buf).digest();
    assert.ok(got.equals(pieceHashAt(meta, i)), `piece ${i} hash mismatch`);
  }));
}

function nonPaddingBytes(meta: Metainfo): number {
  return meta.files.reduce((s, f) => s + (f.padding ? 0 : f.length), 0);
}

async function withNginx<T>(fn: (root: string, nginx: NginxHandle) => Promise<T>, opts: { tls?: boolean } = {}): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'shoal-webseed-root-'));
  const nginx = await startNginx(root, opts);
  try {
    return await fn(root, nginx);
  } finally {
    await nginx.stop();
    await rm(root, { recursive: true, force: true });
  }
}

test('single-file torrent from nginx: url naming the file, and url ending in / plus the name', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx) => {
    const name = 'big file ü #1?.iso';
    const files: MakeFile[] = [{ path: [name], data: pseudoRandom(1_000_003, 7) }];
    const meta = torrentFor(files, 32 * 1024, name, []);
    assert.equal(meta.multiFile, false);
    await publish(root, ['pub'], meta, files);

    const folderUrl = `${nginx.url}/pub/`;
    assert.equal(webSeedUrlFor(folderUrl, meta, 0), `${nginx.url}/pub/big%20file%20%C3%BC%20%231%3F.iso`);
    const fileUrl = `${nginx.url}/pub/big%20file%20%C3%BC%20%231%3F.iso`;
    assert.equal(webSeedUrlFor(fileUrl, meta, 0), fileUrl);

    for (const url of [folderUrl, fileUrl]) {
      const ws = new WebSeed({ url, meta, maxInFlight: 4, timeoutMs: 5000 });
      try {
        await fetchAllAndVerify(ws, meta);
        assert.equal(ws.bytesReceived, meta.length);
        assert.deepEqual({ ...ws.stats(), url: undefined }, { url: undefined, bytes: meta.length, inFlight: 0, failures: 0 });
      } finally {
        await ws.close();
      }
    }
    const reqs = await nginx.requests();
    assert.ok(reqs.every((r) => r.status === 206 && r.method === 'GET'), 'every request is a ranged GET answered 206');
    assert.equal(await nginx.bodyBytesServed(), 2 * meta.length, 'nginx served each byte exactly once per seed');
    // Keep-alive: a few connections for hundreds of requests.
    const conns = new Set(reqs.map((r) => r.connection));
    t.diagnostic(`${reqs.length} requests over ${conns.size} connections`);
    assert.ok(conns.size <= 8, `expected at most 2×4 connections, saw ${conns.size}`);
  });
});

test('multi-file torrent from nginx: unicode/space/#/? names, pieces spanning files, a padding file never requested', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx) => {
    const files: MakeFile[] = [
      { path: ['read me.txt'], data: pseudoRandom(10_000, 1) },
      { path: ['sub dir', 'naïve 日本語.bin'], data: pseudoRandom(70_001, 2) },
      { path: ['empty'], data: Buffer.alloc(0) },
      { path: ['odd #name?x=1&y.bin'], data: pseudoRandom(5, 3) },
      { path: ['100%.dat'], data: pseudoRandom(40_000, 4) },
      { path: ['.pad', '0'], data: Buffer.alloc(11_066), padding: true },
      { path: ['aligned.bin'], data: pseudoRandom(33_333, 5) },
    ];
    // Pad so aligned.bin starts on a piece boundary (BEP 47's purpose).
    const before = files.slice(0, 5).reduce((s, f) => s + f.data.length, 0);
    assert.equal((before + 11_066) % 16_384, 0);
    const meta = torrentFor(files, 16_384, 'multi ä dir', [`${nginx.url}/mirror`]);
    assert.equal(meta.multiFile, true);
    assert.equal(meta.files[5]!.padding, true);
    await publish(root, ['mirror'], meta, files);   // the padding file is not on the server

    assert.equal(webSeedUrlFor(meta.urlList[0]!, meta, 1), `${nginx.url}/mirror/multi%20%C3%A4%20dir/sub%20dir/na%C3%AFve%20%E6%97%A5%E6%9C%AC%E8%AA%9E.bin`);
    assert.equal(webSeedUrlFor(meta.urlList[0]!, meta, 3), `${nginx.url}/mirror/multi%20%C3%A4%20dir/odd%20%23name%3Fx%3D1%26y.bin`);

    const ws = new WebSeed({ url: meta.urlList[0]!, meta, maxInFlight: 3, timeoutMs: 5000 });
    try {
      await fetchAllAndVerify(ws, meta);
      assert.equal(ws.stats().failures, 0);
    } finally {
      await ws.close();
    }
    const reqs = await nginx.requests();
    assert.ok(reqs.every((r) => r.status === 206), `statuses: ${[...new Set(reqs.map((r) => r.status))].join(',')}`);
    assert.ok(!reqs.some((r) => r.uri.includes('.pad')), 'the padding file was requested');
    assert.ok(!reqs.some((r) => r.uri.endsWith('/empty')), 'the empty file was requested');
    assert.equal(await nginx.bodyBytesServed(), nonPaddingBytes(meta), 'each non-padding byte served exactly once');
    assert.equal(ws.bytesReceived, nonPaddingBytes(meta));
    t.diagnostic(`${meta.pieceCount} pieces, ${reqs.length} ranged GETs, ${await nginx.bodyBytesServed()} bytes`);
  });
});

test('a torrent made by mktorrent -w: its url-list is used as the web seed', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  if (!requirePeer(t, 'mktorrent', 'mktorrent')) return;
  await withNginx(async (root, nginx) => {
    const tree = join(root, 'pub', 'mk tree ñ');
    await mkdir(join(tree, 'deep dir'), { recursive: true });
    await writeFile(join(tree, 'one.bin'), pseudoRandom(100_000, 11));
    await writeFile(join(tree, 'deep dir', 'two # three.bin'), pseudoRandom(65_537, 12));
    await writeFile(join(tree, 'z.txt'), pseudoRandom(3, 13));
    const out = join(root, 'mk.torrent');
    const r = spawnSync('mktorrent', ['-l', '15', '-t', '1', '-a', 'http://127.0.0.1:1/announce', '-w', `${nginx.url}/pub/`, '-o', out, tree], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    const meta = parseTorrent(await readFile(out));
    assert.deepEqual(meta.urlList, [`${nginx.url}/pub/`]);
    assert.equal(meta.name, 'mk tree ñ');

    const ws = new WebSeed({ url: meta.urlList[0]!, meta, timeoutMs: 5000 });
    try {
      await fetchAllAndVerify(ws, meta);
    } finally {
      await ws.close();
    }
    assert.equal(await nginx.bodyBytesServed(), meta.length);
  });
});

test('https web seed: trusted with the given CA; an untrusted certificate is a clear permanent failure', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  if (!requirePeer(t, 'openssl', 'openssl')) return;
  await withNginx(async (root, nginx) => {
    const name = 'secure.bin';
    const files: MakeFile[] = [{ path: [name], data: pseudoRandom(200_000, 21) }];
    const meta = torrentFor(files, 32 * 1024, name, []);
    await publish(root, [], meta, files);

    const ok = new WebSeed({ url: `${nginx.httpsUrl}/`, meta, ca: nginx.cert!, timeoutMs: 5000 });
    try {
      await fetchAllAndVerify(ok, meta);
    } finally {
      await ok.close();
    }

    const untrusted = new WebSeed({ url: `${nginx.httpsUrl}/`, meta, timeoutMs: 5000 });
    try {
      const err = await untrusted.fetch(0, 0, 1024, Buffer.alloc(1024)).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof WebSeedError, String(err));
      assert.equal(err.kind, 'network');
      assert.equal(err.retryable, false);
      assert.match(err.message, /TLS certificate rejected/);
      assert.match(err.message, /this web seed is disabled$/);
      assert.equal(untrusted.disabled, true);
    } finally {
      await untrusted.close();
    }
  }, { tls: true });
});

test('the rate limiter (TokenBucket.take) paces the download', { timeout: TIMEOUT }, async (t) => {
  if (!requireNginx(t)) return;
  await withNginx(async (root, nginx) => {
    const name = 'paced.bin';
    const files: MakeFile[] = [{ path: [name], data: pseudoRandom(1 << 20, 31) }];
    const meta = torrentFor(files, 256 * 1024, name, []);
    await publish(root, [], meta, files);
    const rate = 2 << 20;   // 2 MiB/s with a 64 KiB burst: 1 MiB takes about 0.47 s
    const ws = new WebSeed({ url: `${nginx.url}/`, meta, rateLimiter: new TokenBucket(rate, 65536), timeoutMs: 5000 });
    try {
      const t0 = performance.now();
      await fetchAllAndVerify(ws, meta);
      const ms = performance.now() - t0;
      t.diagnostic(`1 MiB at a 2 MiB/s limit took ${ms.toFixed(0)} ms`);
      assert.ok(ms >= ((meta.length - 65536) / rate) * 1000 * 0.9, `too fast for the limit: ${ms} ms`);
    } finally {
      await ws.close();
    }
  });
});
