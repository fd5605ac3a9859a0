import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { encodeCompactPeer4, encodeCompactPeer6 } from '../../src/discovery/compact.js';
import { UdpTrackerClient, announceUdp, type UdpTrackerOptions } from '../../src/discovery/udp-tracker.js';
import type { AnnounceParams } from '../../src/discovery/types.js';
import { isShoalError } from '../../src/util/errors.js';
import { startUdpMiniTracker, udpErrorPacket, type MiniUdpOptions, type MiniUdpTracker } from '../helpers/mini-tracker.js';

const INFO_HASH = Buffer.from('0123456789abcdef0123', 'latin1');
const PEER_ID = Buffer.from('-SH0001-abcdefghijkl', 'latin1');
const FAST = { baseTimeoutMs: 50, maxTries: 4 };
/**
 * Tests that check the exact packets sent must not see a retransmission a loaded machine causes (the 50 ms timeout
 * fired in CI before the loopback reply was read); tests of retransmission pass short timeouts of their own.
 */
const STEADY = { baseTimeoutMs: 2000, maxTries: 4 };

function params(extra: Partial<AnnounceParams> = {}): AnnounceParams {
  return { infoHash: INFO_HASH, peerId: PEER_ID, port: 51413, uploaded: 2 ** 40, downloaded: 7, left: 123456, ...extra };
}

async function withTracker(opts: MiniUdpOptions, fn: (t: MiniUdpTracker, c: UdpTrackerClient) => Promise<void>,
  clientOpts: UdpTrackerOptions = STEADY): Promise<void> {
  const t = await startUdpMiniTracker(opts);
  const c = new UdpTrackerClient(clientOpts);
  try { await fn(t, c); } finally { await c.close(); await t.close(); }
}

async function rejectsTracker(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isShoalError(e, 'ETRACKER'), `expected ETRACKER, got ${String(e)}`);
    assert.match((e as Error).message, re);
    return true;
  });
}

test('connect + announce over IPv4: request fields on the wire and parsed response', async () => {
  const peers = Buffer.concat([encodeCompactPeer4('10.0.0.1', 6881), encodeCompactPeer4('10.0.0.2', 6882)]);
  await withTracker({ peers, interval: 1234, seeders: 5, leechers: 6 }, async (t, c) => {
    const r = await c.announce(t.url, params({ event: 'started', numwant: 30, key: 0xcafebabe }));
    assert.deepEqual(t.packets.map((p) => p.action), [0, 1]);
    const m = t.packets[1]!.msg;
    assert.equal(m.length, 98);
    assert.deepEqual(m.subarray(16, 36), INFO_HASH);
    assert.deepEqual(m.subarray(36, 56), PEER_ID);
    assert.equal(m.readBigUInt64BE(56), 7n);
    assert.equal(m.readBigUInt64BE(64), 123456n);
    assert.equal(m.readBigUInt64BE(72), 2n ** 40n);
    assert.equal(m.readUInt32BE(80), 2); // started
    assert.equal(m.readUInt32BE(84), 0);
    assert.equal(m.readUInt32BE(88), 0xcafebabe);
    assert.equal(m.readInt32BE(92), 30);
    assert.equal(m.readUInt16BE(96), 51413);
    assert.deepEqual(r, { interval: 1234, complete: 5, incomplete: 6, peers: [{ host: '10.0.0.1', port: 6881 }, { host: '10.0.0.2', port: 6882 }] });
  });
});

test('connection id is reused within its lifetime and renewed after it', async () => {
  await withTracker({}, async (t, c) => {
    await c.announce(t.url, params({ event: 'completed' }));
    await c.announce(t.url, params({ event: 'stopped' }));
    assert.deepEqual(t.packets.map((p) => p.action), [0, 1, 1]);
    assert.equal(t.packets[1]!.msg.readUInt32BE(80), 1);
    assert.equal(t.packets[2]!.msg.readUInt32BE(80), 3);
    assert.equal(t.packets[2]!.msg.readInt32BE(92), -1); // numwant default
  });
  await withTracker({}, async (t, c) => {
    await c.announce(t.url, params());
    await c.announce(t.url, params());
    assert.deepEqual(t.packets.map((p) => p.action), [0, 1, 0, 1]);
  }, { ...STEADY, connectionTtlMs: 0 });
});

test('scrape several info-hashes', async () => {
  const h2 = Buffer.alloc(20, 0xee);
  await withTracker({ seeders: 10, leechers: 20 }, async (t, c) => {
    const r = await c.scrape(t.url, [INFO_HASH, h2]);
    const m = t.packets[1]!.msg;
    assert.equal(m.readUInt32BE(8), 2);
    assert.deepEqual(m.subarray(16, 36), INFO_HASH);
    assert.deepEqual(m.subarray(36, 56), h2);
    assert.deepEqual(r.get(INFO_HASH.toString('hex')), { complete: 10, downloaded: 100, incomplete: 20 });
    assert.deepEqual(r.get(h2.toString('hex')), { complete: 11, downloaded: 101, incomplete: 21 });
  });
});

test('IPv6 tracker: udp6 socket and 18-byte peers', async () => {
  const peers = Buffer.concat([encodeCompactPeer6('2001:db8::5', 7000), encodeCompactPeer6('::1', 7001)]);
  await withTracker({ family: 6, peers }, async (t, c) => {
    assert.match(t.url, /^udp:\/\/\[::1\]:/);
    const r = await c.announce(t.url, params());
    assert.equal(t.packets[0]!.from.address, '::1');
    assert.deepEqual(r.peers, [{ host: '2001:db8::5', port: 7000 }, { host: '::1', port: 7001 }]);
  });
});

