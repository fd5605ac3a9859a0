// A DHT of 51 Shoal nodes on 127.0.0.1 in one process: announces are found from any node, also after 20% die.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dht, DhtPeerSource, type LookupResult } from '../../src/dht/index.js';
import type { PeerAddress } from '../../src/discovery/compact.js';
import { mulberry32 } from '../helpers/random.js';

const HOST = '127.0.0.1';
const N = 50;
/** Lookups converge in a few rounds: log2(50) levels of the tree at most, plus slack for the dead nodes. */
const MAX_ROUNDS = 6;
// All nodes share one IP here, so the per-IP query limit (meant for floods from one host) is raised.
const common = { host: HOST, queryTimeoutMs: 400, rateLimit: { perSecond: 5000, burst: 5000 } } as const;

const ih = (label: string) => createHash('sha1').update(`shoal-dht-swarm-${label}`).digest();
const has = (peers: PeerAddress[], port: number) => peers.some((p) => p.host === HOST && p.port === port);

function summary(label: string, rs: LookupResult[]): string {
  const rounds = rs.map((r) => r.rounds), ms = rs.map((r) => r.ms), q = rs.map((r) => r.queried);
  const avg = (a: number[]) => (a.reduce((x, y) => x + y, 0) / a.length).toFixed(1);
  return `${label}: ${rs.length} lookups, rounds avg ${avg(rounds)} max ${Math.max(...rounds)}, ms avg ${avg(ms)} max ${Math.max(...ms)}, queries avg ${avg(q)}`;
}

test('50-node DHT: announces found by lookups from every node; still after killing 20%', { timeout: 30_000 }, async () => {
  const rand = mulberry32(5);
  const boot = new Dht({ port: 0, ...common });
  await boot.listen();
  const nodes: Dht[] = [];
  const t0 = Date.now();
  const alive = new Set<Dht>([boot]);
  try {
    // Nodes join in waves, each bootstrapping from the one well-known node.
    for (let wave = 0; wave < N; wave += 10) {
      const batch = Array.from({ length: Math.min(10, N - wave) }, () => new Dht({ port: 0, bootstrap: [`${HOST}:${boot.port}`], ...common }));
      await Promise.all(batch.map((d) => d.listen()));
      await Promise.all(batch.map((d) => d.bootstrapped()));
      for (const d of batch) { nodes.push(d); alive.add(d); }
    }
    const sizes = nodes.map((d) => d.stats().nodes);
    console.log(`dht swarm: ${N} nodes bootstrapped in ${Date.now() - t0} ms; table sizes min ${Math.min(...sizes)} max ${Math.max(...sizes)}`);
    assert.ok(Math.min(...sizes) >= 1, `a node knows nobody: ${sizes.join(',')}`);

    const announcer = nodes[3]!;
    const port = 40_001;
    const a = await announcer.lookup(ih('x'), { announcePort: port });
    assert.ok(a.announced >= 3, `announce reached only ${a.announced} nodes`);

    const before: LookupResult[] = [];
    for (const d of nodes) {
      if (d === announcer) continue;
      const r = await d.lookup(ih('x'));
      assert.ok(has(r.peers, port), `lookup from node ${d.port} missed the announce: ${JSON.stringify(r)}`);
      assert.ok(r.rounds <= MAX_ROUNDS, `lookup took ${r.rounds} rounds`);
      before.push(r);
    }
    console.log(summary(`dht swarm (${N + 1} nodes)`, before));

    // Kill 20% of the nodes (never the announcer); survivors keep answering.
    const victims = nodes.filter((d) => d !== announcer).sort(() => rand() - 0.5).slice(0, N / 5);
    await Promise.all(victims.map((d) => { alive.delete(d); return d.close(); }));
    const survivors = nodes.filter((d) => alive.has(d) && d !== announcer);

    // Lookups now wait out timeouts of dead nodes, so they run side by side.
    const after = await Promise.all(survivors.slice(0, 20).map(async (d) => {
      const r = await d.lookup(ih('x'));
      assert.ok(has(r.peers, port), `after the kill, lookup from ${d.port} missed the announce: ${JSON.stringify(r)}`);
      assert.ok(r.rounds <= MAX_ROUNDS, `lookup took ${r.rounds} rounds`);
      return r;
    }));
    // A fresh announce after the kill is found as well.
    const b = await survivors[0]!.lookup(ih('y'), { announcePort: port + 1 });
    assert.ok(b.announced >= 3);
    after.push(...await Promise.all(survivors.slice(-10).map(async (d) => {
      const r = await d.lookup(ih('y'));
      assert.ok(has(r.peers, port + 1), `new announce not found from ${d.port}`);
      return r;
    })));
    console.log(summary(`dht swarm after killing ${victims.length}`, after));
    const st = survivors[0]!.stats();
    assert.ok(st.lookups > 0 && st.packetsIn > 0 && st.packetsOut > 0 && st.inFlight >= 0);
  } finally {
    await Promise.all([...alive].map((d) => d.close()));
  }
});

