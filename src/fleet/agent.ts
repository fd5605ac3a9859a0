import { spawn } from 'node:child_process';
import { randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { Client, type Torrent } from '../engine/index.js';
import type { ClientOptions } from '../engine/types.js';
import { parsePeerAddress } from '../discovery/compact.js';
import { parseTorrent, type Metainfo } from '../metainfo/index.js';
import { ShoalError } from '../util/errors.js';
import { ControllerApi, EventStream } from './api-client.js';
import { planPrune } from './disk.js';
import { parseManifest, verifyManifest, checkName } from './signing.js';
import { writeAtomic } from './store.js';
import type { AgentReleaseStatus, AgentReport, Release, ReleaseState, StragglerReason } from './types.js';

export interface AgentOptions {
  controller: string;
  token?: string;
  /** Releases go to <dir>/<channel>/<version>/, `current` is <dir>/<channel>/current. */
  dir: string;
  channels: string[];
  zone?: string;
  rack?: string;
  /** Name shown on the dashboard; default the machine's host name. */
  name?: string;
  /** Releases kept per channel (current included). Default 2. */
  keep?: number;
  /** Bytes all kept releases may take. */
  maxDisk?: number;
  /** Shell command run after `current` switched, with SHOAL_CHANNEL, SHOAL_VERSION and SHOAL_PATH set. */
  onRelease?: string;
  /** Refuse releases whose manifest this key did not sign. */
  trust?: KeyObject;
  client?: ClientOptions;
  /** Loopback port of the local status API; undefined = none, 0 = any. */
  apiPort?: number;
  /** Milliseconds between reports while something downloads (idle: 5×). Default 1000. */
  reportMs?: number;
}

/** One release this agent holds or held, persisted in <dir>/.shoal-agent/state.json. */
interface Local {
  channel: string;
  version: string;
  /** Arrival order on this agent: higher is newer. */
  seq: number;
  infoHash: string;
  size: number;
  torrent: string;
  origin?: string;
  state: ReleaseState;
  startedAt?: number;
  doneAt?: number;
  switchedAt?: number;
  hookExit?: number | null;
  reason?: StragglerReason;
  error?: string;
}

interface Live {
  torrent: Torrent;
  peakDown: number;
  peakUp: number;
  /** Per remote IP: payload bytes last seen on its connection (to add deltas across reconnects). */
  lastByPeer: Map<string, number>;
  fromOrigin: number;
  fromOthers: number;
  noPeersSince?: number;
}

const HOOK_TIMEOUT_MS = 10 * 60_000;
const REPORTED_RELEASES = 20;

/**
 * A host's agent: follows the controller's release stream for its channels, downloads each release with the
 * BitTorrent engine, switches `current` atomically, runs the hook, reports, and keeps seeding what it keeps.
 * It keeps seeding while the controller is down and picks up where it left after a restart.
 */
export class FleetAgent extends EventEmitter {
  private readonly api: ControllerApi;
  private readonly client: Client;
  private readonly stateDir: string;
  private id = '';
  private locals: Local[] = [];
  private readonly live = new Map<string, Live>();
  private events: EventStream | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private sampleTimer: NodeJS.Timeout | undefined;
  private statusServer: Server | undefined;
  private connected = false;
  private lastReportError: string | undefined;
  private closed = false;
  /** Serialises release handling so two events never race on one channel's folders. */
  private queue: Promise<void> = Promise.resolve();
  private reportPending = false;

  constructor(private readonly opts: AgentOptions) {
    super();
    for (const c of opts.channels) checkName('channel', c);
    if (opts.channels.length === 0) throw new ShoalError('EUSAGE', 'agent needs at least one --channel');
    this.api = new ControllerApi(opts.controller, opts.token);
    this.client = new Client({ dht: false, lsd: false, ...opts.client });
    this.stateDir = join(opts.dir, '.shoal-agent');
    this.client.on('error', (err: Error) => this.emit('warning', `client: ${err.message}`));
  }

  get agentId(): string { return this.id; }
  get peerPort(): number { return this.client.port; }
  get apiPort(): number { return this.statusServer ? (this.statusServer.address() as AddressInfo).port : 0; }

  async start(): Promise<void> {
    await mkdir(join(this.stateDir, 'resume'), { recursive: true });
    await this.loadState();
    await this.client.listen();
    // What was kept or half-downloaded before a restart: seed it again, resume it.
    for (const l of this.locals) {
      if (l.state === 'done' || l.state === 'downloading' || l.state === 'pending') {
        await this.startTorrent(l).catch((err: Error) => this.markFailed(l, err));
      }
    }
    if (this.opts.apiPort !== undefined) await this.startStatusApi(this.opts.apiPort);
    const url = new URL('/api/events?topics=releases', this.api.base);
    this.events = new EventStream(url, (e) => this.onEvent(e.event, e.data), {
      onOpen: () => { this.connected = true; this.emit('connected'); this.scheduleReport(0); },
      onDown: (why) => { if (this.connected) this.emit('disconnected', why); this.connected = false; },
    });
    this.sampleTimer = setInterval(() => this.sample(), 500);
    this.sampleTimer.unref();
    this.scheduleReport(0);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.events?.close();
    if (this.reportTimer) clearTimeout(this.reportTimer);
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    // A running hook may take minutes; stopping waits a little for it, then leaves it to finish on its own.
    await Promise.race([this.queue.catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    await new Promise<void>((r) => (this.statusServer ? this.statusServer.close(() => r()) : r()));
    await this.saveState().catch(() => undefined);
    await this.client.close();
  }

  /** What the local status API and the report show. */
  status(): AgentReport & { id: string; controllerConnected: boolean; lastReportError?: string } {
    return { id: this.id, controllerConnected: this.connected, ...(this.lastReportError ? { lastReportError: this.lastReportError } : {}), ...this.report() };
  }

  private async loadState(): Promise<void> {
    try {
      const s = JSON.parse(await readFile(join(this.stateDir, 'state.json'), 'utf8')) as { id: string; releases: Local[] };
      this.id = s.id;
      this.locals = Array.isArray(s.releases) ? s.releases : [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.emit('warning', `agent state unreadable (${(e as Error).message}); starting afresh`);
    }
    if (!this.id) this.id = `${(this.opts.name ?? hostname()).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60)}-${randomBytes(4).toString('hex')}`;
    await this.saveState();
  }

  private saveState(): Promise<void> {
    return writeAtomic(join(this.stateDir, 'state.json'), JSON.stringify({ id: this.id, releases: this.locals }));
  }

  private onEvent(event: string, data: string): void {
    if (event === 'hello') {
      const d = JSON.parse(data) as { releases: Release[] };
      for (const r of d.releases) this.enqueue(r);
    } else if (event === 'release') {
      this.enqueue(JSON.parse(data) as Release);
    }
  }

  private enqueue(r: Release): void {
    if (!this.opts.channels.includes(r.channel)) return;
    this.queue = this.queue.then(() => this.onRelease(r)).catch((err: Error) => { this.emit('warning', `release ${r.channel}/${r.version}: ${err.message}`); });
  }

  private async onRelease(r: Release): Promise<void> {
    if (this.closed) return;
    // Only a channel's newest release is ever sent (hello, then each new one), so arrival order is release order; it
    // also holds when a controller that kept no state starts its own numbering again.
    if (this.locals.some((l) => l.channel === r.channel && l.version === r.version)) return;
    const l: Local = {
      channel: r.channel, version: r.version, seq: this.locals.reduce((m, x) => Math.max(m, x.seq), 0) + 1, infoHash: r.infoHash, size: r.size, torrent: r.torrent, state: 'pending',
      startedAt: Date.now(), ...(r.origin ? { origin: r.origin } : {}),
    };
    this.locals.push(l);
    try {
      checkName('version', r.version);
      const manifest = parseManifest(r.manifest);
      const meta = parseTorrent(Buffer.from(r.torrent, 'base64'));
      if (manifest.channel !== r.channel || manifest.version !== r.version || manifest.infoHash !== meta.infoHashHex) {
        throw Object.assign(new ShoalError('EMETAINFO', 'manifest does not match the release (channel, version or info-hash)'), { reason: 'untrusted' });
      }
      if (this.opts.trust && !verifyManifest(r.manifest, r.signature, this.opts.trust)) {
        l.state = 'refused';
        l.reason = 'untrusted';
        l.error = r.signature ? 'signature does not verify with the trusted key' : 'release is not signed and --trust is set';
        this.emit('refused', l.channel, l.version, l.error);
        await this.saveState();
        this.scheduleReport(0);
        return;
      }
      // A newer release supersedes one of the same channel still downloading.
      for (const o of this.locals) {
        if (o !== l && o.channel === r.channel && (o.state === 'downloading' || o.state === 'pending')) {
          o.state = 'superseded';
          await this.dropTorrent(o, true);
          this.emit('superseded', o.channel, o.version);
        }
      }
      const plan = planPrune(this.held().filter((h) => h.version !== l.version || h.channel !== l.channel), this.keep, this.opts.maxDisk, l.size);
      for (const h of plan.remove) await this.deleteRelease(h.channel, h.version);
      if (!plan.fits) {
        l.state = 'failed';
        l.reason = 'disk-full';
        l.error = `release needs ${l.size} bytes; the --max-disk budget of ${this.opts.maxDisk} bytes cannot hold it beside current`;
        await this.saveState();
        this.scheduleReport(0);
        return;
      }
      l.state = 'downloading';
      await this.saveState();
      this.emit('release', l.channel, l.version);
      await this.startTorrent(l, meta);
    } catch (err) {
      await this.markFailed(l, err as Error);
    }
  }

  private get keep(): number { return this.opts.keep ?? 2; }

  private held(): Parameters<typeof planPrune>[0] {
    const current = this.currentVersions();
    return this.locals.filter((l) => l.state === 'done' || l.state === 'downloading' || l.state === 'pending').map((l) => ({
      channel: l.channel, version: l.version, seq: l.seq, size: l.size,
      current: current[l.channel] === l.version, active: l.state !== 'done',
    }));
  }

  private currentVersions(): Record<string, string> {
    const c: Record<string, string> = {};
    for (const l of this.locals) if (l.switchedAt !== undefined && l.state === 'done') {
      const prev = this.locals.find((x) => x.channel === l.channel && x.version === c[l.channel]);
      if (!prev || (prev.switchedAt ?? 0) <= l.switchedAt) c[l.channel] = l.version;
    }
    return c;
  }

  private releaseDir(l: { channel: string; version: string }): string { return join(this.opts.dir, l.channel, l.version); }

  private async startTorrent(l: Local, parsed?: Metainfo): Promise<void> {
    const meta = parsed ?? parseTorrent(Buffer.from(l.torrent, 'base64'));
    await mkdir(this.releaseDir(l), { recursive: true });
    const peers = [];
    if (l.origin) { try { peers.push(parsePeerAddress(l.origin)); } catch { /* a bad hint is only a hint */ } }
    const torrent = await this.client.add(meta, {
      path: this.releaseDir(l), seed: true, peers,
      resumeFile: join(this.stateDir, 'resume', `${meta.infoHashHex}.resume`),
      // The controller's tracker as this agent reaches it, in case the torrent names it differently.
      announce: [[this.api.announceUrl]],
    });
    const live: Live = { torrent, peakDown: 0, peakUp: 0, lastByPeer: new Map(), fromOrigin: 0, fromOthers: 0 };
    this.live.set(`${l.channel}/${l.version}`, live);
    torrent.on('error', (err: Error) => { void this.markFailed(l, err); });
    torrent.on('warning', (m: string) => this.emit('warning', `${l.channel}/${l.version}: ${m}`));
    const finish = (): void => { this.sampleOne(l, live); this.queue = this.queue.then(() => this.completed(l)).catch((e: Error) => this.markFailed(l, e)); };
    if (torrent.done) finish();
    else torrent.once('done', finish);
  }

  private async completed(l: Local): Promise<void> {
    if (l.state !== 'downloading' && l.state !== 'pending') return;
    l.doneAt ??= Date.now();
    // Only the newest release of a channel becomes current (an older one may finish after a newer was announced).
    const newer = this.locals.some((o) => o.channel === l.channel && o.seq > l.seq && o.state !== 'refused' && o.state !== 'failed');
    l.state = 'done';
    if (!newer) {
      await this.switchCurrent(l);
      l.switchedAt = Date.now();
      this.emit('switched', l.channel, l.version);
      await this.saveState();
      this.scheduleReport(0);
      if (this.opts.onRelease) {
        l.hookExit = await this.runHook(l);
        if (l.hookExit !== 0) { l.reason = 'hook-failed'; l.error = `--on-release exited with ${l.hookExit === null ? 'a signal or timeout' : l.hookExit}`; }
        this.emit('hook', l.channel, l.version, l.hookExit);
      }
    }
    const plan = planPrune(this.held(), this.keep, this.opts.maxDisk, 0);
    for (const h of plan.remove) await this.deleteRelease(h.channel, h.version);
    await this.saveState();
    this.scheduleReport(0);
  }

  /** `current` → <version>, replaced with rename(2) so a reader sees the old or the new release, never neither. */
  private async switchCurrent(l: Local): Promise<void> {
    const chDir = join(this.opts.dir, l.channel);
    const tmp = join(chDir, `.current-${randomBytes(4).toString('hex')}`);
    await symlink(l.version, tmp, 'dir');
    try { await rename(tmp, join(chDir, 'current')); } catch (e) { await unlink(tmp).catch(() => undefined); throw e; }
  }

  private runHook(l: Local): Promise<number | null> {
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', this.opts.onRelease!], {
        cwd: this.releaseDir(l), stdio: ['ignore', 2, 2],
        env: { ...process.env, SHOAL_CHANNEL: l.channel, SHOAL_VERSION: l.version, SHOAL_PATH: this.releaseDir(l) },
      });
      const timer = setTimeout(() => { if (child.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, HOOK_TIMEOUT_MS);
      child.once('error', () => { clearTimeout(timer); resolve(127); });
      child.once('exit', (code) => { clearTimeout(timer); resolve(code); });
    });
  }

  private async dropTorrent(l: Local, deleteData: boolean): Promise<void> {
    const key = `${l.channel}/${l.version}`;
    const live = this.live.get(key);
    this.live.delete(key);
    if (live) await this.client.remove(live.torrent);
    if (deleteData) {
      const cur = await readlink(join(this.opts.dir, l.channel, 'current')).catch(() => undefined);
      if (cur === l.version) return; // never delete what `current` points at
      await rm(this.releaseDir(l), { recursive: true, force: true });
      await rm(join(this.stateDir, 'resume', `${l.infoHash}.resume`), { force: true });
    }
  }

  private async deleteRelease(channel: string, version: string): Promise<void> {
    const l = this.locals.find((x) => x.channel === channel && x.version === version);
    if (!l) return;
    await this.dropTorrent(l, true);
    this.locals = this.locals.filter((x) => x !== l);
    this.emit('deleted', channel, version);
  }

  private async markFailed(l: Local, err: Error): Promise<void> {
    const code = (err as NodeJS.ErrnoException).code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
    const full = code === 'ENOSPC' || code === 'EDQUOT' || /ENOSPC|EDQUOT|no space|disk full/i.test(err.message);
    l.state = (err as { reason?: string }).reason === 'untrusted' ? 'refused' : 'failed';
    l.reason = full ? 'disk-full' : ((err as { reason?: StragglerReason }).reason ?? 'error');
    l.error = err.message.slice(0, 400);
    this.emit('failed', l.channel, l.version, l.error);
    const live = this.live.get(`${l.channel}/${l.version}`);
    if (live) { this.live.delete(`${l.channel}/${l.version}`); await this.client.remove(live.torrent).catch(() => undefined); }
    // A partial download that filled the disk would keep it full for the next release: free it (never `current`).
    if (full) await this.dropTorrent(l, true).catch(() => undefined);
    await this.saveState().catch(() => undefined);
    this.scheduleReport(0);
  }

  /** Rates, peaks, and which bytes came from the origin vs other agents (by the origin's IP). */
  private sample(): void {
    for (const l of this.locals) {
      const live = this.live.get(`${l.channel}/${l.version}`);
      if (live) this.sampleOne(l, live);
    }
  }

  private sampleOne(l: Local, live: Live): void {
    const s = live.torrent.stats();
    live.peakDown = Math.max(live.peakDown, s.downloadRate);
    live.peakUp = Math.max(live.peakUp, s.uploadRate);
    // The origin is known by its listen address: an exact match catches our connections to it; its IP alone also
    // catches its connections to us, but only where hosts have their own addresses (not all on loopback).
    const originIp = l.origin ? l.origin.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1') : undefined;
    const byIp = originIp !== undefined && !originIp.startsWith('127.') && originIp !== '::1';
    for (const p of live.torrent.peerStats()) {
      const key = p.address;
      const last = live.lastByPeer.get(key) ?? 0;
      const delta = p.downloaded >= last ? p.downloaded - last : p.downloaded;
      live.lastByPeer.set(key, p.downloaded);
      const ip = key.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
      if (key === l.origin || (byIp && ip === originIp)) live.fromOrigin += delta;
      else live.fromOthers += delta;
    }
    if (l.state === 'downloading' && s.peers === 0) live.noPeersSince ??= Date.now();
    else delete live.noPeersSince;
  }

  private report(): AgentReport {
    const now = Date.now();
    const releases: AgentReleaseStatus[] = this.locals.slice(-REPORTED_RELEASES).map((l) => {
      const live = this.live.get(`${l.channel}/${l.version}`);
      const s = live?.torrent.stats();
      const extra = s as unknown as { fromWebSeeds?: number } | undefined;
      let reason = l.reason;
      if (!reason && live?.noPeersSince !== undefined && now - live.noPeersSince > 3000) reason = 'no-peers';
      return {
        channel: l.channel, version: l.version, state: l.state,
        progress: s ? s.progress : l.state === 'done' ? 1 : 0,
        downloaded: s?.downloaded ?? 0, uploaded: s?.uploaded ?? 0,
        downloadRate: s?.downloadRate ?? 0, uploadRate: s?.uploadRate ?? 0,
        peakDownloadRate: live?.peakDown ?? 0, peakUploadRate: live?.peakUp ?? 0, peers: s?.peers ?? 0,
        fromPeers: live?.fromOthers ?? 0, fromOrigin: live?.fromOrigin ?? 0, fromWebSeeds: extra?.fromWebSeeds ?? 0,
        ...(s ? { wasted: s.wasted } : {}),
        ...(l.startedAt !== undefined ? { startedAt: l.startedAt } : {}),
        ...(l.doneAt !== undefined ? { doneAt: l.doneAt } : {}),
        ...(l.switchedAt !== undefined ? { switchedAt: l.switchedAt } : {}),
        ...(l.hookExit !== undefined ? { hookExit: l.hookExit } : {}),
        ...(reason !== undefined ? { reason } : {}),
        ...(l.error !== undefined ? { error: l.error } : {}),
      };
    });
    const used = this.held().reduce((n, h) => n + h.size, 0);
    return {
      host: this.opts.name ?? hostname(), addresses: addresses(this.opts.client?.host), channels: this.opts.channels,
      peerPort: this.client.port, current: this.currentVersions(), releases,
      ...(this.opts.zone !== undefined ? { zone: this.opts.zone } : {}),
      ...(this.opts.rack !== undefined ? { rack: this.opts.rack } : {}),
      disk: { used, ...(this.opts.maxDisk !== undefined ? { budget: this.opts.maxDisk } : {}) },
    };
  }

  private scheduleReport(delayMs: number): void {
    if (this.closed) return;
    if (this.reportTimer && delayMs > 0) return;
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.reportTimer = setTimeout(() => { this.reportTimer = undefined; void this.sendReport(); }, delayMs);
  }

  private async sendReport(): Promise<void> {
    if (this.reportPending) { this.scheduleReport(200); return; }
    this.reportPending = true;
    try {
      await this.api.post(`/api/agents/${encodeURIComponent(this.id)}/report`, this.report(), 5000);
      if (this.lastReportError) this.emit('reported');
      this.lastReportError = undefined;
    } catch (err) {
      if (this.lastReportError === undefined) this.emit('warning', `report failed: ${(err as Error).message}`);
      this.lastReportError = (err as Error).message;
    } finally {
      this.reportPending = false;
    }
    const busy = this.locals.some((l) => l.state === 'downloading' || l.state === 'pending');
    const base = this.opts.reportMs ?? 1000;
    this.scheduleReport(busy ? base : base * 5);
  }

  private async startStatusApi(port: number): Promise<void> {
    const server = createServer((req, res) => {
      const body = JSON.stringify(req.url === '/' || req.url === '/status' ? this.status() : { error: 'not found; GET /status' });
      res.writeHead(req.url === '/' || req.url === '/status' ? 200 : 404, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new ShoalError('EUSAGE', `--api-port ${port}: ${e.code ?? e.message}`)));
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.statusServer = server;
  }
}

function addresses(bound?: string): string[] {
  const out: string[] = [];
  if (bound && bound !== '0.0.0.0' && bound !== '::') out.push(bound);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') out.push(a.address);
  return [...new Set(out)].slice(0, 8);
}
