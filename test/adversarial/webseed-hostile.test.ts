// Hostile and broken web seed servers (node:http on 127.0.0.1): each failure gets its kind, its retry policy
// and a message a user can act on; wrong bytes are caught by the piece hash, not trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSeed, WebSeedError, type WebSeedFailure } from '../../src/webseed/index.js';
import { pieceHashAt, pieceLengthAt } from '../../src/metainfo/types.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';

const TIMEOUT = 10_000;
const PIECE = 32 * 1024;
const { meta, data } = makeMetainfo([{ path: ['file.bin'], data: pseudoRandom(8 * PIECE + 1000, 99) }], PIECE, 'file.bin');

interface Seen { url: string; range: string | undefined; at: number }
type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

/** A loopback HTTP server; `seen` records every request. */
async function serve(handler: Handler): Promise<{ base: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range, at: performance.now() });
    handler(req, res, seen.length);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/** A correct ranged answer from `body` (single range only, as web seeds ask). */
function sendRange(req: IncomingMessage, res: ServerResponse, body: Buffer = data): void {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) { res.writeHead(200, { 'content-length': body.length }).end(body); return; }
  const a = Number(m[1]), b = Math.min(Number(m[2]), body.length - 1);
  res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${body.length}`, 'content-length': b - a + 1 }).end(body.subarray(a, b + 1));
}

async function failure(p: Promise<unknown>): Promise<WebSeedError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof WebSeedError, `expected a WebSeedError, got ${String(e)}`);
  return e;
}

function check(e: WebSeedError, kind: WebSeedFailure, retryable: boolean, message: RegExp): void {
  assert.equal(e.kind, kind, e.message);
  assert.equal(e.retryable, retryable, e.message);
  assert.equal(e.code, 'EWEBSEED');
  assert.match(e.message, /^web seed http:\/\/127\.0\.0\.1:\d+\/\S+: /);
  assert.match(e.message, message);
  assert.match(e.message, retryable ? /; will retry in [\d.]+ m?s$/ : /; this web seed is disabled$/);
}

const piece = (i: number): Buffer => Buffer.alloc(pieceLengthAt(meta, i));
const hashOk = (i: number, b: Buffer): boolean => createHash('sha1').update(b).digest().equals(pieceHashAt(meta, i));

test('a server that ignores Range (200 + a 4 GiB body) is range-ignored, and the body is abandoned at once', { timeout: TIMEOUT }, async () => {
  let sent = 0;
  const srv = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': String(4 * 1024 ** 3) });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = (): void => {
      // Bounded: stops when the client goes away, or after 64 MiB in any case.
      while (!res.destroyed && sent < 64 * 1024 * 1024) { sent += chunk.length; if (!res.write(chunk)) { res.once('drain', pump); return; } }
    };
    res.on('close', () => res.removeAllListeners('drain'));
    pump();
  });
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 3000 });
  try {
    const e = await failure(ws.fetch(1, 0, PIECE, piece(1)));
    check(e, 'range-ignored', false, /ignores HTTP Range requests \(answered 200 with the whole 4294967296-byte file instead of 206 for bytes=32768-65535\)/);
    assert.equal(e.status, 200);
    assert.equal(ws.disabled, true);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(sent < 16 * 1024 * 1024, `the server pushed ${sent} bytes before the client hung up`);
    assert.equal(ws.bytesReceived, 0);
    // Disabled: the next fetch fails at once without asking the server again.
    const again = await failure(ws.fetch(2, 0, PIECE, piece(2)));
    assert.equal(again.kind, 'range-ignored');
    assert.equal(srv.seen.length, 1);
  } finally {
    await ws.close();
    await srv.close();
  }
});

test('wrong bytes for one range: fetch succeeds (bytes are unverified) and the piece hash check catches it', { timeout: TIMEOUT }, async () => {
  const bad = Buffer.from(data);
  bad[3 * PIECE + 777] ^= 0xff;   // one flipped byte in piece 3
  const srv = await serve((req, res) => sendRange(req, res, (req.headers.range ?? '').startsWith(`bytes=${3 * PIECE}-`) ? bad : data));
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 3000 });
  try {
    const results = await Promise.all(Array.from({ length: meta.pieceCount }, async (_, i) => {
      const b = piece(i);
      await ws.fetch(i, 0, b.length, b);
      return hashOk(i, b);
    }));
    assert.deepEqual(results.map((ok, i) => (ok ? -1 : i)).filter((i) => i >= 0), [3], 'only piece 3 fails its hash');
    assert.equal(ws.stats().failures, 0);
    assert.equal(ws.disabled, false);
  } finally {
    await ws.close();
    await srv.close();
  }
});

test('500 twice then recovery: retryable server-error, exponential back-off between attempts, then success', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res, n) => {
    if (n <= 2) { res.writeHead(500, { 'content-type': 'text/plain' }).end('boom'); return; }
    sendRange(req, res);
  });
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 3000, backoffBaseMs: 150, backoffMaxMs: 10_000 });
  try {
    const e1 = await failure(ws.fetch(0, 0, PIECE, piece(0)));
    check(e1, 'server-error', true, /: server error 500 Internal Server Error; will retry in/);
    assert.equal(e1.status, 500);
    assert.ok(ws.stats().backoffUntil !== undefined, 'in back-off after a 5xx');
    const e2 = await failure(ws.fetch(0, 0, PIECE, piece(0)));   // waits out the first back-off, then fails again
    check(e2, 'server-error', true, /server error 500/);
    const b = piece(0);
    await ws.fetch(0, 0, PIECE, b);                               // waits out the doubled back-off, then succeeds
    assert.ok(hashOk(0, b));
    const gaps = [srv.seen[1]!.at - srv.seen[0]!.at, srv.seen[2]!.at - srv.seen[1]!.at];
    assert.ok(gaps[0]! >= 140, `first retry after ${gaps[0]} ms, back-off was 150 ms`);
    assert.ok(gaps[1]! >= 290, `second retry after ${gaps[1]} ms, back-off was 300 ms`);
    const s = ws.stats();
    assert.equal(s.failures, 2);
    assert.equal(s.backoffUntil, undefined, 'success clears the back-off');
    assert.equal(ws.disabled, false);
    assert.match(s.lastError ?? '', /server error 500/);
  } finally {
    await ws.close();
    await srv.close();
  }
});

test('503 with Retry-After: the back-off honours it', { timeout: TIMEOUT }, async () => {
  const srv = await serve((_req, res) => { res.writeHead(503, { 'retry-after': '7' }).end(); });
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 3000, backoffBaseMs: 100 });
  try {
    const e = await failure(ws.fetch(0, 0, PIECE, piece(0)));
    check(e, 'server-error', true, /server error 503 Service Unavailable; will retry in [67]\.\d s$/);
    assert.ok(e.retryAt! - Date.now() > 6000);
    // A caller that gives up while waiting out the back-off gets its own abort reason, not a seed failure.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(ws.fetch(0, 0, PIECE, piece(0), ac.signal), { name: 'AbortError' });
    assert.equal(srv.seen.length, 1);
    assert.equal(ws.stats().failures, 1);
  } finally {
    await ws.close();
    await srv.close();
  }
});

test('a stalled server times out: no headers, and a body that stops half way', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res) => {
    if (req.url === '/silent.bin') return;   // never answers
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
    const a = Number(m[1]), b = Number(m[2]);
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}`, 'content-length': b - a + 1 });
    res.write(data.subarray(a, a + 1000));   // then nothing
  });
  const silent = new WebSeed({ url: `${srv.base}/silent.bin`, meta, timeoutMs: 300 });
  const stalling = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 300 });
  try {
    const t0 = performance.now();
    const e1 = await failure(silent.fetch(0, 0, PIECE, piece(0)));
    check(e1, 'timeout', true, /: no response within 300 ms;/);
    const e2 = await failure(stalling.fetch(1, 0, PIECE, piece(1)));
    check(e2, 'timeout', true, /: the transfer stalled: no data for 300 ms after 1000 of 32768 bytes \(range bytes=32768-65535\);/);
    assert.ok(performance.now() - t0 < 3000, 'timeouts fire promptly');
    assert.equal(stalling.bytesReceived, 1000);
  } finally {
    await silent.close();
    await stalling.close();
    await srv.close();
  }
});

