import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decode, decodeWithSpans, encode, type BDict } from '../../src/bencode/index.js';
import {
  choosePieceLength, createTorrent, encodeTorrent, parseTorrent, pieceHashAt, pieceLengthAt, readTorrentFile,
} from '../../src/metainfo/index.js';
import { isShoalError, ShoalError } from '../../src/util/errors.js';

const sha1 = (b: Uint8Array): Buffer => createHash('sha1').update(b).digest();

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-meta-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function piecesOf(data: Buffer, pieceLength: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += pieceLength) out.push(sha1(data.subarray(i, i + pieceLength)));
  return Buffer.concat(out);
}

function torrent(info: Record<string, unknown>, root: Record<string, unknown> = {}): Buffer {
  return encode({ ...root, info });
}

test('parses a single-file torrent; info-hash is SHA-1 of the original info bytes', () => {
  const data = randomBytes(40000);
  const buf = torrent(
    { length: data.length, name: 'a.bin', 'piece length': 16384, pieces: piecesOf(data, 16384) },
    { announce: 'http://127.0.0.1:1/announce', comment: 'hi', 'created by': 'me', 'creation date': 1700000000 },
  );
  const m = parseTorrent(buf);
  const [s, e] = decodeWithSpans(buf).spans.get('info')!;
  assert.deepEqual(m.infoBuffer, buf.subarray(s, e));
  assert.deepEqual(m.infoHash, sha1(buf.subarray(s, e)));
  assert.equal(m.infoHashHex, m.infoHash.toString('hex'));
  assert.equal(m.name, 'a.bin');
  assert.equal(m.multiFile, false);
  assert.deepEqual(m.files, [{ path: ['a.bin'], length: 40000, offset: 0, padding: false }]);
  assert.equal(m.pieceLength, 16384);
  assert.equal(m.pieceCount, 3);
  assert.equal(m.length, 40000);
  assert.equal(m.lastPieceLength, 40000 - 32768);
  assert.equal(pieceLengthAt(m, 2), 40000 - 32768);
  assert.deepEqual(pieceHashAt(m, 1), sha1(data.subarray(16384, 32768)));
  assert.deepEqual(m.announce, [['http://127.0.0.1:1/announce']]);
  assert.deepEqual(m.urlList, []);
  assert.equal(m.private, false);
  assert.equal(m.comment, 'hi');
  assert.equal(m.createdBy, 'me');
  assert.equal(m.creationDate?.getTime(), 1700000000 * 1000);
});

test('parses a multi-file torrent with offsets, BEP 47 padding files and .utf-8 names', () => {
  const buf = torrent({
    files: [
      { length: 10, path: ['dir', 'a'] },
      { attr: 'p', length: 16374, path: ['.pad', '16374'] },
      { length: 5, path: ['raw'], 'path.utf-8': ['caf\u00e9'] },
      { attr: 'x', length: 0, path: ['empty'] },
    ],
    name: 'raw-name',
    'name.utf-8': 'Nom \u00e9t\u00e9',
    'piece length': 16384,
    pieces: Buffer.alloc(40),
    private: 1,
  });
  const m = parseTorrent(buf);
  assert.equal(m.multiFile, true);
  assert.equal(m.name, 'Nom \u00e9t\u00e9');
  assert.deepEqual(m.files, [
    { path: ['dir', 'a'], length: 10, offset: 0, padding: false },
    { path: ['.pad', '16374'], length: 16374, offset: 10, padding: true },
    { path: ['caf\u00e9'], length: 5, offset: 16384, padding: false },
    { path: ['empty'], length: 0, offset: 16389, padding: false },
  ]);
  assert.equal(m.length, 16389);
  assert.equal(m.pieceCount, 2);
  assert.equal(m.lastPieceLength, 5);
  assert.equal(m.private, true);
});

