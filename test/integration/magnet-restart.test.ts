/**
 * Magnet links across a crash, and against a peer serving wrong metadata. A downloader process that knows only the
 * info-hash and one peer (x.pe) is killed with SIGKILL right after the metadata arrived; the restart must start
 * from the saved `<dir>/.shoal/<info-hash>.torrent` (metadata known as soon as add() resolves, no second fetch) and
 * finish byte-for-byte. A peer that serves metadata that does not hash to the info-hash is dropped, and the
 * download still gets the true metadata from an honest peer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, describe, startSeed, waitDone, waitEvent, withScope } from '../helpers/engine/harness.js';
import { MetadataLiar } from '../helpers/engine/metadata-liar.js';
import { magnetUri } from '../helpers/trackerless.js';
import { savedTorrentPath } from '../../src/engine/torrent.js';
import type { Metainfo } from '../../src/metainfo/types.js';

const script = fileURLToPath(new URL('../helpers/engine/child-magnet.js', import.meta.url));

interface Line { event: string; hasMetadata?: boolean; state?: string; index?: number; downloaded?: number }

function runChild(args: string[], onLine: (l: Line, child: ChildProcess) => void) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines: Line[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let l: Line;
    try { l = JSON.parse(text) as Line; } catch { return; }
    lines.push(l);
    onLine(l, child);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, lines, exited };
}

function bounded<T>(p: Promise<T>, ms: number, what: string, child: ChildProcess): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
        reject(new Error(`${what} did not finish within ${ms} ms`));
      }, ms);
    }),
  ]);
}

/** ~5 MiB in 250 files with 16 KiB pieces: the info dictionary (file list + 320 hashes) is about 25 KiB, 2 metadata pieces. */
function bigInfoTorrent(): { meta: Metainfo; data: Buffer } {
  const files = Array.from({ length: 250 }, (_, i) => ({ path: ['dir', `file-${String(i).padStart(3, '0')}-padded-out-name.bin`], data: randomBytes(20 * KiB + i) }));
  return makeMetainfo(files, 16 * KiB, 'magnet-restart', { multiFile: true });
}

test('magnet download killed after the metadata arrived restarts from the saved .torrent without fetching it again', { timeout: 40_000 }, async () => {
  await withScope('magnet-restart', async (s) => {
    const { meta, data } = bigInfoTorrent();
    assert.ok(meta.infoBuffer.length > 16 * KiB, `several metadata pieces (${meta.infoBuffer.length} bytes)`);
    // Throttled so the kill lands before the data is complete.
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 2 * MiB });
    const magnet = magnetUri(meta.infoHashHex, [`127.0.0.1:${seed.client.port}`]);
    const dir = join(s.dir, 'dl');
    const children: ChildProcess[] = [];
    s.defer(() => { for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL'); });

    // Run 1: a bare magnet; SIGKILL the moment the metadata is reported (it is saved before 'metadata' is emitted).
    let killed = false;
    const run1 = runChild([magnet, dir], (l, child) => {
      if (l.event === 'metadata' && !killed) {
        killed = true;
        process.kill(child.pid!, 'SIGKILL');
      }
    });
    children.push(run1.child);
    const r1 = await bounded(run1.exited, 20_000, 'run 1', run1.child);
    assert.equal(r1.signal, 'SIGKILL', `run 1 was killed after the metadata arrived: ${JSON.stringify(run1.lines)}\n${r1.stderr}`);
    assert.deepEqual(run1.lines[0], { event: 'added', hasMetadata: false, state: 'metadata' });
    assert.ok(run1.lines.some((l) => l.event === 'metadata'));
    assert.ok(!run1.lines.some((l) => l.event === 'done'), 'killed before the download completed');
    assert.ok(existsSync(savedTorrentPath(dir, meta.infoHashHex)), 'the fetched metadata was saved before the kill');

    // Run 2: the same magnet over the same folder.
    const run2 = runChild([magnet, dir], () => undefined);
    children.push(run2.child);
    const r2 = await bounded(run2.exited, 30_000, 'run 2', run2.child);
    assert.equal(r2.code, 0, `run 2 failed: ${r2.stderr}\n${JSON.stringify(run2.lines.slice(-3))}`);
    const first = run2.lines[0]!;
    assert.equal(first.event, 'added');
    assert.equal(first.hasMetadata, true, 'metadata known as soon as add() resolved');
    assert.ok(first.state === 'downloading' || first.state === 'checking', `state ${first.state}`);
    assert.ok(!run2.lines.some((l) => l.event === 'metadata'), 'no second metadata fetch');
    assert.equal(run2.lines.at(-1)!.event, 'done');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('a peer serving metadata that does not hash is dropped; the true metadata comes from an honest peer', { timeout: 30_000 }, async () => {
  await withScope('magnet-liar', async (s) => {
    const { meta, data } = bigInfoTorrent();
    const seed = await startSeed(s, meta, data);
    const liar = new MetadataLiar(meta.infoHash, meta.infoBuffer.length);
    s.defer(() => liar.close());
    await liar.listen();
    const client = await s.client();
    const dir = join(s.dir, 'dl');
    const tor = await client.add(magnetUri(meta.infoHashHex, [`127.0.0.1:${liar.port}`, `127.0.0.1:${seed.client.port}`]), { path: dir });
    const got = await waitEvent<[Metainfo]>(tor, 'metadata', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}; liar served ${liar.served}, connections ${liar.connections}\n${describe(tor)}`);
    });
    assert.ok(got[0].infoBuffer.equals(meta.infoBuffer), 'the metadata is the true info dictionary');
    await waitDone(tor, 20_000, 'download');
    assert.deepEqual(await compareContent(meta, data, dir), []);
    assert.ok(existsSync(savedTorrentPath(dir, meta.infoHashHex)));
  });
});

test('a liar seen alone first (claiming the true size) does not keep the honest peer that comes later from serving the metadata', { timeout: 30_000 }, async () => {
  await withScope('magnet-liar-first', async (s) => {
    const { meta, data } = bigInfoTorrent();
    const seed = await startSeed(s, meta, data);
    const liar = new MetadataLiar(meta.infoHash, meta.infoBuffer.length);
    s.defer(() => liar.close());
    await liar.listen();
    const client = await s.client();
    const dir = join(s.dir, 'dl');
    const tor = await client.add(magnetUri(meta.infoHashHex, [`127.0.0.1:${liar.port}`]), { path: dir });
    // The liar is the only peer: its whole (garbage) dictionary fails the hash and it is dropped.
    const deadline = Date.now() + 10_000;
    while (liar.closedByRemote === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(liar.served > 0 && liar.closedByRemote > 0, `the liar was asked (${liar.served}) and dropped (${liar.closedByRemote})`);
    assert.equal(tor.hasMetadata, false);
    const servedAtDrop = liar.served;
    // Now an honest peer with the same (true) size turns up.
    tor.addPeer({ host: '127.0.0.1', port: seed.client.port });
    const got = await waitEvent<[Metainfo]>(tor, 'metadata', 15_000).catch((e: Error) => {
      throw new Error(`${e.message}; liar served ${liar.served}, connections ${liar.connections}\n${describe(tor)}`);
    });
    assert.ok(got[0].infoBuffer.equals(meta.infoBuffer));
    assert.equal(liar.served, servedAtDrop, `the liar, redialed as an explicit peer (${liar.connections} connections), was not asked again`);
    await waitDone(tor, 15_000, 'download');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});
