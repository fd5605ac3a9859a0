import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { encode } from '../../src/bencode/index.js';
import { encodeCompactPeer4 } from '../../src/discovery/compact.js';
import { Announcer, type AnnouncerOptions, type AnnounceResponseInfo } from '../../src/discovery/announcer.js';
import type { PeerAddress } from '../../src/discovery/compact.js';
import { isShoalError, type ShoalError } from '../../src/util/errors.js';
import { startHttpServer, startUdpMiniTracker, type HttpHit, type MiniHttpServer } from '../helpers/mini-tracker.js';

const INFO_HASH = Buffer.alloc(20, 0x11);
const PEER_ID = Buffer.from('-SH0001-announcer-t1', 'latin1');

/** Resolve with the args of the first `event` matching `pred`; bounded so a broken announcer fails instead of hanging. */
function waitFor<T extends unknown[]>(em: EventEmitter, event: string, pred: (...args: T) => boolean = () => true, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { em.off(event, on); reject(new Error(`timed out waiting for '${event}'`)); }, ms);
    const on = (...args: unknown[]): void => {
      if (!pred(...(args as T))) return;
      clearTimeout(timer);
      em.off(event, on);
      resolve(args as T);
    };
    em.on(event, on);
  });
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function okTracker(peers: PeerAddress[] = [], extra: Record<string, unknown> = {}): (hit: HttpHit, req: unknown, res: import('node:http').ServerResponse) => void {
  return (_hit, _req, res) => {
    res.end(encode({ interval: 1800, peers: Buffer.concat(peers.map((p) => encodeCompactPeer4(p.host, p.port))), ...extra }));
  };
}

function failTracker(reason = 'go away'): (hit: HttpHit, req: unknown, res: import('node:http').ServerResponse) => void {
  return (_hit, _req, res) => res.end(encode({ 'failure reason': reason }));
}

function makeAnnouncer(tiers: string[][], extra: Partial<AnnouncerOptions> = {}, stats = { uploaded: 0, downloaded: 0, left: 1000 }): Announcer {
  return new Announcer({ infoHash: INFO_HASH, peerId: PEER_ID, port: 6881, tiers, getStats: () => stats, timeoutMs: 2000, ...extra });
}

async function closeAll(...servers: MiniHttpServer[]): Promise<void> {
  await Promise.all(servers.map((s) => s.close()));
}

test('falls back to the next tier and reports errors per tracker', async () => {
  const bad = await startHttpServer(failTracker('not today'));
  const good = await startHttpServer(okTracker([{ host: '10.0.0.9', port: 9999 }]));
  const a = makeAnnouncer([[bad.url()], [good.url()]]);
  try {
    const errors: [ShoalError, string][] = [];
    a.on('error', (e: ShoalError, url: string) => errors.push([e, url]));
    const got = waitFor<[PeerAddress[], string]>(a, 'peers');
    a.start();
    const [peers, url] = await got;
    assert.equal(url, good.url());
    assert.deepEqual(peers, [{ host: '10.0.0.9', port: 9999 }]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]![1], bad.url());
    assert.ok(isShoalError(errors[0]![0], 'ETRACKER'));
    assert.match(errors[0]![0].message, /"not today"/);
    assert.equal(bad.hits[0]!.param('event'), 'started');
    assert.equal(good.hits[0]!.param('event'), 'started');
  } finally {
    await a.stop();
    await closeAll(bad, good);
  }
});

test('a tracker that answers is promoted to the front of its tier and tried first next time', async () => {
  const bad = await startHttpServer(failTracker());
  const good = await startHttpServer(okTracker());
  const a = makeAnnouncer([[bad.url(), good.url()]], { minIntervalOverride: 0.02 });
  a.on('error', () => undefined);
  try {
    const first = waitFor<[AnnounceResponseInfo]>(a, 'response');
    a.start();
    await first;
    assert.deepEqual(a.tiers, [[good.url(), bad.url()]]);
    const badHits = bad.hits.length; // 0 or 1 depending on the shuffle
    const second = waitFor<[AnnounceResponseInfo]>(a, 'response');
    a.announceNow();
    assert.equal((await second)[0].url, good.url());
    assert.equal(bad.hits.length, badHits);
    assert.equal(good.hits.length, 2);
    // The second announce to the same tracker carries no event.
    assert.equal(good.hits[1]!.param('event'), undefined);
  } finally {
    await a.stop();
    await closeAll(bad, good);
  }
});

test('mixed HTTP and UDP tiers: unreachable HTTP tracker falls back to UDP', async () => {
  const gone = await startHttpServer(okTracker());
  const goneUrl = gone.url();
  await gone.close(); // connection refused from now on
  const udp = await startUdpMiniTracker({ peers: encodeCompactPeer4('10.9.9.9', 4242) });
  const a = makeAnnouncer([[goneUrl], [udp.url]], { udp: { baseTimeoutMs: 100, maxTries: 2 } });
  try {
    const got = waitFor<[PeerAddress[], string]>(a, 'peers');
    a.start(); // no 'error' listener: failures must not throw
    const [peers, url] = await got;
    assert.equal(url, udp.url);
    assert.deepEqual(peers, [{ host: '10.9.9.9', port: 4242 }]);
    assert.equal(udp.packets.find((p) => p.action === 1)!.msg.readUInt32BE(80), 2); // started
  } finally {
    await a.stop();
    await udp.close();
  }
  // stopped went over UDP too
  assert.equal(udp.packets.filter((p) => p.action === 1).at(-1)!.msg.readUInt32BE(80), 3);
});

