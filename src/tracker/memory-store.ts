import { localityTier, type Location, type ZoneMap } from './locality.js';
import { Endpoint, L4, S4, S6, L6, SwarmPeers, type PeerList } from './peer-table.js';
import { RateLimiter, sourceKey, type RateLimitOptions } from './rate-limit.js';
import {
  StoreFullError, type AnnounceRequest, type AnnounceResult, type ScrapeEntry, type SelectedPeer, type StoreStats, type SwarmStore,
} from './swarm-store.js';

export interface MemoryStoreOptions {
  /** A peer not heard from for this long is forgotten. */
  peerTtlMs: number;
  /** Peers tracked per swarm; announces beyond it still get peers but are not stored. Default 50 000. */
  maxPeersPerSwarm?: number;
  /**
   * Swarms tracked in total. When full, the oldest junk swarm (created by one announce that nobody followed,
   * typically a random info-hash) is dropped to make room; only when there is none do announces for new
   * swarms get a failure. Default 100 000.
   */
  maxSwarms?: number;
  /**
   * How fast one source (IPv4 address, IPv6 /64; see AnnounceRequest.source) may create swarms. Without it,
   * one host announcing random info-hashes fills the table. Default: no limit.
   */
  newSwarmLimit?: RateLimitOptions;
  /** Peers tracked across all swarms. Default 1 000 000 (roughly 70 MB in a few big swarms, more when spread over many small ones). */
  maxPeers?: number;
  zones?: ZoneMap;
  /** How often the expiry sweep runs, and how many peers one tick may examine. */
  sweepIntervalMs?: number;
  sweepBudget?: number;
}

/** Above this many candidates the locality ordering works on a random sample, keeping the work per announce bounded. */
const LOCALITY_SAMPLE = 4096;

/**
 * A swarm: its peers in compact form (see peer-table.ts) and its counters. A swarm with a handful of
 * peers costs a few hundred bytes, which is what lets a table of 100 000 mostly tiny swarms fit in
 * tens of megabytes.
 */
class Swarm extends SwarmPeers {
  downloaded = 0;
  lastSeen = 0;
  /** Created by one announce and not announced to since: the first to go when the table is full. */
  junk = true;
  constructor(readonly key: string, withLocations: boolean) { super(withLocations); }
}

/** Where selected peers go: list/position pairs (non-compact HTTP, locality) or straight into compact buffers. */
interface Sink { lists: PeerList[] | undefined; idx: number[]; b4: Buffer | undefined; o4: number; b6: Buffer | undefined; o6: number; n: number }

/**
 * Swarm state in one process. Expiry is a periodic sweep with a bounded number of peers examined
 * per tick (so a million peers never stall the event loop), and selection skips peers that
 * expired since the last sweep, so clients never see stale peers either way.
 */
export class MemoryStore implements SwarmStore {
  private readonly swarms = new Map<string, Swarm>();
  /** Junk swarms in creation order (see Swarm.junk). */
  private readonly junk = new Map<string, Swarm>();
  private readonly newSwarms: RateLimiter | undefined;
  private readonly ttl: number;
  private readonly maxPeersPerSwarm: number;
  private readonly maxSwarms: number;
  private readonly maxPeers: number;
  private readonly zones: ZoneMap | undefined;
  private readonly sweepBudget: number;
  private readonly timer: NodeJS.Timeout;
  private sweepIter: Iterator<Swarm> | undefined;
  private totalSeeds = 0;
  private totalLeechers = 0;
  /** Stamps entries picked during one selection so none is picked twice. */
  private seq = 0;
  /** Reused per announce (announce is synchronous): fewer short-lived objects on the hot path. */
  private readonly lists: PeerList[] = [];
  private readonly me = new Endpoint();
  private readonly gone = { seeds: 0, leechers: 0 };

