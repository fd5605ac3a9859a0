import type { Socket } from 'node:net';
import { connectPeer } from '../wire/handshake.js';
import type { HandshakeInfo } from '../wire/types.js';
import { formatPeerAddress, type PeerAddress } from '../discovery/compact.js';
import type { PeerSourceKind } from '../peers/source.js';
import { mayContact } from '../util/sandbox.js';

export interface PeerManagerHost {
  readonly infoHash: Buffer;
  readonly peerId: Buffer;
  readonly localAddress: string | undefined;
  /** Set the DHT bit in our handshake (BEP 5). */
  readonly dht: boolean;
  /** Connections this torrent may still open (per-torrent and client-wide limits). */
  connectionSlots(): number;
  /** Peers connected now, by address, to avoid dialing them twice. */
  isConnected(address: string): boolean;
  /** False when the torrent refused the connection (e.g. a duplicate of one it keeps). */
  attach(socket: Socket, handshake: HandshakeInfo, rest: Buffer, addr: PeerAddress, outbound: boolean): boolean;
  wantsPeers(): boolean;
  /** Cap of the back-off between attempts (default MAX_BACKOFF_MS). */
  readonly maxBackoffMs?: number;
}

interface Candidate {
  addr: PeerAddress;
  kind: PeerSourceKind;
  failures: number;
  nextAttemptAt: number;
  dialing: boolean;
  lastError: string | undefined;
}

/** Half-open connections at once; more just queue in the kernel and time out together. */
const MAX_DIALING = 16;
const CONNECT_TIMEOUT_MS = 10_000;
/** Forget an address a source merely heard of after this many failed connects in a row; it comes back when heard again. */
const MAX_FAILURES = 6;
/** Remembered addresses per torrent; trackers and PEX can otherwise grow this without bound. */
const MAX_CANDIDATES = 2000;
/** Back-off after a failed connect: 1 s, 2 s, 4 s … up to this. A first failure is often transient (a seed still starting). */
const MAX_BACKOFF_MS = 30_000;
const DUPLICATE_BACKOFF_MS = 60_000;

/** Addresses the user gave us are retried for as long as the torrent runs. */
function isExplicit(kind: PeerSourceKind): boolean {
  return kind === 'explicit' || kind === 'magnet';
}

/** Source precedence when one address is heard from several: an explicit address stays explicit. */
const RANK: Record<PeerSourceKind, number> = { explicit: 6, magnet: 5, tracker: 4, lsd: 3, dht: 2, pex: 1, incoming: 0 };

/**
 * Knows the addresses of a swarm and keeps the torrent connected to enough of them: dials with back-off,
 * forgets addresses that keep failing (except explicit ones), never redials banned ones.
 */
export class PeerManager {
  private readonly host: PeerManagerHost;
  private readonly candidates = new Map<string, Candidate>();
  private readonly banned = new Set<string>();
  private readonly bannedHosts = new Set<string>();
  /** Our own listen addresses; a tracker often returns us to ourselves. */
  private readonly self = new Set<string>();
  private dialing = 0;
  private closed = false;
  /** Counters for diagnostics ("found peers but every handshake failed"). */
  attempts = 0;
  failures = 0;
  /** Dials that reached a handshake. */
  succeeded = 0;
  lastFailure: string | undefined;

  constructor(host: PeerManagerHost) {
    this.host = host;
  }

  /** Returns true when the address is new. */
  add(addr: PeerAddress, kind: PeerSourceKind = 'tracker'): boolean {
    const key = formatPeerAddress(addr);
    if (this.closed || this.banned.has(key) || this.self.has(key)) return false;
    // Under SHOAL_SANDBOX=1 nothing leaves loopback and the test range, whatever a tracker or peer tells us.
    if (!mayContact(addr.host)) return false;
    const existing = this.candidates.get(key);
    if (existing) {
      if (RANK[kind] > RANK[existing.kind]) existing.kind = kind;
      // Heard of it again: a fresh chance if it had failed.
      if (!existing.dialing && existing.failures > 0) existing.nextAttemptAt = Math.min(existing.nextAttemptAt, Date.now());
      return false;
    }
    if (this.candidates.size >= MAX_CANDIDATES && !isExplicit(kind)) return false;
    this.candidates.set(key, { addr, kind, failures: 0, nextAttemptAt: 0, dialing: false, lastError: undefined });
    return true;
  }

  ban(address: string, host?: string): void {
    this.banned.add(address);
    if (host !== undefined) this.bannedHosts.add(host);
    this.candidates.delete(address);
  }

