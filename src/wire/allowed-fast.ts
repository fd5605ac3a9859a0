import { isIPv4 } from 'node:net';
import { ShoalError } from '../util/errors.js';
import { sha1 } from '../util/sha1.js';

/**
 * BEP 6 canonical allowed-fast set for the peer at `ipv4` (usually the far end of the connection).
 * Accepts IPv4-mapped IPv6 text ("::ffff:1.2.3.4"). k is capped at pieceCount, since the set holds distinct
 * indices and would otherwise never fill.
 */
export function allowedFastSet(k: number, infoHash: Buffer, ipv4: string, pieceCount: number): number[] {
  if (infoHash.length !== 20) throw new ShoalError('EUSAGE', `info-hash must be 20 bytes, got ${infoHash.length}`);
  const ip = ipv4.startsWith('::ffff:') ? ipv4.slice(7) : ipv4;
  if (!isIPv4(ip)) throw new ShoalError('EUSAGE', `allowed-fast sets need an IPv4 address, got "${ipv4}"`);
  const want = Math.min(Math.max(0, Math.floor(k)), pieceCount);
  const out: number[] = [];
  if (want === 0) return out;

  const octets = ip.split('.').map(Number);
  let x: Buffer = Buffer.alloc(24);
  x[0] = octets[0]!;
  x[1] = octets[1]!;
  x[2] = octets[2]!;
  // x[3] stays 0: only the /24 counts, so one user with several nearby addresses gets one set.
  infoHash.copy(x, 4);
  const seen = new Set<number>();
  while (out.length < want) {
    x = sha1(x);
    for (let i = 0; i < 5 && out.length < want; i++) {
      const index = x.readUInt32BE(i * 4) % pieceCount;
      if (!seen.has(index)) {
        seen.add(index);
        out.push(index);
      }
    }
  }
  return out;
}