  constructor(opts: MemoryStoreOptions) {
    this.ttl = opts.peerTtlMs;
    this.maxPeersPerSwarm = opts.maxPeersPerSwarm ?? 50_000;
    this.maxSwarms = opts.maxSwarms ?? 100_000;
    this.maxPeers = opts.maxPeers ?? 1_000_000;
    this.zones = opts.zones;
    this.newSwarms = opts.newSwarmLimit ? new RateLimiter(opts.newSwarmLimit) : undefined;
    this.sweepBudget = opts.sweepBudget ?? 50_000;
    const every = opts.sweepIntervalMs ?? Math.max(50, Math.min(5000, Math.floor(this.ttl / 4)));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
  }

  /** Peers currently stored (including expired ones the sweep has not reached yet). */
  get peerCount(): number { return this.totalSeeds + this.totalLeechers; }

  announce(req: AnnounceRequest): AnnounceResult {
    const now = Date.now();
    const hkey = req.infoHashKey ?? req.infoHash.toString('latin1');
    let swarm = this.swarms.get(hkey);
    if (!swarm) {
      if (req.event === 'stopped') return { complete: 0, incomplete: 0, downloaded: 0, peers: [] };
      swarm = this.createSwarm(hkey, req, now);
    } else if (swarm.junk) {
      swarm.junk = false;
      this.junk.delete(hkey);
    }
    swarm.lastSeen = now;
    const compact = req.compact;
    const me = this.me.set(compact);
    const peers: SwarmPeers = swarm;
    let ref = peers.find(me);

    if (req.event === 'stopped') {
      if (ref >= 0) {
        if ((ref & 1) === 0) this.totalSeeds--; else this.totalLeechers--;
        peers.remove(ref);
      }
      return { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers: [] };
    }

    const seed = req.seed;
    const no = (seed ? S4 : L4) + (me.v6 ? S6 : 0);
    const expires = now + this.ttl;
    if (ref >= 0) {
      const wasSeed = (ref & 1) === 0;
      if (!wasSeed && seed && req.event === 'completed') swarm.downloaded++;
      if (wasSeed !== seed) {
        if (seed) { this.totalSeeds++; this.totalLeechers--; } else { this.totalSeeds--; this.totalLeechers++; }
      }
      ref = peers.update(ref, no, req.peerId, expires);
    } else {
      if (req.event === 'completed') swarm.downloaded++;
      if (swarm.size < this.maxPeersPerSwarm && this.peerCount < this.maxPeers) {
        ref = peers.add(no, me, req.peerId, expires, this.zones?.lookup(compact));
        if (seed) this.totalSeeds++; else this.totalLeechers++;
      }
    }

    const result: AnnounceResult = { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers: [] };
    if (req.numwant > 0) this.select(swarm, req, ref, now, result);
    else if (req.compactOnly) { result.compact4 = EMPTY; result.compact6 = EMPTY; }
    return result;
  }

  scrape(infoHashes: Buffer[]): ScrapeEntry[] {
    return infoHashes.map((h) => {
      const s = this.swarms.get(h.toString('latin1'));
      return s ? { complete: s.seeds, incomplete: s.leechers, downloaded: s.downloaded } : { complete: 0, incomplete: 0, downloaded: 0 };
    });
  }

  stats(): StoreStats {
    return { swarms: this.swarms.size, seeds: this.totalSeeds, leechers: this.totalLeechers };
  }

  private createSwarm(hkey: string, req: AnnounceRequest, now: number): Swarm {
    if (this.newSwarms && !this.newSwarms.take(sourceKey(req.source ?? compactAddress(req.compact)), now)) {
      throw new StoreFullError('too many new torrents from your address, retry later');
    }
    if (this.swarms.size >= this.maxSwarms) {
      const oldest = this.junk.values().next();
      if (oldest.done) throw new StoreFullError('tracker is at its torrent limit, retry later');
      this.dropSwarm(oldest.value);
    }
    const swarm = new Swarm(hkey, this.zones !== undefined);
    this.swarms.set(hkey, swarm);
    this.junk.set(hkey, swarm);
    return swarm;
  }

  private dropSwarm(swarm: Swarm): void {
    this.totalSeeds -= swarm.seeds;
    this.totalLeechers -= swarm.leechers;
    this.swarms.delete(swarm.key);
    this.junk.delete(swarm.key);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.swarms.clear();
    this.junk.clear();
    this.totalSeeds = this.totalLeechers = 0;
  }

