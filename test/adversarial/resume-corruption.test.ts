import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { encode } from '../../src/bencode/index.js';
import { Storage } from '../../src/storage/index.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';

const PIECE = 16 * 1024;
const COUNT = 40;

/** A torrent whose even pieces (and the last) are on disk; the odd ones are holes that read as zeros. */
async function setup(dir: string): Promise<{ meta: ReturnType<typeof makeMetainfo>['meta']; resumeFile: string; onDisk: Set<number> }> {
  const { meta, data } = makeMetainfo([{ path: ['data.bin'], data: pseudoRandom(COUNT * PIECE, 11) }], PIECE, 'data.bin');
  const resumeFile = join(dir, 'state', 'data.resume');
  const onDisk = new Set<number>();
  for (let i = 0; i < COUNT; i += 2) onDisk.add(i);
  onDisk.add(COUNT - 1);
  const s = await Storage.open(meta, { dir, resumeFile });
  await s.verifyExisting();
  for (const i of onDisk) await s.writePiece(i, Buffer.from(data.subarray(i * PIECE, (i + 1) * PIECE)));
  await s.close();
  return { meta, resumeFile, onDisk };
}

test('resume file: every single-bit flip of the piece set is caught; no piece off disk is ever trusted', { timeout: 20_000 }, async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-resume-flip-'));
  try {
    const { meta, resumeFile, onDisk } = await setup(dir);
    const original = await fsp.readFile(resumeFile);
    const marker = Buffer.from(`6:pieces${COUNT / 8}:`);
    const at = original.indexOf(marker);
    assert.ok(at > 0, 'resume file holds the piece set');
    const start = at + marker.length;
    for (let bit = 0; bit < COUNT; bit++) {
      const flipped = Buffer.from(original);
      flipped[start + (bit >> 3)]! ^= 0x80 >> (bit & 7);
      await fsp.writeFile(resumeFile, flipped);
      const warnings: string[] = [];
      const s = await Storage.open(meta, { dir, resumeFile, onWarning: (m) => warnings.push(m) });
      await s.verifyExisting();
      for (let i = 0; i < COUNT; i++) {
        assert.equal(s.have.get(i), onDisk.has(i), `bit ${bit} flipped: piece ${i} must be ${onDisk.has(i) ? 'present' : 'absent'}`);
      }
      assert.ok(warnings.some((w) => /resume data corrupt, rechecking/.test(w)), `bit ${bit}: warns (${warnings.join('; ')})`);
      assert.equal(s.lastCheck.trusted, 0, 'nothing is trusted from a corrupt record');
      await s.close();
    }
    // The record written after the recheck is valid again: the next start trusts it without hashing.
    const s = await Storage.open(meta, { dir, resumeFile });
    await s.verifyExisting();
    assert.equal(s.lastCheck.trusted, onDisk.size);
    assert.equal(s.lastCheck.hashed, 0);
    await s.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('resume file: a version-1 record (no checksum) is not trusted; pieces are rechecked from disk', { timeout: 10_000 }, async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-resume-v1-'));
  try {
    const { meta, resumeFile, onDisk } = await setup(dir);
    const st = await fsp.stat(join(dir, 'data.bin'));
    // What a version-1 Shoal wrote, claiming every piece.
    await fsp.writeFile(resumeFile, encode({
      version: 1, 'info-hash': meta.infoHash, 'piece-length': PIECE, pieces: Buffer.alloc(COUNT / 8, 0xff),
      files: [{ length: st.size, mtime: Math.floor(st.mtimeMs) }], parts: { length: -1, mtime: 0 },
    }));
    const warnings: string[] = [];
    const s = await Storage.open(meta, { dir, resumeFile, onWarning: (m) => warnings.push(m) });
    await s.verifyExisting();
    for (let i = 0; i < COUNT; i++) assert.equal(s.have.get(i), onDisk.has(i), `piece ${i}`);
    assert.ok(warnings.some((w) => /no checksum/.test(w)), warnings.join('; '));
    await s.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
