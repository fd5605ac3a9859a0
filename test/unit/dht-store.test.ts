import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenManager } from '../../src/dht/tokens.js';
import { PeerStore } from '../../src/dht/peer-store.js';
import { IpRateLimiter } from '../../src/dht/rate-limit.js';

test('tokens: bound to the IP, valid for the current and previous secret, dead after two rotations', () => {
  let now = 0;
  const tm = new TokenManager(5 * 60_000, () => now);
  const tok = tm.issue('10.0.0.1');
  assert.equal(tok.length, 8);
  assert.ok(tm.verify('10.0.0.1', tok));
  assert.ok(!tm.verify('10.0.0.2', tok), 'another IP cannot use it');
  const forged = Buffer.from(tok);
  forged[0] ^= 1;
  assert.ok(!tm.verify('10.0.0.1', forged));
  assert.ok(!tm.verify('10.0.0.1', Buffer.alloc(8)));
  assert.ok(!tm.verify('10.0.0.1', Buffer.concat([tok, Buffer.from([0])])), 'wrong length');
  now += 5 * 60_000;
  assert.ok(tm.verify('10.0.0.1', tok), 'one rotation: still accepted');
  assert.notDeepEqual(tm.issue('10.0.0.1'), tok);
  now += 5 * 60_000;
  assert.ok(!tm.verify('10.0.0.1', tok), 'two rotations: expired');
  // Idle for a long time: the lazy rotation must not leave the old secret valid.
  const t2 = tm.issue('10.0.0.3');
  now += 60 * 60_000;
  assert.ok(!tm.verify('10.0.0.3', t2));
});

test('peer store: bounded per info-hash and in info-hashes, oldest dropped first, renewals move to the front', () => {
  let now = 0;
  const ps = new PeerStore({ maxInfoHashes: 3, maxPeersPerInfoHash: 4, ttlMs: 1000, now: () => now });
  const ih = (n: number) => Buffer.alloc(20, n);
  for (let i = 1; i <= 6; i++) ps.add(ih(1), { host: `10.0.0.${i}`, port: 1000 + i });
  assert.equal(ps.peers, 4);
  const got = ps.get(ih(1)).map((b) => `${b[0]}.${b[1]}.${b[2]}.${b[3]}:${b.readUInt16BE(4)}`);
  assert.deepEqual(got, ['10.0.0.6:1006', '10.0.0.5:1005', '10.0.0.4:1004', '10.0.0.3:1003']);
  ps.add(ih(1), { host: '10.0.0.3', port: 1003 }); // renewal, not a new entry
  assert.equal(ps.peers, 4);
  ps.add(ih(1), { host: '10.0.0.7', port: 1007 });
  assert.equal(ps.get(ih(1)).some((b) => b[3] === 3), true, 'the renewed peer survived');
  assert.equal(ps.get(ih(1)).some((b) => b[3] === 4), false, 'the oldest went');
  assert.equal(ps.get(ih(1), 2).length, 2);
  ps.add(ih(2), { host: '10.0.1.1', port: 1 });
  ps.add(ih(3), { host: '10.0.1.1', port: 1 });
  ps.add(ih(4), { host: '10.0.1.1', port: 1 });
  assert.equal(ps.infoHashes, 3);
  assert.deepEqual(ps.get(ih(1)), [], 'the least recently announced info-hash was dropped');
  assert.equal(ps.peers, 3);
  ps.add(ih(5), { host: '::1', port: 1 }); // not IPv4: ignored
  assert.equal(ps.infoHashes, 3);
});

test('peer store: entries expire; get() never returns expired ones, expire() frees them', () => {
  let now = 0;
  const ps = new PeerStore({ ttlMs: 1000, now: () => now });
  const ih = Buffer.alloc(20, 9);
  ps.add(ih, { host: '10.0.0.1', port: 1 });
  now = 600;
  ps.add(ih, { host: '10.0.0.2', port: 2 });
  now = 1000;
  assert.equal(ps.get(ih).length, 1);
  ps.expire();
  assert.equal(ps.peers, 1);
  now = 1600;
  ps.expire();
  assert.equal(ps.peers, 0);
  assert.equal(ps.infoHashes, 0);
});

test('per-IP rate limiter: burst then steady rate, independent per IP, bounded table', () => {
  let now = 0;
  const rl = new IpRateLimiter(10, 20, 100, () => now);
  let ok = 0;
  for (let i = 0; i < 100; i++) if (rl.allow('1.1.1.1')) ok++;
  assert.equal(ok, 20);
  assert.ok(rl.allow('2.2.2.2'));
  now += 1000;
  ok = 0;
  for (let i = 0; i < 100; i++) if (rl.allow('1.1.1.1')) ok++;
  assert.equal(ok, 10);
  for (let i = 0; i < 1000; i++) rl.allow(`10.0.${i >> 8}.${i & 255}`);
  assert.ok(rl.size <= 100);
});
