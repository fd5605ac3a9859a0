import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TrackerServer, ZoneMap, type TrackerOptions } from '../../src/tracker/index.js';
import { redisSkipReason, startRedis, type RedisHandle } from '../helpers/redis.js';
import {
  RawUdpClient, announceQuery, compactList, failureOf, httpGetDict, infoHash, pct, peerId, rawHttp, udpError,
} from '../helpers/tracker-raw.js';
import type { BDict } from '../../src/bencode/index.js';

const skip = redisSkipReason();

function tracker(redis: RedisHandle, prefix: string, extra: TrackerOptions = {}): TrackerServer {
  return new TrackerServer({
    host: '127.0.0.1', rateLimit: false,
    store: { redisUrl: redis.url, keyPrefix: prefix, commandTimeoutMs: 500 },
    ...extra,
  });
}

async function sleep(ms: number): Promise<void> { await new Promise((r) => setTimeout(r, ms)); }

test('two tracker instances on one Redis serve the same swarms (HTTP and UDP)', { skip }, async () => {
  const redis = await startRedis();
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const a = tracker(redis, prefix), b = tracker(redis, prefix);
  try {
    const pa = await a.listen(), pb = await b.listen();
    const ih = infoHash('shared');
    const r1 = await httpGetDict(pa.httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('on-a'), port: 7001, event: 'started' })}`);
    assert.equal(failureOf(r1), undefined);
    const r2 = await httpGetDict(pb.httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('on-b'), port: 7002, left: 0 })}`);
    assert.deepEqual(compactList(r2.peers, 6), ['127.0.0.1:7001'], 'instance B returns the peer that announced to A');
    assert.equal(r2.complete, 1);
    assert.equal(r2.incomplete, 1);

    const u = new RawUdpClient(pb.udpPort);
    try {
      const id = await u.connect();
      const r3 = await u.announce(id, { infoHash: ih, peerId: peerId('udp-b'), port: 7003, numwant: 10 });
      assert.deepEqual(r3.peers.sort(), ['127.0.0.1:7001', '127.0.0.1:7002']);
      // Seeds do not get seeds, across instances too.
      const r4 = await httpGetDict(pa.httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('on-b'), port: 7002, left: 0 })}`);
      assert.deepEqual(compactList(r4.peers, 6).sort(), ['127.0.0.1:7001', '127.0.0.1:7003']);
      // completed + stopped through different instances.
      await httpGetDict(pb.httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('on-a'), port: 7001, event: 'completed', left: 0 })}`);
      const sc = await httpGetDict(pa.httpPort, `/scrape?info_hash=${pct(ih)}&info_hash=${pct(infoHash('nothing'))}`);
      const f = (sc.files as BDict)[ih.toString('latin1')] as BDict;
      assert.deepEqual({ ...f }, { complete: 2, downloaded: 1, incomplete: 1 });
      const stop = await u.request(RawUdpClient.announcePacket(id, { infoHash: ih, peerId: peerId('udp-b'), port: 7003, event: 3 }));
      assert.equal(stop!.readUInt32BE(0), 1);
      const us = await u.scrape(id, [ih]);
      assert.deepEqual([us.readUInt32BE(8), us.readUInt32BE(12), us.readUInt32BE(16)], [2, 1, 0]);
    } finally {
      await u.close();
    }
    const stats = JSON.parse((await rawHttp(pb.httpPort, '/stats')).body.toString()) as Record<string, number | string>;
    assert.equal(stats.store, 'redis');
    assert.equal(stats.swarms, 1);
    assert.equal(stats.seeds, 2);
    const metrics = (await rawHttp(pa.httpPort, '/metrics')).body.toString();
    assert.match(metrics, /^shoal_tracker_seeds 2$/m);
  } finally {
    await a.close(); await b.close();
    await redis.stop();
  }
});

