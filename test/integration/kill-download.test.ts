/**
 * A downloader process killed with SIGKILL mid-download (no chance to save anything) is restarted over the same
 * folder: it must finish with byte-identical data and must not fetch again the pieces it had verified.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, startSeed, withScope } from '../helpers/engine/harness.js';
import { encodeTorrent } from '../../src/metainfo/index.js';

const script = fileURLToPath(new URL('../helpers/engine/child-downloader.js', import.meta.url));

interface Line { event: string; index?: number; downloaded?: number; wantedHave?: number; left?: number; wasted?: number; have?: number }

/** Runs the child downloader; `onLine` sees each JSON line as it arrives. */
function runChild(args: string[], onLine: (l: Line, child: ChildProcess) => void): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let l: Line;
    try {
      l = JSON.parse(text) as Line;
    } catch {
      return;
    }
    onLine(l, child);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, exited };
}

function bounded<T>(p: Promise<T>, ms: number, what: string, child: ChildProcess): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${what} did not finish within ${ms} ms`));
      }, ms);
    }),
  ]);
}

test('SIGKILL mid-download, restart: finishes byte-identical without refetching verified pieces', { timeout: 150_000 }, async () => {
  await withScope('kill-dl', async (s) => {
    const data = randomBytes(12 * MiB + 9_999);
    const { meta } = makeMetainfo([{ path: ['k.bin'], data }], 64 * KiB, 'k.bin');
    // Throttled so the kill lands mid-download on a busy machine too.
    const seed = await startSeed(s, meta, data, 'seed', { uploadLimit: 3 * MiB });
    const torrentPath = join(s.dir, 'k.torrent');
    await fsp.writeFile(torrentPath, encodeTorrent(meta));
    const dir = join(s.dir, 'dl');
    const args = [torrentPath, dir, '127.0.0.1', String(seed.client.port)];
    const children: ChildProcess[] = [];
    s.defer(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });

    // Run 1: killed after some verified pieces.
    const KILL_AFTER = 40;
    const before = new Set<number>();
    let killed = false;
    const run1 = runChild(args, (l, child) => {
      if (l.event === 'piece' && !killed) {
        before.add(l.index!);
        if (before.size >= KILL_AFTER) {
          killed = true;
          assert.ok(child.pid! > 0);
          process.kill(child.pid!, 'SIGKILL');
        }
      }
    });
    children.push(run1.child);
    const r1 = await bounded(run1.exited, 60_000, 'first child', run1.child);
    assert.equal(r1.signal, 'SIGKILL', `first child was not killed (code ${r1.code}): ${r1.stderr}`);
    assert.ok(before.size >= KILL_AFTER && before.size < meta.pieceCount, `${before.size} pieces before the kill`);

    // Run 2: same folder, must finish.
    let checked: Line | undefined;
    let done: Line | undefined;
    const refetched: number[] = [];
    const run2 = runChild(args, (l) => {
      if (l.event === 'checked') checked = l;
      else if (l.event === 'done') done = l;
      else if (l.event === 'piece' && before.has(l.index!)) refetched.push(l.index!);
    });
    children.push(run2.child);
    const r2 = await bounded(run2.exited, 90_000, 'second child', run2.child);
    assert.equal(r2.code, 0, `second child failed (${r2.code ?? r2.signal}): ${r2.stderr}`);
    assert.ok(checked && done, 'second child printed no checked/done line');
    assert.ok(checked.wantedHave! >= before.size, `restart found ${checked.wantedHave} pieces, ${before.size} were verified before the kill`);
    assert.deepEqual(refetched, [], 'pieces verified before the kill were downloaded again');
    assert.ok(done.downloaded! < meta.length, `second run downloaded ${done.downloaded} of ${meta.length}`);
    assert.equal(done.downloaded! - done.wasted!, checked.left!);
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});
