import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { decode, type BDict } from '../../src/bencode/index.js';
import { RateLimiter, TrackerServer, parseQuery, type TrackerOptions } from '../../src/tracker/index.js';
import {
  RawUdpClient, UDP_PROTOCOL_ID, announceQuery, failureOf, httpGetDict, infoHash, pct, peerId, rawHttp, udpError,
} from '../helpers/tracker-raw.js';

async function withTracker(opts: TrackerOptions, fn: (t: TrackerServer, ports: { httpPort: number; udpPort: number }) => Promise<void>): Promise<void> {
  const t = new TrackerServer({ host: '127.0.0.1', rateLimit: false, ...opts });
  const ports = await t.listen();
  try { await fn(t, ports); } finally { await t.close(); }
}

const IH = infoHash('abuse'), PID = peerId('abuser');
const good = `info_hash=${pct(IH)}&peer_id=${pct(PID)}&port=6881&left=0`;

test('HTTP: malformed query strings, wrong lengths, absurd values each get a failure reason', async () => {
  await withTracker({ maxNumwant: 50 }, async (_t, { httpPort }) => {
    const cases: [string, RegExp][] = [
      [`/announce?${good}&x=%zz`, /malformed query/],
      [`/announce?${good}&x=%4`, /malformed query/],
      [`/announce?info_hash=%AA%BB&peer_id=${pct(PID)}&port=6881`, /info_hash must be 20 bytes, got 2/],
      [`/announce?info_hash=${pct(Buffer.alloc(21, 1))}&peer_id=${pct(PID)}&port=6881`, /info_hash must be 20 bytes, got 21/],
      [`/announce?info_hash=${pct(IH)}&peer_id=short&port=6881`, /peer_id must be 20 bytes/],
      [`/announce?peer_id=${pct(PID)}&port=6881`, /missing info_hash/],
      [`/announce?info_hash=${pct(IH)}&peer_id=${pct(PID)}`, /missing port/],
      [`/announce?info_hash=${pct(IH)}&peer_id=${pct(PID)}&port=0`, /port must be/],
      [`/announce?info_hash=${pct(IH)}&peer_id=${pct(PID)}&port=70000`, /port must be/],
      [`/announce?info_hash=${pct(IH)}&peer_id=${pct(PID)}&port=-1`, /port must be/],
      [`/announce?info_hash=${pct(IH)}&peer_id=${pct(PID)}&port=68a1`, /port must be/],
      [`/announce?${good}&numwant=1e9`, /numwant must be an integer/],
      [`/announce?${good}&left=-5`, /left must be a non-negative integer/],
      [`/announce?${good}&event=exploded`, /event must be/],
      [`/announce?${good}&ip=not-an-ip`, /ip must be/],
      [`/scrape?info_hash=${pct(Buffer.alloc(19))}`, /20 bytes/],
      [`/scrape?${Array.from({ length: 70 }, (_, i) => `info_hash=${pct(infoHash(i))}`).join('&')}`, /at most 64/],
      [`/announce?${'a=1&'.repeat(200)}`, /malformed query/],
    ];
    for (const [target, expected] of cases) {
      const r = await rawHttp(httpPort, target);
      assert.equal(r.status, 200, target);
      const d = decode(r.body) as BDict;
      assert.match(failureOf(d) ?? '(no failure reason)', expected, target.slice(0, 100));
    }
    // Absurd numwant values are clamped, not errors.
    for (const nw of ['-1', '1000000000', '99999999999999999999']) {
      const d = await httpGetDict(httpPort, `/announce?${good}&numwant=${nw}`);
      assert.equal(failureOf(d), undefined, `numwant=${nw}`);
    }
  });
});

test('HTTP: oversized targets, headers, bodies and other methods are refused without harm', async () => {
  await withTracker({}, async (_t, { httpPort }) => {
    assert.equal((await rawHttp(httpPort, `/announce?${good}&pad=${'x'.repeat(9000)}`)).status, 414);
    assert.equal((await rawHttp(httpPort, `/announce?${good}`, { extraHeaders: `X-Big: ${'y'.repeat(20000)}\r\n` })).status, 431);
    assert.equal((await rawHttp(httpPort, '/announce', { method: 'POST', extraHeaders: 'Content-Length: 4\r\n', body: 'abcd' })).status, 405);
    assert.equal((await rawHttp(httpPort, `/announce?${good}`, { extraHeaders: 'Content-Length: 4\r\n', body: 'abcd' })).status, 413);
    assert.equal((await rawHttp(httpPort, '/../../etc/passwd')).status, 404);
    assert.equal((await rawHttp(httpPort, '/somekey/announce')).status, 404, 'passkey paths only exist in passkey mode');
    const bad = await rawHttp(httpPort, 'garbage');
    assert.equal(bad.status, 400);
    // Still serving afterwards.
    assert.equal(failureOf(await httpGetDict(httpPort, `/announce?${good}`)), undefined);
  });
});

