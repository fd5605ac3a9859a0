import { sourceKey } from './rate-limit.js';
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { ipv6ToBytes } from '../discovery/compact.js';
import { isLoopback, normalizeIp, type TrackerContext } from './context.js';
import {
  StoreFullError, StoreUnavailableError, isPromise, type AnnounceEvent, type AnnounceRequest, type AnnounceResult, type ScrapeEntry,
} from './swarm-store.js';

/** BEP 15 wire constants. */
const PROTOCOL_ID_HI = 0x417;
const PROTOCOL_ID_LO = 0x27101980;
const ACTION_CONNECT = 0, ACTION_ANNOUNCE = 1, ACTION_SCRAPE = 2, ACTION_ERROR = 3;
const ANNOUNCE_LEN = 98;
/** Announce plus BEP 41 options fits easily; anything larger is garbage or an attack. */
const MAX_PACKET = 2048;
const MAX_SCRAPE_HASHES = 74; // what fits in one 1500-byte packet, per BEP 15
/** A connection id minted in bucket b is accepted during buckets b and b+1: 60–120 s, as BEP 15 expects. */
const BUCKET_MS = 60_000;
const UDP_EVENTS: AnnounceEvent[] = ['none', 'completed', 'started', 'stopped'];
const ID_CACHE_MAX = 65_536;

interface CachedId { hi: number; lo: number; bucket: number }

/**
 * BEP 15 front end. Connection ids are a truncated HMAC over (address, port, time bucket) with a
 * per-process secret, so they cannot be forged and need no per-client state; a small bounded cache
 * skips recomputing the HMAC for clients that announce repeatedly.
 */
export class UdpTracker {
  private socket: Socket | undefined;
  private readonly secret: Buffer;
  private readonly idCache = new Map<number | string, CachedId>();

  constructor(private readonly ctx: TrackerContext, secret?: Buffer) {
    this.secret = secret ?? randomBytes(32);
  }

