import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, loadPrivateKey, parsePublicKey, signManifest, verifyManifest, checkName, parseManifest } from '../../src/fleet/signing.js';
import { planPrune, type HeldRelease } from '../../src/fleet/disk.js';
import { channelView, kumarRossFloor } from '../../src/fleet/rollout.js';
import { FleetStore } from '../../src/fleet/store.js';
import { isShoalError } from '../../src/util/errors.js';
import type { AgentRecord, Release } from '../../src/fleet/types.js';

const manifest = JSON.stringify({ channel: 'app', version: 'v1', infoHash: 'a'.repeat(40), time: new Date(0).toISOString(), size: 10, name: 'x' });

test('signatures: a manifest verifies with its key only, and any change breaks it', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const sig = signManifest(manifest, loadPrivateKey(a.privatePem));
  assert.equal(verifyManifest(manifest, sig, parsePublicKey(a.publicKey)), true);
  assert.equal(verifyManifest(manifest, sig, parsePublicKey(b.publicKey)), false, 'another key');
  assert.equal(verifyManifest(manifest.replace('v1', 'v2'), sig, parsePublicKey(a.publicKey)), false, 'changed manifest');
  assert.equal(verifyManifest(manifest, undefined, parsePublicKey(a.publicKey)), false, 'unsigned');
  assert.equal(verifyManifest(manifest, Buffer.alloc(64).toString('base64'), parsePublicKey(a.publicKey)), false, 'zero signature');
  assert.equal(verifyManifest(manifest, 'not base64 at all!!', parsePublicKey(a.publicKey)), false, 'garbage signature');
  // The PEM private key also yields the public key (an operator may point --trust at a PEM file).
  assert.equal(verifyManifest(manifest, sig, parsePublicKey(a.privatePem)), true);
  assert.throws(() => parsePublicKey('AAAA'), (e) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => loadPrivateKey('-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----'), (e) => isShoalError(e, 'EUSAGE'));
});

test('names: channel and version never escape their folder', () => {
  for (const ok of ['app', 'v1.2.3', 'release_2024-01-01', 'A']) assert.equal(checkName('version', ok), ok);
  for (const bad of ['', '..', '.', '../x', 'a/b', 'a\\b', 'current', '-x', '.hidden', 'x'.repeat(65), 'a b', 'é']) {
    assert.throws(() => checkName('channel', bad), (e) => isShoalError(e, 'EUSAGE'), JSON.stringify(bad));
  }
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => {
    try { checkName('version', s); } catch { return; }
    assert.ok(!s.includes('/') && !s.includes('\\') && s !== '..' && s !== '.' && !s.startsWith('.'));
  }), { seed: 42, numRuns: 500 });
  assert.throws(() => parseManifest('{"channel":"../etc","version":"v","infoHash":"' + 'a'.repeat(40) + '","time":"2020-01-01","size":1,"name":"x"}'));
  assert.throws(() => parseManifest('not json'));
  assert.throws(() => parseManifest('x'.repeat(5000)));
  assert.equal(parseManifest(manifest).version, 'v1');
});

const h = (channel: string, version: string, seq: number, size: number, current = false, active = false): HeldRelease => ({ channel, version, seq, size, current, active });

test('disk budget: the oldest go first, current and downloads never; nothing goes when it would not help', () => {
  // keep 2: v1 goes, v2 (current) and v3 stay.
  assert.deepEqual(planPrune([h('a', 'v1', 1, 5), h('a', 'v2', 2, 5, true), h('a', 'v3', 3, 5, false, true)], 2, undefined).remove.map((x) => x.version), ['v1']);
  // keep 1 but current is older than the active download: both stay.
  assert.deepEqual(planPrune([h('a', 'v1', 1, 5, true), h('a', 'v2', 2, 5, false, true)], 1, undefined).remove, []);
  // max-disk 10 with 3 incoming: drop the oldest non-current.
  const r = planPrune([h('a', 'v1', 1, 3), h('a', 'v2', 2, 3), h('a', 'v3', 3, 3, true)], 9, 10, 3);
  assert.deepEqual(r.remove.map((x) => x.version), ['v1']);
  assert.equal(r.fits, true);
  // 8 incoming beside a 3-byte current in 10: does not fit; v3 is not deleted for nothing.
  const r2 = planPrune([h('a', 'v3', 3, 3), h('a', 'v4', 4, 3, true)], 9, 10, 8);
  assert.equal(r2.fits, false);
  assert.deepEqual(r2.remove, []);
  // Property: never current/active; after removal the rest fits whenever fits is true; keep respected per channel.
  const held = fc.array(fc.record({ channel: fc.constantFrom('a', 'b'), size: fc.integer({ min: 0, max: 100 }), current: fc.boolean(), active: fc.boolean() }), { maxLength: 12 });
  fc.assert(fc.property(held, fc.integer({ min: 1, max: 4 }), fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }), fc.integer({ min: 0, max: 100 }), (list, keep, max, incoming) => {
    const items = list.map((x, i) => h(x.channel, `v${i}`, i, x.size, x.current, x.active));
    const { remove, fits } = planPrune(items, keep, max, incoming);
    for (const x of remove) assert.ok(!x.current && !x.active);
    const left = items.filter((x) => !remove.includes(x));
    if (max !== undefined && fits) assert.ok(left.reduce((n, x) => n + x.size, 0) + incoming <= max);
    if (max === undefined) assert.equal(fits, true);
  }), { seed: 7, numRuns: 400 });
});

