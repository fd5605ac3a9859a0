// The origin sends each byte about once however many hosts download: nginx as the only source (no BitTorrent
// seed) with its upload shaped, 8 `shoal get` downloaders in their own network namespaces that know each other.
// All must complete, and nginx's access log must show at most 1.3 copies of the data served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTorrent } from '../../src/metainfo/index.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import { requireNginx, startNginx } from '../helpers/nginx.js';
import { createTestNet, requireNetns } from '../helpers/shaped-netns.js';
import { CLI_PATH, type JsonEvent } from '../helpers/cli.js';

const DOWNLOADERS = 8;
const SIZE = 16 * 1024 * 1024;
const ORIGIN_RATE = '40mbit';
const PORT = 6881;

interface Downloader { child: ChildProcess; events: JsonEvent[]; stderr: string; done: Promise<JsonEvent> }

function startDownloader(ns: string, args: string[]): Downloader {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI_PATH, ...args], {
    env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d: Downloader = { child, events: [], stderr: '', done: null as unknown as Promise<JsonEvent> };
  let partial = '';
  d.done = new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        let ev: JsonEvent;
        try { ev = JSON.parse(l) as JsonEvent; } catch { continue; }
        d.events.push(ev);
        if (ev.type === 'done') resolve(ev);
        if (ev.type === 'error') reject(new Error(`${ns}: ${String(ev['message'])}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`${ns}: exited (${code}) before done: ${d.stderr}`)));
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { d.stderr = (d.stderr + s).slice(-4000); if (process.env['SHOAL_DEBUG_WEBSEED'] === '1') process.stderr.write(s.split('\n').filter((l) => l).map((l) => `[${ns.slice(-3)}] ${l}\n`).join('')); });
  return d;
}

test('8 downloaders, one shaped nginx origin, no BitTorrent seed: all complete, the origin serves ≤ 1.3 copies', { timeout: 60_000 }, async (t) => {
  if (!requireNginx(t) || !requireNetns(t)) return;
  const work = await mkdtemp(join(tmpdir(), 'shoal-ws-fleet-'));
  // Host 0 is the origin (upload shaped), hosts 1..8 the downloaders (unshaped links).
  const net = createTestNet('wsf', DOWNLOADERS + 1, 77, (i) => (i === 0 ? ORIGIN_RATE : undefined));
  const procs: Downloader[] = [];
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    const root = join(work, 'www');
    await mkdir(root);
    const data = pseudoRandom(SIZE, 77);
    await writeFile(join(root, 'blob.bin'), data);
    const origin = net.hosts[0]!;
    nginx = await startNginx(root, { netns: origin.ns, host: origin.ip, port: 8080 });
    const torrentPath = join(work, 'blob.torrent');
    await writeFile(torrentPath, (await createTorrent(join(root, 'blob.bin'), { pieceLength: 256 * 1024, urlList: [`${nginx.url}/blob.bin`] })).torrent);

    const started = Date.now();
    for (let i = 1; i <= DOWNLOADERS; i++) {
      const h = net.hosts[i]!;
      // Every downloader is told about every other (they start a little apart; a dial to one not listening yet is
      // retried, and the engine keeps one connection per pair); all keep seeding after they finish.
      const peers = net.hosts.slice(1).filter((p) => p !== h).flatMap((p) => ['--peer', `${p.ip}:${PORT}`]);
      procs.push(startDownloader(h.ns, ['--json', 'get', torrentPath, '-o', join(work, `dl${i}`), '--port', String(PORT), '--host', h.ip, '--seed', ...peers]));
    }
    const snapshot = (): string => procs.map((p, i) => {
      const last = [...p.events].reverse().find((e) => e.type === 'progress');
      return last ? `#${i + 1} ${(Number(last['progress']) * 100).toFixed(0)}% peers ${last['peers']} web ${(Number(last['fromWebSeeds']) / 1048576).toFixed(1)} MiB, peers ${(Number(last['fromPeers']) / 1048576).toFixed(1)} MiB` : `#${i + 1} -`;
    }).join('; ');
    const snaps = [4, 8, 12].map((sec) => setTimeout(() => t.diagnostic(`at ${sec} s: ${snapshot()}`), sec * 1000));
    const done = await Promise.race([
      Promise.all(procs.map((p) => p.done)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not all downloaders completed within 40 s')), 40_000).unref()),
    ]).catch(async (err: Error) => {
      const state = procs.map((p, i) => {
        const last = [...p.events].reverse().find((e) => e.type === 'progress' || e.type === 'done');
        const warnings = p.events.filter((e) => e.type === 'warning').map((e) => e['message']);
        return `#${i + 1} ${last ? `${last.type} ${(Number(last['progress']) * 100).toFixed(0)}% peers ${last['peers']} web ${last['fromWebSeeds']} peers ${last['fromPeers']}` : 'no progress'} ${JSON.stringify(warnings)} ${p.stderr.slice(-300)}`;
      });
      throw new Error(`${err.message}; origin served ${((await nginx!.bodyBytesServed()) / SIZE).toFixed(2)} copies\n${state.join('\n')}`);
    });
    for (const x of snaps) clearTimeout(x);
    const wall = (Date.now() - started) / 1000;
    const served = await nginx.bodyBytesServed();
    const copies = served / SIZE;
    const fromWeb = done.reduce((n, e) => n + Number(e['fromWebSeeds']), 0);
    const fromPeers = done.reduce((n, e) => n + Number(e['fromPeers']), 0);
    t.diagnostic(done.map((e, i) => `#${i + 1}: done at ${((Date.parse(String(e['time'])) - started) / 1000).toFixed(1)} s, ${(Number(e['fromWebSeeds']) / 1048576).toFixed(1)} MiB from web seeds`).join('; '));
    t.diagnostic(`all ${DOWNLOADERS} done in ${wall.toFixed(1)} s; origin served ${copies.toFixed(2)} copies; downloaders got ${(fromWeb / SIZE).toFixed(2)} copies from web seeds, ${(fromPeers / SIZE).toFixed(2)} from peers`);
    const want = createHash('sha1').update(data).digest('hex');
    for (let i = 1; i <= DOWNLOADERS; i++) {
      const got = createHash('sha1').update(await readFile(join(work, `dl${i}`, 'blob.bin'))).digest('hex');
      assert.equal(got, want, `downloader ${i} has different bytes`);
    }
    assert.ok(copies <= 1.3, `the origin served ${copies.toFixed(2)} copies (> 1.3)`);
    assert.ok(copies >= 0.99, `the origin served only ${copies.toFixed(2)} copies: who had the rest?`);
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.pid !== undefined) try { process.kill(p.child.pid, 'SIGKILL'); } catch { /* gone */ }
    await Promise.all(procs.map((p) => (p.child.exitCode !== null || p.child.signalCode !== null ? undefined : new Promise((r) => p.child.once('exit', r)))));
    await nginx?.stop();
    net.teardown();
    await rm(work, { recursive: true, force: true });
  }
});
