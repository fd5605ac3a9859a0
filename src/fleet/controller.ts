import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Counter, Registry } from 'prom-client';
import { lazyModule } from '../util/lazy-module.js';
import { parseTorrent } from '../metainfo/index.js';
import { TrackerServer } from '../tracker/index.js';
import { ShoalError } from '../util/errors.js';
import { TokenCheck } from './auth.js';
import { DASHBOARD_HTML } from './dashboard.js';
import { AgentZones } from './locality.js';
import { channelView, releaseInfo } from './rollout.js';
import { checkName, parseManifest } from './signing.js';
import { RedisFleetStore } from './redis-store.js';
import { FleetStore } from './store.js';
import type { AgentRecord, AgentReport, AgentReleaseStatus, Release, ReleaseRequest } from './types.js';

export interface ControllerOptions {
  /** Bind address; default 127.0.0.1. */
  host?: string;
  /** 0 = any free port. */
  httpPort?: number;
  /** Host written into URLs handed out (default: host, or the first external IPv4 for a wildcard host). */
  publicHost?: string;
  /** Folder for state.json; without it state lives in memory only. */
  stateDir?: string;
  /** Bearer tokens accepted for state-changing calls. Empty: every write is refused. */
  tokens: string[];
  /**
   * CIDR → zone/rack file for the embedded tracker's locality-aware peer lists. Without it, the tracker places each
   * agent by the `--zone`/`--rack` it reports, at the address the controller sees it at.
   */
  zones?: string;
  /** Tracker announce interval, seconds. Default 60: fleets want new releases found fast. */
  announceInterval?: number;
  /** An agent silent this long counts as offline. Default 15 s. */
  offlineMs?: number;
  /** Keep state (and the tracker's swarms) in Redis so several controllers serve one fleet; stateDir is then unused. */
  redisUrl?: string;
}

const MAX_RELEASE_BODY = 16 * 1024 * 1024;
const MAX_REPORT_BODY = 512 * 1024;
const MAX_SSE_CLIENTS = 10_000;
const HEARTBEAT_MS = 15_000;
const promClient = lazyModule<typeof import('prom-client')>('prom-client');

interface SseClient { res: ServerResponse; topics: Set<string> }

/**
 * The fleet controller: channels and releases, what every agent reports, the HTTP API and dashboard, live events
 * (server-sent), and an embedded tracker whose /announce and /scrape are served on the same port (proxied to a
 * loopback-only TrackerServer, which takes the client address from X-Forwarded-For).
 */
