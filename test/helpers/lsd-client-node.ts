// A full Shoal Client inside a LAN namespace, finding peers by Local Service Discovery (BEP 14) only.
// Started with `ip netns exec NS node lsd-client-node.js JSON` and SHOAL_SANDBOX=1 SHOAL_LSD_IN_SANDBOX=1.
//
// argv[2] is JSON: { iface, dir, magnet?: string, torrent?: string }
//   magnet: download it (info-hash only: the metadata and the data come from whoever LSD finds).
//   torrent: seed it from `dir`.
// Trackers, PEX and explicit peers are off; listens, dials and multicasts on `iface` (a 198.18.0.0/15 address).
// Prints JSON lines: {"event":"ready","port":P,"infoHash":H}, {"event":"peer","address":A}, {"event":"metadata"},
// {"event":"done",...stats}, {"event":"warning","msg":M}, {"event":"fatal","msg":M}. EOF on stdin closes the
// client and exits, so a dead parent never leaves it behind.
import { createInterface } from 'node:readline';
import { Client } from '../../src/engine/index.js';

interface Config { iface: string; dir: string; magnet?: string; torrent?: string }

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
  const source = cfg.magnet ?? cfg.torrent;
  if (!source) throw new Error('give magnet or torrent');
  const client = new Client({
    port: 0, host: cfg.iface, localAddress: cfg.iface, trackers: false, pex: false, lsd: true, lsdInterface: cfg.iface,
  });
  client.on('warning', (msg: string) => emit({ event: 'warning', msg }));
  const rl = createInterface({ input: process.stdin });
  rl.on('close', () => { void client.close().then(() => { emit({ event: 'exit' }); process.exit(0); }); });
  const t = await client.add(source, { path: cfg.dir });
  t.on('peer', (address: string) => emit({ event: 'peer', address }));
  t.on('warning', (msg: string) => emit({ event: 'warning', msg }));
  t.on('error', (err: Error) => emit({ event: 'fatal', msg: err.message }));
  t.on('metadata', () => emit({ event: 'metadata' }));
  const done = (): void => emit({ event: 'done', ...t.stats() });
  emit({ event: 'ready', port: client.port, infoHash: t.infoHashHex, hasMetadata: t.hasMetadata });
  if (t.done) done();
  else t.once('done', done);
  setInterval(() => emit({ event: 'stats', ...t.stats() }), 1000).unref();
}

main().catch((e: Error) => { emit({ event: 'fatal', msg: e.message }); process.exit(1); });
