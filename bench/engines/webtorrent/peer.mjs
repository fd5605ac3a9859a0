// WebTorrent runner for the Shoal benchmarks (JSON-lines protocol, see bench/README.md).
// TCP only: DHT, LSD, uTP, NAT traversal and web seeds are off; peers are added directly. Trackers are off unless
// --tracker names one: then a seed announces to it from the start, and a downloader adds its torrent (and so starts
// announcing) only at the start signal, since WebTorrent announces as soon as a torrent is ready, paused or not.
import './sandbox-guard.mjs'; // first: before any dependency can open a socket
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebTorrent from 'webtorrent';

const { values: a } = parseArgs({
  options: {
    role: { type: 'string' }, torrent: { type: 'string' }, dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' },
    strategy: { type: 'string', default: 'sequential' }, tracker: { type: 'string' },
  },
});
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const client = new WebTorrent({
  dht: false, lsd: false, tracker: a.tracker ? {} : false, utp: false, natUpnp: false, natPmp: false, webSeeds: false,
  torrentPort: Number(a.port),
});
// Its DHT would bootstrap from public routers (k-rpc's defaults): the benchmarks talk only to loopback and their own
// namespaces, so a WebTorrent that started one anyway (an option renamed upstream) is refused before it sends a packet.
if (client.dht) {
  emit({ event: 'error', message: 'WebTorrent started a DHT although dht: false was passed; refusing to run' });
  process.exit(1);
}
client.on('error', (err) => { emit({ event: 'error', message: String(err?.message ?? err) }); process.exit(1); });

const announce = a.tracker ? [a.tracker] : [];
let torrent;
let ready = false;
function markReady() {
  if (ready) return;
  ready = true;
  const port = client.torrentPort || client.address()?.port || Number(a.port);
  emit({ event: 'ready', port });
}
function addTorrent(onReady) {
  const t = client.add(readFileSync(a.torrent), { path: a.dir, strategy: a.strategy, announce });
  t.on('error', (err) => { emit({ event: 'error', message: String(err?.message ?? err) }); process.exit(1); });
  t.on('ready', () => onReady(t));
  return t;
}

if (a.role === 'seed') {
  torrent = addTorrent((t) => { if (t.done) markReady(); });
  torrent.on('done', markReady);
} else if (!a.tracker) {
  torrent = addTorrent(markReady);
  torrent.on('done', () => { if (ready) emit({ event: 'done', downloaded: torrent.downloaded }); });
} else {
  // Joins through the tracker at the start signal ('peers'); ready once the client listens.
  client.once('listening', markReady);
  if (client.listening) markReady();
}

/** The start signal for a downloader that joins through the tracker: add the torrent now, then the given peers. */
function join(peers) {
  torrent = addTorrent((t) => { for (const p of peers) t.addPeer(`${p.host}:${p.port}`); });
  torrent.on('done', () => emit({ event: 'done', downloaded: torrent.downloaded }));
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { return; }
  if (cmd.cmd === 'peers') {
    if (!torrent) join(cmd.peers ?? []);
    else for (const p of cmd.peers ?? []) torrent.addPeer(`${p.host}:${p.port}`);
  } else if (cmd.cmd === 'stats') {
    if (!torrent) { emit({ event: 'stats', uploaded: 0, downloaded: 0, peers: 0, progress: 0 }); return; }
    emit({ event: 'stats', uploaded: torrent.uploaded, downloaded: torrent.downloaded, peers: torrent.numPeers, progress: torrent.progress });
  } else if (cmd.cmd === 'quit') {
    client.destroy(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
}).on('close', () => process.exit(0));
