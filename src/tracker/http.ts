import { sourceKey } from './rate-limit.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import { encode } from '../bencode/index.js';
import { decodeCompactPeers6, encodeCompactPeer4, encodeCompactPeer6 } from '../discovery/compact.js';
import { isLoopback, normalizeIp, type TrackerContext } from './context.js';
import {
  StoreFullError, StoreUnavailableError, isPromise, type AnnounceEvent, type AnnounceRequest, type AnnounceResult, type ScrapeEntry,
} from './swarm-store.js';

/** Longest request target we read; a scrape for the maximum number of hashes fits comfortably. */
const MAX_URL = 8192;
const MAX_PARAMS = 128;
const MAX_SCRAPE_HASHES = 64;
const PASSKEY_RE = /^[A-Za-z0-9_-]{1,64}$/;
const EVENTS: Record<string, AnnounceEvent> = { '': 'none', started: 'started', completed: 'completed', stopped: 'stopped', paused: 'paused' };

type Query = Map<string, Buffer[]>;

/**
 * Percent-decodes a raw query string into byte values. URLSearchParams would decode to UTF-16 and
 * mangle the binary info_hash and peer_id, so this works on bytes. Returns null on malformed input.
 */
export function parseQuery(raw: string): Query | null {
  const q: Query = new Map();
  if (raw === '') return q;
  const parts = raw.split('&');
  if (parts.length > MAX_PARAMS) return null;
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeComponent(eq < 0 ? part : part.slice(0, eq));
    const v = decodeComponent(eq < 0 ? '' : part.slice(eq + 1));
    if (!k || !v) return null;
    const key = k.toString('latin1');
    const list = q.get(key);
    if (list) list.push(v); else q.set(key, [v]);
  }
  return q;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function decodeComponent(s: string): Buffer | null {
  const out = Buffer.allocUnsafe(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      if (i + 2 >= s.length) return null;
      const hi = hexVal(s.charCodeAt(i + 1)), lo = hexVal(s.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return null;
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c === 43 /* + */) {
      out[n++] = 32; // form encoding; real clients always escape a literal '+' byte
    } else if (c > 32 && c < 127) {
      out[n++] = c;
    } else {
      return null; // raw control or non-ASCII characters never appear in a well-formed request target
    }
  }
  return out.subarray(0, n);
}

function one(q: Query, key: string): Buffer | undefined {
  const v = q.get(key);
  return v ? v[v.length - 1] : undefined;
}

class Reject extends Error {
  constructor(readonly reason: string, readonly metric: string, readonly retryIn?: number) { super(reason); }
}

function bencodeFailure(reason: string, retryIn?: number): Buffer {
  // BEP 31 "retry in" (minutes) tells well-behaved clients when to come back.
  return encode({ 'failure reason': reason, 'retry in': retryIn });
}

const DIGITS = /^\d{1,20}$/;

export function createHttpServer(ctx: TrackerContext): Server {
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 20_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      ctx.logger.error({ err }, 'tracker http handler failed');
      if (!res.headersSent) sendBencode(res, bencodeFailure('internal tracker error'));
      else res.destroy();
    });
  });
  server.maxConnections = 20_000;
  server.maxRequestsPerSocket = 1000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    ctx.metrics.drop('http', 'client_error');
    if (socket.writable && err.code !== 'ECONNRESET') {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  return server;
}

