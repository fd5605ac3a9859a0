import type { Duplex } from 'node:stream';
import { PeerWire } from '../wire/peer-wire.js';
import type { HandshakeInfo, WireHandler } from '../wire/types.js';
import { Bitfield } from '../util/bitfield.js';
import { ShoalError } from '../util/errors.js';
import { RateMeter } from '../engine/rate-meter.js';
import type { ExtensionConnection } from './extension.js';
import type { ExtensionRegistry } from './registry.js';

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

/** The downloader's per-connection state: only download.ts (and the torrent's snub timer through it) writes it. */
export class DownloadSlot {
  /** Requests we sent and have not been answered. Key: `requestKey(index, begin)`. */
  readonly outstanding = new Map<number, OutstandingRequest>();
  /** The in-flight piece a block is being copied into right now, and that block's number within the piece. */
  copyTarget: object | null = null;
  copyBlock = 0;
  /** Blocks asked for and blocks received (requested or not): a peer never has reason to send more than it was asked. */
  requested = 0;
  received = 0;
  /** Blocks that answered no request of ours exactly (wrong offset or size): a few and the peer is dropped. */
  badBlocks = 0;
  /** Time the last requested block arrived, to find snubbing peers. */
  lastBlockAt = Date.now();
  snubbed = false;
  /** Payload bytes received. */
  bytes = 0;
  readonly meter = new RateMeter();
  /** Pieces this peer alone delivered that failed their hash. */
  hashFailures = 0;
}

/**
 * An empty array whose elements V8 already holds as any value. A fresh `[]` holds small integers until the first
 * object goes in; optimized code that pushes into arrays of both kinds is thrown away when a new connection's array
 * gets its first push (bench/PROFILE.md, sixth session).
 */
function emptyArrayOfObjects<T>(): T[] {
  const a: unknown[] = [undefined];
  a.pop();
  return a as T[];
}

/** The uploader's per-connection state: only upload.ts writes it. */
export class UploadSlot {
  /** Requests the peer sent us, in arrival order. */
  readonly queue: IncomingRequest[] = emptyArrayOfObjects();
  serving = false;
  /** Requests refused (choked, full queue, piece missing) since we last unchoked it: a flood detector. */
  refused = 0;
  /** BEP 6 allowed-fast pieces we granted: served even while we choke the peer. */
  readonly granted = new Set<number>();
  bytes = 0;
  readonly meter = new RateMeter();
  /** Borrowed blocks handed to the transport, oldest first, until their writes complete (then released). */
  readonly sent: Buffer[] = emptyArrayOfObjects();
  /** Releases the oldest sent block; made once per connection by the uploader, so a block costs no closure. */
  onBlockWritten: (() => void) | null = null;
}

/**
 * What a connection reports to its owner (the swarm session). The connection has already updated its own state
 * (flags, bitfield) when these are called; piece indices are only reported once the piece count is known and
 * have been range-checked.
 */
export interface ConnectionEvents {
  choked(c: PeerConnection): void;
  unchoked(c: PeerConnection): void;
  interested(c: PeerConnection): void;
  notInterested(c: PeerConnection): void;
  /** A piece the peer did not have before (HAVE, or a later bitfield that aria2 sends as an update). */
  gotHave(c: PeerConnection, index: number): void;
  /** The peer's first bitfield is now `c.bits`. */
  gotBitfield(c: PeerConnection): void;
  /** The peer has everything. `previous` holds the pieces it had announced before (for availability), or null. */
  gotHaveAll(c: PeerConnection, previous: Bitfield | null): void;
  request(c: PeerConnection, index: number, begin: number, length: number): void;
  cancel(c: PeerConnection, index: number, begin: number, length: number): void;
  pieceStart(c: PeerConnection, index: number, begin: number, length: number): Buffer | null;
  piece(c: PeerConnection, index: number, begin: number, length: number): void;
  reject(c: PeerConnection, index: number, begin: number, length: number): void;
  allowedFast(c: PeerConnection, index: number): void;
  /** BEP 5 PORT: the peer runs a DHT node on this UDP port. */
  dhtPort(c: PeerConnection, port: number): void;
  extendedHandshake(c: PeerConnection): void;
  drain(c: PeerConnection): void;
  closed(c: PeerConnection, err?: Error): void;
}

/**
 * Extended-handshake key (value 1) of a peer that hides pieces while initial seeding but serves a request for any of
 * them: a streaming reader cannot wait for the piece it is blocked on to be offered.
 */
export const INITIAL_SEEDING_KEY = 'shoal_initial_seeding';

