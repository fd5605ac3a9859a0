import { createHash } from 'node:crypto';
import { decodePrefix, encode, isDict } from '../bencode/index.js';
import type { BDict } from '../bencode/index.js';
import type { Extension, ExtensionConnection } from '../connection/extension.js';

/**
 * BEP 9 `ut_metadata`: serves our info dictionary to peers and fetches it from several peers at once when we only
 * have the info-hash (magnet links).
 *
 * Fetching: peers that advertise `ut_metadata` and a `metadata_size` are grouped by that size; we fetch the size most
 * peers agree on, a few 16 KiB requests per peer at a time. Nothing in the bytes can be checked before the whole
 * dictionary hashes to the info-hash, so when an assembly from several peers fails we cannot tell who lied: we then
 * fetch the whole dictionary from one claimer at a time ("isolation"), which pins the failure on one peer. Metadata
 * is small (typically well under 1 MiB), so the re-fetch costs little, and honest peers are never dropped for a
 * liar's pieces. A peer that sent a whole wrong dictionary alone is dropped and its claims ignored from then on.
 */

export interface MetadataHost {
  readonly infoHash: Buffer;
  /** The raw bencoded info dict once known (served to others); undefined while fetching. */
  info(): Buffer | undefined;
  /** Called once, with bytes whose SHA-1 equals infoHash. */
  metadataReceived(info: Buffer): void;
  warning(message: string): void;
}

export interface UtMetadataOptions {
  /** Largest metadata we will fetch (bytes); peers claiming more are dropped. */
  maxSize?: number;
  /** A request unanswered this long is asked of another peer (the late answer is still accepted). */
  requestTimeoutMs?: number;
  now?: () => number;
}

/**
 * 16 MiB: an info dict is ~20 bytes per piece plus the file list, so this holds ~800k piece hashes (3 TB at 4 MiB
 * pieces) or a list of a few 100k files, far above real torrents (almost all under 1 MiB), while bounding what one
 * lying peer can make us allocate per fetch. libtorrent's default is 30 MiB.
 */
export const DEFAULT_MAX_METADATA_SIZE = 16 * 1024 * 1024;
export const METADATA_PIECE_SIZE = 16 * 1024;
export const DEFAULT_METADATA_REQUEST_TIMEOUT_MS = 10_000;
/** Requests in flight per peer: enough to keep a link busy, few enough to spread the pieces over peers. */
const MAX_IN_FLIGHT_PER_PEER = 4;
const MAX_UNANSWERED_PER_PEER = 2 * MAX_IN_FLIGHT_PER_PEER;
/** A peer that rejected a piece is not asked for it again for this long. */
const REJECT_BACKOFF_FACTOR = 3;
/** Bound on one message before any parsing: a data message is a small dict plus at most one 16 KiB piece. */
const MAX_MESSAGE_SIZE = METADATA_PIECE_SIZE + 1024;
/** Per-connection budget for requests (and messages we did not ask for): a burst, refilled over a minute. */
const FLOOD_BASE_BURST = 32;
const FLOOD_WINDOW_MS = 60_000;

/** Addresses remembered as having sent a whole wrong dictionary (oldest forgotten first). */
const MAX_BAD_SOURCES = 1024;
/** Failed mixed assemblies remembered for blame (each costs 20 bytes per piece). */
const MAX_EVIDENCE = 4;

const MSG_REQUEST = 0, MSG_DATA = 1, MSG_REJECT = 2;

interface Peer {
  readonly conn: ExtensionConnection;
  /** The remote's `metadata_size` when it advertised a usable one. */
  size: number | undefined;
  /** Pieces we asked for and that were neither answered nor rejected yet (late answers are welcome). */
  readonly asked: Set<number>;
  /** Requests counted against the in-flight limit, with the time sent. */
  readonly inFlight: Map<number, number>;
  /** piece -> when this peer rejected it or timed out on it. */
  readonly refused: Map<number, number>;
  /** True once this peer had its turn fetching alone for its size. */
  isolationTried: boolean;
  tokens: number;
  tokensAt: number;
}

interface Attempt {
  readonly size: number;
  readonly numPieces: number;
  readonly buf: Buffer;
  readonly have: Uint8Array;
  received: number;
  /** piece -> peer that delivered it. */
  readonly from: (Peer | undefined)[];
  /** piece -> peer it is in flight with (the latest request). */
  readonly pending: Map<number, Peer>;
  /** Set when fetching the whole dict from a single peer to find out who sends bad data. */
  readonly isolate: Peer | undefined;
}

