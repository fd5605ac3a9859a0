import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '../../src/bencode/index.js';
import { encodeCompactPeer4, encodeCompactPeer6 } from '../../src/discovery/compact.js';
import { announceHttp, scrapeHttp, scrapeUrlFor, percentEncodeBytes } from '../../src/discovery/http-tracker.js';
import type { AnnounceParams } from '../../src/discovery/types.js';
import { isShoalError } from '../../src/util/errors.js';
import { startHttpServer, type MiniHttpServer } from '../helpers/mini-tracker.js';

// Every byte value that needs escaping, plus the characters that break naive encoders.
const INFO_HASH = Buffer.from([0x00, 0xff, 0x25, 0x26, 0x3d, 0x2b, 0x20, 0x7e, 0x2e, 0x2d, 0x5f, 0x41, 0x7a, 0x39, 0x80, 0x3f, 0x23, 0x2f, 0x0a, 0xc3]);
const PEER_ID = Buffer.from('-SH0001-\x01\x02\xfe%&= abc', 'latin1');

function params(extra: Partial<AnnounceParams> = {}): AnnounceParams {
  return { infoHash: INFO_HASH, peerId: PEER_ID, port: 6881, uploaded: 10, downloaded: 20, left: 30, ...extra };
}

async function withServer(
  handler: Parameters<typeof startHttpServer>[0],
  fn: (s: MiniHttpServer) => Promise<void>,
): Promise<void> {
  const s = await startHttpServer(handler);
  try { await fn(s); } finally { await s.close(); }
}

async function rejectsTracker(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isShoalError(e, 'ETRACKER'), `expected ETRACKER, got ${String(e)}`);
    assert.match((e as Error).message, re);
    return true;
  });
}

test('percentEncodeBytes escapes everything outside the unreserved set', () => {
  assert.equal(percentEncodeBytes(Buffer.from('aZ09.-_~')), 'aZ09.-_~');
  assert.equal(percentEncodeBytes(Buffer.from([0, 0xff, 0x20, 0x25, 0x2b])), '%00%FF%20%25%2B');
});

test('compact announce: binary-safe query, passkey preserved, full response parsed', async () => {
  await withServer((hit, _req, res) => {
    res.end(encode({
      interval: 900, 'min interval': 60, complete: 3, incomplete: 4, 'tracker id': Buffer.from([1, 2, 0xff]),
      peers: Buffer.concat([encodeCompactPeer4('10.0.0.1', 6881), encodeCompactPeer4('192.168.1.2', 51413)]),
    }));
  }, async (s) => {
    const r = await announceHttp(s.url('/announce?passkey=s3cr3t'), params({ event: 'started', numwant: 25, key: 0xdeadbeef }),
      { timeoutMs: 5000 });
    const hit = s.hits[0]!;
    assert.equal(hit.path, '/announce');
    // Only unreserved characters and escapes on the wire.
    assert.match(hit.rawQuery, /^[A-Za-z0-9.\-_~%=&]*$/);
    assert.deepEqual(hit.query.get('info_hash'), [INFO_HASH]);
    assert.deepEqual(hit.query.get('peer_id'), [PEER_ID]);
    assert.equal(hit.param('passkey'), 's3cr3t');
    assert.equal(hit.param('port'), '6881');
    assert.equal(hit.param('uploaded'), '10');
    assert.equal(hit.param('downloaded'), '20');
    assert.equal(hit.param('left'), '30');
    assert.equal(hit.param('compact'), '1');
    assert.equal(hit.param('event'), 'started');
    assert.equal(hit.param('numwant'), '25');
    assert.equal(hit.param('key'), 'deadbeef');

    assert.equal(r.interval, 900);
    assert.equal(r.minInterval, 60);
    assert.equal(r.complete, 3);
    assert.equal(r.incomplete, 4);
    assert.equal(r.trackerId, Buffer.from([1, 2, 0xff]).toString('latin1'));
    assert.deepEqual(r.peers, [{ host: '10.0.0.1', port: 6881 }, { host: '192.168.1.2', port: 51413 }]);
  });
});

test('tracker id is sent back byte for byte', async () => {
  await withServer((_hit, _req, res) => res.end(encode({ interval: 60, peers: Buffer.alloc(0) })), async (s) => {
    await announceHttp(s.url(), params({ trackerId: Buffer.from([0xff, 0x26, 0x41]).toString('latin1') }), { timeoutMs: 5000 });
    assert.deepEqual(s.hits[0]!.query.get('trackerid'), [Buffer.from([0xff, 0x26, 0x41])]);
  });
});

