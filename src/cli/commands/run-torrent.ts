import type { Client, Torrent } from '../../engine/index.js';
import type { TorrentStats } from '../../engine/types.js';
import { formatBytes, formatDuration, formatRate, type Output } from '../output.js';

/** Shows a torrent's life on the terminal (or as JSON lines) until `until` resolves. */
export function watchTorrent(torrent: Torrent, out: Output): () => void {
  const total = torrent.stats().wantedPieces;
  const onStats = (s: TorrentStats): void => {
    out.event('progress', { ...s }, undefined);
    out.updateProgress(s.wantedHave, {
      down: formatRate(s.downloadRate), up: formatRate(s.uploadRate), peers: s.peers, eta: formatDuration(s.eta),
    }, () => plainLine(s));
  };
  torrent.on('stats', onStats);
  const stopPeers = watchPeers(torrent, out);
  if (!torrent.done) {
    out.startProgress(total, '{bar} {percentage}% | ↓ {down} ↑ {up} | peers {peers} | ETA {eta}');
  }
  return () => {
    torrent.off('stats', onStats);
    stopPeers();
    out.stopProgress();
  };
}

/**
 * Warnings from the moment a torrent is created (resume data found corrupt while it is added, for one): call before
 * `client.add()`.
 */
export function forwardWarnings(client: Client, out: Output): void {
  client.onTorrentCreated((t) => t.on('warning', (msg: string) => out.warn(msg)));
}

/**
 * With -v, peer events: plain lines on stderr, or `peer` JSON lines (`event`: connected,
 * disconnected with `reason`, banned with `reason`) with --json.
 */
export function watchPeers(torrent: Torrent, out: Output): () => void {
  const peerEvent = (event: string, address: string, reason: string | undefined, text: string): void => {
    if (!out.verbose) return;
    if (out.json) out.event('peer', { event, address, ...(reason !== undefined ? { reason } : {}) });
    else out.info(text);
  };
  const onPeer = (addr: string): void => peerEvent('connected', addr, undefined, `peer connected: ${addr}`);
  const onDisconnect = (addr: string, err?: Error): void =>
    peerEvent('disconnected', addr, err?.message, `peer disconnected: ${addr}${err ? ` (${err.message})` : ''}`);
  const onBan = (addr: string, reason: string): void => {
    if (out.json && out.verbose) peerEvent('banned', addr, reason, '');
    else out.warn(`banned peer ${addr}: ${reason}`);
  };
  torrent.on('peer', onPeer);
  torrent.on('disconnect', onDisconnect);
  torrent.on('ban', onBan);
  return () => {
    torrent.off('peer', onPeer);
    torrent.off('disconnect', onDisconnect);
    torrent.off('ban', onBan);
  };
}

export function plainLine(s: TorrentStats): string {
  return `${(s.progress * 100).toFixed(1)}% | ↓ ${formatRate(s.downloadRate)} ↑ ${formatRate(s.uploadRate)} | peers ${s.peers} | ` +
    `${formatBytes(s.downloaded)} down, ${formatBytes(s.uploaded)} up | ETA ${formatDuration(s.eta)}`;
}

/** Resolves on SIGINT/SIGTERM; the caller closes cleanly (resume data saved, trackers told). */
export function untilSignal(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let dispose = (): void => undefined;
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    const onInt = (): void => resolve('SIGINT');
    const onTerm = (): void => resolve('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    dispose = () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    };
  });
  return { promise, dispose };
}
