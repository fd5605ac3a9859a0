import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { request } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { StreamServer, type StreamSource } from '../../src/stream/server.js';
import { DiskSource, httpRequest } from '../helpers/stream-source.js';

const TEXT = 'the only file\n';
const BIG = 64 * 1024 * 1024;
let dir: string;
let source: DiskSource;
let server: StreamServer;
let port: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-stream-adv-'));
  await writeFile(join(dir, 'a.txt'), TEXT);
  await writeFile(join(dir, 'big.bin'), '');
  await truncate(join(dir, 'big.bin'), BIG);
  source = new DiskSource('adv', [
    { index: 0, path: 'a.txt', length: TEXT.length, disk: join(dir, 'a.txt') },
    { index: 1, path: 'line\nbreak\r#EXTINF:0,evil.mp4', length: TEXT.length, disk: join(dir, 'a.txt') },
    { index: 2, path: 'big.bin', length: BIG, disk: join(dir, 'big.bin') },
  ]);
  server = new StreamServer(source);
  ({ port } = await server.listen());
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Sends raw bytes and returns everything the server answers until it closes (bounded by 5 s). */
async function raw(text: string, to = port): Promise<string> {
  const sock = connect(to, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.setTimeout(5000, () => sock.destroy());
  await once(sock, 'connect');
  // write, not end: a half-closed client is one that hung up, and the server rightly stops answering it.
  sock.write(text);
  await once(sock, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

const status = (response: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
const body = (response: string): string => response.slice(response.indexOf('\r\n\r\n') + 4);

test('path traversal finds nothing: files are addressed by index only', async () => {
  const host = `Host: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`;
  for (const target of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/files/../../etc/passwd', '/files/%2e%2e/etc/passwd',
    '/files/0%2f..%2f..%2fetc%2fpasswd', '//etc/passwd', '*']) {
    assert.equal(status(await raw(`GET ${target} HTTP/1.1\r\n${host}`)), 404, target);
  }
  assert.equal(status(await raw(`GET /files/ 0 HTTP/1.1\r\n${host}`)), 400, 'refused by the HTTP parser');
  // Whatever follows the index is a display name: file 0 is served, never what the name points at.
  const r = await raw(`GET /files/0/../../../../etc/passwd HTTP/1.1\r\n${host}`);
  assert.equal(status(r), 200);
  assert.equal(body(r), TEXT);
  const abs = await raw(`GET http://127.0.0.1:${port}/files/0/a.txt HTTP/1.1\r\n${host}`);
  assert.equal(status(abs), 200, 'absolute-form request targets work');
  assert.equal(body(abs), TEXT);
});

test('a loopback server answers only to loopback names (no DNS rebinding)', async () => {
  const ask = async (hostLine: string): Promise<number> => status(await raw(`GET /files/0 HTTP/1.1\r\n${hostLine}Connection: close\r\n\r\n`));
  for (const h of ['evil.example', `evil.example:${port}`, '127.0.0.1.evil.example', 'localhost.evil.example', '10.0.0.1',
    '[::2]', 'a b', '127.0.0.1:99999x']) {
    const code = await ask(`Host: ${h}\r\n`);
    assert.ok(code === 403 || code === 400, `Host: ${h} gave ${code}`);
  }
  assert.equal(status(await raw('GET /files/0 HTTP/1.0\r\n\r\n')), 403, 'no Host at all');
  for (const h of [`127.0.0.1:${port}`, 'localhost', `LOCALHOST:${port}`, '127.1.2.3', '[::1]:80', 'player.localhost']) {
    assert.equal(await ask(`Host: ${h}\r\n`), 200, h);
  }
});

test('the playlist cannot be split by control characters in a file name', async () => {
  const src = new DiskSource('x', [{ index: 0, path: 'a\nhttp://evil.example/\r#EXTINF:0,b.mp4', length: TEXT.length, disk: join(dir, 'a.txt') }]);
  const srv = new StreamServer(src);
  const { url } = await srv.listen();
  try {
    const lines = (await httpRequest(`${url}playlist.m3u`)).body.toString().split(/\r\n|\r|\n/).filter((l) => l !== '');
    assert.equal(lines.length, 3, lines.join(' | '));
    assert.equal(lines[0], '#EXTM3U');
    assert.ok(lines[1]!.startsWith('#EXTINF:-1,a http://evil.example/ #EXTINF:0,b.mp4'));
    assert.equal(lines[2], srv.urlFor(0));
    assert.ok(!lines.some((l) => l.startsWith('http://evil')));
  } finally {
    await srv.close();
  }
});

test('hostile Range headers are cheap and safe', async () => {
  const url = `http://127.0.0.1:${port}/files/2`;
  const manyRanges = `bytes=${Array.from({ length: 2000 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`; // ~20 KB
  const started = Date.now();
  const r = await raw(`HEAD /files/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: ${manyRanges.slice(0, 12_000)}\r\nConnection: close\r\n\r\n`);
  assert.equal(status(r), 200, 'too many ranges: ignored, whole file');
  assert.ok(Date.now() - started < 2000);
  const huge = await httpRequest(url, { method: 'HEAD', headers: { Range: 'bytes=99999999999999999999999999-' } });
  assert.equal(huge.status, 416);
  const overflow = await httpRequest(url, { method: 'HEAD', headers: { Range: 'bytes=0-99999999999999999999999999' } });
  assert.equal(overflow.status, 206);
  assert.equal(overflow.headers['content-range'], `bytes 0-${BIG - 1}/${BIG}`);
});

test('many players hanging up at once: every reader is destroyed', { timeout: 20_000 }, async () => {
  const before = source.opened.length;
  const N = 16;
  await Promise.all(Array.from({ length: N }, async (_, i) => {
    const req = request(`http://127.0.0.1:${port}/files/2`, { agent: false, headers: { Range: `bytes=${i * 1024 * 1024}-` } });
    req.on('error', () => { /* we hang up */ });
    req.end();
    const [res] = await once(req, 'response');
    await once(res, 'data');
    req.destroy();
  }));
  const readers = source.opened.slice(before);
  assert.equal(readers.length, N);
  await Promise.all(readers.map((r) => (r.stream.closed ? undefined : once(r.stream, 'close').catch(() => undefined))));
  for (const r of readers) assert.ok(r.stream.destroyed && r.stream.bytesRead < BIG);
});

/** A source whose reader misbehaves in a chosen way. */
function faulty(kind: 'throws' | 'errors' | 'short' | 'long'): StreamSource {
  return {
    name: 'faulty',
    files: [{ index: 0, path: 'f.mp4', length: 1000 }],
    createReadStream(_i, { start, end }) {
      if (kind === 'throws') throw new Error('piece 3 failed its hash\ntoo often');
      if (kind === 'errors') return new Readable({ read() { this.destroy(new Error('torrent removed')); } });
      const n = end - start + 1;
      return Readable.from(kind === 'short' ? [Buffer.alloc(n - 1, 7)] : [Buffer.alloc(n, 7), Buffer.alloc(2, 7)]);
    },
  };
}

test('a reader that fails before the first byte gives 503; one that yields the wrong length cuts the connection', { timeout: 20_000 }, async () => {
  for (const kind of ['throws', 'errors'] as const) {
    const srv = new StreamServer(faulty(kind));
    const { url } = await srv.listen();
    try {
      const r = await httpRequest(`${url}files/0`);
      assert.equal(r.status, 503, kind);
      assert.equal(r.body.toString().split('\n').filter(Boolean).length, 1, 'one line');
      assert.equal(r.headers['content-range'], undefined);
    } finally {
      await srv.close();
    }
  }
  for (const kind of ['short', 'long'] as const) {
    const srv = new StreamServer(faulty(kind));
    const { url } = await srv.listen();
    try {
      if (kind === 'short') {
        // The client must not take a short body for the file.
        await assert.rejects(httpRequest(`${url}files/0`), (e: NodeJS.ErrnoException) => /aborted|ECONNRESET|socket hang up/i.test(`${e.code} ${e.message}`));
      } else {
        // Bytes beyond Content-Length never leave: the response is exactly the range asked for.
        const r = await raw(`GET /files/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, Number(new URL(url).port));
        assert.equal(status(r), 200);
        assert.equal(body(r).length, 1000);
      }
    } finally {
      await srv.close();
    }
  }
});

test('a port in use is a clear error', async () => {
  const other = new StreamServer(source, { port });
  await assert.rejects(other.listen(), /cannot serve on 127\.0\.0\.1:\d+: EADDRINUSE/);
  assert.throws(() => new StreamServer(source, { port: 70000 }), /0\.\.65535/);
  assert.ok((await readFile(join(dir, 'a.txt'), 'utf8')) === TEXT);
});
