/**
 * Child process for kill-download.test: downloads one torrent from one peer with a real Client and reports on
 * stdout as JSON lines, so the parent can SIGKILL it mid-download and start another over the same folder.
 * argv: <torrent file> <download dir> <peer host> <peer port>
 * Lines: {"event":"checked",...stats} once storage is checked, {"event":"piece","index":n,"downloaded":bytes}
 * per verified piece, {"event":"done",...stats} at the end (then it exits 0). Failures go to stderr, exit 1.
 */
import { readFile } from 'node:fs/promises';
import { Client } from '../../../src/engine/index.js';
import { parseTorrent } from '../../../src/metainfo/index.js';

const [torrentPath, dir, host, port] = process.argv.slice(2);
if (!torrentPath || !dir || !host || !port) {
  process.stderr.write('usage: child-downloader <torrent> <dir> <host> <port>\n');
  process.exit(2);
}

const line = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

const meta = parseTorrent(await readFile(torrentPath));
const client = new Client({ port: 0, host: '127.0.0.1', trackers: false });
try {
  // No peers yet: the first line reports exactly what was found on disk.
  const t = await client.add(meta, { path: dir });
  line({ event: 'checked', ...t.stats() });
  t.on('piece', (index: number) => line({ event: 'piece', index, downloaded: t.stats().downloaded }));
  t.on('error', (err: Error) => { process.stderr.write(`torrent error: ${err.message}\n`); process.exit(1); });
  const done = new Promise<void>((resolve) => { if (t.done) resolve(); else t.once('done', () => resolve()); });
  t.addPeer({ host, port: Number(port) });
  await done;
  line({ event: 'done', ...t.stats() });
  await client.close();
} catch (err) {
  process.stderr.write(`child-downloader failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
