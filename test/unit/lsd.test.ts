import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Lsd, LsdPeerSource, LsdRateLimiter, buildLsdMessage, packLsdMessages, parseLsdMessage,
  LSD_HOST4, LSD_HOST6, LSD_MAX_SEND, LSD_MAX_PARSE,
} from '../../src/discovery/lsd.js';
import { isShoalError } from '../../src/util/errors.js';
import type { PeerAddress } from '../../src/discovery/compact.js';

const IH1 = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
const IH2 = '0123456789abcdef0123456789abcdef01234567';
const IH3 = 'ffffffffffffffffffffffffffffffffffffffff';
const CRLF = '\r\n';

function msg(lines: string[], tail = CRLF + CRLF): Buffer {
  return Buffer.from(lines.join(CRLF) + tail, 'latin1');
}

function rejects(buf: Buffer, why: RegExp): void {
  assert.throws(() => parseLsdMessage(buf), (e: unknown) => {
    assert.ok(isShoalError(e, 'EWIRE'), `expected EWIRE, got ${String(e)}`);
    assert.match(e.message, /^LSD message: /);
    assert.match(e.message, why);
    return true;
  });
}

const GOOD = ['BT-SEARCH * HTTP/1.1', `Host: ${LSD_HOST4}`, 'Port: 6881', `Infohash: ${IH1}`];

test('builds the BEP 14 announce byte for byte and parses it back', () => {
  const buf = buildLsdMessage({ port: 6881, infoHashes: [Buffer.from(IH1, 'hex'), IH2.toUpperCase()], cookie: 'abc123' });
  assert.equal(buf.toString('latin1'),
    `BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: ${IH1}\r\nInfohash: ${IH2}\r\ncookie: abc123\r\n\r\n\r\n`);
  assert.deepEqual(parseLsdMessage(buf), { host: LSD_HOST4, port: 6881, infoHashes: [IH1, IH2], cookie: 'abc123' });
  const v6 = parseLsdMessage(buildLsdMessage({ port: 1, infoHashes: [IH3], family: 6 }));
  assert.deepEqual(v6, { host: LSD_HOST6, port: 1, infoHashes: [IH3] });
});

test('parses what libtorrent sends, header names in any case, unknown headers ignored, repeats deduped', () => {
  // libtorrent 2.0 lsd.cpp: one Infohash, hex cookie, "\r\n\r\n" after the cookie line
  const lt = `BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\nInfohash: ${IH1.toUpperCase()}\r\ncookie: 5a3f0c1\r\n\r\n\r\n`;
  assert.deepEqual(parseLsdMessage(Buffer.from(lt)), { host: LSD_HOST4, port: 51413, infoHashes: [IH1], cookie: '5a3f0c1' });
  const odd = msg(['BT-SEARCH * HTTP/1.1', `HOST:${LSD_HOST6.toUpperCase()}`, 'x-future: 1', 'port:   80  ', `infohash: ${IH2}`, `INFOHASH: ${IH2}`, `Infohash: ${IH1}`], CRLF + CRLF);
  assert.deepEqual(parseLsdMessage(odd), { host: LSD_HOST6, port: 80, infoHashes: [IH2, IH1] });
  assert.deepEqual(parseLsdMessage(msg(GOOD, CRLF + CRLF)).infoHashes, [IH1], 'no trailing empty line is fine too');
});

test('round-trips any port, cookie and info-hash list that fits one datagram (seeded)', () => {
  const ih = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((a) => Buffer.from(a).toString('hex'));
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 65535 }), fc.uniqueArray(ih, { minLength: 1, maxLength: 24 }),
    fc.option(fc.stringMatching(/^[\x21-\x7e]{1,64}$/), { nil: undefined }), fc.constantFrom(4 as const, 6 as const),
    (port, infoHashes, cookie, family) => {
      const buf = buildLsdMessage({ port, infoHashes, family, ...(cookie !== undefined ? { cookie } : {}) });
      assert.ok(buf.length <= LSD_MAX_SEND);
      const m = parseLsdMessage(buf);
      assert.deepEqual(m, { host: family === 6 ? LSD_HOST6 : LSD_HOST4, port, infoHashes, ...(cookie !== undefined ? { cookie } : {}) });
    }), { seed: 14, numRuns: 300 });
});

