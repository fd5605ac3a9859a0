import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Client, createTorrent, type Torrent } from '../../src/index.js';

function whenDone(t: Torrent, timeoutMs: number): Promise<void> {
  if (t.done) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not done after ${timeoutMs} ms: ${JSON.stringify(t.stats())}`)), timeoutMs);
    t.once('done', () => { clearTimeout(timer); resolve(); });
  });
}

// Two downloaders that know each other both dial: each must end with exactly one connection to the other, the
// same one on both sides, instead of both dropping both or redialling forever.
test('peers that dial each other keep exactly one connection, without churn', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-dup-'));
  const data = randomBytes(2 * 1024 * 1024);
  await writeFile(join(dir, 'd.bin'), data);
  // A slow seed, so the downloaders spend a while trading with each other.
  const seed = new Client({ host: '127.0.0.1', port: 0, trackers: false, uploadLimit: 512 * 1024 });
  const a = new Client({ host: '127.0.0.1', port: 0, trackers: false });
  const b = new Client({ host: '127.0.0.1', port: 0, trackers: false });
  let closeRelays = (): Promise<void> => Promise.resolve();
  try {
    const { meta } = await createTorrent(join(dir, 'd.bin'), { pieceLength: 32 * 1024 });
    await seed.add(meta, { path: dir, resumeFile: false });
    await a.listen();
    await b.listen();
    const seedAddr = { host: '127.0.0.1', port: seed.port };
    // Each downloader reaches the other through a counting relay, so every connection attempt is seen.
    let dials = 0;
    const relays: net.Server[] = [];
    const relayTo = async (port: number): Promise<number> => {
      const relay = net.createServer((conn) => {
        dials++;
        const up = net.connect(port, '127.0.0.1');
        conn.on('error', () => up.destroy());
        up.on('error', () => conn.destroy());
        conn.pipe(up).pipe(conn);
      });
      relays.push(relay);
      await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
      return (relay.address() as net.AddressInfo).port;
    };
    closeRelays = () => Promise.all(relays.map((r) => new Promise<void>((res) => r.close(() => res())))).then(() => undefined);
    const toB = await relayTo(b.port);
    const toA = await relayTo(a.port);
    const ta = await a.add(meta, { path: join(dir, 'a'), resumeFile: false, peers: [seedAddr, { host: '127.0.0.1', port: toB }] });
    const tb = await b.add(meta, { path: join(dir, 'b'), resumeFile: false, peers: [seedAddr, { host: '127.0.0.1', port: toA }] });
    let connectsA = 0;
    let connectsB = 0;
    ta.on('peer', () => connectsA++);
    tb.on('peer', () => connectsB++);
    await new Promise((r) => setTimeout(r, 3500));
    // One connection to the seed and one to the other downloader, on each side.
    assert.equal(ta.stats().peers, 2, `a: ${JSON.stringify(ta.peerStats().map((p) => p.address))}`);
    assert.equal(tb.stats().peers, 2, `b: ${JSON.stringify(tb.peerStats().map((p) => p.address))}`);
    // 'peer' fires per attached connection: the seed, the other downloader, and at most one replaced duplicate
    // each; redial churn would show as many more.
    assert.ok(connectsA <= 4 && connectsB <= 4, `connections attached: a ${connectsA}, b ${connectsB}`);
    // A refused duplicate must not be redialled every second (that churn once cost a third of a swarm's CPU).
    assert.ok(dials <= 3, `the downloaders dialled each other ${dials} times in 3.5 s`);
    await Promise.all([whenDone(ta, 40_000), whenDone(tb, 40_000)]);
    assert.ok((await readFile(join(dir, 'a', 'd.bin'))).equals(data));
    assert.ok((await readFile(join(dir, 'b', 'd.bin'))).equals(data));
    assert.ok(ta.stats().uploaded + tb.stats().uploaded > 0, 'the downloaders traded with each other');
  } finally {
    await Promise.all([a.close(), b.close(), seed.close()]);
    await closeRelays();
    await rm(dir, { recursive: true, force: true });
  }
});
