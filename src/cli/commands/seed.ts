import { stat } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Client } from '../../engine/index.js';
import { buildMagnet, type Metainfo } from '../../metainfo/index.js';
import { TrackerServer } from '../../tracker/index.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, formatBytes, type Output } from '../output.js';
import { createCommand } from './create.js';
import { loadTorrent } from './load-torrent.js';
import { clientOptions, parsePort, type NetworkOptions } from './network-options.js';
import { forwardWarnings, untilSignal, watchTorrent } from './run-torrent.js';

export interface SeedCommandOptions extends NetworkOptions {
  dir?: string;
  tracker?: string[];
  webSeed?: string[];
  /** commander's --no-embedded-tracker sets this to false */
  embeddedTracker?: boolean;
  trackerPort?: string;
  announceHost?: string;
  pieceLength?: string;
  private?: boolean;
  /** Data folder of a given .torrent (as on `get`); `dir` is its alias. */
  output?: string;
  /** Where a created .torrent goes. */
  torrentOut?: string;
  recheck?: boolean;
  /** commander's --no-initial-seeding sets this to false */
  initialSeeding?: boolean;
}

/**
 * Makes data available with one command: creates the torrent when given a path, starts an embedded tracker
 * (unless --no-embedded-tracker) and seeds until interrupted.
 */
export async function seedCommand(source: string, opts: SeedCommandOptions, out: Output): Promise<number> {
  // With --host naming one address, that is where others reach us: the magnet and tracker URL must say so.
  const announceHost = opts.announceHost ?? (opts.host !== undefined && !isWildcard(opts.host) ? opts.host : defaultAnnounceHost());
  if (opts.output !== undefined && opts.dir !== undefined && resolve(opts.output) !== resolve(opts.dir)) {
    throw new ShoalError('EUSAGE', '-o/--output and -d/--dir both name the data folder; give one');
  }
  const dataDirOption = opts.output ?? opts.dir;
  let tracker: TrackerServer | null = null;
  const client = new Client(clientOptions(opts, 6881));
  forwardWarnings(client, out);
  const signal = untilSignal();
  let stopWatching = (): void => undefined;
  try {
    const abs = resolve(source);
    const st = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      throw new ShoalError('EUSAGE', `cannot seed ${source}: ${err.code === 'ENOENT' ? 'no such file or folder' : err.code ?? err.message}`);
    });
    const isTorrentFile = st.isFile() && abs.endsWith('.torrent');
    if (!isTorrentFile && dataDirOption !== undefined) {
      throw new ShoalError('EUSAGE', `-o/--output names the data folder of a .torrent; ${source} is the data itself (name the created .torrent with --torrent-out)`);
    }
    if (isTorrentFile && opts.torrentOut !== undefined) {
      throw new ShoalError('EUSAGE', '--torrent-out names the .torrent that seed <path> creates; here the .torrent is given');
    }

    if (opts.embeddedTracker !== false) {
      // A short interval: in a one-command deployment new downloaders should learn of each other quickly.
      tracker = new TrackerServer({
        host: opts.host ?? '0.0.0.0', publicHost: announceHost, interval: 60,
        httpPort: opts.trackerPort !== undefined ? parsePort(opts.trackerPort, '--tracker-port') : 6969, udpPort: false,
      });
      await tracker.listen().catch((err: Error) => {
        throw new ShoalError('EUSAGE', `cannot start the embedded tracker: ${err.message} (use --tracker-port or --no-embedded-tracker)`);
      });
    }
    const embeddedUrl = tracker ? tracker.announceUrl : null;

    let meta: Metainfo;
    let torrentFile: string;
    let dataDir: string;
    if (isTorrentFile) {
      meta = await loadTorrent(abs);
      torrentFile = abs;
      dataDir = resolve(dataDirOption ?? dirname(abs));
    } else {
      const trackers = [...(embeddedUrl ? [embeddedUrl] : []), ...(opts.tracker ?? [])];
      const createOpts: Parameters<typeof createCommand>[1] = { tracker: trackers, webSeed: opts.webSeed ?? [], private: opts.private === true };
      if (opts.pieceLength !== undefined) createOpts.pieceLength = opts.pieceLength;
      if (opts.torrentOut !== undefined) createOpts.output = opts.torrentOut;
      const created = await createCommand(abs, createOpts, out);
      torrentFile = created.file;
      meta = await loadTorrent(torrentFile);
      dataDir = dirname(abs);
    }
    // With a .torrent made elsewhere, the embedded tracker is an extra tier so peers that use it still meet us.
    // A torrent created just now was hashed from this very data: don't hash it a second time.
    const addOpts: Parameters<Client['add']>[1] = { path: dataDir, recheck: opts.recheck === true, assumeValid: !isTorrentFile };
    if (opts.initialSeeding === false) addOpts.initialSeeding = false;
    if (isTorrentFile && embeddedUrl && !meta.announce.flat().includes(embeddedUrl)) addOpts.announce = [[embeddedUrl]];
    const torrent = await client.add(meta, addOpts);
    const s = torrent.stats();
    if (!torrent.done) {
      throw new ShoalError('ESTORAGE', `the data in ${dataDir} does not match the torrent: ${s.wantedHave} of ${s.wantedPieces} pieces verified`);
    }
    const trackersForMagnet = [...(embeddedUrl ? [embeddedUrl] : []), ...meta.announce.flat()];
    const magnet = buildMagnet({
      infoHash: meta.infoHash, name: meta.name, trackers: [...new Set(trackersForMagnet)],
      peers: [{ host: announceHost, port: client.port }], webSeeds: meta.urlList,
    });
    out.event('seeding', { torrent: torrentFile, infoHash: meta.infoHashHex, magnet, port: client.port, tracker: embeddedUrl, dir: dataDir },
      [
        `seeding ${meta.name} (${formatBytes(meta.length)}) on port ${client.port}`,
        `  torrent  ${torrentFile}`,
        `  magnet   ${magnet}`,
        ...(embeddedUrl ? [`  tracker  ${embeddedUrl}`] : []),
        `Ctrl-C to stop`,
      ].join('\n'));
    stopWatching = watchTorrent(torrent, out);
    const sig = await signal.promise;
    stopWatching();
    out.event('stopped', { signal: sig, ...torrent.stats() }, `stopped: uploaded ${formatBytes(torrent.stats().uploaded)}`);
    return EXIT.ok;
  } finally {
    stopWatching();
    signal.dispose();
    await client.close();
    if (tracker) await tracker.close();
  }
}

/** The address other machines most likely reach us at: the first non-internal IPv4, else loopback. */
export function defaultAnnounceHost(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}
