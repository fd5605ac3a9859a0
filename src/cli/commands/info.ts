import { parseMagnet } from '../../metainfo/index.js';
import { formatPeerAddress } from '../../discovery/compact.js';
import { formatBytes, type Output } from '../output.js';
import { loadTorrent } from './load-torrent.js';

export async function infoCommand(source: string, out: Output): Promise<void> {
  if (source.startsWith('magnet:')) {
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
  const meta = await loadTorrent(source);
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
