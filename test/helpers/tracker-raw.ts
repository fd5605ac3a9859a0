/**
 * Raw tracker protocol clients for tests: requests are built byte by byte here so the tests check
 * the server against the BEPs, not against our own tracker client.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { decode, type BDict, type BValue } from '../../src/bencode/index.js';

/** Every byte percent-encoded: valid for any binary value. */
export function pct(b: Buffer | string): string {
  const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  let s = '';
  for (const x of buf) s += '%' + x.toString(16).padStart(2, '0').toUpperCase();
  return s;
}

export function peerId(tag: string | number): Buffer {
  return Buffer.from(('-TT0001-' + String(tag)).padEnd(20, '.').slice(0, 20), 'latin1');
}

export function infoHash(tag: string | number): Buffer {
  return Buffer.from(String(tag).padEnd(20, '#').slice(0, 20), 'latin1');
}

export interface RawResponse { status: number; headers: string; body: Buffer }

/** One HTTP/1.1 request over a fresh TCP connection, target written verbatim. */
export function rawHttp(port: number, target: string, opts: { host?: string; method?: string; extraHeaders?: string; localAddress?: string; body?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no HTTP response for ${target.slice(0, 80)}`)); }, 5000);
    sock.on('connect', () => {
      sock.write(`${opts.method ?? 'GET'} ${target} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n${opts.extraHeaders ?? ''}\r\n${opts.body ?? ''}`, 'latin1');
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`malformed HTTP response: ${all.toString('latin1').slice(0, 200)}`));
      const headers = all.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1]);
      resolve({ status, headers, body: all.subarray(end + 4) });
    });
  });
}

export interface AnnounceParams {
  infoHash: Buffer; peerId: Buffer; port?: number | string; left?: number | string; event?: string;
  numwant?: number | string; compact?: 0 | 1; noPeerId?: boolean; ip?: string; extra?: string;
}

export function announceQuery(p: AnnounceParams): string {
  let q = `info_hash=${pct(p.infoHash)}&peer_id=${pct(p.peerId)}&port=${p.port ?? 6881}&uploaded=0&downloaded=0&left=${p.left ?? 1000}`;
  if (p.event !== undefined) q += `&event=${p.event}`;
  if (p.numwant !== undefined) q += `&numwant=${p.numwant}`;
  if (p.compact !== undefined) q += `&compact=${p.compact}`;
  if (p.noPeerId) q += '&no_peer_id=1';
  if (p.ip !== undefined) q += `&ip=${p.ip}`;
  if (p.extra) q += p.extra;
  return q;
}

/** GET path?query and decode the bencoded body (which must be a dict). */
export async function httpGetDict(port: number, target: string, opts: { host?: string; localAddress?: string; extraHeaders?: string } = {}): Promise<BDict> {
  const r = await rawHttp(port, target, opts);
  if (r.status !== 200) throw new Error(`HTTP ${r.status} for ${target.slice(0, 80)}: ${r.body.toString().slice(0, 200)}`);
  const v = decode(r.body) as BValue;
  if (typeof v !== 'object' || Buffer.isBuffer(v) || Array.isArray(v)) throw new Error('response is not a bencoded dict');
  return v;
}

export function failureOf(d: BDict): string | undefined {
  const f = d['failure reason'];
  return Buffer.isBuffer(f) ? f.toString('utf8') : undefined;
}

/** Splits compact peers into "ip:port" strings (IPv6 in full hex groups). */
export function compactList(b: BValue | undefined, size: 6 | 18): string[] {
  if (!Buffer.isBuffer(b)) return [];
  const out: string[] = [];
  for (let i = 0; i + size <= b.length; i += size) {
    if (size === 6) out.push(`${b[i]}.${b[i + 1]}.${b[i + 2]}.${b[i + 3]}:${b.readUInt16BE(i + 4)}`);
    else {
      const g: string[] = [];
      for (let k = 0; k < 16; k += 2) g.push(b.readUInt16BE(i + k).toString(16));
      out.push(`[${g.join(':')}]:${b.readUInt16BE(i + 16)}`);
    }
  }
  return out;
}

export const UDP_PROTOCOL_ID = Buffer.from('0000041727101980', 'hex');

export interface UdpAnnounce {
  infoHash: Buffer; peerId: Buffer; left?: bigint; event?: number; ip?: number; numwant?: number; port: number; downloaded?: bigint; uploaded?: bigint;
}

export interface UdpAnnounceReply { action: number; tid: number; interval: number; leechers: number; seeders: number; peers: string[]; raw: Buffer }

/** A BEP 15 client on one UDP socket; replies are matched by transaction id. */
export class RawUdpClient {
  readonly socket: Socket;
  private readonly waiting = new Map<number, (b: Buffer) => void>();
  private ready: Promise<void>;

  constructor(readonly serverPort: number, readonly serverHost = '127.0.0.1', bindHost?: string) {
    const v6 = serverHost.includes(':');
    this.socket = createSocket(v6 ? 'udp6' : 'udp4');
    this.socket.on('message', (m) => {
      if (m.length < 8) return;
      const cb = this.waiting.get(m.readUInt32BE(4));
      if (cb) { this.waiting.delete(m.readUInt32BE(4)); cb(m); }
    });
    this.ready = new Promise((resolve) => this.socket.bind(0, bindHost ?? (v6 ? '::1' : '127.0.0.1'), () => resolve()));
  }

  get localPort(): number { return this.socket.address().port; }

  /** Sends `packet` (its bytes 12..16 are overwritten with a fresh transaction id unless keepTid). Null on timeout. */
  async request(packet: Buffer, timeoutMs = 1000, keepTid = false): Promise<Buffer | null> {
    await this.ready;
    let tid = packet.length >= 16 && keepTid ? packet.readUInt32BE(12) : randomBytes(4).readUInt32BE(0);
    if (packet.length >= 16 && !keepTid) packet.writeUInt32BE(tid, 12);
    if (packet.length < 16) tid = -1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiting.delete(tid); resolve(null); }, timeoutMs);
      this.waiting.set(tid, (b) => { clearTimeout(timer); resolve(b); });
      this.socket.send(packet, this.serverPort, this.serverHost);
    });
  }

  /** Sends without waiting for an answer. */
  async fire(packet: Buffer): Promise<void> {
    await this.ready;
    this.socket.send(packet, this.serverPort, this.serverHost);
  }

  async connect(): Promise<Buffer> {
    const p = Buffer.alloc(16);
    UDP_PROTOCOL_ID.copy(p, 0);
    p.writeUInt32BE(0, 8);
    const r = await this.request(p);
    if (!r) throw new Error('no connect reply');
    if (r.readUInt32BE(0) !== 0 || r.length !== 16) throw new Error(`bad connect reply: ${r.toString('hex')}`);
    return r.subarray(8, 16);
  }

  static announcePacket(connId: Buffer, a: UdpAnnounce): Buffer {
    const p = Buffer.alloc(98);
    connId.copy(p, 0);
    p.writeUInt32BE(1, 8);
    a.infoHash.copy(p, 16);
    a.peerId.copy(p, 36);
    p.writeBigUInt64BE(a.downloaded ?? 0n, 56);
    p.writeBigUInt64BE(a.left ?? 1000n, 64);
    p.writeBigUInt64BE(a.uploaded ?? 0n, 72);
    p.writeUInt32BE(a.event ?? 0, 80);
    p.writeUInt32BE(a.ip ?? 0, 84);
    p.writeUInt32BE(0, 88);
    p.writeInt32BE(a.numwant ?? -1, 92);
    p.writeUInt16BE(a.port, 96);
    return p;
  }

  async announce(connId: Buffer, a: UdpAnnounce): Promise<UdpAnnounceReply> {
    const r = await this.request(RawUdpClient.announcePacket(connId, a));
    if (!r) throw new Error('no announce reply');
    return parseAnnounceReply(r, this.serverHost.includes(':') ? 18 : 6);
  }

  async scrape(connId: Buffer, hashes: Buffer[]): Promise<Buffer> {
    const p = Buffer.alloc(16 + 20 * hashes.length);
    connId.copy(p, 0);
    p.writeUInt32BE(2, 8);
    hashes.forEach((h, i) => h.copy(p, 16 + 20 * i));
    const r = await this.request(p);
    if (!r) throw new Error('no scrape reply');
    return r;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

export function parseAnnounceReply(r: Buffer, size: 6 | 18): UdpAnnounceReply {
  const action = r.readUInt32BE(0);
  if (action === 3) throw new Error(`tracker error: ${r.subarray(8).toString()}`);
  return {
    action, tid: r.readUInt32BE(4), interval: r.readUInt32BE(8), leechers: r.readUInt32BE(12), seeders: r.readUInt32BE(16),
    peers: compactList(r.subarray(20), size), raw: r,
  };
}

/** action 3 message, or undefined if the reply is not an error. */
export function udpError(r: Buffer | null): string | undefined {
  if (!r || r.readUInt32BE(0) !== 3) return undefined;
  return r.subarray(8).toString('utf8');
}
