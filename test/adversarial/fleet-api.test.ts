// Hostile requests to the fleet controller's API: none changes state, none crashes it, each gets a clear status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetController } from '../../src/fleet/controller.js';
import { createTorrent } from '../../src/metainfo/index.js';

const TOKEN = 'adversarial-token-0123456789';

test('controller API: bad tokens, bad bodies, traversal names and lying manifests are refused', async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-adv-'));
  const c = new FleetController({ httpPort: 0, tokens: [TOKEN], stateDir: join(dir, 'state') });
  await c.listen();
  t.after(async () => { await c.close(); await fsp.rm(dir, { recursive: true, force: true }); });
  const post = async (path: string, body: unknown, token: string | null = TOKEN): Promise<{ status: number; text: string }> => {
    const r = await fetch(c.url + path, {
      method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: token === null ? {} : { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000),
    });
    return { status: r.status, text: await r.text() };
  };
  await fsp.writeFile(join(dir, 'a.bin'), Buffer.alloc(100_000, 7));
  const { torrent, meta } = await createTorrent(join(dir, 'a.bin'), { announce: [c.announceUrl] });
  const man = (over: Record<string, unknown> = {}): string => JSON.stringify({ channel: 'app', version: 'v1', infoHash: meta.infoHashHex, time: new Date().toISOString(), size: meta.length, name: meta.name, ...over });
  const good = { channel: 'app', version: 'v1', torrent: torrent.toString('base64'), manifest: man() };

  assert.equal((await post('/api/releases', good, null)).status, 401);
  assert.equal((await post('/api/releases', good, TOKEN + 'x')).status, 401);
  assert.equal((await post('/api/releases', good, TOKEN.slice(0, -1))).status, 401);
  assert.equal((await post('/api/releases', '{not json')).status, 400);
  assert.equal((await post('/api/releases', 'x'.repeat(17 * 1024 * 1024))).status, 413);
  assert.equal((await post('/api/releases', { ...good, channel: '../../etc', manifest: man({ channel: '../../etc' }) })).status, 400);
  assert.equal((await post('/api/releases', { ...good, version: 'current', manifest: man({ version: 'current' }) })).status, 400);
  assert.equal((await post('/api/releases', { ...good, manifest: man({ infoHash: 'b'.repeat(40) }) })).status, 400, 'manifest names another torrent');
  assert.equal((await post('/api/releases', { ...good, manifest: man({ version: 'v9' }) })).status, 400, 'manifest for another version');
  assert.equal((await post('/api/releases', { ...good, torrent: 'AAAA' })).status, 400, 'not a torrent');
  assert.equal((await post('/api/releases', { ...good, signature: 'short' })).status, 400);
  assert.equal((await post('/api/releases', { ...good, originPort: 70000 })).status, 400);
  assert.equal((await post('/api/agents/..%2F..%2Fx/report', { host: 'h', channels: [], releases: [] })).status, 400);
  assert.equal((await post('/api/agents/h1/report', { host: 5 })).status, 400);
  assert.equal((await post('/api/agents/h1/report', [])).status, 400);
  assert.deepEqual((await (await fetch(c.url + '/api/channels')).json()), [], 'nothing was registered');

  assert.equal((await post('/api/releases', good)).status, 201);
  assert.equal((await post('/api/releases', good)).status, 409, 'a version is published once');
  // A report with absurd values is clamped, not trusted.
  const rep = await post('/api/agents/h1/report', {
    host: 'h'.repeat(10_000), channels: ['app'], current: { app: 'v1' }, peerPort: 'x',
    releases: [{ channel: 'app', version: 'v1', state: 'done', progress: 99, downloaded: 'lots', error: 'e'.repeat(10_000) }],
  });
  assert.equal(rep.status, 200);
  const agent = c.store.agent('h1')!;
  assert.equal(agent.host.length, 256);
  assert.equal(agent.releases[0]!.progress, 1);
  assert.equal(agent.releases[0]!.downloaded, 0);
  assert.equal(agent.releases[0]!.error!.length, 500);
  // Reads stay open and the dashboard is served with a restrictive CSP.
  const page = await fetch(c.url + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.equal((await fetch(c.url + '/api/channels/app')).status, 200);
  const metrics = await (await fetch(c.url + '/metrics')).text();
  assert.match(metrics, /shoal_fleet_hosts\{channel="app",state="done"\} 1/);
  assert.match(metrics, /shoal_tracker_/);
});
