import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Storage, type StorageOptions } from '../../src/storage/index.js';
import { isShoalError } from '../../src/util/errors.js';
import type { Metainfo } from '../../src/metainfo/types.js';
import { makeMetainfo, pseudoRandom, type MakeFile } from '../helpers/make-meta.js';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-storage-'));
  try { await fn(dir); } finally { await fsp.rm(dir, { recursive: true, force: true }); }
}

function piece(meta: Metainfo, data: Buffer, i: number): Buffer {
  return data.subarray(i * meta.pieceLength, Math.min(data.length, (i + 1) * meta.pieceLength));
}

async function writeAll(s: Storage, meta: Metainfo, data: Buffer, only?: (i: number) => boolean): Promise<void> {
  // Reverse order so files get written out of sequence, a few in parallel.
  const idx = [...Array(meta.pieceCount).keys()].reverse().filter((i) => !only || only(i));
  for (let k = 0; k < idx.length; k += 3) {
    await Promise.all(idx.slice(k, k + 3).map((i) => s.writePiece(i, Buffer.from(piece(meta, data, i)))));
  }
}

/** Files of uneven sizes so pieces span several files, with a zero-length file in the middle. */
function multiFiles(): MakeFile[] {
  return [
    { path: ['a.bin'], data: pseudoRandom(1000, 1) },
    { path: ['sub', 'b.bin'], data: pseudoRandom(30, 2) },
    { path: ['sub', 'empty'], data: Buffer.alloc(0) },
    { path: ['c.bin'], data: pseudoRandom(20, 3) },
    { path: ['deep', 'er', 'd.bin'], data: pseudoRandom(1500, 4) },
    { path: ['e.bin'], data: pseudoRandom(256, 5) },
  ];
}

function piecesOfFile(meta: Metainfo, fi: number): number[] {
  const f = meta.files[fi]!;
  if (f.length === 0) return [];
  const out: number[] = [];
  for (let p = Math.floor(f.offset / meta.pieceLength); p <= Math.floor((f.offset + f.length - 1) / meta.pieceLength); p++) out.push(p);
  return out;
}

test('single-file: write every piece, read back byte-equal', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo([{ path: ['one.bin'], data: pseudoRandom(5000, 9) }], 512, 'one.bin');
    assert.equal(meta.multiFile, false);
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting();
    assert.equal(s.have.count, 0);
    await writeAll(s, meta, data);
    assert.ok(s.have.complete);
    for (let i = 0; i < meta.pieceCount; i++) assert.deepEqual(await s.readPiece(i), piece(meta, data, i));
    const last = meta.pieceCount - 1;
    assert.deepEqual(await s.readBlock(last, 3, meta.lastPieceLength - 3), piece(meta, data, last).subarray(3));
    assert.deepEqual(await s.readBlock(2, 100, 16), data.subarray(2 * 512 + 100, 2 * 512 + 116));
    await s.close();
    assert.deepEqual(await fsp.readFile(join(dir, 'one.bin')), data);
  });
});

test('large pieces go to disk in writes of at most 512 KiB, each at its own offset', async () => {
  await withTmp(async (dir) => {
    // 2 MiB pieces over two files, so one piece has a 1.3 MiB segment in one file and the rest in the next.
    const files: MakeFile[] = [
      { path: ['a.bin'], data: pseudoRandom(1_300_000, 21) },
      { path: ['b.bin'], data: pseudoRandom(3_100_000, 22) },
    ];
    const { meta, data } = makeMetainfo(files, 2 * 1024 * 1024, 'big');
    const probe = await fsp.open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const original = proto.write;
    const lengths: number[] = [];
    proto.write = function (this: unknown, ...args: unknown[]) {
      if (typeof args[2] === 'number') lengths.push(args[2]);
      return original.apply(this, args);
    };
    try {
      const s = await Storage.open(meta, { dir });
      await writeAll(s, meta, data);
      await s.close();
    } finally {
      proto.write = original;
    }
    assert.ok(lengths.length > meta.pieceCount, `${lengths.length} writes for ${meta.pieceCount} pieces`);
    assert.ok(Math.max(...lengths) <= 512 * 1024, `largest write ${Math.max(...lengths)} bytes`);
    assert.deepEqual(await fsp.readFile(join(dir, 'big', 'a.bin')), files[0]!.data);
    assert.deepEqual(await fsp.readFile(join(dir, 'big', 'b.bin')), files[1]!.data);
    assert.deepEqual(Buffer.concat([files[0]!.data, files[1]!.data]), data);
  });
});

