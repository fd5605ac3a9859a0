import { isIPv4, isIPv6 } from 'node:net';
import { ipv6ToBytes } from '../discovery/compact.js';
import { ZoneMap, type Location } from '../tracker/locality.js';

/** Addresses (and distinct zone/rack labels) remembered; beyond this, new ones get no locality: a bound, not a fleet limit. */
const MAX_ENTRIES = 100_000;

/**
 * Locality for the controller's embedded tracker from what agents say about themselves (`--zone`, `--rack`), keyed by
 * the address the controller sees each agent at: the tracker then hands out same-rack, then same-zone peers first, as
 * it does with a `--zones` file. The controller uses it only without such a file (the operator's CIDR map wins, and
 * the two maps' zone ids could not be compared). Zone and rack ids never change once given, because the tracker keeps
 * a peer's location from its first announce; an agent that moves is placed anew when its tracker entry is renewed.
 * Several agents behind one address share the last place reported.
 */
export class AgentZones extends ZoneMap {
  /** Hex of the 4- or 16-byte address → place. */
  private readonly byAddr = new Map<string, Location>();
  private readonly zoneIds = new Map<string, number>();
  private readonly rackIds = new Map<string, number>();

  constructor() { super([], 'agent labels'); }

  /** Records where the agent at `ip` says it is (no zone: nowhere). Returns whether anything changed. */
  set(ip: string, zone: string | undefined, rack: string | undefined): boolean {
    const key = addrKey(ip);
    if (key === undefined) return false;
    const prev = this.byAddr.get(key);
    if (!zone) return this.byAddr.delete(key);
    if (!prev && this.byAddr.size >= MAX_ENTRIES) return false;
    const loc = this.place(zone, rack);
    if (!loc || (prev && prev.zone === loc.zone && prev.rack === loc.rack)) return false;
    this.byAddr.set(key, loc);
    return true;
  }

  get agentCount(): number { return this.byAddr.size; }

  /** A compact peer address (6 or 18 bytes) or raw IP bytes (4 or 16), as the tracker asks. */
  override lookup(addr: Buffer): Location | undefined {
    let ip: Buffer;
    if (addr.length === 6 || addr.length === 4) ip = addr.subarray(0, 4);
    else if (addr.length === 18 || addr.length === 16) ip = isV4Mapped(addr) ? addr.subarray(12, 16) : addr.subarray(0, 16);
    else return undefined;
    return this.byAddr.get(ip.toString('hex'));
  }

  override lookupIp(ip: string): Location | undefined {
    const key = addrKey(ip);
    return key === undefined ? undefined : this.byAddr.get(key);
  }

  private place(zone: string, rack: string | undefined): Location | undefined {
    let z = this.zoneIds.get(zone);
    if (z === undefined) {
      if (this.zoneIds.size >= MAX_ENTRIES) return undefined;
      this.zoneIds.set(zone, (z = this.zoneIds.size + 1));
    }
    let r = 0; // 0 = no rack: matches no other peer's rack
    if (rack) {
      const k = `${zone}\u0000${rack}`;
      r = this.rackIds.get(k) ?? 0;
      if (r === 0) {
        if (this.rackIds.size >= MAX_ENTRIES) return { zone: z, rack: 0 };
        this.rackIds.set(k, (r = this.rackIds.size + 1));
      }
    }
    return { zone: z, rack: r };
  }
}

function addrKey(ip: string): string | undefined {
  if (ip.startsWith('::ffff:') && isIPv4(ip.slice(7))) ip = ip.slice(7);
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number)).toString('hex');
  if (isIPv6(ip)) {
    const b = ipv6ToBytes(ip);
    return (isV4Mapped(b) ? b.subarray(12, 16) : b).toString('hex');
  }
  return undefined;
}

function isV4Mapped(b: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}
