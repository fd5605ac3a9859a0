import { localityTier, type Location, type ZoneMap } from './locality.js';
import {
  StoreFullError, type AnnounceRequest, type AnnounceResult, type ScrapeEntry, type SelectedPeer, type StoreStats, type SwarmStore,
} from './swarm-store.js';

export interface MemoryStoreOptions {
  /** A peer not heard from for this long is forgotten. */
  peerTtlMs: number;
  /** Peers tracked per swarm; announces beyond it still get peers but are not stored. Default 50 000. */
  maxPeersPerSwarm?: number;
  /** Swarms tracked in total; announces for new swarms beyond it get a failure. Default 100 000. */
  maxSwarms?: number;
  /** Peers tracked across all swarms. Default 1 000 000 (roughly 250 MB worst case). */
  maxPeers?: number;
  zones?: ZoneMap;
  /** How often the expiry sweep runs, and how many peers one tick may examine. */
  sweepIntervalMs?: number;
  sweepBudget?: number;
}

/** Above this many candidates the locality ordering works on a random sample, keeping the work per announce bounded. */
const LOCALITY_SAMPLE = 4096;

class Peer implements SelectedPeer {
  idx = 0;
  list: PeerList;
  loc: Location | undefined;
  constructor(
    readonly key: string,
    readonly peerId: Buffer,
    public compact: Buffer,
    public expires: number,
    list: PeerList,
  ) { this.list = list; }
}

/** Dense array so random selection is O(1) per pick; removal swaps the last element in. */
class PeerList {
  readonly arr: Peer[] = [];
  constructor(readonly seeds: boolean) {}
  add(p: Peer): void { p.list = this; p.idx = this.arr.length; this.arr.push(p); }
  remove(p: Peer): void {
    const last = this.arr.pop()!;
    if (last !== p) { this.arr[p.idx] = last; last.idx = p.idx; }
  }
}

class Swarm {
  constructor(readonly key: string) {}
  readonly peers = new Map<string, Peer>();
  readonly s4 = new PeerList(true);
  readonly l4 = new PeerList(false);
  readonly s6 = new PeerList(true);
  readonly l6 = new PeerList(false);
  downloaded = 0;
  lastSeen = 0;
  get seeds(): number { return this.s4.arr.length + this.s6.arr.length; }
  get leechers(): number { return this.l4.arr.length + this.l6.arr.length; }
  listFor(seed: boolean, compact: Buffer): PeerList {
    return compact.length === 6 ? (seed ? this.s4 : this.l4) : (seed ? this.s6 : this.l6);
  }
}

/**
 * Swarm state in one process. Expiry is a periodic sweep with a bounded number of peers examined
 * per tick (so a million peers never stall the event loop), and selection skips peers that
 * expired since the last sweep, so clients never see stale peers either way.
 */
export class MemoryStore implements SwarmStore {
  private readonly swarms = new Map<string, Swarm>();
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

  constructor(opts: MemoryStoreOptions) {
    this.ttl = opts.peerTtlMs;
    this.maxPeersPerSwarm = opts.maxPeersPerSwarm ?? 50_000;
    this.maxSwarms = opts.maxSwarms ?? 100_000;
    this.maxPeers = opts.maxPeers ?? 1_000_000;
    this.zones = opts.zones;
    this.sweepBudget = opts.sweepBudget ?? 50_000;
    const every = opts.sweepIntervalMs ?? Math.max(50, Math.min(5000, Math.floor(this.ttl / 4)));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
  }

  /** Peers currently stored (including expired ones the sweep has not reached yet). */
  get peerCount(): number { return this.totalSeeds + this.totalLeechers; }

