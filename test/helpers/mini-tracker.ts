/**
 * Minimal tracker servers for testing tracker *clients*: real HTTP and real BEP 15 bytes on loopback,
 * with hooks so a test can misbehave on purpose.
 */
import http from 'node:http';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** Percent-decode a raw query string into bytes per key (URLSearchParams would mangle binary values). */
export function parseRawQuery(search: string): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  const q = search.startsWith('?') ? search.slice(1) : search;
  for (const part of q.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    const bytes: number[] = [];
    for (let i = 0; i < v.length; i++) {
      if (v[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) { bytes.push(parseInt(v.slice(i + 1, i + 3), 16)); i += 2; }
      else bytes.push(v.charCodeAt(i));
    }
    const list = out.get(k) ?? [];
    list.push(Buffer.from(bytes));
    out.set(k, list);
  }
  return out;
}

export interface HttpHit { path: string; rawQuery: string; query: Map<string, Buffer[]>; param(name: string): string | undefined }

export interface MiniHttpServer {
  port: number;
  hits: HttpHit[];
  url(path?: string): string;
  close(): Promise<void>;
}

export async function startHttpServer(
  handler: (hit: HttpHit, req: http.IncomingMessage, res: http.ServerResponse) => void,
  host = '127.0.0.1',
): Promise<MiniHttpServer> {
  const hits: HttpHit[] = [];
  const server = http.createServer((req, res) => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const query = parseRawQuery(q < 0 ? '' : raw.slice(q + 1));
    const hit: HttpHit = {
      path: q < 0 ? raw : raw.slice(0, q),
      rawQuery: q < 0 ? '' : raw.slice(q + 1),
      query,
      param: (name) => query.get(name)?.[0]?.toString('latin1'),
    };
    hits.push(hit);
    handler(hit, req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    port, hits,
    url: (path = '/announce') => `http://${h}:${port}${path}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export interface UdpPacket { action: number; txn: number; msg: Buffer; from: { address: string; port: number } }

export interface MiniUdpOptions {
  family?: 4 | 6;
  /** Compact peer bytes to return in announce responses (6-byte or 18-byte entries). */
  peers?: Buffer;
  interval?: number;
  seeders?: number;
  leechers?: number;
  /**
   * Called for every request before the normal reply. Return 'drop' to stay silent, a Buffer (or several) to
   * send instead of the normal reply, or undefined for normal behaviour.
   */
  hook?: (p: UdpPacket, nth: number) => 'drop' | Buffer | Buffer[] | undefined;
}

export interface MiniUdpTracker {
  port: number;
  url: string;
  packets: UdpPacket[];
  close(): Promise<void>;
}

export async function startUdpMiniTracker(opts: MiniUdpOptions = {}): Promise<MiniUdpTracker> {
  const family = opts.family ?? 4;
  const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const packets: UdpPacket[] = [];
  const connIds = new Set<string>();
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 16) return;
    const action = msg.readUInt32BE(8);
    const txn = msg.readUInt32BE(12);
    const p: UdpPacket = { action, txn, msg, from: { address: rinfo.address, port: rinfo.port } };
    packets.push(p);
    const send = (b: Buffer): void => { sock.send(b, rinfo.port, rinfo.address); };
    const custom = opts.hook?.(p, packets.filter((x) => x.action === action).length);
    if (custom === 'drop') return;
    if (custom !== undefined) { (Array.isArray(custom) ? custom : [custom]).forEach(send); return; }
    if (action === 0) {
      if (msg.readBigUInt64BE(0) !== 0x41727101980n) return;
      const id = randomBytes(8);
      connIds.add(id.toString('hex'));
      const r = Buffer.alloc(16);
      r.writeUInt32BE(0, 0); r.writeUInt32BE(txn, 4); id.copy(r, 8);
      send(r);
      return;
    }
    // Like real trackers: silently ignore requests with unknown connection ids.
    if (!connIds.has(msg.subarray(0, 8).toString('hex'))) return;
    if (action === 1 && msg.length >= 98) {
      const peers = opts.peers ?? Buffer.alloc(0);
      const r = Buffer.alloc(20 + peers.length);
      r.writeUInt32BE(1, 0); r.writeUInt32BE(txn, 4);
      r.writeUInt32BE(opts.interval ?? 1800, 8);
      r.writeUInt32BE(opts.leechers ?? 0, 12);
      r.writeUInt32BE(opts.seeders ?? 0, 16);
      peers.copy(r, 20);
      send(r);
    } else if (action === 2) {
      const n = Math.floor((msg.length - 16) / 20);
      const r = Buffer.alloc(8 + 12 * n);
      r.writeUInt32BE(2, 0); r.writeUInt32BE(txn, 4);
      for (let i = 0; i < n; i++) {
        // Distinct per-hash values so tests can check they are not mixed up.
        r.writeUInt32BE((opts.seeders ?? 0) + i, 8 + 12 * i);
        r.writeUInt32BE(100 + i, 12 + 12 * i);
        r.writeUInt32BE((opts.leechers ?? 0) + i, 16 + 12 * i);
      }
      send(r);
    }
  });
  const host = family === 6 ? '::1' : '127.0.0.1';
  await new Promise<void>((resolve) => sock.bind(0, host, resolve));
  const port = sock.address().port;
  return {
    port, packets,
    url: family === 6 ? `udp://[::1]:${port}/announce` : `udp://127.0.0.1:${port}/announce`,
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}

/** Build a BEP 15 error packet. */
export function udpErrorPacket(txn: number, message: string): Buffer {
  const m = Buffer.from(message, 'utf8');
  const r = Buffer.alloc(8 + m.length);
  r.writeUInt32BE(3, 0); r.writeUInt32BE(txn, 4); m.copy(r, 8);
  return r;
}
