import type { Socket } from 'node:net';
import { connectPeer } from '../wire/handshake.js';
import type { HandshakeInfo } from '../wire/types.js';
import { formatPeerAddress, type PeerAddress } from '../discovery/compact.js';

export interface PeerManagerHost {
  readonly infoHash: Buffer;
  readonly peerId: Buffer;
  readonly localAddress: string | undefined;
  /** Connections this torrent may still open (per-torrent and client-wide limits). */
  connectionSlots(): number;
  /** Peers connected now, by address, to avoid dialing them twice. */
  isConnected(address: string): boolean;
  /** False when the torrent refused the connection (e.g. a duplicate of one it keeps). */
  attach(socket: Socket, handshake: HandshakeInfo, rest: Buffer, addr: PeerAddress, outbound: boolean): boolean;
  wantsPeers(): boolean;
}

interface Candidate {
  addr: PeerAddress;
  failures: number;
  nextAttemptAt: number;
  dialing: boolean;
}

/** Half-open connections at once; more just queue in the kernel and time out together. */
const MAX_DIALING = 16;
const CONNECT_TIMEOUT_MS = 10_000;
/** Give up on an address after this many failed connects in a row. */
const MAX_FAILURES = 5;
/** Remembered addresses per torrent; trackers and PEX can otherwise grow this without bound. */
const MAX_CANDIDATES = 2000;
const DUPLICATE_BACKOFF_MS = 60_000;

/**
 * Knows the addresses of a swarm and keeps the torrent connected to enough of them: dials with back-off,
 * forgets addresses that keep failing, never redials banned ones.
 */
export class PeerManager {
  private readonly host: PeerManagerHost;
  private readonly candidates = new Map<string, Candidate>();
  private readonly banned = new Set<string>();
  /** Our own listen addresses; a tracker often returns us to ourselves. */
  private readonly self = new Set<string>();
  private dialing = 0;
  private closed = false;

  constructor(host: PeerManagerHost) {
    this.host = host;
  }

  add(addr: PeerAddress): void {
    const key = formatPeerAddress(addr);
    if (this.closed || this.banned.has(key) || this.self.has(key)) return;
    const existing = this.candidates.get(key);
    if (existing) {
      // Heard of it again: a fresh chance if it had failed.
      if (!existing.dialing && existing.failures > 0) existing.nextAttemptAt = Math.min(existing.nextAttemptAt, Date.now());
      return;
    }
    if (this.candidates.size >= MAX_CANDIDATES) return;
    this.candidates.set(key, { addr, failures: 0, nextAttemptAt: 0, dialing: false });
  }

  ban(address: string): void {
    this.banned.add(address);
    this.candidates.delete(address);
  }

  isBanned(host: string): boolean {
    for (const b of this.banned) if (b.startsWith(host.includes(':') ? `[${host}]:` : `${host}:`)) return true;
    return false;
  }

  markSelf(address: string): void {
    this.self.add(address);
    this.candidates.delete(address);
  }

  get knownCount(): number {
    return this.candidates.size;
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
    try {
      const opts: Parameters<typeof connectPeer>[1] = {
        infoHash: this.host.infoHash, peerId: this.host.peerId, fast: true, extended: true, timeoutMs: CONNECT_TIMEOUT_MS,
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
      // Refused as a duplicate: we are already connected to this peer the other way; don't redial soon.
      if (!this.host.attach(socket, handshake, rest, c.addr, true)) c.nextAttemptAt = Date.now() + DUPLICATE_BACKOFF_MS;
    } catch {
      c.failures++;
      if (c.failures >= MAX_FAILURES) this.candidates.delete(key);
      else c.nextAttemptAt = Date.now() + 2_000 * 2 ** c.failures;
    } finally {
      c.dialing = false;
      this.dialing--;
    }
  }

  /** A connected peer went away; allow a reconnect later (not immediately, to avoid hammering). */
  disconnected(addr: PeerAddress, wasError: boolean): void {
    const key = formatPeerAddress(addr);
    const c = this.candidates.get(key);
    if (c) c.nextAttemptAt = Date.now() + (wasError ? 30_000 : 10_000);
  }

  close(): void {
    this.closed = true;
    this.candidates.clear();
  }
}
