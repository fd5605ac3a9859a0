import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BDict, BValue } from '../../src/bencode/index.js';
import { TrackerServer, ZoneMap, type TrackerOptions } from '../../src/tracker/index.js';
import { announceQuery, compactList, failureOf, httpGetDict, infoHash, pct, peerId, rawHttp, type AnnounceParams } from '../helpers/tracker-raw.js';

async function withTracker(opts: TrackerOptions, fn: (t: TrackerServer, port: number) => Promise<void>): Promise<void> {
  const t = new TrackerServer({ host: '127.0.0.1', udpPort: false, rateLimit: false, ...opts });
  const { httpPort } = await t.listen();
  try { await fn(t, httpPort); } finally { await t.close(); }
}

function announce(port: number, p: AnnounceParams, path = '/announce'): Promise<BDict> {
  return httpGetDict(port, `${path}?${announceQuery(p)}`);
}

function num(v: BValue | undefined): number {
  assert.equal(typeof v, 'number');
  return v as number;
}

test('compact announce: counts, interval fields, tracker id, peers as 6-byte entries', async () => {
  await withTracker({ interval: 600, minInterval: 30 }, async (t, port) => {
    const ih = infoHash('compact');
    const first = await announce(port, { infoHash: ih, peerId: peerId('a'), port: 7001, event: 'started' });
    assert.equal(failureOf(first), undefined);
    assert.equal(num(first.interval), 600);
    assert.equal(num(first['min interval']), 30);
    assert.ok(Buffer.isBuffer(first['tracker id']) && first['tracker id'].length > 0);
    assert.deepEqual(compactList(first.peers, 6), []);
    assert.equal(num(first.incomplete), 1);

    const second = await announce(port, { infoHash: ih, peerId: peerId('b'), port: 7002, left: 0, compact: 1 });
    assert.deepEqual(compactList(second.peers, 6), ['127.0.0.1:7001']);
    assert.equal(num(second.complete), 1);
    assert.equal(num(second.incomplete), 1);
    assert.equal(second.peers6, undefined, 'no peers6 key when there are no IPv6 peers and the client is IPv4');
  });
});

test('non-compact announce (compact=0) lists dicts with peer id, ip, port; no_peer_id omits the id', async () => {
  await withTracker({}, async (_t, port) => {
    const ih = infoHash('noncompact');
    await announce(port, { infoHash: ih, peerId: peerId('a'), port: 7001 });
    const r = await announce(port, { infoHash: ih, peerId: peerId('b'), port: 7002, compact: 0 });
    assert.ok(Array.isArray(r.peers));
    const peers = r.peers as BDict[];
    assert.equal(peers.length, 1);
    assert.deepEqual(peers[0]!['peer id'], peerId('a'));
    assert.equal((peers[0]!.ip as Buffer).toString(), '127.0.0.1');
    assert.equal(peers[0]!.port, 7001);
    const r2 = await announce(port, { infoHash: ih, peerId: peerId('c'), port: 7003, compact: 0, noPeerId: true });
    for (const p of r2.peers as BDict[]) assert.equal(p['peer id'], undefined);
    assert.equal((r2.peers as BDict[]).length, 2);
  });
});