test('BEP 12 announce-list: tiers kept in order, empty tiers dropped, list wins over announce', () => {
  const info = { length: 1, name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20) };
  const parse = (root: Record<string, unknown>) => parseTorrent(torrent(info, root)).announce;
  assert.deepEqual(parse({}), []);
  assert.deepEqual(parse({ announce: 'http://a/' }), [['http://a/']]);
  assert.deepEqual(parse({ announce: 'http://a/', 'announce-list': [['http://b/', 'http://c/'], [], ['udp://d:1']] }),
    [['http://b/', 'http://c/'], ['udp://d:1']]);
  // nothing usable in the list: fall back to announce
  assert.deepEqual(parse({ announce: 'http://a/', 'announce-list': [[], ['']] }), [['http://a/']]);
  assert.deepEqual(parse({ 'announce-list': [[1, 'http://b/']] }), [['http://b/']]);
});

test('url-list may be a string or a list', () => {
  const info = { length: 1, name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20) };
  assert.deepEqual(parseTorrent(torrent(info, { 'url-list': 'http://ws/' })).urlList, ['http://ws/']);
  assert.deepEqual(parseTorrent(torrent(info, { 'url-list': ['http://a/', 'http://b/'] })).urlList, ['http://a/', 'http://b/']);
  assert.deepEqual(parseTorrent(torrent(info, { 'url-list': '' })).urlList, []);
});

test('encodeTorrent keeps the info bytes verbatim and round-trips the fields', () => {
  // Unknown info keys survive because the info dict is never re-encoded.
  const buf = torrent(
    { length: 1, name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20), 'x-custom': ['y'] },
    { 'announce-list': [['http://a/'], ['http://b/', 'http://c/']], 'url-list': ['http://ws/'], comment: 'c', 'created by': 'me', 'creation date': 5 },
  );
  const m = parseTorrent(buf);
  const again = encodeTorrent(m);
  const m2 = parseTorrent(again);
  assert.equal(m2.infoHashHex, m.infoHashHex);
  assert.deepEqual(m2.infoBuffer, m.infoBuffer);
  assert.deepEqual(m2.announce, m.announce);
  assert.deepEqual(m2.urlList, m.urlList);
  assert.equal(m2.comment, 'c');
  assert.equal(m2.createdBy, 'me');
  assert.equal(m2.creationDate?.getTime(), 5000);
  const root = decode(again) as BDict;
  assert.equal((root['announce'] as Buffer).toString(), 'http://a/');
  assert.deepEqual(encodeTorrent(m2), again); // stable once normalised
  assert.ok(again.includes(m.infoBuffer));
});

test('readTorrentFile reads and parses; a missing file is EUSAGE', async () => {
  await withTemp(async (dir) => {
    const file = path.join(dir, 'x.torrent');
    await writeFile(file, torrent({ length: 1, name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20) }));
    assert.equal((await readTorrentFile(file)).name, 'x');
    const missing = path.join(dir, 'missing.torrent');
    await assert.rejects(readTorrentFile(missing), (e: unknown) =>
      isShoalError(e, 'EUSAGE') && e.message === `cannot read torrent file ${missing}: ENOENT`);
  });
});

test('choosePieceLength: power of two, 1001..2000 pieces when unclamped, 16 KiB..16 MiB', () => {
  assert.equal(choosePieceLength(1), 16384);
  assert.equal(choosePieceLength(2000 * 16384), 16384);
  assert.equal(choosePieceLength(2000 * 16384 + 1), 32768);
  assert.equal(choosePieceLength(1e15), 16 * 1024 * 1024);
  for (const total of [5e7, 1e9, 3.3e9, 2 ** 34 + 7]) {
    const p = choosePieceLength(total);
    assert.equal(p & (p - 1), 0);
    const count = Math.ceil(total / p);
    assert.ok(count > 1000 && count <= 2000, `${total}: ${count} pieces`);
  }
});

