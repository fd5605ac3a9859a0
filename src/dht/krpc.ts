import { decode, encode, isDict, type BDict, type BValue } from '../bencode/index.js';
import type { PeerAddress } from '../discovery/compact.js';

/**
 * KRPC (BEP 5): one bencoded dict per UDP datagram. Decoding here is total: any input either yields a
 * well-formed message or a KrpcDecodeError (with the transaction id when one could be read, so the
 * caller can answer 203).
 */

/** Larger datagrams are dropped unread; real KRPC messages stay well under an Ethernet MTU. */
export const MAX_PACKET_BYTES = 2048;
const MAX_TID_BYTES = 16;
const MAX_METHOD_BYTES = 32;

export const ERR_GENERIC = 201;
export const ERR_SERVER = 202;
export const ERR_PROTOCOL = 203;
export const ERR_METHOD_UNKNOWN = 204;

export type KrpcMessage =
  | { y: 'q'; t: Buffer; q: string; a: BDict; id: Buffer }
  | { y: 'r'; t: Buffer; r: BDict; id: Buffer; ip: Buffer | undefined }
  | { y: 'e'; t: Buffer; code: number; message: string };

export class KrpcDecodeError extends Error {
  constructor(message: string, readonly t: Buffer | undefined, readonly isQuery: boolean) {
    super(message);
    this.name = 'KrpcDecodeError';
  }
}

export function decodeKrpc(buf: Buffer): KrpcMessage {
  if (buf.length > MAX_PACKET_BYTES) throw new KrpcDecodeError(`packet of ${buf.length} bytes exceeds ${MAX_PACKET_BYTES}`, undefined, false);
  let v: BValue;
  try {
    v = decode(buf, { maxDepth: 6, allowUnsortedKeys: true, maxLength: MAX_PACKET_BYTES });
  } catch (e) {
    throw new KrpcDecodeError((e as Error).message, undefined, false);
  }
  if (!isDict(v)) throw new KrpcDecodeError('message is not a dict', undefined, false);
  const t = v['t'];
  const tid = Buffer.isBuffer(t) && t.length > 0 && t.length <= MAX_TID_BYTES ? t : undefined;
  const y = v['y'];
  const yS = Buffer.isBuffer(y) ? y.toString('latin1') : '';
  const bad = (msg: string): never => { throw new KrpcDecodeError(msg, tid, yS === 'q'); };
  if (!tid) bad('missing or invalid transaction id');
  if (yS === 'q') {
    const q = v['q'], a = v['a'];
    if (!Buffer.isBuffer(q) || q.length === 0 || q.length > MAX_METHOD_BYTES) return bad('missing or invalid method name');
    if (!isDict(a)) return bad('query without an argument dict');
    const id = a['id'];
    if (!Buffer.isBuffer(id) || id.length !== 20) return bad('query without a 20-byte node id');
    return { y: 'q', t: tid!, q: q.toString('latin1'), a, id };
  }
  if (yS === 'r') {
    const r = v['r'];
    if (!isDict(r)) return bad('response without a return dict');
    const id = r['id'];
    if (!Buffer.isBuffer(id) || id.length !== 20) return bad('response without a 20-byte node id');
    const ip = v['ip'];
    return { y: 'r', t: tid!, r, id, ip: Buffer.isBuffer(ip) ? ip : undefined };
  }
  if (yS === 'e') {
    const e = v['e'];
    let code = ERR_GENERIC, message = '';
    if (Array.isArray(e)) {
      if (typeof e[0] === 'number') code = e[0];
      if (Buffer.isBuffer(e[1])) message = e[1].subarray(0, 200).toString('utf8');
    }
    return { y: 'e', t: tid!, code, message };
  }
  return bad('unknown message type');
}

const VERSION = Buffer.from('SH01', 'latin1');

export function encodeQuery(t: Buffer, q: string, a: Record<string, unknown>): Buffer {
  return encode({ a, q, t, v: VERSION, y: 'q' });
}

/** `requester` (BEP 42 "ip") tells the querying node which address we saw, so it can learn its external IP. */
export function encodeResponse(t: Buffer, r: Record<string, unknown>, requester?: PeerAddress): Buffer {
  const msg: Record<string, unknown> = { r, t, v: VERSION, y: 'r' };
  if (requester) {
    const ip = compactAddress(requester);
    if (ip) msg['ip'] = ip;
  }
  return encode(msg);
}

export function encodeError(t: Buffer, code: number, message: string): Buffer {
  return encode({ e: [code, message], t, v: VERSION, y: 'e' });
}

/** A node as found in a compact "nodes" string: 20-byte id, 4-byte IPv4, 2-byte port. */
export interface NodeInfo {
  id: Buffer;
  host: string;
  port: number;
}

/** Parses at most `max` entries of a compact IPv4 node list; port-0 entries are skipped. */
export function decodeCompactNodes(buf: Buffer, max: number): NodeInfo[] {
  const out: NodeInfo[] = [];
  for (let i = 0; i + 26 <= buf.length && out.length < max; i += 26) {
    const port = (buf[i + 24]! << 8) | buf[i + 25]!;
    if (port === 0) continue;
    out.push({
      id: Buffer.from(buf.subarray(i, i + 20)),
      host: `${buf[i + 20]}.${buf[i + 21]}.${buf[i + 22]}.${buf[i + 23]}`,
      port,
    });
  }
  return out;
}

export function encodeCompactNodes(nodes: ReadonlyArray<NodeInfo>): Buffer {
  const out = Buffer.allocUnsafe(26 * nodes.length);
  let off = 0;
  for (const n of nodes) {
    const addr = compactAddress(n);
    if (!addr) continue;
    n.id.copy(out, off);
    addr.copy(out, off + 20);
    off += 26;
  }
  return off === out.length ? out : out.subarray(0, off);
}

/** 6-byte compact IPv4 address, or undefined for anything that is not IPv4. */
export function compactAddress(a: PeerAddress): Buffer | undefined {
  const parts = a.host.split('.');
  if (parts.length !== 4) return undefined;
  const b = Buffer.allocUnsafe(6);
  for (let i = 0; i < 4; i++) {
    const n = Number(parts[i]);
    if (!Number.isInteger(n) || n < 0 || n > 255 || parts[i] === '') return undefined;
    b[i] = n;
  }
  b.writeUInt16BE(a.port & 0xffff, 4);
  return b;
}

export { isDict };
export type { BDict };
