import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { decode, encode } from '../../src/bencode/index.js';
import type { ExtensionConnection } from '../../src/connection/extension.js';
import { decodeCompactPeers4, decodeCompactPeers6, encodeCompactPeer4, encodeCompactPeer6, formatPeerAddress } from '../../src/discovery/compact.js';
import type { PeerAddress } from '../../src/discovery/compact.js';
import {
  PEX_FLAG_ENCRYPTION, PEX_FLAG_REACHABLE, PEX_FLAG_SEED, PEX_FLAG_UTP, PEX_MAX_PER_MESSAGE, UtPex,
} from '../../src/extensions/ut-pex.js';
import type { PexHost, PexPeer } from '../../src/extensions/ut-pex.js';
import { Network, Node, RawExtension } from '../helpers/extension-link.js';
import { Clock } from '../helpers/metadata-fixtures.js';

const MIN = 60_000;

class TestPexHost implements PexHost {
  readonly connected = new Map<string, { address: PeerAddress; flags: number }>();
  readonly learned: { peers: PexPeer[]; from: ExtensionConnection }[] = [];
  constructor(readonly listenPort?: number) {}
  connect(host: string, port: number, flags = 0): void {
    this.connected.set(formatPeerAddress({ host, port }), { address: { host, port }, flags });
  }
  disconnect(host: string, port: number): void {
    this.connected.delete(formatPeerAddress({ host, port }));
  }
  connectedPeers(): Iterable<{ address: PeerAddress; flags: number }> {
    return this.connected.values();
  }
  peersLearned(peers: PexPeer[], from: ExtensionConnection): void {
    this.learned.push({ peers, from });
  }
  all(): string[] {
    return this.learned.flatMap((l) => l.peers.map(formatPeerAddress));
  }
}

interface Msg { added: PeerAddress[]; addedF: number[]; added6: PeerAddress[]; added6F: number[]; dropped: PeerAddress[]; dropped6: PeerAddress[]; keys: string[] }
function parseMsg(b: Buffer): Msg {
  const d = decode(b) as Record<string, Buffer>;
  return {
    added: decodeCompactPeers4(d['added'] ?? Buffer.alloc(0)), addedF: [...(d['added.f'] ?? [])],
    added6: decodeCompactPeers6(d['added6'] ?? Buffer.alloc(0)), added6F: [...(d['added6.f'] ?? [])],
    dropped: decodeCompactPeers4(d['dropped'] ?? Buffer.alloc(0)), dropped6: decodeCompactPeers6(d['dropped6'] ?? Buffer.alloc(0)),
    keys: Object.keys(d),
  };
}

/** Our UtPex (A, at 127.0.0.1:6881) linked to a raw recorder (B). */
function linkToRaw(opts: { intervalMs?: number; bAt?: { host: string; port: number }; listenPort?: number; bHandshake?: Record<string, unknown>; mayLearn?: (host: string) => boolean } = {}) {
  const clock = new Clock();
  const net = new Network();
  const host = new TestPexHost(opts.listenPort);
  const pex = new UtPex(host, {
    now: clock.now, ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}), ...(opts.mayLearn !== undefined ? { mayLearn: opts.mayLearn } : {}),
  });
  const raw = new RawExtension('ut_pex');
  const [toRaw, fromA] = net.connect(new Node([pex]), { host: '127.0.0.1', port: 6881 }, new Node([raw]), opts.bAt ?? { host: '127.0.0.9', port: 7009 },
    opts.bHandshake !== undefined ? { bHandshake: opts.bHandshake } : {});
  net.run();
  const step = (ms: number): void => { clock.advance(ms); pex.tick(); net.run(); };
  const send = (msg: Record<string, unknown> | Buffer): void => {
    fromA.sendExtended('ut_pex', Buffer.isBuffer(msg) ? msg : encode(msg));
    net.run();
  };
  return { clock, net, host, pex, raw, toRaw, fromA, step, send };
}