test('createTorrent single file: fields, piece hashes and defaults', async () => {
  await withTemp(async (dir) => {
    const data = randomBytes(100_000);
    const file = path.join(dir, 'movie.bin');
    await writeFile(file, data);
    const before = Math.floor(Date.now() / 1000);
    const { torrent: buf, meta } = await createTorrent(file, {
      pieceLength: 16384, announce: ['http://127.0.0.1:1/a', 'udp://127.0.0.1:2'], urlList: ['http://127.0.0.1:3/'],
      private: true, comment: 'note',
    });
    assert.equal(meta.multiFile, false);
    assert.equal(meta.name, 'movie.bin');
    assert.deepEqual(meta.files, [{ path: ['movie.bin'], length: 100_000, offset: 0, padding: false }]);
    assert.deepEqual(meta.pieceHashes, piecesOf(data, 16384));
    assert.deepEqual(meta.announce, [['http://127.0.0.1:1/a'], ['udp://127.0.0.1:2']]);
    assert.deepEqual(meta.urlList, ['http://127.0.0.1:3/']);
    assert.equal(meta.private, true);
    assert.equal(meta.comment, 'note');
    assert.equal(meta.createdBy, 'Shoal/0.1.0');
    assert.ok(meta.creationDate!.getTime() / 1000 >= before);
    const root = decode(buf) as BDict;
    assert.equal((root['announce'] as Buffer).toString(), 'http://127.0.0.1:1/a');
    assert.deepEqual(Object.keys(root['info'] as BDict), ['length', 'name', 'piece length', 'pieces', 'private']);
    assert.deepEqual(parseTorrent(buf), meta);
  });
});

test('createTorrent directory: sorted paths, empty files kept, pieces spanning files, symlinks', async () => {
  await withTemp(async (dir) => {
    const src = path.join(dir, 'share');
    await mkdir(path.join(src, 'sub', 'deeper'), { recursive: true });
    await mkdir(path.join(src, 'emptydir'));
    const files: [string, Buffer][] = [
      ['B', randomBytes(7000)],
      ['a-b', randomBytes(20000)],
      ['a/x', randomBytes(3)],
      ['sub/deeper/z', randomBytes(50000)],
      ['zero', Buffer.alloc(0)],
      ['.hidden', randomBytes(1)],
    ];
    for (const [rel, d] of files) {
      await mkdir(path.dirname(path.join(src, rel)), { recursive: true });
      await writeFile(path.join(src, rel), d);
    }
    const outside = path.join(dir, 'outside.bin');
    const outsideData = randomBytes(999);
    await writeFile(outside, outsideData);
    await symlink(outside, path.join(src, 'link'));
    await symlink(path.join(src, 'sub'), path.join(src, 'dirlink'));
    const skipped: string[] = [];

    const { meta } = await createTorrent(src, { pieceLength: 16384, creationDate: false, onSkip: (f) => skipped.push(path.basename(f)) });
    // raw-byte order of the joined path, as mktorrent: '-' (0x2d) < '/' (0x2f)
    const order = ['.hidden', 'B', 'a-b', 'a/x', 'link', 'sub/deeper/z', 'zero'];
    assert.deepEqual(meta.files.map((f) => f.path.join('/')), order);
    assert.deepEqual(skipped, ['dirlink']);
    assert.equal(meta.name, 'share');
    assert.equal(meta.multiFile, true);
    assert.equal(meta.creationDate, undefined);
    const byRel = new Map<string, Buffer>([...files, ['link', outsideData]]);
    const all = Buffer.concat(order.map((r) => byRel.get(r)!));
    assert.equal(meta.length, all.length);
    assert.deepEqual(meta.pieceHashes, piecesOf(all, 16384));
    let off = 0;
    for (const f of meta.files) {
      assert.equal(f.offset, off);
      off += f.length;
    }
  });
});

