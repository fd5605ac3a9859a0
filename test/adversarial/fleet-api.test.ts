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

test('fleet CLI: bad arguments give one clear line and exit 2, before anything starts', async (t) => {
  const { runCli } = await import('../helpers/cli.js');
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-cli-'));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  await fsp.writeFile(join(dir, 'short-token'), 'short\n');
  await fsp.writeFile(join(dir, 'data'), 'x');
  const cases: Array<[string[], RegExp]> = [
    [['agent', '--channel', 'app'], /--controller URL is required/],
    [['agent', '--controller', 'http://127.0.0.1:1'], /--channel/],
    [['agent', '--controller', 'http://127.0.0.1:1', '--channel', '../etc'], /channel "..\/etc" must be/],
    [['agent', '--controller', 'http://127.0.0.1:1', '--channel', 'app', '--trust', 'not-a-key'], /--trust/],
    [['agent', '--controller', 'ftp://x', '--channel', 'app'], /http\(s\) URL/],
    [['agent', '--controller', 'http://127.0.0.1:1', '--channel', 'app', '--keep', '0'], /--keep/],
    [['publish', join(dir, 'data'), '--controller', 'http://127.0.0.1:1'], /--channel NAME is required/],
    [['publish', join(dir, 'data'), '--controller', 'http://127.0.0.1:1', '--channel', 'app', '--version', 'a/b'], /version "a\/b" must be/],
    [['publish', join(dir, 'data'), '--controller', 'http://127.0.0.1:1', '--channel', 'app', '--key', join(dir, 'data')], /not a private key/],
    [['keygen'], /-o FILE is required/],
    [['controller', '--http-port', '0', '--token-file', join(dir, 'missing')], /cannot read token file/],
    [['controller', '--http-port', '0', '--token-file', join(dir, 'short-token')], /16-256 printable/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args, { timeoutMs: 15_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  // keygen never overwrites a key.
  assert.equal((await runCli(['keygen', '-o', join(dir, 'k.pem')])).code, 0);
  const again = await runCli(['keygen', '-o', join(dir, 'k.pem')]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists/);
  assert.equal(((await fsp.stat(join(dir, 'k.pem'))).mode & 0o777).toString(8), '600');
});
