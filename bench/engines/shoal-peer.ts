// Shoal runner for the benchmarks (JSON-lines protocol, see bench/README.md), using only the public
// library API from docs/ARCHITECTURE.md. Imported at run time so the benchmark builds on its own.
// With --tracker the torrent announces to that tracker: a seed from the start, a downloader from the start signal
// on (the library has no way to hold back a torrent's announces, so a downloader adds its torrent only then).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';

interface PeerAddress { host: string; port: number }
interface TorrentLike {
  readonly done: boolean;
  on(ev: 'done' | 'checked', fn: () => void): unknown;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  addPeer(addr: PeerAddress): void;
  addWebSeed(url: string): boolean;
  stats(): { downloaded: number; uploaded: number; peers: number; progress: number; hashFails?: number; wasted?: number };
}
interface ClientLike {
  readonly port: number;
  listen(): Promise<number>;
  add(source: string, opts: { path: string; peers?: PeerAddress[]; announce?: string[][]; resumeFile?: string | false; initialSeeding?: boolean }): Promise<TorrentLike>;
  close(): Promise<void>;
  on(ev: 'error', fn: (err: Error) => void): unknown;
}

const { values: a } = parseArgs({
  options: {
    role: { type: 'string' }, torrent: { type: 'string' }, dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' },
    strategy: { type: 'string' }, tracker: { type: 'string' },
    'no-initial-seeding': { type: 'boolean', default: false },
    'warm-up': { type: 'string' },
  },
});
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
const fail = (err: unknown): never => {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
};

const entry = new URL('../../src/index.js', import.meta.url).href;
const mod = (await import(entry).catch(fail)) as {
  Client: new (o: { port: number; host: string; trackers?: boolean; dht?: boolean; lsd?: boolean }) => ClientLike;
  createTorrent(target: string, opts: { pieceLength?: number }): Promise<{ torrent: Buffer }>;
  readTorrentFile(file: string): Promise<{ pieceLength: number }>;
};
const tracker = a.tracker;

const whenDone = (t: TorrentLike): Promise<void> => new Promise((resolve, reject) => {
  if (t.done) resolve();
  else { t.on('done', resolve); t.on('error', reject); }
});

/**
 * --warm-up BYTES: before reporting ready, this process seeds and downloads BYTES of random data to itself over
 * 127.0.0.1 (two clients, the run's piece size), so the engine's code is compiled and optimized by the time
 * the measured transfer starts: what a long-running process (a fleet agent, a daemon) is like after its first
 * transfer (some of it is thrown away again when the swarm meets shapes the warm-up did not; bench/PROFILE.md).
 * The harness counts CPU from 'ready' on and leaves loopback out of its traffic figures, so neither sees the warm-up.
 * See bench/README.md ("Cold and warm processes").
 */
async function warmUp(bytes: number, pieceLength: number): Promise<void> {
  // V8 optimizes a function once it has run enough bytecode; over loopback a read carries up to 256 KiB, so a short
  // transfer calls the read path too few times to get there. A smaller budget while warming up (restored after)
  // lets a few seconds leave the code as a long transfer would.
  const budget = process.execArgv.find((f) => f.startsWith('--interrupt-budget=')) ?? `--interrupt-budget=${V8_DEFAULT_INTERRUPT_BUDGET}`;
  v8.setFlagsFromString('--interrupt-budget=8192');
  try {
    await transferToSelf(bytes, pieceLength);
  } finally {
    v8.setFlagsFromString(budget);
  }
}
/** Node 20's V8 (11.3). */
const V8_DEFAULT_INTERRUPT_BUDGET = 67584;

