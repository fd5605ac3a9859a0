import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6ToBytes } from '../discovery/compact.js';
import { ShoalError } from '../util/errors.js';

/**
 * Fleet locality: a map of CIDR -> zone (and optionally rack) so the tracker can hand out
 * same-rack peers first, then same-zone, then the rest. Cross-rack and cross-zone traffic is
 * what costs money and latency in a data centre; the swarm still gets random peers beyond that.
 */

export interface ZoneEntry { cidr: string; zone: string; rack?: string }

/** Interned ids: comparing numbers in the selection loop is cheaper than strings. `rack` is unique per zone. */
export interface Location { readonly zone: number; readonly rack: number }

interface Net { bytes: Buffer; prefix: number; loc: Location }

export class ZoneMap {
  private readonly v4: Net[] = [];
  private readonly v6: Net[] = [];
  readonly size: number;

  constructor(entries: ZoneEntry[], source = 'zones') {
    const zones = new Map<string, number>();
    const racks = new Map<string, number>();
    for (const e of entries) {
      const { bytes, prefix } = parseCidr(e.cidr, source);
      if (typeof e.zone !== 'string' || e.zone === '') throw new ShoalError('EUSAGE', `${source}: entry for ${e.cidr} has no zone`);
      let zone = zones.get(e.zone);
      if (zone === undefined) zones.set(e.zone, (zone = zones.size + 1));
      let rack = 0; // 0 = no rack known: never matches another peer's rack
      if (e.rack) {
        const key = `${e.zone}\u0000${e.rack}`;
        rack = racks.get(key) ?? 0;
        if (rack === 0) racks.set(key, (rack = racks.size + 1));
      }
      (bytes.length === 4 ? this.v4 : this.v6).push({ bytes, prefix, loc: { zone, rack } });
    }
    // Longest prefix first, so the first match is the most specific one.
    this.v4.sort((a, b) => b.prefix - a.prefix);
    this.v6.sort((a, b) => b.prefix - a.prefix);
    this.size = entries.length;
  }

  /**
   * Accepts text lines `CIDR zone [rack]` (# comments) or JSON: an array of {cidr, zone, rack?}
   * or an object {"CIDR": {zone, rack?}} / {"CIDR": "zone"}.
   */
  static parse(text: string, source = 'zones'): ZoneMap {
    const trimmed = text.trim();
    if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
      let json: unknown;
      try { json = JSON.parse(trimmed); } catch (e) {
        throw new ShoalError('EUSAGE', `${source}: invalid JSON (${(e as Error).message})`);
      }
      const entries: ZoneEntry[] = [];
      if (Array.isArray(json)) {
        for (const item of json) {
          const o = item as Partial<ZoneEntry>;
          if (!o || typeof o.cidr !== 'string' || typeof o.zone !== 'string') throw new ShoalError('EUSAGE', `${source}: JSON array entries need string "cidr" and "zone"`);
          entries.push({ cidr: o.cidr, zone: o.zone, ...(typeof o.rack === 'string' ? { rack: o.rack } : {}) });
        }
      } else {
        for (const [cidr, v] of Object.entries(json as Record<string, unknown>)) {
          if (typeof v === 'string') entries.push({ cidr, zone: v });
          else if (v && typeof (v as ZoneEntry).zone === 'string') {
            const o = v as ZoneEntry;
            entries.push({ cidr, zone: o.zone, ...(typeof o.rack === 'string' ? { rack: o.rack } : {}) });
          } else throw new ShoalError('EUSAGE', `${source}: value for ${cidr} must be a zone name or {zone, rack}`);
        }
      }
      return new ZoneMap(entries, source);
    }
    const entries: ZoneEntry[] = [];
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.replace(/#.*/, '').trim();
      if (!line) continue;
      const parts = line.split(/\s+/);
      if (parts.length < 2 || parts.length > 3) throw new ShoalError('EUSAGE', `${source}:${i + 1}: expected "CIDR zone [rack]"`);
      entries.push({ cidr: parts[0]!, zone: parts[1]!, ...(parts[2] ? { rack: parts[2] } : {}) });
    }
    return new ZoneMap(entries, source);
  }

  static async load(path: string): Promise<ZoneMap> {
    let text: string;
    try { text = await readFile(path, 'utf8'); } catch (e) {
      throw new ShoalError('EUSAGE', `cannot read zones file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return ZoneMap.parse(text, path);
  }

  /** Location of a compact peer address (6 or 18 bytes) or raw IP bytes (4 or 16). */
  lookup(addr: Buffer): Location | undefined {
    if (addr.length === 6 || addr.length === 4) return match(this.v4, addr, 0);
    if (addr.length === 18 || addr.length === 16) {
      if (isV4Mapped(addr)) return match(this.v4, addr, 12);
      return match(this.v6, addr, 0);
    }
    return undefined;
  }

  lookupIp(ip: string): Location | undefined {
    if (isIPv4(ip)) return match(this.v4, Buffer.from(ip.split('.').map(Number)), 0);
    if (isIPv6(ip)) return this.lookup(ipv6ToBytes(ip));
    return undefined;
  }
}

/** 0 = same rack, 1 = same zone, 2 = anything else (including unknown locations). */
export function localityTier(a: Location | undefined, b: Location | undefined): 0 | 1 | 2 {
  if (!a || !b || a.zone !== b.zone) return 2;
  return a.rack !== 0 && a.rack === b.rack ? 0 : 1;
}

function isV4Mapped(b: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function match(nets: Net[], addr: Buffer, off: number): Location | undefined {
  for (const n of nets) {
    const full = n.prefix >> 3;
    let ok = true;
    for (let i = 0; i < full; i++) if (n.bytes[i] !== addr[off + i]) { ok = false; break; }
    if (!ok) continue;
    const rem = n.prefix & 7;
    if (rem) {
      const mask = (0xff << (8 - rem)) & 0xff;
      if ((n.bytes[full]! & mask) !== (addr[off + full]! & mask)) continue;
    }
    return n.loc;
  }
  return undefined;
}

function parseCidr(cidr: string, source: string): { bytes: Buffer; prefix: number } {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  let bytes: Buffer;
  if (isIPv4(ip)) bytes = Buffer.from(ip.split('.').map(Number));
  else if (isIPv6(ip)) bytes = ipv6ToBytes(ip);
  else throw new ShoalError('EUSAGE', `${source}: "${cidr}" is not an IPv4 or IPv6 CIDR`);
  const max = bytes.length * 8;
  const prefixText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new ShoalError('EUSAGE', `${source}: "${cidr}" has a prefix length outside 0..${max}`);
  return { bytes, prefix };
}