export class FleetController {
  readonly store: FleetStore;
  private readonly tokens: TokenCheck;
  private readonly tracker: TrackerServer;
  /** Locality from the agents' own labels; undefined when a --zones file decides. */
  private readonly agentZones: AgentZones | undefined;
  private server: Server | undefined;
  private readonly sse = new Set<SseClient>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly registry: Registry;
  private readonly reports: Counter<'result'>;
  private readonly requests: Counter<'route' | 'status'>;
  private boundPort = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.store = opts.redisUrl ? new RedisFleetStore(opts.redisUrl) : new FleetStore(opts.stateDir);
    this.agentZones = opts.zones ? undefined : new AgentZones();
    // Another instance's change reaches this instance's event streams (and its tracker's locality) too.
    this.store.onRemote = (kind, data) => {
      if (kind === 'agent') this.placeAgent(data as AgentRecord);
      if (kind === 'release') this.broadcast('release', data, 'releases');
      else if (kind === 'origin') this.broadcast('origin', { channel: (data as Release).channel, version: (data as Release).version }, 'agents');
      else this.broadcast('agent', { id: (data as AgentRecord).id, host: (data as AgentRecord).host, channels: (data as AgentRecord).channels }, 'agents');
    };
    this.tokens = new TokenCheck(opts.tokens);
    this.tracker = new TrackerServer({
      host: '127.0.0.1', httpPort: 0, udpPort: false, trustProxyHeader: true,
      interval: opts.announceInterval ?? 60, minInterval: 5,
      ...(opts.redisUrl ? { store: { redisUrl: opts.redisUrl } } : {}),
      zones: opts.zones ?? this.agentZones!,
    });
    const { Counter, Gauge, Registry } = promClient();
    this.registry = new Registry();
    this.reports = new Counter({ name: 'shoal_fleet_reports_total', help: 'Agent reports received', labelNames: ['result'] as const, registers: [this.registry] });
    this.requests = new Counter({ name: 'shoal_fleet_api_requests_total', help: 'API requests', labelNames: ['route', 'status'] as const, registers: [this.registry] });
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    new Gauge({
      name: 'shoal_fleet_hosts', help: 'Hosts per channel and rollout state of its latest release', labelNames: ['channel', 'state'] as const, registers: [this.registry],
      collect() {
        this.reset();
        for (const ch of self.channelNames()) {
          const v = self.view(ch);
          for (const [state, n] of Object.entries(v.summary)) if (state !== 'subscribed') this.set({ channel: ch, state }, n);
        }
      },
    });
    new Gauge({
      name: 'shoal_fleet_agents', help: 'Agents known, by online state', labelNames: ['state'] as const, registers: [this.registry],
      collect() {
        const now = Date.now();
        const online = self.store.agents().filter((a) => now - a.lastSeen <= self.offlineMs).length;
        this.set({ state: 'online' }, online);
        this.set({ state: 'offline' }, self.store.agents().length - online);
      },
    });
    new Gauge({ name: 'shoal_fleet_event_streams', help: 'Open server-sent event streams', registers: [this.registry], collect() { this.set(self.sse.size); } });
    new Gauge({
      name: 'shoal_fleet_releases', help: 'Releases known', registers: [this.registry],
      collect() { this.set(self.store.channels().reduce((n, c) => n + self.store.releases(c).length, 0)); },
    });
  }

  private get offlineMs(): number { return this.opts.offlineMs ?? 15_000; }

  get port(): number { return this.boundPort; }

  /** Base URL others use to reach the controller. */
  get url(): string {
    let h = this.opts.publicHost ?? this.opts.host ?? '127.0.0.1';
    if (!this.opts.publicHost && (h === '0.0.0.0' || h === '::')) h = externalIPv4() ?? '127.0.0.1';
    return `http://${h.includes(':') ? `[${h}]` : h}:${this.boundPort}`;
  }

  get announceUrl(): string { return `${this.url}/announce`; }

  async listen(): Promise<number> {
    await this.store.load();
    for (const a of this.store.agents()) this.placeAgent(a);
    await this.tracker.listen();
    const server = createServer((req, res) => { this.handle(req, res).catch((err: unknown) => this.fail(res, err)); });
    server.headersTimeout = 20_000;
    server.requestTimeout = 60_000;
    this.server = server;
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new ShoalError('EUSAGE', `controller cannot listen on ${host}:${this.opts.httpPort ?? 0}: ${e.code ?? e.message}`)));
      server.listen(this.opts.httpPort ?? 0, host, () => resolve());
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.heartbeat = setInterval(() => { for (const c of this.sse) c.res.write(': ping\n\n'); }, HEARTBEAT_MS);
    this.heartbeat.unref();
    return this.boundPort;
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const c of this.sse) c.res.end();
    this.sse.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); });
    await this.tracker.close();
    await this.store.close();
  }

  /** Channels with releases and channels agents follow (a fleet may subscribe before the first publish). */
  channelNames(): string[] {
    const names = new Set(this.store.channels());
    for (const a of this.store.agents()) for (const c of a.channels) names.add(c);
    return [...names].sort();
  }

  view(channel: string): ReturnType<typeof channelView> {
    return channelView(channel, this.store.releases(channel), this.store.agents(), { offlineMs: this.offlineMs });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/announce' || path === '/scrape') return this.proxyTracker(req, res);
    const route = (name: string, status: number): void => { this.requests.inc({ route: name, status: String(status) }); };

    if (method === 'GET' || method === 'HEAD') {
      if (path === '/' || path === '/index.html') {
        route('dashboard', 200);
        res.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store',
          'Content-Security-Policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:",
          'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer',
        });
        res.end(DASHBOARD_HTML);
        return;
      }
      if (path === '/healthz') return this.json(res, 200, { ok: true });
      if (path === '/metrics') {
        const own = await this.registry.metrics();
        const tracker = await fetchText(`http://127.0.0.1:${this.tracker.httpPort}/metrics`).catch(() => '');
        res.writeHead(200, { 'Content-Type': this.registry.contentType });
        res.end(own + tracker);
        return;
      }
      if (path === '/api/info') return this.json(res, 200, { announce: this.announceUrl, url: this.url, channels: this.channelNames() });
      if (path === '/favicon.ico') { res.writeHead(204); res.end(); return; }
      if (path === '/api/events') return this.openEvents(req, res, url);
      if (path === '/api/channels') {
        route('channels', 200);
        return this.json(res, 200, this.channelNames().map((c) => this.view(c)));
      }
      if (path === '/api/agents') return this.json(res, 200, this.store.agents());
      let m = /^\/api\/channels\/([^/]+)$/.exec(path);
      if (m) {
        const ch = decodeURIComponent(m[1]!);
        if (!this.store.releases(ch).length && !this.store.agents().some((a) => a.channels.includes(ch))) return this.json(res, 404, { error: `no channel ${ch}` });
        route('channel', 200);
        return this.json(res, 200, this.view(ch));
      }
      m = /^\/api\/channels\/([^/]+)\/releases\/([^/]+)$/.exec(path);
      if (m) {
        const r = this.store.release(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
        return r ? this.json(res, 200, r) : this.json(res, 404, { error: 'no such release' });
      }
      return this.json(res, 404, { error: 'not found' });
    }

    if (method !== 'POST') return this.json(res, 405, { error: 'method not allowed' });
    if (!this.tokens.allows(req)) {
      route('unauthorized', 401);
      res.setHeader('WWW-Authenticate', 'Bearer');
      return this.json(res, 401, { error: 'a valid "Authorization: Bearer <token>" header is required to change anything' });
    }
    if (path === '/api/releases') {
      const body = await readJson(req, MAX_RELEASE_BODY) as ReleaseRequest;
      const rel = await this.addRelease(body, req.socket.remoteAddress);
      route('release', 201);
      return this.json(res, 201, releaseInfo(rel));
    }
    let m = /^\/api\/agents\/([^/]+)\/report$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]!);
      const body = await readJson(req, MAX_REPORT_BODY);
      const rec = this.acceptReport(id, body, req.socket.remoteAddress);
      this.reports.inc({ result: 'ok' });
      this.broadcast('agent', { id: rec.id, host: rec.host, channels: rec.channels }, 'agents');
      return this.json(res, 200, { ok: true });
    }
    m = /^\/api\/channels\/([^/]+)\/releases\/([^/]+)\/origin$/.exec(path);
    if (m) {
      const body = await readJson(req, 4096) as Record<string, unknown>;
      const num = (k: string): number => (typeof body[k] === 'number' && Number.isFinite(body[k]) && (body[k] as number) >= 0 ? body[k] as number : 0);
      const ch = decodeURIComponent(m[1]!), ver = decodeURIComponent(m[2]!);
      const prev = this.store.release(ch, ver)?.originStats;
      const ok = this.store.setOriginStats(ch, ver, {
        uploaded: num('uploaded'), uploadRate: num('uploadRate'), peakUploadRate: Math.max(num('uploadRate'), prev?.peakUploadRate ?? 0), at: Date.now(),
      });
      if (ok) this.broadcast('origin', { channel: ch, version: ver }, 'agents');
      return ok ? this.json(res, 200, { ok: true }) : this.json(res, 404, { error: 'no such release' });
    }
    return this.json(res, 404, { error: 'not found' });
  }

  private async addRelease(body: ReleaseRequest, remote: string | undefined): Promise<Release> {
    if (!body || typeof body !== 'object') throw new ShoalError('EUSAGE', 'release must be a JSON object');
    const channel = checkName('channel', body.channel);
    const version = checkName('version', body.version);
    const manifest = parseManifest(body.manifest);
    if (manifest.channel !== channel || manifest.version !== version) throw new ShoalError('EUSAGE', 'manifest channel/version differ from the release\'s');
    if (typeof body.torrent !== 'string') throw new ShoalError('EUSAGE', 'torrent (base64) is required');
    const meta = parseTorrent(Buffer.from(body.torrent, 'base64'));
    if (meta.infoHashHex !== manifest.infoHash) throw new ShoalError('EUSAGE', `manifest.infoHash ${manifest.infoHash} is not the torrent's (${meta.infoHashHex})`);
    if (body.signature !== undefined && (typeof body.signature !== 'string' || Buffer.from(body.signature, 'base64').length !== 64)) {
      throw new ShoalError('EUSAGE', 'signature must be 64 bytes of base64 (Ed25519)');
    }
    let origin: string | undefined;
    const port = body.originPort;
    if (port !== undefined) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ShoalError('EUSAGE', 'originPort must be a port number');
      const host = typeof body.originHost === 'string' && body.originHost ? body.originHost : normalizeIp(remote ?? '');
      if (host) origin = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    }
    const rel = await this.store.addRelease({
      channel, version, infoHash: meta.infoHashHex, name: meta.name, size: meta.length, torrent: body.torrent, manifest: body.manifest,
      ...(body.signature ? { signature: body.signature } : {}), ...(origin ? { origin } : {}), createdAt: Date.now(),
    });
    this.broadcast('release', rel, 'releases');
    return rel;
  }

  private acceptReport(id: string, body: unknown, remote: string | undefined): AgentRecord {
    if (!/^[A-Za-z0-9._:-]{1,128}$/.test(id)) throw new ShoalError('EUSAGE', 'agent id must be 1-128 characters of A-Z a-z 0-9 . _ : -');
    const b = body as AgentReport;
    if (!b || typeof b !== 'object' || typeof b.host !== 'string' || !Array.isArray(b.channels) || !Array.isArray(b.releases)) {
      throw new ShoalError('EUSAGE', 'report needs host, channels[] and releases[]');
    }
    const str = (v: unknown, max = 256): string | undefined => (typeof v === 'string' ? v.slice(0, max) : undefined);
    const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
    const releases: AgentReleaseStatus[] = b.releases.slice(0, 200).filter((r) => r && typeof r === 'object').map((r) => ({
      channel: String(r.channel).slice(0, 64), version: String(r.version).slice(0, 64), state: r.state,
      progress: Math.min(1, Math.max(0, num(r.progress))), downloaded: num(r.downloaded), uploaded: num(r.uploaded),
      downloadRate: num(r.downloadRate), uploadRate: num(r.uploadRate), peakDownloadRate: num(r.peakDownloadRate), peakUploadRate: num(r.peakUploadRate),
      peers: num(r.peers), fromPeers: num(r.fromPeers), fromOrigin: num(r.fromOrigin), fromWebSeeds: num(r.fromWebSeeds),
      ...(r.wasted !== undefined ? { wasted: num(r.wasted) } : {}),
      ...(r.startedAt !== undefined ? { startedAt: num(r.startedAt) } : {}),
      ...(r.doneAt !== undefined ? { doneAt: num(r.doneAt) } : {}),
      ...(r.switchedAt !== undefined ? { switchedAt: num(r.switchedAt) } : {}),
      ...(r.hookExit !== undefined ? { hookExit: r.hookExit === null ? null : num(r.hookExit) } : {}),
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      ...(r.error !== undefined ? { error: String(r.error).slice(0, 500) } : {}),
    }));
    const current: Record<string, string> = {};
    for (const [k, v] of Object.entries(b.current ?? {}).slice(0, 100)) if (typeof v === 'string') current[k.slice(0, 64)] = v.slice(0, 64);
    const rec: AgentRecord = {
      id, host: b.host.slice(0, 256), addresses: (Array.isArray(b.addresses) ? b.addresses : []).slice(0, 16).map(String),
      channels: b.channels.slice(0, 100).map((c) => String(c).slice(0, 64)), peerPort: num(b.peerPort), current, releases,
      lastSeen: Date.now(),
      ...(str(b.zone, 64) !== undefined ? { zone: str(b.zone, 64)! } : {}),
      ...(str(b.rack, 64) !== undefined ? { rack: str(b.rack, 64)! } : {}),
      ...(remote ? { remoteAddress: normalizeIp(remote) } : {}),
      ...(b.disk && typeof b.disk === 'object' ? { disk: { used: num(b.disk.used), ...(b.disk.budget !== undefined ? { budget: num(b.disk.budget) } : {}) } } : {}),
    };
    this.store.putAgent(rec);
    this.placeAgent(rec);
    return rec;
  }

  /** Tells the tracker where an agent says it is (only when no --zones file decides). */
  private placeAgent(a: AgentRecord): void {
    if (this.agentZones && a.remoteAddress) this.agentZones.set(a.remoteAddress, a.zone, a.rack);
  }

  /**
   * GET /api/events: server-sent events. `?topics=releases` (what agents ask for) gets only new releases;
   * the dashboard's default gets agent reports too. The first event, `hello`, carries each channel's latest release.
   */
  private openEvents(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (this.sse.size >= MAX_SSE_CLIENTS) return this.json(res, 503, { error: 'too many event streams' });
    const topics = new Set((url.searchParams.get('topics') ?? 'releases,agents').split(','));
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    req.socket.setNoDelay(true);
    const latest = this.store.channels().map((c) => this.store.latest(c)).filter((r): r is Release => r !== undefined);
    res.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify({ releases: latest, url: this.url, announce: this.announceUrl })}\n\n`);
    const client: SseClient = { res, topics };
    this.sse.add(client);
    const drop = (): void => { this.sse.delete(client); };
    req.on('close', drop);
    res.on('error', drop);
  }

  private broadcast(event: string, data: unknown, topic: string): void {
    if (this.sse.size === 0) return;
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of this.sse) if (c.topics.has(topic)) c.res.write(text);
  }

  private proxyTracker(req: IncomingMessage, res: ServerResponse): void {
    const up = httpRequest({
      host: '127.0.0.1', port: this.tracker.httpPort, method: req.method, path: req.url,
      headers: { 'x-forwarded-for': normalizeIp(req.socket.remoteAddress ?? '') }, timeout: 10_000,
    }, (r) => {
      res.writeHead(r.statusCode ?? 502, { 'Content-Type': r.headers['content-type'] ?? 'text/plain', 'Cache-Control': 'no-store' });
      r.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    up.on('timeout', () => up.destroy());
    up.end();
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) { res.destroy(); return; }
    const e = err as Error & { status?: number };
    const status = e.status ?? (err instanceof ShoalError ? (/already has version/.test(e.message) ? 409 : 400) : 500);
    this.requests.inc({ route: 'error', status: String(status) });
    this.json(res, status, { error: status === 500 ? 'internal error' : e.message });
  }
}

class HttpError extends Error { constructor(readonly status: number, msg: string) { super(msg); } }

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const len = Number(req.headers['content-length'] ?? 0);
  if (len > max) { req.resume(); throw new HttpError(413, `body larger than ${max} bytes`); }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new HttpError(413, `body larger than ${max} bytes`);
    chunks.push(c as Buffer);
  }
  try { return JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { throw new HttpError(400, 'body is not valid JSON'); }
}

async function fetchText(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function externalIPv4(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}