function sendBencode(res: ServerResponse, body: Buffer, status = 200): void {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function clientIp(ctx: TrackerContext, req: IncomingMessage): string {
  if (ctx.trustProxyHeader) {
    const fwd = req.headers['x-forwarded-for'];
    const text = Array.isArray(fwd) ? fwd[fwd.length - 1] : fwd;
    if (text) {
      // The right-most entry is the one our trusted proxy appended; anything left of it is client-supplied.
      const last = normalizeIp(text.split(',').pop()!.trim());
      if (isIPv4(last) || isIPv6(last)) return last;
    }
  }
  return normalizeIp(req.socket.remoteAddress ?? '');
}

async function handle(ctx: TrackerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    res.shouldKeepAlive = false;
    return sendText(res, 405, 'method not allowed\n');
  }
  if ((req.headers['content-length'] && req.headers['content-length'] !== '0') || req.headers['transfer-encoding']) {
    res.shouldKeepAlive = false;
    return sendText(res, 413, 'request bodies are not accepted\n');
  }
  if (url.length > MAX_URL) {
    res.shouldKeepAlive = false;
    return sendText(res, 414, 'request target too long\n');
  }
  const qpos = url.indexOf('?');
  const path = qpos < 0 ? url : url.slice(0, qpos);
  const rawQuery = qpos < 0 ? '' : url.slice(qpos + 1).replace(/#.*$/, '');

  if (path === '/stats') {
    try { return sendText(res, 200, JSON.stringify(await ctx.statsJson()) + '\n', 'application/json'); } catch (err) {
      return sendText(res, 503, JSON.stringify({ error: (err as Error).message }) + '\n', 'application/json');
    }
  }
  if (path === '/metrics') {
    const { body, contentType } = await ctx.metrics.render();
    return sendText(res, 200, body, contentType);
  }

  let route: 'announce' | 'scrape' | undefined;
  let passkey: string | undefined;
  const m = /^(?:\/([^/]+))?\/(announce|scrape)(?:\.php)?$/.exec(path);
  if (m) { route = m[2] as 'announce' | 'scrape'; passkey = m[1]; }
  if (!route) return sendText(res, 404, 'not found: this tracker serves /announce, /scrape, /stats and /metrics\n');

  const ip = clientIp(ctx, req);
  if (ctx.httpLimiter && !ctx.httpLimiter.take(sourceKey(ip), Date.now())) {
    ctx.metrics.error('http', 'rate_limited');
    res.shouldKeepAlive = false;
    return sendBencode(res, bencodeFailure('too many requests from your address, slow down', 1));
  }
  try {
    if (ctx.passkeys) {
      if (passkey === undefined) throw new Reject('this tracker is private: announce to /<passkey>/' + route, 'passkey');
      if (!PASSKEY_RE.test(passkey) || !ctx.passkeys.has(passkey)) throw new Reject('unknown passkey', 'passkey');
    } else if (passkey !== undefined) {
      return sendText(res, 404, 'not found\n');
    }
    const q = parseQuery(rawQuery);
    if (!q) throw new Reject('malformed query string', 'malformed');
    const body = route === 'announce' ? await announce(ctx, q, ip) : await scrape(ctx, q);
    sendBencode(res, body);
  } catch (err) {
    if (err instanceof Reject) {
      ctx.metrics.error('http', err.metric);
      return sendBencode(res, bencodeFailure(err.reason, err.retryIn));
    }
    if (err instanceof StoreUnavailableError) {
      ctx.metrics.error('http', 'storage');
      return sendBencode(res, bencodeFailure(err.message, 1));
    }
    if (err instanceof StoreFullError) {
      ctx.metrics.error('http', 'full');
      return sendBencode(res, bencodeFailure(err.message, 5));
    }
    throw err;
  }
}

function requireHash(v: Buffer | undefined, name: string): Buffer {
  if (!v) throw new Reject(`missing ${name}`, 'malformed');
  if (v.length !== 20) throw new Reject(`${name} must be 20 bytes, got ${v.length}`, 'malformed');
  return v;
}

async function announce(ctx: TrackerContext, q: Query, remoteIp: string): Promise<Buffer> {
  const infoHash = requireHash(one(q, 'info_hash'), 'info_hash');
  const peerId = requireHash(one(q, 'peer_id'), 'peer_id');
  const portText = one(q, 'port')?.toString('latin1');
  if (portText === undefined) throw new Reject('missing port', 'malformed');
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new Reject('port must be an integer in 1..65535', 'malformed');
  for (const k of ['uploaded', 'downloaded', 'left']) {
    const v = one(q, k);
    if (v !== undefined && !DIGITS.test(v.toString('latin1'))) throw new Reject(`${k} must be a non-negative integer`, 'malformed');
  }
  const leftText = one(q, 'left')?.toString('latin1');
  const eventText = one(q, 'event')?.toString('latin1') ?? '';
  const event = Object.prototype.hasOwnProperty.call(EVENTS, eventText) ? EVENTS[eventText]! : undefined;
  if (!event) throw new Reject('event must be started, completed, stopped or empty', 'malformed');
  let numwant = ctx.defaultNumwant;
  const nwText = one(q, 'numwant')?.toString('latin1');
  if (nwText !== undefined && nwText !== '') {
    if (!/^-?\d{1,20}$/.test(nwText)) throw new Reject('numwant must be an integer', 'malformed');
    const n = Number(nwText);
    numwant = n < 0 ? ctx.defaultNumwant : Math.min(n, ctx.maxNumwant);
  }
  const compactText = one(q, 'compact')?.toString('latin1');
  const compactWanted = compactText !== '0';
  const noPeerId = one(q, 'no_peer_id')?.toString('latin1') === '1';

  let ip = remoteIp;
  const ipParam = one(q, 'ip')?.toString('latin1');
  if (ipParam !== undefined && (ctx.trustIpParam || isLoopback(remoteIp))) {
    const p = normalizeIp(ipParam);
    if (!isIPv4(p) && !isIPv6(p)) throw new Reject('ip must be an IPv4 or IPv6 address', 'malformed');
    ip = p;
  }
  if (!ctx.isAllowed(infoHash)) throw new Reject('info_hash is not authorized on this tracker', 'not_allowed');

  let compact: Buffer;
  if (isIPv4(ip)) compact = encodeCompactPeer4(ip, port);
  else if (isIPv6(ip)) compact = encodeCompactPeer6(ip, port);
  else throw new Reject('cannot determine your IP address', 'malformed');

  const req: AnnounceRequest = {
    infoHash, peerId, compact, event, numwant, family: 0, compactOnly: compactWanted, source: remoteIp,
    seed: (leftText !== undefined && /^0+$/.test(leftText)) || event === 'completed',
  };
  const r = ctx.store.announce(req);
  const result: AnnounceResult = isPromise(r) ? await r : r;
  ctx.metrics.announce('http', event);

  const body: Record<string, unknown> = {
    interval: ctx.interval,
    'min interval': ctx.minInterval,
    complete: result.complete,
    incomplete: result.incomplete,
    downloaded: result.downloaded,
    'tracker id': ctx.trackerId,
  };
  if (compactWanted) {
    let b4 = result.compact4, b6 = result.compact6;
    if (!b4 || !b6) {
      let n4 = 0, n6 = 0;
      for (const p of result.peers) if (p.compact.length === 6) n4++; else n6++;
      b4 = Buffer.allocUnsafe(n4 * 6); b6 = Buffer.allocUnsafe(n6 * 18);
      let o4 = 0, o6 = 0;
      for (const p of result.peers) {
        if (p.compact.length === 6) o4 += p.compact.copy(b4, o4); else o6 += p.compact.copy(b6, o6);
      }
    }
    body.peers = b4;
    if (b6.length > 0 || compact.length === 18) body.peers6 = b6;
  } else {
    body.peers = result.peers.map((p) => ({
      'peer id': noPeerId ? undefined : p.peerId,
      ip: compactIp(p.compact),
      port: p.compact.readUInt16BE(p.compact.length - 2),
    }));
  }
  return encode(body);
}

async function scrape(ctx: TrackerContext, q: Query): Promise<Buffer> {
  const raw = q.get('info_hash');
  if (!raw || raw.length === 0) throw new Reject('scrape needs at least one info_hash (full scrape is disabled)', 'malformed');
  if (raw.length > MAX_SCRAPE_HASHES) throw new Reject(`scrape accepts at most ${MAX_SCRAPE_HASHES} info_hash values`, 'malformed');
  for (const h of raw) if (h.length !== 20) throw new Reject(`info_hash must be 20 bytes, got ${h.length}`, 'malformed');
  // Hashes outside the allow-list are left out, as if unknown: private mode should not confirm what it tracks.
  const hashes = raw.filter((h) => ctx.isAllowed(h));
  const r = ctx.store.scrape(hashes);
  const entries: ScrapeEntry[] = isPromise(r) ? await r : r;
  ctx.metrics.scrape('http');
  const files: Record<string, ScrapeEntry> = Object.create(null) as Record<string, ScrapeEntry>;
  hashes.forEach((h, i) => { files[h.toString('latin1')] = entries[i]!; });
  return encode({ files });
}

function compactIp(c: Buffer): string {
  if (c.length === 6) return `${c[0]}.${c[1]}.${c[2]}.${c[3]}`;
  return decodeCompactPeers6(c)[0]?.host ?? '';
}
