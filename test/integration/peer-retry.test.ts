/**
 * Peers that come back: an address the user gave is retried for as long as the torrent runs, so a seed that starts
 * long after the downloader is still found; meanwhile the download says once which addresses failed and why.
 * Time-scaled: the back-off cap is 400 ms here (peerRetryMaxMs) instead of 30 s, and the seed appears after 6 s,
 * past the 6 failures after which an address a source merely heard of would be forgotten.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, startSeed, waitDone, withScope } from '../helpers/engine/harness.js';

const HOST = '127.0.0.1';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, HOST, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('an explicit peer that comes up late is still contacted; meanwhile one warning names each address and its error', { timeout: 30_000 }, async (t) => {
  await withScope('peer-retry', async (s) => {
    const data = randomBytes(MiB + 333);
    const { meta } = makeMetainfo([{ path: ['r.bin'], data }], 64 * KiB, 'r.bin');
    // Accepts and hangs up at once (as a client insisting on encryption does): a second, different failure.
    const slammer = net.createServer((sock) => sock.destroy());
    await new Promise<void>((r) => slammer.listen(0, HOST, r));
    s.defer(() => new Promise<void>((r) => slammer.close(() => r())));
    const slamPort = (slammer.address() as net.AddressInfo).port;
    const seedPort = await freePort();

    const dl = await s.client({ peerRetryMaxMs: 400 });
    const dir = join(s.dir, 'dl');
    const started = Date.now();
    const tor = await dl.add(meta, { path: dir, peers: [{ host: HOST, port: seedPort }, { host: HOST, port: slamPort }] });
    const warnings: string[] = [];
    tor.on('warning', (m: string) => warnings.push(m));

    await new Promise((r) => setTimeout(r, 6000));
    assert.equal(tor.stats().peers, 0);
    const seed = await startSeed(s, meta, data, 'seed', { port: seedPort });
    const seedUp = Date.now();
    await waitDone(tor, 15_000, 'downloader whose seed came up late');
    t.diagnostic(`seed up ${seedUp - started} ms after the downloader; contacted and done ${Date.now() - seedUp} ms later`);
    assert.ok(seed.torrent.stats().uploaded >= data.length);
    assert.deepEqual(await compareContent(meta, data, dir), []);

    const noPeer = warnings.filter((w) => /still retrying/.test(w));
    assert.equal(noPeer.length, 1, `expected one no-peer warning, got: ${warnings.join(' | ')}`);
    const w = noPeer[0]!;
    assert.match(w, new RegExp(`${HOST.replace(/\./g, '\\.')}:${seedPort} \\(\\d+ attempts?: [^)]*ECONNREFUSED`), w);
    assert.match(w, new RegExp(`${HOST.replace(/\./g, '\\.')}:${slamPort} \\(\\d+ attempts?: [^)]*closed`), w);
  });
});
