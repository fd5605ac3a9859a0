import type { Torrent } from '../../engine/index.js';
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
  const onWarning = (msg: string): void => out.warn(msg);
  const onPeer = (addr: string): void => out.info(`peer connected: ${addr}`);
  const onBan = (addr: string, reason: string): void => out.warn(`banned peer ${addr}: ${reason}`);
  torrent.on('stats', onStats);
  torrent.on('warning', onWarning);
  torrent.on('peer', onPeer);
  torrent.on('ban', onBan);
  if (!torrent.done) {
    out.startProgress(total, '{bar} {percentage}% | ↓ {down} ↑ {up} | peers {peers} | ETA {eta}');
  }
  return () => {
    torrent.off('stats', onStats);
    torrent.off('warning', onWarning);
    torrent.off('peer', onPeer);
    torrent.off('ban', onBan);
    out.stopProgress();
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