async function transferToSelf(bytes: number, pieceLength: number): Promise<void> {
  const dir = await mkdtemp(joinPath(tmpdir(), 'shoal-warm-up-'));
  const clients: ClientLike[] = [];
  try {
    const seedDir = joinPath(dir, 'seed');
    await mkdir(seedDir);
    const file = joinPath(seedDir, 'warm-up.bin');
    const fh = await open(file, 'w');
    for (let off = 0; off < bytes; off += 1 << 20) await fh.write(randomBytes(Math.min(1 << 20, bytes - off)));
    await fh.close();
    const torrentPath = joinPath(dir, 'warm-up.torrent');
    await writeFile(torrentPath, (await mod.createTorrent(file, { pieceLength })).torrent);
    const make = async (): Promise<{ client: ClientLike; port: number }> => {
      const client = new mod.Client({ port: 0, host: '127.0.0.1', trackers: false, dht: false, lsd: false });
      clients.push(client);
      return { client, port: await client.listen() };
    };
    const seed = await make();
    await whenDone(await seed.client.add(torrentPath, { path: seedDir, resumeFile: false }));
    const leech = await make();
    await whenDone(await leech.client.add(torrentPath, { path: joinPath(dir, 'leech'), peers: [{ host: '127.0.0.1', port: seed.port }], resumeFile: false }));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await rm(dir, { recursive: true, force: true });
  }
}
if (a['warm-up'] !== undefined) {
  const bytes = Number(a['warm-up']);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) fail(new Error(`--warm-up takes a positive number of bytes, not "${a['warm-up']}"`));
  // The run's piece size, so the warm-up takes the paths the measured transfer will.
  await warmUp(bytes, (await mod.readTorrentFile(a.torrent!).catch(fail)).pieceLength).catch(fail);
}

// DHT and local discovery off, as in every other engine's runner (lt_peer.py, aria2-peer, WebTorrent's peer.mjs):
// the peers come from the harness or the tracker, and a DHT node answering its neighbours costs CPU no other engine
// spends here. PEX stays on (every engine's default).
const client = new mod.Client({ port: Number(a.port), host: a.host!, trackers: tracker !== undefined, dht: false, lsd: false });
client.on('error', fail);
const port = await client.listen().catch(fail);
const announce = tracker ? [[tracker]] : [];
// Resume files would let a later run skip work; every run starts from nothing.
const addTorrent = async (peers: PeerAddress[]): Promise<TorrentLike> => {
  const t = await client.add(a.torrent!, {
    path: a.dir!, peers, announce, resumeFile: false, ...(a['no-initial-seeding'] ? { initialSeeding: false } : {}),
  });
  t.on('error', fail);
  return t;
};
let torrent: TorrentLike | undefined;

if (a.role === 'seed') {
  torrent = await addTorrent([]).catch(fail);
  const t = torrent;
  const ready = (): void => {
    const s = t.stats();
    if (s.progress < 1) fail(new Error(`seed data failed verification (progress ${s.progress})`));
    emit({ event: 'ready', port });
  };
  // add() may resolve before or after the existing data is verified.
  if (t.done) ready();
  else t.on('done', ready);
} else {
  if (!tracker) torrent = await addTorrent([]).catch(fail);
  emit({ event: 'ready', port });
  torrent?.on('done', () => emit({ event: 'done', downloaded: torrent!.stats().downloaded }));
}

let joining = false;
/** The start signal for a downloader that joins through the tracker: add the torrent now, with the given peers. */
async function join(peers: PeerAddress[], webSeeds: string[]): Promise<void> {
  const t = await addTorrent(peers);
  torrent = t;
  for (const u of webSeeds) t.addWebSeed(u);
  if (t.done) emit({ event: 'done', downloaded: t.stats().downloaded });
  else t.on('done', () => emit({ event: 'done', downloaded: t.stats().downloaded }));
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { cmd?: string; peers?: PeerAddress[]; webSeeds?: string[] };
  try { cmd = JSON.parse(line) as typeof cmd; } catch { return; }
  if (cmd.cmd === 'peers') {
    if (!torrent && tracker && a.role !== 'seed') {
      if (!joining) join(cmd.peers ?? [], cmd.webSeeds ?? []).catch(fail);
      joining = true;
      return;
    }
    for (const p of cmd.peers ?? []) torrent?.addPeer(p);
    for (const u of cmd.webSeeds ?? []) torrent?.addWebSeed(u);
  } else if (cmd.cmd === 'stats') {
    if (!torrent) { emit({ event: 'stats', uploaded: 0, downloaded: 0, peers: 0, progress: 0 }); return; }
    const s = torrent.stats();
    emit({ event: 'stats', uploaded: s.uploaded, downloaded: s.downloaded, peers: s.peers, progress: s.progress, hashFails: s.hashFails, wasted: s.wasted });
  } else if (cmd.cmd === 'quit') {
    setTimeout(() => process.exit(0), 2000).unref();
    client.close().then(() => process.exit(0), () => process.exit(0));
  }
}).on('close', () => process.exit(0));
