import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrackerServer, ZoneMap, type TrackerOptions } from '../../src/tracker/index.js';
import { RawUdpClient, infoHash, parseAnnounceReply, peerId, udpError } from '../helpers/tracker-raw.js';

async function withTracker(opts: TrackerOptions, fn: (t: TrackerServer, port: number) => Promise<void>): Promise<void> {
  const t = new TrackerServer({ host: '127.0.0.1', httpPort: false, rateLimit: false, ...opts });
  const { udpPort } = await t.listen();
  try { await fn(t, udpPort); } finally { await t.close(); }
}

async function withClients<T>(n: number, port: number, fn: (cs: RawUdpClient[]) => Promise<T>, host = '127.0.0.1'): Promise<T> {
  const cs = Array.from({ length: n }, () => new RawUdpClient(port, host));
  try { return await fn(cs); } finally { await Promise.all(cs.map((c) => c.close())); }
}

const EV = { none: 0, completed: 1, started: 2, stopped: 3 };

test('connect then announce: interval, leechers/seeders, 6-byte peers; transaction id echoed', async () => {
  await withTracker({ interval: 900 }, async (_t, port) => {
    await withClients(2, port, async ([a, b]) => {
      const ida = await a!.connect(), idb = await b!.connect();
      assert.equal(ida.length, 8);
      const ih = infoHash('udp-basic');
      const r1 = await a!.announce(ida, { infoHash: ih, peerId: peerId('a'), port: 7001, event: EV.started });
      assert.equal(r1.action, 1);
      assert.equal(r1.interval, 900);
      assert.equal(r1.leechers, 1);
      assert.equal(r1.seeders, 0);
      assert.deepEqual(r1.peers, []);
      const r2 = await b!.announce(idb, { infoHash: ih, peerId: peerId('b'), port: 7002, left: 0n });
      assert.equal(r2.leechers, 1);
      assert.equal(r2.seeders, 1);
      assert.deepEqual(r2.peers, ['127.0.0.1:7001']);
      assert.equal(r2.raw.length, 26);
      // The transaction id of the request comes back unchanged.
      const pkt = RawUdpClient.announcePacket(ida, { infoHash: ih, peerId: peerId('a'), port: 7001 });
      pkt.writeUInt32BE(0xdeadbeef, 12);
      const raw = await a!.request(pkt, 1000, true);
      assert.equal(raw!.readUInt32BE(4), 0xdeadbeef);
    });
  });
});

test('scrape several info-hashes: seeders, completed, leechers in request order', async () => {
  await withTracker({}, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const x = infoHash('udp-sx'), y = infoHash('udp-sy'), z = infoHash('udp-sz');
      await c!.announce(id, { infoHash: x, peerId: peerId(1), port: 7001, left: 0n, event: EV.completed });
      await c!.announce(id, { infoHash: x, peerId: peerId(2), port: 7002 });
      await c!.announce(id, { infoHash: y, peerId: peerId(3), port: 7003 });
      const r = await c!.scrape(id, [x, y, z]);
      assert.equal(r.readUInt32BE(0), 2);
      assert.equal(r.length, 8 + 36);
      const triple = (i: number): number[] => [r.readUInt32BE(8 + 12 * i), r.readUInt32BE(12 + 12 * i), r.readUInt32BE(16 + 12 * i)];
      assert.deepEqual(triple(0), [1, 1, 1]);
      assert.deepEqual(triple(1), [0, 0, 1]);
      assert.deepEqual(triple(2), [0, 0, 0]);
    });
  });
});

test('events over UDP: stopped removes, completed is counted once', async () => {
  await withTracker({}, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const ih = infoHash('udp-ev');
      await c!.announce(id, { infoHash: ih, peerId: peerId(1), port: 7001, event: EV.started });
      await c!.announce(id, { infoHash: ih, peerId: peerId(2), port: 7002, event: EV.started });
      await c!.announce(id, { infoHash: ih, peerId: peerId(1), port: 7001, event: EV.completed, left: 0n });
      await c!.announce(id, { infoHash: ih, peerId: peerId(1), port: 7001, event: EV.completed, left: 0n });
      const s = await c!.scrape(id, [ih]);
      assert.deepEqual([s.readUInt32BE(8), s.readUInt32BE(12), s.readUInt32BE(16)], [1, 1, 1]);
      const stop = await c!.announce(id, { infoHash: ih, peerId: peerId(1), port: 7001, event: EV.stopped, left: 0n });
      assert.equal(stop.seeders, 0);
      assert.deepEqual(stop.peers, []);
      const other = await c!.announce(id, { infoHash: ih, peerId: peerId(2), port: 7002 });
      assert.deepEqual(other.peers, []);
    });
  });
});

test('numwant over UDP: capped, -1 means the default', async () => {
  await withTracker({ maxNumwant: 4, defaultNumwant: 2 }, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const ih = infoHash('udp-nw');
      for (let i = 0; i < 10; i++) await c!.announce(id, { infoHash: ih, peerId: peerId(i), port: 7000 + i });
      assert.equal((await c!.announce(id, { infoHash: ih, peerId: peerId('me'), port: 7100, numwant: 1000 })).peers.length, 4);
      assert.equal((await c!.announce(id, { infoHash: ih, peerId: peerId('me'), port: 7100, numwant: -1 })).peers.length, 2);
      assert.equal((await c!.announce(id, { infoHash: ih, peerId: peerId('me'), port: 7100, numwant: 0 })).peers.length, 0);
    });
  });
});