function sha1(b: Buffer): Buffer {
  return createHash('sha1').update(b).digest();
}

function pieceOf(buf: Buffer, i: number): Buffer {
  return buf.subarray(i * METADATA_PIECE_SIZE, Math.min(buf.length, (i + 1) * METADATA_PIECE_SIZE));
}

export function formatSize(n: number): string {
  const MiB = 1024 * 1024;
  if (n >= MiB) return n % MiB === 0 ? `${n / MiB} MiB` : `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return n % 1024 === 0 ? `${n / 1024} KiB` : `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

export class UtMetadata implements Extension {
  readonly name = 'ut_metadata' as const;
  private readonly host: MetadataHost;
  private readonly maxSize: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly peers = new Map<ExtensionConnection, Peer>();
  /** Connections we dropped or saw close: anything still arriving on them is ignored, and no state is kept. */
  private readonly gone = new WeakSet<ExtensionConnection>();
  private attempt: Attempt | undefined;
  /**
   * Addresses that sent, alone, a whole dictionary that failed the hash. Their claims are ignored when they
   * reconnect (explicit peers are redialed). Kept per address, not per size: a liar claiming the true size must not
   * stop an honest peer that turns up later with that same size from being asked.
   */
  private readonly badSources = new Set<string>();
  /** Sizes where a multi-peer assembly failed: fetched one peer at a time from then on. */
  private readonly isolating = new Set<number>();
  /** Per-piece digests and senders of failed mixed assemblies, to pin the bad pieces once the true bytes are known. */
  private evidence: { size: number; digests: Buffer[]; from: (Peer | undefined)[] }[] = [];
  private done = false;
  private scheduling = false;
  private rescheduled = false;

  constructor(host: MetadataHost, opts: UtMetadataOptions = {}) {
    this.host = host;
    this.maxSize = opts.maxSize ?? DEFAULT_MAX_METADATA_SIZE;
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_METADATA_REQUEST_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
  }

  /** True while we still need the info dict. */
  get fetching(): boolean {
    return !this.done && this.host.info() === undefined;
  }

  progress(): { pieces: number; received: number; peers: number } {
    let peers = 0;
    for (const p of this.peers.values()) if (p.size !== undefined) peers++;
    const a = this.attempt;
    return { pieces: a?.numPieces ?? 0, received: a?.received ?? 0, peers };
  }

  handshakeFields(): Record<string, unknown> {
    const info = this.host.info();
    return info !== undefined ? { metadata_size: info.length } : {};
  }

  onHandshake(conn: ExtensionConnection, dict: Record<string, unknown>): void {
    if (this.gone.has(conn)) return;
    const peer = this.peerFor(conn);
    const claimed = dict['metadata_size'];
    const oldSize = peer.size;
    peer.size = undefined;
    if (conn.supports(this.name) && typeof claimed === 'number' && Number.isSafeInteger(claimed) && claimed > 0 && this.fetching
      && !this.badSources.has(conn.address)) {
      if (claimed > this.maxSize) {
        const what = `peer ${conn.address} claims metadata of ${formatSize(claimed)}, over the ${formatSize(this.maxSize)} limit`;
        this.host.warning(what);
        this.drop(peer, `ut_metadata: ${what}`);
        return;
      }
      peer.size = claimed;
    }
    if (oldSize !== peer.size) this.forgetRequests(peer);
    this.schedule();
  }

  onClose(conn: ExtensionConnection): void {
    this.gone.add(conn);
    const peer = this.peers.get(conn);
    if (peer === undefined) return;
    this.forget(peer);
    this.schedule();
  }

  onMessage(conn: ExtensionConnection, payload: Buffer): void {
    if (this.gone.has(conn)) return;
    const peer = this.peerFor(conn);
    if (payload.length > MAX_MESSAGE_SIZE) {
      this.drop(peer, `ut_metadata: message of ${payload.length} bytes is larger than any valid one`);
      return;
    }
    let dict: BDict, end: number;
    try {
      const r = decodePrefix(payload, { maxDepth: 4 });
      if (!isDict(r.value)) throw new Error('not a dict');
      dict = r.value;
      end = r.end;
    } catch {
      this.drop(peer, 'ut_metadata: malformed message (not a bencoded dict)');
      return;
    }
    const type = dict['msg_type'];
    const piece = dict['piece'];
    if (type !== MSG_REQUEST && type !== MSG_DATA && type !== MSG_REJECT) {
      // BEP 9: unrecognized message types MUST be ignored; they still count against the flood budget.
      if (!this.spend(peer)) this.drop(peer, 'ut_metadata: message flood');
      return;
    }
    if (typeof piece !== 'number' || !Number.isSafeInteger(piece) || piece < 0) {
      this.drop(peer, 'ut_metadata: message without a valid piece index');
      return;
    }
    if (type === MSG_REQUEST) this.onRequest(peer, piece);
    else if (type === MSG_REJECT) this.onReject(peer, piece);
    else this.onData(peer, piece, dict['total_size'], payload, end);
  }

  /** Called about once a second: moves slow requests to other peers. */
  tick(): void {
    if (!this.fetching) return;
    const a = this.attempt;
    if (a === undefined) {
      this.schedule();
      return;
    }
    const now = this.now();
    let isolatedTimedOut = false;
    for (const peer of this.peers.values()) {
      for (const [piece, sentAt] of peer.inFlight) {
        if (now - sentAt < this.timeoutMs) continue;
        // Still in `asked`, so a late answer is accepted; no longer counted against the peer's slots.
        peer.inFlight.delete(piece);
        peer.refused.set(piece, now);
        if (a.pending.get(piece) === peer) a.pending.delete(piece);
        if (a.isolate === peer) isolatedTimedOut = true;
      }
    }
    if (isolatedTimedOut) this.nextAttempt();
    this.schedule();
  }

  // --- serving -------------------------------------------------------------------------------------------------

  private onRequest(peer: Peer, piece: number): void {
    if (!this.spend(peer)) {
      this.drop(peer, 'ut_metadata: request flood');
      return;
    }
    const info = this.host.info();
    const conn = peer.conn;
    if (info === undefined || piece * METADATA_PIECE_SIZE >= info.length) {
      conn.sendExtended(this.name, encode({ msg_type: MSG_REJECT, piece }));
      return;
    }
    const start = piece * METADATA_PIECE_SIZE;
    const chunk = info.subarray(start, Math.min(start + METADATA_PIECE_SIZE, info.length));
    const header = encode({ msg_type: MSG_DATA, piece, total_size: info.length });
    const msg = Buffer.allocUnsafe(header.length + chunk.length);
    header.copy(msg, 0);
    chunk.copy(msg, header.length);
    conn.sendExtended(this.name, msg);
  }

  /** Token bucket: a burst of twice the piece count (a full fetch plus retries), refilled once a minute. */
  private spend(peer: Peer): boolean {
    const info = this.host.info();
    const pieces = info === undefined ? 0 : Math.ceil(info.length / METADATA_PIECE_SIZE);
    const cap = FLOOD_BASE_BURST + 2 * pieces;
    const now = this.now();
    if (Number.isNaN(peer.tokens)) peer.tokens = cap; // a fresh connection may fetch everything at once
    const elapsed = Math.max(0, now - peer.tokensAt);
    peer.tokensAt = now;
    peer.tokens = Math.min(cap, peer.tokens + (elapsed * Math.max(1, cap / (FLOOD_WINDOW_MS / 1000))) / 1000);
    if (peer.tokens < 1) return false;
    peer.tokens -= 1;
    return true;
  }

  // --- fetching ------------------------------------------------------------------------------------------------

  private onReject(peer: Peer, piece: number): void {
    if (!peer.asked.delete(piece)) {
      if (!this.spend(peer)) this.drop(peer, 'ut_metadata: message flood');
      return;
    }
    peer.inFlight.delete(piece);
    peer.refused.set(piece, this.now());
    const a = this.attempt;
    if (a !== undefined && a.pending.get(piece) === peer) a.pending.delete(piece);
    if (a !== undefined && a.isolate === peer) this.nextAttempt();
    this.schedule();
  }

  private onData(peer: Peer, piece: number, totalSize: unknown, payload: Buffer, end: number): void {
    if (!peer.asked.has(piece)) {
      this.drop(peer, `ut_metadata: unsolicited data for piece ${piece}`);
      return;
    }
    const size = peer.size;
    if (size === undefined || totalSize !== size) {
      this.drop(peer, `ut_metadata: data with total_size ${String(totalSize)} after claiming metadata_size ${String(size)}`);
      return;
    }
    const numPieces = Math.ceil(size / METADATA_PIECE_SIZE);
    const expected = piece === numPieces - 1 ? size - piece * METADATA_PIECE_SIZE : METADATA_PIECE_SIZE;
    if (piece >= numPieces || payload.length - end !== expected) {
      this.drop(peer, `ut_metadata: data for piece ${piece} is ${payload.length - end} bytes, expected ${expected} of ${size}`);
      return;
    }
    peer.asked.delete(piece);
    peer.inFlight.delete(piece);
    const a = this.attempt;
    if (!this.fetching || a === undefined || a.size !== size || a.have[piece] === 1) {
      this.schedule();
      return;
    }
    if (a.isolate !== undefined && a.isolate !== peer) {
      this.schedule();
      return; // a late answer from before isolation began: keep the attempt single-source
    }
    payload.copy(a.buf, piece * METADATA_PIECE_SIZE, end);
    a.have[piece] = 1;
    a.from[piece] = peer;
    a.received++;
    if (a.pending.get(piece) !== undefined) {
      const other = a.pending.get(piece)!;
      a.pending.delete(piece);
      if (other !== peer) other.inFlight.delete(piece);
    }
    if (a.received === a.numPieces) this.finish(a);
    else this.schedule();
  }

  private finish(a: Attempt): void {
    if (sha1(a.buf).equals(this.host.infoHash)) {
      this.done = true;
      this.attempt = undefined;
      for (const p of this.peers.values()) p.inFlight.clear();
      const liars = this.blameFromEvidence(a);
      this.evidence = [];
      for (const [peer, piece] of liars) this.drop(peer, `ut_metadata: sent metadata piece ${piece} that does not match the info-hash`);
      this.host.metadataReceived(a.buf);
      return;
    }
    const contributors = new Set<Peer>();
    for (const p of a.from) if (p !== undefined) contributors.add(p);
    this.attempt = undefined;
    if (contributors.size === 1) {
      const [liar] = contributors;
      if (this.badSources.size >= MAX_BAD_SOURCES) this.badSources.delete(this.badSources.values().next().value!);
      this.badSources.add(liar!.conn.address);
      this.drop(liar!, `ut_metadata: sent ${formatSize(a.size)} of metadata that does not match the info-hash`);
    } else {
      // Cannot tell which contributor lied: fetch from one claimer at a time from now on, and keep per-piece
      // digests so whoever sent a wrong piece is known once the true bytes are.
      const digests: Buffer[] = [];
      for (let i = 0; i < a.numPieces; i++) digests.push(sha1(pieceOf(a.buf, i)));
      this.evidence.push({ size: a.size, digests, from: a.from });
      if (this.evidence.length > MAX_EVIDENCE) this.evidence.shift();
      this.isolating.add(a.size);
      for (const p of this.peers.values()) if (p.size === a.size) p.isolationTried = false;
    }
    this.schedule();
  }

  private blameFromEvidence(good: Attempt): Map<Peer, number> {
    const liars = new Map<Peer, number>();
    for (const e of this.evidence) {
      if (e.size !== good.size) continue; // other sizes' claimers were already dropped in isolation or never needed
      for (let i = 0; i < e.digests.length; i++) {
        const peer = e.from[i];
        if (peer === undefined || liars.has(peer) || !this.peers.has(peer.conn)) continue;
        if (!sha1(pieceOf(good.buf, i)).equals(e.digests[i]!)) liars.set(peer, i);
      }
    }
    return liars;
  }

  /** Ends the current attempt (an isolated peer refused or stalled) so the next one starts with another peer. */
  private nextAttempt(): void {
    const a = this.attempt;
    if (a?.isolate !== undefined) a.isolate.isolationTried = true;
    this.attempt = undefined;
  }

  private startAttempt(): Attempt | undefined {
    // The size most usable peers agree on; ties go to the peer seen first.
    const counts = new Map<number, number>();
    for (const p of this.peers.values()) {
      if (p.size === undefined) continue;
      counts.set(p.size, (counts.get(p.size) ?? 0) + 1);
    }
    let size: number | undefined, best = 0;
    for (const [s, n] of counts) if (n > best) { best = n; size = s; }
    if (size === undefined) return undefined;
    let isolate: Peer | undefined;
    if (this.isolating.has(size)) {
      const claimers = [...this.peers.values()].filter((p) => p.size === size);
      isolate = claimers.find((p) => !p.isolationTried);
      if (isolate === undefined) {
        // Everyone had a turn (some refused or stalled, none hashed): start another round.
        for (const p of claimers) p.isolationTried = false;
        isolate = claimers[0];
      }
    }
    const numPieces = Math.ceil(size / METADATA_PIECE_SIZE);
    return {
      size, numPieces, buf: Buffer.alloc(size), have: new Uint8Array(numPieces), received: 0,
      from: new Array<Peer | undefined>(numPieces).fill(undefined), pending: new Map(), isolate,
    };
  }

  /** Transports may answer synchronously; a nested call just asks the outer one to run again. */
  private schedule(): void {
    if (this.scheduling) {
      this.rescheduled = true;
      return;
    }
    this.scheduling = true;
    try {
      for (let round = 0; round < 4; round++) {
        this.rescheduled = false;
        this.scheduleOnce();
        if (!this.rescheduled) break;
      }
    } finally {
      this.scheduling = false;
    }
  }

  private scheduleOnce(): void {
    if (!this.fetching) return;
    let a = this.attempt;
    if (a !== undefined && (a.isolate !== undefined ? !this.peers.has(a.isolate.conn) : !this.hasClaimer(a.size))) a = undefined;
    if (a === undefined) {
      a = this.startAttempt();
      this.attempt = a;
      if (a === undefined) return;
    }
    const now = this.now();
    const backoff = this.timeoutMs * REJECT_BACKOFF_FACTOR;
    const free: Peer[] = [];
    for (const p of this.peers.values()) {
      if (p.size !== a.size || p.inFlight.size >= MAX_IN_FLIGHT_PER_PEER) continue;
      // Timed-out requests still count here: a peer sitting on this many gets nothing new until it answers.
      if (p.asked.size >= MAX_UNANSWERED_PER_PEER) continue;
      if (a.isolate !== undefined && a.isolate !== p) continue;
      free.push(p);
    }
    if (free.length === 0) return;
    free.sort((x, y) => x.inFlight.size - y.inFlight.size);
    let turn = 0;
    for (let piece = 0; piece < a.numPieces && free.length > 0 && this.attempt === a; piece++) {
      if (a.have[piece] === 1 || a.pending.has(piece)) continue;
      // Round robin over peers with free slots, skipping those that recently refused this piece.
      for (let k = 0; k < free.length; k++) {
        const idx = (turn + k) % free.length;
        const p = free[idx]!;
        const refusedAt = p.refused.get(piece);
        if (refusedAt !== undefined && now - refusedAt < backoff) continue;
        if (p.asked.has(piece)) continue; // still waiting for a late answer from this peer
        if (!p.conn.sendExtended(this.name, encode({ msg_type: MSG_REQUEST, piece }))) {
          p.size = undefined; // the remote no longer supports the extension
          free.splice(idx, 1);
          k--;
          continue;
        }
        p.asked.add(piece);
        p.inFlight.set(piece, now);
        a.pending.set(piece, p);
        if (p.inFlight.size >= MAX_IN_FLIGHT_PER_PEER || p.asked.size >= MAX_UNANSWERED_PER_PEER) free.splice(idx, 1);
        turn = free.length === 0 ? 0 : (idx + 1) % free.length;
        break;
      }
    }
  }

  private hasClaimer(size: number): boolean {
    for (const p of this.peers.values()) if (p.size === size) return true;
    return false;
  }

  // --- peers ---------------------------------------------------------------------------------------------------

  private peerFor(conn: ExtensionConnection): Peer {
    let p = this.peers.get(conn);
    if (p === undefined) {
      p = {
        conn, size: undefined, asked: new Set(), inFlight: new Map(), refused: new Map(), isolationTried: false,
        tokens: Number.NaN, tokensAt: this.now(),
      };
      this.peers.set(conn, p);
    }
    return p;
  }

  /** Requests to this peer are no longer expected to be answered under the current size. */
  private forgetRequests(peer: Peer): void {
    const a = this.attempt;
    for (const piece of peer.inFlight.keys()) if (a !== undefined && a.pending.get(piece) === peer) a.pending.delete(piece);
    peer.inFlight.clear();
  }

  private forget(peer: Peer): void {
    this.forgetRequests(peer);
    this.peers.delete(peer.conn);
  }

  private drop(peer: Peer, reason: string): void {
    this.gone.add(peer.conn);
    this.forget(peer);
    peer.conn.close(reason);
    this.schedule();
  }
}
