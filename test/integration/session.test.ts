/**
 * The swarm session around the content: peers that connect while data is being checked are kept, a download whose
 * every connection fails says why, and warnings raised while a torrent is added reach the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { compareContent, KiB, MiB, waitDone, withScope, writeContent } from '../helpers/engine/harness.js';
import { runCli } from '../helpers/cli.js';
import { encodeTorrent } from '../../src/metainfo/index.js';

test('a downloader that connects while the seed is checking is kept, and served once the check ends', { timeout: 60_000 }, async () => {
  await withScope('session-checking', async (s) => {
    const data = randomBytes(96 * MiB);
    const { meta } = makeMetainfo([{ path: ['big.bin'], data }], 1 * MiB, 'big.bin');
    const seedDir = join(s.dir, 'seed');
    await writeContent(meta, data, seedDir);
    const seedClient = await s.client();
    const order: string[] = [];
    seedClient.onTorrentCreated((t) => {
      t.on('peer', () => order.push('peer'));
      t.once('checked', () => order.push('checked'));
    });
    // recheck: the seed hashes all 96 MiB, and the downloader is already dialling meanwhile.
    const seeding = seedClient.add(meta, { path: seedDir, recheck: true });
    const dlClient = await s.client();
    const dl = await dlClient.add(meta, { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port: seedClient.port }] });
    // Once both are complete they part (nothing to trade): only drops before that count.
    const drops: string[] = [];
    dl.on('disconnect', (addr: string, err?: Error) => { if (!dl.done) drops.push(`${addr}: ${err?.message ?? 'closed'}`); });
    await seeding;
    await waitDone(dl, 45_000, 'downloader');
    assert.ok(order.indexOf('peer') >= 0 && order.indexOf('peer') < order.indexOf('checked'),
      `the downloader must connect during the check for this test to mean anything: ${order.join(',')}`);
    assert.deepEqual(drops, [], 'the connection made during checking was never dropped');
    assert.deepEqual(await compareContent(meta, data, join(s.dir, 'dl')), []);
  });
});

test('when every connection to the peers found fails, the download says why', { timeout: 30_000 }, async () => {
  await withScope('session-unreachable', async (s) => {
    // Accepts and closes at once, as a client that insists on encryption does with a plain handshake.
    const slammer = net.createServer((sock) => sock.destroy());
    await new Promise<void>((r) => slammer.listen(0, '127.0.0.1', r));
    s.defer(() => new Promise<void>((r) => slammer.close(() => r())));
    const port = (slammer.address() as net.AddressInfo).port;
    const { meta } = makeMetainfo([{ path: ['x.bin'], data: randomBytes(64 * KiB) }], 16 * KiB, 'x.bin');
    const client = await s.client();
    const warnings: string[] = [];
    client.onTorrentCreated((t) => t.on('warning', (m: string) => warnings.push(m)));
    await client.add(meta, { path: join(s.dir, 'dl'), peers: [{ host: '127.0.0.1', port }] });
    const deadline = Date.now() + 20_000;
    while (!warnings.some((w) => /every connection failed/.test(w)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const w = warnings.find((x) => /every connection failed/.test(x));
    assert.ok(w, `expected a warning, got: ${warnings.join(' | ')}`);
    assert.match(w, new RegExp(`127\\.0\\.0\\.1:${port}`), 'the warning names the address and its last error');
  });
});

test('a warning raised while a torrent is added (corrupt resume data) reaches `shoal get --json`', { timeout: 30_000 }, async () => {
  await withScope('session-add-warning', async (s) => {
    const data = randomBytes(256 * KiB);
    const { meta } = makeMetainfo([{ path: ['w.bin'], data }], 16 * KiB, 'w.bin');
    const torrentFile = join(s.dir, 'w.torrent');
    await writeFile(torrentFile, encodeTorrent(meta));
    const dir = join(s.dir, 'dl');
    await writeContent(meta, data, dir);
    // First run writes resume data; then it is damaged.
    const first = await runCli(['--json', 'get', torrentFile, '-o', dir, '--timeout', '10']);
    assert.equal(first.code, 0, first.stderr);
    const stateDir = join(dir, '.shoal');
    const resume = (await readdir(stateDir)).find((f) => f.endsWith('.resume'));
    assert.ok(resume, 'a resume file was written');
    await writeFile(join(stateDir, resume), Buffer.from('d7:garbagei1ee'));
    const second = await runCli(['--json', 'get', torrentFile, '-o', dir, '--timeout', '10']);
    assert.equal(second.code, 0, second.stderr);
    const lines = second.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; message?: string });
    assert.ok(lines.some((l) => l.type === 'warning' && /resume/i.test(l.message ?? '')), second.stdout);
  });
});
