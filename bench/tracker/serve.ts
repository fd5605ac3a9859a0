// Runs one Shoal tracker in its own process so the benchmark can measure its CPU time alone.
// Usage: node dist/bench/tracker/serve.js <allow-list file>; prints {"httpPort","udpPort","pid"} once listening.
// On SIGUSR2 it prints one JSON line with its memory figures and stored peers (the bench attributes RSS with it).
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { TrackerServer } from '../../src/tracker/server.js';

const allow = process.argv[2];
const server = new TrackerServer({
  host: '127.0.0.1', httpPort: 0, udpPort: 0,
  // The load generator is one address sending tens of thousands of requests a second.
  rateLimit: false,
  ...(allow ? { allowList: allow } : {}),
});
const ports = await server.listen();
process.stdout.write(JSON.stringify({ ...ports, pid: process.pid }) + '\n');
const stop = (): void => { server.close().then(() => process.exit(0), () => process.exit(1)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const MiB = 1024 * 1024;
const r1 = (n: number): number => Math.round((n / MiB) * 10) / 10;
process.on('SIGUSR2', () => {
  void server.statsJson().then((st) => {
    const m = process.memoryUsage();
    const smaps = readFileSync('/proc/self/smaps_rollup', 'latin1');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(smaps)?.[1] ?? 0) / 1024;
    const spaces: Record<string, number> = {};
    for (const s of getHeapSpaceStatistics()) spaces[s.space_name] = r1(s.physical_space_size);
    process.stdout.write(JSON.stringify({
      peers: Number(st.seeds) + Number(st.leechers), swarms: st.swarms,
      rssMiB: r1(m.rss), anonMiB: Math.round(kb('Anonymous') * 10) / 10, fileMiB: Math.round((kb('Rss') - kb('Anonymous')) * 10) / 10,
      heapUsedMiB: r1(m.heapUsed), heapTotalMiB: r1(m.heapTotal), externalMiB: r1(m.external), arrayBuffersMiB: r1(m.arrayBuffers),
      heapSpacesPhysicalMiB: spaces,
    }) + '\n');
  });
});
