import { resolve } from 'node:path';
import { Client } from '../../engine/index.js';
import { parsePeerAddress, type PeerAddress } from '../../discovery/compact.js';
import { parseMagnet, type Metainfo } from '../../metainfo/index.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, formatBytes, type Output } from '../output.js';
import { forwardWarnings, plainLine, untilSignal, watchPeers, watchTorrent } from './run-torrent.js';
import { loadTorrent } from './load-torrent.js';
import { isWebSeedUrl } from '../../webseed/index.js';
import type { TorrentStats } from '../../engine/types.js';
import { clientOptions, type NetworkOptions } from './network-options.js';

export interface GetCommandOptions extends NetworkOptions {
  output?: string;
  saveTorrent?: string;
  peer?: string[];
  seed?: boolean;
  select?: string;
  recheck?: boolean;
  timeout?: string;
  webSeed?: string[];
}

export async function getCommand(source: string, opts: GetCommandOptions, out: Output): Promise<number> {
  const magnet = source.slice(0, 7).toLowerCase() === 'magnet:' ? parseMagnet(source) : null;
  const peers: PeerAddress[] = [];
  for (const p of opts.peer ?? []) {
    try {
      peers.push(parsePeerAddress(p));
    } catch (err) {
      throw new ShoalError('EUSAGE', `--peer: ${(err as Error).message}`);
    }
  }
  let selectedFiles: number[] | undefined;
  if (opts.select !== undefined) {
    selectedFiles = opts.select.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 0) throw new ShoalError('EUSAGE', `--select takes file numbers like 0,2,5 (see shoal info), got "${opts.select}"`);
      return n;
    });
  }
  let timeoutMs: number | undefined;
  if (opts.timeout !== undefined) {
    timeoutMs = Number(opts.timeout) * 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ShoalError('EUSAGE', `--timeout takes seconds, got "${opts.timeout}"`);
  }
  const clientOpts = clientOptions(opts, 0);
  const webSeeds = opts.webSeed ?? [];
  for (const u of webSeeds) {
    if (!isWebSeedUrl(u)) throw new ShoalError('EUSAGE', `--web-seed takes an http:// or https:// URL, got "${u}"`);
  }
  // Everything about the input is checked before any socket or file is opened.
  const meta = magnet ? null : await loadTorrent(source);
  if (meta) checkSelection(selectedFiles, meta);
  const dir = resolve(opts.output ?? '.');
  const client = new Client(clientOpts);
  forwardWarnings(client, out);
  const signal = untilSignal();
  let stopWatching = (): void => undefined;
  try {
    const addOpts: Parameters<Client['add']>[1] = { path: dir, peers, recheck: opts.recheck === true, seed: opts.seed === true };
    if (selectedFiles) addOpts.selectedFiles = selectedFiles;
    if (webSeeds.length > 0) addOpts.webSeeds = webSeeds;
    if (opts.saveTorrent !== undefined) addOpts.saveTorrent = resolve(opts.saveTorrent);
    const torrent = await client.add(meta ?? source, addOpts);
    const failed = new Promise<Error>((res) => torrent.on('error', (err: Error) => res(err)));
    const timedOut = timeoutMs === undefined ? null : new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), timeoutMs).unref());

    if (!torrent.hasMetadata) {
      // A magnet link: the info dictionary comes from peers first (BEP 9), then the download proper.
      out.event('metadata-fetching', { infoHash: torrent.infoHashHex, name: torrent.name, dir, port: client.port },
        `fetching metadata for ${torrent.name} from peers (listening on port ${client.port})`);
      const stopEarly = watchPeers(torrent, out);
      const gotMeta = new Promise<'metadata'>((res) => torrent.once('metadata', () => res('metadata')));
      const first = await Promise.race([gotMeta, failed, signal.promise, ...(timedOut ? [timedOut] : [])]);
      stopEarly();
      if (first instanceof Error) return out.fail(first);
      if (first === 'timeout') {
        return out.fail(new ShoalError('ETIMEOUT', `no metadata after ${opts.timeout} s (${torrent.stats().peers} peers connected, ${torrent.stats().knownPeers} known)`));
      }
      if (first === 'SIGINT' || first === 'SIGTERM') {
        out.event('stopped', { signal: first, ...torrent.stats() }, 'stopped before the metadata arrived');
        return EXIT.interrupted;
      }
      out.event('metadata', { infoHash: torrent.infoHashHex, name: torrent.meta.name, length: torrent.meta.length, pieces: torrent.meta.pieceCount },
        `metadata received: ${torrent.meta.name} (${formatBytes(torrent.meta.length)}, ${torrent.meta.pieceCount} pieces)`);
      if (torrent.state === 'checking') await new Promise<void>((res) => { torrent.once('checked', () => res()); torrent.once('error', () => res()); torrent.once('close', () => res()); });
      if (torrent.error) return out.fail(torrent.error);
    }
    const tmeta = torrent.meta;
    const start = torrent.stats();
    out.event('added', { infoHash: tmeta.infoHashHex, name: tmeta.name, dir, port: client.port, have: start.wantedHave, wanted: start.wantedPieces },
      `${tmeta.name} (${formatBytes(tmeta.length)}) → ${dir}\n  listening on port ${client.port}; ${start.wantedHave} of ${start.wantedPieces} pieces already on disk`);
    stopWatching = watchTorrent(torrent, out);

    const done = torrent.done ? Promise.resolve('done' as const) : new Promise<'done'>((res) => torrent.once('done', () => res('done')));
    const outcome = await Promise.race([done, failed, signal.promise, ...(timedOut ? [timedOut] : [])]);
    stopWatching();
    if (outcome instanceof Error) return out.fail(outcome);
    if (outcome === 'timeout') {
      const s = torrent.stats();
      const ws = s.webSeedsTotal > 0 ? `, ${s.webSeeds} of ${s.webSeedsTotal} web seeds usable` : '';
      return out.fail(new ShoalError('ETIMEOUT', `not complete after ${opts.timeout} s (${(s.progress * 100).toFixed(1)}%, ${s.peers} peers${ws})`));
    }
    if (outcome === 'SIGINT' || outcome === 'SIGTERM') {
      out.event('stopped', { signal: outcome, ...torrent.stats() }, `stopped: ${plainLine(torrent.stats())} (resume data saved)`);
      return EXIT.interrupted;
    }
    const s = torrent.stats();
    out.event('done', { ...s }, s.fromWebSeeds > 0 || s.webSeedsTotal > 0
      ? `done: ${tmeta.name} complete and verified: ${sourceSummary(s)}; ${formatBytes(s.uploaded)} uploaded`
      : `done: ${tmeta.name} complete and verified (${formatBytes(s.downloaded)} downloaded, ${formatBytes(s.uploaded)} uploaded)`);
    if (opts.seed) {
      out.line(`seeding on port ${client.port}; Ctrl-C to stop`);
      stopWatching = watchTorrent(torrent, out);
      await signal.promise;
      stopWatching();
    }
    return EXIT.ok;
  } finally {
    stopWatching();
    signal.dispose();
    await client.close();
  }
}

function checkSelection(selectedFiles: number[] | undefined, meta: Metainfo): void {
  for (const i of selectedFiles ?? []) {
    if (i >= meta.files.length || meta.files[i]!.padding) {
      throw new ShoalError('EUSAGE', `--select: file ${i} does not exist (the torrent has ${meta.files.length} files; see shoal info)`);
    }
  }
}

/** "12.0 MiB from peers, 4.0 MiB from web seeds (75% from peers)". */
export function sourceSummary(s: Pick<TorrentStats, 'fromPeers' | 'fromWebSeeds'>): string {
  const total = s.fromPeers + s.fromWebSeeds;
  const pct = total > 0 ? Math.round((s.fromPeers / total) * 100) : 100;
  return `${formatBytes(s.fromPeers)} from peers, ${formatBytes(s.fromWebSeeds)} from web seeds (${pct}% from peers)`;
}
