import type { PeerWire } from '../wire/peer-wire.js';
import type { HandshakeInfo } from '../wire/types.js';
import { Bitfield } from '../util/bitfield.js';
import { RateMeter } from './rate-meter.js';
import type { SeedingPeer } from './initial-seeding.js';

/** One block we asked a peer for. */
export interface OutstandingRequest {
  index: number;
  begin: number;
  length: number;
}

/** One block a peer asked us for, waiting to be read from storage and sent. */
export interface IncomingRequest {
  index: number;
  begin: number;
  length: number;
}

/**
 * Per-connection state. It holds no policy: the torrent decides what to request, whom to unchoke and whom to ban;
 * the peer only remembers what was said on the wire and counts bytes.
 */
export class Peer implements SeedingPeer {
  /** Set right after construction: the wire's handler needs the peer, and the peer needs the wire. */
  wire!: PeerWire;
  readonly handshake: HandshakeInfo;
  readonly host: string;
  readonly port: number;
  readonly outbound: boolean;
  readonly connectedAt = Date.now();

  // Choke/interest state, both directions (BEP 3 starts everyone choked and not interested).
  amChoking = true;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;

  /** Pieces the peer has; `isSeed` is kept separately so have-all needs no per-piece work. */
  bits: Bitfield;
  isSeed = false;
  /** Wanted pieces we lack that this peer has: interest is `interestingCount > 0`, updated incrementally. */
  interestingCount = 0;

  /** Requests we sent and have not been answered. Key: `requestKey(index, begin)`. */
  readonly outstanding = new Map<number, OutstandingRequest>();
  /** Requests the peer sent us, in arrival order. */
  readonly uploadQueue: IncomingRequest[] = [];
  serving = false;
  /** Requests refused (choked, full queue, piece missing) since we last unchoked it: a flood detector. */
  refusedRequests = 0;

  /** BEP 6 allowed-fast pieces the peer granted us. */
  readonly allowedFast = new Set<number>();
  /** Largest number of outstanding requests the peer accepts (BEP 10 `reqq`); 250 is the usual default. */
  maxRequests = 250;
  clientName = '';
  /** Listen port from the extended handshake (for inbound peers, whose source port is ephemeral). */
  listenPort = 0;

  readonly downloadMeter = new RateMeter();
  readonly uploadMeter = new RateMeter();
  downloaded = 0;
  uploaded = 0;
  /** Time the last requested block arrived, to find snubbing peers. */
  lastBlockAt = Date.now();
  hashFailures = 0;
  /** The in-flight piece a block is being copied into right now (owned by the downloader). */
  copyTarget: object | null = null;
  snubbed = false;
  closed = false;
  banned = false;

  constructor(handshake: HandshakeInfo, host: string, port: number, outbound: boolean, pieceCount: number) {
    this.handshake = handshake;
    this.host = host;
    this.port = port;
    this.outbound = outbound;
    this.bits = new Bitfield(pieceCount);
  }

  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  get hasAll(): boolean {
    return this.isSeed || this.bits.complete;
  }

  // SeedingPeer (initial seeding)
  has(index: number): boolean {
    return this.isSeed || this.bits.get(index);
  }

  advertise(index: number): void {
    if (!this.closed) this.wire.have(index);
  }

  uploadRate(): number {
    return this.uploadMeter.rate();
  }
}

/** Blocks are at most 2^17 bytes and pieces at most 2^28, so this packs (index, begin/16KiB) into one safe integer. */
export function requestKey(index: number, begin: number): number {
  return index * 32768 + (begin >>> 14);
}
