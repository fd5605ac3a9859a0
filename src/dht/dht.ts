import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import { readFile, writeFile, rename } from 'node:fs/promises';
import type { PeerAddress } from '../discovery/compact.js';
import { parsePeerAddress, formatPeerAddress, isValidPort } from '../discovery/compact.js';
import { ShoalError } from '../util/errors.js';
import { isSandboxAddress, sandboxed } from '../util/sandbox.js';
import { type BDict } from '../bencode/index.js';
import {
  MAX_PACKET_BYTES, ERR_METHOD_UNKNOWN, ERR_PROTOCOL, KrpcDecodeError, decodeKrpc, decodeCompactNodes,
  encodeCompactNodes, encodeError, encodeQuery, encodeResponse, type KrpcMessage, type NodeInfo,
} from './krpc.js';
import { compareDistance, randomNodeId } from './node-id.js';
import { RoutingTable, type DhtNode } from './routing-table.js';
import { TokenManager } from './tokens.js';
import { PeerStore } from './peer-store.js';
import { IpRateLimiter } from './rate-limit.js';

/** Well-known public bootstrap routers; the CLI's default. The library default is none. */
export const PUBLIC_ROUTERS: readonly string[] = Object.freeze([
  'router.bittorrent.com:6881',
  'dht.transmissionbt.com:6881',
  'router.utorrent.com:6881',
  'dht.libtorrent.org:25401',
]);

const ROUTER_HOSTS = new Set(PUBLIC_ROUTERS.map((r) => r.slice(0, r.lastIndexOf(':'))));

export interface DhtOptions {
  /** UDP port to bind (0 = any); Shoal uses the same number as its TCP peer port. */
  port: number;
  /** Bind address, default '0.0.0.0'. IPv4 only. */
  host?: string;
  /** Bootstrap nodes, as addresses or 'host:port' text. */
  bootstrap?: PeerAddress[] | string[];
  /** Routing table saved here on close, loaded on listen. */
  stateFile?: string;
  nodeId?: Buffer;
  /** Per-IP limit on incoming queries (default 25/s, burst 100); `false` turns it off. */
  rateLimit?: { perSecond: number; burst: number } | false;
  /** How long to wait for an answer before a retry or giving up (default 2000 ms). */
  queryTimeoutMs?: number;
  /** Resolves a bootstrap host name to IPv4 addresses (default: the system resolver). */
  resolve?: (host: string) => Promise<string[]>;
  /** Token secret rotation period (default 5 min). */
  tokenRotateMs?: number;
  peerStore?: { maxInfoHashes?: number; maxPeersPerInfoHash?: number; ttlMs?: number };
}

export interface DhtStats {
  nodes: number;
  buckets: number;
  replacements: number;
  lookups: number;
  lookupsActive: number;
  inFlight: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  queriesIn: number;
  malformedIn: number;
  rateLimited: number;
  /** Sends refused by the sandbox policy (nothing left the machine). */
  refusedSends: number;
  timeouts: number;
  peersStored: number;
  infoHashesStored: number;
}

export interface LookupOptions {
  /** Announce this port to the closest nodes once the lookup converged. */
  announcePort?: number;
  /** BEP 5 implied_port: the receiver uses the UDP source port instead (for NAT). */
  impliedPort?: boolean;
  onPeers?: (peers: PeerAddress[]) => void;
  signal?: AbortSignal;
}

export interface LookupResult {
  peers: PeerAddress[];
  /** Length of the longest chain of answers the lookup followed (1 = answers from the nodes we started with). */
  rounds: number;
  ms: number;
  /** Queries sent. */
  queried: number;
  /** announce_peer queries that were acknowledged. */
  announced: number;
}

