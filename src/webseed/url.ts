import type { Metainfo } from '../metainfo/types.js';
import { ShoalError } from '../util/errors.js';

/** Web seed URL schemes we speak (BEP 19 also allows FTP; a client ignores schemes it does not know). */
export function isWebSeedUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * One path component as it goes into a URL: every byte outside RFC 3986 "unreserved" is percent-encoded, so
 * spaces, '#', '?', '%', ';' and non-ASCII (as UTF-8) can never change the meaning of the URL.
 */
export function encodePathSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * The URL of file `fileIndex` on the web seed `url` (BEP 19):
 * - single-file torrent: `url` itself, or `url` + name when `url` ends with '/';
 * - multi-file torrent: `url` is a root folder, the file is `url/<name>/<path…>`.
 * The base URL is kept as the torrent gives it (it may already be percent-encoded); name and path components
 * are encoded one segment at a time.
 */
export function webSeedUrlFor(url: string, meta: Pick<Metainfo, 'name' | 'multiFile' | 'files'>, fileIndex: number): string {
  if (!isWebSeedUrl(url)) throw new ShoalError('EUSAGE', `web seed URL ${JSON.stringify(url)} is not an http:// or https:// URL`);
  const file = meta.files[fileIndex];
  if (file === undefined) throw new ShoalError('EUSAGE', `web seed: file index ${fileIndex} is out of range (torrent has ${meta.files.length} files)`);
  // A fragment is never sent to the server; the torrent's "#…" would otherwise swallow the name we append.
  const hash = url.indexOf('#');
  const base = hash >= 0 ? url.slice(0, hash) : url;
  if (!meta.multiFile) return base.endsWith('/') ? base + encodePathSegment(meta.name) : base;
  const root = base.endsWith('/') ? base : base + '/';
  return root + [meta.name, ...file.path].map(encodePathSegment).join('/');
}
