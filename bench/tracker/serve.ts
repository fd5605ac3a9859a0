// Runs one Shoal tracker in its own process so the benchmark can measure its CPU time alone.
// Usage: node dist/bench/tracker/serve.js <allow-list file>; prints {"httpPort","udpPort","pid"} once listening.
import { TrackerServer } from '../../src/tracker/index.js';

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
