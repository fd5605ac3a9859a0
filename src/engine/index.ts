export { Client, makePeerId, VERSION } from './client.js';
export { Torrent } from './torrent.js';
export type { AddOptions, ClientOptions, PeerStats, TorrentStats, TorrentState } from './types.js';
