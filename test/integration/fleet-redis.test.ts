// Two controllers on one Redis serve one fleet: a release registered on one is seen (and streamed) by the other, an
// agent reporting to either shows on both, a version is unique across them, and a new instance starts with it all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetController } from '../../src/fleet/controller.js';
import { createTorrent } from '../../src/metainfo/index.js';
import type { ChannelView } from '../../src/fleet/types.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const TOKEN = 'redis-fleet-token-0123456789';

test('fleet controllers share state through Redis', { timeout: 30_000 }, async (t) => {
  const skip = redisSkipReason();
  if (skip) { t.skip(skip); return; }
  const redis = await startRedis();
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-redis-'));
  const ctls: FleetController[] = [];
  t.after(async () => {
    for (const c of ctls) await c.close().catch(() => undefined);
    await redis.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const start = async (): Promise<FleetController> => {
    const c = new FleetController({ httpPort: 0, tokens: [TOKEN], redisUrl: redis.url });
    await c.listen();
    ctls.push(c);
    return c;
  };
  const a = await start();
  const b = await start();
  const post = (c: FleetController, path: string, body: unknown): Promise<Response> =>
    fetch(c.url + path, { method: 'POST', body: JSON.stringify(body), headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  const view = async (c: FleetController): Promise<ChannelView> => (await (await fetch(c.url + '/api/channels/app')).json()) as ChannelView;

  // B's event stream must carry a release registered on A.
  const streamed = new Promise<string>((resolve, reject) => {
    const req = request(`${b.url}/api/events?topics=releases`, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (s: string) => {
        buf += s;
        const m = /event: release\ndata: (.*)\n/.exec(buf);
        if (m) { resolve(m[1]!); req.destroy(); }
      });
    });
    req.on('error', (e) => { if (!/socket hang up|aborted/.test(e.message)) reject(e); });
    req.end();
    setTimeout(() => reject(new Error('no release event on B within 10 s')), 10_000).unref();
  });
  await new Promise((r) => setTimeout(r, 200));

  await fsp.writeFile(join(dir, 'a.bin'), Buffer.alloc(50_000, 1));
  const { torrent, meta } = await createTorrent(join(dir, 'a.bin'), { announce: [a.announceUrl] });
  const release = (version: string): Record<string, unknown> => ({
    channel: 'app', version, torrent: torrent.toString('base64'),
    manifest: JSON.stringify({ channel: 'app', version, infoHash: meta.infoHashHex, time: new Date().toISOString(), size: meta.length, name: meta.name }),
  });
  assert.equal((await post(a, '/api/releases', release('v1'))).status, 201);
  const ev = JSON.parse(await streamed) as { version: string; torrent: string };
  assert.equal(ev.version, 'v1');
  assert.equal(ev.torrent, torrent.toString('base64'), 'agents connected to B get the torrent');
  assert.deepEqual((await view(b)).versions, ['v1']);
  assert.equal((await post(b, '/api/releases', release('v1'))).status, 409, 'versions are unique across instances');
  assert.equal((await post(b, '/api/releases', release('v2'))).status, 201);
  // B's release reaches A through Redis pub/sub: wait for it rather than race it.
  const seenBy = Date.now() + 5000;
  while ((await view(a)).versions.length < 2 && Date.now() < seenBy) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual((await view(a)).versions, ['v1', 'v2']);

  assert.equal((await post(b, '/api/agents/h1/report', { host: 'h1', addresses: [], channels: ['app'], peerPort: 1, current: { app: 'v2' }, releases: [] })).status, 200);
  const deadline = Date.now() + 5000;
  while ((await view(a)).summary.subscribed !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await view(a)).summary.subscribed, 1, 'an agent reporting to B shows on A');

  const c = await start();
  const vc = await view(c);
  assert.deepEqual(vc.versions, ['v1', 'v2'], 'a new instance starts with the shared state');
  assert.equal(vc.summary.subscribed, 1);
});
