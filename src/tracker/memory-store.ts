import { localityTier, type Location, type ZoneMap } from './locality.js';
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
  /** Peers tracked across all swarms. Default 1 000 000 (roughly 250 MB worst case). */
  maxPeers?: number;
  zones?: ZoneMap;
  /** How often the expiry sweep runs, and how many peers one tick may examine. */
  sweepIntervalMs?: number;
  sweepBudget?: number;
}

/** Above this many candidates the locality ordering works on a random sample, keeping the work per announce bounded. */
const LOCALITY_SAMPLE = 4096;

/**
 * A stored peer. No Buffer slices are kept: a small Buffer is a view into an 8 KB allocation pool,
 * and one long-lived view pins the whole slab, so a peer would cost kilobytes. The peer id is a
 * latin1 string, an IPv4 address lives only in the list's typed arrays, and IPv6 gets a private copy.
 */
class Peer implements SelectedPeer {
  /** Position in `list`; kept up to date by PeerList. */
  idx = 0;
  list: PeerList;
  loc: Location | undefined;
  readonly c6: Buffer | undefined;
  constructor(readonly key: number | string, public id: string, compact: Buffer, list: PeerList) {
    this.list = list;
    if (compact.length === 18) { this.c6 = Buffer.alloc(18); compact.copy(this.c6); }
  }
  get peerId(): Buffer { return Buffer.from(this.id, 'latin1'); }
  get compact(): Buffer {
    if (this.c6) return this.c6;
    const b = Buffer.allocUnsafe(6);
    b.writeInt32BE(this.list.ip[this.idx]!, 0);
    b.writeUInt16BE(this.list.port[this.idx]!, 4);
    return b;
  }
}

/**
 * One list per (seed|leech) × (IPv4|IPv6) in a swarm, stored as parallel typed arrays. Selection
 * reads only these dense arrays (IPv4 address, port, expiry, pick mark), never the Peer objects:
 * in big swarms the random reads are what costs, and a few bytes per peer in one array stay in
 * cache where scattered objects do not. Removal swaps the last entry in, so everything is O(1).
 */
class PeerList {
  peers: Peer[] = [];
  // Small to start: most swarms hold a handful of peers, and a tracker holds up to maxSwarms of them.
  ip = new Int32Array(2);
  port = new Uint16Array(2);
  exp = new Float64Array(2);
  mark = new Uint32Array(2);
  len = 0;
  constructor(readonly seeds: boolean, readonly v6: boolean) {}

  add(p: Peer, compact: Buffer, expires: number): void {
    if (this.len === this.ip.length) this.grow();
    const i = this.len++;
    p.list = this; p.idx = i;
    this.peers[i] = p;
    this.set(i, compact, expires);
    this.mark[i] = 0;
  }

  set(i: number, c: Buffer, expires: number): void {
    if (c.length === 6) {
      this.ip[i] = (c[0]! << 24) | (c[1]! << 16) | (c[2]! << 8) | c[3]!;
      this.port[i] = (c[4]! << 8) | c[5]!;
    } else {
      this.ip[i] = 0;
      this.port[i] = (c[16]! << 8) | c[17]!;
    }
    this.exp[i] = expires;
  }

  remove(p: Peer): void {
    const i = p.idx, last = --this.len;
    if (i !== last) {
      const q = this.peers[last]!;
      this.peers[i] = q; q.idx = i;
      this.ip[i] = this.ip[last]!; this.port[i] = this.port[last]!; this.exp[i] = this.exp[last]!; this.mark[i] = this.mark[last]!;
    }
    this.peers.length = last;
  }

  private grow(): void {
    const n = this.ip.length * 2;
    const ip = new Int32Array(n); ip.set(this.ip); this.ip = ip;
    const port = new Uint16Array(n); port.set(this.port); this.port = port;
    const exp = new Float64Array(n); exp.set(this.exp); this.exp = exp;
    const mark = new Uint32Array(n); mark.set(this.mark); this.mark = mark;
  }
}