  announce(req: AnnounceRequest): AnnounceResult {
    const now = Date.now();
    const hkey = req.infoHash.toString('latin1');
    let swarm = this.swarms.get(hkey);
    if (!swarm) {
      if (req.event === 'stopped') return { complete: 0, incomplete: 0, downloaded: 0, peers: [] };
      if (this.swarms.size >= this.maxSwarms) throw new StoreFullError('tracker is at its torrent limit, retry later');
      swarm = new Swarm(hkey);
      this.swarms.set(hkey, swarm);
    }
    swarm.lastSeen = now;
    const compact = req.compact;
    // Peers are keyed by peer id *and* IP, so nobody can stop or move someone else's entry by copying its peer id.
    const pkey = req.peerId.toString('latin1') + compact.toString('latin1', 0, compact.length - 2);
    let peer = swarm.peers.get(pkey);

    if (req.event === 'stopped') {
      if (peer) this.removePeer(swarm, peer);
      return { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers: [] };
    }

    const seed = req.seed;
    if (peer) {
      if (!peer.list.seeds && seed && req.event === 'completed') swarm.downloaded++;
      if (peer.list.seeds !== seed || peer.compact.length !== compact.length) {
        this.unlist(peer);
        this.enlist(swarm.listFor(seed, compact), peer);
      }
      if (!peer.compact.equals(compact)) peer.compact = compact;
      peer.expires = now + this.ttl;
    } else {
      if (req.event === 'completed') swarm.downloaded++;
      if (swarm.peers.size < this.maxPeersPerSwarm && this.peerCount < this.maxPeers) {
        peer = new Peer(pkey, Buffer.from(req.peerId), compact, now + this.ttl, swarm.l4);
        if (this.zones) peer.loc = this.zones.lookup(compact);
        swarm.peers.set(pkey, peer);
        this.enlist(swarm.listFor(seed, compact), peer);
      }
    }

    const peers = req.numwant > 0 ? this.select(swarm, req, peer, now) : [];
    return { complete: swarm.seeds, incomplete: swarm.leechers, downloaded: swarm.downloaded, peers };
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

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.swarms.clear();
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
      budget -= swarm.peers.size + 1;
      for (const p of swarm.peers.values()) if (p.expires <= now) this.removePeer(swarm, p);
      if (swarm.peers.size === 0 && swarm.lastSeen + this.ttl <= now) {
        this.swarms.delete(swarm.key);
      }
    }
  }

  private enlist(list: PeerList, p: Peer): void {
    list.add(p);
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

  private select(swarm: Swarm, req: AnnounceRequest, self: Peer | undefined, now: number): Peer[] {
    // Seeds have nothing to gain from other seeds.
    const lists: PeerList[] = [];
    if (req.family !== 6) { if (!req.seed) lists.push(swarm.s4); lists.push(swarm.l4); }
    if (req.family !== 4) { if (!req.seed) lists.push(swarm.s6); lists.push(swarm.l6); }
    const selfAddr = req.compact;
    const ok = (p: Peer): boolean => p !== self && p.expires > now && !p.compact.equals(selfAddr);
    const out: Peer[] = [];
    const loc = self?.loc;
    if (this.zones && loc) return this.selectByLocality(lists, req.numwant, ok, loc);

    let total = 0;
    for (const l of lists) total += l.arr.length;
    if (total <= req.numwant + 1) {
      for (const l of lists) for (const p of l.arr) if (ok(p)) out.push(p);
      return out;
    }
    // Proportional share per list, then a second pass fills any shortfall left by skipped peers.
    const pos: number[] = [];
    for (const l of lists) pos.push(sampleInto(l, 0, Math.floor((req.numwant * l.arr.length) / total), out, ok));
    for (let i = 0; i < lists.length && out.length < req.numwant; i++) {
      pos[i] = sampleInto(lists[i]!, pos[i]!, req.numwant - out.length, out, ok);
    }
    return out;
  }

  private selectByLocality(lists: PeerList[], numwant: number, ok: (p: Peer) => boolean, loc: Location): Peer[] {
    let total = 0;
    for (const l of lists) total += l.arr.length;
    let candidates: Peer[] = [];
    if (total <= LOCALITY_SAMPLE) {
      for (const l of lists) for (const p of l.arr) if (ok(p)) candidates.push(p);
    } else {
      for (const l of lists) sampleInto(l, 0, Math.ceil((LOCALITY_SAMPLE * l.arr.length) / total), candidates, ok);
    }
    const tiers: Peer[][] = [[], [], []];
    for (const p of candidates) tiers[localityTier(loc, p.loc)]!.push(p);
    candidates = [];
    for (const t of tiers) {
      // Random within a tier: everyone in the same rack should not get the same few peers.
      for (let i = 0; i < t.length && candidates.length < numwant; i++) {
        const j = i + Math.floor(Math.random() * (t.length - i));
        const tmp = t[i]!; t[i] = t[j]!; t[j] = tmp;
        candidates.push(t[i]!);
      }
      if (candidates.length >= numwant) break;
    }
    return candidates;
  }
}

/**
 * Partial Fisher–Yates over the list's own array starting at `start`: positions before the returned
 * index hold this announce's picks. Reordering the swarm list is harmless and saves a copy.
 */
function sampleInto(list: PeerList, start: number, k: number, out: Peer[], ok: (p: Peer) => boolean): number {
  const arr = list.arr;
  const n = arr.length;
  let i = start;
  let taken = 0;
  for (; i < n && taken < k; i++) {
    const j = i + Math.floor(Math.random() * (n - i));
    if (j !== i) {
      const a = arr[i]!, b = arr[j]!;
      arr[i] = b; b.idx = i;
      arr[j] = a; a.idx = j;
    }
    const p = arr[i]!;
    if (ok(p)) { out.push(p); taken++; }
  }
  return i;
}