test('packs many info-hashes into as few datagrams as fit under 1400 bytes, in order', () => {
  const many = Array.from({ length: 100 }, (_, i) => i.toString(16).padStart(40, '0'));
  for (const family of [4, 6] as const) {
    const packed = packLsdMessages({ port: 65535, infoHashes: many, cookie: 'ffffffff', family });
    const perMessage = parseLsdMessage(packed[0]!).infoHashes.length;
    assert.ok(perMessage >= 24, `only ${perMessage} per datagram`);
    assert.equal(packed.length, Math.ceil(many.length / perMessage));
    for (const b of packed) assert.ok(b.length <= LSD_MAX_SEND, `${b.length} bytes`);
    // One more info-hash would not have fitted: the packing is as tight as the limit allows.
    assert.ok(packed[0]!.length + 52 > LSD_MAX_SEND);
    assert.deepEqual(packed.flatMap((b) => parseLsdMessage(b).infoHashes), many);
  }
  assert.deepEqual(packLsdMessages({ port: 1, infoHashes: [] }), []);
  assert.throws(() => buildLsdMessage({ port: 1, infoHashes: many }), (e: unknown) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => buildLsdMessage({ port: 0, infoHashes: [IH1] }), (e: unknown) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => buildLsdMessage({ port: 1, infoHashes: ['abc'] }), (e: unknown) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => buildLsdMessage({ port: 1, infoHashes: [IH1], cookie: 'a b' }), (e: unknown) => isShoalError(e, 'EUSAGE'));
});

test('rejects wrong methods, targets and versions', () => {
  rejects(msg(['M-SEARCH * HTTP/1.1', ...GOOD.slice(1)]), /method "M-SEARCH" is not BT-SEARCH/); // SSDP's, on the next port
  rejects(msg(['bt-search * HTTP/1.1', ...GOOD.slice(1)]), /method/);
  rejects(msg(['GET / HTTP/1.1', ...GOOD.slice(1)]), /method "GET"/);
  rejects(msg(['BT-SEARCH / HTTP/1.1', ...GOOD.slice(1)]), /request target "\/" is not \*/);
  rejects(msg(['BT-SEARCH * HTTP/1.0', ...GOOD.slice(1)]), /version "HTTP\/1.0"/);
  rejects(msg(['BT-SEARCH  * HTTP/1.1', ...GOOD.slice(1)]), /malformed request line/);
  rejects(msg(['BT-SEARCH *', ...GOOD.slice(1)]), /malformed request line/);
});

test('rejects bad, missing and repeated Port, Host and Infohash headers', () => {
  const withPort = (p: string) => msg([GOOD[0]!, GOOD[1]!, `Port: ${p}`, GOOD[3]!]);
  for (const p of ['0', '65536', '99999', '-1', '+80', '0x50', '80a', '', '123456', '8 0']) rejects(withPort(p), /Port/);
  rejects(msg([GOOD[0]!, GOOD[1]!, GOOD[3]!]), /no Port header/);
  rejects(msg([...GOOD, 'Port: 1']), /more than one Port/);
  rejects(msg([GOOD[0]!, ...GOOD.slice(2)]), /no Host header/);
  rejects(msg([GOOD[0]!, 'Host: 192.168.1.1:6771', ...GOOD.slice(2)]), /Host "192.168.1.1:6771" is not an LSD group/);
  rejects(msg([GOOD[0]!, 'Host: 239.192.152.143', ...GOOD.slice(2)]), /not an LSD group/);
  rejects(msg([...GOOD, `Host: ${LSD_HOST4}`]), /more than one Host/);
  rejects(msg(GOOD.slice(0, 3)), /no Infohash header/);
  rejects(msg([...GOOD, `Infohash: ${IH1.slice(1)}`]), /Infohash ".*" is not 40 hex/);
  rejects(msg([...GOOD, `Infohash: ${IH1}00`]), /not 40 hex/);
  rejects(msg([...GOOD, `Infohash: ${IH1.slice(1)}g`]), /not 40 hex/);
  rejects(msg([...GOOD, 'cookie: a', 'cookie: b']), /more than one cookie/);
  rejects(msg([...GOOD, 'cookie:']), /cookie must be/);
  rejects(msg([...GOOD, `cookie: ${'x'.repeat(65)}`]), /cookie must be/);
});

