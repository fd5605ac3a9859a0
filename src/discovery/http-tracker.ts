import http from 'node:http';
import https from 'node:https';
import { isIPv4, isIPv6 } from 'node:net';
import { decode, type BDict, type BValue } from '../bencode/index.js';
import { decodeCompactPeers4, decodeCompactPeers6, isValidPort } from './compact.js';
import {
  sanitizeTrackerText, trackerError, trackerLabel,
  type AnnounceParams, type AnnounceResult, type ScrapeResult, type TrackerPeer,
} from './types.js';

export interface HttpTrackerOptions {
  /** Bound on the whole exchange, redirects included. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Default 2 MiB: a compact response with thousands of peers is far smaller. */
  maxResponseBytes?: number;
  /** Default 3. */
  maxRedirects?: number;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 2 * 1024 * 1024;
const USER_AGENT = 'Shoal/0.1';

/** Percent-encode raw bytes: everything outside RFC 3986 unreserved characters becomes %XX. */
export function percentEncodeBytes(buf: Uint8Array): string {
  let out = '';
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
        c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e) out += String.fromCharCode(c);
    else out += '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase();
  }
  return out;
}

/** Append params to a URL that may already carry a query (private-tracker passkeys), dropping any fragment. */
function appendQuery(url: string, pairs: string[]): string {
  const base = url.replace(/#.*$/s, '');
  const sep = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return base + sep + pairs.join('&');
}

function intParam(name: string, v: number): string {
  return `${name}=${Math.max(0, Math.floor(Number.isFinite(v) ? v : 0))}`;
}

export function buildAnnounceUrl(url: string, p: AnnounceParams): string {
  const q = [
    `info_hash=${percentEncodeBytes(p.infoHash)}`,
    `peer_id=${percentEncodeBytes(p.peerId)}`,
    intParam('port', p.port),
    intParam('uploaded', p.uploaded),
    intParam('downloaded', p.downloaded),
    intParam('left', p.left),
    `compact=${p.compact === false ? 0 : 1}`,
  ];
  if (p.event) q.push(`event=${p.event}`);
  if (p.numwant !== undefined) q.push(intParam('numwant', p.numwant));
  // Most clients send key as 8 hex digits; trackers treat it as opaque.
  if (p.key !== undefined) q.push(`key=${(p.key >>> 0).toString(16).padStart(8, '0')}`);
  if (p.trackerId !== undefined) q.push(`trackerid=${percentEncodeBytes(Buffer.from(p.trackerId, 'latin1'))}`);
  if (p.ipv6 !== undefined) q.push(`ipv6=${percentEncodeBytes(Buffer.from(p.ipv6, 'utf8'))}`);
  return appendQuery(url, q);
}

/** BEP 48 convention: the last path component must start with "announce"; it becomes "scrape". */
export function scrapeUrlFor(announceUrl: string): string {
  let u: URL;
  try { u = new URL(announceUrl); } catch { throw trackerError(announceUrl, 'not a valid URL'); }
  const slash = u.pathname.lastIndexOf('/');
  const last = u.pathname.slice(slash + 1);
  if (!last.startsWith('announce')) {
    throw trackerError(u, 'scrape not supported (announce URL path does not end in "announce")');
  }
  u.pathname = u.pathname.slice(0, slash + 1) + 'scrape' + last.slice('announce'.length);
  return u.toString();
}

interface HttpBody { status: number; statusText: string; body: Buffer }

/** GET with redirects, an overall deadline, and a response-size cap. Errors are ShoalError ETRACKER naming `label`. */
async function httpGet(startUrl: string, label: string, opts: HttpTrackerOptions): Promise<HttpBody> {
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const maxRedirects = opts.maxRedirects ?? 3;
  const signal = opts.signal;
  if (signal?.aborted) throw trackerError(label, 'announce aborted', signal.reason);

  let current: http.ClientRequest | undefined;
  let rejectAll: ((e: Error) => void) | undefined;
  let failed: Error | undefined;
  const fail = (e: Error): void => { failed ??= e; current?.destroy(); rejectAll?.(e); };
  const timer = setTimeout(() => fail(trackerError(label, `no response within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  const onAbort = (): void => fail(trackerError(label, 'request aborted', signal?.reason));
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    let url = startUrl;
    for (let hop = 0; ; hop++) {
      const res = await new Promise<HttpBody | { redirect: string }>((resolve, reject) => {
        // The deadline or an abort may have fired between two redirect hops.
        if (failed) { reject(failed); return; }
        rejectAll = reject;
        let u: URL;
        try { u = new URL(url); } catch { reject(trackerError(label, `invalid URL ${trackerLabel(url)}`)); return; }
        const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined;
        if (!mod) { reject(trackerError(label, `unsupported URL scheme ${u.protocol}`)); return; }
        const req = mod.request({
          protocol: u.protocol,
          hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: u.port || undefined,
          // URL keeps existing %XX escapes as they are, so the binary-safe query survives untouched.
          path: u.pathname + u.search,
          method: 'GET',
          agent: false,
          headers: { 'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity', Connection: 'close' },
        });
        current = req;
        req.on('error', (e) => reject(trackerError(label, `request failed: ${e.message}`, e)));
        req.on('response', (r) => {
          const status = r.statusCode ?? 0;
          if (status >= 300 && status < 400 && status !== 304 && r.headers.location) {
            r.resume();
            let next: string;
            try { next = new URL(r.headers.location, u).toString(); } catch {
              reject(trackerError(label, `bad redirect location from HTTP ${status}`)); return;
            }
            resolve({ redirect: next });
            return;
          }
          const declared = Number(r.headers['content-length']);
          if (Number.isFinite(declared) && declared > maxBytes) {
            req.destroy();
            reject(trackerError(label, `response too large (${declared} bytes, limit ${maxBytes})`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          r.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBytes) {
              req.destroy();
              reject(trackerError(label, `response too large (over ${maxBytes} bytes)`));
              return;
            }
            chunks.push(c);
          });
          r.on('end', () => resolve({ status, statusText: r.statusMessage ?? '', body: Buffer.concat(chunks, size) }));
          r.on('error', (e) => reject(trackerError(label, `response failed: ${e.message}`, e)));
          r.on('aborted', () => reject(trackerError(label, 'connection closed before the response was complete')));
        });
        req.end();
      });
      if ('redirect' in res) {
        if (hop >= maxRedirects) throw trackerError(label, `too many redirects (more than ${maxRedirects})`);
        url = res.redirect;
        continue;
      }
      return res;
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    current?.destroy();
  }
}

function num(v: BValue | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function bstr(v: BValue | undefined): string | undefined {
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

/** Decode a tracker body into a dict, surfacing `failure reason` as ETRACKER. */
function decodeTrackerDict(body: Buffer, label: string, httpStatus: number, statusText: string): BDict {
  let v: BValue;
  try {
    v = decode(body, { allowUnsortedKeys: true });
  } catch (e) {
    if (httpStatus < 200 || httpStatus >= 300) throw trackerError(label, `HTTP ${httpStatus} ${sanitizeTrackerText(statusText)}`.trimEnd());
    throw trackerError(label, `malformed response: ${(e as Error).message}`, e);
  }
  if (typeof v !== 'object' || Buffer.isBuffer(v) || Array.isArray(v)) {
    throw trackerError(label, 'malformed response: not a bencoded dictionary');
  }
  const failure = v['failure reason'];
  if (failure !== undefined) {
    throw trackerError(label, `"${sanitizeTrackerText(bstr(failure) ?? String(failure))}"`);
  }
  if (httpStatus < 200 || httpStatus >= 300) throw trackerError(label, `HTTP ${httpStatus} ${sanitizeTrackerText(statusText)}`.trimEnd());
  return v;
}

function parsePeerList(list: BValue[]): TrackerPeer[] {
  const out: TrackerPeer[] = [];
  for (const item of list) {
    if (typeof item !== 'object' || Buffer.isBuffer(item) || Array.isArray(item)) continue;
    const ip = bstr(item['ip'])?.replace(/^\[(.*)\]$/, '$1');
    const port = item['port'];
    // Hostnames are allowed by BEP 3 but PeerAddress carries literal IPs only.
    if (!ip || !(isIPv4(ip) || isIPv6(ip)) || typeof port !== 'number' || !isValidPort(port)) continue;
    const peer: TrackerPeer = { host: ip, port };
    const id = item['peer id'];
    if (Buffer.isBuffer(id) && id.length === 20) peer.peerId = id;
    out.push(peer);
  }
  return out;
}

export function parseAnnounceResponse(body: Buffer, url: string, httpStatus = 200, statusText = 'OK'): AnnounceResult {
  const label = trackerLabel(url);
  const d = decodeTrackerDict(body, label, httpStatus, statusText);
  const peers: TrackerPeer[] = [];
  const p4 = d['peers'];
  if (Buffer.isBuffer(p4)) peers.push(...decodeCompactPeers4(p4));
  else if (Array.isArray(p4)) peers.push(...parsePeerList(p4));
  const p6 = d['peers6'];
  if (Buffer.isBuffer(p6)) peers.push(...decodeCompactPeers6(p6));
  const interval = num(d['interval']);
  if (interval === undefined && p4 === undefined && p6 === undefined) {
    throw trackerError(label, 'malformed response: no interval and no peers');
  }
  const result: AnnounceResult = { interval: interval ?? 1800, peers };
  const minInterval = num(d['min interval']);
  if (minInterval !== undefined) result.minInterval = minInterval;
  const complete = num(d['complete']);
  if (complete !== undefined) result.complete = complete;
  const incomplete = num(d['incomplete']);
  if (incomplete !== undefined) result.incomplete = incomplete;
  const tid = d['tracker id'];
  if (Buffer.isBuffer(tid)) result.trackerId = tid.toString('latin1');
  const warning = bstr(d['warning message']);
  if (warning !== undefined) result.warning = sanitizeTrackerText(warning);
  return result;
}

export async function announceHttp(url: string, params: AnnounceParams, opts: HttpTrackerOptions): Promise<AnnounceResult> {
  const label = trackerLabel(url);
  const res = await httpGet(buildAnnounceUrl(url, params), label, opts);
  return parseAnnounceResponse(res.body, url, res.status, res.statusText);
}

export function parseScrapeResponse(body: Buffer, url: string, httpStatus = 200, statusText = 'OK'): ScrapeResult {
  const label = trackerLabel(url);
  const d = decodeTrackerDict(body, label, httpStatus, statusText);
  const files = d['files'];
  if (typeof files !== 'object' || Buffer.isBuffer(files) || Array.isArray(files)) {
    throw trackerError(label, 'malformed scrape response: no "files" dictionary');
  }
  const out: ScrapeResult = new Map();
  for (const key of Object.keys(files)) {
    const raw = Buffer.from(key, 'latin1');
    const entry = files[key];
    if (raw.length !== 20 || typeof entry !== 'object' || Buffer.isBuffer(entry) || Array.isArray(entry)) continue;
    out.set(raw.toString('hex'), {
      complete: num(entry['complete']) ?? 0,
      incomplete: num(entry['incomplete']) ?? 0,
      downloaded: num(entry['downloaded']) ?? 0,
    });
  }
  return out;
}

export async function scrapeHttp(announceUrl: string, infoHashes: Buffer[], opts: HttpTrackerOptions): Promise<ScrapeResult> {
  const scrapeUrl = scrapeUrlFor(announceUrl);
  const label = trackerLabel(scrapeUrl);
  const url = infoHashes.length === 0 ? scrapeUrl
    : appendQuery(scrapeUrl, infoHashes.map((h) => `info_hash=${percentEncodeBytes(h)}`));
  const res = await httpGet(url, label, opts);
  return parseScrapeResponse(res.body, scrapeUrl, res.status, res.statusText);
}
