/** Content types by file extension: a small table of what people put in torrents, no dependency needed. */

const TYPES: Readonly<Record<string, string>> = {
  // video
  mp4: 'video/mp4', m4v: 'video/mp4', mov: 'video/quicktime', webm: 'video/webm', mkv: 'video/x-matroska',
  avi: 'video/x-msvideo', ogv: 'video/ogg', ts: 'video/mp2t', m2ts: 'video/mp2t', mpg: 'video/mpeg', mpeg: 'video/mpeg',
  wmv: 'video/x-ms-wmv', flv: 'video/x-flv', '3gp': 'video/3gpp',
  // audio
  mp3: 'audio/mpeg', m4a: 'audio/mp4', m4b: 'audio/mp4', aac: 'audio/aac', flac: 'audio/flac', ogg: 'audio/ogg',
  oga: 'audio/ogg', opus: 'audio/ogg', wav: 'audio/wav', mka: 'audio/x-matroska', wma: 'audio/x-ms-wma',
  // subtitles and playlists
  srt: 'application/x-subrip', vtt: 'text/vtt', ass: 'text/x-ssa', ssa: 'text/x-ssa', m3u: 'audio/x-mpegurl',
  m3u8: 'application/vnd.apple.mpegurl',
  // documents and text
  html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8', nfo: 'text/plain; charset=utf-8', csv: 'text/csv; charset=utf-8',
  json: 'application/json', xml: 'application/xml', pdf: 'application/pdf', epub: 'application/epub+zip',
  // images
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp',
  svg: 'image/svg+xml', avif: 'image/avif', ico: 'image/x-icon', bmp: 'image/bmp',
  // archives
  zip: 'application/zip', gz: 'application/gzip', tar: 'application/x-tar', xz: 'application/x-xz',
  bz2: 'application/x-bzip2', zst: 'application/zstd', '7z': 'application/x-7z-compressed', iso: 'application/x-iso9660-image',
};

const MEDIA = new Set(['mp4', 'm4v', 'mov', 'webm', 'mkv', 'avi', 'ogv', 'ts', 'm2ts', 'mpg', 'mpeg', 'wmv', 'flv', '3gp',
  'mp3', 'm4a', 'm4b', 'aac', 'flac', 'ogg', 'oga', 'opus', 'wav', 'mka', 'wma']);

/** The lower-cased extension of the last path component, without the dot ('' when there is none). */
export function extensionOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot + 1).toLowerCase();
}

export function contentTypeOf(path: string): string {
  return TYPES[extensionOf(path)] ?? 'application/octet-stream';
}

/** Audio or video a player can open: what goes into the playlist. */
export function isMediaFile(path: string): boolean {
  return MEDIA.has(extensionOf(path));
}