test('round trip between two UtPex: v4 and v6 peers with their flags', () => {
  const clock = new Clock();
  const net = new Network();
  const hostA = new TestPexHost();
  const hostB = new TestPexHost();
  hostA.connect('127.0.0.20', 7020, PEX_FLAG_REACHABLE | PEX_FLAG_ENCRYPTION);
  hostA.connect('127.0.0.21', 7021, PEX_FLAG_SEED);
  hostA.connect('::1', 7022, PEX_FLAG_UTP);
  hostA.connect('fd00::1:2', 7023, 0);
  const a = new UtPex(hostA, { now: clock.now });
  const b = new UtPex(hostB, { now: clock.now, mayLearn: () => true }); // fd00::1:2 is outside the test sandbox
  const [ab] = net.connect(new Node([a]), { host: '127.0.0.1', port: 6881 }, new Node([b]), { host: '127.0.0.2', port: 6882 });
  net.run();
  a.tick();
  b.tick();
  net.run();
  assert.equal(hostB.learned.length, 1);
  assert.equal(hostB.learned[0]!.from.address, '127.0.0.1:6881');
  assert.deepEqual(hostB.learned[0]!.peers, [
    { host: '127.0.0.20', port: 7020, flags: 0x11 },
    { host: '127.0.0.21', port: 7021, flags: 0x02 },
    { host: '::1', port: 7022, flags: 0x04 },
    { host: 'fd00::1:2', port: 7023, flags: 0 },
  ]);
  assert.equal(hostA.learned.length, 0, 'B is connected to nobody: sends nothing');
  assert.equal(ab.closed, false);
});

test('the first message is the current set; later ones are diffs at most once per interval, none when nothing changed', () => {
  const { host, raw, step, fromA } = linkToRaw();
  host.connect('127.0.0.20', 7020);
  host.connect('127.0.0.21', 7021);
  host.connect('127.0.0.9', 7009); // the recipient itself: never sent to it
  step(0);
  assert.equal(raw.messages.length, 1);
  let m = parseMsg(raw.messages[0]!);
  assert.deepEqual(m.added, [{ host: '127.0.0.20', port: 7020 }, { host: '127.0.0.21', port: 7021 }]);
  assert.deepEqual(m.addedF, [0, 0]);
  assert.deepEqual(m.keys.sort(), ['added', 'added.f']);
  host.disconnect('127.0.0.20', 7020);
  host.connect('127.0.0.22', 7022);
  step(MIN - 1000);
  assert.equal(raw.messages.length, 1, 'not before the interval');
  step(1000);
  assert.equal(raw.messages.length, 2);
  m = parseMsg(raw.messages[1]!);
  assert.deepEqual(m.added, [{ host: '127.0.0.22', port: 7022 }]);
  assert.deepEqual(m.dropped, [{ host: '127.0.0.20', port: 7020 }]);
  // A peer that connects and leaves between two messages is never mentioned (transient connections are elided).
  host.connect('127.0.0.23', 7023);
  step(1000);
  host.disconnect('127.0.0.23', 7023);
  step(MIN);
  assert.equal(raw.messages.length, 2, 'no change, no message');
  assert.equal(fromA.closed, false);
});

test('at most 50 added and 50 dropped per message; the rest follows, never added and dropped at once', () => {
  const { host, raw, step } = linkToRaw();
  for (let i = 0; i < 120; i++) host.connect(`127.0.1.${i}`, 8000 + i);
  const seen = new Set<string>();
  for (let k = 0; k < 3; k++) step(MIN);
  assert.equal(raw.messages.length, 3);
  const sizes = raw.messages.map((b) => parseMsg(b).added.length);
  assert.deepEqual(sizes, [50, 50, 20]);
  for (const b of raw.messages) for (const a of parseMsg(b).added) seen.add(formatPeerAddress(a));
  assert.equal(seen.size, 120, 'every peer announced exactly once');
  for (let i = 0; i < 70; i++) host.disconnect(`127.0.1.${i}`, 8000 + i);
  for (let i = 0; i < 10; i++) host.connect(`127.0.2.${i}`, 9000 + i);
  step(MIN);
  step(MIN);
  const [m4, m5] = [parseMsg(raw.messages[3]!), parseMsg(raw.messages[4]!)];
  assert.equal(m4.dropped.length, PEX_MAX_PER_MESSAGE);
  assert.equal(m4.added.length, 10);
  assert.equal(m5.dropped.length, 20);
  assert.equal(m5.added.length, 0);
  for (const m of [m4, m5]) {
    const added = new Set(m.added.map(formatPeerAddress));
    for (const d of m.dropped) assert.ok(!added.has(formatPeerAddress(d)));
  }
});

