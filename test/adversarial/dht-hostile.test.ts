// A live Shoal DHT node against hand-made KRPC datagrams: bad queries, forged tokens, floods, lying responders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram, { type Socket, type RemoteInfo } from 'node:dgram';
import { encode, decode, type BDict } from '../../src/bencode/index.js';
import { Dht } from '../../src/dht/index.js';
import { encodeCompactNodes } from '../../src/dht/krpc.js';

const HOST = '127.0.0.1';
const ID = Buffer.alloc(20, 0x42);
const IH = Buffer.alloc(20, 0x17);

/** A raw UDP endpoint speaking KRPC by hand. */
class Raw {
  readonly sock: Socket;
  readonly inbox: Array<{ msg: BDict; from: RemoteInfo }> = [];
  private waiters: Array<() => void> = [];
  constructor(host = HOST) {
    this.sock = dgram.createSocket('udp4');
    this.sock.on('message', (m, from) => {
      try { this.inbox.push({ msg: decode(m) as BDict, from }); } catch { /* ignore */ }
      for (const w of this.waiters.splice(0)) w();
    });
    this.host = host;
  }
  host: string;
  async bind(): Promise<number> {
    await new Promise<void>((r) => this.sock.bind(0, this.host, r));
    return this.sock.address().port;
  }
  get port(): number { return this.sock.address().port; }
  send(port: number, v: unknown): void { this.sock.send(Buffer.isBuffer(v) ? v : encode(v), port, HOST); }
  /** Next message with transaction id `t`, or undefined after `ms`. */
  async reply(t: string, ms = 1000): Promise<BDict | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex((x) => Buffer.isBuffer(x.msg['t']) && (x.msg['t'] as Buffer).toString() === t);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!.msg;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => { const h = setTimeout(r, left); this.waiters.push(() => { clearTimeout(h); r(); }); });
    }
  }
  close(): Promise<void> { return new Promise((r) => this.sock.close(() => r())); }
}

async function withDht(fn: (dht: Dht, raw: Raw) => Promise<void>, opts: Partial<ConstructorParameters<typeof Dht>[0]> = {}): Promise<void> {
  const dht = new Dht({ port: 0, host: HOST, queryTimeoutMs: 300, ...opts });
  await dht.listen();
  const raw = new Raw();
  await raw.bind();
  try { await fn(dht, raw); } finally { await raw.close(); await dht.close(); }
}

const q = (t: string, method: string, a: Record<string, unknown>) => ({ t, y: 'q', q: method, a: { id: ID, ...a } });
const errCode = (m: BDict | undefined) => (m && m['y']?.toString() === 'e' ? (m['e'] as [number, Buffer])[0] : undefined);
const r = (m: BDict | undefined) => m?.['r'] as BDict | undefined;

test('server: ping, find_node; unknown method → 204; malformed query → 203; garbage and oversized packets unanswered', { timeout: 10_000 }, async () => {
  await withDht(async (dht, raw) => {
    raw.send(dht.port, q('p1', 'ping', {}));
    const pong = await raw.reply('p1');
    assert.deepEqual(r(pong)?.['id'], dht.nodeId);
    assert.deepEqual(pong?.['ip'], Buffer.from([127, 0, 0, 1, raw.port >> 8, raw.port & 255]), 'BEP 42 ip: where we saw the requester');
    raw.send(dht.port, q('u1', 'vote', { target: ID }));
    assert.equal(errCode(await raw.reply('u1')), 204);
    raw.send(dht.port, { t: 'm1', y: 'q', q: 'ping', a: { id: Buffer.alloc(5) } });
    assert.equal(errCode(await raw.reply('m1')), 203);
    raw.send(dht.port, q('f1', 'find_node', { target: Buffer.alloc(3) }));
    assert.equal(errCode(await raw.reply('f1')), 203);
    raw.send(dht.port, q('g1', 'get_peers', {}));
    assert.equal(errCode(await raw.reply('g1')), 203);
    const before = dht.stats().malformedIn;
    raw.send(dht.port, Buffer.from('this is not bencode'));
    raw.send(dht.port, Buffer.concat([Buffer.from('d1:t2:o11:y1:q1:q4:ping1:ad2:id20:'), ID, Buffer.from('1:x3000:'), Buffer.alloc(3000, 0x61), Buffer.from('ee')]));
    raw.send(dht.port, q('ok', 'ping', {}));
    assert.ok(await raw.reply('ok'), 'still answering after garbage');
    assert.equal(await raw.reply('o1', 200), undefined, 'oversized query not answered');
    assert.equal(dht.stats().malformedIn, before + 2);
  });
});