test('a caller abort mid-body rejects with the abort reason and does not count as a seed failure', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res) => {
    res.writeHead(206, { 'content-range': `bytes 0-${PIECE - 1}/${data.length}`, 'content-length': PIECE });
    res.write(data.subarray(0, 100));
  });
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 5000 });
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('picker cancelled')), 100);
    await assert.rejects(ws.fetch(0, 0, PIECE, piece(0), ac.signal), /picker cancelled/);
    assert.deepEqual([ws.stats().failures, ws.stats().inFlight, ws.disabled], [0, 0, false]);
  } finally {
    await ws.close();
    await srv.close();
  }
});

test('a server that closes early is short-body (retryable)', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
    const a = Number(m[1]), b = Number(m[2]);
    if (req.url === '/chunked.bin') {
      // A well-formed chunked response that simply ends early.
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}` });
      res.end(data.subarray(a, a + 5000));
      return;
    }
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}`, 'content-length': b - a + 1 });
    res.write(data.subarray(a, a + 4096), () => res.socket?.destroy());
  });
  const ws = new WebSeed({ url: `${srv.base}/file.bin`, meta, timeoutMs: 3000, backoffBaseMs: 10 });
  const chunked = new WebSeed({ url: `${srv.base}/chunked.bin`, meta, timeoutMs: 3000, backoffBaseMs: 10 });
  try {
    const e = await failure(ws.fetch(2, 0, PIECE, piece(2)));
    check(e, 'short-body', true, /: the connection closed after 4096 of 32768 bytes \(range bytes=65536-98303; /);
    const e2 = await failure(chunked.fetch(2, 0, PIECE, piece(2)));
    check(e2, 'short-body', true, /: the response ended after 5000 of 32768 bytes \(range bytes=65536-98303\);/);
    assert.equal(ws.disabled || chunked.disabled, false);
  } finally {
    await ws.close();
    await chunked.close();
    await srv.close();
  }
});