test('multi-file: pieces spanning files, zero-length and padding files', async () => {
  await withTmp(async (dir) => {
    const files: MakeFile[] = [...multiFiles(), { path: ['.pad', '0'], data: Buffer.alloc(200), padding: true }, { path: ['z.bin'], data: pseudoRandom(100, 6) }];
    const { meta, data } = makeMetainfo(files, 128, 'multi');
    const s = await Storage.open(meta, { dir, maxOpenFiles: 2 });
    await s.verifyExisting();
    await writeAll(s, meta, data);
    assert.ok(s.have.complete);
    // A block straddling a/b/c boundaries, read through the cache.
    const p = Math.floor(1000 / 128);
    const blk = await s.readBlock(p, 0, meta.pieceLength);
    assert.deepEqual(blk, piece(meta, data, p));
    for (let i = 0; i < meta.pieceCount; i++) assert.deepEqual(await s.readPiece(i), piece(meta, data, i));
    await s.close();
    for (const f of files) {
      const path = join(dir, 'multi', ...f.path);
      if (f.padding) assert.equal(existsSync(path), false, 'padding file must not be created');
      else assert.deepEqual(await fsp.readFile(path), f.data, f.path.join('/'));
    }
  });
});

test('bad arguments are ShoalErrors; reading a missing piece throws', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo(multiFiles(), 256, 'args');
    await assert.rejects(Storage.open(meta, { dir, selectedFiles: [99] }), (e) => isShoalError(e, 'EUSAGE'));
    const s = await Storage.open(meta, { dir });
    await assert.rejects(s.writePiece(0, Buffer.alloc(3)), (e) => isShoalError(e, 'EUSAGE'));
    await assert.rejects(s.writePiece(meta.pieceCount, Buffer.alloc(256)), (e) => isShoalError(e, 'EUSAGE'));
    await assert.rejects(s.readPiece(0), (e) => isShoalError(e));
    await s.writePiece(0, Buffer.from(piece(meta, data, 0)));
    await assert.rejects(s.readBlock(0, 250, 10), (e) => isShoalError(e, 'EUSAGE'));
    await s.close();
    await assert.rejects(s.writePiece(1, Buffer.from(piece(meta, data, 1))), (e) => isShoalError(e));
  });
});

test('selected files: unselected files never exist; boundary pieces verify after restart via the part file', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo(multiFiles(), 128, 'sel');
    const selectedFiles = [1, 3]; // sub/b.bin and c.bin share pieces with a.bin and deep/er/d.bin
    const s = await Storage.open(meta, { dir, selectedFiles });
    const expectWanted = new Set([...piecesOfFile(meta, 1), ...piecesOfFile(meta, 3)]);
    assert.deepEqual([...s.wanted.indices()], [...expectWanted].sort((a, b) => a - b));
    await s.verifyExisting();
    await writeAll(s, meta, data, (i) => s.wanted.get(i));
    await s.close();
    assert.equal(existsSync(join(dir, 'sel', 'a.bin')), false);
    assert.equal(existsSync(join(dir, 'sel', 'deep')), false);
    assert.equal(existsSync(join(dir, 'sel', 'e.bin')), false);
    assert.deepEqual(await fsp.readFile(join(dir, 'sel', 'sub', 'b.bin')), multiFiles()[1]!.data);
    assert.deepEqual(await fsp.readFile(join(dir, 'sel', 'c.bin')), multiFiles()[3]!.data);
    assert.ok(existsSync(join(dir, '.shoal', `${meta.infoHashHex}.parts`)));

    const r = await Storage.open(meta, { dir, selectedFiles });
    await r.verifyExisting({ recheck: true });
    assert.equal(r.lastCheck.hashed, expectWanted.size);
    assert.deepEqual([...r.have.indices()], [...r.wanted.indices()]);
    for (const i of r.have.indices()) assert.deepEqual(await r.readPiece(i), piece(meta, data, i));
    await r.close();

    const t = await Storage.open(meta, { dir, selectedFiles });
    await t.verifyExisting();
    assert.deepEqual(t.lastCheck, { trusted: expectWanted.size, hashed: 0 });
    await t.close();
  });
});