test('Kumar–Ross floor: the largest of the three bounds', () => {
  // Origin-bound: F/u_s.
  assert.equal(kumarRossFloor(100, 2, 10, 1000, 1000)!.seconds, 10);
  // Slowest downloader bound.
  assert.equal(kumarRossFloor(100, 2, 1000, 5, 1000)!.seconds, 20);
  // Aggregate upload bound: N·F/(u_s+Σu_i) = 10·100/(10+40) = 20.
  assert.equal(kumarRossFloor(100, 10, 10, 1000, 40)!.seconds, 20);
  assert.equal(kumarRossFloor(100, 10, 0, 1000, 40), undefined, 'unknown origin rate: no floor');
});

test('rollout view: done means current switched; offline, failed and hook failures are told apart', () => {
  const rel: Release = { channel: 'app', version: 'v2', infoHash: 'a'.repeat(40), name: 'x', size: 100, torrent: '', manifest, seq: 2, createdAt: 1000, originStats: { uploaded: 100, uploadRate: 0, peakUploadRate: 50, at: 0 } };
  const now = 100_000;
  const st = (state: 'done' | 'downloading' | 'failed', extra: Record<string, unknown> = {}) => ({
    channel: 'app', version: 'v2', state, progress: state === 'done' ? 1 : 0.5, downloaded: 0, uploaded: 0, downloadRate: 10, uploadRate: 0,
    peakDownloadRate: 20, peakUploadRate: 30, peers: 1, fromPeers: 60, fromOrigin: 40, fromWebSeeds: 0, ...extra,
  });
  const agent = (id: string, over: Partial<AgentRecord>): AgentRecord => ({ id, host: id, addresses: [], channels: ['app'], peerPort: 1, current: {}, releases: [], lastSeen: now, zone: 'z', ...over });
  const v = channelView('app', [rel], [
    agent('a', { current: { app: 'v2' }, releases: [st('done', { switchedAt: 4000 })] }),
    agent('b', { releases: [st('downloading')] }),
    agent('c', { releases: [st('downloading')], lastSeen: now - 60_000 }),
    agent('d', { current: { app: 'v2' }, releases: [st('done', { switchedAt: 5000, hookExit: 3, reason: 'hook-failed' })] }),
    agent('e', { releases: [st('failed', { reason: 'disk-full' })] }),
    agent('f', { channels: ['other'] }),
  ], { offlineMs: 15_000, now });
  assert.deepEqual(v.summary, { subscribed: 5, done: 1, inProgress: 1, failed: 2, waiting: 0, offline: 1 });
  assert.deepEqual(v.doneTimes, [3]);
  assert.equal(v.completionSeconds, undefined);
  assert.equal(v.hosts.find((x) => x.id === 'c')!.reason, 'offline');
  assert.equal(v.bytes.originSent, 100);
  assert.equal(v.floor!.originUpload, 50);
  assert.equal(v.latest!.version, 'v2');
  assert.ok(!('torrent' in v.latest!), 'views carry no torrent bytes');
});

test('store: releases survive a restart, versions are unique, writes are atomic', async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-store-'));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  const s = new FleetStore(dir, 10);
  await s.load();
  const base = { channel: 'app', infoHash: 'a'.repeat(40), name: 'x', size: 1, torrent: 'AA==', manifest, createdAt: 1 };
  const r1 = await s.addRelease({ ...base, version: 'v1' });
  const r2 = await s.addRelease({ ...base, version: 'v2' });
  assert.ok(r2.seq > r1.seq);
  await assert.rejects(s.addRelease({ ...base, version: 'v1' }), /already has version/);
  s.putAgent({ id: 'h1', host: 'h1', addresses: [], channels: ['app'], peerPort: 1, current: { app: 'v1' }, releases: [], lastSeen: 5 });
  await s.close();
  assert.deepEqual((await fsp.readdir(dir)).sort(), ['state.json'], 'no temporary file left behind');
  const again = new FleetStore(dir);
  await again.load();
  assert.deepEqual(again.releases('app').map((r) => r.version), ['v1', 'v2']);
  assert.equal(again.agent('h1')!.current['app'], 'v1');
  const r3 = await again.addRelease({ ...base, version: 'v3' });
  assert.ok(r3.seq > r2.seq, 'sequence continues after a restart');
  await again.close();
  await fsp.writeFile(join(dir, 'state.json'), '{ half');
  await assert.rejects(new FleetStore(dir).load(), (e) => isShoalError(e, 'ESTORAGE'));
});