test('404, 410 and 416 are permanent and disable the seed', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res) => {
    if (req.url === '/gone.bin') res.writeHead(410).end('gone');
    else if (req.url === '/short.bin') res.writeHead(416, { 'content-range': 'bytes */5000' }).end();
    else res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
  });
  const cases: [string, WebSeedFailure, number, RegExp][] = [
    ['missing.bin', 'not-found', 404, /: 404 Not Found: the server does not have this file \(check the url-list entry\);/],
    ['gone.bin', 'gone', 410, /: 410 Gone: the file was removed from the server;/],
    ['short.bin', 'range-not-satisfiable', 416, /: 416 Range Not Satisfiable for bytes=32768-65535: the server's file is 5000 bytes but the torrent says 263144 \(a different version of the file\?\);/],
  ];
  try {
    for (const [path, kind, status, message] of cases) {
      const ws = new WebSeed({ url: `${srv.base}/${path}`, meta, timeoutMs: 3000 });
      try {
        const e = await failure(ws.fetch(1, 0, PIECE, piece(1)));
        check(e, kind, false, message);
        assert.equal(e.status, status);
        assert.equal(ws.disabled, true);
      } finally {
        await ws.close();
      }
    }
  } finally {
    await srv.close();
  }
});

test('redirects: followed when bounded, a loop is too-many-redirects, an escape from the sandbox is refused', { timeout: TIMEOUT }, async () => {
  process.env.SHOAL_SANDBOX = '1';   // the test runner sets it; make this test independent of how it is run
  const srv = await serve((req, res) => {
    if (req.url === '/moved.bin') res.writeHead(302, { location: '/real/file.bin' }).end();
    else if (req.url === '/real/file.bin') sendRange(req, res);
    else if (req.url === '/loop-a') res.writeHead(301, { location: '/loop-b' }).end();
    else if (req.url === '/loop-b') res.writeHead(307, { location: '/loop-a' }).end();
    else if (req.url === '/away') res.writeHead(302, { location: 'http://192.0.2.1/file.bin' }).end();
    else res.writeHead(404).end();
  });
  try {
    const moved = new WebSeed({ url: `${srv.base}/moved.bin`, meta, timeoutMs: 3000 });
    const b = piece(4);
    await moved.fetch(4, 0, b.length, b);
    assert.ok(hashOk(4, b));
    await moved.close();

    const loop = new WebSeed({ url: `${srv.base}/loop-a`, meta, timeoutMs: 3000, maxRedirects: 3 });
    const before = srv.seen.length;
    const e = await failure(loop.fetch(0, 0, PIECE, piece(0)));
    check(e, 'too-many-redirects', false, /\/loop-a: more than 3 redirects \(last to http:\/\/127\.0\.0\.1:\d+\/loop-a\), a redirect loop;/);
    assert.equal(srv.seen.length - before, 4, 'the first request and 3 redirects, no more');
    await loop.close();

    const away = new WebSeed({ url: `${srv.base}/away`, meta, timeoutMs: 3000 });
    const e2 = await failure(away.fetch(0, 0, PIECE, piece(0)));
    assert.equal(e2.kind, 'network');
    assert.equal(e2.retryable, false);
    assert.match(e2.message, /^web seed http:\/\/192\.0\.2\.1\/file\.bin: 192\.0\.2\.1 is outside the sandbox/);
    await away.close();
  } finally {
    await srv.close();
  }
});

