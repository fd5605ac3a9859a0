import type { PeerAddress } from '../discovery/compact.js';
import { compactAddress } from './krpc.js';

export interface PeerStoreOptions {
  /** Most info-hashes kept; the least recently announced one is dropped first. */
  maxInfoHashes?: number;
  /** Most peers kept per info-hash; the least recently announced one is dropped first. */
  maxPeersPerInfoHash?: number;
  /** An announce is forgotten after this long unless renewed (BEP 5 suggests ~30 min like trackers). */
  ttlMs?: number;
  now?: () => number;
}

interface Swarm {
  /** Compact 6-byte address (latin1 key) → expiry time; Map order = announce order, oldest first. */
  peers: Map<string, number>;
}

/** Peers that announced to us, bounded in info-hashes and peers per info-hash, expiring after `ttlMs`. */
export class PeerStore {
  private readonly swarms = new Map<string, Swarm>();
  private readonly maxInfoHashes: number;
  private readonly maxPeers: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private peerCount = 0;

  constructor(opts: PeerStoreOptions = {}) {
    this.maxInfoHashes = opts.maxInfoHashes ?? 5000;
    this.maxPeers = opts.maxPeersPerInfoHash ?? 200;
    this.ttlMs = opts.ttlMs ?? 30 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  get infoHashes(): number { return this.swarms.size; }
  get peers(): number { return this.peerCount; }

  add(infoHash: Buffer, peer: PeerAddress): void {
    const compact = compactAddress(peer);
    if (!compact) return;
    const key = infoHash.toString('latin1');
    let s = this.swarms.get(key);
    if (s) {
      // Re-insert to keep Map order = recency.
      this.swarms.delete(key);
    } else {
      if (this.swarms.size >= this.maxInfoHashes) {
        const oldest = this.swarms.keys().next().value as string;
        this.peerCount -= this.swarms.get(oldest)!.peers.size;
        this.swarms.delete(oldest);
      }
      s = { peers: new Map() };
    }
    this.swarms.set(key, s);
    const pk = compact.toString('latin1');
    if (s.peers.delete(pk)) this.peerCount--;
    else if (s.peers.size >= this.maxPeers) {
      s.peers.delete(s.peers.keys().next().value as string);
      this.peerCount--;
    }
    s.peers.set(pk, this.now() + this.ttlMs);
    this.peerCount++;
  }

  /** Up to `max` live peers as compact 6-byte strings, most recent first. */
  get(infoHash: Buffer, max = 50): Buffer[] {
    const s = this.swarms.get(infoHash.toString('latin1'));
    if (!s) return [];
    const now = this.now();
    const out: Buffer[] = [];
    const all = [...s.peers];
    for (let i = all.length - 1; i >= 0 && out.length < max; i--) {
      if (all[i]![1] > now) out.push(Buffer.from(all[i]![0], 'latin1'));
    }
    return out;
  }

  /** Drops expired peers and empty info-hashes. Peers are in announce order, so each scan stops at the first live one. */
  expire(): void {
    const now = this.now();
    for (const [key, s] of this.swarms) {
      for (const [pk, exp] of s.peers) {
        if (exp > now) break;
        s.peers.delete(pk);
        this.peerCount--;
      }
      if (s.peers.size === 0) this.swarms.delete(key);
    }
  }
}
