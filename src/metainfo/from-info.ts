import { encode } from '../bencode/index.js';
import { parseTorrent } from './parse.js';
import type { Metainfo } from './types.js';

/**
 * A .torrent around an info dictionary fetched from peers (BEP 9), keeping the info bytes exactly as received so the
 * info-hash stays the SHA-1 of them. Trackers become one tier each; web seeds go to `url-list`.
 */
export function torrentFromInfo(info: Buffer, opts: { trackers?: string[]; webSeeds?: string[] } = {}): { bytes: Buffer; meta: Metainfo } {
  const trackers = opts.trackers ?? [];
  const webSeeds = opts.webSeeds ?? [];
  // Keys in sorted order: announce, announce-list, info, url-list.
  const parts: Buffer[] = [Buffer.from('d')];
  if (trackers.length > 0) {
    parts.push(encode('announce'), encode(trackers[0]!));
    if (trackers.length > 1) parts.push(encode('announce-list'), encode(trackers.map((t) => [t])));
  }
  parts.push(encode('info'), info);
  if (webSeeds.length > 0) parts.push(encode('url-list'), encode(webSeeds));
  parts.push(Buffer.from('e'));
  const bytes = Buffer.concat(parts);
  return { bytes, meta: parseTorrent(bytes) };
}