async function seeded(dir: string, opts: Partial<StorageOptions> = {}): Promise<{ meta: Metainfo; data: Buffer }> {
  const { meta, data } = makeMetainfo(multiFiles(), 128, 'res');
  const s = await Storage.open(meta, { dir, ...opts });
  await s.verifyExisting();
  await writeAll(s, meta, data);
  await s.close();
  return { meta, data };
}

test('resume: reopen trusts every piece without hashing', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    assert.ok(existsSync(join(dir, '.shoal', `${meta.infoHashHex}.resume`)));
    const s = await Storage.open(meta, { dir });
    const progress: number[] = [];
    await s.verifyExisting({ onProgress: (d, t) => { assert.equal(t, meta.pieceCount); progress.push(d); } });
    assert.deepEqual(s.lastCheck, { trusted: meta.pieceCount, hashed: 0 });
    assert.ok(s.have.complete);
    assert.equal(progress[progress.length - 1], meta.pieceCount);
    await s.close();
  });
});

test('resume: a changed byte (with new mtime) rehashes that file and finds the corrupt piece missing', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    const fi = 4; // deep/er/d.bin
    const path = join(dir, 'res', 'deep', 'er', 'd.bin');
    const fh = await fsp.open(path, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 700);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 700);
    await fh.close();
    await fsp.utimes(path, new Date(), new Date(Date.now() + 5000)); // make sure the mtime differs from the record
    const bad = Math.floor((meta.files[fi]!.offset + 700) / meta.pieceLength);
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting();
    const touched = piecesOfFile(meta, fi);
    assert.deepEqual(s.lastCheck, { trusted: meta.pieceCount - touched.length, hashed: touched.length });
    assert.equal(s.have.get(bad), false);
    assert.equal(s.have.count, meta.pieceCount - 1);
    await s.close();
  });
});

test('resume: touching only the mtime rehashes that file, all still good', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    await fsp.utimes(join(dir, 'res', 'a.bin'), new Date(), new Date(Date.now() - 100000));
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting();
    assert.equal(s.lastCheck.hashed, piecesOfFile(meta, 0).length);
    assert.ok(s.have.complete);
    await s.close();
  });
});

test('resume: recheck hashes every piece', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting({ recheck: true });
    assert.deepEqual(s.lastCheck, { trusted: 0, hashed: meta.pieceCount });
    assert.ok(s.have.complete);
    await s.close();
  });
});

test('resume: a deleted file makes its pieces missing', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    await fsp.rm(join(dir, 'res', 'c.bin'));
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting();
    const gone = piecesOfFile(meta, 3);
    for (const p of gone) assert.equal(s.have.get(p), false);
    assert.equal(s.have.count, meta.pieceCount - gone.length);
    assert.equal(s.lastCheck.hashed, 0);
    await s.close();
  });
});

test('resume: a corrupt resume file is ignored with a warning and everything is rechecked', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    const rpath = join(dir, '.shoal', `${meta.infoHashHex}.resume`);
    await fsp.writeFile(rpath, 'd7:versioni1e4:junk');
    const warnings: string[] = [];
    const s = await Storage.open(meta, { dir, onWarning: (m) => warnings.push(m) });
    await s.verifyExisting();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /resume/);
    assert.deepEqual(s.lastCheck, { trusted: 0, hashed: meta.pieceCount });
    assert.ok(s.have.complete);
    await s.close();
    // and the rewritten resume is valid again
    const t = await Storage.open(meta, { dir, onWarning: (m) => warnings.push(m) });
    await t.verifyExisting();
    assert.equal(t.lastCheck.trusted, meta.pieceCount);
    assert.equal(warnings.length, 1);
    await t.close();
  });
});

