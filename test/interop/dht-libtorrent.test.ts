// Shoal's DHT against libtorrent 2.0's DHT (Debian python3-libtorrent), all nodes on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { startProcess, pollUntil, type ManagedProcess } from '../helpers/real-peers/proc.js';
import { SYSTEM_PYTHON } from '../helpers/real-peers/libtorrent.js';
import { withScope, type Scope } from '../helpers/real-peers/scope.js';
import { Dht } from '../../src/dht/index.js';

const HOST = '127.0.0.1';
const LT_DHT_SCRIPT = (() => {
  const here = fileURLToPath(new URL('../helpers/real-peers/lt_dht.py', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../../test/helpers/real-peers/lt_dht.py', import.meta.url));
})();

interface LtDht {
  port: number;
  proc: ManagedProcess;
  nodes(): number;
  peersFor(ihHex: string): Set<string>;
  send(cmd: Record<string, unknown>): void;
  stop(): Promise<void>;
}

async function startLtDht(bootstrap: string): Promise<LtDht> {
  const proc = startProcess('lt_dht', SYSTEM_PYTHON, [LT_DHT_SCRIPT, '--bootstrap', bootstrap, '--listen', `${HOST}:0`],
    { keepInTail: (l) => !l.includes('"dht_nodes"') });
  let port = 0, nodes = 0;
  const peers = new Map<string, Set<string>>();
  proc.onLine((line, stream) => {
    if (stream !== 'stdout' || !line.startsWith('{')) return;
    let ev: { event: string; [k: string]: unknown };
    try { ev = JSON.parse(line); } catch { return; }
    if (ev.event === 'listening') port = ev.port as number;
    else if (ev.event === 'dht_nodes') nodes = ev.count as number;
    else if (ev.event === 'get_peers_reply') {
      const ih = String(ev.infoHash);
      let s = peers.get(ih);
      if (!s) peers.set(ih, s = new Set());
      for (const p of ev.peers as string[]) s.add(p);
    }
  });
  try {
    await pollUntil('lt_dht to listen', 20_000, () => {
      if (proc.exitCode !== undefined) throw new Error(`lt_dht exited (code ${proc.exitCode})`);
      return port > 0 ? true : undefined;
    }, () => proc.logTail(), 50);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    port, proc,
    nodes: () => nodes,
    peersFor: (ih) => peers.get(ih) ?? new Set(),
    send: (cmd) => { proc.child.stdin?.write(JSON.stringify(cmd) + '\n'); },
    stop: () => proc.stop(),
  };
}

/** A handful of Shoal nodes, the first being libtorrent's bootstrap node. */
async function shoalSwarm(s: Scope, n: number): Promise<Dht[]> {
  const first = new Dht({ port: 0, host: HOST, queryTimeoutMs: 1000, rateLimit: { perSecond: 1000, burst: 1000 } });
  await first.listen();
  s.defer(() => first.close());
  const all = [first];
  for (let i = 1; i < n; i++) {
    const d = new Dht({ port: 0, host: HOST, bootstrap: [`${HOST}:${first.port}`], queryTimeoutMs: 1000, rateLimit: { perSecond: 1000, burst: 1000 } });
    await d.listen();
    s.defer(() => d.close());
    await d.bootstrapped();
    all.push(d);
  }
  return all;
}

const ih = (label: string) => createHash('sha1').update(`shoal-dht-interop-${label}`).digest();

test('Shoal finds a torrent libtorrent announced on the DHT', { timeout: 60_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const shoal = await shoalSwarm(s, 4);
    const lt = s.use(await startLtDht(`${HOST}:${shoal[0]!.port}`));
    await pollUntil('libtorrent DHT to know Shoal nodes', 20_000, () => (lt.nodes() > 0 ? true : undefined), () => lt.proc.logTail());
    const infoHash = ih('a');
    const dir = await s.tempDir('shoal-dht-');
    // Added by info-hash only: libtorrent announces it on the DHT with its listen port while looking for metadata.
    lt.send({ cmd: 'add_magnet', infoHash: infoHash.toString('hex'), save: dir });
    const want = `${HOST}:${lt.port}`;
    const searcher = shoal[shoal.length - 1]!;
    let last: Awaited<ReturnType<Dht["lookup"]>> | undefined;
    const found = await pollUntil(`Shoal lookup to return ${want}`, 30_000, async () => {
      last = await searcher.lookup(infoHash);
      return last.peers.some((p) => `${p.host}:${p.port}` === want) ? last : undefined;
    }, () => `last lookup ${JSON.stringify(last)}\n${lt.proc.logTail()}`, 250);
    console.log(`dht interop (a): Shoal lookup found libtorrent ${want}: rounds=${found.rounds} ms=${found.ms} queried=${found.queried} peers=${found.peers.length}`);
    assert.ok(found.rounds >= 1);
  });
});

test('libtorrent finds the address a Shoal node announced on the DHT', { timeout: 60_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const shoal = await shoalSwarm(s, 4);
    const lt = s.use(await startLtDht(`${HOST}:${shoal[0]!.port}`));
    await pollUntil('libtorrent DHT to know Shoal nodes', 20_000, () => (lt.nodes() > 0 ? true : undefined), () => lt.proc.logTail());
    // A TCP listener stands for the Shoal peer whose port is announced.
    const server: Server = createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(0, HOST, r));
    s.defer(() => new Promise<void>((r) => server.close(() => r())));
    const tcpPort = (server.address() as { port: number }).port;
    const infoHash = ih('b');
    const announcer = shoal[2]!;
    const res = await announcer.lookup(infoHash, { announcePort: tcpPort });
    assert.ok(res.announced > 0, `announce reached no node: ${JSON.stringify(res)}`);
    const hex = infoHash.toString('hex');
    const want = `${HOST}:${tcpPort}`;
    await pollUntil(`libtorrent get_peers to return ${want}`, 30_000, () => {
      if (lt.peersFor(hex).has(want)) return true;
      lt.send({ cmd: 'get_peers', infoHash: hex });
      return undefined;
    }, () => `peers seen: ${[...lt.peersFor(hex)].join(', ')}\n${lt.proc.logTail()}`, 1000);
  });
});
