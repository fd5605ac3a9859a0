import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { ShoalError } from '../util/errors.js';
import { contentTypeOf, isMediaFile } from './content-type.js';
import { contentRange, parseRange } from './range.js';

/**
 * The HTTP side of streaming: serves the files of one torrent to media players while they download.
 * It knows nothing of pieces or peers; a StreamSource (the engine's file readers) yields verified bytes.
 * Built on node:http alone: the routes are four fixed shapes, and what matters (Range semantics, back-pressure,
 * destroying the reader when a player disconnects) is exactly what a framework would hide.
 */

export interface StreamFile {
  /** The file's index in the torrent (padding files are simply not listed). */
  index: number;
  /** Path within the torrent, '/'-joined. */
  path: string;
  length: number;
}

export interface StreamSource {
  readonly name: string;
  readonly files: readonly StreamFile[];
  /**
   * A stable identity of the content, e.g. the info-hash. Torrent content never changes under one info-hash,
   * so it makes a strong ETag, which lets players resume with If-Range. Without it no validator is sent.
   */
  readonly id?: string;
  /** Bytes [start, end] inclusive of file `index`, in order, with back-pressure; destroyed when the response closes. */
  createReadStream(index: number, range: { start: number; end: number }): Readable;
}

export interface StreamServerOptions {
  /** Default 127.0.0.1: the files are served to anyone who can connect. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
}

const FILE_ROUTE = /^\/files\/(0|[1-9][0-9]{0,9})(?:\/.*)?$/;
const HOST_HEADER = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$/;

export class StreamServer {
  private readonly server: Server;
  private readonly host: string;
  private readonly port: number;
  private readonly byIndex = new Map<number, StreamFile>();
  private baseUrl: string | null = null;

  constructor(private readonly source: StreamSource, opts: StreamServerOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    if (!Number.isInteger(this.port) || this.port < 0 || this.port > 65535) {
      throw new ShoalError('EUSAGE', `stream port must be 0..65535, got ${opts.port}`);
    }
    for (const f of source.files) this.byIndex.set(f.index, f);
    this.server = createServer((req, res) => this.handle(req, res));
  }

  listen(): Promise<{ port: number; url: string }> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new ShoalError('EUSAGE', `cannot serve on ${this.host}:${this.port}: ${err.code ?? err.message}`, { cause: err }));
      };
      this.server.once('error', onError);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', onError);
        const port = (this.server.address() as AddressInfo).port;
        this.baseUrl = `http://${hostForUrl(this.host)}:${port}`;
        resolve({ port, url: `${this.baseUrl}/` });
      });
    });
  }

  /** The URL of one file: /files/<index>/<percent-encoded path>; the name is there for players, routing uses the index. */
  urlFor(fileIndex: number): string {
    if (this.baseUrl === null) throw new ShoalError('EUSAGE', 'the stream server is not listening');
    return this.baseUrl + this.filePath(fileIndex);
  }