test('peers expire through Redis TTLs, with no sweeper in any instance', { skip }, async () => {
  const redis = await startRedis();
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const a = tracker(redis, prefix, { peerTtl: 0.5 });
  const probe = new Redis(redis.url, { lazyConnect: true });
  try {
    const { httpPort } = await a.listen();
    await probe.connect();
    const ih = infoHash('ttl');
    await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('old'), port: 7001 })}`);
    const keys = await probe.keys(`${prefix}*`);
    assert.ok(keys.length >= 3, `swarm keys exist: ${keys.join(', ')}`);
    for (const k of keys.filter((k) => k.includes('{'))) {
      const ttl = await probe.pttl(k);
      assert.ok(ttl > 0 && ttl <= 500, `${k} has a TTL (${ttl})`);
    }
    await sleep(1200);
    // Nobody announced: Redis itself removed the swarm.
    assert.deepEqual((await probe.keys(`${prefix}{*`)), []);
    const r = await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('new'), port: 7002 })}`);
    assert.deepEqual(compactList(r.peers, 6), []);
    assert.equal(r.incomplete, 1);
    // Expiry of one peer inside a live swarm: the other keeps announcing.
    await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('gone'), port: 7003 })}`);
    for (let i = 0; i < 4; i++) {
      await sleep(250);
      await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('new'), port: 7002, numwant: 0 })}`);
    }
    const last = await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('new'), port: 7002 })}`);
    assert.deepEqual(compactList(last.peers, 6), []);
    assert.equal(last.incomplete, 1);
  } finally {
    probe.disconnect();
    await a.close();
    await redis.stop();
  }
});

test('Redis going away: clear failures over HTTP and UDP, no crash, recovery when it returns', { skip }, async () => {
  let redis = await startRedis();
  const port = redis.port;
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const a = tracker(redis, prefix);
  const udp = { c: undefined as RawUdpClient | undefined };
  try {
    const pa = await a.listen();
    udp.c = new RawUdpClient(pa.udpPort);
    const id = await udp.c.connect();
    const ih = infoHash('outage');
    const q = (tag: string, p: number): string => `/announce?${announceQuery({ infoHash: ih, peerId: peerId(tag), port: p })}`;
    assert.equal(failureOf(await httpGetDict(pa.httpPort, q('before', 7001))), undefined);

    await redis.stop();
    const down = await httpGetDict(pa.httpPort, q('during', 7002));
    assert.equal(failureOf(down), 'tracker storage unavailable, retry later');
    assert.equal(typeof down['retry in'], 'number');
    const udpDown = await udp.c.request(RawUdpClient.announcePacket(id, { infoHash: ih, peerId: peerId('during'), port: 7002 }));
    assert.equal(udpError(udpDown), 'tracker storage unavailable, retry later');
    const sDown = await udp.c.request((() => { const p = Buffer.alloc(36); id.copy(p, 0); p.writeUInt32BE(2, 8); ih.copy(p, 16); return p; })());
    assert.equal(udpError(sDown), 'tracker storage unavailable, retry later');
    assert.equal((await rawHttp(pa.httpPort, '/stats')).status, 503);
    assert.equal((await rawHttp(pa.httpPort, '/metrics')).status, 200, 'metrics still served');
    // UDP connect needs no storage and keeps working.
    assert.equal((await udp.c.connect()).length, 8);

    redis = await startRedis(port);
    let recovered: BDict | undefined;
    for (let i = 0; i < 60 && !recovered; i++) {
      const r = await httpGetDict(pa.httpPort, q('after', 7003));
      if (failureOf(r) === undefined) recovered = r; else await sleep(200);
    }
    assert.ok(recovered, 'announces work again after Redis is back');
    // Redis lost its data (no persistence): the swarm rebuilds from announces.
    const u = await udp.c.announce(id, { infoHash: ih, peerId: peerId('udp-after'), port: 7004 });
    assert.deepEqual(u.peers, ['127.0.0.1:7003']);
  } finally {
    await udp.c?.close();
    await a.close();
    await redis.stop();
  }
});

test('a tracker started while Redis is down serves failures, then recovers', { skip }, async () => {
  const redis0 = await startRedis();
  const port = redis0.port;
  await redis0.stop();
  const a = tracker(redis0, `t${randomBytes(4).toString('hex')}:`);
  let redis: RedisHandle | undefined;
  try {
    const { httpPort } = await a.listen();
    const q = `/announce?${announceQuery({ infoHash: infoHash('late'), peerId: peerId(1), port: 7001 })}`;
    assert.equal(failureOf(await httpGetDict(httpPort, q)), 'tracker storage unavailable, retry later');
    redis = await startRedis(port);
    let ok = false;
    for (let i = 0; i < 60 && !ok; i++) {
      ok = failureOf(await httpGetDict(httpPort, q)) === undefined;
      if (!ok) await sleep(200);
    }
    assert.ok(ok);
  } finally {
    await a.close();
    await redis?.stop();
  }
});

test('locality ordering with the Redis store', { skip }, async () => {
  const redis = await startRedis();
  const zones = ZoneMap.parse('10.0.1.0/24 z1 r1\n10.0.2.0/24 z1 r2\n');
  const a = tracker(redis, `t${randomBytes(4).toString('hex')}:`, { zones, udpPort: false });
  try {
    const { httpPort } = await a.listen();
    const ih = infoHash('redis-loc');
    const ips = ['192.0.2.1', '10.0.2.1', '10.0.1.2', '192.0.2.2', '10.0.1.3'];
    for (const [i, ip] of ips.entries()) await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId(i), port: 7000 + i, ip })}`);
    const r = await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('me'), port: 7100, ip: '10.0.1.1', numwant: 10 })}`);
    const order = compactList(r.peers, 6).map((x) => x.split(':')[0]!);
    assert.deepEqual(order.slice(0, 2).sort(), ['10.0.1.2', '10.0.1.3']);
    assert.equal(order[2], '10.0.2.1');
    assert.equal(order.length, 5);
  } finally {
    await a.close();
    await redis.stop();
  }
});
