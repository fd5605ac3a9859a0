import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { decodeCompactPeers4, decodeCompactPeers6, ipv6ToBytes, isValidPort } from './compact.js';
import {
  sanitizeTrackerText, trackerError, trackerLabel,
  type AnnounceParams, type AnnounceResult, type ScrapeResult,
} from './types.js';

/**
 * BEP 15 retransmits after 15·2^n s for n up to 8, i.e. an hour of retrying. That suits a daemon, not a CLI
 * waiting for its first peers, so the base and the number of tries are options. Defaults: 3 s base, 3 tries
 * (3 + 6 + 12 s: a dead tracker is given up on after about 21 s). Pass baseTimeoutMs 15000, maxTries 9 for the
 * spec's schedule.
 */
export interface UdpTrackerOptions {
  baseTimeoutMs?: number;
  maxTries?: number;
  /** How long a connection id is reused; BEP 15 allows one minute. */
  connectionTtlMs?: number;
}

export interface UdpRequestOptions { signal?: AbortSignal }

const PROTOCOL_ID = 0x41727101980n;
const ACTION_CONNECT = 0, ACTION_ANNOUNCE = 1, ACTION_SCRAPE = 2, ACTION_ERROR = 3;
const EVENT_CODE = { completed: 1, started: 2, stopped: 3 } as const;
/** BEP 15: "up to about 74 torrents can be scraped at once". */
const SCRAPE_BATCH = 74;

interface Target { ip: string; port: number; family: 4 | 6; label: string }

interface Pending {
  target: Target;
  action: number;
  minLength: number;
  resolve: (msg: Buffer) => void;
  reject: (e: Error) => void;
}

class Timeout extends Error {}

/** rinfo gives canonical IPv6 text; the URL may have spelled the same address differently. */
function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  if (isIP(a) !== 6 || isIP(b) !== 6) return false;
  try { return ipv6ToBytes(a).equals(ipv6ToBytes(b)); } catch { return false; }
}

function u64(v: number): bigint {
  return BigInt(Math.max(0, Math.floor(Number.isFinite(v) ? v : 0)));
}

export class UdpTrackerClient {
  private readonly baseTimeoutMs: number;
  private readonly maxTries: number;
  private readonly ttlMs: number;
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly connections = new Map<string, { id: Buffer; expires: number }>();
  private readonly defaultKey = randomInt(0, 0x100000000);
  private closed = false;

  constructor(opts: UdpTrackerOptions = {}) {
    this.baseTimeoutMs = opts.baseTimeoutMs ?? 3000;
    this.maxTries = Math.max(1, opts.maxTries ?? 3);
    this.ttlMs = opts.connectionTtlMs ?? 60_000;
  }

  async announce(url: string, params: AnnounceParams, opts: UdpRequestOptions = {}): Promise<AnnounceResult> {
    const target = await this.resolve(url);
    const msg = await this.transact(target, ACTION_ANNOUNCE, 20, (conn, txn) => {
      const b = Buffer.alloc(98);
      conn.copy(b, 0);
      b.writeUInt32BE(ACTION_ANNOUNCE, 8);
      b.writeUInt32BE(txn, 12);
      params.infoHash.copy(b, 16, 0, 20);
      params.peerId.copy(b, 36, 0, 20);
      b.writeBigUInt64BE(u64(params.downloaded), 56);
      b.writeBigUInt64BE(u64(params.left), 64);
      b.writeBigUInt64BE(u64(params.uploaded), 72);
      b.writeUInt32BE(params.event ? EVENT_CODE[params.event] : 0, 80);
      // IP address field stays 0: trackers use the packet's source address.
      b.writeUInt32BE((params.key ?? this.defaultKey) >>> 0, 88);
      b.writeInt32BE(params.numwant === undefined ? -1 : Math.max(0, Math.min(0x7fffffff, Math.floor(params.numwant))), 92);
      b.writeUInt16BE(params.port & 0xffff, 96);
      return b;
    }, opts.signal);
    const body = msg.subarray(20);
    // BEP 15: the peer format follows the address family the packet travelled over.
    const peers = target.family === 6 ? decodeCompactPeers6(body) : decodeCompactPeers4(body);
    return { interval: msg.readUInt32BE(8), incomplete: msg.readUInt32BE(12), complete: msg.readUInt32BE(16), peers };
  }

  async scrape(url: string, infoHashes: Buffer[], opts: UdpRequestOptions = {}): Promise<ScrapeResult> {
    const target = await this.resolve(url);
    const out: ScrapeResult = new Map();
    for (let i = 0; i < infoHashes.length; i += SCRAPE_BATCH) {
      const batch = infoHashes.slice(i, i + SCRAPE_BATCH);
      const msg = await this.transact(target, ACTION_SCRAPE, 8 + 12 * batch.length, (conn, txn) => {
        const b = Buffer.alloc(16 + 20 * batch.length);
        conn.copy(b, 0);
        b.writeUInt32BE(ACTION_SCRAPE, 8);
        b.writeUInt32BE(txn, 12);
        batch.forEach((h, j) => h.copy(b, 16 + 20 * j, 0, 20));
        return b;
      }, opts.signal);
      batch.forEach((h, j) => {
        const o = 8 + 12 * j;
        out.set(h.toString('hex'), {
          complete: msg.readUInt32BE(o), downloaded: msg.readUInt32BE(o + 4), incomplete: msg.readUInt32BE(o + 8),
        });
      });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) p.reject(trackerError(p.target.label, 'UDP tracker client closed'));
    this.pending.clear();
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets.clear();
  }