test('event sequence started -> completed -> stopped, with stats and tracker id', async () => {
  const t = await startHttpServer(okTracker([], { 'tracker id': 'tid-1' }));
  const stats = { uploaded: 5, downloaded: 100, left: 900 };
  const a = makeAnnouncer([[t.url()]], {}, stats);
  try {
    const r1 = waitFor(a, 'response');
    a.start();
    await r1;
    stats.downloaded = 1000; stats.left = 0;
    const r2 = waitFor(a, 'response');
    a.complete();
    await r2;
    stats.uploaded = 77;
    await a.stop();
    assert.deepEqual(t.hits.map((h) => h.param('event')), ['started', 'completed', 'stopped']);
    assert.deepEqual(t.hits.map((h) => h.param('left')), ['900', '0', '0']);
    assert.deepEqual(t.hits.map((h) => h.param('trackerid')), [undefined, 'tid-1', 'tid-1']);
    assert.equal(t.hits[2]!.param('uploaded'), '77');
    assert.equal(t.hits[2]!.param('numwant'), '0');
    // Same key on every announce so the tracker can tell it is us.
    assert.equal(new Set(t.hits.map((h) => h.param('key'))).size, 1);
  } finally {
    await a.stop();
    await t.close();
  }
});

test('complete() during an in-flight started announce is sent right after it', async () => {
  let release: (() => void) | undefined;
  const t = await startHttpServer((hit, _req, res) => {
    const reply = (): void => { res.end(encode({ interval: 1800, peers: Buffer.alloc(0) })); };
    if (hit.param('event') === 'started') release = reply; else reply();
  });
  const a = makeAnnouncer([[t.url()]]);
  try {
    a.start();
    await until(() => release !== undefined, 'the started request');
    a.complete();
    const r = waitFor(a, 'response', () => t.hits.length >= 2);
    release!();
    await r;
    assert.deepEqual(t.hits.map((h) => h.param('event')), ['started', 'completed']);
  } finally {
    await a.stop();
    await t.close();
  }
});

test('tracker warnings and unsupported URL schemes become warning events', async () => {
  const t = await startHttpServer(okTracker([], { 'warning message': 'please upgrade' }));
  const a = makeAnnouncer([['wss://tracker.example/announce', 'wss://tracker.example/announce', t.url()], ['magnet:?x']]);
  const warnings: [string, string][] = [];
  a.on('warning', (msg: string, url: string) => warnings.push([msg, url]));
  try {
    const r = waitFor(a, 'response');
    a.start();
    a.start(); // idempotent
    await r;
    assert.deepEqual(a.tiers, [[t.url()]]);
    assert.deepEqual(warnings.map((w) => w[1]), ['wss://tracker.example/announce', 'magnet:?x', t.url()]);
    assert.match(warnings[0]![0], /^tracker wss:\/\/tracker\.example\/announce: unsupported URL scheme, skipped$/);
    assert.equal(warnings[2]![0], `tracker ${t.url()}: please upgrade`);
  } finally {
    await a.stop();
    await t.close();
  }
});

test('re-announces on the interval and backs off on errors; nothing runs after stop()', async () => {
  let failing = false;
  const t = await startHttpServer((_hit, _req, res) => {
    res.end(encode(failing ? { 'failure reason': 'busy' } : { interval: 0, peers: Buffer.alloc(0) }));
  });
  const a = makeAnnouncer([[t.url()]], { minIntervalOverride: 0.02 });
  const errors: string[] = [];
  a.on('error', (e: Error) => errors.push(e.message));
  try {
    a.start();
    await until(() => t.hits.length >= 3, 'three interval re-announces');
    failing = true;
    await until(() => errors.length >= 3, 'retries after errors');
    failing = false;
    await waitFor(a, 'response');
  } finally {
    await a.stop();
  }
  const n = t.hits.length;
  assert.equal(t.hits.at(-1)!.param('event'), 'stopped');
  await sleep(150); // several override intervals: a leftover timer would announce again
  assert.equal(t.hits.length, n);
  await t.close();
});

test('announceNow() respects the minimum interval', async () => {
  const t = await startHttpServer(okTracker([], { interval: 1800, 'min interval': 600 }));
  const a = makeAnnouncer([[t.url()]]);
  try {
    const r = waitFor<[AnnounceResponseInfo]>(a, 'response');
    a.start();
    assert.equal((await r)[0].minInterval, 600);
    a.announceNow();
    await sleep(100);
    assert.equal(t.hits.length, 1);
  } finally {
    await a.stop();
    await t.close();
  }
});

test('stop() is bounded when the tracker does not answer the stopped announce', async () => {
  const t = await startHttpServer((hit, _req, res) => {
    if (hit.param('event') !== 'stopped') res.end(encode({ interval: 1800, peers: Buffer.alloc(0) }));
  });
  const a = makeAnnouncer([[t.url()]], { timeoutMs: 300 });
  try {
    const r = waitFor(a, 'response');
    a.start();
    await r;
    await a.stop();
    await a.stop(); // idempotent
    assert.equal(t.hits.at(-1)!.param('event'), 'stopped');
  } finally {
    await t.close();
  }
});

test('stop() before any success sends nothing and aborts the pending announce', async () => {
  const t = await startHttpServer(() => { /* never answers */ });
  const a = makeAnnouncer([[t.url()]], { timeoutMs: 60_000 });
  a.start();
  await until(() => t.hits.length === 1, 'the started request');
  await a.stop();
  assert.equal(t.hits.length, 1);
  await t.close();
});