test('an added peer that disconnects before its turn is never sent', () => {
  const { host, raw, step } = linkToRaw();
  for (let i = 0; i < 60; i++) host.connect(`127.0.1.${i}`, 8000 + i);
  step(MIN);
  const first = new Set(parseMsg(raw.messages[0]!).added.map(formatPeerAddress));
  const pending = [...host.connected.keys()].filter((k) => !first.has(k));
  assert.equal(pending.length, 10);
  for (const k of pending.slice(0, 5)) host.connected.delete(k);
  step(MIN);
  const second = parseMsg(raw.messages[1]!);
  assert.deepEqual(second.added.map(formatPeerAddress).sort(), pending.slice(5).sort());
  assert.equal(second.dropped.length, 0);
});

test('IPv6 peers go in added6/dropped6 with 18-byte entries; IPv4-mapped addresses are sent as IPv4', () => {
  const { host, raw, step } = linkToRaw();
  host.connect('fd00::7', 7000, PEX_FLAG_SEED);
  host.connect('::ffff:127.0.0.30', 7030, 0);
  host.connect('not-an-ip', 7031);
  host.connect('127.0.0.32', 0);
  step(MIN);
  const d = decode(raw.messages[0]!) as Record<string, Buffer>;
  assert.equal(d['added6']!.length, 18);
  assert.deepEqual([...d['added6.f']!], [PEX_FLAG_SEED]);
  assert.ok(d['added']!.equals(encodeCompactPeer4('127.0.0.30', 7030)));
  host.disconnect('fd00::7', 7000);
  step(MIN);
  const d2 = decode(raw.messages[1]!) as Record<string, Buffer>;
  assert.ok(d2['dropped6']!.equals(encodeCompactPeer6('fd00::7', 7000)));
  assert.deepEqual(Object.keys(d2), ['dropped6']);
});

test('incoming: entries past the per-message bound (100) are ignored', () => {
  const { host, send, fromA } = linkToRaw({ intervalMs: MIN });
  const many = Buffer.concat(Array.from({ length: 300 }, (_, i) => encodeCompactPeer4(`127.0.${i >> 8}.${i & 255}`, 6000 + i)));
  send({ added: many });
  assert.equal(host.all().length, 100);
  assert.equal(host.learned.length, 1);
  assert.equal(fromA.closed, false);
});

test('incoming: dedupe per connection, dropped entries may be learned again, known set bounded', () => {
  const t = linkToRaw();
  const e = (i: number) => encodeCompactPeer4(`127.0.3.${i}`, 6000 + i);
  t.send({ added: Buffer.concat([e(1), e(2)]) });
  t.clock.advance(MIN);
  t.send({ added: Buffer.concat([e(1), e(2), e(3)]) });
  assert.deepEqual(t.host.all(), ['127.0.3.1:6001', '127.0.3.2:6002', '127.0.3.3:6003']);
  t.clock.advance(MIN);
  t.send({ dropped: e(1) });
  t.clock.advance(MIN);
  t.send({ added: e(1) });
  assert.deepEqual(t.host.all().slice(3), ['127.0.3.1:6001']);
  // The known set stops at 200 per connection.
  for (let k = 0; k < 4; k++) {
    t.clock.advance(MIN);
    t.send({ added: Buffer.concat(Array.from({ length: 100 }, (_, i) => encodeCompactPeer4(`127.1.${k}.${i}`, 5000))) });
  }
  assert.equal(t.host.all().slice(4).length, 200 - 3, '3 addresses were known (and 1 reported twice) before');
  assert.equal(t.fromA.closed, false);
});