/** Haves remembered before we know the piece count (a magnet download): more than this is abuse. */
const MAX_EARLY_HAVES = 65536;

/**
 * One peer connection: a transport (any Duplex: TCP today, uTP later), its wire protocol, the choke/interest state of
 * both sides, the peer's bitfield and the BEP 10 extension registry. The downloader, uploader and swarm session use
 * only this typed interface, never the wire or the socket.
 *
 * The piece count may be unknown when the connection starts (magnet links): a bitfield and haves that arrive then are
 * kept and applied by `setPieceCount()` once the metadata is verified.
 */
export class PeerConnection implements ExtensionConnection {
  readonly handshake: HandshakeInfo;
  readonly host: string;
  readonly port: number;
  readonly outbound: boolean;
  readonly address: string;
  readonly connectedAt = Date.now();

  // Choke/interest state, both directions (BEP 3 starts everyone choked and not interested).
  amChoking = true;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;

  /** Pieces the peer has (empty until the piece count is known); `isSeed` is kept apart so have-all costs nothing per piece. */
  bits: Bitfield = new Bitfield(0);
  isSeed = false;
  /** Wanted pieces we lack that this peer has: interest is `interestingCount > 0`, maintained by the torrent. */
  interestingCount = 0;
  /** BEP 6 allowed-fast pieces the peer granted us. */
  readonly allowedFast = new Set<number>();
  /**
   * The peer has every piece and serves a request for any of them, though it announces them a few at a time (a Shoal
   * origin in initial seeding says so with `shoal_initial_seeding` in its extended handshake). Streaming asks it for
   * the pieces a reader needs; everything else still follows its announcements.
   */
  servesUnannounced = false;
  /** Largest number of outstanding requests the peer accepts (BEP 10 `reqq`); 250 is the usual default. */
  maxRequests = 250;
  clientName = '';
  /** Listen port from the extended handshake (for inbound peers, whose source port is ephemeral). */
  advertisedPort = 0;
  remoteHandshake: Record<string, unknown> | undefined;

  readonly download = new DownloadSlot();
  readonly upload = new UploadSlot();
  /** Set when the connection has been told our pieces (bitfield or have-none) and our extended handshake. */
  greeted = false;
  closed = false;
  banned = false;
  /** Why the connection ended, when it was an error. */
  closeReason: Error | undefined;
  /** Payload bytes either way when last looked at, and when that total last moved (sampled by the owner's tick). */
  payloadSeen = 0;
  lastPayloadAt = Date.now();

  private readonly wire: PeerWire;
  private readonly events: ConnectionEvents;
  private readonly registry: ExtensionRegistry;
  /** The remote's extension ids by name (BEP 10 `m`). */
  private remoteIds = new Map<string, number>();
  private pieceCount: number | null = null;
  private earlyBitfield: Buffer | null = null;
  private earlyHaves: number[] = [];
  private earlyHaveAll = false;

  constructor(transport: Duplex, handshake: HandshakeInfo, addr: { host: string; port: number }, outbound: boolean,
    rest: Buffer, events: ConnectionEvents, registry: ExtensionRegistry, pieceCount: number | null) {
    this.handshake = handshake;
    this.host = addr.host;
    this.port = addr.port;
    this.outbound = outbound;
    this.address = addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
    this.events = events;
    this.registry = registry;
    if (pieceCount !== null) this.setPieceCount(pieceCount);
    this.wire = new PeerWire(transport, this.wireHandler(), { fast: handshake.fast, extended: handshake.extended, rest });
  }

  get hasAll(): boolean {
    return this.isSeed || (this.bits.length > 0 && this.bits.complete);
  }

  has(index: number): boolean {
    return this.isSeed || this.bits.get(index);
  }

  // SeedingPeer (initial seeding)
  // An initial seed's advertisement is what the peer will ask for next: it does not wait for company.
  advertise(index: number): void {
    if (this.closed) return;
    this.wire.have(index);
    this.wire.flushHaves();
  }
  uploadRate(): number { return this.upload.meter.rate(); }

  /** The port the peer accepts connections on: its BEP 10 `p`, or the port we dialed; 0 when unknown. */
  get listenPort(): number {
    return this.advertisedPort > 0 ? this.advertisedPort : this.outbound ? this.port : 0;
  }

  get fast(): boolean { return this.handshake.fast; }
  get extended(): boolean { return this.handshake.extended; }
  get needsDrain(): boolean { return this.wire.needsDrain; }
  get writeBacklog(): number { return this.wire.writeBacklog; }
  /** HAVEs waiting to ride with our next message to this peer (see PeerWire.have). */
  get waitingHaves(): number { return this.wire.waitingHaveCount; }
  get bytesReceived(): number { return this.wire.bytesReceived; }
  get bytesSent(): number { return this.wire.bytesSent; }

