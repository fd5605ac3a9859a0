export { Client, makePeerId, VERSION } from './client.js';
export { Torrent, type TorrentFileView } from './torrent.js';
export { torrentStreamSource } from './stream-source.js';
export type { AddOptions, ClientOptions, PeerStats, TorrentStats, TorrentState } from './types.js';
