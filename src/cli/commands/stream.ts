import { StreamServer } from '../../stream/index.js';
import { torrentStreamSource } from '../../engine/index.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, type Output } from '../output.js';
import { startTorrent, type GetCommandOptions } from './get.js';
import { watchTorrent } from './run-torrent.js';
import { parsePort } from './network-options.js';

export interface StreamCommandOptions extends GetCommandOptions {
  file?: string;
  httpPort?: string;
  httpHost?: string;
}

/**
 * Downloads (and seeds) a torrent while serving its files over HTTP: a player opens the printed URL and plays while
 * the pieces arrive; its reads become the download's priority. Runs until Ctrl-C.
 */
export async function streamCommand(source: string, opts: StreamCommandOptions, out: Output): Promise<number> {
  const httpPort = opts.httpPort !== undefined ? parsePort(opts.httpPort, '--http-port') : 0;
  let fileIndex: number | undefined;
  if (opts.file !== undefined) {
    fileIndex = Number(opts.file);
    if (!Number.isInteger(fileIndex) || fileIndex < 0) throw new ShoalError('EUSAGE', `--file takes a file number (see shoal info), got "${opts.file}"`);
  }
  // Keep seeding what we fetched: a stream is also a peer for the next viewer.
  const started = await startTorrent(source, { ...opts, seed: true }, out);
  if ('code' in started) {
    await started.finish();
    return started.code;
  }
  const { client, torrent, signal, failed } = started;
  const files = torrent.files;
  const chosen = fileIndex !== undefined ? files.find((f) => f.index === fileIndex) : [...files].sort((a, b) => b.length - a.length)[0];
  let server: StreamServer | null = null;
  let stopWatching = (): void => undefined;
  try {
    if (!chosen) throw new ShoalError('EUSAGE', `--file: file ${fileIndex} does not exist (the torrent has ${torrent.meta.files.length} files; see shoal info)`);
    // The player will ask for this file's head (and a media file's tail) first: fetch those now, not random pieces.
    torrent.prefetch(chosen.index);
    server = new StreamServer(torrentStreamSource(torrent), { host: opts.httpHost ?? '127.0.0.1', port: httpPort });
    const { url } = await server.listen();
    const fileUrls = files.map((f) => ({ index: f.index, path: f.path, length: f.length, url: server!.urlFor(f.index) }));
    out.event('streaming', { url: server.urlFor(chosen.index), index: url, file: chosen.index, files: fileUrls },
      `streaming ${chosen.path} at ${server.urlFor(chosen.index)}\n  all files: ${url}\nCtrl-C to stop`);
    stopWatching = watchTorrent(torrent, out);
    const outcome = await Promise.race([failed, signal.promise]);
    stopWatching();
    if (outcome instanceof Error) return out.fail(outcome);
    out.event('stopped', { signal: outcome, ...torrent.stats() }, 'stopped');
    return EXIT.ok;
  } finally {
    stopWatching();
    await server?.close();
    signal.dispose();
    await client.close();
  }
}
