import { STATUS_CODES } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { Agent } from 'undici';
import { lazyModule } from '../util/lazy-module.js';
import type { Metainfo } from '../metainfo/types.js';
import { pieceLengthAt } from '../metainfo/types.js';
import { ShoalError } from '../util/errors.js';
import { mayContact } from '../util/sandbox.js';
import { WebSeedError, type WebSeedErrorInit } from './errors.js';
import { isWebSeedUrl, webSeedUrlFor } from './url.js';

export interface WebSeedOptions {
  /** A `url-list` entry (BEP 19). */
  url: string;
  meta: Metainfo;
  /** Concurrent HTTP requests to this server, over as many persistent connections. Default 4. */
  maxInFlight?: number;
  /** Connect, response-headers and body-stall timeout. Default 30 s. */
  timeoutMs?: number;
  /** Redirects followed per request. Default 5. */
  maxRedirects?: number;
  /** Same shape as TokenBucket.take: takes bytes, returns ms to wait. Used for per-origin download limits. */
  rateLimiter?: { take(bytes: number): number };
  /** First back-off after a retryable failure; doubles per consecutive failure up to backoffMaxMs. Default 1 s. */
  backoffBaseMs?: number;
  /** Back-off cap. Default 60 s. */
  backoffMaxMs?: number;
  /** Extra trusted CA certificate(s) for https web seeds (private CAs, tests). */
  ca?: string | Buffer | Array<string | Buffer>;
}

export interface WebSeedStats {
  url: string;
  /** Payload bytes received. */
  bytes: number;
  /** HTTP requests in flight. */
  inFlight: number;
  /** Failed fetches since creation. */
  failures: number;
  lastError?: string;
  /** Epoch ms before which fetch() waits (present only while in the future). */
  backoffUntil?: number;
}

/** One contiguous range of one file that a piece range covers. */
export interface WebSeedSegment {
  fileIndex: number;
  /** First byte within the file. */
  fileOffset: number;
  length: number;
  /** Where the bytes go within the caller's buffer. */
  intoOffset: number;
  /** BEP 47 padding: zeros, never requested. */
  padding: boolean;
}

/** Loaded with the first request: undici is ~10 MiB of heap, which a process without web seeds should not pay. */
const undici = lazyModule<typeof import('undici')>('undici');

const DEFAULT_MAX_IN_FLIGHT = 4;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;
const DEFAULT_BACKOFF_BASE_MS = 1_000;
const DEFAULT_BACKOFF_MAX_MS = 60_000;
/** A Retry-After longer than this is not believed. */
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Error bodies (404 pages and the like) up to this size are read to keep the connection; larger ones close it. */
const DUMP_LIMIT = 64 * 1024;
/** Body bytes undici may buffer per request before pausing the socket. */
const BODY_HIGH_WATER_MARK = 1 << 20;

/**
 * The files (and parts of files) that bytes [begin, begin+length) of piece `index` live in, in order.
 * Zero-length files are skipped; padding files are included, marked, so the caller can zero-fill them.
 */
export function webSeedSegments(meta: Pick<Metainfo, 'files' | 'pieceLength'>, index: number, begin: number, length: number): WebSeedSegment[] {
  const out: WebSeedSegment[] = [];
  const start = index * meta.pieceLength + begin;
  const end = start + length;
  const files = meta.files;
  // Binary search for the last file starting at or before `start`.
  let lo = 0, hi = files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (files[mid]!.offset <= start) lo = mid; else hi = mid - 1;
  }
  for (let i = lo; i < files.length; i++) {
    const f = files[i]!;
    if (f.offset >= end) break;
    const from = Math.max(start, f.offset);
    const to = Math.min(end, f.offset + f.length);
    if (to <= from) continue;
    out.push({ fileIndex: i, fileOffset: from - f.offset, length: to - from, intoOffset: from - start, padding: f.padding });
  }
  return out;
}

/**
 * A BEP 19 web seed: an HTTP(S) server holding the torrent's files, read with ranged GETs over a keep-alive
 * pool. Bytes it returns are unverified; the caller checks piece hashes. A permanent failure (404, 410, 416,
 * a server that ignores Range, too many redirects, ...) disables it; a retryable one (5xx, timeout, short
 * body, network) puts it in exponential back-off, which the next fetch() waits out before asking again.
 */