const K = 8;
const ALPHA = 3;
const MAX_IN_FLIGHT = 256;
const MAX_LOOKUP_QUERIES = 200;
const MAX_LOOKUP_MS = 30_000;
const MAX_CANDIDATES = 128;
/** Per answer: what we read of a "nodes" string and a "values" list; anything beyond is ignored. */
const MAX_NODES_PER_ANSWER = 16;
const MAX_VALUES_PER_ANSWER = 100;
const MAX_PEERS_PER_LOOKUP = 1000;
const MAX_TOKEN_BYTES = 64;
const REFRESH_TICK_MS = 60_000;
const BUCKET_REFRESH_MS = 15 * 60_000;
const BOOTSTRAP_TIMEOUT_MS = 15_000;
const MAX_PENDING_VERIFY = 64;
const STATE_VERSION = 1;
const MAX_SELF_HOSTS = 8;

interface Pending {
  host: string;
  port: number;
  packet: Buffer;
  retriesLeft: number;
  timeoutMs: number;
  timer: NodeJS.Timeout;
  resolve: (m: Extract<KrpcMessage, { y: 'r' }>) => void;
  reject: (e: Error) => void;
}

interface Candidate {
  id: Buffer | undefined;
  host: string;
  port: number;
  state: 'new' | 'pending' | 'done' | 'failed';
  depth: number;
  token?: Buffer;
}

class QueryError extends Error {
  constructor(message: string, readonly kind: 'timeout' | 'remote' | 'refused' | 'closed') {
    super(message);
  }
}

function addrKey(host: string, port: number): string {
  return `${host}:${port}`;
}

/** BEP 5 mainline DHT node: KRPC over UDP (IPv4), Kademlia routing table, lookups, announces, a peer store. */
export class Dht extends EventEmitter {
  private socket: Socket | undefined;
  private _nodeId: Buffer;
  private _port = 0;
  private table: RoutingTable;
  private readonly tokens: TokenManager;
  private readonly store: PeerStore;
  private readonly limiter: IpRateLimiter | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextTid = Math.floor(Math.random() * 0x10000);
  private readonly bootstrapAddrs: Array<PeerAddress>;
  private readonly pendingVerify = new Set<string>();
  /** Addresses at which we ourselves are reachable, to drop nodes that hand us back our own address. */
  private readonly selfHosts = new Set<string>(['127.0.0.1']);
  private readonly queryTimeoutMs: number;
  private readonly resolve: (host: string) => Promise<string[]>;
  private refreshTimer: NodeJS.Timeout | undefined;
  private bootstrapDone: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly active = new Set<AbortController>();
  private readonly s = {
    lookups: 0, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, queriesIn: 0, malformedIn: 0,
    rateLimited: 0, refusedSends: 0, timeouts: 0,
  };

  constructor(private readonly opts: DhtOptions) {
    super();
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new ShoalError('EUSAGE', `dht: port ${opts.port} out of range 0..65535`);
    if (opts.nodeId !== undefined && opts.nodeId.length !== 20) throw new ShoalError('EUSAGE', 'dht: nodeId must be 20 bytes');
    const host = opts.host ?? '0.0.0.0';
    if (!isIPv4(host)) throw new ShoalError('EUSAGE', `dht: bind address ${host} is not IPv4 (IPv6 DHT is not supported yet)`);
    this._nodeId = opts.nodeId ? Buffer.from(opts.nodeId) : randomNodeId();
    this.table = new RoutingTable(this._nodeId, K);
    this.tokens = new TokenManager(opts.tokenRotateMs);
    this.store = new PeerStore(opts.peerStore);
    const rl = opts.rateLimit ?? { perSecond: 25, burst: 100 };
    this.limiter = rl === false ? undefined : new IpRateLimiter(rl.perSecond, rl.burst);
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 2000;
    this.resolve = opts.resolve ?? (async (h) => (await dnsLookup(h, { family: 4, all: true })).map((a) => a.address));
    this.bootstrapAddrs = [];
    const sandbox = sandboxed();
    for (const b of opts.bootstrap ?? []) {
      let addr: PeerAddress;
      try {
        addr = typeof b === 'string' ? parsePeerAddress(b) : b;
      } catch (e) {
        throw new ShoalError('EUSAGE', `dht: bootstrap node ${String(b)}: ${(e as Error).message}`);
      }
      if (!isValidPort(addr.port)) throw new ShoalError('EUSAGE', `dht: bootstrap node ${formatPeerAddress(addr)} has an invalid port`);
      // The public routers are the one place the DHT would reach the internet unasked: never under the sandbox.
      if (sandbox && ROUTER_HOSTS.has(addr.host.toLowerCase())) continue;
      this.bootstrapAddrs.push(addr);
    }
    if (host !== '0.0.0.0') this.selfHosts.add(host);
  }

