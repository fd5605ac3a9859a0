import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode } from '../../src/bencode/index.js';
import { parseTorrent } from '../../src/metainfo/index.js';
import { ShoalError, type ShoalErrorCode } from '../../src/util/errors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const P20 = Buffer.alloc(20, 1);
const good = { length: 100, name: 'ok', 'piece length': 16384, pieces: P20 };
const withInfo = (info: Record<string, unknown>, root: Record<string, unknown> = {}): Buffer => encode({ ...root, info });
const files = (list: unknown[], extra: Record<string, unknown> = {}): Buffer =>
  withInfo({ files: list, name: 'dir', 'piece length': 16384, pieces: P20, ...extra });

const cases: [string, Buffer, ShoalErrorCode, RegExp][] = [
  // bencode level
  ['empty file', Buffer.alloc(0), 'EBENCODE', /empty input/],
  ['not bencode', b('<html>'), 'EBENCODE', /top-level value is not a dict at byte 0/],
  ['a list, not a dict', b('le'), 'EBENCODE', /not a dict/],
  ['truncated', withInfo(good).subarray(0, 30), 'EBENCODE', /end of input/],
  ['trailing garbage', Buffer.concat([withInfo(good), b('x')]), 'EBENCODE', /trailing data/],
  ['unsorted keys', b('d4:infod4:name1:x6:lengthi1eee'), 'EBENCODE', /out of order/],
  ['duplicate keys', b('d4:infode4:infodee'), 'EBENCODE', /duplicate dict key "info"/],
  ['non-canonical integer', b('d4:infod6:lengthi01eee'), 'EBENCODE', /non-canonical integer at byte 16/],
  ['string past end', b('d4:infod4:name99:xee'), 'EBENCODE', /past end/],
  ['nesting bomb', b('d4:info' + 'l'.repeat(100_000)), 'EBENCODE', /nesting deeper than 64/],
  ['huge integer', b('d4:infod6:lengthi99999999999999999999eee'), 'EBENCODE', /out of range/],
  // structure
  ['no info', encode({ announce: 'http://a/' }), 'EMETAINFO', /^torrent: missing info dictionary$/],
  ['info is a string', encode({ info: 'x' }), 'EMETAINFO', /info is a string, expected a dict/],
  ['no name', withInfo({ ...good, name: undefined }), 'EMETAINFO', /info.name is missing/],
  ['name is an integer', withInfo({ ...good, name: 5 }), 'EMETAINFO', /info.name is an integer/],
  ['no piece length', withInfo({ ...good, 'piece length': undefined }), 'EMETAINFO', /piece length"\] is missing/],
  ['zero piece length', withInfo({ ...good, 'piece length': 0 }), 'EMETAINFO', /piece length"\] 0 is not positive/],
  ['negative piece length', withInfo({ ...good, 'piece length': -16384 }), 'EMETAINFO', /not positive/],
  ['huge piece length', withInfo({ ...good, 'piece length': 2 ** 29 }), 'EMETAINFO', /larger than 256 MiB/],
  ['piece length as string', withInfo({ ...good, 'piece length': '16384' }), 'EMETAINFO', /is a string, expected an integer/],
  ['no pieces', withInfo({ ...good, pieces: undefined }), 'EMETAINFO', /info.pieces is missing/],
  ['pieces as list', withInfo({ ...good, pieces: [P20] }), 'EMETAINFO', /info.pieces is a list/],
  ['pieces not multiple of 20', withInfo({ ...good, pieces: Buffer.alloc(41) }), 'EMETAINFO', /^torrent: info.pieces length 41 is not a multiple of 20$/],
  ['too few pieces', withInfo({ ...good, length: 16385 }), 'EMETAINFO', /holds 1 hashes but 16385 bytes in 16384-byte pieces need 2/],
  ['too many pieces', withInfo({ ...good, pieces: Buffer.alloc(60) }), 'EMETAINFO', /holds 3 hashes .* need 1/],
  ['no length or files', withInfo({ ...good, length: undefined }), 'EMETAINFO', /info.length is missing/],
  ['both length and files', withInfo({ ...good, files: [{ length: 1, path: ['a'] }] }), 'EMETAINFO', /both "length" and "files"/],
  ['negative length', withInfo({ ...good, length: -1 }), 'EMETAINFO', /info.length -1 is negative/],
  ['zero total length', withInfo({ ...good, length: 0, pieces: Buffer.alloc(0) }), 'EMETAINFO', /total length is 0/],
  ['files not a list', files(undefined as never, { files: 'x' }), 'EMETAINFO', /info.files is a string, expected a list/],
  ['empty files', files([]), 'EMETAINFO', /info.files is empty/],
  ['file entry not a dict', files([5]), 'EMETAINFO', /info.files\[0\] is an integer, expected a dict/],
  ['file without length', files([{ path: ['a'] }]), 'EMETAINFO', /info.files\[0\].length is missing/],
  ['file with negative length', files([{ length: -5, path: ['a'] }]), 'EMETAINFO', /info.files\[0\].length -5 is negative/],
  ['file length as string', files([{ length: '5', path: ['a'] }]), 'EMETAINFO', /length is a string/],
  ['file without path', files([{ length: 5 }]), 'EMETAINFO', /info.files\[0\].path is missing/],
  ['path is a string', files([{ length: 5, path: 'a/b' }]), 'EMETAINFO', /path is a string, expected a list/],
  ['path component not a string', files([{ length: 5, path: ['a', 1] }]), 'EMETAINFO', /info.files\[0\].path\[1\] is an integer/],
  // paths
  ['path traversal', files([{ length: 5, path: ['..', '..', 'etc', 'passwd'] }]), 'EPATH', /^torrent: file path "\.\.\/\.\.\/etc\/passwd" escapes the download folder$/],
  ['utf-8 path traversal wins over safe path', files([{ length: 5, path: ['safe'], 'path.utf-8': ['..', 'x'] }]), 'EPATH', /escapes/],
  ['absolute path', files([{ length: 5, path: ['/etc', 'passwd'] }]), 'EPATH', /separator/],
  ['empty path list', files([{ length: 5, path: [] }]), 'EPATH', /file path is empty/],
  ['empty component', files([{ length: 5, path: ['a', ''] }]), 'EPATH', /empty component/],
  ['backslash', files([{ length: 5, path: ['..\\..\\x'] }]), 'EPATH', /separator/],
  ['NUL in path', files([{ length: 5, path: ['a\0.txt'] }]), 'EPATH', /NUL/],
  ['drive letter', files([{ length: 5, path: ['C:', 'x'] }]), 'EPATH', /":"/],
  ['reserved name', files([{ length: 5, path: ['aux.c'] }]), 'EPATH', /reserved name "aux"/],
  ['overlong component', files([{ length: 5, path: ['x'.repeat(300)] }]), 'EPATH', /longer than 255 bytes/],
  ['duplicate file paths', files([{ length: 5, path: ['a'] }, { length: 5, path: ['a'] }]), 'EPATH', /"a" appears more than once/],
  ['name is ..', withInfo({ ...good, name: '..' }), 'EPATH', /^torrent: name "\.\." escapes the download folder$/],
  ['name with slash', withInfo({ ...good, name: '../x' }), 'EPATH', /name "\.\.\/x" has a path separator/],
  ['empty name', withInfo({ ...good, name: '' }), 'EPATH', /name "" has an empty component/],
  ['name.utf-8 traversal', withInfo({ ...good, 'name.utf-8': '..' }), 'EPATH', /escapes/],
];

for (const [label, buf, code, why] of cases) {
  test(`malformed torrent: ${label} -> ${code}`, () => {
    assert.throws(() => parseTorrent(buf), (e: unknown) => {
      assert.ok(e instanceof ShoalError, `expected ShoalError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      assert.equal(e.code, code, e.message);
      assert.match(e.message, why);
      assert.ok(!e.message.includes('\n'), 'one-line message');
      return true;
    });
  });
}

test('padding files may repeat a path and are not duplicate-checked', () => {
  const m = parseTorrent(files([
    { length: 5, path: ['a'] }, { attr: 'p', length: 16379, path: ['.pad', '16379'] },
    { length: 5, path: ['b'] }, { attr: 'p', length: 16379, path: ['.pad', '16379'] },
    { length: 1, path: ['c'] },
  ], { pieces: Buffer.alloc(60) }));
  assert.equal(m.files.filter((f) => f.padding).length, 2);
});

test('odd but harmless optional fields do not break parsing', () => {
  const m = parseTorrent(withInfo(good, {
    announce: 5, 'announce-list': ['notalist', [['nested']], [7, 'http://t/']], 'url-list': 9,
    comment: ['x'], 'created by': 1, 'creation date': 'yesterday',
  }));
  assert.deepEqual(m.announce, [['http://t/']]);
  assert.deepEqual(m.urlList, []);
  assert.equal(m.comment, undefined);
  assert.equal(m.createdBy, undefined);
  assert.equal(m.creationDate, undefined);
  const huge = parseTorrent(withInfo(good, { 'creation date': Number.MAX_SAFE_INTEGER }));
  assert.equal(huge.creationDate, undefined);
});

test('fuzz: mutated valid torrents either parse or throw ShoalError, never a TypeError', () => {
  const base = encode({
    announce: 'http://127.0.0.1:1/a',
    info: { files: [{ length: 20000, path: ['d', 'a'] }, { length: 5, path: ['b'] }], name: 'n', 'piece length': 16384, pieces: Buffer.alloc(40, 7) },
  });
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.nat(base.length),
    (edits, cut) => {
      const buf = Buffer.from(base.subarray(0, Math.max(1, cut === 0 ? base.length : cut)));
      for (const [i, v] of edits) if (i < buf.length) buf[i] = v;
      try {
        parseTorrent(buf);
      } catch (e) {
        assert.ok(e instanceof ShoalError, `not a ShoalError: ${String(e)}`);
      }
    }), { numRuns: 3000 });
});

test('a mistyped name.utf-8 / path.utf-8 falls back to the plain field', () => {
  const m = parseTorrent(files([{ length: 5, path: ['a'], 'path.utf-8': 'bad' }], { 'name.utf-8': 7 }));
  assert.equal(m.name, 'dir');
  assert.deepEqual(m.files[0]!.path, ['a']);
});