export class WebSeed {
  readonly url: string;
  private readonly meta: Metainfo;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly rateLimiter: { take(bytes: number): number } | undefined;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly agentOptions: ConstructorParameters<typeof Agent>[0];
  /** Created with the first request (see `undici`). */
  private agent: Agent | undefined;
  private readonly fileUrls: (string | undefined)[];
  private closed = false;
  /** One per fetch in progress, so close() can abort them without a listener per fetch on a shared signal. */
  private readonly running = new Set<AbortController>();

  private received = 0;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private failureCount = 0;
  private consecutiveFailures = 0;
  private lastFailureAt = 0;
  private backoffEnd = 0;
  private lastError: WebSeedError | undefined;
  private disabledBy: WebSeedError | undefined;

  constructor(opts: WebSeedOptions) {
    if (!isWebSeedUrl(opts.url)) throw new ShoalError('EUSAGE', `web seed URL ${JSON.stringify(opts.url)} is not an http:// or https:// URL`);
    this.url = opts.url;
    this.meta = opts.meta;
    this.maxInFlight = positiveInt(opts.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight');
    this.timeoutMs = positiveInt(opts.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs');
    this.maxRedirects = opts.maxRedirects === undefined ? DEFAULT_MAX_REDIRECTS : nonNegInt(opts.maxRedirects, 'maxRedirects');
    this.rateLimiter = opts.rateLimiter;
    this.backoffBaseMs = positiveInt(opts.backoffBaseMs, DEFAULT_BACKOFF_BASE_MS, 'backoffBaseMs');
    this.backoffMaxMs = Math.max(this.backoffBaseMs, positiveInt(opts.backoffMaxMs, DEFAULT_BACKOFF_MAX_MS, 'backoffMaxMs'));
    this.fileUrls = new Array(opts.meta.files.length);
    this.agentOptions = {
      connections: this.maxInFlight,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connect: { timeout: this.timeoutMs, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) },
    };
  }

  private httpAgent(): Agent {
    this.agent ??= new (undici().Agent)(this.agentOptions);
    return this.agent;
  }

  get bytesReceived(): number { return this.received; }
  get disabled(): boolean { return this.disabledBy !== undefined; }
  /** Epoch ms before which fetch() will not send (0 when not backing off). */
  get backoffUntil(): number { return this.backoffEnd > Date.now() ? this.backoffEnd : 0; }

  stats(): WebSeedStats {
    const s: WebSeedStats = { url: this.url, bytes: this.received, inFlight: this.active, failures: this.failureCount };
    if (this.lastError) s.lastError = this.lastError.message;
    const until = this.backoffUntil;
    if (until > 0) s.backoffUntil = until;
    return s;
  }

  /**
   * Bytes [begin, begin+length) of piece `index`, written into `into[0, length)`: one ranged GET per file the
   * range touches (padding files are zero-filled, never requested), in parallel up to maxInFlight. Rejects with
   * a WebSeedError (or the abort reason if `signal` fires); after a rejection the contents of `into` are
   * unspecified, but nothing writes into it any more. The bytes are unverified: check the piece hash.
   */
  async fetch(index: number, begin: number, length: number, into: Buffer, signal?: AbortSignal): Promise<void> {
    this.checkArgs(index, begin, length, into);
    if (this.closed) throw new ShoalError('EUSAGE', `web seed ${this.url} is closed`);
    if (this.disabledBy) throw this.disabledBy;
    signal?.throwIfAborted();

    const ctl = new AbortController();
    // Every in-flight request of this fetch listens on ctl.signal (undici, the slot queue, rate-limit sleeps).
    setMaxListeners(0, ctl.signal);
    const onAbort = (): void => { ctl.abort(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.running.add(ctl);
    const startedAt = Date.now();
    try {
      if (this.backoffEnd > Date.now()) await sleep(this.backoffEnd - Date.now(), ctl.signal);
      if (this.disabledBy) throw this.disabledBy;   // disabled by another fetch while this one waited

      const segments = webSeedSegments(this.meta, index, begin, length);
      let first: unknown;
      const results = await Promise.allSettled(segments.map(async (seg) => {
        if (seg.padding) { into.fill(0, seg.intoOffset, seg.intoOffset + seg.length); return; }
        try {
          await this.fetchSegment(seg, into, ctl.signal);
        } catch (e) {
          // The first failure cancels its siblings; their abort errors are consequences, not causes.
          if (first === undefined) { first = e; ctl.abort(e); }
          throw e;
        }
      }));
      if (first === undefined && results.some((r) => r.status === 'rejected')) first = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
      if (first !== undefined) {
        if (first instanceof FailureSignal) throw this.recordFailure(first.init, startedAt, first.retryAfterMs);
        throw first;
      }
      if (this.consecutiveFailures > 0 && this.lastFailureAt <= startedAt) { this.consecutiveFailures = 0; this.backoffEnd = 0; }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.running.delete(ctl);
    }
  }

  /** Aborts what is in flight (those fetches reject with an AbortError) and closes the connections. */
  async close(): Promise<void> {
    this.closed = true;
    const reason = new DOMException(`web seed ${this.url} closed`, 'AbortError');
    for (const ctl of this.running) ctl.abort(reason);
    await this.agent?.destroy().catch(() => {});
  }

  fileUrl(fileIndex: number): string {
    let u = this.fileUrls[fileIndex];
    if (u === undefined) { u = webSeedUrlFor(this.url, this.meta, fileIndex); this.fileUrls[fileIndex] = u; }
    return u;
  }

  private checkArgs(index: number, begin: number, length: number, into: Buffer): void {
    const m = this.meta;
    if (!Number.isInteger(index) || index < 0 || index >= m.pieceCount) throw new ShoalError('EUSAGE', `web seed fetch: piece ${index} is out of range (0..${m.pieceCount - 1})`);
    const pl = pieceLengthAt(m, index);
    if (!Number.isInteger(begin) || !Number.isInteger(length) || begin < 0 || length <= 0 || begin + length > pl) {
      throw new ShoalError('EUSAGE', `web seed fetch: bytes ${begin}+${length} are outside piece ${index} (${pl} bytes)`);
    }
    if (into.length < length) throw new ShoalError('EUSAGE', `web seed fetch: buffer of ${into.length} bytes is smaller than the ${length} bytes asked for`);
  }

  /** A request slot (maxInFlight per seed); slots are handed over in FIFO order. */
  private async acquire(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.active < this.maxInFlight) { this.active++; return; }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      // release() hands its slot over directly (active stays the same), so no one can overtake the queue.
      const grant = (): void => { signal.removeEventListener('abort', onAbort); resolve(); };
      this.waiting.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next(); else this.active--;
  }

  private async fetchSegment(seg: WebSeedSegment, into: Buffer, signal: AbortSignal): Promise<void> {
    await this.acquire(signal);
    try {
      await this.getRange(this.fileUrl(seg.fileIndex), this.meta.files[seg.fileIndex]!.length, seg.fileOffset, seg.length, into, seg.intoOffset, signal);
    } finally {
      this.release();
    }
  }

  /** One ranged GET, following up to maxRedirects redirects. Throws FailureSignal for server/network failures. */
  private async getRange(fileUrl: string, fileLength: number, start: number, length: number, into: Buffer, intoOffset: number, signal: AbortSignal): Promise<void> {
    const last = start + length - 1;
    const range = `bytes=${start}-${last}`;
    let url = fileUrl;
    for (let hop = 0; ; hop++) {
      const u = new URL(url);
      if (!mayContact(u.hostname)) {
        throw new FailureSignal({ kind: 'network', retryable: false, url, detail: `${u.hostname} is outside the sandbox (SHOAL_SANDBOX=1 allows only loopback and 198.18.0.0/15)` });
      }
      let res;
      try {
        res = await this.httpAgent().request({
          origin: u.origin,
          path: u.pathname + u.search,
          method: 'GET',
          headers: { range, 'accept-encoding': 'identity', 'user-agent': 'Shoal' },
          signal,
          // undici's default 64 KiB body buffer pauses the socket so often that a 1 MiB range is ~5x slower on loopback.
          highWaterMark: Math.min(length, BODY_HIGH_WATER_MARK),
        });
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        throw new FailureSignal(requestFailure(e, url, this.timeoutMs));
      }
      const { statusCode: status, headers, body } = res;

      if (status === 206) {
        const cr = header(headers, 'content-range');
        const m = cr === undefined ? null : /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(cr.trim());
        if (m === null || Number(m[1]) !== start || Number(m[2]) !== last) {
          body.destroy();
          throw new FailureSignal({ kind: 'bad-response', retryable: false, url, status,
            detail: `answered 206 with Content-Range ${cr === undefined ? '(none)' : JSON.stringify(cr)} to a request for ${range}` });
        }
        if (m[3] !== '*' && Number(m[3]) !== fileLength) {
          body.destroy();
          throw new FailureSignal({ kind: 'bad-response', retryable: false, url, status,
            detail: `the server's file is ${m[3]} bytes but the torrent says ${fileLength} (a different version of the file?)` });
        }
        await this.readBody(body, url, range, length, into, intoOffset, signal);
        return;
      }

      if (status === 200) {
        // A server may answer a range covering the whole file with the whole file: that is what was asked.
        if (start === 0 && length === fileLength && Number(header(headers, 'content-length') ?? -1) === fileLength) {
          await this.readBody(body, url, range, length, into, intoOffset, signal);
          return;
        }
        // Never download a whole (possibly huge) file to use a slice of it: abandon the body now.
        body.destroy();
        const size = header(headers, 'content-length');
        throw new FailureSignal({ kind: 'range-ignored', retryable: false, url, status,
          detail: `the server ignores HTTP Range requests (answered 200 with the whole ${size !== undefined ? `${size}-byte ` : ''}file instead of 206 for ${range}); web seeds need Range support, so the transfer was stopped` });
      }

      if (status >= 300 && status < 400 && status !== 304) {
        const loc = header(headers, 'location');
        await dump(body);
        if (loc === undefined) throw new FailureSignal({ kind: 'bad-status', retryable: false, url, status, detail: `answered ${status} redirect without a Location` });
        let next: URL;
        try { next = new URL(loc, url); } catch {
          throw new FailureSignal({ kind: 'bad-status', retryable: false, url, status, detail: `answered ${status} with an invalid Location ${JSON.stringify(loc)}` });
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new FailureSignal({ kind: 'bad-status', retryable: false, url, status, detail: `redirects to ${next.protocol} URL ${next.href}, which web seeds do not speak` });
        }
        if (hop >= this.maxRedirects) {
          throw new FailureSignal({ kind: 'too-many-redirects', retryable: false, url: fileUrl, status,
            detail: `more than ${this.maxRedirects} redirects (last to ${next.href})${next.href === fileUrl ? ', a redirect loop' : ''}` });
        }
        url = next.href;
        continue;
      }

      const retryAfterMs = parseRetryAfter(header(headers, 'retry-after'));
      await dump(body);
      throw new FailureSignal(statusFailure(status, url, range, fileLength, header(headers, 'content-range')), retryAfterMs);
    }
  }

  private async readBody(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, url: string, range: string, length: number, into: Buffer, intoOffset: number, signal: AbortSignal): Promise<void> {
    let got = 0;
    try {
      for await (const chunk of body) {
        if (got + chunk.length > length) {
          body.destroy();
          throw new FailureSignal({ kind: 'bad-response', retryable: false, url, detail: `sent more than the ${length} bytes asked for with ${range}` });
        }
        chunk.copy(into, intoOffset + got);
        got += chunk.length;
        this.received += chunk.length;
        if (this.rateLimiter) {
          const wait = this.rateLimiter.take(chunk.length);
          if (wait > 0) await sleep(wait, signal);
        }
      }
    } catch (e) {
      if (e instanceof FailureSignal) throw e;
      if (signal.aborted) throw signal.reason;
      if (errCode(e) === 'UND_ERR_BODY_TIMEOUT') {
        throw new FailureSignal({ kind: 'timeout', retryable: true, url, cause: e,
          detail: `the transfer stalled: no data for ${seconds(this.timeoutMs)} after ${got} of ${length} bytes (range ${range})` });
      }
      throw new FailureSignal({ kind: 'short-body', retryable: true, url, cause: e,
        detail: `the connection closed after ${got} of ${length} bytes (range ${range}; ${errText(e)})` });
    }
    if (got < length) {
      throw new FailureSignal({ kind: 'short-body', retryable: true, url, detail: `the response ended after ${got} of ${length} bytes (range ${range})` });
    }
  }

  private recordFailure(init: WebSeedErrorInit, startedAt: number, retryAfterMs: number | undefined): WebSeedError {
    this.failureCount++;
    const now = Date.now();
    let err: WebSeedError;
    if (!init.retryable) {
      err = new WebSeedError(init);
      this.disabledBy ??= err;
    } else {
      // Concurrent fetches that started before the latest failure report the same outage: do not escalate for them.
      if (this.lastFailureAt <= startedAt || this.consecutiveFailures === 0) this.consecutiveFailures++;
      const exp = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.min(30, this.consecutiveFailures - 1));
      const delay = Math.max(exp, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
      this.backoffEnd = Math.max(this.backoffEnd, now + delay);
      err = new WebSeedError(init, { retryAt: this.backoffEnd });
    }
    this.lastFailureAt = now;
    this.lastError = err;
    return err;
  }
}

/** Internal: a classified failure on its way to recordFailure (which turns it into the public WebSeedError). */
class FailureSignal extends Error {
  constructor(readonly init: WebSeedErrorInit, readonly retryAfterMs?: number) { super(init.detail); }
}

function statusFailure(status: number, url: string, range: string, fileLength: number, contentRange: string | undefined): WebSeedErrorInit {
  if (status === 404) return { kind: 'not-found', retryable: false, url, status, detail: '404 Not Found: the server does not have this file (check the url-list entry)' };
  if (status === 410) return { kind: 'gone', retryable: false, url, status, detail: '410 Gone: the file was removed from the server' };
  if (status === 416) {
    const size = contentRange !== undefined ? /\/(\d+)\s*$/.exec(contentRange)?.[1] : undefined;
    return { kind: 'range-not-satisfiable', retryable: false, url, status,
      detail: `416 Range Not Satisfiable for ${range}: the server's file is ${size !== undefined ? `${size} bytes` : 'shorter than that'} but the torrent says ${fileLength} (a different version of the file?)` };
  }
  if (status >= 500 && status < 600) return { kind: 'server-error', retryable: true, url, status, detail: `server error ${status}${reason(status)}` };
  const retryable = status === 408 || status === 429;
  return { kind: 'bad-status', retryable, url, status, detail: `unexpected HTTP status ${status}${reason(status)} for ${range}` };
}

function requestFailure(e: unknown, url: string, timeoutMs: number): WebSeedErrorInit {
  const code = errCode(e);
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'timeout', retryable: true, url, cause: e, detail: `no response within ${seconds(timeoutMs)}` };
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return { kind: 'timeout', retryable: true, url, cause: e, detail: `could not connect within ${seconds(timeoutMs)}` };
  if (code !== undefined && TLS_CERT_CODES.has(code)) {
    return { kind: 'network', retryable: false, url, cause: e, detail: `TLS certificate rejected (${code}: ${errText(e)})` };
  }
  const what = code === 'ECONNREFUSED' ? 'connection refused'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'host name not found'
      : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'connection closed by the server before it answered'
        : 'network error';
  return { kind: 'network', retryable: true, url, cause: e, detail: `${what} (${errText(e)})` };
}

const TLS_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_REVOKED', 'CERT_UNTRUSTED',
]);