/**
 * Peers are keyed by address (IPv4: ip * 65536 + port as a number; IPv6: the 18 bytes as a string),
 * like opentracker: only the endpoint itself can update or stop its entry (UDP connection ids and
 * TCP prove the address), a restarted client with a new peer id replaces its old entry instead of
 * leaving a ghost, and the hot path builds no key strings.
 * The four lists are created on first use: a swarm costs a few hundred bytes, not kilobytes, which is what
 * lets a table of 100 000 mostly tiny swarms fit in tens of megabytes.
 */
class Swarm {
  readonly peers = new Map<number | string, Peer>();
  s4: PeerList | undefined;
  l4: PeerList | undefined;
  s6: PeerList | undefined;
  l6: PeerList | undefined;
  downloaded = 0;
  lastSeen = 0;
  /** Created by one announce and not announced to since: the first to go when the table is full. */
  junk = true;
  constructor(readonly key: string) {}
  get size(): number { return this.peers.size; }
  get seeds(): number { return (this.s4?.len ?? 0) + (this.s6?.len ?? 0); }
  get leechers(): number { return (this.l4?.len ?? 0) + (this.l6?.len ?? 0); }
  listFor(seed: boolean, compact: Buffer): PeerList {
    if (compact.length === 6) return seed ? (this.s4 ??= new PeerList(true, false)) : (this.l4 ??= new PeerList(false, false));
    return seed ? (this.s6 ??= new PeerList(true, true)) : (this.l6 ??= new PeerList(false, true));
  }
  /** The lists that exist, into `out` (reused by the caller). */
  lists(out: PeerList[]): PeerList[] {
    out.length = 0;
    if (this.s4) out.push(this.s4);
    if (this.l4) out.push(this.l4);
    if (this.s6) out.push(this.s6);
    if (this.l6) out.push(this.l6);
    return out;
  }
}

/** The requester, so selection can leave it out. */
interface Self { ip: number; port: number; v6: Buffer | undefined }