test('createTorrent hashes identically with 1 and 3 worker threads and reports progress to the total', async () => {
  await withTemp(async (dir) => {
    const src = path.join(dir, 'many');
    await mkdir(src);
    const parts: Buffer[] = [];
    for (let i = 0; i < 9; i++) {
      const d = randomBytes(50_000 + i * 12_345);
      parts.push(d);
      await writeFile(path.join(src, `f${i}`), d);
    }
    const progress: number[] = [];
    const one = await createTorrent(src, { pieceLength: 16384, threads: 1, creationDate: false });
    const three = await createTorrent(src, {
      pieceLength: 16384, threads: 3, creationDate: false,
      onProgress: (done, total) => { assert.equal(total, one.meta.length); progress.push(done); },
    });
    assert.deepEqual(three.torrent, one.torrent);
    assert.deepEqual(one.meta.pieceHashes, piecesOf(Buffer.concat(parts), 16384));
    assert.ok(progress.length > 1);
    assert.equal(progress[progress.length - 1], one.meta.length);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! > progress[i - 1]!);
  });
});

test('createTorrent default piece length follows choosePieceLength', async () => {
  await withTemp(async (dir) => {
    const file = path.join(dir, 'f');
    await writeFile(file, randomBytes(70_000));
    const { meta } = await createTorrent(file, { announce: [['http://a/', 'http://b/']] });
    assert.equal(meta.pieceLength, choosePieceLength(70_000));
    assert.deepEqual(meta.announce, [['http://a/', 'http://b/']]);
  });
});

test('createTorrent refuses empty input and bad options with EUSAGE, honours AbortSignal', async () => {
  await withTemp(async (dir) => {
    await mkdir(path.join(dir, 'empty', 'nested'), { recursive: true });
    await assert.rejects(createTorrent(path.join(dir, 'empty')), (e: unknown) => isShoalError(e, 'EUSAGE') && /contains no files/.test((e as Error).message));
    await writeFile(path.join(dir, 'empty', 'nested', 'z'), '');
    await assert.rejects(createTorrent(path.join(dir, 'empty')), (e: unknown) => isShoalError(e, 'EUSAGE') && /only empty files/.test((e as Error).message));
    await assert.rejects(createTorrent(path.join(dir, 'nope')), (e: unknown) => isShoalError(e, 'EUSAGE') && /ENOENT/.test((e as Error).message));
    const file = path.join(dir, 'f');
    await writeFile(file, randomBytes(1000));
    await assert.rejects(createTorrent(file, { pieceLength: 0 }), (e: unknown) => isShoalError(e, 'EUSAGE'));
    await assert.rejects(createTorrent(file, { name: '..' }), (e: unknown) => isShoalError(e, 'EPATH'));
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(createTorrent(file, { signal: ac.signal }), { name: 'AbortError' });
    // abort while hashing
    await writeFile(file, randomBytes(2 * 1024 * 1024));
    const ac2 = new AbortController();
    await assert.rejects(createTorrent(file, {
      pieceLength: 16384, threads: 1, signal: ac2.signal, onProgress: () => ac2.abort(new ShoalError('EUSAGE', 'stop')),
    }), /stop/);
  });
});

// ---- interop with mktorrent and libtorrent -------------------------------------------------------------

function toolsMissing(needMktorrent: boolean): string | undefined {
  const missing: string[] = [];
  if (needMktorrent && spawnSync('mktorrent', ['-h'], { stdio: 'ignore' }).error) missing.push('mktorrent');
  if (spawnSync('/usr/bin/python3', ['-c', 'import libtorrent'], { stdio: 'ignore' }).status !== 0) missing.push('python3-libtorrent');
  return missing.length ? missing.join(', ') : undefined;
}
/** Skip when tools are absent, except under CI=true where the test runs and fails on the assertion below. */
function interop(needMktorrent: boolean): { missing: string | undefined; skip: string | false } {
  const missing = toolsMissing(needMktorrent);
  return { missing, skip: missing !== undefined && process.env['CI'] !== 'true' ? `${missing} not installed (apt-get install mktorrent python3-libtorrent)` : false };
}
const withMktorrent = interop(true);
const withLibtorrent = interop(false);