  /**
   * The metadata is known: size the bitfield and apply what the peer announced before. Throws EWIRE when what it
   * announced does not fit the torrent (the caller drops it).
   */
  setPieceCount(n: number): void {
    if (this.pieceCount !== null) return;
    this.pieceCount = n;
    this.bits = new Bitfield(n);
    if (this.earlyHaveAll) this.isSeed = true;
    if (this.earlyBitfield) {
      try {
        this.bits = new Bitfield(n, this.earlyBitfield);
      } catch (err) {
        throw new ShoalError('EWIRE', `peer ${this.address}: bad bitfield: ${(err as Error).message}`);
      }
    }
    for (const i of this.earlyHaves) {
      if (i >= n) throw new ShoalError('EWIRE', `peer ${this.address}: have for piece ${i} out of range`);
      this.bits.set(i);
    }
    this.earlyBitfield = null;
    this.earlyHaves = [];
  }

  get knowsPieceCount(): boolean {
    return this.pieceCount !== null;
  }

  // ---- sending ----

  cork(): void { this.wire.cork(); }
  uncork(): void { this.wire.uncork(); }

  choke(): void {
    if (this.amChoking) return;
    this.amChoking = true;
    this.wire.choke();
  }

  unchoke(): void {
    if (!this.amChoking) return;
    this.amChoking = false;
    this.upload.refused = 0;
    this.wire.unchoke();
  }

  setInterested(want: boolean): void {
    if (want === this.amInterested || this.closed) return;
    this.amInterested = want;
    if (want) this.wire.interested(); else this.wire.notInterested();
  }

  /** (index, begin, length) triples, one write for all. */
  sendRequests(blocks: Uint32Array, count: number): void { this.wire.requests(blocks, count); }
  sendCancel(index: number, begin: number, length: number): void { this.wire.cancel(index, begin, length); }
  /** Rides with the next message to this peer, or leaves within HAVE_DELAY_MS (see PeerWire.have). */
  sendHave(index: number): void { if (!this.closed) this.wire.have(index); }
  /** Sends HAVEs still waiting for company now. */
  flushHaves(): void { this.wire.flushHaves(); }
  /**
   * Sends a block without copying it; false when the transport wants a drain first. `done` runs once the
   * transport no longer needs `block` (see PeerWire.piece).
   */
  sendPiece(index: number, begin: number, block: Buffer, done?: () => void): boolean { return this.wire.piece(index, begin, block, done); }
  sendReject(index: number, begin: number, length: number): void { if (this.fast) this.wire.reject(index, begin, length); }
  sendAllowedFast(index: number): void { if (this.fast) this.wire.allowedFast(index); }
  sendDhtPort(port: number): void { this.wire.port(port); }

  /**
   * Our first messages: what we have (a bitfield, have-all or have-none; nothing for an empty bitfield without the
   * fast extension) and our extended handshake. `have` is null while we do not know the metadata yet.
   */
  greet(have: Bitfield | null, extra: Record<string, unknown>, opts: { hideHave?: boolean } = {}): void {
    if (this.greeted || this.closed) return;
    this.greeted = true;
    this.wire.cork();
    if (opts.hideHave || have === null || have.empty) {
      if (this.fast) this.wire.haveNone();
    } else if (this.fast && have.complete) {
      this.wire.haveAll();
    } else {
      this.wire.bitfield(have.buffer);
    }
    if (this.extended) this.wire.extendedHandshake({ ...this.registry.handshake(), ...extra });
    this.wire.uncork();
  }

  // ---- ExtensionConnection ----

  supports(name: string): boolean {
    return (this.remoteIds.get(name) ?? 0) > 0;
  }

  sendExtended(name: string, payload: Buffer): boolean {
    const id = this.remoteIds.get(name);
    if (id === undefined || id === 0 || this.closed) return false;
    this.wire.extended(id, payload);
    return true;
  }

  /** Drops the connection because it broke the protocol. */
  close(reason: string): void {
    this.destroy(new ShoalError('EWIRE', `peer ${this.address}: ${reason}`));
  }

  /** Ends the connection; `err` says why when it is not a normal close. Idempotent. */
  destroy(err?: Error): void {
    this.wire.destroy(err);
  }

  // ---- receiving ----

