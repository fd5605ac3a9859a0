// Shoal runner for the benchmarks (JSON-lines protocol, see bench/README.md), using only the public
// library API from docs/ARCHITECTURE.md. Imported at run time so the benchmark builds on its own.
// With --tracker the torrent announces to that tracker: a seed from the start, a downloader from the start signal
// on (the library has no way to hold back a torrent's announces, so a downloader adds its torrent only then).
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

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
  },
});
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
const fail = (err: unknown): never => {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
};

const entry = new URL('../../src/index.js', import.meta.url).href;
const mod = (await import(entry).catch(fail)) as { Client: new (o: { port: number; host: string; trackers?: boolean; dht?: boolean; lsd?: boolean }) => ClientLike };
const tracker = a.tracker;
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