test('announce_peer: forged, foreign-IP and missing tokens rejected (203); a real token stores the peer; implied_port uses the source port', { timeout: 10_000 }, async () => {
  await withDht(async (dht, raw) => {
    raw.send(dht.port, q('a0', 'announce_peer', { info_hash: IH, port: 7000, token: Buffer.alloc(8) }));
    assert.equal(errCode(await raw.reply('a0')), 203);
    raw.send(dht.port, q('a1', 'announce_peer', { info_hash: IH, port: 7000 }));
    assert.equal(errCode(await raw.reply('a1')), 203);
    // A token handed to another IP (127.0.0.2) is worthless from 127.0.0.1.
    const other = new Raw('127.0.0.2');
    await other.bind();
    other.send(dht.port, q('g2', 'get_peers', { info_hash: IH }));
    const foreign = r(await other.reply('g2'))?.['token'] as Buffer;
    await other.close();
    assert.ok(Buffer.isBuffer(foreign));
    raw.send(dht.port, q('a2', 'announce_peer', { info_hash: IH, port: 7000, token: foreign }));
    assert.equal(errCode(await raw.reply('a2')), 203);
    assert.equal(dht.stats().peersStored, 0);

    raw.send(dht.port, q('g1', 'get_peers', { info_hash: IH }));
    const got = r(await raw.reply('g1'));
    assert.ok(got && Buffer.isBuffer(got['token']) && got['values'] === undefined);
    raw.send(dht.port, q('a3', 'announce_peer', { info_hash: IH, port: 7000, token: got['token'] }));
    assert.ok(r(await raw.reply('a3')));
    raw.send(dht.port, q('a4', 'announce_peer', { info_hash: IH, port: 7001, token: got['token'], implied_port: 1 }));
    assert.ok(r(await raw.reply('a4')));
    raw.send(dht.port, q('a5', 'announce_peer', { info_hash: IH, port: 0, token: got['token'] }));
    assert.equal(errCode(await raw.reply('a5')), 203);
    raw.send(dht.port, q('g3', 'get_peers', { info_hash: IH }));
    const values = (r(await raw.reply('g3'))?.['values'] as Buffer[]).map((v) => v.readUInt16BE(4)).sort((a, b) => a - b);
    assert.deepEqual(values, [7000, raw.port].sort((a, b) => a - b));
    assert.equal(dht.stats().peersStored, 2);
  });
});

test('a flood from one IP is cut at the per-IP limit; other IPs are still served', { timeout: 10_000 }, async () => {
  await withDht(async (dht, raw) => {
    for (let i = 0; i < 300; i++) raw.send(dht.port, q(`f${i}`, 'ping', {}));
    await new Promise((res) => setTimeout(res, 300));
    const answered = raw.inbox.filter((x) => x.msg['y']?.toString() === 'r').length;
    const st = dht.stats();
    assert.ok(answered >= 20 && answered <= 40, `answered ${answered} of 300`);
    // Every query that arrived (the kernel may drop some of a burst) and was not answered was rate limited.
    assert.equal(st.rateLimited, st.queriesIn - answered);
    assert.ok(st.rateLimited >= 100, `only ${st.rateLimited} limited`);
    const other = new Raw('127.0.0.3');
    await other.bind();
    other.send(dht.port, q('x', 'ping', {}));
    assert.ok(await other.reply('x'), 'another IP is unaffected');
    await other.close();
  }, { rateLimit: { perSecond: 10, burst: 30 } });
});

