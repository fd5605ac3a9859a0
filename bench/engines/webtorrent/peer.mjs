// WebTorrent runner for the Shoal benchmarks (JSON-lines protocol, see bench/README.md).
// TCP only: DHT, LSD, trackers, uTP, NAT traversal and web seeds are off; peers are added directly.
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
  dht: false, lsd: false, tracker: false, utp: false, natUpnp: false, natPmp: false, webSeeds: false,
  torrentPort: Number(a.port),
});
// Its DHT would bootstrap from public routers (k-rpc's defaults): the benchmarks talk only to loopback and their own
// namespaces, so a WebTorrent that started one anyway (an option renamed upstream) is refused before it sends a packet.
if (client.dht) {
  emit({ event: 'error', message: 'WebTorrent started a DHT although dht: false was passed; refusing to run' });
  process.exit(1);
}
client.on('error', (err) => { emit({ event: 'error', message: String(err?.message ?? err) }); process.exit(1); });

const torrent = client.add(readFileSync(a.torrent), { path: a.dir, strategy: a.strategy, announce: [] });
torrent.on('error', (err) => { emit({ event: 'error', message: String(err?.message ?? err) }); process.exit(1); });

let ready = false;
function markReady() {
  if (ready) return;
  ready = true;
  const port = client.torrentPort || client.address()?.port || Number(a.port);
  emit({ event: 'ready', port });
}
torrent.on('ready', () => {
  if (a.role === 'leech') markReady();
  else if (torrent.done) markReady();
});
torrent.on('done', () => {
  if (a.role === 'seed') {
    markReady();
  } else if (ready) {
    emit({ event: 'done', downloaded: torrent.downloaded });
  }
});

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { return; }
  if (cmd.cmd === 'peers') {
    for (const p of cmd.peers) torrent.addPeer(`${p.host}:${p.port}`);
  } else if (cmd.cmd === 'stats') {
    emit({ event: 'stats', uploaded: torrent.uploaded, downloaded: torrent.downloaded, peers: torrent.numPeers, progress: torrent.progress });
  } else if (cmd.cmd === 'quit') {
    client.destroy(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
}).on('close', () => process.exit(0));