test('incoming: never learns the sender itself, our own address, a repeated IP, or unusable addresses', () => {
  const yourip = Buffer.from([198, 18, 0, 1]);
  const t = linkToRaw({ bAt: { host: '198.18.0.9', port: 7009 }, listenPort: 6881, bHandshake: { yourip }, mayLearn: () => true });
  t.send({
    added: Buffer.concat([
      encodeCompactPeer4('198.18.0.9', 7009),   // the sender's own listen address
      encodeCompactPeer4('198.18.0.1', 6881),   // us, as the sender sees us
      encodeCompactPeer4('198.18.0.50', 1000),
      encodeCompactPeer4('198.18.0.50', 1001),  // same IP, other port: ignored (BEP 11 security)
      encodeCompactPeer4('127.0.0.5', 1000),    // loopback from a non-local sender
      encodeCompactPeer4('10.1.2.3', 1000),     // private range from a non-local sender
      encodeCompactPeer4('0.0.0.0', 1000),
      encodeCompactPeer4('239.1.1.1', 1000),
      encodeCompactPeer4('198.18.0.51', 0),     // port 0
      encodeCompactPeer4('198.18.0.52', 1000),
    ]),
    'added.f': Buffer.from([0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x02]),
    added6: Buffer.concat([encodeCompactPeer6('::1', 1000), encodeCompactPeer6('ff02::1', 1000), encodeCompactPeer6('2001:db8::1', 1000)]),
  });
  assert.deepEqual(t.host.learned[0]!.peers, [
    { host: '198.18.0.50', port: 1000, flags: 0x10 },
    { host: '198.18.0.52', port: 1000, flags: 0x02 },
    { host: '2001:db8::1', port: 1000, flags: 0 },
  ]);
});

test('incoming: by default only addresses the sandbox policy allows are learned', () => {
  const prev = process.env['SHOAL_SANDBOX'];
  process.env['SHOAL_SANDBOX'] = '1';
  try {
    const t = linkToRaw({ bAt: { host: '198.18.0.9', port: 7009 } });
    t.send({
      added: Buffer.concat([encodeCompactPeer4('198.18.0.60', 1), encodeCompactPeer4('203.0.113.7', 1)]),
      added6: encodeCompactPeer6('2001:db8::9', 1),
    });
    assert.deepEqual(t.host.all(), ['198.18.0.60:1']);
  } finally {
    if (prev === undefined) delete process.env['SHOAL_SANDBOX'];
    else process.env['SHOAL_SANDBOX'] = prev;
  }
});

test('incoming: isOwnAddress from the host is honoured', () => {
  const clock = new Clock();
  const net = new Network();
  const host = new TestPexHost();
  const own = { host: '127.0.0.77', port: 6881 };
  const pex = new UtPex(Object.assign(host, { isOwnAddress: (a: PeerAddress) => a.host === own.host && a.port === own.port }), { now: clock.now });
  const raw = new RawExtension('ut_pex');
  const [, fromA] = net.connect(new Node([pex]), { host: '127.0.0.1', port: 6881 }, new Node([raw]), { host: '127.0.0.9', port: 7009 });
  net.run();
  fromA.sendExtended('ut_pex', encode({ added: Buffer.concat([encodeCompactPeer4(own.host, own.port), encodeCompactPeer4('127.0.0.78', 1)]) }));
  net.run();
  assert.deepEqual(host.all(), ['127.0.0.78:1']);
});