test('only the queried address can answer a query, and a node joins the table only after answering', { timeout: 10_000 }, async () => {
  await withDht(async (dht, raw) => {
    const spoofer = new Raw();
    await spoofer.bind();
    dht.addNode({ host: HOST, port: raw.port });
    for (let i = 0; i < 50 && raw.inbox.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    const ping = raw.inbox.shift()!;
    assert.equal(ping.msg['q']?.toString(), 'ping');
    // Someone else answers with the right transaction id: ignored.
    spoofer.sock.send(encode({ t: ping.msg['t'], y: 'r', r: { id: Buffer.alloc(20, 9) } }), ping.from.port, HOST);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(dht.stats().nodes, 0);
    raw.sock.send(encode({ t: ping.msg['t'], y: 'r', r: { id: ID } }), ping.from.port, HOST);
    for (let i = 0; i < 50 && dht.stats().nodes === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(dht.nodes().map((n) => n.port), [raw.port]);
    await spoofer.close();
  });
});

test('a lying responder (our own address, thousands of nodes, hundreds of peers) cannot make a lookup grow without bound', { timeout: 10_000 }, async () => {
  await withDht(async (dht, liar) => {
    // Answers every query with 30 nodes (our own id and address, non-sandbox addresses, dead loopback ports)
    // and 120 peers: about as much as fits in one datagram; bigger ones are dropped unread.
    const nodes = [
      { id: dht.nodeId, host: HOST, port: dht.port },
      { id: Buffer.alloc(20, 1), host: HOST, port: dht.port },
      ...Array.from({ length: 28 }, (_, i) => ({ id: Buffer.alloc(20, i + 2), host: i % 2 ? '8.8.8.8' : HOST, port: 1 + i })),
    ];
    const values = Array.from({ length: 120 }, (_, i) => Buffer.from([127, 0, 0, 1, 0x10, i]));
    let queries = 0;
    liar.sock.on('message', (m, from) => {
      const msg = decode(m) as BDict;
      queries++;
      const reply = encode({ t: msg['t'], y: 'r', r: { id: ID, nodes: encodeCompactNodes(nodes), token: Buffer.from('tok'), values } });
      liar.sock.send(reply, from.port, from.address);
    });
    const oversized = encode({ t: 'zz', y: 'r', r: { id: ID, nodes: encodeCompactNodes(Array.from({ length: 1000 }, (_, i) => ({ id: Buffer.alloc(20, i & 255), host: HOST, port: 1 + i }))) } });
    assert.ok(oversized.length > 20_000);
    liar.sock.send(oversized, dht.port, HOST);
    dht.addNode({ host: HOST, port: liar.port });
    for (let i = 0; i < 100 && dht.stats().nodes === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(dht.stats().nodes, 1);
    const res = await dht.lookup(IH);
    assert.equal(res.peers.length, 100, 'peers read from one answer are capped');
    assert.ok(res.peers.length <= 100, `${res.peers.length} peers from one answer`);
    assert.ok(res.queried <= 1 + 16, `queried ${res.queried}`);
    const st = dht.stats();
    assert.ok(st.nodes <= 2, 'only nodes that answered are kept, and never ourselves');
    assert.ok(!dht.nodes().some((n) => n.id.equals(dht.nodeId) || n.port === dht.port));
    assert.equal(st.inFlight, 0);
    assert.ok(queries <= 2 + 1);
  });
});

test('a node that stops answering: lookups end on abort, DhtPeerSource.stop() does not wait for the bootstrap, close() is prompt', { timeout: 10_000 }, async () => {
  const silent = new Raw();
  await silent.bind();
  const dht = new Dht({ port: 0, host: HOST, queryTimeoutMs: 5000, bootstrap: [`${HOST}:${silent.port}`] });
  try {
    await dht.listen();
    const { DhtPeerSource } = await import('../../src/dht/index.js');
    const src = new DhtPeerSource(dht, { infoHash: IH, peerId: Buffer.alloc(20), port: 6881, left: () => 0, uploaded: () => 0, downloaded: () => 0, complete: () => true });
    src.start(() => {});
    let t0 = Date.now();
    await src.stop();
    assert.ok(Date.now() - t0 < 500, `stop() took ${Date.now() - t0} ms`);

    const ac = new AbortController();
    ac.abort();
    t0 = Date.now();
    const r0 = await dht.lookup(IH, { signal: ac.signal });
    assert.equal(r0.peers.length, 0);
    assert.ok(Date.now() - t0 < 500);

    // It answers pings only (so it gets into the table), then ignores the lookup's get_peers.
    silent.sock.on('message', (m, from) => {
      const msg = decode(m) as BDict;
      if (msg['q']?.toString() === 'ping') silent.sock.send(encode({ t: msg['t'], y: 'r', r: { id: ID } }), from.port, from.address);
    });
    dht.addNode({ host: HOST, port: silent.port });
    for (let i = 0; i < 100 && dht.stats().nodes === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(dht.stats().nodes, 1);
    const ac2 = new AbortController();
    const p = dht.lookup(IH, { signal: ac2.signal });
    setTimeout(() => ac2.abort(), 100);
    t0 = Date.now();
    const r1 = await p;
    assert.ok(Date.now() - t0 < 1000, 'abort ends a lookup waiting on a silent node');
    assert.equal(r1.queried, 1);
    assert.ok(dht.stats().inFlight > 0, 'queries to the silent node are still pending');
    t0 = Date.now();
    await dht.close();
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(dht.stats().inFlight, 0);
    await dht.bootstrapped();
  } finally {
    await dht.close();
    await silent.close();
  }
});