  get nodeId(): Buffer { return this._nodeId; }
  get port(): number { return this._port; }

  async listen(): Promise<number> {
    if (this.socket) throw new ShoalError('EUSAGE', 'dht: listen() called twice');
    if (this.closed) throw new ShoalError('EUSAGE', 'dht: closed');
    const saved = await this.loadState();
    const sock = createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(this.opts.port, this.opts.host ?? '0.0.0.0', () => { sock.off('error', reject); resolve(); });
    }).catch((e: Error) => {
      sock.close();
      throw new ShoalError('EUSAGE', `dht: cannot bind UDP ${this.opts.host ?? '0.0.0.0'}:${this.opts.port}: ${e.message}`, { cause: e });
    });
    this.socket = sock;
    this._port = sock.address().port;
    sock.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
    sock.on('error', (e) => this.emit('warning', `dht: socket error: ${e.message}`));
    this.refreshTimer = setInterval(() => this.refresh(), REFRESH_TICK_MS);
    this.refreshTimer.unref();
    this.bootstrapDone = this.bootstrap(saved);
    return this._port;
  }

  /** Resolves once the first bootstrap round has finished (successfully or not), within a bounded time. */
  bootstrapped(): Promise<void> {
    return this.bootstrapDone;
  }

  /** Finds peers for `infoHash` (get_peers), optionally announcing our port to the closest nodes. */
  async lookup(infoHash: Buffer, opts: LookupOptions = {}): Promise<LookupResult> {
    if (infoHash.length !== 20) throw new ShoalError('EUSAGE', 'dht: info-hash must be 20 bytes');
    if (opts.announcePort !== undefined && !isValidPort(opts.announcePort)) throw new ShoalError('EUSAGE', `dht: announce port ${opts.announcePort} out of range`);
    this.assertOpen();
    this.s.lookups++;
    return this.iterate(infoHash, 'get_peers', opts);
  }

  /** A node learned from a BEP 5 PORT message: ping it and add it if it answers. */
  addNode(addr: PeerAddress): void {
    if (!this.socket || this.closed || !isValidPort(addr.port) || !isIPv4(addr.host)) return;
    this.verify(addr.host, addr.port);
  }

  stats(): DhtStats {
    let replacements = 0;
    for (const b of this.table.buckets) replacements += b.replacements.length;
    return {
      nodes: this.table.size,
      buckets: this.table.buckets.length,
      replacements,
      lookups: this.s.lookups,
      lookupsActive: this.active.size,
      inFlight: this.pending.size,
      packetsIn: this.s.packetsIn,
      packetsOut: this.s.packetsOut,
      bytesIn: this.s.bytesIn,
      bytesOut: this.s.bytesOut,
      queriesIn: this.s.queriesIn,
      malformedIn: this.s.malformedIn,
      rateLimited: this.s.rateLimited,
      refusedSends: this.s.refusedSends,
      timeouts: this.s.timeouts,
      peersStored: this.store.peers,
      infoHashesStored: this.store.infoHashes,
    };
  }

  /** Known nodes, closest to `target` first (diagnostics and tests). */
  nodes(target: Buffer = this._nodeId, n = Number.MAX_SAFE_INTEGER): Array<{ id: Buffer; host: string; port: number }> {
    return this.table.closest(target, n).map((x) => ({ id: x.id, host: x.host, port: x.port }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ac of this.active) ac.abort();
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new QueryError('dht closed', 'closed'));
    }
    this.pending.clear();
    const sock = this.socket;
    this.socket = undefined;
    if (sock) await new Promise<void>((resolve) => sock.close(() => resolve()));
    await this.saveState();
  }

  // ---- sending ---------------------------------------------------------------------------------------------

  /**
   * The one place a datagram leaves. Under SHOAL_SANDBOX=1 anything outside loopback and 198.18.0.0/15 is
   * refused here, whatever part of the DHT asked for it (bootstrap, lookups, answers to spoofed sources).
   */
  private send(buf: Buffer, host: string, port: number): boolean {
    const sock = this.socket;
    if (!sock) return false;
    if (!isIPv4(host) || !isValidPort(port)) return false;
    if (sandboxed() && !isSandboxAddress(host)) {
      this.s.refusedSends++;
      if (this.s.refusedSends <= 3) this.emit('warning', `dht: SHOAL_SANDBOX=1: refusing to send to ${host}:${port}`);
      return false;
    }
    this.s.packetsOut++;
    this.s.bytesOut += buf.length;
    sock.send(buf, port, host, (err) => {
      if (err && !this.closed) this.emit('warning', `dht: send to ${host}:${port} failed: ${err.message}`);
    });
    return true;
  }

  private query(host: string, port: number, q: string, args: Record<string, unknown>, retries = 0): Promise<Extract<KrpcMessage, { y: 'r' }>> {
    return new Promise((resolve, reject) => {
      if (!this.socket || this.closed) return reject(new QueryError('dht not listening', 'closed'));
      if (this.pending.size >= MAX_IN_FLIGHT) return reject(new QueryError('too many queries in flight', 'refused'));
      let tid = '';
      for (let i = 0; i < 0x10000; i++) {
        this.nextTid = (this.nextTid + 1) & 0xffff;
        const t = Buffer.from([this.nextTid >> 8, this.nextTid & 0xff]);
        if (!this.pending.has(t.toString('latin1'))) { tid = t.toString('latin1'); break; }
      }
      const packet = encodeQuery(Buffer.from(tid, 'latin1'), q, { id: this._nodeId, ...args });
      if (!this.send(packet, host, port)) return reject(new QueryError(`sending to ${host}:${port} refused`, 'refused'));
      const p: Pending = {
        host, port, packet, retriesLeft: retries, timeoutMs: this.queryTimeoutMs, resolve, reject,
        timer: setTimeout(() => this.onTimeout(tid), this.queryTimeoutMs),
      };
      this.pending.set(tid, p);
    });
  }

  private onTimeout(tid: string): void {
    const p = this.pending.get(tid);
    if (!p) return;
    if (p.retriesLeft > 0 && this.send(p.packet, p.host, p.port)) {
      p.retriesLeft--;
      p.timer = setTimeout(() => this.onTimeout(tid), p.timeoutMs);
      return;
    }
    this.pending.delete(tid);
    this.s.timeouts++;
    p.reject(new QueryError(`no answer from ${p.host}:${p.port}`, 'timeout'));
  }

  // ---- receiving -------------------------------------------------------------------------------------------

  private onPacket(buf: Buffer, rinfo: RemoteInfo): void {
    this.s.packetsIn++;
    this.s.bytesIn += buf.length;
    if (buf.length > MAX_PACKET_BYTES || rinfo.family !== 'IPv4' || rinfo.port === 0) { this.s.malformedIn++; return; }
    let msg: KrpcMessage;
    try {
      msg = decodeKrpc(buf);
    } catch (e) {
      this.s.malformedIn++;
      // Answer a malformed query (we could read its transaction id) with 203, within the rate limit.
      if (e instanceof KrpcDecodeError && e.isQuery && e.t && this.allowQuery(rinfo.address)) {
        this.send(encodeError(e.t, ERR_PROTOCOL, e.message.slice(0, 100)), rinfo.address, rinfo.port);
      }
      return;
    }
    if (msg.y === 'q') {
      this.s.queriesIn++;
      if (!this.allowQuery(rinfo.address)) return;
      this.onQuery(msg, rinfo);
      return;
    }
    const tid = msg.t.toString('latin1');
    const p = this.pending.get(tid);
    // Answers must come from the address we asked: anything else is stale or spoofed.
    if (!p || p.host !== rinfo.address || p.port !== rinfo.port) return;
    this.pending.delete(tid);
    clearTimeout(p.timer);
    if (msg.y === 'e') {
      p.reject(new QueryError(`error ${msg.code} from ${p.host}:${p.port}: ${msg.message}`, 'remote'));
      return;
    }
    this.heard(msg.id, rinfo.address, rinfo.port);
    if (msg.ip && msg.ip.length === 6) this.learnSelfHost(`${msg.ip[0]}.${msg.ip[1]}.${msg.ip[2]}.${msg.ip[3]}`);
    p.resolve(msg);
  }

  private allowQuery(ip: string): boolean {
    if (!this.limiter || this.limiter.allow(ip)) return true;
    this.s.rateLimited++;
    return false;
  }

  private onQuery(msg: Extract<KrpcMessage, { y: 'q' }>, rinfo: RemoteInfo): void {
    const { address: ip, port } = rinfo;
    const a = msg.a;
    const requester = { host: ip, port };
    const reply = (r: Record<string, unknown>) => this.send(encodeResponse(msg.t, { id: this._nodeId, ...r }, requester), ip, port);
    const fail = (code: number, text: string) => this.send(encodeError(msg.t, code, text), ip, port);
    switch (msg.q) {
      case 'ping':
        reply({});
        break;
      case 'find_node': {
        const target = a['target'];
        if (!Buffer.isBuffer(target) || target.length !== 20) { fail(ERR_PROTOCOL, 'find_node: target must be 20 bytes'); return; }
        reply({ nodes: this.compactClosest(target) });
        break;
      }
      case 'get_peers': {
        const ih = a['info_hash'];
        if (!Buffer.isBuffer(ih) || ih.length !== 20) { fail(ERR_PROTOCOL, 'get_peers: info_hash must be 20 bytes'); return; }
        const values = this.store.get(ih, 50);
        const r: Record<string, unknown> = { token: this.tokens.issue(ip), nodes: this.compactClosest(ih) };
        if (values.length > 0) r['values'] = values;
        reply(r);
        break;
      }
      case 'announce_peer': {
        const ih = a['info_hash'], token = a['token'], p = a['port'], implied = a['implied_port'];
        if (!Buffer.isBuffer(ih) || ih.length !== 20) { fail(ERR_PROTOCOL, 'announce_peer: info_hash must be 20 bytes'); return; }
        if (!Buffer.isBuffer(token) || !this.tokens.verify(ip, token)) { fail(ERR_PROTOCOL, 'announce_peer: bad token'); return; }
        const peerPort = implied === 1 ? port : p;
        if (typeof peerPort !== 'number' || !isValidPort(peerPort)) { fail(ERR_PROTOCOL, 'announce_peer: invalid port'); return; }
        this.store.add(ih, { host: ip, port: peerPort });
        reply({});
        break;
      }
      default:
        fail(ERR_METHOD_UNKNOWN, 'Method Unknown');
        return;
    }
    // A node that queries us may be worth a place in the table; it gets one only if it answers a ping.
    if (!this.table.get(msg.id) && this.table.wouldAccept(msg.id)) this.verify(ip, port);
  }

  private compactClosest(target: Buffer): Buffer {
    return encodeCompactNodes(this.table.closest(target, K));
  }

  // ---- routing table upkeep --------------------------------------------------------------------------------

  private heard(id: Buffer, host: string, port: number): void {
    if (this.isSelf(id, host, port)) return;
    const res = this.table.heard(id, host, port);
    if (res.result === 'replacement' && res.probe) this.probe(res.probe);
  }

  /** Pings a questionable node because a replacement is waiting; silence (after one retry) evicts it. */
  private probe(node: DhtNode): void {
    const key = addrKey(node.host, node.port);
    if (this.pendingVerify.has(key) || this.pendingVerify.size >= MAX_PENDING_VERIFY) return;
    this.pendingVerify.add(key);
    this.query(node.host, node.port, 'ping', {}, 1)
      .catch((e: QueryError) => { if (e.kind === 'timeout') this.table.failed(node.id, true); })
      .finally(() => this.pendingVerify.delete(key));
  }

  private verify(host: string, port: number): void {
    const key = addrKey(host, port);
    if (this.pendingVerify.has(key) || this.pendingVerify.size >= MAX_PENDING_VERIFY) return;
    if (this.selfHosts.has(host) && port === this._port) return;
    this.pendingVerify.add(key);
    this.query(host, port, 'ping', {}, 1).catch(() => {}).finally(() => this.pendingVerify.delete(key));
  }

  /** What answering nodes say our address is (BEP 42 "ip"); a few are kept, so liars cannot grow the set. */
  private learnSelfHost(ip: string): void {
    if (this.selfHosts.has(ip)) return;
    if (this.selfHosts.size >= MAX_SELF_HOSTS) {
      for (const h of this.selfHosts) {
        if (h !== '127.0.0.1' && h !== this.opts.host) { this.selfHosts.delete(h); break; }
      }
    }
    this.selfHosts.add(ip);
  }

  private isSelf(id: Buffer, host: string, port: number): boolean {
    return id.equals(this._nodeId) || (port === this._port && this.selfHosts.has(host));
  }

  private async resolveAll(addrs: PeerAddress[]): Promise<PeerAddress[]> {
    const out: PeerAddress[] = [];
    await Promise.all(addrs.map(async (a) => {
      if (isIPv4(a.host)) { out.push(a); return; }
      try {
        const ips = await Promise.race([
          this.resolve(a.host),
          new Promise<string[]>((_, rej) => setTimeout(() => rej(new Error('timed out')), 5000).unref()),
        ]);
        for (const ip of ips.slice(0, 4)) if (isIPv4(ip)) out.push({ host: ip, port: a.port });
      } catch (e) {
        this.emit('warning', `dht: cannot resolve bootstrap node ${a.host}: ${(e as Error).message}`);
      }
    }));
    return out;
  }

  private async bootstrap(saved: PeerAddress[]): Promise<void> {
    const timer = new Promise<void>((r) => setTimeout(r, BOOTSTRAP_TIMEOUT_MS).unref());
    await Promise.race([this.bootstrapRound(saved), timer]);
  }

  private async bootstrapRound(saved: PeerAddress[] = []): Promise<void> {
    const seeds = [...saved, ...(await this.resolveAll(this.bootstrapAddrs))];
    if (this.closed) return;
    if (seeds.length === 0 && this.table.size === 0) return;
    try {
      await this.iterate(this._nodeId, 'find_node', {}, seeds);
    } catch (e) {
      if (!this.closed) this.emit('warning', `dht: bootstrap failed: ${(e as Error).message}`);
    }
  }

  private refresh(): void {
    if (this.closed) return;
    this.store.expire();
    if (this.table.size === 0) {
      void this.bootstrapRound();
      return;
    }
    for (const { index, target } of this.table.staleBuckets(BUCKET_REFRESH_MS).slice(0, 4)) {
      this.table.touch(index);
      this.iterate(target, 'find_node', {}).catch(() => {});
    }
  }

  // ---- iterative lookup ------------------------------------------------------------------------------------

  private iterate(target: Buffer, kind: 'find_node' | 'get_peers', opts: LookupOptions, seeds: PeerAddress[] = []): Promise<LookupResult> {
    const started = Date.now();
    const ac = new AbortController();
    this.active.add(ac);
    const onAbort = () => ac.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const candidates: Candidate[] = [];
    const seen = new Set<string>();
    const peers: PeerAddress[] = [];
    const peerSeen = new Set<string>();
    let queried = 0, rounds = 0, inFlight = 0;

    const addCandidate = (c: Candidate): void => {
      const key = addrKey(c.host, c.port);
      if (seen.has(key)) return;
      if (c.id && this.isSelf(c.id, c.host, c.port)) return;
      if (c.id === undefined && this.selfHosts.has(c.host) && c.port === this._port) return;
      seen.add(key);
      // Unknown ids (bootstrap addresses) sort first; the rest by distance to the target.
      let i = candidates.length;
      if (c.id) {
        const id = c.id;
        let lo = 0, hi = candidates.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          const m = candidates[mid]!;
          if (m.id === undefined || compareDistance(m.id, id, target) <= 0) lo = mid + 1; else hi = mid;
        }
        i = lo;
      } else {
        i = 0;
      }
      candidates.splice(i, 0, c);
      if (candidates.length > MAX_CANDIDATES) {
        // Drop the farthest node we have not asked yet; keep ones in flight or answered.
        for (let j = candidates.length - 1; j >= 0; j--) {
          if (candidates[j]!.state === 'new' || candidates[j]!.state === 'failed') { candidates.splice(j, 1); break; }
        }
      }
    };

    if (kind === 'get_peers') {
      // We are a node of the DHT too: announces we received for this info-hash count.
      const local = this.store.get(target, MAX_VALUES_PER_ANSWER);
      if (local.length > 0) queueMicrotask(() => this.absorb({ values: local } as BDict, kind, { id: undefined, host: '', port: 0, state: 'done', depth: 0 }, peers, peerSeen, opts, () => {}));
    }
    for (const n of this.table.closest(target, K * 2)) addCandidate({ id: n.id, host: n.host, port: n.port, state: 'new', depth: 1 });
    for (const s of seeds) addCandidate({ id: undefined, host: s.host, port: s.port, state: 'new', depth: 1 });

    return new Promise<LookupResult>((resolve) => {
      let finished = false;
      const finish = async () => {
        if (finished) return;
        finished = true;
        clearTimeout(deadline);
        opts.signal?.removeEventListener('abort', onAbort);
        let announced = 0;
        if (kind === 'get_peers' && opts.announcePort !== undefined && !ac.signal.aborted && !this.closed) {
          const targets = candidates.filter((c) => c.state === 'done' && c.token).slice(0, K);
          const results = await Promise.allSettled(targets.map((c) => this.query(c.host, c.port, 'announce_peer', {
            info_hash: target, port: opts.announcePort, token: c.token, ...(opts.impliedPort ? { implied_port: 1 } : {}),
          }, 1)));
          announced = results.filter((r) => r.status === 'fulfilled').length;
          queried += targets.length;
        }
        this.active.delete(ac);
        resolve({ peers, rounds, ms: Date.now() - started, queried, announced });
      };
      const deadline = setTimeout(() => ac.abort(), MAX_LOOKUP_MS);
      ac.signal.addEventListener('abort', () => void finish(), { once: true });
      if (opts.signal?.aborted) { ac.abort(); return; }

      const pump = (): void => {
        if (finished || ac.signal.aborted || this.closed) { void finish(); return; }
        let done = 0, waiting = false;
        for (const c of candidates) {
          if (done >= K) break;
          if (c.state === 'failed') continue;
          if (c.state === 'done') { done++; continue; }
          if (c.state === 'pending') { waiting = true; continue; }
          // 'new' among the K closest: ask it if a slot is free.
          waiting = true;
          if (inFlight >= ALPHA || queried >= MAX_LOOKUP_QUERIES) continue;
          ask(c);
        }
        if (!waiting || (inFlight === 0 && queried >= MAX_LOOKUP_QUERIES)) void finish();
      };

      const ask = (c: Candidate): void => {
        c.state = 'pending';
        inFlight++;
        queried++;
        const args: Record<string, unknown> = kind === 'get_peers' ? { info_hash: target } : { target };
        this.query(c.host, c.port, kind, args).then((msg) => {
          c.state = 'done';
          if (!c.id) {
            // A bootstrap address answered: now we know where it sorts.
            const i = candidates.indexOf(c);
            if (i >= 0) candidates.splice(i, 1);
            seen.delete(addrKey(c.host, c.port));
            c.id = msg.id;
            addCandidate(c);
          }
          rounds = Math.max(rounds, c.depth);
          this.absorb(msg.r, kind, c, peers, peerSeen, opts, (n) => addCandidate({ ...n, state: 'new', depth: c.depth + 1 }));
        }, (e: QueryError) => {
          c.state = 'failed';
          if (c.id && e.kind === 'timeout') this.table.failed(c.id);
        }).finally(() => {
          inFlight--;
          pump();
        });
      };

      pump();
    });
  }

  /** Takes what one answer of a lookup offers: closer nodes, a token, peers. Everything is bounded. */
  private absorb(r: BDict, kind: string, c: Candidate, peers: PeerAddress[], peerSeen: Set<string>, opts: LookupOptions,
    add: (n: NodeInfo) => void): void {
    const nodes = r['nodes'];
    if (Buffer.isBuffer(nodes)) for (const n of decodeCompactNodes(nodes, MAX_NODES_PER_ANSWER)) add(n);
    if (kind !== 'get_peers') return;
    const token = r['token'];
    if (Buffer.isBuffer(token) && token.length > 0 && token.length <= MAX_TOKEN_BYTES) c.token = token;
    const values = r['values'];
    if (!Array.isArray(values)) return;
    const fresh: PeerAddress[] = [];
    const sandbox = sandboxed();
    for (let i = 0; i < values.length && i < MAX_VALUES_PER_ANSWER && peers.length < MAX_PEERS_PER_LOOKUP; i++) {
      const v = values[i];
      if (!Buffer.isBuffer(v) || v.length !== 6) continue;
      const port = v.readUInt16BE(4);
      if (port === 0) continue;
      const host = `${v[0]}.${v[1]}.${v[2]}.${v[3]}`;
      if (sandbox && !isSandboxAddress(host)) continue;
      const key = addrKey(host, port);
      if (peerSeen.has(key)) continue;
      peerSeen.add(key);
      const p = { host, port };
      peers.push(p);
      fresh.push(p);
    }
    if (fresh.length > 0 && opts.onPeers) {
      try { opts.onPeers(fresh); } catch (e) { this.emit('warning', `dht: onPeers callback threw: ${(e as Error).message}`); }
    }
  }

  // ---- state file ------------------------------------------------------------------------------------------

  private async loadState(): Promise<PeerAddress[]> {
    const file = this.opts.stateFile;
    if (!file) return [];
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.emit('warning', `dht: cannot read state ${file}: ${(e as Error).message}`);
      return [];
    }
    try {
      const st = JSON.parse(text) as { version?: number; nodeId?: string; nodes?: Array<{ host?: unknown; port?: unknown }> };
      if (st.version !== STATE_VERSION) throw new Error(`unknown version ${String(st.version)}`);
      if (!this.opts.nodeId && typeof st.nodeId === 'string' && /^[0-9a-f]{40}$/.test(st.nodeId)) {
        // Keeping our id across restarts keeps us where the network's tables expect us.
        this._nodeId = Buffer.from(st.nodeId, 'hex');
        this.table = new RoutingTable(this._nodeId, K);
      }
      const out: PeerAddress[] = [];
      for (const n of (Array.isArray(st.nodes) ? st.nodes : []).slice(0, 2000)) {
        if (typeof n?.host === 'string' && isIPv4(n.host) && typeof n.port === 'number' && isValidPort(n.port)) out.push({ host: n.host, port: n.port });
      }
      return out;
    } catch (e) {
      this.emit('warning', `dht: ignoring unreadable state ${file}: ${(e as Error).message}`);
      return [];
    }
  }

  private async saveState(): Promise<void> {
    const file = this.opts.stateFile;
    if (!file) return;
    const state = {
      version: STATE_VERSION,
      nodeId: this._nodeId.toString('hex'),
      savedAt: new Date().toISOString(),
      nodes: this.table.all().map((n) => ({ id: n.id.toString('hex'), host: n.host, port: n.port })),
    };
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(state) + '\n');
      await rename(tmp, file);
    } catch (e) {
      this.emit('warning', `dht: cannot save state ${file}: ${(e as Error).message}`);
    }
  }

  private assertOpen(): void {
    if (!this.socket || this.closed) throw new ShoalError('EUSAGE', 'dht: not listening (call listen() first)');
  }
}

