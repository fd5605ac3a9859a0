import type { Readable } from 'node:stream';
import type { StreamFile, StreamSource } from '../stream/index.js';
import type { Torrent } from './torrent.js';

/** A torrent's files as the HTTP stream server's source: reads yield verified bytes while the torrent downloads. */
export function torrentStreamSource(torrent: Torrent): StreamSource {
  const files: StreamFile[] = torrent.files.map((f) => ({ index: f.index, path: f.path, length: f.length }));
  return {
    name: torrent.name,
    id: torrent.infoHashHex,
    files,
    createReadStream(index: number, range: { start: number; end: number }): Readable {
      return torrent.createReadStream(index, range);
    },
  };
}