test('resume disabled, or a resume of another torrent: existing data is found by hashing', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir, { resumeFile: false });
    assert.equal(existsSync(join(dir, '.shoal', `${meta.infoHashHex}.resume`)), false);
    const custom = join(dir, 'elsewhere', 'r.resume');
    const s = await Storage.open(meta, { dir, resumeFile: custom });
    await s.verifyExisting();
    assert.deepEqual(s.lastCheck, { trusted: 0, hashed: meta.pieceCount });
    await s.close();
    assert.ok(existsSync(custom));
    const other = makeMetainfo(multiFiles(), 128, 'other').meta;
    await fsp.copyFile(custom, join(dir, 'wrong.resume'));
    const warnings: string[] = [];
    const o = await Storage.open({ ...meta, infoHash: other.infoHash }, { dir, resumeFile: join(dir, 'wrong.resume'), onWarning: (m) => warnings.push(m) });
    await o.verifyExisting();
    assert.match(warnings.join('\n'), /another torrent/);
    await o.close();
  });
});

test('resume is saved in the background after writes, without close', async () => {
  await withTmp(async (dir) => {
    const { meta, data } = makeMetainfo(multiFiles(), 128, 'bg');
    const s = await Storage.open(meta, { dir, resumeIntervalMs: 20 });
    await s.verifyExisting();
    const rpath = join(dir, '.shoal', `${meta.infoHashHex}.resume`);
    const before = (await fsp.stat(rpath)).mtimeMs;
    await s.writePiece(0, Buffer.from(piece(meta, data, 0)));
    let saw = false;
    for (let k = 0; k < 200 && !saw; k++) {
      await new Promise((r) => setTimeout(r, 10));
      const { decodeResume } = await import('../../src/storage/resume.js');
      const rec = decodeResume(await fsp.readFile(rpath));
      saw = (rec.pieces[0]! & 0x80) !== 0;
    }
    assert.ok(saw, 'background save recorded piece 0');
    assert.ok((await fsp.stat(rpath)).mtimeMs >= before);
    await s.close();
  });
});

test('resume: a file recorded as missing that reappears is hashed and found', async () => {
  await withTmp(async (dir) => {
    const { meta } = await seeded(dir);
    const path = join(dir, 'res', 'c.bin');
    const saved = await fsp.readFile(path);
    await fsp.rm(path);
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting(); // records c.bin as missing
    await s.close();
    await fsp.writeFile(path, saved);
    const r = await Storage.open(meta, { dir });
    await r.verifyExisting();
    assert.equal(r.lastCheck.hashed, piecesOfFile(meta, 3).length);
    assert.ok(r.have.complete);
    await r.close();
  });
});

test('a check reuses each hashing loop\'s buffer: hashConcurrency piece buffers for a whole torrent, and no stale byte passes', async () => {
  await withTmp(async (dir) => {
    // Pieces 0 and 1 are identical; the file is then cut in the middle of piece 1. A reused buffer still holds piece
    // 0's bytes when piece 1 is read: the part past the end must read as zeros, so piece 1 fails.
    const pl = 4096;
    const head = pseudoRandom(pl, 21);
    const content = Buffer.concat([head, head, pseudoRandom(30 * pl + 100, 22)]);
    const { meta } = makeMetainfo([{ path: ['r.bin'], data: content }], pl, 'r.bin');
    const path = join(dir, 'r.bin');
    await fsp.writeFile(path, content);
    const s = await Storage.open(meta, { dir, hashConcurrency: 2 });
    const allocUnsafeSlow = Buffer.allocUnsafeSlow;
    let pieceBuffers = 0;
    Buffer.allocUnsafeSlow = (n: number) => { if (n === pl) pieceBuffers++; return allocUnsafeSlow(n); };
    try {
      await s.verifyExisting({ recheck: true });
    } finally {
      Buffer.allocUnsafeSlow = allocUnsafeSlow;
    }
    assert.ok(s.have.complete);
    assert.ok(pieceBuffers <= 2, `${pieceBuffers} piece buffers allocated for ${meta.pieceCount} pieces`);
    await s.close();

    await fsp.truncate(path, pl + pl / 2);
    const t = await Storage.open(meta, { dir, hashConcurrency: 1 });
    await t.verifyExisting({ recheck: true });
    assert.ok(t.have.get(0));
    assert.ok(!t.have.get(1), 'piece 1 passed with bytes left over from piece 0');
    assert.equal(t.have.count, 1);
    await t.close();
  });
});
