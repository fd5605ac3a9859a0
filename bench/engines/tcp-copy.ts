// Loopback TCP copy, Node to Node into a file: the ceiling for any engine moving bytes between two
// processes here. sink: listens, writes what it receives to --out, reports the seconds from accept
// to the data being written. source: streams --file to --port.
import { createReadStream, createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { role: { type: 'string' }, file: { type: 'string' }, out: { type: 'string' }, port: { type: 'string' } } });
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };

if (a.role === 'sink') {
  const server = createServer((sock) => {
    const t0 = performance.now();
    let bytes = 0;
    sock.on('data', (c: Buffer) => { bytes += c.length; });
    pipeline(sock, createWriteStream(a.out!, { highWaterMark: 1 << 20 })).then(() => {
      emit({ event: 'done', bytes, seconds: (performance.now() - t0) / 1000 });
      server.close();
    }, (err: Error) => { emit({ event: 'error', message: err.message }); process.exit(1); });
  });
  server.listen(0, '127.0.0.1', () => emit({ event: 'ready', port: (server.address() as { port: number }).port }));
} else {
  const sock = connect(Number(a.port), '127.0.0.1');
  pipeline(createReadStream(a.file!, { highWaterMark: 1 << 20 }), sock).catch((err: Error) => { emit({ event: 'error', message: err.message }); process.exit(1); });
}
