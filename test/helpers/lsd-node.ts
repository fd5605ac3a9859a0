// Runs one Shoal Lsd for the namespace tests (started with `ip netns exec NS node lsd-node.js JSON`).
//
// argv[2] is JSON: { iface, port?, listen?, watch?: hex[], announce?: hex[], minIntervalMs?, repeatMs?, cookie?, ipv6? }
//   listen: open a TCP listener on iface:0 first and announce its port (reports BitTorrent handshakes).
//   repeatMs: call announce(announce) again this often (the Lsd's rate limit still applies).
// Prints JSON lines: {"event":"ready","port":P,"cookie":C}, {"event":"peer",...}, {"event":"warning",...},
// {"event":"handshake","infoHash":H,"from":IP}, {"event":"stats",...}. Commands on stdin (JSON lines):
// {"cmd":"announce","infoHashes":[...]}, {"cmd":"stats"}. EOF on stdin closes everything and exits, so a dead
// parent never leaves it behind.
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { Lsd } from '../../src/discovery/lsd.js';
import { readHandshake } from '../../src/wire/handshake.js';

interface Config {
  iface: string;
  port?: number;
  listen?: boolean;
  watch?: string[];
  announce?: string[];
  minIntervalMs?: number;
  repeatMs?: number;
  cookie?: string;
  ipv6?: boolean;
}

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
  let server: Server | undefined;
  let port = cfg.port ?? 0;
  if (cfg.listen) {
    const srv = createServer((sock) => {
      sock.on('error', () => {});
      readHandshake(sock, 5000).then(
        ({ handshake }) => emit({ event: 'handshake', infoHash: handshake.infoHash.toString('hex'), from: sock.remoteAddress }),
        (e: Error) => emit({ event: 'bad-connection', from: sock.remoteAddress, msg: e.message }),
      ).finally(() => sock.destroy());
    });
    server = srv;
    await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(0, cfg.iface, () => resolve()); });
    port = (srv.address() as { port: number }).port;
  }
  const lsd = new Lsd({
    port,
    interfaceAddress: cfg.iface,
    ...(cfg.minIntervalMs !== undefined ? { minIntervalMs: cfg.minIntervalMs } : {}),
    ...(cfg.cookie !== undefined ? { cookie: cfg.cookie } : {}),
    ...(cfg.ipv6 !== undefined ? { ipv6: cfg.ipv6 } : {}),
  });
  lsd.on('warning', (msg: string) => emit({ event: 'warning', msg }));
  lsd.on('peer', (infoHash: string, addr: { host: string; port: number }) => emit({ event: 'peer', infoHash, host: addr.host, port: addr.port }));
  await lsd.start();
  for (const ih of cfg.watch ?? []) lsd.watch(ih);
  emit({ event: 'ready', port, cookie: lsd.cookie, active: lsd.active });
  const announce = cfg.announce ?? [];
  if (announce.length) lsd.announce(announce);
  const repeat = cfg.repeatMs ? setInterval(() => lsd.announce(announce), cfg.repeatMs) : undefined;

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let cmd: { cmd?: string; infoHashes?: string[] };
    try { cmd = JSON.parse(line); } catch { return; }
    if (cmd.cmd === 'announce') lsd.announce(cmd.infoHashes ?? []);
    else if (cmd.cmd === 'stats') emit({ event: 'stats', ...lsd.stats() });
  });
  rl.on('close', () => {
    if (repeat) clearInterval(repeat);
    void lsd.close().then(() => { server?.close(); emit({ event: 'exit' }); process.exit(0); });
  });
}

main().catch((e: Error) => { emit({ event: 'fatal', msg: e.message }); process.exit(1); });