  /**
   * Examines at most `sweepBudget` peers, resuming where the last tick stopped (Map iterators stay
   * valid across deletions), so the whole table is covered over a few ticks without long pauses.
   */
  sweep(now: number): void {
    let budget = this.sweepBudget;
    let wrapped = false;
    const gone = this.gone;
    while (budget > 0) {
      if (!this.sweepIter) this.sweepIter = this.swarms.values();
      const next = this.sweepIter.next();
      if (next.done) {
        this.sweepIter = undefined;
        if (wrapped || this.swarms.size === 0) return;
        wrapped = true;
        continue;
      }
      const swarm = next.value;
      budget -= swarm.size + 1;
      gone.seeds = gone.leechers = 0;
      swarm.expire(now, gone);
      this.totalSeeds -= gone.seeds;
      this.totalLeechers -= gone.leechers;
      if (swarm.size === 0 && swarm.lastSeen + this.ttl <= now) { this.swarms.delete(swarm.key); this.junk.delete(swarm.key); }
    }
  }

  private nextSeq(): number {
    if (this.seq >= 0xfffffffe) {
      // After 4 billion selections: clear stale marks once so an old stamp cannot match.
      for (const s of this.swarms.values()) {
        for (const l of s.lists) if (l) for (let i = 0; i < l.len; i++) l.d[i * l.w + l.markAt] = 0;
      }
      this.seq = 0;
    }
    return ++this.seq;
  }

  private select(swarm: Swarm, req: AnnounceRequest, self: number, now: number, result: AnnounceResult): void {
    // Seeds have nothing to gain from other seeds.
    const lists = this.lists, all = swarm.lists;
    lists.length = 0;
    if (req.family !== 6) {
      if (!req.seed && all[S4]) lists.push(all[S4]);
      if (all[L4]) lists.push(all[L4]);
    }
    if (req.family !== 4) {
      if (!req.seed && all[S6]) lists.push(all[S6]);
      if (all[L6]) lists.push(all[L6]);
    }
    const me = this.me;
    const seq = this.nextSeq();
    const numwant = req.numwant;

    const loc = this.zones ? (self >= 0 ? all[self & 3]!.locs![self >>> 2] : undefined) ?? this.zones.lookup(req.compact) : undefined;
    if (loc) {
      this.selectByLocality(lists, numwant, me, now, seq, loc, result);
      if (req.compactOnly) fillCompact(result);
      return;
    }
    let total = 0, total4 = 0, total6 = 0;
    for (const l of lists) { total += l.len; if (l.v6) total6 += l.len; else total4 += l.len; }
    const sink: Sink = { lists: undefined, idx: NO_IDX, b4: undefined, o4: 0, b6: undefined, o6: 0, n: 0 };
    if (req.compactOnly) {
      sink.b4 = total4 ? Buffer.allocUnsafe(Math.min(numwant, total4) * 6) : EMPTY;
      sink.b6 = total6 ? Buffer.allocUnsafe(Math.min(numwant, total6) * 18) : EMPTY;
    } else { sink.lists = []; sink.idx = []; }
    if (total <= numwant + 1) {
      for (const l of lists) sampleInto(l, Math.min(l.len, numwant - sink.n), sink, me, now, seq);
    } else {
      // Proportional share per list, then a second pass fills any shortfall left by rounding or skipped peers.
      for (const l of lists) sampleInto(l, Math.floor((numwant * l.len) / total), sink, me, now, seq);
      for (let i = 0; i < lists.length && sink.n < numwant; i++) sampleInto(lists[i]!, numwant - sink.n, sink, me, now, seq);
    }
    if (sink.b4) {
      result.compact4 = sink.o4 === sink.b4.length ? sink.b4 : sink.b4.subarray(0, sink.o4);
      result.compact6 = sink.o6 === sink.b6!.length ? sink.b6! : sink.b6!.subarray(0, sink.o6);
    } else {
      for (let k = 0; k < sink.n; k++) result.peers.push(selected(sink.lists![k]!, sink.idx[k]!));
    }
  }