  private async resolve(url: string): Promise<Target> {
    const label = trackerLabel(url);
    if (this.closed) throw trackerError(label, 'UDP tracker client closed');
    let u: URL;
    try { u = new URL(url); } catch { throw trackerError(label, 'not a valid URL'); }
    if (u.protocol !== 'udp:') throw trackerError(label, `not a udp:// URL`);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(u.port);
    if (!host || !isValidPort(port)) throw trackerError(label, 'UDP tracker URL needs a host and a port');
    const fam = isIP(host);
    if (fam === 4 || fam === 6) return { ip: host, port, family: fam, label };
    try {
      const r = await lookup(host);
      return { ip: r.address, port, family: r.family === 6 ? 6 : 4, label };
    } catch (e) {
      throw trackerError(label, `cannot resolve ${host}: ${(e as Error).message}`, e);
    }
  }

  private socket(family: 4 | 6): dgram.Socket {
    let s = this.sockets.get(family);
    if (s) return s;
    s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    s.on('error', (e) => {
      for (const [txn, p] of this.pending) {
        if (p.target.family !== family) continue;
        this.pending.delete(txn);
        p.reject(trackerError(p.target.label, `UDP socket error: ${e.message}`, e));
      }
    });
    // Pending requests hold their own timers; an idle client must not keep the process alive.
    s.unref();
    this.sockets.set(family, s);
    return s;
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 8) return;
    const txn = msg.readUInt32BE(4);
    const p = this.pending.get(txn);
    // Unknown transaction ids and packets from other addresses are stray or spoofed: ignore them.
    if (!p || rinfo.port !== p.target.port || !sameAddress(rinfo.address, p.target.ip)) return;
    this.pending.delete(txn);
    const action = msg.readUInt32BE(0);
    if (action === ACTION_ERROR) {
      p.reject(trackerError(p.target.label, `"${sanitizeTrackerText(msg.subarray(8).toString('utf8'))}"`));
    } else if (action !== p.action) {
      p.reject(trackerError(p.target.label, `malformed response: action ${action}, expected ${p.action}`));
    } else if (msg.length < p.minLength) {
      p.reject(trackerError(p.target.label, `truncated response: ${msg.length} bytes, expected at least ${p.minLength}`));
    } else {
      p.resolve(msg);
    }
  }

  private newTxn(): number {
    for (;;) {
      const t = randomInt(0, 0x100000000);
      if (!this.pending.has(t)) return t;
    }
  }

  private exchange(target: Target, packet: Buffer, txn: number, action: number, minLength: number,
    timeoutMs: number, signal: AbortSignal | undefined): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.pending.get(txn) === entry) this.pending.delete(txn);
      };
      const onAbort = (): void => { done(); reject(trackerError(target.label, 'request aborted', signal?.reason)); };
      const entry: Pending = {
        target, action, minLength,
        resolve: (m) => { done(); resolve(m); },
        reject: (e) => { done(); reject(e); },
      };
      if (signal?.aborted) { onAbort(); return; }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(txn, entry);
      timer = setTimeout(() => { done(); reject(new Timeout()); }, timeoutMs);
      this.socket(target.family).send(packet, target.port, target.ip, (err) => {
        if (err) entry.reject(trackerError(target.label, `send failed: ${err.message}`, err));
      });
    });
  }

  /** Connect if needed, then send the request, retransmitting with exponential back-off. */
  private async transact(target: Target, action: number, minLength: number,
    build: (connId: Buffer, txn: number) => Buffer, signal: AbortSignal | undefined): Promise<Buffer> {
    const key = `${target.ip}|${target.port}`;
    let timeouts = 0;
    // A freshly obtained id is used at once even if the TTL is tiny, so connect can never loop by itself.
    let fresh: Buffer | undefined;
    for (;;) {
      if (this.closed) throw trackerError(target.label, 'UDP tracker client closed');
      const timeoutMs = this.baseTimeoutMs * 2 ** timeouts;
      const cached = this.connections.get(key);
      const connId = fresh ?? (cached !== undefined && cached.expires > Date.now() ? cached.id : undefined);
      fresh = undefined;
      const txn = this.newTxn();
      try {
        if (!connId) {
          const req = Buffer.alloc(16);
          req.writeBigUInt64BE(PROTOCOL_ID, 0);
          req.writeUInt32BE(ACTION_CONNECT, 8);
          req.writeUInt32BE(txn, 12);
          const res = await this.exchange(target, req, txn, ACTION_CONNECT, 16, timeoutMs, signal);
          fresh = Buffer.from(res.subarray(8, 16));
          this.connections.set(key, { id: fresh, expires: Date.now() + this.ttlMs });
          continue;
        }
        return await this.exchange(target, build(connId, txn), txn, action, minLength, timeoutMs, signal);
      } catch (e) {
        if (!(e instanceof Timeout)) {
          // An error packet may mean the tracker forgot our connection id (e.g. it restarted).
          this.connections.delete(key);
          throw e;
        }
        // Silence after a request is also what a tracker does with a stale connection id: reconnect next time.
        if (connId) this.connections.delete(key);
        if (++timeouts >= this.maxTries) {
          throw trackerError(target.label, `no response after ${timeouts} tries (${connId ? 'request' : 'connect'} timed out)`);
        }
      }
    }
  }
}

/** One-shot announce with its own socket. Long-lived callers should keep a UdpTrackerClient instead. */
export async function announceUdp(url: string, params: AnnounceParams,
  opts: UdpTrackerOptions & UdpRequestOptions = {}): Promise<AnnounceResult> {
  const c = new UdpTrackerClient(opts);
  try { return await c.announce(url, params, opts); } finally { await c.close(); }
}

export async function scrapeUdp(url: string, infoHashes: Buffer[],
  opts: UdpTrackerOptions & UdpRequestOptions = {}): Promise<ScrapeResult> {
  const c = new UdpTrackerClient(opts);
  try { return await c.scrape(url, infoHashes, opts); } finally { await c.close(); }
}
