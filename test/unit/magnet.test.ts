import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildMagnet, parseMagnet } from '../../src/metainfo/index.js';
import { isShoalError } from '../../src/util/errors.js';

const HEX = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
// RFC 4648 base32 of the same 20 bytes
const B32 = Buffer.from(HEX, 'hex');

function base32(buf: Buffer): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, acc = 0, out = '';
  for (const byte of buf) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) { bits -= 5; out += A[(acc >>> bits) & 31]; }
  }
  return out;
}

function rejects(uri: string, why: RegExp): void {
  assert.throws(() => parseMagnet(uri), (e: unknown) => {
    assert.ok(isShoalError(e, 'EMAGNET'), `expected EMAGNET, got ${String(e)}`);
    assert.match(e.message, /^magnet: /);
    assert.match(e.message, why);
    return true;
  });
}

test('parses hex and base32 info-hashes, case-insensitively', () => {
  const a = parseMagnet(`magnet:?xt=urn:btih:${HEX}`);
  assert.equal(a.infoHashHex, HEX);
  assert.deepEqual(a.infoHash, B32);
  assert.deepEqual(a.trackers, []);
  assert.deepEqual(a.peers, []);
  assert.deepEqual(a.webSeeds, []);
  assert.equal(a.name, undefined);
  assert.equal(parseMagnet(`MAGNET:?XT=URN:BTIH:${HEX.toUpperCase()}`).infoHashHex, HEX);
  const b32 = base32(B32);
  assert.equal(b32.length, 32);
  assert.equal(parseMagnet(`magnet:?xt=urn:btih:${b32}`).infoHashHex, HEX);
  assert.equal(parseMagnet(`magnet:?xt=urn:btih:${b32.toLowerCase()}`).infoHashHex, HEX);
});

test('parses dn, repeated tr, x.pe (v4 and v6), ws with URL decoding', () => {
  const m = parseMagnet(
    `magnet:?xt=urn:btih:${HEX}&dn=My+Movie%20%C3%A9&tr=http%3A%2F%2F127.0.0.1%3A8000%2Fannounce&tr=udp://127.0.0.1:6969` +
    `&tr=udp://127.0.0.1:6969&x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882&ws=http%3A%2F%2F127.0.0.1%2Ffiles%2F&foo=bar&tr.1=http://x/`,
  );
  assert.equal(m.name, 'My Movie \u00e9');
  assert.deepEqual(m.trackers, ['http://127.0.0.1:8000/announce', 'udp://127.0.0.1:6969', 'http://x/']);
  assert.deepEqual(m.peers, [{ host: '127.0.0.1', port: 6881 }, { host: '::1', port: 6882 }]);
  assert.deepEqual(m.webSeeds, ['http://127.0.0.1/files/']);
});

test('accepts a btmh xt alongside btih (hybrid magnets)', () => {
  const m = parseMagnet(`magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}&xt=urn:btih:${HEX}`);
  assert.equal(m.infoHashHex, HEX);
});

test('clear EMAGNET errors', () => {
  rejects('http://example/', /not a magnet URI/);
  rejects('', /not a magnet URI/);
  rejects('magnet:?dn=x', /missing "xt=urn:btih:"/);
  rejects(`magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}`, /only BitTorrent v1/);
  rejects('magnet:?xt=urn:btih:abc', /is 3 characters; expected 40 hex or 32 base32/);
  rejects(`magnet:?xt=urn:btih:${HEX.slice(0, 39)}g`, /not hex/);
  rejects(`magnet:?xt=urn:btih:${'1'.repeat(32)}`, /not base32/);
  rejects(`magnet:?xt=urn:btih:${HEX}&xt=urn:btih:${'0'.repeat(40)}`, /two different/);
  rejects(`magnet:?xt=urn:btih:${HEX}&x.pe=nonsense`, /bad peer address in x.pe: "nonsense"/);
  rejects(`magnet:?xt=urn:btih:${HEX}&x.pe=1.2.3.4:70000`, /bad peer address/);
  rejects(`magnet:?xt=urn:btih:${HEX}&dn=%E0%A4%A`, /bad percent-encoding in "dn"/);
});

test('buildMagnet produces the canonical form and round-trips', () => {
  const uri = buildMagnet({
    infoHash: Buffer.from(HEX, 'hex'), name: 'a & b=c', trackers: ['http://127.0.0.1:1/announce?x=1&y=2'],
    peers: [{ host: '127.0.0.1', port: 1 }, { host: '::1', port: 2 }], webSeeds: ['http://127.0.0.1/ws/'],
  });
  assert.match(uri, new RegExp(`^magnet:\\?xt=urn:btih:${HEX}&dn=a%20%26%20b%3Dc&tr=http%3A%2F%2F127\\.0\\.0\\.1%3A1%2Fannounce%3Fx%3D1%26y%3D2&x\\.pe=127\\.0\\.0\\.1%3A1&x\\.pe=%5B%3A%3A1%5D%3A2&ws=`));
  const m = parseMagnet(uri);
  assert.equal(m.name, 'a & b=c');
  assert.deepEqual(m.trackers, ['http://127.0.0.1:1/announce?x=1&y=2']);
  assert.deepEqual(m.peers, [{ host: '127.0.0.1', port: 1 }, { host: '::1', port: 2 }]);
  assert.equal(buildMagnet({ infoHash: HEX.toUpperCase() }), `magnet:?xt=urn:btih:${HEX}`);
  assert.throws(() => buildMagnet({ infoHash: Buffer.alloc(5) }), (e: unknown) => isShoalError(e, 'EUSAGE'));
});

test('property: parseMagnet(buildMagnet(x)) returns x', () => {
  const peer = fc.oneof(
    fc.ipV4().map((host) => ({ host, port: 0 })),
    fc.constantFrom('::1', 'fe80::1', '2001:db8::ff').map((host) => ({ host, port: 0 })),
  ).chain((p) => fc.integer({ min: 1, max: 65535 }).map((port) => ({ ...p, port })));
  const nonEmpty = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 });
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.option(fc.string({ unit: 'grapheme', maxLength: 30 }), { nil: undefined }),
    fc.uniqueArray(nonEmpty, { maxLength: 4 }), fc.array(peer, { maxLength: 3 }), fc.uniqueArray(nonEmpty, { maxLength: 3 }),
    (hash, name, trackers, peers, webSeeds) => {
      const input = { infoHash: Buffer.from(hash), trackers, peers, webSeeds, ...(name !== undefined ? { name } : {}) };
      const m = parseMagnet(buildMagnet(input));
      assert.deepEqual(m.infoHash, input.infoHash);
      assert.equal(m.name, name);
      assert.deepEqual(m.trackers, trackers);
      assert.deepEqual(m.peers, peers);
      assert.deepEqual(m.webSeeds, webSeeds);
    }), { numRuns: 300 });
});