test('a restarted node reloads its routing table and id from the state file and needs no bootstrap node', { timeout: 10_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-dht-state-'));
  const stateFile = join(dir, 'dht.json');
  const others: Dht[] = [];
  try {
    const first = new Dht({ port: 0, ...common });
    await first.listen();
    others.push(first);
    for (let i = 0; i < 5; i++) {
      const d = new Dht({ port: 0, bootstrap: [`${HOST}:${first.port}`], ...common });
      await d.listen();
      await d.bootstrapped();
      others.push(d);
    }
    const a = new Dht({ port: 0, bootstrap: [`${HOST}:${first.port}`], stateFile, ...common });
    await a.listen();
    await a.bootstrapped();
    await a.lookup(ih('warm'));
    const id = Buffer.from(a.nodeId);
    const known = a.stats().nodes;
    assert.ok(known >= 3);
    await a.close();
    const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { nodeId: string; nodes: unknown[] };
    assert.equal(saved.nodeId, id.toString('hex'));
    assert.equal(saved.nodes.length, known);

    // No bootstrap option at all: everything comes from the state file.
    const b = new Dht({ port: 0, stateFile, ...common });
    await b.listen();
    await b.bootstrapped();
    assert.deepEqual(b.nodeId, id);
    assert.ok(b.stats().nodes >= 3, `restarted node knows ${b.stats().nodes} nodes`);
    await others[4]!.lookup(ih('after-restart'), { announcePort: 40_100 });
    const r = await b.lookup(ih('after-restart'));
    assert.ok(has(r.peers, 40_100));
    await b.close();

    // A corrupt state file is reported and ignored, not fatal.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(stateFile, '{not json');
    const c = new Dht({ port: 0, stateFile, ...common });
    const warnings: string[] = [];
    c.on('warning', (m: string) => warnings.push(m));
    await c.listen();
    assert.ok(warnings.some((w) => /unreadable state/.test(w)));
    await c.close();
  } finally {
    await Promise.all(others.map((d) => d.close()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('DhtPeerSource announces our port and pushes the peers it finds to the sink', { timeout: 10_000 }, async () => {
  const dhts: Dht[] = [];
  try {
    const first = new Dht({ port: 0, ...common });
    await first.listen();
    dhts.push(first);
    for (let i = 0; i < 4; i++) {
      const d = new Dht({ port: 0, bootstrap: [`${HOST}:${first.port}`], ...common });
      await d.listen();
      dhts.push(d);
    }
    const infoHash = ih('source');
    const state = (port: number) => ({ infoHash, peerId: Buffer.alloc(20), port, left: () => 0, uploaded: () => 0, downloaded: () => 0, complete: () => true });
    const srcA = new DhtPeerSource(dhts[1]!, state(41_001));
    srcA.start(() => {});
    // Wait for A's first round (lookup + announce) to finish.
    for (let i = 0; i < 100 && !(srcA.describe()['last']); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(srcA.describe()['last'], 'first round never finished');
    const got: PeerAddress[] = [];
    const srcB = new DhtPeerSource(dhts[4]!, state(41_002), { intervalMs: 50 });
    srcB.start((peers, kind) => { assert.equal(kind, 'dht'); got.push(...peers); });
    for (let i = 0; i < 100 && !has(got, 41_001); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(has(got, 41_001), `sink got ${JSON.stringify(got)}`);
    await srcA.stop();
    await srcB.stop();
  } finally {
    await Promise.all(dhts.map((d) => d.close()));
  }
});