test('HTTP: random query strings never crash the server', async () => {
  await withTracker({}, async (_t, { httpPort }) => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789%&=+-_.~!*()';
    for (let i = 0; i < 150; i++) {
      const len = 1 + Math.floor(Math.random() * 200);
      let q = '';
      for (let k = 0; k < len; k++) q += alphabet[Math.floor(Math.random() * alphabet.length)];
      const path = i % 2 ? '/announce' : '/scrape';
      const r = await rawHttp(httpPort, `${path}?${q}`);
      assert.ok(r.status === 200 || r.status === 400, `status ${r.status}`);
      if (r.status === 200) assert.ok(failureOf(decode(r.body) as BDict) !== undefined || path === '/scrape');
    }
    assert.equal(failureOf(await httpGetDict(httpPort, `/announce?${good}`)), undefined);
  });
});

test('query parser keeps binary bytes and rejects broken escapes', () => {
  const q = parseQuery('info_hash=%00%FF%2B+a&k=%41')!;
  assert.deepEqual(q.get('info_hash')![0], Buffer.from([0x00, 0xff, 0x2b, 0x20, 0x61]));
  assert.deepEqual(q.get('k')![0], Buffer.from('A'));
  assert.equal(parseQuery('a=%G0'), null);
  assert.equal(parseQuery('a=%'), null);
  assert.equal(parseQuery('a=\u00e9'), null);
});

function connectPacket(): Buffer {
  const p = Buffer.alloc(16);
  UDP_PROTOCOL_ID.copy(p, 0);
  return p;
}

test('UDP: truncated, oversized and nonsense packets get an error or are dropped', async () => {
  await withTracker({}, async (_t, { udpPort }) => {
    const c = new RawUdpClient(udpPort);
    try {
      const id = await c.connect();
      const full = RawUdpClient.announcePacket(id, { infoHash: IH, peerId: PID, port: 6881 });
      // Truncated announce: error with a message.
      assert.match(udpError(await c.request(full.subarray(0, 60)))!, /too short/);
      // Too short to carry a transaction id: dropped.
      assert.equal(await c.request(Buffer.alloc(10), 300), null);
      // Oversized: dropped.
      const big = Buffer.alloc(4000); id.copy(big, 0); big.writeUInt32BE(1, 8);
      assert.equal(await c.request(big, 300), null);
      // Connect with a wrong protocol id: dropped (no reflection of garbage).
      assert.equal(await c.request(Buffer.alloc(16), 300), null);
      // Unknown action.
      const unk = Buffer.from(full.subarray(0, 16)); unk.writeUInt32BE(9, 8);
      assert.match(udpError(await c.request(unk))!, /unknown action/);
      // Bad event, port 0.
      const ev = Buffer.from(full); ev.writeUInt32BE(7, 80);
      assert.match(udpError(await c.request(ev))!, /invalid event/);
      const p0 = Buffer.from(full); p0.writeUInt16BE(0, 96);
      assert.match(udpError(await c.request(p0))!, /port/);
      // Scrape with a partial hash, none, or too many.
      const part = Buffer.alloc(16 + 30); id.copy(part, 0); part.writeUInt32BE(2, 8);
      assert.match(udpError(await c.request(part))!, /whole 20-byte/);
      const none = Buffer.alloc(16); id.copy(none, 0); none.writeUInt32BE(2, 8);
      assert.match(udpError(await c.request(none))!, /whole 20-byte/);
      const many = Buffer.alloc(16 + 20 * 74 + 20); id.copy(many, 0); many.writeUInt32BE(2, 8);
      assert.match(udpError(await c.request(many))!, /too many/);
      // numwant absurd values are clamped; the request still succeeds.
      const nw = Buffer.from(full); nw.writeInt32BE(2_000_000_000, 92);
      const ok = await c.request(nw);
      assert.equal(ok!.readUInt32BE(0), 1);
      // Random garbage.
      for (let i = 0; i < 300; i++) await c.fire(randomBytes(1 + Math.floor(Math.random() * 200)));
      assert.equal((await c.connect()).length, 8, 'still answering after garbage');
    } finally {
      await c.close();
    }
  });
});

test('UDP: forged and expired connection ids are rejected; the previous time bucket is still accepted', async () => {
  const secret = randomBytes(32);
  await withTracker({ udpSecret: secret }, async (_t, { udpPort }) => {
    const c = new RawUdpClient(udpPort);
    try {
      await c.connect();
      const idFor = (bucketOffset: number): Buffer => {
        const bucket = Math.floor(Date.now() / 60_000) + bucketOffset;
        return createHmac('sha256', secret).update(`${bucket}|${c.localPort}|127.0.0.1`).digest().subarray(0, 8);
      };
      const ann = (id: Buffer): Buffer => RawUdpClient.announcePacket(id, { infoHash: IH, peerId: PID, port: 6881 });
      assert.match(udpError(await c.request(ann(randomBytes(8))))!, /connection id/);
      assert.match(udpError(await c.request(ann(idFor(-2))))!, /connection id/, 'two buckets old = expired');
      assert.match(udpError(await c.request(ann(idFor(+1))))!, /connection id/, 'future buckets are not valid');
      const prev = await c.request(ann(idFor(-1)));
      assert.equal(prev!.readUInt32BE(0), 1, 'an id from the previous bucket (< 2 min old) still works');
      const other = createHmac('sha256', randomBytes(32)).update(`${Math.floor(Date.now() / 60_000)}|${c.localPort}|127.0.0.1`).digest().subarray(0, 8);
      assert.match(udpError(await c.request(ann(other)))!, /connection id/, 'an id made with another secret is a forgery');
    } finally {
      await c.close();
    }
  });
});

