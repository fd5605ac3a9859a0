/**
 * Torrents that cost far more to handle than their size suggests: a million files, absurdly deep or long paths.
 * They must be refused quickly with EMETAINFO, and the largest allowed ones must stay cheap to parse and open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { encode } from '../../src/bencode/index.js';
import { DEFAULT_MAX_FILES, parseTorrent } from '../../src/metainfo/index.js';
import { Storage } from '../../src/storage/index.js';
import { isShoalError } from '../../src/util/errors.js';

/** A multi-file torrent of `n` one-byte files d<i/1000>/file-<i>.txt, built as text (fast for 10^6 files). */
function manyFiles(n: number, unique = true): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    if (!unique) { parts.push('d6:lengthi1e4:pathl1:aee'); continue; }
    const d = `d${Math.floor(i / 1000)}`, f = `file-${i}.txt`;
    parts.push(`d6:lengthi1e4:pathl${d.length}:${d}${f.length}:${f}ee`);
  }
  const pl = 1 << 20, pc = Math.ceil(n / pl);
  return Buffer.concat([
    Buffer.from(`d4:infod5:filesl${parts.join('')}e4:name3:big12:piece lengthi${pl}e6:pieces${pc * 20}:`),
    Buffer.alloc(pc * 20), Buffer.from('ee'),
  ]);
}

function torrent(info: Record<string, unknown>): Buffer {
  return encode({ info: { name: 't', 'piece length': 16384, pieces: Buffer.alloc(20), ...info } });
}

test('a 1,000,000-file torrent is refused with EMETAINFO quickly and without building it', { timeout: 30_000 }, () => {
  const buf = manyFiles(1_000_000, false);
  const heapBefore = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  assert.throws(() => parseTorrent(buf), (e: unknown) => isShoalError(e, 'EMETAINFO') && /more files than the limit of 100000/.test((e as Error).message));
  const ms = performance.now() - t0;
  const grew = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(ms < 2000, `refused in ${ms.toFixed(0)} ms (before the limit: 24 s, 1 GB)`);
  assert.ok(grew < 32 * 1024 * 1024, `heap grew ${(grew / 1048576).toFixed(1)} MiB`);
});

test(`a ${DEFAULT_MAX_FILES}-file torrent (the default limit) parses, opens and is checked in bounded time`, { timeout: 60_000 }, async () => {
  const buf = manyFiles(DEFAULT_MAX_FILES);
  let t0 = performance.now();
  const meta = parseTorrent(buf);
  const parseMs = performance.now() - t0;
  assert.equal(meta.files.length, DEFAULT_MAX_FILES);
  assert.ok(parseMs < 10_000, `parsed in ${parseMs.toFixed(0)} ms`);
  // Past the limit it is refused.
  assert.throws(() => parseTorrent(buf, { maxFiles: DEFAULT_MAX_FILES - 1 }), (e: unknown) => isShoalError(e, 'EMETAINFO'));
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-manyfiles-'));
  try {
    t0 = performance.now();
    const s = await Storage.open(meta, { dir });
    await s.verifyExisting();
    const checkMs = performance.now() - t0;
    assert.equal(s.have.count, 0);
    await s.close();
    // Before: 100 000 concurrent failing stats, 15 s and 600 MB.
    assert.ok(checkMs < 8000, `opened and checked in ${checkMs.toFixed(0)} ms`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('parse option maxFiles raises or lowers the limit', () => {
  const three = torrent({ files: [1, 2, 3].map((i) => ({ length: 1, path: [`f${i}`] })) });
  assert.equal(parseTorrent(three).files.length, 3);
  assert.throws(() => parseTorrent(three, { maxFiles: 2 }), (e: unknown) => isShoalError(e, 'EMETAINFO') && /maxFiles/.test((e as Error).message));
  assert.throws(() => parseTorrent(three, { maxFiles: 0 }), (e: unknown) => isShoalError(e, 'EUSAGE'));
});

test('paths deeper than 64 components or longer than 4096 bytes are refused with EMETAINFO', () => {
  const deep = torrent({ files: [{ length: 1, path: Array.from({ length: 65 }, () => 'a') }] });
  assert.throws(() => parseTorrent(deep), (e: unknown) => isShoalError(e, 'EMETAINFO') && /65 components.*maxPathDepth/.test((e as Error).message));
  assert.equal(parseTorrent(torrent({ files: [{ length: 1, path: Array.from({ length: 64 }, () => 'a') }] })).files[0]!.path.length, 64);
  const long = torrent({ files: [{ length: 1, path: Array.from({ length: 20 }, () => 'x'.repeat(250)) }] });
  assert.throws(() => parseTorrent(long), (e: unknown) => isShoalError(e, 'EMETAINFO') && /maxPathBytes/.test((e as Error).message));
  assert.equal(parseTorrent(long, { maxPathBytes: 8192 }).files.length, 1);
});

test('many long lists that each stay under the file limit still hit the value budget', () => {
  const tier = `l${'i1e'.repeat(90_000)}e`;
  const info = encode({ name: 't', length: 1, 'piece length': 16384, pieces: Buffer.alloc(20) });
  const buf = Buffer.concat([Buffer.from(`d13:announce-listl${tier.repeat(40)}e4:info`), info, Buffer.from('e')]);
  assert.throws(() => parseTorrent(buf), (e: unknown) => isShoalError(e, 'EMETAINFO') && /too large/.test((e as Error).message));
});