test('a 206 with the wrong Content-Range or too many bytes is bad-response; nothing past the buffer is written', { timeout: TIMEOUT }, async () => {
  const srv = await serve((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
    const a = Number(m[1]), b = Number(m[2]);
    if (req.url === '/shifted.bin') {
      res.writeHead(206, { 'content-range': `bytes ${a + 1}-${b + 1}/${data.length}`, 'content-length': b - a + 1 }).end(data.subarray(a + 1, b + 2));
    } else {
      // Says the right range but sends more than it (chunked, so the HTTP framing allows it).
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}` });
      res.end(Buffer.alloc(b - a + 1 + 500, 0x55));
    }
  });
  try {
    const shifted = new WebSeed({ url: `${srv.base}/shifted.bin`, meta, timeoutMs: 3000 });
    const e = await failure(shifted.fetch(0, 0, 1000, Buffer.alloc(1000)));
    check(e, 'bad-response', false, /: answered 206 with Content-Range "bytes 1-1000\/263144" to a request for bytes=0-999;/);
    await shifted.close();

    const long = new WebSeed({ url: `${srv.base}/long.bin`, meta, timeoutMs: 3000 });
    const backing = Buffer.alloc(1200, 0xaa);
    const e2 = await failure(long.fetch(0, 0, 1000, backing.subarray(0, 1000)));
    check(e2, 'bad-response', false, /: sent more than the 1000 bytes asked for with bytes=0-999;/);
    assert.ok(backing.subarray(1000).every((x) => x === 0xaa), 'bytes past the caller\'s buffer were written');
    await long.close();
  } finally {
    await srv.close();
  }
});

test('connection refused is a retryable network failure', { timeout: TIMEOUT }, async () => {
  const srv = await serve(() => {});
  const base = srv.base;
  await srv.close();   // nothing listens there now
  const ws = new WebSeed({ url: `${base}/file.bin`, meta, timeoutMs: 3000, backoffBaseMs: 50 });
  try {
    const e = await failure(ws.fetch(0, 0, PIECE, piece(0)));
    check(e, 'network', true, /: connection refused \(/);
  } finally {
    await ws.close();
  }
});
