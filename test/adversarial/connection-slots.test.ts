/**
 * Connection-slot exhaustion: silent connections that never handshake, connections that handshake and then send only
 * keep-alives, and many connections from one address. Distinct 127.0.0.x source addresses stand for distinct hosts.
 * An honest download must still get a slot and complete.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, MiB, compareContent, startSeed, until, waitDone, withScope } from '../helpers/engine/harness.js';
import { RawPeer, RawServer, randomPeerId } from '../helpers/engine/raw-peer.js';
import { connectPeer } from '../../src/wire/handshake.js';

const TIMEOUT = 60_000;
const host = (i: number): string => `127.0.0.${2 + i}`;

/**
 * `count` attackers, attacker i from its own address, each keeping one connection open and reopening it shortly
 * after it closes. `open` makes one connection and resolves with something to close; it may reject.
 */
class Attack {
  opened = 0;
  closed = 0;
  private stopped = false;
  private readonly live = new Set<{ destroy(): void }>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(count: number, private readonly open: (from: string, onClose: () => void) => Promise<{ destroy(): void }>, private readonly reopenMs = 200) {
    for (let i = 0; i < count; i++) this.start(host(i));
  }

  get alive(): number { return this.live.size; }

  private start(from: string): void {
    if (this.stopped) return;
    let conn: { destroy(): void } | null = null;
    let ended = false;
    const again = (): void => {
      if (ended) return;
      ended = true;
      this.closed++;
      if (conn) this.live.delete(conn);
      if (this.stopped) return;
      const t = setTimeout(() => { this.timers.delete(t); this.start(from); }, this.reopenMs);
      this.timers.add(t);
    };
    this.opened++;
    this.open(from, again).then((c) => {
      conn = c;
      if (this.stopped || ended) c.destroy(); else this.live.add(c);
    }, again);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.live) c.destroy();
    this.live.clear();
  }
}

/** A TCP connection from `from` that sends nothing. */
function silent(port: number) {
  return (from: string, onClose: () => void): Promise<{ destroy(): void }> => new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: from });
    sock.on('error', () => undefined);
    sock.once('close', onClose);
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  });
}

/** A peer from `from` that handshakes for `infoHash`, then sends only a keep-alive every 500 ms. */
function keepAliveOnly(port: number, infoHash: Buffer) {
  return async (from: string, onClose: () => void): Promise<{ destroy(): void }> => {
    const { socket, handshake, rest } = await connectPeer({ host: '127.0.0.1', port }, { infoHash, peerId: randomPeerId(), timeoutMs: 5000, localAddress: from });
    const p = new RawPeer(socket, handshake, rest, false);
    const timer = setInterval(() => p.sendRaw(Buffer.alloc(4)), 500);
    socket.once('close', () => { clearInterval(timer); onClose(); });
    return { destroy: () => { clearInterval(timer); p.destroy(); } };
  };
}

