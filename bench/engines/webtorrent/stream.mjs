// WebTorrent as a streaming client for the `stream` scenario: adds a torrent, serves it with WebTorrent's own
// HTTP server (client.createServer(), the 2.x API) and prints the largest file's URL, as `shoal stream --json` does.
// TCP only (DHT, LSD, trackers, uTP, NAT traversal and web seeds off); the seed is given with --peer.
// Prints {"event":"streaming","url"} once the server listens and the torrent is ready, {"event":"peer"} per
// connected peer; reads {"cmd":"quit"} on stdin.
import './sandbox-guard.mjs'; // first: before any dependency can open a socket
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebTorrent from 'webtorrent';

const { values: a } = parseArgs({
  options: {
    torrent: { type: 'string' }, dir: { type: 'string' }, peer: { type: 'string', multiple: true, default: [] },
    'http-host': { type: 'string', default: '127.0.0.1' },
  },
});
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => { emit({ event: 'error', message: String(err?.message ?? err) }); process.exit(1); };

const client = new WebTorrent({
  dht: false, lsd: false, tracker: false, utp: false, natUpnp: false, natPmp: false, webSeeds: false, torrentPort: 0,
});
// Its DHT would bootstrap from public routers (k-rpc's defaults): the benchmarks talk only to loopback and their own
// namespaces, so a WebTorrent that started one anyway (an option renamed upstream) is refused before it sends a packet.
if (client.dht) fail(new Error('WebTorrent started a DHT although dht: false was passed; refusing to run'));
client.on('error', fail);
const server = client.createServer({ origin: false });
const listening = new Promise((resolve) => server.listen(0, a['http-host'], resolve));

// WebTorrent's defaults otherwise (strategy: sequential), as a user streaming with it would have them.
const torrent = client.add(readFileSync(a.torrent), { path: a.dir, announce: [] });
torrent.on('error', fail);
torrent.on('wire', (_wire, addr) => emit({ event: 'peer', address: addr }));
torrent.on('ready', async () => {
  await listening;
  const largest = [...torrent.files].sort((x, y) => y.length - x.length)[0];
  const path = largest.path.replace(/\\/g, '/').split('/').map(encodeURIComponent).join('/');
  const { port } = server.address();
  emit({ event: 'streaming', url: `http://${a['http-host']}:${port}/webtorrent/${torrent.infoHash}/${path}`, pid: process.pid });
  for (const p of a.peer) torrent.addPeer(p);
});

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { return; }
  if (cmd.cmd === 'quit') {
    setTimeout(() => process.exit(0), 2000).unref();
    server.destroy();
    client.destroy(() => process.exit(0));
  }
}).on('close', () => process.exit(0));