function py(script: string, ...args: string[]): string {
  return execFileSync('/usr/bin/python3', ['-c', script, ...args], { encoding: 'utf8', timeout: 60_000 }).trim();
}

const LT_INFO_HASH = 'import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hash())';

// Files are added in our order (libtorrent's add_files uses readdir order); v1_only avoids the v2/hybrid
// pad files and file tree that libtorrent 2.0 adds by default.
const LT_CREATE = `
import sys, json, libtorrent as lt
parent, piece, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fs = lt.file_storage()
for p, size in json.loads(sys.argv[4]): fs.add_file(p, size)
t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(t, parent)
data = lt.bencode(t.generate())
open(out, 'wb').write(data)
print(lt.torrent_info(data).info_hash())
`;

async function makeTree(root: string): Promise<void> {
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await writeFile(path.join(root, 'one.bin'), randomBytes(45_000));
  await writeFile(path.join(root, 'sub', 'two.bin'), randomBytes(70_001));
  await writeFile(path.join(root, 'tiny'), 'x');
  await writeFile(path.join(root, 'Zeta'), randomBytes(32768));
}

test('interop: mktorrent torrents parse to the info-hash libtorrent reports, and createTorrent reproduces them', { skip: withMktorrent.skip }, async () => {
  assert.equal(withMktorrent.missing, undefined, `CI=true but missing ${withMktorrent.missing}: apt-get install mktorrent python3-libtorrent`);
  await withTemp(async (dir) => {
    const src = path.join(dir, 'data');
    await makeTree(src);
    for (const target of [src, path.join(src, 'one.bin')]) {
      const out = path.join(dir, 'out.torrent');
      await rm(out, { force: true });
      execFileSync('mktorrent', ['-l', '15', '-a', 'http://127.0.0.1:1/announce', '-o', out, target], { cwd: dir, stdio: 'ignore', timeout: 60_000 });
      const expected = py(LT_INFO_HASH, out);
      const m = await readTorrentFile(out);
      assert.equal(m.infoHashHex, expected);
      assert.deepEqual(m.announce, [['http://127.0.0.1:1/announce']]);
      const ours = await createTorrent(target, { pieceLength: 32768, creationDate: false });
      assert.equal(ours.meta.infoHashHex, expected, `createTorrent(${path.basename(target)}) differs from mktorrent`);
    }
  });
});

test('interop: createTorrent matches libtorrent create_torrent (multi-file with spanning pieces, and single-file)', { skip: withLibtorrent.skip }, async () => {
  assert.equal(withLibtorrent.missing, undefined, `CI=true but missing ${withLibtorrent.missing}: apt-get install mktorrent python3-libtorrent`);
  await withTemp(async (dir) => {
    const src = path.join(dir, 'data');
    await makeTree(src);
    const ours = await createTorrent(src, { pieceLength: 16384, creationDate: false });
    const list = JSON.stringify(ours.meta.files.map((f) => [['data', ...f.path].join('/'), f.length]));
    const ltOut = path.join(dir, 'lt.torrent');
    const ltHash = py(LT_CREATE, dir, '16384', ltOut, list);
    assert.equal(ours.meta.infoHashHex, ltHash);
    assert.equal((await readTorrentFile(ltOut)).infoHashHex, ltHash);

    const single = path.join(src, 'sub', 'two.bin');
    const s = await createTorrent(single, { pieceLength: 65536, creationDate: false });
    const lt = py(`
import sys, libtorrent as lt
fs = lt.file_storage(); lt.add_files(fs, sys.argv[1])
t = lt.create_torrent(fs, 65536, flags=lt.create_torrent.v1_only); lt.set_piece_hashes(t, sys.argv[2])
print(lt.torrent_info(lt.bencode(t.generate())).info_hash())`, single, path.dirname(single));
    assert.equal(s.meta.infoHashHex, lt);
  });
});
