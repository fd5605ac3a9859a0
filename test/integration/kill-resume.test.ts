import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Storage } from '../../src/storage/index.js';
import { decodeResume } from '../../src/storage/resume.js';
import { Bitfield } from '../../src/util/bitfield.js';
import { pieceHashAt } from '../../src/metainfo/types.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';

const writer = fileURLToPath(new URL('../helpers/storage-writer.js', import.meta.url));
const PIECE = 16 * 1024;
const SPEC = [
  { path: ['a.bin'], length: 700_001, seed: 11 },
  { path: ['x', 'b.bin'], length: 5_000, seed: 12 },
  { path: ['x', 'empty'], length: 0, seed: 13 },
  { path: ['c.bin'], length: 1_300_000, seed: 14 },
  { path: ['y', 'z', 'd.bin'], length: 90_000, seed: 15 },
  { path: ['e.bin'], length: 1_000_000, seed: 16 },
];

function startWriter(dir: string, seed: number): { child: ChildProcess; ready: Promise<number> } {
  const child = spawn(process.execPath, [writer, dir, String(PIECE), JSON.stringify(SPEC), String(seed), '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`writer not ready in 30 s: ${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`writer exited early (${code ?? sig}): ${err}`)); });
  });
  return { child, ready };
}

function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Hash a piece straight from the files (not through Storage). */
async function hashFromDisk(dir: string, meta: ReturnType<typeof makeMetainfo>['meta'], i: number): Promise<Buffer> {
  const start = i * meta.pieceLength;
  const end = Math.min(meta.length, start + meta.pieceLength);
  const h = createHash('sha1');
  for (const f of meta.files) {
    const s = Math.max(start, f.offset);
    const e = Math.min(end, f.offset + f.length);
    if (s >= e) continue;
    const buf = Buffer.alloc(e - s);
    const fh = await fsp.open(join(dir, 'kr', ...f.path), 'r');
    try { await fh.read(buf, 0, buf.length, s - f.offset); } finally { await fh.close(); }
    h.update(buf);
  }
  return h.digest();
}

test('SIGKILL at random moments never leaves a verified mark for data not on disk', async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-kill-'));
  const { meta } = makeMetainfo(SPEC.map((f) => ({ path: f.path, data: pseudoRandom(f.length, f.seed) })), PIECE, 'kr');
  const rpath = join(dir, '.shoal', `${meta.infoHashHex}.resume`);
  let child: ChildProcess | undefined;
  let rounds = 0;
  let markedTotal = 0;
  try {
    for (let round = 0; round < 6; round++) {
      const w = startWriter(dir, 1000 + round);
      child = w.child;
      await w.ready;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 120)));
      await killAndWait(child);
      child = undefined;
      rounds++;

      let marked: Bitfield;
      try {
        const rec = decodeResume(await fsp.readFile(rpath));
        marked = new Bitfield(meta.pieceCount, rec.pieces);
      } catch (err) {
        // The resume file is replaced atomically: it must always exist (verifyExisting saved one) and parse.
        throw new Error(`resume file unreadable after SIGKILL: ${String(err)}`);
      }
      for (const i of marked.indices()) {
        assert.ok((await hashFromDisk(dir, meta, i)).equals(pieceHashAt(meta, i)), `round ${round}: piece ${i} marked but wrong on disk`);
      }
      const s = await Storage.open(meta, { dir });
      await s.verifyExisting();
      for (const i of marked.indices()) assert.ok(s.have.get(i), `round ${round}: piece ${i} marked but not found`);
      markedTotal = Math.max(markedTotal, marked.count);
      t.diagnostic(`round ${round}: resume marked ${marked.count}, found ${s.have.count}/${meta.pieceCount} (trusted ${s.lastCheck.trusted}, hashed ${s.lastCheck.hashed})`);
      await s.close();
    }
  } finally {
    if (child) await killAndWait(child);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  assert.equal(rounds, 6);
  assert.ok(markedTotal > 0, 'some progress was saved across rounds');
});