test('error action is surfaced as ETRACKER with the tracker message', async () => {
  await withTracker({ hook: (p) => (p.action === 1 ? udpErrorPacket(p.txn, 'info_hash not in whitelist') : undefined) }, async (t, c) => {
    await rejectsTracker(c.announce(t.url, params()),
      new RegExp(`^tracker udp://127\\.0\\.0\\.1:${t.port}/announce: "info_hash not in whitelist"$`));
  });
});

test('a dropped announce is retransmitted', async () => {
  await withTracker({ peers: encodeCompactPeer4('1.1.1.1', 1), hook: (p, nth) => (p.action === 1 && nth === 1 ? 'drop' : undefined) },
    async (t, c) => {
      const r = await c.announce(t.url, params());
      assert.deepEqual(r.peers, [{ host: '1.1.1.1', port: 1 }]);
      assert.equal(t.packets.filter((p) => p.action === 1).length, 2);
    }, { baseTimeoutMs: 300, maxTries: 4 });
});

test('a dropped connect is retransmitted', async () => {
  await withTracker({ hook: (p, nth) => (p.action === 0 && nth < 3 ? 'drop' : undefined) }, async (t, c) => {
    await c.announce(t.url, params());
    assert.deepEqual(t.packets.map((p) => p.action), [0, 0, 0, 1]);
  }, { baseTimeoutMs: 150, maxTries: 5 });
});

test('gives up after maxTries with a clear error', async () => {
  await withTracker({ hook: () => 'drop' }, async (t, c) => {
    await rejectsTracker(c.announce(t.url, params()), /no response after 3 tries \(connect timed out\)/);
    assert.equal(t.packets.length, 3);
  }, { baseTimeoutMs: 20, maxTries: 3 });
});

test('responses with the wrong transaction id or from another address are ignored', async () => {
  const spoofer = dgram.createSocket('udp4');
  await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', r));
  try {
    await withTracker({
      hook: (p) => {
        if (p.action !== 1) return undefined;
        const resp = (txn: number, interval: number): Buffer => {
          const b = Buffer.alloc(20);
          b.writeUInt32BE(1, 0); b.writeUInt32BE(txn, 4); b.writeUInt32BE(interval, 8);
          return b;
        };
        // Right txn from the wrong source port arrives first...
        spoofer.send(resp(p.txn, 1), p.from.port, p.from.address);
        // ...then the real tracker sends a wrong-txn reply followed by the right one.
        return [resp((p.txn + 1) >>> 0, 2), resp(p.txn, 3)];
      },
    }, async (t, c) => {
      const r = await c.announce(t.url, params());
      assert.equal(r.interval, 3);
    });
  } finally {
    await new Promise<void>((r) => spoofer.close(() => r()));
  }
});

test('truncated responses are rejected', async () => {
  await withTracker({
    hook: (p) => {
      if (p.action !== 1) return undefined;
      const b = Buffer.alloc(12);
      b.writeUInt32BE(1, 0); b.writeUInt32BE(p.txn, 4);
      return b;
    },
  }, async (t, c) => {
    await rejectsTracker(c.announce(t.url, params()), /truncated response: 12 bytes, expected at least 20/);
  });
  await withTracker({
    hook: (p) => {
      if (p.action !== 0) return undefined;
      const b = Buffer.alloc(12);
      b.writeUInt32BE(0, 0); b.writeUInt32BE(p.txn, 4);
      return b;
    },
  }, async (t, c) => {
    await rejectsTracker(c.announce(t.url, params()), /truncated response: 12 bytes, expected at least 16/);
  });
  await withTracker({
    hook: (p) => {
      if (p.action !== 2) return undefined;
      const b = Buffer.alloc(8 + 12); // one entry for two hashes
      b.writeUInt32BE(2, 0); b.writeUInt32BE(p.txn, 4);
      return b;
    },
  }, async (t, c) => {
    await rejectsTracker(c.scrape(t.url, [INFO_HASH, INFO_HASH]), /truncated response: 20 bytes, expected at least 32/);
  });
});

test('a reply with the wrong action is rejected', async () => {
  await withTracker({
    hook: (p) => {
      if (p.action !== 1) return undefined;
      const b = Buffer.alloc(20);
      b.writeUInt32BE(2, 0); b.writeUInt32BE(p.txn, 4);
      return b;
    },
  }, async (t, c) => {
    await rejectsTracker(c.announce(t.url, params()), /action 2, expected 1/);
  });
});

test('close() rejects pending requests; bad URLs are ETRACKER', async () => {
  await withTracker({ hook: () => 'drop' }, async (t, c) => {
    const p = c.announce(t.url, params());
    setTimeout(() => void c.close(), 30);
    await rejectsTracker(p, /closed/);
  }, { baseTimeoutMs: 10_000, maxTries: 1 });
  await rejectsTracker(announceUdp('udp://127.0.0.1/announce', params(), FAST), /needs a host and a port/);
  await rejectsTracker(announceUdp('http://127.0.0.1:1/announce', params(), FAST), /not a udp/);
});

test('an abort signal cancels a pending request', async () => {
  await withTracker({ hook: () => 'drop' }, async (t, c) => {
    const ac = new AbortController();
    const p = c.announce(t.url, params(), { signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    await rejectsTracker(p, /aborted/);
  }, { baseTimeoutMs: 10_000, maxTries: 1 });
});