test('UDP flood from one address is dropped while another address is still served', async () => {
  await withTracker({ rateLimit: { perSecond: 5, burst: 10 } }, async (_t, { udpPort }) => {
    const flood = new RawUdpClient(udpPort, '127.0.0.1', '127.0.0.1');
    const other = new RawUdpClient(udpPort, '127.0.0.1', '127.0.0.2');
    try {
      let answered = 0;
      flood.socket.on('message', () => { answered++; });
      const started = Date.now();
      for (let i = 0; i < 300; i++) await flood.fire(connectPacket());
      await new Promise((r) => setTimeout(r, 300));
      const elapsed = (Date.now() - started) / 1000;
      assert.ok(answered >= 1, 'the first requests are answered');
      assert.ok(answered <= 10 + Math.ceil(5 * elapsed) + 1, `flood was not limited: ${answered} of 300 answered in ${elapsed}s`);
      const id = await other.connect();
      assert.equal(id.length, 8, 'a different address is unaffected');
    } finally {
      await flood.close(); await other.close();
    }
  });
});

test('HTTP flood from one address gets a failure reason while another address is served', async () => {
  await withTracker({ rateLimit: { perSecond: 2, burst: 5 } }, async (_t, { httpPort }) => {
    const results: (string | undefined)[] = [];
    const started = Date.now();
    for (let i = 0; i < 30; i++) results.push(failureOf(await httpGetDict(httpPort, `/announce?${good}`)));
    const elapsed = (Date.now() - started) / 1000;
    const served = results.filter((r) => r === undefined).length;
    assert.ok(results.some((r) => r && /too many requests/.test(r)), 'some requests are refused with a failure reason');
    assert.ok(served <= 5 + Math.ceil(2 * elapsed) + 1, `flood was not limited: ${served} of 30 served in ${elapsed}s`);
    const d = await httpGetDict(httpPort, `/announce?${good}`, { localAddress: '127.0.0.2' });
    assert.equal(failureOf(d), undefined);
  });
});

test('memory stays bounded: peers per swarm, peers in total and swarms are capped', async () => {
  await withTracker({ maxPeersPerSwarm: 40, maxPeers: 60, maxSwarms: 3 }, async (t, { httpPort }) => {
    const c = new RawUdpClient((await t.statsJson()) && t.udpPort);
    try {
      const id = await c.connect();
      for (let i = 0; i < 200; i++) {
        const r = await c.announce(id, { infoHash: infoHash('big'), peerId: peerId(`p${i}`), port: 1000 + i });
        assert.ok(r.leechers <= 40);
      }
      for (let i = 0; i < 100; i++) await c.announce(id, { infoHash: infoHash('big2'), peerId: peerId(`q${i}`), port: 1000 + i });
      const s = await t.statsJson();
      assert.equal((s.seeds as number) + (s.leechers as number), 60);
      // Announced twice, so it is not a junk swarm that a new one could displace.
      await c.announce(id, { infoHash: infoHash('third'), peerId: PID, port: 6881 });
      await c.announce(id, { infoHash: infoHash('third'), peerId: PID, port: 6881 });
      const fourth = await c.request(RawUdpClient.announcePacket(id, { infoHash: infoHash('fourth'), peerId: PID, port: 6881 }));
      assert.match(udpError(fourth)!, /torrent limit/);
      const httpFourth = await httpGetDict(httpPort, `/announce?${announceQuery({ infoHash: infoHash('fourth'), peerId: PID })}`);
      assert.match(failureOf(httpFourth)!, /torrent limit/);
      // Peers over the cap still get peers back, they are just not stored.
      const over = await c.announce(id, { infoHash: infoHash('big'), peerId: peerId('late'), port: 5000, numwant: 10 });
      assert.equal(over.peers.length, 10);
    } finally {
      await c.close();
    }
  });
});

test('rate limiter state is bounded under a spoofed-source flood', () => {
  const rl = new RateLimiter({ perSecond: 1, burst: 1, maxTracked: 100 });
  for (let i = 0; i < 10_000; i++) rl.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 1000);
  assert.ok(rl.tracked <= 100);
  assert.equal(rl.take('192.0.2.1', 1000), true);
  assert.equal(rl.take('192.0.2.1', 1000), false);
  assert.equal(rl.take('192.0.2.1', 2001), true, 'refills over time');
});
