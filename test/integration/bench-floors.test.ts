// The bench's two floors (bench/engines/node-floor.ts, bt-floor.ts) are reference runners the swarm compares Shoal
// with; a floor that silently stopped working (as node-floor did when the socket reader's API changed) would leave
// the comparison without its reference. Each runs here as the swarm scenario's mesh mode runs it, on 127.0.0.1:
// a seed and three downloaders, each downloader introduced to the seed and to the downloaders before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTorrent, writeRandomFile } from '../../bench/lib/data.js';

const DIST_BENCH = new URL('../../bench/', import.meta.url).pathname;
const SIZE = 6 * 1024 * 1024 + 12345; // a short last piece, and a last block shorter than 16 KiB
const PIECE = 256 * 1024;

interface Runner { proc: ChildProcess; events: Record<string, unknown>[]; waitFor(event: string, ms: number): Promise<Record<string, unknown>> }

function startRunner(engine: string, args: string[]): Runner {
  const proc = spawn(process.execPath, [join(DIST_BENCH, 'engines', `${engine}.js`), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const events: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    events.push(JSON.parse(line) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (event: string, ms: number): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${engine}: no '${event}' within ${ms} ms; got ${JSON.stringify(events)}`)), ms);
    const check = (): void => {
      const e = events.find((x) => x['event'] === event) ?? events.find((x) => x['event'] === 'error');
      if (e === undefined) { waiters.push(check); return; }
      clearTimeout(timer);
      if (e['event'] === 'error') reject(new Error(`${engine}: ${String(e['message'])}`));
      else resolve(e);
    };
    check();
  });
  return { proc, events, waitFor };
}

for (const engine of ['node-floor', 'bt-floor']) {
  test(`${engine}: a seed and three downloaders in mesh mode on loopback`, { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), `shoal-${engine}-`));
    const runners: Runner[] = [];
    try {
      const seedDir = join(dir, 'seed');
      const data = join(seedDir, 'data.bin');
      await mkdir(seedDir);
      await writeRandomFile(data, SIZE);
      const torrent = join(dir, 'data.torrent');
      await makeTorrent(data, torrent, PIECE);
      const common = ['--torrent', torrent, '--host', '127.0.0.1', '--port', '0'];
      const seed = startRunner(engine, ['--role', 'seed', '--dir', seedDir, ...common]);
      runners.push(seed);
      const addresses = [{ host: '127.0.0.1', port: (await seed.waitFor('ready', 15_000))['port'] as number }];
      for (let i = 0; i < 3; i++) {
        const d = join(dir, `leech-${i}`);
        await mkdir(d);
        const r = startRunner(engine, ['--role', 'leech', '--dir', d, ...common]);
        runners.push(r);
        const port = (await r.waitFor('ready', 15_000))['port'] as number;
        r.proc.stdin!.write(JSON.stringify({ cmd: 'peers', peers: addresses }) + '\n');
        addresses.push({ host: '127.0.0.1', port });
      }
      const original = await readFile(data);
      for (let i = 1; i <= 3; i++) {
        await runners[i]!.waitFor('done', 45_000);
        const got = join(dir, `leech-${i - 1}`, 'data.bin');
        assert.equal((await stat(got)).size, SIZE);
        // The Node floor moves random bytes, not the torrent's: only the BitTorrent floor's copy must be the file.
        if (engine === 'bt-floor') assert.ok((await readFile(got)).equals(original), `downloader ${i - 1}'s copy differs`);
      }
      const leech = runners[3]!;
      leech.proc.stdin!.write(JSON.stringify({ cmd: 'stats' }) + '\n');
      const stats = await leech.waitFor('stats', 5_000);
      assert.equal(stats['progress'], 1);
    } finally {
      for (const r of runners) {
        if (r.proc.exitCode === null) {
          const exited = new Promise((resolve) => r.proc.once('exit', resolve));
          r.proc.kill('SIGTERM');
          await exited;
        }
      }
      await rm(dir, { recursive: true, force: true });
    }
  });
}