  private selectByLocality(lists: PeerList[], numwant: number, me: Endpoint, now: number, seq: number, loc: Location, result: AnnounceResult): void {
    let total = 0;
    for (const l of lists) total += l.len;
    const sink: Sink = { lists: [], idx: [], b4: undefined, o4: 0, b6: undefined, o6: 0, n: 0 };
    const share = total <= LOCALITY_SAMPLE ? total : LOCALITY_SAMPLE;
    for (const l of lists) sampleInto(l, total <= LOCALITY_SAMPLE ? l.len : Math.ceil((share * l.len) / total), sink, me, now, seq);
    // Candidates as positions into the sink, bucketed by tier.
    const tiers: number[][] = [[], [], []];
    for (let k = 0; k < sink.n; k++) tiers[localityTier(loc, sink.lists![k]!.locs![sink.idx[k]!])]!.push(k);
    const out = result.peers;
    for (const t of tiers) {
      // Random within a tier: everyone in the same rack should not get the same few peers.
      for (let i = 0; i < t.length && out.length < numwant; i++) {
        const j = i + Math.floor(Math.random() * (t.length - i));
        const tmp = t[i]!; t[i] = t[j]!; t[j] = tmp;
        out.push(selected(sink.lists![t[i]!]!, sink.idx[t[i]!]!));
      }
      if (out.length >= numwant) break;
    }
  }
}

const EMPTY = Buffer.alloc(0);
const NO_IDX: number[] = [];

function selected(l: PeerList, i: number): SelectedPeer {
  return { peerId: l.peerId(i), compact: l.compact(i) };
}

/** The textual address in a compact peer, for stores used without AnnounceRequest.source. */
function compactAddress(c: Buffer): string {
  if (c.length === 6) return `${c[0]}.${c[1]}.${c[2]}.${c[3]}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(c.readUInt16BE(i).toString(16));
  return g.join(':');
}

function fillCompact(result: AnnounceResult): void {
  let n4 = 0, n6 = 0;
  for (const p of result.peers) if (p.compact.length === 6) n4++; else n6++;
  const b4 = Buffer.allocUnsafe(n4 * 6), b6 = Buffer.allocUnsafe(n6 * 18);
  let o4 = 0, o6 = 0;
  for (const p of result.peers) if (p.compact.length === 6) o4 += p.compact.copy(b4, o4); else o6 += p.compact.copy(b6, o6);
  result.compact4 = b4; result.compact6 = b6;
}

function take(l: PeerList, i: number, sink: Sink): void {
  sink.n++;
  if (sink.lists) { sink.lists.push(l); sink.idx.push(i); return; }
  if (!l.v6) sink.o4 += l.writeCompact(i, sink.b4!, sink.o4);
  else sink.o6 += l.writeCompact(i, sink.b6!, sink.o6);
}

/**
 * Adds up to `k` distinct, live, non-self entries of `l` not already picked in this selection
 * (mark === seq): random indices first, skipping repeats; if that runs out of attempts (the list
 * is small relative to k, or full of expired entries), a scan from a random offset finishes the job.
 */
function sampleInto(l: PeerList, k: number, sink: Sink, me: Endpoint, now: number, seq: number): void {
  const n = l.len;
  if (k <= 0 || n === 0) return;
  // The expiry words follow the mark (see peer-table.ts).
  const d = l.d, w = l.w, markAt = l.markAt;
  let taken = 0;
  if (k < n) {
    for (let attempts = k * 3 + 8; attempts > 0 && taken < k; attempts--) {
      const i = (Math.random() * n) | 0;
      const m = i * w + markAt;
      if (d[m] === seq) continue;
      d[m] = seq;
      if (d[m + 1]! * 0x100000000 + d[m + 2]! > now && !l.matches(i, me)) { take(l, i, sink); taken++; }
    }
    if (taken >= k) return;
  }
  const start = (Math.random() * n) | 0;
  for (let c = 0; c < n && taken < k; c++) {
    const i = start + c < n ? start + c : start + c - n;
    const m = i * w + markAt;
    if (d[m] === seq) continue;
    d[m] = seq;
    if (d[m + 1]! * 0x100000000 + d[m + 2]! > now && !l.matches(i, me)) { take(l, i, sink); taken++; }
  }
}