  listen(host: string, port: number): Promise<number> {
    const v6 = host.includes(':');
    const socket = createSocket({
      type: v6 ? 'udp6' : 'udp4',
      ipv6Only: v6 && host !== '::' ? true : false,
      recvBufferSize: 4 * 1024 * 1024,
      sendBufferSize: 4 * 1024 * 1024,
      // Replies always go to the numeric address a datagram came from: skip dns.lookup and its
      // nextTick hop on every send.
      lookup: literalLookup,
    });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => this.ctx.logger.error({ err }, 'tracker udp socket error'));
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve(socket.address().port);
      });
    });
  }

  close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  /** Exposed for tests: the id this server would hand `address:port` now. */
  connectionIdFor(address: string, port: number, bucket = Math.floor(Date.now() / BUCKET_MS)): Buffer {
    return createHmac('sha256', this.secret).update(`${bucket}|${port}|${normalizeIp(address)}`).digest().subarray(0, 8);
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const metrics = this.ctx.metrics;
    if (msg.length < 16 || msg.length > MAX_PACKET) { metrics.drop('udp', msg.length < 16 ? 'short' : 'oversized'); return; }
    const now = Date.now();
    const limiter = this.ctx.udpLimiter;
    if (limiter && !limiter.take(sourceKey(rinfo.address), now)) { metrics.drop('udp', 'rate_limited'); return; }
    const action = msg.readUInt32BE(8);
    const tid = msg.readUInt32BE(12);
    if (action === ACTION_CONNECT) {
      // Answer only real connect requests: replying to garbage would make us a reflector.
      if (msg.readUInt32BE(0) !== PROTOCOL_ID_HI || msg.readUInt32BE(4) !== PROTOCOL_ID_LO) { metrics.drop('udp', 'bad_protocol_id'); return; }
      const id = this.issueId(rinfo.address, rinfo.port, Math.floor(now / BUCKET_MS));
      const out = Buffer.allocUnsafe(16);
      out.writeUInt32BE(ACTION_CONNECT, 0);
      out.writeUInt32BE(tid, 4);
      id.copy(out, 8);
      metrics.connect();
      this.send(out, rinfo);
      return;
    }
    if (action !== ACTION_ANNOUNCE && action !== ACTION_SCRAPE) { this.error(tid, 'unknown action', rinfo, 'unknown_action'); return; }
    if (!this.verifyId(msg, rinfo.address, rinfo.port, Math.floor(now / BUCKET_MS))) {
      this.error(tid, 'connection id invalid or expired', rinfo, 'bad_connection_id');
      return;
    }
    if (action === ACTION_ANNOUNCE) this.announce(msg, tid, rinfo);
    else this.scrape(msg, tid, rinfo);
  }

  private announce(msg: Buffer, tid: number, rinfo: RemoteInfo): void {
    const ctx = this.ctx;
    if (msg.length < ANNOUNCE_LEN) { this.error(tid, 'announce packet too short', rinfo, 'malformed'); return; }
    const eventCode = msg.readUInt32BE(80);
    const event = UDP_EVENTS[eventCode];
    if (event === undefined) { this.error(tid, 'invalid event', rinfo, 'malformed'); return; }
    const port = msg.readUInt16BE(96);
    if (port === 0) { this.error(tid, 'port must be in 1..65535', rinfo, 'malformed'); return; }
    const infoHashKey = msg.toString('latin1', 16, 36);
    if (!ctx.isAllowedKey(infoHashKey)) { this.error(tid, 'info_hash not authorized', rinfo, 'not_allowed'); return; }
    const wantNum = msg.readInt32BE(92);
    const numwant = wantNum < 0 ? ctx.defaultNumwant : Math.min(wantNum, ctx.maxNumwant);

    const address = rinfo.address;
    let compact: Buffer;
    let family: 4 | 6;
    const ipField = msg.readUInt32BE(84);
    const mapped = address.startsWith('::ffff:') && address.includes('.');
    if (rinfo.family === 'IPv4' || mapped) {
      family = 4;
      compact = Buffer.allocUnsafe(6);
      if (ipField !== 0 && (ctx.trustIpParam || isLoopback(normalizeIp(address)))) compact.writeUInt32BE(ipField, 0);
      else writeIPv4(compact, mapped ? address.slice(7) : address);
      compact.writeUInt16BE(port, 4);
    } else {
      family = 6;
      compact = Buffer.allocUnsafe(18);
      ipv6ToBytes(address).copy(compact, 0);
      compact.writeUInt16BE(port, 16);
    }
    const req: AnnounceRequest = {
      infoHash: msg.subarray(16, 36),
      infoHashKey,
      peerId: msg.subarray(36, 56),
      compact,
      seed: (msg.readUInt32BE(64) === 0 && msg.readUInt32BE(68) === 0) || event === 'completed',
      event, numwant, family, compactOnly: true, source: rinfo.address,
    };
    let r: AnnounceResult | Promise<AnnounceResult>;
    try { r = ctx.store.announce(req); } catch (err) { this.storeError(err, tid, rinfo); return; }
    if (isPromise(r)) r.then((res) => this.announceReply(res, event, family, tid, rinfo), (err) => this.storeError(err, tid, rinfo));
    else this.announceReply(r, event, family, tid, rinfo);
  }

  private announceReply(res: AnnounceResult, event: AnnounceEvent, family: 4 | 6, tid: number, rinfo: RemoteInfo): void {
    const head = Buffer.allocUnsafe(20);
    head.writeUInt32BE(ACTION_ANNOUNCE, 0);
    head.writeUInt32BE(tid, 4);
    head.writeUInt32BE(this.ctx.interval, 8);
    head.writeUInt32BE(clampU32(res.incomplete), 12);
    head.writeUInt32BE(clampU32(res.complete), 16);
    let body = family === 4 ? res.compact4 : res.compact6;
    if (!body) {
      // Stores without the compact fast path (Redis) hand back peer objects.
      const size = family === 4 ? 6 : 18;
      const peers = res.peers;
      body = Buffer.allocUnsafe(peers.length * size);
      let off = 0;
      for (const p of peers) if (p.compact.length === size) off += p.compact.copy(body, off);
      body = body.subarray(0, off);
    }
    this.ctx.metrics.announce('udp', event);
    // Two-part datagram (sendmsg with an iovec): the peer list is sent without copying it behind the header.
    this.socket?.send(body.length ? [head, body] : head, rinfo.port, rinfo.address);
  }

  private scrape(msg: Buffer, tid: number, rinfo: RemoteInfo): void {
    const body = msg.length - 16;
    if (body < 20 || body % 20 !== 0) { this.error(tid, 'scrape packet must carry whole 20-byte info-hashes', rinfo, 'malformed'); return; }
    const n = body / 20;
    if (n > MAX_SCRAPE_HASHES) { this.error(tid, 'too many info-hashes in scrape', rinfo, 'malformed'); return; }
    const hashes: Buffer[] = [];
    for (let i = 0; i < n; i++) hashes.push(msg.subarray(16 + i * 20, 36 + i * 20));
    const allowed = hashes.map((h) => this.ctx.isAllowed(h));
    const reply = (entries: ScrapeEntry[]): void => {
      const out = Buffer.allocUnsafe(8 + 12 * n);
      out.writeUInt32BE(ACTION_SCRAPE, 0);
      out.writeUInt32BE(tid, 4);
      for (let i = 0; i < n; i++) {
        const e = allowed[i] ? entries[i]! : { complete: 0, downloaded: 0, incomplete: 0 };
        out.writeUInt32BE(clampU32(e.complete), 8 + i * 12);
        out.writeUInt32BE(clampU32(e.downloaded), 12 + i * 12);
        out.writeUInt32BE(clampU32(e.incomplete), 16 + i * 12);
      }
      this.ctx.metrics.scrape('udp');
      this.send(out, rinfo);
    };
    let r: ScrapeEntry[] | Promise<ScrapeEntry[]>;
    try { r = this.ctx.store.scrape(hashes); } catch (err) { this.storeError(err, tid, rinfo); return; }
    if (isPromise(r)) r.then(reply, (err) => this.storeError(err, tid, rinfo));
    else reply(r);
  }

  private storeError(err: unknown, tid: number, rinfo: RemoteInfo): void {
    if (err instanceof StoreUnavailableError) this.error(tid, err.message, rinfo, 'storage');
    else if (err instanceof StoreFullError) this.error(tid, err.message, rinfo, 'full');
    else {
      this.ctx.logger.error({ err }, 'tracker udp request failed');
      this.error(tid, 'internal tracker error', rinfo, 'internal');
    }
  }

  private error(tid: number, message: string, rinfo: RemoteInfo, metric: string): void {
    const out = Buffer.allocUnsafe(8 + Buffer.byteLength(message));
    out.writeUInt32BE(ACTION_ERROR, 0);
    out.writeUInt32BE(tid, 4);
    out.write(message, 8, 'utf8');
    this.ctx.metrics.error('udp', metric);
    this.send(out, rinfo);
  }

  private send(buf: Buffer, rinfo: RemoteInfo): void {
    // Fresh buffer per reply: dgram may queue it past this call, so a shared scratch buffer would be overwritten.
    this.socket?.send(buf, rinfo.port, rinfo.address);
  }

  private issueId(address: string, port: number, bucket: number): Buffer {
    const id = this.connectionIdFor(address, port, bucket);
    this.remember(address, port, id.readUInt32BE(0), id.readUInt32BE(4), bucket);
    return id;
  }

  private verifyId(msg: Buffer, address: string, port: number, bucket: number): boolean {
    const hi = msg.readUInt32BE(0), lo = msg.readUInt32BE(4);
    const key = endpointKey(address, port);
    const c = this.idCache.get(key);
    if (c && c.hi === hi && c.lo === lo && bucket - c.bucket <= 1 && bucket >= c.bucket) return true;
    for (let b = bucket; b >= bucket - 1; b--) {
      const id = this.connectionIdFor(address, port, b);
      if (id.readUInt32BE(0) === hi && id.readUInt32BE(4) === lo) {
        this.remember(address, port, hi, lo, b);
        return true;
      }
    }
    return false;
  }

  private remember(address: string, port: number, hi: number, lo: number, bucket: number): void {
    if (this.idCache.size >= ID_CACHE_MAX) this.idCache.clear();
    this.idCache.set(endpointKey(address, port), { hi, lo, bucket });
  }
}

/** A number for IPv4 endpoints (no string building on the hot path), a string for IPv6. */
function endpointKey(address: string, port: number): number | string {
  const v4 = address.includes(':') ? (address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : undefined) : address;
  if (v4 === undefined) return `${address}|${port}`;
  let ip = 0, octet = 0;
  for (let i = 0; i < v4.length; i++) {
    const c = v4.charCodeAt(i);
    if (c === 46) { ip = ip * 256 + octet; octet = 0; } else octet = octet * 10 + (c - 48);
  }
  return (ip * 256 + octet) * 65536 + port;
}

function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

function clampU32(n: number): number {
  return n > 0xffffffff ? 0xffffffff : n < 0 ? 0 : n;
}

/** Dotted quad (as the kernel reports it, so well-formed) straight into the buffer: cheaper than split/map. */
function writeIPv4(out: Buffer, ip: string): void {
  let octet = 0, idx = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) { out[idx++] = octet; octet = 0; } else octet = octet * 10 + (c - 48);
  }
  out[idx] = octet;
}