test('200 silent connections, reopened as they close, do not keep an honest downloader out', { timeout: TIMEOUT }, async (t) => {
  await withScope('slots-silent', async (s) => {
    const data = randomBytes(2 * MiB);
    const { meta } = makeMetainfo([{ path: ['s.bin'], data }], 64 * KiB, 's.bin');
    const seed = await startSeed(s, meta, data);
    const attack = new Attack(200, silent(seed.client.port));
    s.defer(() => attack.stop());
    await until('the attackers to connect', 10_000, () => attack.opened >= 200);
    await new Promise((r) => setTimeout(r, 500));

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const started = Date.now();
    const tor = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    await waitDone(tor, 20_000, 'honest downloader under a silent-connection flood');
    t.diagnostic(`done in ${Date.now() - started} ms; attackers opened ${attack.opened} connections, ${attack.closed} closed`);
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});

test('60 peers that send only keep-alives do not hold a torrent\'s slots against an honest downloader', { timeout: TIMEOUT }, async (t) => {
  await withScope('slots-keepalive', async (s) => {
    const data = randomBytes(2 * MiB);
    const { meta } = makeMetainfo([{ path: ['k.bin'], data }], 64 * KiB, 'k.bin');
    const seed = await startSeed(s, meta, data);
    let dropped = 0;
    seed.torrent.on('disconnect', (_a: string, err?: Error) => { if (err && /newcomer|nothing wanted/.test(err.message)) dropped++; });
    const attack = new Attack(60, keepAliveOnly(seed.client.port, meta.infoHash));
    s.defer(() => attack.stop());
    await until('60 keep-alive peers to fill the torrent', 10_000, () => seed.torrent.peerCount >= 60);

    const dl = await s.client();
    const dir = join(s.dir, 'dl');
    const started = Date.now();
    const tor = await dl.add(meta, { path: dir, peers: [{ host: '127.0.0.1', port: seed.client.port }] });
    await waitDone(tor, 25_000, 'honest downloader next to 60 keep-alive-only peers');
    t.diagnostic(`done in ${Date.now() - started} ms; ${dropped} idle peers dropped for newcomers; attackers opened ${attack.opened}`);
    assert.ok(dropped >= 1);
    assert.deepEqual(await compareContent(meta, data, dir), []);
    assert.ok(seed.torrent.peerCount <= 60);
  });
});

test('connections from one address are limited (maxConnectionsPerHost), handshaking or not', { timeout: TIMEOUT }, async () => {
  await withScope('slots-perhost', async (s) => {
    const data = randomBytes(256 * KiB);
    const { meta } = makeMetainfo([{ path: ['p.bin'], data }], 16 * KiB, 'p.bin');
    const seed = await startSeed(s, meta, data, 'seed', { maxConnectionsPerHost: 3 });
    const port = seed.client.port;
    const peers: RawPeer[] = [];
    s.defer(() => { for (const p of peers) p.destroy(); });
    for (let i = 0; i < 10; i++) {
      try {
        const { socket, handshake, rest } = await connectPeer({ host: '127.0.0.1', port }, { infoHash: meta.infoHash, peerId: randomPeerId(), timeoutMs: 3000, localAddress: '127.0.0.77' });
        peers.push(new RawPeer(socket, handshake, rest, false));
      } catch { /* refused: expected past the limit */ }
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(peers.filter((p) => !p.closed).length, 3, 'handshaked connections from one address');
    assert.equal(seed.torrent.peerCount, 3);

    // Silent ones count too: at most 3 − 3 = 0 more from that address, while another address still gets in.
    const socks: net.Socket[] = [];
    let closedByServer = 0;
    s.defer(() => { for (const x of socks) x.destroy(); });
    for (let i = 0; i < 5; i++) {
      const sock = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.77' });
      sock.on('error', () => undefined);
      sock.once('close', () => { closedByServer++; });
      sock.resume();
      socks.push(sock);
    }
    await until('the extra connections from 127.0.0.77 to be closed', 3000, () => closedByServer === 5);
    const other = await connectPeer({ host: '127.0.0.1', port }, { infoHash: meta.infoHash, peerId: randomPeerId(), timeoutMs: 3000, localAddress: '127.0.0.78' });
    const op = new RawPeer(other.socket, other.handshake, other.rest, false);
    peers.push(op);
    await until('the peer from another address to be counted', 3000, () => seed.torrent.peerCount === 4);
  });
});

test('a downloader whose slots are held by useless peers turns one over to reach a waiting address', { timeout: TIMEOUT }, async (t) => {
  await withScope('slots-turnover', async (s) => {
    const data = randomBytes(MiB);
    const { meta } = makeMetainfo([{ path: ['o.bin'], data }], 64 * KiB, 'o.bin');
    const seed = await startSeed(s, meta, data);
    // Two peers that handshake and then have nothing and want nothing.
    const useless = [0, 1].map(() => new RawServer(meta.infoHash, () => undefined));
    const ports: number[] = [];
    for (const u of useless) {
      s.defer(() => u.close());
      ports.push(await u.listen());
    }
    const dl = await s.client({ maxPeersPerTorrent: 2 });
    const dir = join(s.dir, 'dl');
    const started = Date.now();
    // Dialed in this order: the two useless peers take both slots before the seed's turn.
    const tor = await dl.add(meta, { path: dir, peers: [...ports.map((port) => ({ host: '127.0.0.1', port })), { host: '127.0.0.1', port: seed.client.port }] });
    await waitDone(tor, 20_000, 'downloader with both slots held by useless peers');
    t.diagnostic(`done in ${Date.now() - started} ms`);
    assert.ok(useless.every((u) => u.connections >= 1), 'the useless peers were not dialed first');
    assert.deepEqual(await compareContent(meta, data, dir), []);
  });
});
