import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMagnet, type Metainfo } from '../../metainfo/index.js';
import { formatPeerAddress, parsePeerAddress } from '../../discovery/compact.js';
import { Client } from '../../engine/index.js';
import { ShoalError } from '../../util/errors.js';
import { clientOptions, type NetworkOptions } from './network-options.js';
import { forwardWarnings } from './run-torrent.js';
import { formatBytes, type Output } from '../output.js';
import { loadTorrent } from './load-torrent.js';

export interface InfoCommandOptions {
  fetch?: boolean;
  peer?: string[];
  saveTorrent?: string;
  timeout?: string;
  port?: string;
  host?: string;
  dht?: boolean;
  dhtBootstrap?: string[];
}

export async function infoCommand(source: string, opts: InfoCommandOptions, out: Output): Promise<void> {
  const isMagnet = source.slice(0, 7).toLowerCase() === 'magnet:';
  if (opts.fetch && !isMagnet) throw new ShoalError('EUSAGE', '--fetch is for magnet links; a .torrent already holds its metadata');
  if (isMagnet && opts.fetch) return showMeta(await fetchMetadata(source, opts, out), out);
  if (isMagnet) {
    const m = parseMagnet(source);
    const data = { infoHash: m.infoHashHex, name: m.name ?? null, trackers: m.trackers, peers: m.peers.map(formatPeerAddress), webSeeds: m.webSeeds };
    const lines = [
      `magnet link`,
      `  info-hash  ${m.infoHashHex}`,
      `  name       ${m.name ?? '(not given)'}`,
      ...m.trackers.map((t, i) => `${i === 0 ? '  trackers   ' : '             '}${t}`),
      ...m.peers.map((p, i) => `${i === 0 ? '  peers      ' : '             '}${formatPeerAddress(p)}`),
      ...m.webSeeds.map((w, i) => `${i === 0 ? '  web seeds  ' : '             '}${w}`),
    ];
    out.event('info', data, lines.join('\n'));
    return;
  }
  showMeta(await loadTorrent(source), out);
}

/** Joins the swarm just long enough to fetch the info dictionary (BEP 9), verified against the info-hash. */
async function fetchMetadata(uri: string, opts: InfoCommandOptions, out: Output): Promise<Metainfo> {
  parseMagnet(uri);
  const peers = (opts.peer ?? []).map((p) => {
    try {
      return parsePeerAddress(p);
    } catch (err) {
      throw new ShoalError('EUSAGE', `--peer: ${(err as Error).message}`);
    }
  });
  const seconds = Number(opts.timeout ?? '60');
  if (!Number.isFinite(seconds) || seconds <= 0) throw new ShoalError('EUSAGE', `--timeout takes seconds, got "${opts.timeout}"`);
  const net: NetworkOptions = {};
  if (opts.port !== undefined) net.port = opts.port;
  if (opts.host !== undefined) net.host = opts.host;
  if (opts.dht !== undefined) net.dht = opts.dht;
  if (opts.dhtBootstrap !== undefined) net.dhtBootstrap = opts.dhtBootstrap;
  const client = new Client(clientOptions(net, 0));
  forwardWarnings(client, out);
  const scratch = await mkdtemp(join(tmpdir(), 'shoal-info-'));
  try {
    const addOpts: Parameters<Client['add']>[1] = { path: scratch, peers, metadataOnly: true, resumeFile: false };
    if (opts.saveTorrent !== undefined) addOpts.saveTorrent = resolve(opts.saveTorrent);
    const torrent = await client.add(uri, addOpts);
    if (torrent.hasMetadata) return torrent.meta;
    const got = await new Promise<Metainfo | Error>((res) => {
      torrent.once('metadata', (m: Metainfo) => res(m));
      torrent.once('error', (e: Error) => res(e));
      setTimeout(() => {
        const s = torrent.stats();
        res(new ShoalError('ETIMEOUT', `no metadata after ${seconds} s (${s.peers} peers connected, ${s.knownPeers} known)`));
      }, seconds * 1000).unref();
    });
    if (got instanceof Error) throw got;
    return got;
  } finally {
    await client.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

function showMeta(meta: Metainfo, out: Output): void {
  // Indices count padding files too: they are what `get --select` takes.
  const files = meta.files.map((f, index) => ({ f, index })).filter(({ f }) => !f.padding);
  const data = {
    name: meta.name, infoHash: meta.infoHashHex, length: meta.length, pieceLength: meta.pieceLength, pieces: meta.pieceCount,
    private: meta.private, files: files.map(({ f, index }) => ({ index, path: f.path.join('/'), length: f.length })),
    trackers: meta.announce, webSeeds: meta.urlList, comment: meta.comment ?? null, createdBy: meta.createdBy ?? null,
    creationDate: meta.creationDate?.toISOString() ?? null,
  };
  const lines = [
    `name          ${meta.name}`,
    `info-hash     ${meta.infoHashHex}`,
    `size          ${formatBytes(meta.length)} (${meta.length} bytes)`,
    `pieces        ${meta.pieceCount} × ${formatBytes(meta.pieceLength)}`,
    `private       ${meta.private ? 'yes' : 'no'}`,
  ];
  if (meta.comment) lines.push(`comment       ${meta.comment}`);
  if (meta.createdBy) lines.push(`created by    ${meta.createdBy}`);
  if (meta.creationDate) lines.push(`created on    ${meta.creationDate.toISOString()}`);
  lines.push(meta.announce.length === 0 ? 'trackers      (none)' : 'trackers');
  meta.announce.forEach((tier, i) => lines.push(`  tier ${i + 1}: ${tier.join(', ')}`));
  if (meta.urlList.length) lines.push(`web seeds     ${meta.urlList.join(', ')}`);
  lines.push(`files (${files.length}; numbers for get --select)`);
  for (const { f, index } of files) {
    lines.push(`  ${String(index).padStart(3)}  ${formatBytes(f.length).padStart(10)}  ${meta.multiFile ? [meta.name, ...f.path].join('/') : f.path.join('/')}`);
  }
  out.event('info', data, lines.join('\n'));
}