test('rejects garbage, oversize datagrams and broken framing with a clear error', () => {
  rejects(Buffer.alloc(0), /not terminated/);
  rejects(Buffer.from('BT-SEARCH * HTTP/1.1\r\n'), /not terminated/);
  rejects(msg(GOOD, CRLF), /not terminated/);
  rejects(Buffer.from(GOOD.join('\n') + '\n\n'), /not terminated/);
  rejects(msg(GOOD, `${CRLF}${CRLF}hello`), /after the header block/);
  rejects(msg([...GOOD, 'no colon here']), /malformed header line/);
  rejects(msg([...GOOD, ': empty name']), /malformed header line/);
  rejects(msg([...GOOD, 'bad name: x']), /malformed header name/);
  rejects(msg([...GOOD, 'x: a\nb']), /bare CR or LF/);
  rejects(Buffer.concat([msg(GOOD.slice(0, 3)), Buffer.from([0xc3, 0xa9])]), /not printable ASCII/);
  rejects(msg([...GOOD, 'x: \x00']), /not printable ASCII/);
  const huge = msg([...GOOD, `x-pad: ${'a'.repeat(LSD_MAX_PARSE)}`]);
  rejects(huge, new RegExp(`${huge.length} bytes is over the ${LSD_MAX_PARSE}-byte limit`));
  // Random bytes and random header soup only ever produce EWIRE (or, rarely, a valid message), never a crash.
  fc.assert(fc.property(fc.oneof(
    fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
    fc.array(fc.constantFrom(...GOOD, 'Port: 1', 'cookie: x', '', ':', 'Infohash: zz', 'a: b', '\r', '\n'), { maxLength: 12 })
      .map((ls) => Buffer.from(ls.join(CRLF) + CRLF + CRLF)),
  ), (buf) => {
    try { parseLsdMessage(buf); } catch (e) { assert.ok(isShoalError(e, 'EWIRE'), String(e)); }
  }), { seed: 6771, numRuns: 500 });
});

test('rate limiter: one announce per info-hash per interval, independent per info-hash', () => {
  const rl = new LsdRateLimiter(60_000);
  assert.deepEqual(rl.take([IH1, IH2], 1_000), [IH1, IH2]);
  assert.deepEqual(rl.take([IH1, IH2], 2_000), []);
  assert.deepEqual(rl.take([IH1, IH3], 30_000), [IH3]);
  assert.deepEqual(rl.take([IH1, IH2, IH3], 60_999), []);
  assert.deepEqual(rl.take([IH1, IH2, IH3], 61_000), [IH1, IH2]);
  assert.deepEqual(rl.take([IH3], 90_000), [IH3]);
  assert.deepEqual(new LsdRateLimiter(0).take([IH1], 0), [IH1]);
});

function udpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
}

test('under SHOAL_SANDBOX=1 without the namespace allowance LSD binds no socket and sends nothing', async () => {
  const before = udpHandles();
  const envs: NodeJS.ProcessEnv[] = [
    { SHOAL_SANDBOX: '1' },
    { SHOAL_SANDBOX: '1', SHOAL_LSD_IN_SANDBOX: '0' },
  ];
  for (const env of envs) {
    for (const interfaceAddress of [undefined, '198.18.0.2', '10.0.0.1']) {
      const lsd = new Lsd({ port: 6881, env, ...(interfaceAddress ? { interfaceAddress } : {}) });
      const warnings: string[] = [];
      lsd.on('warning', (w: string) => warnings.push(w));
      await lsd.start();
      lsd.announce([IH1, IH2]);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(lsd.active, false);
      assert.equal(udpHandles(), before, 'no UDP socket was opened');
      assert.equal(lsd.stats().datagramsSent, 0);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /LSD is off under SHOAL_SANDBOX=1/);
      assert.match(warnings[0]!, /SHOAL_LSD_IN_SANDBOX=1/);
      await lsd.close();
    }
  }
  // The allowance alone is not enough: the interface must be a namespace one, so a leaked variable cannot
  // put multicast on the host's real networks. That is a usage error, thrown before any socket exists.
  for (const interfaceAddress of [undefined, '10.0.0.1', '192.168.1.10', '127.0.0.1', '198.20.0.1']) {
    const lsd = new Lsd({ port: 6881, env: { SHOAL_SANDBOX: '1', SHOAL_LSD_IN_SANDBOX: '1' }, ...(interfaceAddress ? { interfaceAddress } : {}) });
    await assert.rejects(lsd.start(), (e: unknown) => isShoalError(e, 'EUSAGE') && /198\.18\.0\.0\/15/.test(e.message));
    assert.equal(udpHandles(), before);
    await lsd.close();
  }
});

