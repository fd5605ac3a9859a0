import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { Announcer, scrape, type AnnouncerStats } from '../../src/discovery/index.js';
import type { PeerAddress } from '../../src/discovery/compact.js';
import { requireOpentracker, startOpentracker } from '../helpers/opentracker.js';

const HASH_HTTP = Buffer.from('a1'.repeat(20), 'hex');
const HASH_UDP = Buffer.from('b2'.repeat(20), 'hex');
const HASH_UNLISTED = Buffer.from('c3'.repeat(20), 'hex');

function peersContaining(em: EventEmitter, port: number, ms = 5000): Promise<PeerAddress[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { em.off('peers', on); reject(new Error(`no peer with port ${port} within ${ms} ms`)); }, ms);
    const on = (peers: PeerAddress[]): void => {
      if (!peers.some((p) => p.port === port && p.host === '127.0.0.1')) return;
      clearTimeout(timer);
      em.off('peers', on);
      resolve(peers);
    };
    em.on('peers', on);
  });
}

function announcer(url: string, infoHash: Buffer, port: number, stats: AnnouncerStats): Announcer {
  const a = new Announcer({
    infoHash, peerId: Buffer.from(`-SH0001-${port}-peer-`.padEnd(20, 'x').slice(0, 20), 'latin1'), port,
    tiers: [[url]], getStats: () => stats, timeoutMs: 3000,
    udp: { baseTimeoutMs: 500, maxTries: 3 },
    // opentracker asks for a ~15 min min interval; the test re-announces at once.
    minIntervalOverride: 0.05,
  });
  a.on('error', () => undefined);
  return a;
}

async function swarmOf(url: string, infoHash: Buffer): Promise<void> {
  const leecher = announcer(url, infoHash, 40001, { uploaded: 0, downloaded: 0, left: 1000 });
  const seeder = announcer(url, infoHash, 40002, { uploaded: 0, downloaded: 1000, left: 0 });
  try {
    const firstResponse = new Promise((r) => leecher.once('response', r));
    leecher.start();
    await firstResponse;
    // The seeder's first announce already lists the leecher...
    const seen = peersContaining(seeder, 40001);
    seeder.start();
    await seen;
    // ...and the leecher's next one lists the seeder.
    const seenBack = peersContaining(leecher, 40002);
    leecher.announceNow();
    await seenBack;

    const counts = (await scrape(url, [infoHash], { timeoutMs: 3000 })).get(infoHash.toString('hex'));
    assert.deepEqual({ complete: counts?.complete, incomplete: counts?.incomplete }, { complete: 1, incomplete: 1 });
  } finally {
    await leecher.stop();
    await seeder.stop();
  }
  // Both sent `stopped`: the tracker has forgotten them.
  const after = (await scrape(url, [infoHash], { timeoutMs: 3000 })).get(infoHash.toString('hex'));
  assert.equal((after?.complete ?? 0) + (after?.incomplete ?? 0), 0);
}

test('opentracker: announcers see each other over HTTP and UDP, scrape counts them', async (t) => {
  if (!requireOpentracker(t)) return;
  const ot = await startOpentracker({ infoHashes: [HASH_HTTP.toString('hex'), HASH_UDP.toString('hex')] });
  try {
    await t.test('HTTP', () => swarmOf(ot.httpUrl, HASH_HTTP));
    await t.test('UDP', () => swarmOf(ot.udpUrl, HASH_UDP));
    await t.test('non-whitelisted info-hash is refused with the tracker\'s reason', async () => {
      const a = announcer(ot.httpUrl, HASH_UNLISTED, 40003, { uploaded: 0, downloaded: 0, left: 1 });
      const err = new Promise<Error>((resolve) => a.on('error', resolve));
      a.start();
      const e = await err;
      await a.stop();
      assert.match(e.message, new RegExp(`^tracker http://127\\.0\\.0\\.1:${ot.httpPort}/announce: "Requested download is not authorized`));
    });
  } finally {
    await ot.stop();
  }
});
