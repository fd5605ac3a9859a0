import { isIPv4, isIPv6 } from 'node:net';

/** A peer address as trackers, PEX and the CLI exchange it. */
export interface PeerAddress {
  host: string; // IPv4 dotted quad or IPv6 text (no brackets)
  port: number;
}

/** BEP 23 compact IPv4 peers: 6 bytes each. Trailing partial entries are ignored. */
export function decodeCompactPeers4(buf: Uint8Array): PeerAddress[] {
  const out: PeerAddress[] = [];
  for (let i = 0; i + 6 <= buf.length; i += 6) {
    const port = (buf[i + 4]! << 8) | buf[i + 5]!;
    if (port === 0) continue;
    out.push({ host: `${buf[i]}.${buf[i + 1]}.${buf[i + 2]}.${buf[i + 3]}`, port });
  }
  return out;
}

/** BEP 7 compact IPv6 peers: 18 bytes each. */
export function decodeCompactPeers6(buf: Uint8Array): PeerAddress[] {
  const out: PeerAddress[] = [];
  for (let i = 0; i + 18 <= buf.length; i += 18) {
    const groups: string[] = [];
    for (let g = 0; g < 8; g++) groups.push(((buf[i + 2 * g]! << 8) | buf[i + 2 * g + 1]!).toString(16));
    const port = (buf[i + 16]! << 8) | buf[i + 17]!;
    if (port === 0) continue;
    out.push({ host: compressIPv6(groups.join(':')), port });
  }
  return out;
}

export function encodeCompactPeer4(host: string, port: number): Buffer {
  const parts = host.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`not an IPv4 address: ${host}`);
  const b = Buffer.allocUnsafe(6);
  b[0] = parts[0]!; b[1] = parts[1]!; b[2] = parts[2]!; b[3] = parts[3]!;
  b.writeUInt16BE(port, 4);
  return b;
}

export function encodeCompactPeer6(host: string, port: number): Buffer {
  const b = Buffer.allocUnsafe(18);
  ipv6ToBytes(host).copy(b, 0);
  b.writeUInt16BE(port, 16);
  return b;
}

export function ipv6ToBytes(host: string): Buffer {
  if (!isIPv6(host)) throw new RangeError(`not an IPv6 address: ${host}`);
  let h = host;
  // IPv4-mapped tail (::ffff:1.2.3.4)
  const v4 = h.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    h = h.slice(0, -v4[1]!.length) + ((p[0]! << 8) | p[1]!).toString(16) + ':' + ((p[2]! << 8) | p[3]!).toString(16);
  }
  const [head, tail] = h.includes('::') ? h.split('::') as [string, string] : [h, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - headParts.length - tailParts.length : 0;
  const all = [...headParts, ...Array(fill).fill('0'), ...tailParts];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function compressIPv6(full: string): string {
  // Longest run of zero groups becomes '::' (RFC 5952).
  const groups = full.split(':');
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] === '0') {
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen && j - i > 1) { bestStart = i; bestLen = j - i; }
      i = j;
    } else i++;
  }
  if (bestStart < 0) return groups.join(':');
  const left = groups.slice(0, bestStart).join(':');
  const right = groups.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port <= 65535;
}

export function addressFamily(host: string): 4 | 6 | 0 {
  return isIPv4(host) ? 4 : isIPv6(host) ? 6 : 0;
}

/** Parse "host:port" or "[v6]:port". */
export function parsePeerAddress(text: string): PeerAddress {
  const m = text.match(/^\[([^\]]+)\]:(\d+)$/) ?? text.match(/^([^:\[\]]+):(\d+)$/);
  if (!m) throw new RangeError(`peer address "${text}" is not host:port or [ipv6]:port`);
  const port = Number(m[2]);
  if (!isValidPort(port)) throw new RangeError(`peer address "${text}" has port out of range 1..65535`);
  return { host: m[1]!, port };
}

export function formatPeerAddress(a: PeerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
