import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ShoalError } from '../util/errors.js';

/** Small JSON client for the controller's API (node:http: no global agent pooling surprises, explicit timeouts). */
export class ControllerApi {
  readonly base: URL;
  constructor(url: string, private readonly token?: string) {
    let u: URL;
    try { u = new URL(url); } catch { throw new ShoalError('EUSAGE', `--controller: "${url}" is not a URL (e.g. http://10.0.0.5:7070)`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ShoalError('EUSAGE', `--controller must be an http(s) URL, got ${u.protocol}`);
    this.base = u;
  }

  get announceUrl(): string { return new URL('/announce', this.base).toString(); }

  async get<T>(path: string, timeoutMs = 10_000): Promise<T> {
    return this.call<T>('GET', path, undefined, timeoutMs);
  }

  async post<T>(path: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    return this.call<T>('POST', path, body, timeoutMs);
  }

  private call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const u = new URL(path, this.base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      if (payload) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = payload.length; }
      if (this.token) headers['Authorization'] = `Bearer ${this.token}`;
      const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => { n += c.length; if (n <= 64 * 1024 * 1024) chunks.push(c); else res.destroy(); });
        res.on('error', (e) => reject(new ShoalError('ETRACKER', `controller: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let data: unknown;
          try { data = text ? JSON.parse(text) : undefined; } catch { data = undefined; }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(data as T);
          else reject(new ApiError(status, (data as { error?: string } | undefined)?.error ?? `HTTP ${status}`));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(new ShoalError('ETRACKER', `controller ${this.base.origin} unreachable: ${e.code ?? e.message}`)));
      req.end(payload);
    });
  }
}

export class ApiError extends ShoalError {
  constructor(readonly status: number, message: string) {
    super(status === 401 || status === 400 || status === 409 || status === 413 ? 'EUSAGE' : 'ETRACKER', `controller refused (${status}): ${message}`);
  }
}

export interface SseEvent { event: string; data: string }

/**
 * Follows a server-sent event stream, reconnecting with capped exponential back-off (0.5 s … 10 s, with jitter)
 * whenever it drops; `onOpen`/`onDown` tell the owner. Stops on `close()`.
 */
export class EventStream {
  private req: ClientRequest | undefined;
  private closed = false;
  private delay = 500;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: URL,
    private readonly onEvent: (e: SseEvent) => void,
    private readonly hooks: { onOpen?: () => void; onDown?: (why: string) => void } = {},
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const req = (this.url.protocol === 'https:' ? httpsRequest : httpRequest)(this.url, { headers: { Accept: 'text/event-stream' } }, (res) => this.onResponse(res));
    this.req = req;
    // No bytes for longer than two heartbeats means a dead connection (the controller pings every 15 s).
    req.setTimeout(40_000, () => req.destroy(new Error('event stream silent for 40 s')));
    req.on('error', (e: NodeJS.ErrnoException) => this.retry(e.code ?? e.message));
    req.end();
  }

  private onResponse(res: IncomingMessage): void {
    if (res.statusCode !== 200) { res.resume(); this.retry(`HTTP ${res.statusCode}`); return; }
    this.delay = 500;
    this.hooks.onOpen?.();
    res.setEncoding('utf8');
    let buf = '';
    res.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 32 * 1024 * 1024) { res.destroy(); return; }
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) {
          try { this.onEvent({ event, data: data.join('\n') }); } catch { /* a bad event must not kill the stream */ }
        }
      }
    });
    res.on('end', () => this.retry('stream ended'));
    res.on('error', (e) => this.retry(e.message));
  }

  private retry(why: string): void {
    if (this.closed || this.timer) return;
    this.req?.destroy();
    this.req = undefined;
    this.hooks.onDown?.(why);
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, 10_000);
    this.timer = setTimeout(() => { this.timer = undefined; this.connect(); }, wait);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.req?.destroy();
  }
}
