import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamServer } from '../../src/stream/server.js';
import { FFMPEG, probeDuration, runBinary, testVideos, type TestVideos } from '../helpers/media.js';
import { mulberry32 } from '../helpers/random.js';
import { DiskSource, httpRequest } from '../helpers/stream-source.js';

const TEXT = 'hello <world> & "friends"\n';
const BIG = 64 * 1024 * 1024;
const ID = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';

let dir: string;
let videos: TestVideos | null = null;
let source: DiskSource;
let server: StreamServer;
let base: string;
const bytes = new Map<number, Buffer>();

/** Resolves when the stream has closed; pipeline destroys it with ERR_STREAM_PREMATURE_CLOSE, which is not a failure here. */
function closed(stream: NodeJS.ReadableStream & { closed: boolean; once(ev: 'close', f: () => void): unknown }): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', resolve));
}

async function setup(t: TestContext): Promise<boolean> {
  videos ??= await testVideos(t);
  return videos !== null;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-stream-'));
  await writeFile(join(dir, 'readme.txt'), TEXT);
  await writeFile(join(dir, 'empty.txt'), '');
  await writeFile(join(dir, 'big.bin'), '');
  await truncate(join(dir, 'big.bin'), BIG); // sparse: costs no disk and reads fast
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(t: TestContext): Promise<boolean> {
  if (!(await setup(t))) return false;
  if (server) return true;
  const v = videos!;
  for (const [i, p] of [[0, v.faststart], [1, v.moovAtEnd], [5, v.matroska]] as const) bytes.set(i, await readFile(p));
  source = new DiskSource('Films <&> "test"', [
    { index: 0, path: 'Film/faststart.mp4', length: bytes.get(0)!.length, disk: v.faststart },
    { index: 1, path: 'Film/moov at end #1?.mp4', length: bytes.get(1)!.length, disk: v.moovAtEnd },
    { index: 2, path: 'notes/<b>readme</b>.txt', length: Buffer.byteLength(TEXT), disk: join(dir, 'readme.txt') },
    { index: 3, path: 'empty.txt', length: 0, disk: join(dir, 'empty.txt') },
    // index 4 would be a padding file: not listed
    { index: 5, path: 'Film/video.mkv', length: bytes.get(5)!.length, disk: v.matroska },
    { index: 6, path: 'big.bin', length: BIG, disk: join(dir, 'big.bin') },
  ], ID);
  server = new StreamServer(source);
  const { url, port } = await server.listen();
  assert.equal(url, `http://127.0.0.1:${port}/`, 'binds loopback by default');
  base = url.slice(0, -1);
  return true;
}

test('ffprobe reads the duration of both MP4 layouts and the MKV over HTTP', { timeout: 60_000 }, async (t) => {
  if (!(await start(t))) return;
  for (const i of [0, 1, 5]) {
    const d = await probeDuration(server.urlFor(i));
    assert.ok(Math.abs(d - videos!.durationSeconds) < 0.5, `file ${i}: duration ${d}`);
  }
  const ranges = source.opened.filter((o) => o.index === 1);
  assert.ok(ranges.some((o) => o.start > 0), 'the moov-at-end file made ffprobe seek with a Range request');
});

test('ffmpeg seeks to the middle and decodes a frame over HTTP', { timeout: 60_000 }, async (t) => {
  if (!(await start(t))) return;
  for (const i of [0, 1, 5]) {
    const frame = await runBinary(FFMPEG, ['-v', 'error', '-ss', String(videos!.durationSeconds / 2), '-i', server.urlFor(i),
      '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'], 30_000);
    assert.equal(frame.length, 320 * 240, `file ${i}: one 320x240 gray frame`);
  }
});

test('byte ranges equal the file bytes; 200 for the whole file; headers', { timeout: 30_000 }, async (t) => {
  if (!(await start(t))) return;
  const file = bytes.get(1)!;
  const url = server.urlFor(1);
  assert.match(url, /\/files\/1\/Film\/moov%20at%20end%20%231%3F\.mp4$/);
  const whole = await httpRequest(url);
  assert.equal(whole.status, 200);
  assert.ok(whole.body.equals(file));
  assert.equal(whole.headers['content-length'], String(file.length));
  assert.equal(whole.headers['accept-ranges'], 'bytes');
  assert.equal(whole.headers['content-type'], 'video/mp4');
  assert.equal(whole.headers['etag'], `"${ID}-1"`);
  assert.equal(whole.headers['x-content-type-options'], 'nosniff');
  assert.equal(whole.headers['content-disposition'], "inline; filename*=UTF-8''moov%20at%20end%20%231%3F.mp4");

  const rnd = mulberry32(42);
  for (let k = 0; k < 20; k++) {
    const a = Math.floor(rnd() * file.length);
    const b = Math.min(file.length - 1, a + Math.floor(rnd() * 200_000));
    const r = await httpRequest(url, { headers: { Range: `bytes=${a}-${b}` } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes ${a}-${b}/${file.length}`);
    assert.equal(r.headers['content-length'], String(b - a + 1));
    assert.ok(r.body.equals(file.subarray(a, b + 1)), `bytes ${a}-${b}`);
  }
  const open = await httpRequest(url, { headers: { Range: `bytes=${file.length - 10}-` } });
  assert.equal(open.status, 206);
  assert.ok(open.body.equals(file.subarray(file.length - 10)));
  const suffix = await httpRequest(url, { headers: { Range: 'bytes=-1000' } });
  assert.equal(suffix.headers['content-range'], `bytes ${file.length - 1000}-${file.length - 1}/${file.length}`);
  assert.ok(suffix.body.equals(file.subarray(file.length - 1000)));
  const malformed = await httpRequest(url, { headers: { Range: 'bytes=oops' } });
  assert.equal(malformed.status, 200, 'a malformed Range is ignored');
  assert.equal(malformed.body.length, file.length);
  const multi = await httpRequest(url, { headers: { Range: 'bytes=0-9,100-109' } });
  assert.equal(multi.status, 200, 'disjoint ranges get the whole file');

  // If-Range: our ETag keeps the range, anything else (a date, another tag) gets the whole file.
  const same = await httpRequest(url, { headers: { Range: 'bytes=0-9', 'If-Range': `"${ID}-1"` } });
  assert.equal(same.status, 206);
  for (const other of ['"other"', 'Tue, 01 Dec 2026 10:00:00 GMT', `W/"${ID}-1"`]) {
    const r = await httpRequest(url, { headers: { Range: 'bytes=0-9', 'If-Range': other } });
    assert.equal(r.status, 200, other);
    assert.equal(r.body.length, file.length);
  }
  const text = await httpRequest(server.urlFor(2));
  assert.equal(text.body.toString(), TEXT);
  assert.equal(text.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(text.headers['content-security-policy'], 'sandbox', 'torrent content runs no scripts with our origin');
  const empty = await httpRequest(server.urlFor(3));
  assert.equal(empty.status, 200);
  assert.equal(empty.body.length, 0);
});

test('HEAD answers the headers of GET and opens no reader', async (t) => {
  if (!(await start(t))) return;
  const before = source.opened.length;
  const size = bytes.get(0)!.length;
  const h = await httpRequest(server.urlFor(0), { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.headers['content-length'], String(size));
  assert.equal(h.headers['accept-ranges'], 'bytes');
  assert.equal(h.body.length, 0);
  const hr = await httpRequest(server.urlFor(0), { method: 'HEAD', headers: { Range: 'bytes=10-19' } });
  assert.equal(hr.status, 206);
  assert.equal(hr.headers['content-range'], `bytes 10-19/${size}`);
  assert.equal(hr.headers['content-length'], '10');
  const hi = await httpRequest(`${base}/`, { method: 'HEAD' });
  assert.equal(hi.status, 200);
  assert.equal(hi.body.length, 0);
  assert.equal(source.opened.length, before);
});

test('416 with Content-Range bytes */size when no range overlaps the file', async (t) => {
  if (!(await start(t))) return;
  const size = bytes.get(0)!.length;
  for (const range of [`bytes=${size}-`, `bytes=${size + 100}-${size + 200}`, 'bytes=-0']) {
    const r = await httpRequest(server.urlFor(0), { headers: { Range: range } });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], `bytes */${size}`);
  }
  const e = await httpRequest(server.urlFor(3), { headers: { Range: 'bytes=0-' } });
  assert.equal(e.status, 416, 'nothing in an empty file overlaps');
  assert.equal(e.headers['content-range'], 'bytes */0');
});

test('only GET and HEAD: 405 with Allow', async (t) => {
  if (!(await start(t))) return;
  const before = source.opened.length;
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
    for (const url of [server.urlFor(0), `${base}/`]) {
      const r = await httpRequest(url, { method });
      assert.equal(r.status, 405, `${method} ${url}`);
      assert.equal(r.headers['allow'], 'GET, HEAD');
    }
  }
  assert.equal(source.opened.length, before);
});

test('the index lists every file with escaped names; the playlist lists the media files', async (t) => {
  if (!(await start(t))) return;
  const idx = await httpRequest(`${base}/`);
  assert.equal(idx.status, 200);
  assert.equal(idx.headers['content-type'], 'text/html; charset=utf-8');
  const html = idx.body.toString();
  assert.ok(html.includes('<title>Films &lt;&amp;&gt; &quot;test&quot;</title>'));
  assert.ok(html.includes('notes/&lt;b&gt;readme&lt;/b&gt;.txt'));
  assert.ok(!html.includes('<b>'), 'no markup from file names');
  for (const f of source.files) assert.ok(html.includes(`href="${new URL(server.urlFor(f.index)).pathname}"`), f.path);
  assert.ok(html.includes('href="/playlist.m3u"'));

  const pl = await httpRequest(`${base}/playlist.m3u`);
  assert.equal(pl.status, 200);
  assert.match(String(pl.headers['content-type']), /^audio\/x-mpegurl/);
  const lines = pl.body.toString().trim().split('\n');
  assert.equal(lines[0], '#EXTM3U');
  const urls = lines.filter((l) => !l.startsWith('#'));
  assert.deepEqual(urls, [server.urlFor(0), server.urlFor(1), server.urlFor(5)]);
  assert.deepEqual(lines.filter((l) => l.startsWith('#EXTINF')), ['#EXTINF:-1,Film/faststart.mp4', '#EXTINF:-1,Film/moov at end #1?.mp4', '#EXTINF:-1,Film/video.mkv']);
  for (const u of urls) assert.equal((await httpRequest(u, { method: 'HEAD' })).status, 200);
});

test('unknown paths are 404; files are addressed by index only', async (t) => {
  if (!(await start(t))) return;
  for (const p of ['/files/4/x', '/files/7', '/files/01', '/files/-1', '/files/abc', '/files/', '/files', '/nope', '/files/99999999999']) {
    assert.equal((await httpRequest(base + p)).status, 404, p);
  }
  const byIndex = await httpRequest(`${base}/files/2/whatever-name.bin`);
  assert.equal(byIndex.body.toString(), TEXT, 'the name in the URL is for players only');
  assert.equal((await httpRequest(`${base}/files/2`)).body.toString(), TEXT);
});

test('a player that disconnects destroys its reader before the file is read', { timeout: 20_000 }, async (t) => {
  if (!(await start(t))) return;
  const before = source.opened.length;
  const req = request(server.urlFor(6), { agent: false });
  req.end();
  const [res] = await once(req, 'response');
  assert.equal(res.statusCode, 200);
  await once(res, 'data');
  const reader = source.opened[before]!;
  assert.equal(reader.index, 6);
  req.destroy();
  await closed(reader.stream);
  assert.ok(reader.stream.destroyed);
  assert.ok(reader.stream.bytesRead < BIG / 2, `stopped reading after ${reader.stream.bytesRead} of ${BIG} bytes`);
});

test('close() ends open responses and destroys their readers', { timeout: 20_000 }, async (t) => {
  if (!(await setup(t))) return;
  const src = new DiskSource('one', [{ index: 0, path: 'big.bin', length: BIG, disk: join(dir, 'big.bin') }]);
  const srv = new StreamServer(src);
  await srv.listen();
  const req = request(srv.urlFor(0), { agent: false });
  req.on('error', () => { /* the server cut us off: expected */ });
  req.end();
  const [res] = await once(req, 'response');
  res.on('error', () => { /* cut off */ });
  await once(res, 'data');
  await srv.close();
  const reader = src.opened[0]!;
  await closed(reader.stream);
  assert.ok(reader.stream.destroyed);
  assert.ok(reader.stream.bytesRead < BIG);
  assert.equal(src.files.length, 1);
  assert.equal(srv.urlFor(0).startsWith('http://127.0.0.1:'), true);
});

test('headers go out before the first byte while the reader waits for its piece (a seeking player closes its old request on them)', { timeout: 20_000 }, async () => {
  const opened: Readable[] = [];
  const srv = new StreamServer({
    name: 'slow',
    files: [{ index: 0, path: 'v.mp4', length: 1000 }],
    createReadStream() {
      // Yields nothing until the test says the piece is verified.
      const reader = new Readable({ read() { /* waiting for a piece */ } });
      opened.push(reader);
      return reader;
    },
  });
  await srv.listen();
  try {
    const req = request(srv.urlFor(0), { agent: false, headers: { range: 'bytes=100-' } });
    req.end();
    const [res] = await once(req, 'response');
    assert.equal(res.statusCode, 206);
    assert.equal(res.headers['content-range'], 'bytes 100-999/1000');
    const reader = opened[0]!;
    const body = new Promise<Buffer>((resolve) => { const parts: Buffer[] = []; res.on('data', (c: Buffer) => parts.push(c)); res.on('end', () => resolve(Buffer.concat(parts))); });
    reader.push(Buffer.alloc(900, 9));
    reader.push(null);
    assert.deepEqual(await body, Buffer.alloc(900, 9));
  } finally {
    await srv.close();
  }
});
