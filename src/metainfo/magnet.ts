import { formatPeerAddress, parsePeerAddress, type PeerAddress } from '../discovery/compact.js';
import { ShoalError } from '../util/errors.js';

export interface MagnetLink {
  infoHash: Buffer;
  infoHashHex: string;
  name?: string;
  trackers: string[];
  peers: PeerAddress[];
  webSeeds: string[];
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function bad(message: string): never {
  throw new ShoalError('EMAGNET', `magnet: ${message}`);
}

function clip(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);
}

function base32Decode(s: string): Buffer {
  const out = Buffer.alloc(Math.floor((s.length * 5) / 8));
  let bits = 0, acc = 0, o = 0;
  for (const ch of s.toUpperCase()) {
    acc = (acc << 5) | BASE32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

/** A 40-char hex or 32-char base32 BitTorrent v1 info-hash, case-insensitive. */
export function parseInfoHash(text: string): Buffer {
  if (text.length === 40) {
    if (!/^[0-9a-f]{40}$/i.test(text)) bad(`info-hash ${clip(text)} has characters that are not hex`);
    return Buffer.from(text, 'hex');
  }
  if (text.length === 32) {
    if (!/^[a-z2-7]{32}$/i.test(text)) bad(`info-hash ${clip(text)} has characters that are not base32`);
    return base32Decode(text);
  }
  return bad(`info-hash ${clip(text)} is ${text.length} characters; expected 40 hex or 32 base32`);
}

function decodeComponent(s: string, key: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return bad(`bad percent-encoding in "${key}"`);
  }
}

/** Parse a BEP 9 magnet URI (v1 info-hash). Throws ShoalError EMAGNET. */
export function parseMagnet(uri: string): MagnetLink {
  const text = uri.trim();
  if (!/^magnet:\?/i.test(text)) bad(`not a magnet URI: ${clip(text)}`);
  const query = text.slice('magnet:?'.length).split('#')[0]!;
  let infoHash: Buffer | undefined;
  let sawOtherXt = false;
  let name: string | undefined;
  const trackers: string[] = [], peers: PeerAddress[] = [], webSeeds: string[] = [];

  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    // Some clients number repeated parameters ("tr.1", "xt.2").
    const rawKey = decodeComponent(eq < 0 ? pair : pair.slice(0, eq), 'key').toLowerCase();
    const key = /^(xt|tr|dn|ws)\.\d+$/.test(rawKey) ? rawKey.slice(0, rawKey.indexOf('.')) : rawKey;
    const value = decodeComponent(eq < 0 ? '' : pair.slice(eq + 1), key);
    switch (key) {
      case 'xt': {
        const m = /^urn:btih:(.*)$/i.exec(value);
        if (!m) { sawOtherXt = true; break; }
        const h = parseInfoHash(m[1]!);
        if (infoHash !== undefined && !infoHash.equals(h)) bad('has two different btih info-hashes');
        infoHash = h;
        break;
      }
      case 'dn':
        name = value;
        break;
      case 'tr':
        if (value !== '' && !trackers.includes(value)) trackers.push(value);
        break;
      case 'ws':
        if (value !== '' && !webSeeds.includes(value)) webSeeds.push(value);
        break;
      case 'x.pe':
        try {
          peers.push(parsePeerAddress(value));
        } catch {
          bad(`bad peer address in x.pe: ${clip(value)} (expected host:port or [ipv6]:port)`);
        }
        break;
      default:
        break; // unknown parameters are allowed by the spec
    }
  }
  if (infoHash === undefined) {
    bad(sawOtherXt ? 'no "xt=urn:btih:" parameter (only BitTorrent v1 info-hashes are supported)' : 'missing "xt=urn:btih:" parameter');
  }
  const link: MagnetLink = { infoHash, infoHashHex: infoHash.toString('hex'), trackers, peers, webSeeds };
  if (name !== undefined) link.name = name;
  return link;
}

/** Build `magnet:?xt=urn:btih:<hex>&dn=…&tr=…&x.pe=…&ws=…`; parseMagnet gives the same fields back. */
export function buildMagnet(m: { infoHash: Buffer | string; name?: string; trackers?: string[]; peers?: PeerAddress[]; webSeeds?: string[] }): string {
  let hash: Buffer;
  if (typeof m.infoHash === 'string') hash = parseInfoHash(m.infoHash);
  else if (m.infoHash.length === 20) hash = m.infoHash;
  else throw new ShoalError('EUSAGE', `magnet: info-hash must be 20 bytes, got ${m.infoHash.length}`);
  const parts = [`xt=urn:btih:${hash.toString('hex')}`];
  if (m.name !== undefined) parts.push(`dn=${encodeURIComponent(m.name)}`);
  for (const t of m.trackers ?? []) parts.push(`tr=${encodeURIComponent(t)}`);
  for (const p of m.peers ?? []) parts.push(`x.pe=${encodeURIComponent(formatPeerAddress(p))}`);
  for (const w of m.webSeeds ?? []) parts.push(`ws=${encodeURIComponent(w)}`);
  return `magnet:?${parts.join('&')}`;
}
