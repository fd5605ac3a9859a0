// Broken and hostile web seed servers (node:http on 127.0.0.1) driven through the engine and `shoal get`: each gives
// the warning and outcome the README documents, and never a corrupt byte on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type Torrent } from '../../src/engine/index.js';
import { createTorrent, type Metainfo } from '../../src/metainfo/index.js';
import { pieceHashAt } from '../../src/metainfo/types.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import { runCli } from '../helpers/cli.js';

const TIMEOUT = 20_000;
const PIECE = 64 * 1024;
const DATA = pseudoRandom(16 * PIECE + 5000, 2024);
const BAD_PIECE = 5;

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function serve(handler: Handler): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => handler(req, res, ++n));
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/data.bin`,
    requests: () => n,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

function range(req: IncomingMessage): [number, number] | null {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  return m ? [Number(m[1]), Math.min(Number(m[2]), DATA.length - 1)] : null;
}

function sendRange(req: IncomingMessage, res: ServerResponse, body: Buffer = DATA): void {
  const r = range(req);
  if (!r) { res.writeHead(200, { 'content-length': body.length }).end(body); return; }
  res.writeHead(206, { 'content-range': `bytes ${r[0]}-${r[1]}/${body.length}`, 'content-length': r[1] - r[0] + 1 }).end(body.subarray(r[0], r[1] + 1));
}

/** The data with one byte of BAD_PIECE flipped: what a server with a different version of the file sends. */
const CORRUPT = Buffer.from(DATA);
CORRUPT[BAD_PIECE * PIECE + 100]! ^= 0xff;

interface Setup { dir: string; torrentPath: string; meta: Metainfo; close(): Promise<void> }

async function setup(): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-ws-engine-'));
  await writeFile(join(dir, 'data.bin'), DATA);
  const { torrent, meta } = await createTorrent(join(dir, 'data.bin'), { pieceLength: PIECE });
  const torrentPath = join(dir, 'data.torrent');
  await writeFile(torrentPath, torrent);
  return { dir, torrentPath, meta, close: () => rm(dir, { recursive: true, force: true }) };
}

/** Every piece on disk is either never written (zeros, or no file) or exactly the torrent's. */
async function assertNoCorruptByte(path: string, meta: Metainfo): Promise<number> {
  const got = await readFile(path).catch(() => null);
  if (got === null) return 0;
  let good = 0;
  for (let i = 0; i < meta.pieceCount; i++) {
    const slice = got.subarray(i * PIECE, Math.min((i + 1) * PIECE, meta.length));
    if (slice.length === 0 || slice.every((b) => b === 0)) continue;
    assert.ok(createHash('sha1').update(slice).digest().equals(pieceHashAt(meta, i)), `piece ${i} on disk is corrupt`);
    good++;
  }
  return good;
}

/** Downloads until done, until a warning matches `until`, or for waitMs. */
async function download(s: Setup, webSeeds: string[], opts: { webSeedTimeout?: number; waitMs: number; until?: RegExp }): Promise<{ t: Torrent; warnings: string[]; done: boolean; client: Client }> {
  const client = new Client({ trackers: false, ...(opts.webSeedTimeout ? { webSeedTimeout: opts.webSeedTimeout } : {}) });
  const t = await client.add(s.torrentPath, { path: join(s.dir, 'out'), seed: false, webSeeds });
  const warnings: string[] = [];
  const done = t.done || await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), opts.waitMs);
    t.on('warning', (m: string) => {
      warnings.push(m);
      if (opts.until?.test(m)) { clearTimeout(timer); setTimeout(() => resolve(false), 200); }
    });
    t.once('done', () => { clearTimeout(timer); resolve(true); });
  });
  return { t, warnings, done, client };
}

test('a server without Range support: the web seed is disabled with a clear warning; get --timeout exits 5', { timeout: TIMEOUT }, async () => {
  const srv = await serve((_req, res) => { res.writeHead(200, { 'content-length': DATA.length }).end(DATA); });
  const s = await setup();
  try {
    const r = await runCli(['get', s.torrentPath, '-o', join(s.dir, 'out'), '--web-seed', srv.url, '--timeout', '8'], { timeoutMs: 25_000 });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /warning: web seed http:\/\/127\.0\.0\.1:\d+\/data\.bin: the server ignores HTTP Range requests .*; this web seed is disabled/);
    assert.match(r.stderr, /no usable web seed left and no peers connected/);
    assert.match(r.stderr, /shoal: not complete after 8 s \(0\.0%, 0 peers, 0 of 1 web seeds usable\)/);
    assert.equal(await assertNoCorruptByte(join(s.dir, 'out', 'data.bin'), s.meta), 0);
  } finally {
    await srv.close();
    await s.close();
  }
});

/**
 * A server that sends CORRUPT, but holds any range touching BAD_PIECE until every other piece has been sent (at most
 * 8 s). The engine drops the web seed on the second failure, and whatever it had not fetched by then is rightly
 * missing; holding the bad piece back makes "every other piece verified" a fact of the test, not of the machine's load.
 */
function badPieceLastHandler(): Handler {
  const sent = new Set<number>();
  const held: Array<() => void> = [];
  const others = Math.ceil(DATA.length / PIECE) - 1;
  const release = (): void => { for (const h of held.splice(0)) h(); };
  return (req, res) => {
    const r = range(req);
    const first = r ? Math.floor(r[0] / PIECE) : 0;
    const last = r ? Math.floor(r[1] / PIECE) : Math.ceil(DATA.length / PIECE) - 1;
    if (first <= BAD_PIECE && BAD_PIECE <= last && sent.size < others) {
      const timer = setTimeout(release, 8000);
      held.push(() => { clearTimeout(timer); sendRange(req, res, CORRUPT); });
      return;
    }
    for (let i = first; i <= last; i++) if (i !== BAD_PIECE) sent.add(i);
    sendRange(req, res, CORRUPT);
    if (sent.size >= others) release();
  };
}

test('wrong bytes for one range: the piece fails its hash, is fetched again, and the web seed is dropped after 2 failures', { timeout: 45_000 }, async () => {
  const bad = await serve(badPieceLastHandler());
  const s = await setup();
  try {
    const { t, warnings, done, client } = await download(s, [bad.url], { waitMs: 20_000, until: /this web seed is disabled/ });
    try {
      assert.equal(done, false);
      const st = t.stats();
      assert.equal(st.hashFails, 2);
      assert.equal(st.webSeeds, 0);
      assert.equal(st.wantedHave, s.meta.pieceCount - 1, 'every other piece verified');
      assert.ok(warnings.some((w) => /web seed .*: piece 5 failed its hash check; fetching it again/.test(w)), warnings.join('\n'));
      assert.ok(warnings.some((w) => /web seed .*: 2 pieces it sent failed their hash check .*; this web seed is disabled/.test(w)), warnings.join('\n'));
    } finally {
      await client.close();
    }
    assert.equal(await assertNoCorruptByte(join(s.dir, 'out', 'data.bin'), s.meta), s.meta.pieceCount - 1);

    // The CLI's outcome for the same server: exit 5 at --timeout, the warnings on stderr.
    const r = await runCli(['get', s.torrentPath, '-o', join(s.dir, 'out2'), '--web-seed', bad.url, '--timeout', '10'], { timeoutMs: 30_000 });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /this web seed is disabled/);
    await assertNoCorruptByte(join(s.dir, 'out2', 'data.bin'), s.meta);
  } finally {
    await bad.close();
    await s.close();
  }
});

test('a lying web seed next to a good one: the download completes byte for byte and the liar is dropped', { timeout: TIMEOUT }, async () => {
  const bad = await serve((req, res) => sendRange(req, res, CORRUPT));
  const good = await serve((req, res) => sendRange(req, res));
  const s = await setup();
  try {
    const { t, done, client } = await download(s, [bad.url, good.url], { waitMs: 10_000 });
    try {
      assert.equal(done, true);
      assert.ok((await readFile(join(s.dir, 'out', 'data.bin'))).equals(DATA));
      const ws = t.webSeedStats();
      // The liar is dropped when it failed twice alone, or when a good copy proved its blocks wrong.
      const liar = ws.find((w) => w.url === bad.url)!;
      if (t.stats().hashFails > 0) assert.equal(liar.usable, false, JSON.stringify(ws));
    } finally {
      await client.close();
    }
  } finally {
    await bad.close();
    await good.close();
    await s.close();
  }
});

test('500 then recovery: one warning with the retry delay, then the download completes (exit 0)', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res, n) => {
    if (n <= 3) { res.writeHead(500).end('oops'); return; }
    sendRange(req, res);
  });
  const s = await setup();
  try {
    const r = await runCli(['get', s.torrentPath, '-o', join(s.dir, 'out'), '--web-seed', srv.url, '--timeout', '15'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    const warned = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    assert.ok(warned.length >= 1 && warned.length <= 2, warned.join('\n'));
    assert.match(warned[0]!, /^warning: web seed http:\/\/127\.0\.0\.1:\d+\/data\.bin: server error 500 Internal Server Error; will retry in [\d.]+ m?s$/);
    assert.ok((await readFile(join(s.dir, 'out', 'data.bin'))).equals(DATA));
    assert.match(r.stdout, /from web seeds \(0% from peers\)/);
  } finally {
    await srv.close();
    await s.close();
  }
});

test('a server that stalls: a stall warning and retry (library); forever stalled, get --timeout exits 5', { timeout: TIMEOUT }, async () => {
  const stalled = new Set<ServerResponse>();
  let stallFirst = 2;
  const srv = await serve((req, res) => {
    const r = range(req)!;
    if (stallFirst > 0) {
      // Headers and half the body, then nothing: the connection stays open.
      stallFirst--;
      stalled.add(res);
      res.writeHead(206, { 'content-range': `bytes ${r[0]}-${r[1]}/${DATA.length}`, 'content-length': r[1] - r[0] + 1 });
      res.write(DATA.subarray(r[0], r[0] + Math.floor((r[1] - r[0] + 1) / 2)));
      return;
    }
    sendRange(req, res);
  });
  const forever = await serve((req, res) => {
    const r = range(req)!;
    stalled.add(res);
    res.writeHead(206, { 'content-range': `bytes ${r[0]}-${r[1]}/${DATA.length}`, 'content-length': r[1] - r[0] + 1 });
    res.write(DATA.subarray(r[0], r[0] + 1000));
  });
  const s = await setup();
  try {
    const { warnings, done, client } = await download(s, [srv.url], { webSeedTimeout: 800, waitMs: 10_000 });
    await client.close();
    assert.equal(done, true, warnings.join('\n'));
    assert.ok(warnings.some((w) => /the transfer stalled: no data for 800 ms after \d+ of \d+ bytes .*; will retry in/.test(w)), warnings.join('\n'));
    assert.ok((await readFile(join(s.dir, 'out', 'data.bin'))).equals(DATA));

    const r = await runCli(['get', s.torrentPath, '-o', join(s.dir, 'out2'), '--web-seed', forever.url, '--timeout', '2'], { timeoutMs: 15_000 });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /shoal: not complete after 2 s \(0\.0%, 0 peers, 1 of 1 web seeds usable\)/);
    assert.equal(await assertNoCorruptByte(join(s.dir, 'out2', 'data.bin'), s.meta), 0);
  } finally {
    for (const res of stalled) res.destroy();
    await srv.close();
    await forever.close();
    await s.close();
  }
});
