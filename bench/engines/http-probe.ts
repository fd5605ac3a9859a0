// Time to the first body byte of an HTTP GET, measured inside the process that makes the request (so its own
// startup is not counted): what a player waits for before it can parse anything. Prints one JSON line.
// Usage: node http-probe.js <url> [range]   (range default "bytes=0-")
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';

const url = process.argv[2];
const range = process.argv[3] ?? 'bytes=0-';
if (!url) { process.stderr.write('usage: http-probe <url> [range]\n'); process.exit(2); }
const TIMEOUT_MS = 60_000;

const t0 = performance.now();
const req = request(url, { headers: { Range: range } }, (res) => {
  const headersMs = performance.now() - t0;
  res.once('data', (chunk: Buffer) => {
    const firstByteMs = performance.now() - t0;
    process.stdout.write(JSON.stringify({ status: res.statusCode, headersMs, firstByteMs, firstChunk: chunk.length }) + '\n');
    req.destroy();
    process.exit(0);
  });
  res.once('end', () => { process.stderr.write(`response ${res.statusCode} ended without a body\n`); process.exit(1); });
});
req.on('error', (err) => { process.stderr.write(`${err.message}\n`); process.exit(1); });
req.setTimeout(TIMEOUT_MS, () => { process.stderr.write(`no first byte within ${TIMEOUT_MS / 1000} s\n`); process.exit(1); });
req.end();
