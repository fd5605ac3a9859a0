import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodePathSegment, isWebSeedUrl, webSeedSegments, webSeedUrlFor, WebSeed } from '../../src/webseed/index.js';
import { isShoalError } from '../../src/util/errors.js';
import type { TorrentFile } from '../../src/metainfo/types.js';
import { makeMetainfo } from '../helpers/make-meta.js';

const single = { name: 'my file #1?.iso', multiFile: false, files: [{ path: [], length: 10, offset: 0, padding: false }] };
const multi = {
  name: 'Dir ä',
  multiFile: true,
  files: [
    { path: ['a b', 'c#d?e.txt'], length: 3, offset: 0, padding: false },
    { path: ['日本', '100%;x=y.bin'], length: 3, offset: 3, padding: false },
  ],
};

test('BEP 19 URLs: single-file uses the URL or URL + name; multi-file appends name and path, each segment encoded', () => {
  assert.equal(webSeedUrlFor('http://h/pub/file.iso', single, 0), 'http://h/pub/file.iso');
  assert.equal(webSeedUrlFor('http://h/pub/', single, 0), 'http://h/pub/my%20file%20%231%3F.iso');
  assert.equal(webSeedUrlFor('https://h:8443/', single, 0), 'https://h:8443/my%20file%20%231%3F.iso');
  assert.equal(webSeedUrlFor('http://h/pub', multi, 0), 'http://h/pub/Dir%20%C3%A4/a%20b/c%23d%3Fe.txt');
  assert.equal(webSeedUrlFor('http://h/pub/', multi, 1), 'http://h/pub/Dir%20%C3%A4/%E6%97%A5%E6%9C%AC/100%25%3Bx%3Dy.bin');
  // An already-encoded base is kept; a fragment in it is dropped rather than swallowing the path.
  assert.equal(webSeedUrlFor('http://h/my%20mirror/#frag', multi, 0), 'http://h/my%20mirror/Dir%20%C3%A4/a%20b/c%23d%3Fe.txt');
  assert.equal(encodePathSegment("it's (x)*!"), 'it%27s%20%28x%29%2A%21');
});

test('URL validation: only http(s); bad URLs and options are EUSAGE', () => {
  assert.equal(isWebSeedUrl('ftp://h/x'), false);
  assert.equal(isWebSeedUrl('not a url'), false);
  assert.equal(isWebSeedUrl('http://h/x'), true);
  const { meta } = makeMetainfo([{ path: ['f'], data: Buffer.alloc(10) }], 16, 'f');
  assert.throws(() => new WebSeed({ url: 'ftp://h/f', meta }), (e: unknown) => isShoalError(e, 'EUSAGE') && /not an http/.test((e as Error).message));
  assert.throws(() => new WebSeed({ url: 'http://h/f', meta, maxInFlight: 0 }), (e: unknown) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => webSeedUrlFor('http://h/', single, 3), (e: unknown) => isShoalError(e, 'EUSAGE'));
});

test('fetch argument checks: range outside the piece, small buffer', async () => {
  const { meta } = makeMetainfo([{ path: ['f'], data: Buffer.alloc(40) }], 16, 'f');
  const ws = new WebSeed({ url: 'http://127.0.0.1:9/f', meta });
  try {
    await assert.rejects(ws.fetch(3, 0, 1, Buffer.alloc(1)), /piece 3 is out of range/);
    await assert.rejects(ws.fetch(2, 0, 9, Buffer.alloc(9)), /outside piece 2 \(8 bytes\)/);
    await assert.rejects(ws.fetch(0, 0, 16, Buffer.alloc(8)), /smaller than the 16 bytes/);
  } finally {
    await ws.close();
  }
  await assert.rejects(ws.fetch(0, 0, 1, Buffer.alloc(1)), /is closed/);
});

test('segments of a piece range cover it exactly, in order, within each file (property)', () => {
  fc.assert(fc.property(
    fc.array(fc.record({ length: fc.integer({ min: 0, max: 50 }), padding: fc.boolean() }), { minLength: 1, maxLength: 12 }),
    fc.integer({ min: 1, max: 40 }),
    fc.nat(), fc.nat(), fc.nat(),
    (spec, pieceLength, a, b, c) => {
      let offset = 0;
      const files: TorrentFile[] = spec.map((s, i) => { const f = { path: [`f${i}`], length: s.length, offset, padding: s.padding }; offset += s.length; return f; });
      const total = offset;
      if (total === 0) return;
      const pieceCount = Math.ceil(total / pieceLength);
      const index = a % pieceCount;
      const pl = index === pieceCount - 1 ? total - index * pieceLength : pieceLength;
      const begin = b % pl;
      const length = 1 + (c % (pl - begin));
      const segs = webSeedSegments({ files, pieceLength }, index, begin, length);
      let pos = 0;
      for (const s of segs) {
        const f = files[s.fileIndex]!;
        assert.equal(s.intoOffset, pos);
        assert.ok(s.length > 0);
        assert.ok(s.fileOffset >= 0 && s.fileOffset + s.length <= f.length);
        assert.equal(f.offset + s.fileOffset, index * pieceLength + begin + pos);
        assert.equal(s.padding, f.padding);
        pos += s.length;
      }
      assert.equal(pos, length);
    },
  ), { seed: 19, numRuns: 500 });
});
