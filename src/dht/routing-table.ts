import { ID_BITS, commonPrefixBits, compareDistance, randomIdWithPrefix } from './node-id.js';

/** A node that answered one of our queries. */
export interface DhtNode {
  readonly id: Buffer;
  readonly host: string;
  readonly port: number;
  /** Last time it answered us (ms). */
  lastSeen: number;
  /** Queries in a row it failed to answer. */
  failures: number;
}

export interface Bucket {
  nodes: DhtNode[];
  /** Nodes that answered while the bucket was full, newest last; promoted when a member goes bad. */
  replacements: DhtNode[];
  lastChanged: number;
}

/** BEP 5: a node not heard from for 15 minutes is questionable; one failing several queries in a row is bad. */
export const QUESTIONABLE_AFTER_MS = 15 * 60_000;
export const BAD_AFTER_FAILURES = 2;

export type HeardResult =
  | { result: 'added' | 'updated' | 'rejected' }
  /** Bucket full of good nodes: the node waits as a replacement; ping `probe` and evict it if it stays silent. */
  | { result: 'replacement'; probe: DhtNode | undefined };

function addrKey(host: string, port: number): string {
  return `${host}:${port}`;
}

/**
 * Kademlia routing table as a list of buckets by shared-prefix length with our id: bucket i holds the nodes
 * sharing exactly i leading bits with us, the last bucket everything closer. Only the last bucket (the one
 * containing our own id) ever splits, which is the classic "split around our own id" rule.
 */
export class RoutingTable {
  readonly buckets: Bucket[];
  private readonly byId = new Map<string, DhtNode>();
  private readonly byAddr = new Map<string, DhtNode>();

  constructor(readonly ownId: Buffer, readonly k = 8, private readonly now: () => number = Date.now) {
    this.buckets = [{ nodes: [], replacements: [], lastChanged: now() }];
  }

  get size(): number { return this.byId.size; }

  bucketIndex(id: Buffer): number {
    return Math.min(commonPrefixBits(id, this.ownId), this.buckets.length - 1);
  }

  get(id: Buffer): DhtNode | undefined { return this.byId.get(id.toString('hex')); }

  getByAddr(host: string, port: number): DhtNode | undefined { return this.byAddr.get(addrKey(host, port)); }

  /** True when a node with this id would get a place (free slot or a possible split) without evicting anyone. */
  wouldAccept(id: Buffer): boolean {
    if (id.equals(this.ownId) || this.byId.has(id.toString('hex'))) return false;
    const i = this.bucketIndex(id);
    return this.buckets[i]!.nodes.length < this.k || (i === this.buckets.length - 1 && this.buckets.length < ID_BITS);
  }

  /** Records that a node answered us. */
  heard(id: Buffer, host: string, port: number): HeardResult {
    const now = this.now();
    if (id.length !== 20 || id.equals(this.ownId)) return { result: 'rejected' };
    const hex = id.toString('hex');
    const existing = this.byId.get(hex);
    if (existing) {
      // Same id from another address: keep the one we know (an id is cheap to forge, an answering address is not).
      if (existing.host !== host || existing.port !== port) return { result: 'rejected' };
      existing.lastSeen = now;
      existing.failures = 0;
      return { result: 'updated' };
    }
    const atAddr = this.byAddr.get(addrKey(host, port));
    if (atAddr) {
      // An address that changes its id is either restarted or lying; only replace a node that went silent.
      if (atAddr.failures === 0 && now - atAddr.lastSeen < QUESTIONABLE_AFTER_MS) return { result: 'rejected' };
      this.remove(atAddr);
    }
    const node: DhtNode = { id: Buffer.from(id), host, port, lastSeen: now, failures: 0 };
    for (;;) {
      const i = this.bucketIndex(id);
      const b = this.buckets[i]!;
      const rIdx = b.replacements.findIndex((r) => r.id.equals(id));
      if (rIdx >= 0) b.replacements.splice(rIdx, 1);
      if (b.nodes.length < this.k) {
        this.insert(b, node, now);
        return { result: 'added' };
      }
      if (i === this.buckets.length - 1 && this.buckets.length < ID_BITS) {
        this.split();
        continue;
      }
      const bad = b.nodes.find((n) => n.failures >= BAD_AFTER_FAILURES);
      if (bad) {
        this.remove(bad);
        this.insert(b, node, now);
        return { result: 'added' };
      }
      b.replacements.push(node);
      if (b.replacements.length > this.k) b.replacements.shift();
      let probe: DhtNode | undefined;
      for (const n of b.nodes) {
        if ((n.failures > 0 || now - n.lastSeen >= QUESTIONABLE_AFTER_MS) && (!probe || n.lastSeen < probe.lastSeen)) probe = n;
      }
      return { result: 'replacement', probe };
    }
  }

