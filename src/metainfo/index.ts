export * from './types.js';
export { parseTorrent, readTorrentFile, encodeTorrent } from './parse.js';
export { createTorrent, choosePieceLength, type CreateOptions } from './create.js';
export { parseMagnet, buildMagnet, parseInfoHash, type MagnetLink } from './magnet.js';
export { validatePathComponents, resolveInside } from './paths.js';
export { torrentFromInfo } from './from-info.js';
