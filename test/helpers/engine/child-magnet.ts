/**
 * Child process for magnet-restart.test: adds a magnet link with a real Client and reports on stdout as JSON lines,
 * so the parent can SIGKILL it once the metadata arrived and start another over the same folder.
 * argv: <magnet URI> <download dir>
 * Lines: {"event":"added","hasMetadata":b,"state":s} right after add() resolved, {"event":"metadata","pieces":n}
 * when the info dictionary arrived from a peer, {"event":"piece","index":n}, {"event":"done",...stats} (then exit 0).
 * Failures go to stderr, exit 1.
 */
import { Client } from '../../../src/engine/index.js';

const [magnet, dir] = process.argv.slice(2);
if (!magnet || !dir) {
  process.stderr.write('usage: child-magnet <magnet> <dir>\n');
  process.exit(2);
}

const line = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

const client = new Client({ port: 0, host: '127.0.0.1', trackers: false });
try {
  const t = await client.add(magnet, { path: dir });
  line({ event: 'added', hasMetadata: t.hasMetadata, state: t.state });
  t.on('metadata', () => line({ event: 'metadata', pieces: t.meta.pieceCount }));
  t.on('piece', (index: number) => line({ event: 'piece', index }));
  t.on('error', (err: Error) => { process.stderr.write(`torrent error: ${err.message}\n`); process.exit(1); });
  await new Promise<void>((resolve) => { if (t.done) resolve(); else t.once('done', () => resolve()); });
  line({ event: 'done', ...t.stats() });
  await client.close();
} catch (err) {
  process.stderr.write(`child-magnet failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