/** Where selected peers go: objects (non-compact HTTP, locality) or straight into compact buffers. */
interface Sink { peers: Peer[] | undefined; b4: Buffer | undefined; o4: number; b6: Buffer | undefined; o6: number; n: number }

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
  private readonly scratch: PeerList[] = [];
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
  /** Reused per selection (announce is synchronous): fewer short-lived objects on the hot path. */
  private readonly lists: PeerList[] = [];

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
    const v4 = compact.length === 6;
    const pkey = v4 ? compact.readUInt32BE(0) * 65536 + ((compact[4]! << 8) | compact[5]!) : compact.toString('latin1');
    let peer = swarm.peers.get(pkey);

    if (req.event === 'stopped') {
      if (peer) this.removePeer(swarm, peer);
      return { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers: [] };
    }

    const seed = req.seed;
    const expires = now + this.ttl;
    if (peer) {
      if (!peer.list.seeds && seed && req.event === 'completed') swarm.downloaded++;
      if (!sameId(peer.id, req.peerId)) peer.id = req.peerId.toString('latin1');
      if (peer.list.seeds !== seed) {
        this.unlist(peer);
        this.enlist(swarm.listFor(seed, compact), peer, compact, expires);
      } else {
        peer.list.exp[peer.idx] = expires;
      }
    } else {
      if (req.event === 'completed') swarm.downloaded++;
      if (swarm.size < this.maxPeersPerSwarm && this.peerCount < this.maxPeers) {
        const list = swarm.listFor(seed, compact);
        peer = new Peer(pkey, req.peerId.toString('latin1'), compact, list);
        if (this.zones) peer.loc = this.zones.lookup(compact);
        swarm.peers.set(pkey, peer);
        this.enlist(list, peer, compact, expires);
      }
    }

    const result: AnnounceResult = { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers: [] };
    if (req.numwant > 0) this.select(swarm, req, peer, now, result);
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
    const swarm = new Swarm(hkey);
    this.swarms.set(hkey, swarm);
    this.junk.set(hkey, swarm);
    return swarm;
  }

  private dropSwarm(swarm: Swarm): void {
    for (const list of swarm.lists(this.scratch)) {
      for (let i = list.len - 1; i >= 0; i--) this.removePeer(swarm, list.peers[i]!);
    }
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
      for (const list of swarm.lists(this.scratch)) {
        // Backwards: removal swaps in the last entry, which has already been checked.
        for (let i = list.len - 1; i >= 0; i--) if (list.exp[i]! <= now) this.removePeer(swarm, list.peers[i]!);
      }
      if (swarm.size === 0 && swarm.lastSeen + this.ttl <= now) { this.swarms.delete(swarm.key); this.junk.delete(swarm.key); }
    }
  }

  private enlist(list: PeerList, p: Peer, compact: Buffer, expires: number): void {
    list.add(p, compact, expires);
    if (list.seeds) this.totalSeeds++; else this.totalLeechers++;
  }

  private unlist(p: Peer): void {
    p.list.remove(p);
    if (p.list.seeds) this.totalSeeds--; else this.totalLeechers--;
  }

  private removePeer(swarm: Swarm, p: Peer): void {
    this.unlist(p);
    swarm.peers.delete(p.key);
  }

  private nextSeq(): number {
    if (this.seq >= 0xfffffffe) {
      // After 4 billion selections: clear stale marks once so an old stamp cannot match.
      for (const s of this.swarms.values()) for (const l of s.lists(this.scratch)) l.mark.fill(0);
      this.seq = 0;
    }
    return ++this.seq;
  }

  private select(swarm: Swarm, req: AnnounceRequest, self: Peer | undefined, now: number, result: AnnounceResult): void {
    // Seeds have nothing to gain from other seeds.
    const lists = this.lists;
    lists.length = 0;
    if (req.family !== 6) {
      if (!req.seed && swarm.s4) lists.push(swarm.s4);
      if (swarm.l4) lists.push(swarm.l4);
    }
    if (req.family !== 4) {
      if (!req.seed && swarm.s6) lists.push(swarm.s6);
      if (swarm.l6) lists.push(swarm.l6);
    }
    const c = req.compact;
    const me: Self = c.length === 6
      ? { ip: (c[0]! << 24) | (c[1]! << 16) | (c[2]! << 8) | c[3]!, port: (c[4]! << 8) | c[5]!, v6: undefined }
      : { ip: 0, port: (c[16]! << 8) | c[17]!, v6: c.subarray(0, 16) };
    const seq = this.nextSeq();
    const numwant = req.numwant;

    const loc = this.zones ? self?.loc ?? this.zones.lookup(c) : undefined;
    if (loc) {
      result.peers = this.selectByLocality(lists, numwant, me, now, seq, loc);
      if (req.compactOnly) fillCompact(result);
      return;
    }
    let total = 0, total4 = 0, total6 = 0;
    for (const l of lists) { total += l.len; if (l.v6) total6 += l.len; else total4 += l.len; }
    const sink: Sink = { peers: undefined, b4: undefined, o4: 0, b6: undefined, o6: 0, n: 0 };
    if (req.compactOnly) {
      sink.b4 = total4 ? Buffer.allocUnsafe(Math.min(numwant, total4) * 6) : EMPTY;
      sink.b6 = total6 ? Buffer.allocUnsafe(Math.min(numwant, total6) * 18) : EMPTY;
    } else sink.peers = result.peers as Peer[];
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
    }
  }

  private selectByLocality(lists: PeerList[], numwant: number, me: Self, now: number, seq: number, loc: Location): Peer[] {
    let total = 0;
    for (const l of lists) total += l.len;
    const sink: Sink = { peers: [], b4: undefined, o4: 0, b6: undefined, o6: 0, n: 0 };
    const share = total <= LOCALITY_SAMPLE ? total : LOCALITY_SAMPLE;
    for (const l of lists) sampleInto(l, total <= LOCALITY_SAMPLE ? l.len : Math.ceil((share * l.len) / total), sink, me, now, seq);
    const tiers: Peer[][] = [[], [], []];
    for (const p of sink.peers!) tiers[localityTier(loc, p.loc)]!.push(p);
    const out: Peer[] = [];
    for (const t of tiers) {
      // Random within a tier: everyone in the same rack should not get the same few peers.
      for (let i = 0; i < t.length && out.length < numwant; i++) {
        const j = i + Math.floor(Math.random() * (t.length - i));
        const tmp = t[i]!; t[i] = t[j]!; t[j] = tmp;
        out.push(t[i]!);
      }
      if (out.length >= numwant) break;
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** The textual address in a compact peer, for stores used without AnnounceRequest.source. */
function compactAddress(c: Buffer): string {
  if (c.length === 6) return `${c[0]}.${c[1]}.${c[2]}.${c[3]}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(c.readUInt16BE(i).toString(16));
  return g.join(':');
}

function sameId(a: string, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a.charCodeAt(i) !== b[i]) return false;
  return true;
}

function fillCompact(result: AnnounceResult): void {
  let n4 = 0, n6 = 0;
  for (const p of result.peers) if (p.compact.length === 6) n4++; else n6++;
  const b4 = Buffer.allocUnsafe(n4 * 6), b6 = Buffer.allocUnsafe(n6 * 18);
  let o4 = 0, o6 = 0;
  for (const p of result.peers) if (p.compact.length === 6) o4 += p.compact.copy(b4, o4); else o6 += p.compact.copy(b6, o6);
  result.compact4 = b4; result.compact6 = b6;
}

function isSelf(l: PeerList, i: number, me: Self): boolean {
  if (l.port[i] !== me.port) return false;
  if (!l.v6) return me.v6 === undefined && l.ip[i] === me.ip;
  return me.v6 !== undefined && l.peers[i]!.c6!.compare(me.v6, 0, 16, 0, 16) === 0;
}

function take(l: PeerList, i: number, sink: Sink): void {
  sink.n++;
  if (sink.peers) { sink.peers.push(l.peers[i]!); return; }
  if (!l.v6) {
    const b = sink.b4!, o = sink.o4, ip = l.ip[i]!, port = l.port[i]!;
    b[o] = ip >>> 24; b[o + 1] = (ip >>> 16) & 255; b[o + 2] = (ip >>> 8) & 255; b[o + 3] = ip & 255;
    b[o + 4] = port >>> 8; b[o + 5] = port & 255;
    sink.o4 = o + 6;
  } else {
    sink.o6 += l.peers[i]!.c6!.copy(sink.b6!, sink.o6, 0, 18);
  }
}

/**
 * Adds up to `k` distinct, live, non-self entries of `l` not already picked in this selection
 * (`mark === seq`): random indices first, skipping repeats; if that runs out of attempts (the list
 * is small relative to k, or full of expired entries), a scan from a random offset finishes the job.
 */
function sampleInto(l: PeerList, k: number, sink: Sink, me: Self, now: number, seq: number): void {
  const n = l.len;
  if (k <= 0 || n === 0) return;
  const mark = l.mark, exp = l.exp;
  let taken = 0;
  if (k < n) {
    for (let attempts = k * 3 + 8; attempts > 0 && taken < k; attempts--) {
      const i = (Math.random() * n) | 0;
      if (mark[i] === seq) continue;
      mark[i] = seq;
      if (exp[i]! > now && !isSelf(l, i, me)) { take(l, i, sink); taken++; }
    }
    if (taken >= k) return;
  }
  const start = (Math.random() * n) | 0;
  for (let c = 0; c < n && taken < k; c++) {
    const i = start + c < n ? start + c : start + c - n;
    if (mark[i] === seq) continue;
    mark[i] = seq;
    if (exp[i]! > now && !isSelf(l, i, me)) { take(l, i, sink); taken++; }
  }
}
