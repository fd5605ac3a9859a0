/**
 * Announces for random info-hashes used to fill the swarm table, after which every new torrent was refused
 * until the junk expired. Now junk swarms (one announce, never followed) make room for new ones, swarm creation
 * is rate-limited per source, and IPv6 sources are limited per /64.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryStore, RateLimiter, TrackerServer, sourceKey } from '../../src/tracker/index.js';
import type { AnnounceRequest } from '../../src/tracker/swarm-store.js';
import { RawUdpClient, announceQuery, failureOf, httpGetDict, infoHash, peerId, udpError } from '../helpers/tracker-raw.js';

test('a flood of random info-hashes displaces junk swarms, never the live ones, and new torrents still get in', { timeout: 20_000 }, async () => {
  const t = new TrackerServer({ host: '127.0.0.1', rateLimit: false, maxSwarms: 50, httpPort: null });
  const { udpPort } = await t.listen();
  const c = new RawUdpClient(udpPort);
  try {
    const id = await c.connect();
    const live = [0, 1, 2].map((i) => infoHash(`live${i}`));
    for (const h of live) for (let k = 0; k < 2; k++) await c.announce(id, { infoHash: h, peerId: peerId(`live${k}`), port: 7000 + k });
    for (let i = 0; i < 500; i++) {
      const reply = await c.request(RawUdpClient.announcePacket(id, { infoHash: randomBytes(20), peerId: peerId('junk'), port: 6881 }));
      assert.equal(udpError(reply), undefined, `junk announce ${i} accepted`);
    }
    assert.ok(((await t.statsJson()).swarms as number) <= 50);
    for (const h of live) {
      const r = await c.announce(id, { infoHash: h, peerId: peerId('check'), port: 7100, numwant: 10 });
      assert.equal(r.leechers + r.seeders >= 2, true, 'live swarm kept its peers');
    }
    const fresh = await c.request(RawUdpClient.announcePacket(id, { infoHash: infoHash('a real new torrent'), peerId: PID(), port: 6881 }));
    assert.equal(udpError(fresh), undefined, 'a new torrent is accepted while the table is full of junk');
  } finally {
    await c.close();
    await t.close();
  }
});

function PID(): Buffer { return peerId('fresh'); }

test('when every swarm is live, a new one is still refused (the bound holds)', () => {
  const s = new MemoryStore({ peerTtlMs: 60_000, maxSwarms: 2 });
  try {
    const req = (h: string, port: number): AnnounceRequest => ({
      infoHash: infoHash(h), peerId: peerId('p'), compact: Buffer.from([127, 0, 0, 1, port >> 8, port & 255]),
      seed: false, event: 'started', numwant: 0, family: 4,
    });
    for (const h of ['a', 'b']) { s.announce(req(h, 1000)); s.announce(req(h, 1001)); }
    assert.throws(() => s.announce(req('c', 1000)), /torrent limit/);
  } finally { void s.close(); }
});

test('swarm creation is limited per source: IPv4 address, IPv6 /64', () => {
  const s = new MemoryStore({ peerTtlMs: 60_000, newSwarmLimit: { perSecond: 0.001, burst: 3 } });
  try {
    const req = (source: string): AnnounceRequest => ({
      infoHash: randomBytes(20), peerId: peerId('p'), compact: Buffer.from([192, 0, 2, 1, 0x1a, 0xe1]),
      seed: false, event: 'started', numwant: 0, family: 4, source,
    });
    // Three different addresses inside one /64 share one budget.
    s.announce(req('2001:db8:1:2::1'));
    s.announce(req('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    s.announce(req('2001:0db8:0001:0002:0:0:0:99'));
    assert.throws(() => s.announce(req('2001:db8:1:2:abcd::7')), /too many new torrents/);
    // The neighbouring /64 and an IPv4 source have their own.
    s.announce(req('2001:db8:1:3::1'));
    for (let i = 0; i < 3; i++) s.announce(req('198.51.100.7'));
    assert.throws(() => s.announce(req('198.51.100.7')), /too many new torrents/);
    assert.throws(() => s.announce(req('::ffff:198.51.100.7')), /too many new torrents/, 'IPv4-mapped counts as IPv4');
  } finally { void s.close(); }
});

test('sourceKey: per /64 for IPv6, in every spelling; IPv4 unchanged', () => {
  assert.equal(sourceKey('192.0.2.1'), '192.0.2.1');
  assert.equal(sourceKey('::ffff:192.0.2.1'), '192.0.2.1');
  const k = sourceKey('2001:db8:1:2::1');
  assert.equal(k, '2001:db8:1:2::/64');
  for (const a of ['2001:DB8:1:2:aaaa:bbbb:cccc:dddd', '2001:0db8:0001:0002::', '2001:db8:1:2:0:0:0:1%eth0']) assert.equal(sourceKey(a), k, a);
  assert.notEqual(sourceKey('2001:db8:1:3::1'), k);
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('fe80::1'), 'fe80:0:0:0::/64');
});

test('the request limiter keyed by sourceKey throttles a host that rotates through its /64', () => {
  const rl = new RateLimiter({ perSecond: 1, burst: 5 });
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (rl.take(sourceKey(`2001:db8:7:7:${(i + 1).toString(16)}::1`), 1000)) allowed++;
  assert.equal(allowed, 5);
  assert.equal(rl.take(sourceKey('2001:db8:7:8::1'), 1000), true);
});

test('over HTTP the default creation limit applies to a client that only makes new swarms', { timeout: 10_000 }, async () => {
  const t = new TrackerServer({ host: '127.0.0.1', udpPort: null, rateLimit: { perSecond: 1000, burst: 1000 }, swarmCreationLimit: { perSecond: 0.001, burst: 4 } });
  const { httpPort } = await t.listen();
  try {
    for (let i = 0; i < 4; i++) assert.equal(failureOf(await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: infoHash(`n${i}`), peerId: peerId('x') })}`)), undefined);
    assert.match(failureOf(await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: infoHash('n4'), peerId: peerId('x') })}`))!, /too many new torrents/);
    // Existing swarms are unaffected.
    assert.equal(failureOf(await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: infoHash('n0'), peerId: peerId('y') })}`)), undefined);
  } finally {
    await t.close();
  }
});