/** The standard reason phrase (Node's own table), for messages such as "server error 503 Service Unavailable". */
function reason(status: number): string { const r = STATUS_CODES[status]; return r ? ` ${r}` : ''; }

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unparsable. */
function parseRetryAfter(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** Read a small error body so the connection can be reused; a large one closes it instead. */
async function dump(body: { dump(opts?: { limit?: number }): Promise<void> }): Promise<void> {
  await body.dump({ limit: DUMP_LIMIT }).catch(() => {});
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(signal.reason); return; }
    const onAbort = (): void => { clearTimeout(t); reject(signal.reason); };
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  if (typeof c === 'string') return c;
  const cause = (e as { cause?: unknown } | null)?.cause;
  const cc = (cause as { code?: unknown } | null)?.code;
  return typeof cc === 'string' ? cc : undefined;
}

function errText(e: unknown): string { return e instanceof Error ? e.message : String(e); }

function seconds(ms: number): string { return ms < 1000 ? `${ms} ms` : `${ms / 1000} s`; }

function positiveInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v <= 0) throw new ShoalError('EUSAGE', `web seed option ${name} must be a positive integer, got ${v}`);
  return v;
}

function nonNegInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0) throw new ShoalError('EUSAGE', `web seed option ${name} must be a non-negative integer, got ${v}`);
  return v;
}