test('IPv6 peers come back in peers6 (BEP 7), IPv4 peers in peers', async () => {
  await withTracker({ host: '::' }, async (_t, port) => {
    const ih = infoHash('v6');
    const v6 = await httpGetDict(port, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('six'), port: 7006 })}`, { host: '::1' });
    assert.equal(failureOf(v6), undefined);
    const v4 = await announce(port, { infoHash: ih, peerId: peerId('four'), port: 7004 });
    assert.deepEqual(compactList(v4.peers6, 18), ['[0:0:0:0:0:0:0:1]:7006']);
    assert.deepEqual(compactList(v4.peers, 6), []);
    const again = await httpGetDict(port, `/announce?${announceQuery({ infoHash: ih, peerId: peerId('six'), port: 7006 })}`, { host: '::1' });
    assert.deepEqual(compactList(again.peers, 6), ['127.0.0.1:7004']);
    assert.ok(Buffer.isBuffer(again.peers6), 'an IPv6 client always gets a peers6 key');
    // Non-compact lists carry both families.
    const nc = await announce(port, { infoHash: ih, peerId: peerId('nc'), port: 7008, compact: 0 });
    const ips = (nc.peers as BDict[]).map((p) => (p.ip as Buffer).toString()).sort();
    assert.deepEqual(ips, ['127.0.0.1', '::1']);
  });
});

test('scrape with several info-hashes (BEP 48) and unknown hashes as zeros', async () => {
  await withTracker({}, async (_t, port) => {
    const a = infoHash('scrape-a'), b = infoHash('scrape-b'), unknown = infoHash('scrape-none');
    await announce(port, { infoHash: a, peerId: peerId(1), port: 7001, left: 0 });
    await announce(port, { infoHash: a, peerId: peerId(2), port: 7002 });
    await announce(port, { infoHash: b, peerId: peerId(3), port: 7003, event: 'completed', left: 0 });
    const r = await httpGetDict(port, `/scrape?info_hash=${pct(a)}&info_hash=${pct(b)}&info_hash=${pct(unknown)}`);
    const files = r.files as BDict;
    const fa = files[a.toString('latin1')] as BDict, fb = files[b.toString('latin1')] as BDict, fu = files[unknown.toString('latin1')] as BDict;
    assert.deepEqual({ ...fa }, { complete: 1, downloaded: 0, incomplete: 1 });
    assert.deepEqual({ ...fb }, { complete: 1, downloaded: 1, incomplete: 0 });
    assert.deepEqual({ ...fu }, { complete: 0, downloaded: 0, incomplete: 0 });
    const none = await httpGetDict(port, '/scrape');
    assert.match(failureOf(none)!, /info_hash/);
  });
});

test('events: stopped removes the peer, completed counts once per peer', async () => {
  await withTracker({}, async (_t, port) => {
    const ih = infoHash('events');
    await announce(port, { infoHash: ih, peerId: peerId('x'), port: 7001, event: 'started' });
    await announce(port, { infoHash: ih, peerId: peerId('y'), port: 7002, event: 'started' });
    const done = await announce(port, { infoHash: ih, peerId: peerId('x'), port: 7001, event: 'completed', left: 0 });
    assert.equal(num(done.downloaded), 1);
    assert.equal(num(done.complete), 1);
    assert.equal(num(done.incomplete), 1);
    // A repeated completed from a peer already seeding is not a second download.
    const again = await announce(port, { infoHash: ih, peerId: peerId('x'), port: 7001, event: 'completed', left: 0 });
    assert.equal(num(again.downloaded), 1);
    const stop = await announce(port, { infoHash: ih, peerId: peerId('x'), port: 7001, event: 'stopped', left: 0 });
    assert.equal(num(stop.complete), 0);
    assert.deepEqual(compactList(stop.peers, 6), []);
    const y = await announce(port, { infoHash: ih, peerId: peerId('y'), port: 7002 });
    assert.deepEqual(compactList(y.peers, 6), [], 'the stopped peer is not handed out');
    assert.equal(num(y.downloaded), 1);
  });
});

test('numwant: capped at maxNumwant, 0 gives none, negative gives the default', async () => {
  await withTracker({ maxNumwant: 5, defaultNumwant: 3 }, async (_t, port) => {
    const ih = infoHash('numwant');
    for (let i = 0; i < 12; i++) await announce(port, { infoHash: ih, peerId: peerId(`n${i}`), port: 7000 + i });
    const me = { infoHash: ih, peerId: peerId('me'), port: 7100 };
    assert.equal(compactList((await announce(port, { ...me, numwant: 100 })).peers, 6).length, 5);
    assert.equal(compactList((await announce(port, { ...me, numwant: 0 })).peers, 6).length, 0);
    assert.equal(compactList((await announce(port, { ...me, numwant: -1 })).peers, 6).length, 3);
    assert.equal(compactList((await announce(port, { ...me })).peers, 6).length, 3);
    const got = compactList((await announce(port, { ...me, numwant: 5 })).peers, 6);
    assert.equal(new Set(got).size, 5, 'peers are distinct');
  });
});

test('seeds are not returned to seeds; a leecher gets both', async () => {
  await withTracker({}, async (_t, port) => {
    const ih = infoHash('seeds');
    for (let i = 0; i < 3; i++) await announce(port, { infoHash: ih, peerId: peerId(`s${i}`), port: 7000 + i, left: 0 });
    for (let i = 0; i < 2; i++) await announce(port, { infoHash: ih, peerId: peerId(`l${i}`), port: 7100 + i });
    const seed = await announce(port, { infoHash: ih, peerId: peerId('s9'), port: 7009, left: 0, numwant: 50 });
    assert.deepEqual(compactList(seed.peers, 6).sort(), ['127.0.0.1:7100', '127.0.0.1:7101']);
    const leech = await announce(port, { infoHash: ih, peerId: peerId('l9'), port: 7109, numwant: 50 });
    assert.equal(compactList(leech.peers, 6).length, 6);
  });
});

test('the requester never gets itself back, not even under a new peer id', async () => {
  await withTracker({}, async (_t, port) => {
    const ih = infoHash('self');
    const alone = await announce(port, { infoHash: ih, peerId: peerId('me'), port: 7001 });
    assert.deepEqual(compactList(alone.peers, 6), []);
    const again = await announce(port, { infoHash: ih, peerId: peerId('me'), port: 7001 });
    assert.deepEqual(compactList(again.peers, 6), []);
    // Same address and port, restarted client with a new id: still itself.
    const restarted = await announce(port, { infoHash: ih, peerId: peerId('me2'), port: 7001 });
    assert.deepEqual(compactList(restarted.peers, 6), []);
  });
});

test('peers expire after the peer TTL without announces', async () => {
  await withTracker({ peerTtl: 0.3 }, async (t, port) => {
    const ih = infoHash('expiry');
    await announce(port, { infoHash: ih, peerId: peerId('old'), port: 7001 });
    const fresh = await announce(port, { infoHash: ih, peerId: peerId('probe'), port: 7002, event: 'stopped' });
    assert.equal(num(fresh.incomplete), 1);
    await new Promise((r) => setTimeout(r, 900));
    const later = await announce(port, { infoHash: ih, peerId: peerId('new'), port: 7003 });
    assert.deepEqual(compactList(later.peers, 6), []);
    assert.equal(num(later.incomplete), 1, 'only the new peer is counted');
    const stats = await t.statsJson();
    assert.equal(stats.leechers, 1);
  });
});

test('locality: same rack first, then same zone, then the rest', async () => {
  const zones = ZoneMap.parse(['# fleet', '10.0.1.0/24 z1 r1', '10.0.2.0/24 z1 r2', '10.1.0.0/16 z2', 'fd00::/8 z2 r9'].join('\n'));
  await withTracker({ zones }, async (_t, port) => {
    const ih = infoHash('locality');
    const ips = ['10.1.0.5', '10.0.2.5', '10.0.1.6', '192.0.2.7', '10.0.2.6', '10.0.1.7', '10.1.3.3'];
    // The ip parameter is honoured from loopback, which is how the test places peers in racks.
    for (const [i, ip] of ips.entries()) await announce(port, { infoHash: ih, peerId: peerId(`p${i}`), port: 7000 + i, ip });
    const r = await announce(port, { infoHash: ih, peerId: peerId('me'), port: 7100, ip: '10.0.1.1', numwant: 50 });
    const got = compactList(r.peers, 6).map((a) => a.split(':')[0]!);
    assert.equal(got.length, ips.length);
    const tier = (ip: string): number => ip.startsWith('10.0.1.') ? 0 : ip.startsWith('10.0.') ? 1 : 2;
    const tiers = got.map(tier);
    assert.deepEqual(tiers, [...tiers].sort((a, b) => a - b), `not ordered by locality: ${got.join(', ')}`);
    assert.deepEqual(tiers.slice(0, 4), [0, 0, 1, 1]);
    // numwant smaller than the rack: only same-rack peers.
    const few = await announce(port, { infoHash: ih, peerId: peerId('me'), port: 7100, ip: '10.0.1.1', numwant: 2 });
    assert.deepEqual(compactList(few.peers, 6).map((a) => a.split(':')[0]!).sort(), ['10.0.1.6', '10.0.1.7']);
  });
});

test('zone files: text and JSON forms, IPv4 and IPv6, longest prefix wins, errors name the line', () => {
  const m = ZoneMap.parse('10.0.0.0/8 big\n10.2.0.0/16 z2 rA\n2001:db8::/32 v6zone rack6\n');
  const big = m.lookupIp('10.9.9.9'), z2 = m.lookupIp('10.2.3.4'), z2b = m.lookupIp('10.2.200.1');
  assert.ok(big && z2 && z2b);
  assert.notEqual(big.zone, z2.zone);
  assert.equal(z2.rack, z2b.rack);
  assert.ok(m.lookupIp('2001:db8:1::5'));
  assert.equal(m.lookupIp('2001:db9::1'), undefined);
  assert.deepEqual(m.lookupIp('::ffff:10.2.0.1'), z2);
  const j = ZoneMap.parse(JSON.stringify([{ cidr: '192.168.0.0/16', zone: 'home', rack: 'r' }]));
  assert.ok(j.lookupIp('192.168.1.1'));
  const o = ZoneMap.parse(JSON.stringify({ '172.16.0.0/12': 'dc' }));
  assert.ok(o.lookupIp('172.20.0.1'));
  assert.throws(() => ZoneMap.parse('10.0.0.0/33 z'), /prefix length/);
  assert.throws(() => ZoneMap.parse('ok.not.ip/8 z'), /not an IPv4 or IPv6/);
  assert.throws(() => ZoneMap.parse('10.0.0.0/8\n'), /:1: expected/);
});

test('private mode: allow-list file, allow()/disallow() API, scrape hides unlisted hashes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-tracker-'));
  try {
    const listed = infoHash('listed'), other = infoHash('other');
    const file = join(dir, 'allow.txt');
    await writeFile(file, `# allowed\n${listed.toString('hex').toUpperCase()}\n\n`);
    await withTracker({ allowList: file }, async (t, port) => {
      assert.equal(failureOf(await announce(port, { infoHash: listed, peerId: peerId(1), port: 7001 })), undefined);
      assert.match(failureOf(await announce(port, { infoHash: other, peerId: peerId(1), port: 7001 }))!, /not authorized/);
      t.allow(other.toString('hex'));
      assert.equal(failureOf(await announce(port, { infoHash: other, peerId: peerId(1), port: 7001 })), undefined);
      t.disallow(listed.toString('hex'));
      assert.match(failureOf(await announce(port, { infoHash: listed, peerId: peerId(1), port: 7001 }))!, /not authorized/);
      const s = await httpGetDict(port, `/scrape?info_hash=${pct(listed)}&info_hash=${pct(other)}`);
      assert.deepEqual(Object.keys(s.files as BDict), [other.toString('latin1')]);
      assert.throws(() => t.allow('not-hex'), /40-character hex/);
    });
    await writeFile(join(dir, 'bad.txt'), 'zz\n');
    await assert.rejects(new TrackerServer({ host: '127.0.0.1', allowList: join(dir, 'bad.txt') }).listen(), /bad\.txt:1/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('passkeys: /<passkey>/announce required, unknown keys rejected', async () => {
  await withTracker({ passkeys: ['k3y-One'] }, async (t, port) => {
    const p = { infoHash: infoHash('pk'), peerId: peerId(1), port: 7001 };
    assert.match(failureOf(await announce(port, p))!, /private/);
    assert.match(failureOf(await announce(port, p, '/wrong/announce'))!, /unknown passkey/);
    assert.equal(failureOf(await announce(port, p, '/k3y-One/announce')), undefined);
    const s = await httpGetDict(port, `/k3y-One/scrape?info_hash=${pct(p.infoHash)}`);
    assert.equal(((s.files as BDict)[p.infoHash.toString('latin1')] as BDict).incomplete, 1);
    t.removePasskey('k3y-One');
    assert.match(failureOf(await announce(port, p, '/k3y-One/announce'))!, /unknown passkey/);
  });
});

test('X-Forwarded-For is used only when trustProxyHeader is set', async () => {
  await withTracker({ trustProxyHeader: true }, async (_t, port) => {
    const ih = infoHash('proxy');
    await httpGetDict(port, `/announce?${announceQuery({ infoHash: ih, peerId: peerId(1), port: 7001 })}`, { extraHeaders: 'X-Forwarded-For: 203.0.113.9, 198.51.100.4\r\n' });
    const r = await announce(port, { infoHash: ih, peerId: peerId(2), port: 7002 });
    assert.deepEqual(compactList(r.peers, 6), ['198.51.100.4:7001']);
  });
  await withTracker({}, async (_t, port) => {
    const ih = infoHash('noproxy');
    await httpGetDict(port, `/announce?${announceQuery({ infoHash: ih, peerId: peerId(1), port: 7001 })}`, { extraHeaders: 'X-Forwarded-For: 198.51.100.4\r\n' });
    const r = await announce(port, { infoHash: ih, peerId: peerId(2), port: 7002 });
    assert.deepEqual(compactList(r.peers, 6), ['127.0.0.1:7001']);
  });
});

test('/stats is JSON with swarm, seed, leecher and announce-rate figures; /metrics is Prometheus text', async () => {
  await withTracker({}, async (_t, port) => {
    await announce(port, { infoHash: infoHash('st1'), peerId: peerId(1), port: 7001, left: 0 });
    await announce(port, { infoHash: infoHash('st2'), peerId: peerId(2), port: 7002 });
    await announce(port, { infoHash: infoHash('st2'), peerId: peerId(3), port: 7003, event: 'bogus' });
    const s = await rawHttp(port, '/stats');
    assert.equal(s.status, 200);
    assert.match(s.headers, /application\/json/);
    const j = JSON.parse(s.body.toString()) as Record<string, unknown>;
    assert.equal(j.swarms, 2);
    assert.equal(j.seeds, 1);
    assert.equal(j.leechers, 1);
    assert.equal(typeof j.announcesPerSecond, 'number');
    assert.equal(j.announcesTotal, 2);
    const m = await rawHttp(port, '/metrics');
    assert.equal(m.status, 200);
    const text = m.body.toString();
    assert.match(text, /^shoal_tracker_announces_total\{protocol="http",event="none"\} 2$/m);
    assert.match(text, /^shoal_tracker_swarms 2$/m);
    assert.match(text, /^shoal_tracker_seeds 1$/m);
    assert.match(text, /^shoal_tracker_errors_total\{protocol="http",reason="malformed"\} 1$/m);
    assert.match(text, /# TYPE shoal_tracker_announces_total counter/);
  });
});

test('two servers in one process keep separate metrics', async () => {
  await withTracker({}, async (_a, portA) => {
    await withTracker({}, async (_b, portB) => {
      await announce(portA, { infoHash: infoHash('m'), peerId: peerId(1), port: 7001 });
      const b = (await rawHttp(portB, '/metrics')).body.toString();
      assert.doesNotMatch(b, /^shoal_tracker_announces_total\{protocol="http",event="none"\} 1$/m);
    });
  });
});
