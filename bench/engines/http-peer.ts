// Plain HTTP baseline for the swarm (JSON-lines protocol, see bench/README.md): the seed serves the
// file, each downloader fetches it whole from the first peer it is given. The origin uploads N copies.
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { createServer, get } from 'node:http';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    role: { type: 'string' }, torrent: { type: 'string' }, dir: { type: 'string' }, file: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' },
    strategy: { type: 'string' }, tracker: { type: 'string' },
  },
});
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
if (!a.file) { emit({ event: 'error', message: 'http runner needs --file NAME (the file inside --dir)' }); process.exit(1); }
const name = basename(a.file);

let uploaded = 0;
let downloaded = 0;

if (a.role === 'seed') {
  const path = join(a.dir!, name);
  const size = statSync(path).size;
  const server = createServer((req, res) => {
    if (req.url !== `/${encodeURIComponent(name)}`) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
    const rs = createReadStream(path, { highWaterMark: 1 << 20 });
    rs.on('data', (c) => { uploaded += c.length; });
    rs.pipe(res);
    res.on('close', () => rs.destroy());
  });
  server.listen(Number(a.port), a.host, () => emit({ event: 'ready', port: (server.address() as { port: number }).port }));
} else {
  emit({ event: 'ready', port: 0 });
}

function fetchFrom(host: string, port: number): void {
  get({ host, port, path: `/${encodeURIComponent(name)}` }, (res) => {
    if (res.statusCode !== 200) { emit({ event: 'error', message: `HTTP ${res.statusCode}` }); process.exit(1); }
    res.on('data', (c: Buffer) => { downloaded += c.length; });
    pipeline(res, createWriteStream(join(a.dir!, name), { highWaterMark: 1 << 20 })).then(
      () => emit({ event: 'done', downloaded }),
      (err: Error) => { emit({ event: 'error', message: err.message }); process.exit(1); },
    );
  }).on('error', (err) => { emit({ event: 'error', message: err.message }); process.exit(1); });
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { cmd?: string; peers?: { host: string; port: number }[] };
  try { cmd = JSON.parse(line) as typeof cmd; } catch { return; }
  if (cmd.cmd === 'peers') {
    const p = cmd.peers?.[0];
    if (a.role === 'leech' && p) fetchFrom(p.host, p.port);
  } else if (cmd.cmd === 'stats') {
    emit({ event: 'stats', uploaded, downloaded });
  } else if (cmd.cmd === 'quit') {
    process.exit(0);
  }
}).on('close', () => process.exit(0));
