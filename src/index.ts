/** Shoal's library API. */
export { Client, Torrent, makePeerId, VERSION, torrentStreamSource, type TorrentFileView } from './engine/index.js';
export type { AddOptions, ClientOptions, PeerStats, TorrentStats, TorrentState } from './engine/index.js';
export {
  parseTorrent, readTorrentFile, encodeTorrent, createTorrent, choosePieceLength, parseMagnet, buildMagnet,
  type Metainfo, type TorrentFile, type CreateOptions, type MagnetLink,
} from './metainfo/index.js';
export { decode as bdecode, encode as bencode } from './bencode/index.js';
export { parsePeerAddress, formatPeerAddress, type PeerAddress } from './discovery/compact.js';
export { ShoalError, isShoalError, type ShoalErrorCode } from './util/errors.js';
export { TrackerServer } from './tracker/index.js';
export { StreamServer, type StreamSource, type StreamFile, type StreamServerOptions } from './stream/index.js';
export { Dht, DhtPeerSource, PUBLIC_ROUTERS, type DhtOptions, type DhtStats } from './dht/index.js';