  private wireHandler(): WireHandler {
    const c = this;
    const ev = this.events;
    return {
      onChoke() { c.peerChoking = true; ev.choked(c); },
      onUnchoke() { c.peerChoking = false; c.download.lastBlockAt = Date.now(); ev.unchoked(c); },
      onInterested() { c.peerInterested = true; ev.interested(c); },
      onNotInterested() { c.peerInterested = false; ev.notInterested(c); },
      onHave(index) {
        if (c.pieceCount === null) {
          if (c.earlyHaves.length >= MAX_EARLY_HAVES) return c.close('too many haves before the metadata');
          c.earlyHaves.push(index);
          return;
        }
        if (index >= c.pieceCount) return c.close(`have for piece ${index} out of range`);
        if (c.isSeed || c.bits.get(index)) return;
        c.bits.set(index);
        ev.gotHave(c, index);
      },
      onBitfield(raw) {
        if (c.pieceCount === null) {
          if (c.earlyBitfield !== null || c.earlyHaves.length > 0) return c.close('bitfield after other piece announcements');
          c.earlyBitfield = raw;
          return;
        }
        let parsed: Bitfield;
        try {
          parsed = new Bitfield(c.pieceCount, raw);
        } catch (err) {
          return c.close(`bad bitfield: ${(err as Error).message}`);
        }
        if (c.isSeed) return;
        if (!c.bits.empty) {
          // BEP 3 allows a bitfield only first, but aria2 sends later ones as updates: treat new bits as haves.
          for (const i of parsed.indices()) {
            if (c.bits.get(i)) continue;
            c.bits.set(i);
            ev.gotHave(c, i);
          }
          return;
        }
        c.bits = parsed;
        ev.gotBitfield(c);
      },
      onHaveAll() {
        if (c.pieceCount === null) { c.earlyHaveAll = true; return; }
        if (c.isSeed) return;
        c.isSeed = true;
        const previous = c.bits.empty ? null : c.bits;
        // Its earlier announcements are now part of "has everything": the owner takes them out of availability.
        c.bits = new Bitfield(c.pieceCount);
        ev.gotHaveAll(c, previous);
      },
      onHaveNone() { /* nothing to record */ },
      onRequest(index, begin, length) { ev.request(c, index, begin, length); },
      onCancel(index, begin, length) { ev.cancel(c, index, begin, length); },
      onPieceStart(index, begin, length) { return ev.pieceStart(c, index, begin, length); },
      onPiece(index, begin, length) { ev.piece(c, index, begin, length); },
      onPort(port) { if (port > 0) ev.dhtPort(c, port); },
      onSuggest() { /* rarest-first already knows better for our needs */ },
      onReject(index, begin, length) { ev.reject(c, index, begin, length); },
      onAllowedFast(index) {
        if (c.allowedFast.size >= 64) return;
        if (c.pieceCount !== null && index >= c.pieceCount) return;
        c.allowedFast.add(index);
        if (c.pieceCount !== null) ev.allowedFast(c, index);
      },
      onExtendedHandshake(dict) {
        const reqq = dict['reqq'];
        if (typeof reqq === 'number' && reqq > 0) c.maxRequests = Math.min(reqq, 2000);
        const v = dict['v'];
        if (Buffer.isBuffer(v)) c.clientName = v.toString('utf8').slice(0, 64);
        const p = dict['p'];
        if (typeof p === 'number' && p > 0 && p < 65536) c.advertisedPort = p;
        c.servesUnannounced = dict[INITIAL_SEEDING_KEY] === 1;
        const m = dict['m'];
        if (m !== null && typeof m === 'object' && !Buffer.isBuffer(m) && !Array.isArray(m)) {
          // A later handshake replaces the map; id 0 disables an extension (BEP 10).
          const ids = new Map<string, number>();
          for (const [name, id] of Object.entries(m as Record<string, unknown>)) {
            if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 255) ids.set(name, id);
          }
          c.remoteIds = ids;
        }
        c.remoteHandshake = dict;
        ev.extendedHandshake(c);
        c.registry.handshakeReceived(c, dict);
      },
      onExtended(id, payload) { c.registry.dispatch(c, id, payload); },
      onDrain() { ev.drain(c); },
      onClose(err) {
        if (c.closed) return;
        c.closed = true;
        c.closeReason = err;
        c.registry.closed(c);
        ev.closed(c, err);
      },
    };
  }
}

/** Blocks are at most 2^17 bytes and pieces at most 2^28, so this packs (index, begin/16KiB) into one safe integer. */
export function requestKey(index: number, begin: number): number {
  return index * 32768 + (begin >>> 14);
}