test('no seeds to seeds and never the requester itself over UDP', async () => {
  await withTracker({}, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const ih = infoHash('udp-seed');
      for (let i = 0; i < 3; i++) await c!.announce(id, { infoHash: ih, peerId: peerId(`s${i}`), port: 7000 + i, left: 0n });
      await c!.announce(id, { infoHash: ih, peerId: peerId('l'), port: 7100 });
      const s = await c!.announce(id, { infoHash: ih, peerId: peerId('s0'), port: 7000, left: 0n, numwant: 50 });
      assert.deepEqual(s.peers, ['127.0.0.1:7100']);
      const l = await c!.announce(id, { infoHash: ih, peerId: peerId('l'), port: 7100, numwant: 50 });
      assert.deepEqual(l.peers.sort(), ['127.0.0.1:7000', '127.0.0.1:7001', '127.0.0.1:7002']);
    });
  });
});

test('IPv6 over UDP: dual-stack socket, 18-byte peers for IPv6 clients and 6-byte peers for IPv4 clients', async () => {
  await withTracker({ host: '::' }, async (_t, port) => {
    const v6 = new RawUdpClient(port, '::1');
    const v4 = new RawUdpClient(port, '127.0.0.1');
    try {
      const ih = infoHash('udp-v6');
      const id6 = await v6.connect(), id4 = await v4.connect();
      await v6.announce(id6, { infoHash: ih, peerId: peerId('six-a'), port: 7006 });
      await v4.announce(id4, { infoHash: ih, peerId: peerId('four'), port: 7004 });
      const r6 = await v6.announce(id6, { infoHash: ih, peerId: peerId('six-b'), port: 7007 });
      assert.deepEqual(r6.peers, ['[0:0:0:0:0:0:0:1]:7006'], 'IPv6 reply carries only IPv6 peers');
      assert.equal(r6.leechers, 3);
      const r4 = await v4.announce(id4, { infoHash: ih, peerId: peerId('four'), port: 7004 });
      assert.deepEqual(r4.peers, [], 'IPv4 reply carries only IPv4 peers');
      // A connection id is bound to the address it was issued to.
      const stolen = await v4.request(RawUdpClient.announcePacket(id6, { infoHash: ih, peerId: peerId('x'), port: 7009 }));
      assert.match(udpError(stolen)!, /connection id/);
    } finally {
      await v6.close(); await v4.close();
    }
  });
});

test('connection ids are bound to address and port', async () => {
  await withTracker({}, async (_t, port) => {
    await withClients(2, port, async ([a, b]) => {
      const ida = await a!.connect();
      await b!.connect();
      const r = await b!.request(RawUdpClient.announcePacket(ida, { infoHash: infoHash('bind'), peerId: peerId(1), port: 7001 }));
      assert.match(udpError(r)!, /connection id invalid or expired/);
    });
  });
});

test('UDP peers expire after the TTL', async () => {
  await withTracker({ peerTtl: 0.3 }, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const ih = infoHash('udp-ttl');
      await c!.announce(id, { infoHash: ih, peerId: peerId('old'), port: 7001 });
      await new Promise((r) => setTimeout(r, 900));
      const r = await c!.announce(id, { infoHash: ih, peerId: peerId('new'), port: 7002 });
      assert.deepEqual(r.peers, []);
      assert.equal(r.leechers, 1);
    });
  });
});

test('locality over UDP orders peers by rack and zone (ip field honoured from loopback)', async () => {
  const zones = ZoneMap.parse('10.0.1.0/24 z1 r1\n10.0.2.0/24 z1 r2\n10.9.0.0/16 z9\n');
  await withTracker({ zones }, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      const ih = infoHash('udp-loc');
      const ip = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
      const peers = ['10.9.0.1', '10.0.2.1', '10.0.1.2', '10.9.0.2', '10.0.1.3'];
      for (const [i, p] of peers.entries()) await c!.announce(id, { infoHash: ih, peerId: peerId(i), port: 7000 + i, ip: ip(p) });
      const r = await c!.announce(id, { infoHash: ih, peerId: peerId('me'), port: 7100, ip: ip('10.0.1.9'), numwant: 10 });
      const order = r.peers.map((a) => a.split(':')[0]!);
      assert.deepEqual(order.slice(0, 2).sort(), ['10.0.1.2', '10.0.1.3']);
      assert.equal(order[2], '10.0.2.1');
      assert.deepEqual(order.slice(3).sort(), ['10.9.0.1', '10.9.0.2']);
    });
  });
});

test('private mode over UDP: unlisted info-hash gets an error, scrape reports zeros for it', async () => {
  const ok = infoHash('udp-ok'), no = infoHash('udp-no');
  await withTracker({ allowList: [ok.toString('hex')] }, async (_t, port) => {
    await withClients(1, port, async ([c]) => {
      const id = await c!.connect();
      await c!.announce(id, { infoHash: ok, peerId: peerId(1), port: 7001 });
      const r = await c!.request(RawUdpClient.announcePacket(id, { infoHash: no, peerId: peerId(1), port: 7001 }));
      assert.match(udpError(r)!, /not authorized/);
      const s = await c!.scrape(id, [ok, no]);
      assert.equal(s.readUInt32BE(16), 1);
      assert.equal(s.readUInt32BE(28), 0);
    });
  });
});

test('an announce reply parses with the BEP 15 layout', () => {
  const b = Buffer.alloc(26);
  b.writeUInt32BE(1, 0); b.writeUInt32BE(5, 4); b.writeUInt32BE(60, 8); b.writeUInt32BE(2, 12); b.writeUInt32BE(3, 16);
  b.set([10, 0, 0, 1, 0x1a, 0xe1], 20);
  assert.deepEqual(parseAnnounceReply(b, 6).peers, ['10.0.0.1:6881']);
});