test('non-compact peer list with peer ids, unsorted keys accepted, junk entries skipped', async () => {
  const pid = Buffer.alloc(20, 7);
  // Hand-written bencode with unsorted keys, as some trackers emit.
  const body = Buffer.concat([
    Buffer.from('d8:intervali120e5:peersl'),
    Buffer.from('d4:porti6881e2:ip8:10.1.2.37:peer id20:'), pid, Buffer.from('e'),
    Buffer.from('d2:ip3:::14:porti7000ee'),
    Buffer.from('d2:ip11:example.com4:porti1ee'), // hostname: not an IP literal, skipped
    Buffer.from('d2:ip7:1.2.3.44:porti0ee'),      // port 0, skipped
    Buffer.from('i5e'),
    Buffer.from('ee'),
  ]);
  await withServer((_hit, _req, res) => res.end(body), async (s) => {
    const r = await announceHttp(s.url(), params({ compact: false }), { timeoutMs: 5000 });
    assert.equal(s.hits[0]!.param('compact'), '0');
    assert.equal(r.interval, 120);
    assert.deepEqual(r.peers, [{ host: '10.1.2.3', port: 6881, peerId: pid }, { host: '::1', port: 7000 }]);
  });
});

test('peers6 (BEP 7) alongside compact peers', async () => {
  await withServer((_hit, _req, res) => res.end(encode({
    interval: 60,
    peers: encodeCompactPeer4('127.0.0.1', 1000),
    peers6: Buffer.concat([encodeCompactPeer6('2001:db8::1', 2000), encodeCompactPeer6('::1', 3000)]),
  })), async (s) => {
    const r = await announceHttp(s.url(), params(), { timeoutMs: 5000 });
    assert.deepEqual(r.peers, [{ host: '127.0.0.1', port: 1000 }, { host: '2001:db8::1', port: 2000 }, { host: '::1', port: 3000 }]);
  });
});

test('failure reason becomes ETRACKER quoting the tracker, without the passkey', async () => {
  await withServer((_hit, _req, res) => res.end(encode({ 'failure reason': 'Requested download is not authorized' })), async (s) => {
    await rejectsTracker(announceHttp(s.url('/announce?passkey=s3cr3t'), params(), { timeoutMs: 5000 }),
      new RegExp(`^tracker http://127\\.0\\.0\\.1:${s.port}/announce: "Requested download is not authorized"$`));
  });
});

test('failure reason in a non-200 response is still reported; plain HTTP errors name the status', async () => {
  await withServer((hit, _req, res) => {
    if (hit.path === '/announce') { res.statusCode = 403; res.end(encode({ 'failure reason': 'banned client' })); }
    else { res.statusCode = 500; res.end('<html>oops</html>'); }
  }, async (s) => {
    await rejectsTracker(announceHttp(s.url(), params(), { timeoutMs: 5000 }), /: "banned client"$/);
    await rejectsTracker(announceHttp(s.url('/other/announce'), params(), { timeoutMs: 5000 }), /: HTTP 500/);
  });
});

test('malformed bodies are ETRACKER errors', async () => {
  await withServer((hit, _req, res) => res.end(hit.path === '/a/announce' ? 'not bencode' : 'li1ee'), async (s) => {
    await rejectsTracker(announceHttp(s.url('/a/announce'), params(), { timeoutMs: 5000 }), /malformed response/);
    await rejectsTracker(announceHttp(s.url('/b/announce'), params(), { timeoutMs: 5000 }), /not a bencoded dictionary/);
  });
});

test('warning message is returned with the peers', async () => {
  await withServer((_hit, _req, res) => res.end(encode({ interval: 60, 'warning message': 'tracker will move soon', peers: Buffer.alloc(0) })),
    async (s) => {
      const r = await announceHttp(s.url(), params(), { timeoutMs: 5000 });
      assert.equal(r.warning, 'tracker will move soon');
      assert.deepEqual(r.peers, []);
    });
});

test('follows up to 3 redirects, keeping the query the tracker redirected to', async () => {
  await withServer((hit, _req, res) => {
    const hop = Number(/^\/r(\d)$/.exec(hit.path)?.[1] ?? -1);
    if (hit.path === '/announce') { res.writeHead(302, { Location: `/r1?${hit.rawQuery}` }); res.end(); }
    else if (hop >= 1 && hop < 3) { res.writeHead(hop === 1 ? 301 : 307, { Location: `/r${hop + 1}?${hit.rawQuery}` }); res.end(); }
    else if (hop === 3) res.end(encode({ interval: 60, peers: encodeCompactPeer4('1.2.3.4', 5) }));
    else if (hit.path === '/loop') { res.writeHead(302, { Location: '/loop' }); res.end(); }
  }, async (s) => {
    const r = await announceHttp(s.url(), params(), { timeoutMs: 5000 });
    assert.deepEqual(r.peers, [{ host: '1.2.3.4', port: 5 }]);
    assert.equal(s.hits.length, 4);
    assert.deepEqual(s.hits[3]!.query.get('info_hash'), [INFO_HASH]);
    await rejectsTracker(announceHttp(s.url('/loop'), params(), { timeoutMs: 5000 }), /too many redirects/);
    assert.equal(s.hits.filter((h) => h.path === '/loop').length, 4);
  });
});

