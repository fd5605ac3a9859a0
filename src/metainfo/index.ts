export * from './types.js';
export { parseTorrent, readTorrentFile, encodeTorrent, DEFAULT_MAX_FILES, DEFAULT_MAX_PATH_DEPTH, DEFAULT_MAX_PATH_BYTES, type ParseOptions } from './parse.js';
export { createTorrent, choosePieceLength, type CreateOptions } from './create.js';
export { parseMagnet, buildMagnet, parseInfoHash, type MagnetLink } from './magnet.js';
export { validatePathComponents, resolveInside } from './paths.js';
export { torrentFromInfo } from './from-info.js';