  isBanned(host: string): boolean {
    return this.bannedHosts.has(host);
  }

  markSelf(address: string): void {
    this.self.add(address);
    this.candidates.delete(address);
  }

  get knownCount(): number {
    return this.candidates.size;
  }

  /** Why each explicit address is not connected, for "no peers" diagnostics. */
  explicitStatus(): { address: string; failures: number; lastError: string | undefined }[] {
    const out = [];
    for (const [address, c] of this.candidates) {
      if (isExplicit(c.kind)) out.push({ address, failures: c.failures, lastError: c.lastError });
    }
    return out;
  }

  /** Is an address waiting that could be dialed now if there were a free slot? */
  hasDialable(): boolean {
    if (this.closed || this.dialing >= MAX_DIALING) return false;
    const now = Date.now();
    for (const [key, c] of this.candidates) {
      if (!c.dialing && c.nextAttemptAt <= now && !this.host.isConnected(key)) return true;
    }
    return false;
  }

  /**
   * Addresses tried without success, explicit ones first, each with its attempts and last error, for a "no peers"
   * warning: `a:p (3 attempts: connect ECONNREFUSED), …`, at most `limit` of them.
   */
  failureSummary(limit = 8): string {
    const failed = [...this.candidates].filter(([, c]) => c.failures > 0 && c.lastError !== undefined);
    failed.sort(([, a], [, b]) => RANK[b.kind] - RANK[a.kind]);
    const shown = failed.slice(0, limit).map(([key, c]) => `${key} (${c.failures} attempt${c.failures === 1 ? '' : 's'}: ${c.lastError})`);
    if (failed.length > limit) shown.push(`and ${failed.length - limit} more`);
    return shown.join(', ');
  }

  /** Start connections to as many candidates as the limits allow. Cheap to call often. */
  dial(): void {
    if (this.closed || !this.host.wantsPeers()) return;
    let slots = Math.min(this.host.connectionSlots() - this.dialing, MAX_DIALING - this.dialing);
    if (slots <= 0) return;
    const now = Date.now();
    for (const [key, c] of this.candidates) {
      if (slots <= 0) break;
      if (c.dialing || c.nextAttemptAt > now || this.host.isConnected(key)) continue;
      slots--;
      void this.connect(key, c);
    }
  }

  private async connect(key: string, c: Candidate): Promise<void> {
    c.dialing = true;
    this.dialing++;
    this.attempts++;
    try {
      const opts: Parameters<typeof connectPeer>[1] = {
        infoHash: this.host.infoHash, peerId: this.host.peerId, fast: true, extended: true, dht: this.host.dht, timeoutMs: CONNECT_TIMEOUT_MS,
      };
      if (this.host.localAddress) opts.localAddress = this.host.localAddress;
      const { socket, handshake, rest } = await connectPeer(c.addr, opts);
      if (this.closed || this.host.isConnected(key)) {
        socket.destroy();
        return;
      }
      if (handshake.peerId.equals(this.host.peerId)) {
        socket.destroy();
        this.markSelf(key);
        return;
      }
      c.failures = 0;
      c.lastError = undefined;
      this.succeeded++;
      // Refused as a duplicate: we are already connected to this peer the other way; don't redial soon.
      if (!this.host.attach(socket, handshake, rest, c.addr, true)) c.nextAttemptAt = Date.now() + DUPLICATE_BACKOFF_MS;
    } catch (err) {
      this.failures++;
      c.failures++;
      c.lastError = (err as Error).message;
      this.lastFailure = `${key}: ${c.lastError}`;
      if (c.failures >= MAX_FAILURES && !isExplicit(c.kind)) this.candidates.delete(key);
      else c.nextAttemptAt = Date.now() + Math.min(this.host.maxBackoffMs ?? MAX_BACKOFF_MS, 1000 * 2 ** (c.failures - 1));
    } finally {
      c.dialing = false;
      this.dialing--;
    }
  }

  /** A connected peer went away; allow a reconnect later (not immediately, to avoid hammering). */
  disconnected(addr: PeerAddress, wasError: boolean): void {
    const key = formatPeerAddress(addr);
    const c = this.candidates.get(key);
    if (!c) return;
    const delay = Math.min(this.host.maxBackoffMs ?? MAX_BACKOFF_MS, isExplicit(c.kind) ? (wasError ? 5_000 : 2_000) : wasError ? 30_000 : 10_000);
    c.nextAttemptAt = Date.now() + delay;
  }

  close(): void {
    this.closed = true;
    this.candidates.clear();
  }
}
