// Ten Shoal clients, each introduced to ONE other (a chain ending at the seed), spread the swarm by PEX (BEP 11):
// every downloader ends up dialing peers nobody introduced it to, and all finish byte-for-byte. The seed's upload
// is limited, so a pure chain (each piece relayed nine times in a row) would be slow. Each client binds its own
// loopback address (127.0.0.10-19): Shoal ignores repeated IPs within one PEX message, so on a single address
// a message would carry only one new peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, describe, waitDone, withScope, writeContent } from '../helpers/engine/harness.js';
import { Client, type Torrent } from '../../src/engine/index.js';

const N = 10;
const ip = (i: number): string => `127.0.0.${10 + i}`;

test('ten clients each knowing one other find the rest by PEX and all complete', { timeout: 40_000 }, async (t) => {
  await withScope('pex-swarm', async (s) => {
    const data = randomBytes(4 * MiB + 12_345);
    const { meta } = makeMetainfo([{ path: ['swarm.bin'], data }], 64 * KiB, 'swarm.bin');
    const clients: Client[] = [];
    for (let i = 0; i < N; i++) {
      const c = new Client({
        port: 0, host: ip(i), localAddress: ip(i), trackers: false, pexIntervalMs: 500,
        ...(i === 0 ? { uploadLimit: 1 * MiB } : {}),
      });
      s.defer(() => c.close());
      await c.listen();
      clients.push(c);
    }
    const listen = clients.map((c, i) => `${ip(i)}:${c.port}`);

    await writeContent(meta, data, join(s.dir, 'seed'));
    const seed = await clients[0]!.add(meta, { path: join(s.dir, 'seed') });
    assert.ok(seed.done);

    const torrents: Torrent[] = [];
    const dialed: Set<string>[] = [];
    const start = Date.now();
    for (let i = 1; i < N; i++) {
      // Client i is introduced to client i-1 only.
      const tor = await clients[i]!.add(meta, { path: join(s.dir, `dl${i}`), peers: [{ host: ip(i - 1), port: clients[i - 1]!.port }] });
      const seen = new Set<string>();
      tor.on('peer', (a: string) => seen.add(a));
      torrents.push(tor);
      dialed.push(seen);
    }
    await Promise.all(torrents.map((tor, k) => waitDone(tor, 35_000, `downloader ${k + 1}`)));
    const elapsed = Date.now() - start;

    const spread: number[] = [];
    for (let k = 0; k < torrents.length; k++) {
      const i = k + 1;
      const problems = await compareContent(meta, data, join(s.dir, `dl${i}`));
      assert.deepEqual(problems, [], `downloader ${i}`);
      // A connection whose address is another client's listen address is one this client dialed; apart from the
      // one it was introduced to, it can only have learned those addresses by PEX.
      const learned = listen.filter((a, j) => j !== i && j !== i - 1 && dialed[k]!.has(a));
      spread.push(learned.length);
      // Every client has its own address, so hosts tell peers apart whichever side dialed: a client that finished
      // early may only have been dialed by the others (who learnt its address by PEX).
      const hosts = new Set([...dialed[k]!].map((a) => a.slice(0, a.lastIndexOf(':'))));
      hosts.delete(ip(i - 1));
      assert.ok(hosts.size >= 1, `downloader ${i} met only its introduction: ${[...dialed[k]!].join(', ')}\n${describe(torrents[k]!)}`);
    }
    const total = spread.reduce((a, b) => a + b, 0);
    assert.ok(total >= N - 1, `PEX spread the swarm widely: dialed-by-PEX counts ${spread.join(', ')}`);
    t.diagnostic(`all ${N - 1} downloaders done in ${elapsed} ms; peers dialed from PEX per downloader: ${spread.join(', ')}`);
  });
});
