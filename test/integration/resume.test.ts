/**
 * Stopping and restarting a Shoal download: resume data lets a clean restart skip hashing, the rest of the
 * torrent comes from the seed, and a seed restarted over complete data is done at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import {
  KiB, MiB, compareContent, describe, filePaths, lastCheck, startSeed, waitDone, withScope, type Scope,
} from '../helpers/engine/harness.js';
import type { Metainfo } from '../../src/metainfo/types.js';

const TIMEOUT = 90_000;
const PIECE = 64 * KiB;

/** Downloads until `stopAfter` pieces verified, then closes the client; returns the pieces reported. */
async function partialDownload(s: Scope, meta: Metainfo, dir: string, seedPort: number, stopAfter: number): Promise<Set<number>> {
  const dl = await s.client();
  const t = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seedPort }] });
  const seen = new Set<number>();
  let closing: Promise<void> | null = null;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seen.size} pieces in 30 s: ${describe(t)}`)), 30_000);
    t.on('piece', (i: number) => {
      if (closing) return;
      seen.add(i);
      if (seen.size >= stopAfter) {
        clearTimeout(timer);
        closing = dl.close();
        closing.then(resolve, reject);
      }
    });
  });
  return seen;
}

test('a stopped download resumes from resume data without rehashing and finishes from the seed', { timeout: TIMEOUT }, async () => {
  await withScope('resume', async (s) => {
    const data = randomBytes(4 * MiB + 5000);
    const { meta } = makeMetainfo([{ path: ['r.bin'], data }], PIECE, 'r.bin');
    // Throttled so the first session is stopped well before the end.
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    const dir = join(s.dir, 'dl');
    const seen = await partialDownload(s, meta, dir, seed.client.port, 16);
    assert.ok(seen.size < meta.pieceCount);

    const dl2 = await s.client();
    const t = await dl2.add(meta, { path: dir });
    const start = t.stats();
    assert.equal(start.peers, 0);
    assert.equal(start.state, 'downloading');
    assert.ok(start.wantedHave > 0, 'resumed with nothing');
    assert.ok(start.wantedHave >= seen.size, `resumed with ${start.wantedHave} pieces, ${seen.size} were verified before the stop`);
    assert.ok(start.wantedHave < meta.pieceCount);
    assert.equal(start.downloaded, 0);
    const check = lastCheck(t);
    assert.equal(check.hashed, 0, `clean restart rehashed ${check.hashed} pieces`);
    assert.equal(check.trusted, start.have);

    t.addPeer({ host: '127.0.0.1', port: seed.client.port });
    await waitDone(t, 60_000, 'resumed download');
    const end = t.stats();
    assert.equal(end.progress, 1);
    assert.ok(end.downloaded < meta.length, `second session downloaded ${end.downloaded} of ${meta.length}`);
    // Everything useful received is exactly what was left; the rest is accounted as waste.
    assert.equal(end.downloaded - end.wasted, start.left, `downloaded ${end.downloaded}, wasted ${end.wasted}, left at start ${start.left}`);
    assert.deepEqual(await compareContent(meta, data, dir), []);
    await dl2.close();

    // A seed restarted over its complete data is done at once and downloads nothing.
    const dl3 = await s.client();
    const t3 = await dl3.add(meta, { path: dir });
    assert.equal(t3.done, true);
    const st3 = t3.stats();
    assert.equal(st3.state, 'seeding');
    assert.equal(st3.progress, 1);
    assert.equal(st3.downloaded, 0);
    assert.deepEqual(lastCheck(t3), { trusted: meta.pieceCount, hashed: 0 });
  });
});

test('recheck hashes everything; a file changed behind our back is rehashed and repaired', { timeout: TIMEOUT }, async () => {
  await withScope('resume-changed', async (s) => {
    const data = randomBytes(2 * MiB + 123);
    const { meta } = makeMetainfo([{ path: ['c.bin'], data }], PIECE, 'c.bin');
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    const dir = join(s.dir, 'dl');
    const seen = await partialDownload(s, meta, dir, seed.client.port, 8);

    const c2 = await s.client();
    const t2 = await c2.add(meta, { path: dir, recheck: true });
    const had = t2.stats().have;
    assert.ok(had >= seen.size);
    assert.equal(lastCheck(t2).trusted, 0);
    assert.ok(lastCheck(t2).hashed >= had);
    await c2.close();

    // Corrupt one verified piece in place (same size, new mtime): it must not be trusted from resume data.
    const victim = [...seen][0]!;
    const path = filePaths(meta, dir)[0]!;
    const fh = await fsp.open(path, 'r+');
    try {
      await fh.write(Buffer.from('garbage!'), 0, 8, victim * PIECE + 100);
    } finally {
      await fh.close();
    }
    const later = new Date(Date.now() + 5000);
    await fsp.utimes(path, later, later);

    const c3 = await s.client();
    const t3 = await c3.add(meta, { path: dir });
    assert.equal(t3.have.get(victim), false, 'corrupted piece still marked have');
    assert.equal(t3.stats().have, had - 1);
    assert.ok(lastCheck(t3).hashed > 0, 'changed file was trusted without hashing');
    t3.addPeer({ host: '127.0.0.1', port: seed.client.port });
    await waitDone(t3, 60_000, 'repaired download');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});