test('bad options are usage errors', () => {
  for (const bad of [{ port: 0 }, { port: 70000 }, { port: 1.5 }, { port: 1, interfaceAddress: 'eth0' }, { port: 1, interfaceAddress: '::1' },
    { port: 1, cookie: '' }, { port: 1, cookie: 'has space' }, { port: 1, minIntervalMs: -1 }, { port: 1, reannounceIntervalMs: Number.NaN }]) {
    assert.throws(() => new Lsd(bad), (e: unknown) => isShoalError(e, 'EUSAGE'), JSON.stringify(bad));
  }
  const lsd = new Lsd({ port: 1 });
  assert.match(lsd.cookie, /^[0-9a-f]{1,8}$/, 'default cookie is hex, as libtorrent compares cookies as hex numbers');
  assert.notEqual(new Lsd({ port: 1 }).cookie + new Lsd({ port: 1 }).cookie, lsd.cookie + lsd.cookie);
  assert.throws(() => lsd.announce(['xyz']), (e: unknown) => isShoalError(e, 'EUSAGE'));
});

test('received announces: own cookie dropped, only watched info-hashes reported, garbage counted, sandbox sources only', () => {
  const env = { SHOAL_SANDBOX: '1' };
  const lsd = new Lsd({ port: 6881, cookie: 'Beef01', env });
  const peers: Array<[string, PeerAddress]> = [];
  lsd.on('peer', (ih: string, a: PeerAddress) => peers.push([ih, a]));
  lsd.watch(Buffer.from(IH1, 'hex'));
  lsd.watch(IH2);
  const from = { address: '198.18.5.7' };
  lsd.receive(buildLsdMessage({ port: 7000, infoHashes: [IH1, IH2, IH3], cookie: 'beef01' }), from);
  assert.deepEqual(peers, [], 'our own cookie (compared case-insensitively, as hex) is ignored');
  lsd.receive(buildLsdMessage({ port: 7000, infoHashes: [IH3, IH1, IH2], cookie: 'other' }), from);
  assert.deepEqual(peers, [[IH1, { host: '198.18.5.7', port: 7000 }], [IH2, { host: '198.18.5.7', port: 7000 }]]);
  lsd.receive(buildLsdMessage({ port: 7001, infoHashes: [IH1] }), { address: '192.168.1.20' });
  assert.equal(peers.length, 2, 'a source outside the sandbox ranges is dropped under SHOAL_SANDBOX=1');
  lsd.receive(Buffer.from('NOTIFY * HTTP/1.1\r\n\r\n'), from);
  lsd.unwatch(IH2);
  lsd.receive(buildLsdMessage({ port: 7002, infoHashes: [IH2] }), from);
  assert.equal(peers.length, 2, 'unwatched info-hash is no longer reported');
  assert.deepEqual(lsd.stats(), { active: false, datagramsSent: 0, datagramsReceived: 5, malformed: 1, ownDropped: 1, peersReported: 2, sendErrors: 0, watching: 1 });
  const outside = new Lsd({ port: 6881, env: {} });
  outside.watch(IH1);
  let got: PeerAddress | undefined;
  outside.on('peer', (_ih: string, a: PeerAddress) => { got = a; });
  outside.receive(buildLsdMessage({ port: 7001, infoHashes: [IH1] }), { address: '192.168.1.20' });
  assert.deepEqual(got, { host: '192.168.1.20', port: 7001 }, 'outside the sandbox any LAN source counts');
});

test('LsdPeerSource pushes the peers for its own info-hash to the sink as kind lsd, until stopped', async () => {
  const lsd = new Lsd({ port: 6881, env: {} });
  const src = new LsdPeerSource(lsd, Buffer.from(IH1, 'hex'));
  assert.equal(src.kind, 'lsd');
  const got: Array<[PeerAddress[], string]> = [];
  src.start((peers, kind) => got.push([peers, kind]));
  assert.equal(lsd.stats().watching, 1, 'start watches (and queues an announce of) its info-hash');
  lsd.watch(IH2);
  lsd.receive(buildLsdMessage({ port: 9000, infoHashes: [IH2, IH1] }), { address: '10.1.2.3' });
  assert.deepEqual(got, [[[{ host: '10.1.2.3', port: 9000 }], 'lsd']]);
  assert.deepEqual(src.describe(), { active: false, peersHeard: 1, lastPeer: '10.1.2.3:9000' });
  await src.stop();
  lsd.receive(buildLsdMessage({ port: 9001, infoHashes: [IH1] }), { address: '10.1.2.4' });
  assert.equal(got.length, 1);
  assert.equal(lsd.stats().watching, 1, 'stop unwatches only its own info-hash');
  assert.equal(lsd.listenerCount('peer'), 0);
});