  /**
   * A node did not answer a query. With `evict` (it was probed because a replacement is waiting), or once it is
   * bad and a replacement exists, it makes room for the newest replacement.
   */
  failed(id: Buffer, evict = false): void {
    const node = this.byId.get(id.toString('hex'));
    if (!node) return;
    node.failures++;
    const b = this.buckets[this.bucketIndex(id)]!;
    if ((evict || node.failures >= BAD_AFTER_FAILURES) && b.replacements.length > 0) {
      this.remove(node);
      const r = b.replacements.pop()!;
      if (!this.byAddr.has(addrKey(r.host, r.port))) this.insert(b, r, this.now());
    } else if (node.failures >= 2 * BAD_AFTER_FAILURES) {
      this.remove(node);
    }
  }

  remove(node: DhtNode): void {
    const hex = node.id.toString('hex');
    if (this.byId.get(hex) !== node) return;
    const b = this.buckets[this.bucketIndex(node.id)]!;
    const i = b.nodes.indexOf(node);
    if (i >= 0) b.nodes.splice(i, 1);
    this.byId.delete(hex);
    this.byAddr.delete(addrKey(node.host, node.port));
  }

  /** The `n` known nodes closest to `target`, closest first. */
  closest(target: Buffer, n: number): DhtNode[] {
    // Answered for every find_node/get_peers we receive, so only the buckets that can matter are sorted.
    // With c = bucketIndex(target): nodes in buckets >= c are closer to the target than any node in a bucket
    // j < c, and among those a larger j is closer. So take buckets c.. and then c-1, c-2, ... until n.
    const c = this.bucketIndex(target);
    const picked: DhtNode[] = [];
    for (let j = c; j < this.buckets.length; j++) picked.push(...this.buckets[j]!.nodes);
    for (let j = c - 1; j >= 0 && picked.length < n; j--) picked.push(...this.buckets[j]!.nodes);
    picked.sort((a, b) => compareDistance(a.id, b.id, target));
    return picked.length > n ? picked.slice(0, n) : picked;
  }

  all(): DhtNode[] {
    const out: DhtNode[] = [];
    for (const b of this.buckets) out.push(...b.nodes);
    return out;
  }

  /** Buckets not changed for `ageMs`, with a random id inside each to look up. */
  staleBuckets(ageMs: number): Array<{ index: number; target: Buffer }> {
    const now = this.now();
    const out: Array<{ index: number; target: Buffer }> = [];
    this.buckets.forEach((b, index) => {
      if (now - b.lastChanged >= ageMs) out.push({ index, target: this.randomIdInBucket(index) });
    });
    return out;
  }

  randomIdInBucket(index: number): Buffer {
    return randomIdWithPrefix(this.ownId, index, index < this.buckets.length - 1);
  }

  /** Marks a bucket as refreshed (a lookup into its range was started). */
  touch(index: number): void {
    const b = this.buckets[index];
    if (b) b.lastChanged = this.now();
  }

  private insert(b: Bucket, node: DhtNode, now: number): void {
    b.nodes.push(node);
    b.lastChanged = now;
    this.byId.set(node.id.toString('hex'), node);
    this.byAddr.set(addrKey(node.host, node.port), node);
  }

  private split(): void {
    const lastIndex = this.buckets.length - 1;
    const last = this.buckets[lastIndex]!;
    const next: Bucket = { nodes: [], replacements: [], lastChanged: last.lastChanged };
    this.buckets.push(next);
    const stay: DhtNode[] = [];
    for (const n of last.nodes) (commonPrefixBits(n.id, this.ownId) > lastIndex ? next.nodes : stay).push(n);
    last.nodes = stay;
    const stayR: DhtNode[] = [];
    for (const n of last.replacements) (commonPrefixBits(n.id, this.ownId) > lastIndex ? next.replacements : stayR).push(n);
    last.replacements = stayR;
  }
}