test('rate limit: a burst of 3 is tolerated, faster than one per half interval after that closes', () => {
  const t = linkToRaw();
  const msg = { added: encodeCompactPeer4('127.0.0.40', 1) };
  for (let i = 0; i < 3; i++) t.send(msg);
  assert.equal(t.toRaw.closed, false);
  t.clock.advance(MIN / 2 - 1000);
  t.send(msg);
  assert.match(t.toRaw.closedReason ?? '', /ut_pex: messages faster than one per 30 s/);
  // A peer keeping to the BEP's once a minute (or even every 30 s) is never closed.
  const u = linkToRaw();
  for (let i = 0; i < 20; i++) {
    u.send(msg);
    u.clock.advance(MIN / 2);
  }
  assert.equal(u.fromA.closed, false);
  // Our own long interval does not make us stricter than the BEP's minute.
  const v = linkToRaw({ intervalMs: 10 * MIN });
  for (let i = 0; i < 10; i++) {
    v.send(msg);
    v.clock.advance(MIN);
  }
  assert.equal(v.fromA.closed, false);
});

test('malformed messages close the connection; odd field types and partial entries are tolerated', () => {
  for (const bad of [Buffer.from('x'), Buffer.alloc(0), encode([1]), Buffer.from('d5:added'), Buffer.concat([encode({}), Buffer.from('junk')]), Buffer.alloc(600 * 1024, 0x30)]) {
    const t = linkToRaw();
    t.send(bad);
    assert.match(t.toRaw.closedReason ?? '', /ut_pex: (malformed|message of)/);
  }
  const t = linkToRaw();
  t.send({ added: 5, added6: [1], dropped: { a: 1 }, 'added.f': 'zz' });
  t.clock.advance(MIN);
  t.send({ added: Buffer.concat([encodeCompactPeer4('127.0.0.41', 41), Buffer.from([1, 2, 3])]) }); // no added.f, trailing partial
  assert.equal(t.fromA.closed, false);
  assert.deepEqual(t.host.learned.flatMap((l) => l.peers), [{ host: '127.0.0.41', port: 41, flags: 0 }]);
});

test('fuzz (seeded): hostile PEX messages only ever close the connection, and whatever is learned is a valid address', () => {
  const base = encode({
    added: Buffer.concat([encodeCompactPeer4('127.0.0.50', 50), encodeCompactPeer4('127.0.0.51', 51)]), 'added.f': Buffer.from([1, 2]),
    added6: encodeCompactPeer6('::1', 52), 'added6.f': Buffer.from([4]), dropped: encodeCompactPeer4('127.0.0.53', 53),
  });
  let t = linkToRaw();
  let closes = 0;
  const check = (payload: Buffer): void => {
    if (t.toRaw.closed) { t = linkToRaw(); closes++; } // a closed connection ignores everything: start afresh
    const before = t.host.learned.length;
    try {
      t.pex.onMessage(t.toRaw, payload);
    } catch (e) {
      assert.fail(`onMessage threw: ${String(e)}`);
    }
    for (const l of t.host.learned.slice(before)) for (const p of l.peers) {
      assert.ok(isIP(p.host) !== 0 && p.port > 0 && p.port < 65536 && p.flags >= 0 && p.flags < 256, JSON.stringify(p));
    }
    t.clock.advance(MIN);
  };
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.nat(base.length),
    (edits, cut) => {
      const buf = Buffer.from(base.subarray(0, cut === 0 ? base.length : cut));
      for (const [i, v] of edits) if (i < buf.length) buf[i] = v;
      check(buf);
    }), { numRuns: 2000, seed: 0x5eed });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (u) => check(Buffer.from(u))), { numRuns: 1000, seed: 11 });
  assert.ok(closes > 100, `the fuzz reached the closing paths (${closes} closes)`);
});

test('messages arriving on a connection after it closed are ignored', () => {
  const t = linkToRaw();
  t.send(Buffer.from('garbage'));
  assert.equal(t.toRaw.closed, true);
  t.pex.onMessage(t.toRaw, encode({ added: encodeCompactPeer4('127.0.0.90', 1) }));
  assert.equal(t.host.learned.length, 0);
});