test('oversized responses are cut off with a clear error (declared and streamed)', async () => {
  const big = Buffer.alloc(64 * 1024, 0x61);
  await withServer((hit, _req, res) => {
    if (hit.path === '/declared/announce') {
      res.writeHead(200, { 'Content-Length': String(10 * 1024 * 1024) });
      res.write(big);
      return; // never finishes: the client must not wait for it
    }
    // Chunked, no length: keep streaming until the client hangs up (bounded by the cap on the server too).
    let sent = 0;
    const pump = (): void => {
      while (sent < 8 * 1024 * 1024 && !res.destroyed) {
        sent += big.length;
        if (!res.write(big)) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
  }, async (s) => {
    await rejectsTracker(announceHttp(s.url('/declared/announce'), params(), { timeoutMs: 5000, maxResponseBytes: 1024 * 1024 }),
      /response too large \(10485760 bytes, limit 1048576\)/);
    await rejectsTracker(announceHttp(s.url('/streamed/announce'), params(), { timeoutMs: 10000 }),
      /response too large \(over 2097152 bytes\)/);
  });
});

test('a tracker that never answers times out', async () => {
  await withServer(() => { /* hold the request open */ }, async (s) => {
    await rejectsTracker(announceHttp(s.url(), params(), { timeoutMs: 200 }), /no response within 200 ms/);
  });
});

test('an abort signal cancels the request', async () => {
  await withServer(() => { /* hold */ }, async (s) => {
    const ac = new AbortController();
    const p = announceHttp(s.url(), params(), { timeoutMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await rejectsTracker(p, /aborted/);
  });
});

test('connection refused is an ETRACKER error', async () => {
  const s = await startHttpServer(() => undefined);
  const url = s.url();
  await s.close();
  await rejectsTracker(announceHttp(url, params(), { timeoutMs: 5000 }), /request failed/);
});

test('scrape URL derivation follows the announce -> scrape convention', () => {
  assert.equal(scrapeUrlFor('http://t.example/announce'), 'http://t.example/scrape');
  assert.equal(scrapeUrlFor('http://t.example/x/announce.php?passkey=1'), 'http://t.example/x/scrape.php?passkey=1');
  assert.equal(scrapeUrlFor('https://t.example:8443/announce?a=b'), 'https://t.example:8443/scrape?a=b');
  assert.throws(() => scrapeUrlFor('http://t.example/a'), (e: unknown) => isShoalError(e, 'ETRACKER') && /scrape not supported/.test((e as Error).message));
  assert.throws(() => scrapeUrlFor('http://t.example/announce/x'), /scrape not supported/);
});

test('scrape sends every info_hash and parses the files dict (BEP 48)', async () => {
  const h1 = INFO_HASH;
  const h2 = Buffer.alloc(20, 0xab);
  await withServer((hit, _req, res) => {
    assert.equal(hit.path, '/scrape');
    const files = new Map<Buffer, unknown>();
    for (const [i, h] of (hit.query.get('info_hash') ?? []).entries()) files.set(h, { complete: i + 1, incomplete: i + 10, downloaded: i + 100 });
    res.end(encode({ files }));
  }, async (s) => {
    const r = await scrapeHttp(s.url('/announce?passkey=k'), [h1, h2], { timeoutMs: 5000 });
    assert.deepEqual(s.hits[0]!.query.get('info_hash'), [h1, h2]);
    assert.equal(s.hits[0]!.param('passkey'), 'k');
    assert.deepEqual(r.get(h1.toString('hex')), { complete: 1, incomplete: 10, downloaded: 100 });
    assert.deepEqual(r.get(h2.toString('hex')), { complete: 2, incomplete: 11, downloaded: 101 });
    assert.equal(r.size, 2);
  });
});

test('scrape failure reason is an ETRACKER error', async () => {
  await withServer((_hit, _req, res) => res.end(encode({ 'failure reason': 'scrape disabled' })), async (s) => {
    await rejectsTracker(scrapeHttp(s.url(), [INFO_HASH], { timeoutMs: 5000 }), /scrape: "scrape disabled"$/);
  });
});

test('IPv6 literal tracker URL', async () => {
  const s = await startHttpServer((_hit, _req, res) => res.end(encode({ interval: 60, peers: encodeCompactPeer4('1.2.3.4', 80) })), '::1');
  try {
    assert.match(s.url(), /^http:\/\/\[::1\]:\d+\/announce$/);
    const r = await announceHttp(s.url(), params({ ipv6: '2001:db8::7' }), { timeoutMs: 5000 });
    assert.deepEqual(r.peers, [{ host: '1.2.3.4', port: 80 }]);
    assert.equal(s.hits[0]!.param('ipv6'), '2001:db8::7');
  } finally {
    await s.close();
  }
});