  /** Stops listening and ends every open response, which destroys its reader. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) { resolve(); return; }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private filePath(fileIndex: number): string {
    const f = this.byIndex.get(fileIndex);
    if (f === undefined) throw new ShoalError('EUSAGE', `no file with index ${fileIndex}`);
    return `/files/${f.index}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed\n');
    }
    const host = req.headers.host;
    // A loopback server must not answer to other names: that is how DNS rebinding lets a web page read it.
    if (host === undefined || !HOST_HEADER.test(host) || (isLoopback(this.host) && !isLoopback(hostnameOf(host)))) {
      return plain(res, 403, 'forbidden host\n');
    }
    const pathname = pathOf(req.url ?? '/');
    if (pathname === '/' || pathname === '/index.html') return this.sendPage(req, res, 'text/html; charset=utf-8', this.indexHtml());
    if (pathname === '/playlist.m3u') return this.sendPage(req, res, 'audio/x-mpegurl; charset=utf-8', this.playlist(`http://${host}`));
    const m = FILE_ROUTE.exec(pathname);
    const file = m ? this.byIndex.get(Number(m[1])) : undefined;
    if (file === undefined) return plain(res, 404, 'not found\n');
    this.sendFile(req, res, file);
  }

  private sendFile(req: IncomingMessage, res: ServerResponse, file: StreamFile): void {
    const size = file.length;
    const etag = this.source.id === undefined ? undefined : `"${this.source.id}-${file.index}"`;
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', contentTypeOf(file.path));
    // Torrent content is untrusted: an HTML file must not run scripts with this server's origin.
    res.setHeader('Content-Security-Policy', 'sandbox');
    res.setHeader('Content-Disposition', `inline; filename*=UTF-8''${encodeRfc5987(file.path.slice(file.path.lastIndexOf('/') + 1))}`);
    if (etag !== undefined) res.setHeader('ETag', etag);

    // If-Range with anything but our current strong ETag means "the range may be stale": send the whole file.
    const ifRange = req.headers['if-range'];
    const honourRange = ifRange === undefined || (etag !== undefined && ifRange === etag);
    const range = parseRange(honourRange ? req.headers.range : undefined, size);
    if (range.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', contentRange(size));
      return plain(res, 416, 'range not satisfiable\n');
    }
    let start = 0;
    let end = size - 1;
    if (range.kind === 'partial') {
      ({ start, end } = range);
      res.statusCode = 206;
      res.setHeader('Content-Range', contentRange(size, range));
    } else {
      res.statusCode = 200;
    }
    res.setHeader('Content-Length', end - start + 1);
    if (req.method === 'HEAD' || end < start) { res.end(); return; }

    let reader: Readable;
    try {
      reader = this.source.createReadStream(file.index, { start, end });
    } catch (err) {
      return unavailable(res, err);
    }
    const counter = exactly(end - start + 1);
    let settled = false;
    // Not stream.pipeline: it would destroy the response on a reader error, and a reader that fails before
    // its first byte (piece unavailable, torrent removed) deserves a 503 the player can show.
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      reader.destroy();
      counter.destroy();
      if (!res.headersSent) unavailable(res, err);
      else res.destroy(err);
    };
    reader.on('error', fail);
    counter.on('error', fail);
    res.on('error', () => { /* the socket failed; 'close' follows and cleans up */ });
    // The player seeked away or quit: destroy the reader so the engine stops asking peers for its pieces.
    res.once('close', () => {
      if (settled || res.writableFinished) return;
      settled = true;
      reader.destroy();
      counter.destroy();
    });
    reader.pipe(counter).pipe(res);
    // Headers now, not with the first bytes (which may be a piece away): a player that seeks opens the new range
    // before it closes the old one, and only once the new headers arrive, so until then the old reader would keep
    // its pieces in demand. A reader that fails at once (above, or while this tick's callbacks run) still gets a 503.
    setImmediate(() => {
      if (!settled && !res.headersSent && !res.destroyed) res.flushHeaders();
    });
  }

  private sendPage(req: IncomingMessage, res: ServerResponse, type: string, body: string): void {
    const bytes = Buffer.from(body, 'utf8');
    res.statusCode = 200;
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Length', bytes.length);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  private indexHtml(): string {
    const name = escapeHtml(this.source.name);
    const items = this.source.files.map((f) =>
      `<li><a href="${escapeHtml(this.filePath(f.index))}">${escapeHtml(f.path)}</a> <small>${f.length} bytes</small></li>`);
    const playlist = this.source.files.some((f) => isMediaFile(f.path)) ? '<p><a href="/playlist.m3u">playlist.m3u</a></p>\n' : '';
    return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${name}</title></head>\n<body>\n<h1>${name}</h1>\n${playlist}` +
      `<ul>\n${items.join('\n')}\n</ul>\n</body></html>\n`;
  }

  /** Extended M3U of the audio and video files, in torrent order, with absolute URLs (players resolve nothing). */
  private playlist(base: string): string {
    const lines = ['#EXTM3U'];
    for (const f of this.source.files) {
      if (!isMediaFile(f.path)) continue;
      // A title is one line of text: control characters in a name would end the entry early.
      lines.push(`#EXTINF:-1,${f.path.replace(/[\x00-\x1f\x7f]/g, ' ')}`, base + this.filePath(f.index));
    }
    return lines.join('\n') + '\n';
  }
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** The reader failed before the first byte: the headers can still say so. */
function unavailable(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) return;
  for (const h of ['Content-Range', 'Content-Disposition', 'ETag', 'Accept-Ranges']) res.removeHeader(h);
  plain(res, 503, `cannot read the file: ${err instanceof Error ? err.message : String(err)}\n`.replace(/[\r\n]+(?!$)/g, ' '));
}

/**
 * Passes chunks through unchanged and fails unless exactly `expected` bytes went by: a reader that ends early
 * (or yields too much) then cuts the connection, so the player sees an error instead of a silently short file.
 * (res.strictContentLength would throw from inside pipe's end handler, outside any callback.)
 */
function exactly(expected: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > expected) cb(new Error(`the reader yielded more than the ${expected} bytes asked for`));
      else cb(null, chunk);
    },
    flush(cb) {
      cb(seen === expected ? null : new Error(`the reader ended after ${seen} of ${expected} bytes`));
    },
  });
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  // absolute-form request targets (http://host/path) are legal too
  if (!path.startsWith('/')) {
    try { return new URL(path).pathname; } catch { return ''; }
  }
  return path;
}

function hostnameOf(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(1, hostHeader.indexOf(']'));
  const colon = hostHeader.indexOf(':');
  return colon < 0 ? hostHeader : hostHeader.slice(0, colon);
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || (h.startsWith('::ffff:') && isLoopback(h.slice(7)));
  return false;
}

function hostForUrl(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** RFC 8187 ext-value: attr-char stays, everything else is percent-encoded UTF-8. */
function encodeRfc5987(s: string): string {
  return encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
