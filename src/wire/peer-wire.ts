import type { Duplex } from 'node:stream';
import { encode } from '../bencode/index.js';
import { ShoalError } from '../util/errors.js';
import {
  CHOKE, HAVE_ALL, HAVE_NONE, INTERESTED, KEEP_ALIVE, NOT_INTERESTED, UNCHOKE,
  encodeBitfield, encodeBlockMessage, encodeExtended, encodeIndexMessage, encodePieceHeader, encodePort,
} from './encode.js';
import { formatAddress } from './handshake.js';
import { MessageParser } from './parser.js';
import { isVolatile, readFrom, resumeReading, type ReadSink } from './socket-reader.js';
import { MessageId, type WireHandler } from './types.js';

/**
 * A HAVE waits up to this long for another message to the same peer to ride with. Pieces complete on another
 * peer's read, so each HAVE would otherwise be a 9-byte write of its own here (a syscall) and a wake-up of its own at
 * the peer; a peer we exchange blocks with gets ours with the next request or block within milliseconds anyway, and
 * one we are idle with learns of our pieces a quarter of a second later, far inside a choking round (10 s).
 */
export const HAVE_DELAY_MS = 250;
/** Past this many waiting HAVEs they go out at once (a bulk announcement, or pieces completing very fast). */
const MAX_WAITING_HAVES = 64;

/** Any byte stream: a TCP socket today, a uTP stream later. Socket extras are used when present. */
export type Transport = Duplex & { setNoDelay?(noDelay?: boolean): unknown; remoteAddress?: string; remotePort?: number };

export interface PeerWireOptions {
  /** BEP 6 negotiated by both sides. */
  fast: boolean;
  /** BEP 10 negotiated by both sides. */
  extended: boolean;
  /** Bytes that arrived after the handshake (from readHandshake / connectPeer). */
  rest?: Buffer;
  maxMessageLength?: number;
  maxBlockLength?: number;
  /** Send a keep-alive after this long without sending anything (default 60 s). */
  keepAliveMs?: number;
  /** Close with ETIMEOUT if nothing arrives for this long (default 150 s). */
  idleTimeoutMs?: number;
}

/**
 * One peer connection after the handshake: sends messages and feeds received bytes to a MessageParser.
 * Send methods are no-ops after destroy(). Protocol violations, socket errors, close and idle timeout all end
 * in destroy(), which calls handler.onClose exactly once.
 */
export class PeerWire implements ReadSink {
  /** All bytes received / sent on this wire after the handshake, protocol overhead included. */
  bytesReceived = 0;
  bytesSent = 0;
  /** BEP 6 / BEP 10 negotiated (as passed in the options). */
  readonly fastEnabled: boolean;
  readonly extendedEnabled: boolean;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Exposed for diagnostics and bounds checks; do not push into it. */
  readonly parser: MessageParser;

  private readonly socket: Transport;
  private readonly handler: WireHandler;
  private readonly keepAliveMs: number;
  private readonly idleTimeoutMs: number;
  private readonly where: string;
  private destroyed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly detachReader: () => void;
  /** Pieces announced but not yet written (see have()); haveTimer sends them if no other message does first. */
  private readonly waitingHaves: number[] = [];
  private haveTimer: NodeJS.Timeout | null = null;
  // Timestamps are only taken in the periodic check: per-message work is just the byte counters.
  private checkedReceived = -1;
  private checkedSent = -1;
  private lastReceiveAt = 0;
  private lastSendAt = 0;

  private readonly onSocketError = (err: Error): void => {
    this.destroy(new ShoalError('EWIRE', `connection to peer ${this.where} failed: ${err.message}`, { cause: err }));
  };
  private readonly onSocketClose = (): void => this.destroy();
  private readonly onSocketDrain = (): void => this.handler.onDrain?.();

  constructor(socket: Transport, handler: WireHandler, opts: PeerWireOptions) {
    this.socket = socket;
    this.handler = handler;
    this.fastEnabled = opts.fast;
    this.extendedEnabled = opts.extended;
    this.keepAliveMs = opts.keepAliveMs ?? 60_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 150_000;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.where = formatAddress(this.remoteAddress, this.remotePort);
    this.parser = new MessageParser(handler, {
      maxMessageLength: opts.maxMessageLength,
      maxBlockLength: opts.maxBlockLength,
      fast: opts.fast,
      extended: opts.extended,
      volatileInput: isVolatile(socket),
      onError: (err) => this.destroy(new ShoalError('EWIRE', `${err.message} [peer ${this.where}]`, { cause: err })),
    });
    socket.setNoDelay?.(true);
    // Paused before the 'data' listener goes on, so buffered bytes cannot overtake `rest` (resumed below).
    socket.pause();
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    socket.on('end', this.onSocketClose);
    socket.on('drain', this.onSocketDrain);
    this.detachReader = readFrom(socket, this);

    const now = Date.now();
    this.lastReceiveAt = now;
    this.lastSendAt = now;
    const period = Math.max(10, Math.min(this.keepAliveMs, this.idleTimeoutMs) / 4);
    this.timer = setInterval(() => this.checkTimers(), period);
    this.timer.unref();

    // Deliver leftover handshake bytes after the constructor returns (the owner has not stored us yet),
    // and only then let the socket flow, so message order is kept.
    const rest = opts.rest;
    process.nextTick(() => {
      if (this.destroyed) return;
      if (rest !== undefined && rest.length > 0) this.onRead(rest, rest.length);
      if (!this.destroyed) resumeReading(socket);
    });
    if (socket.destroyed) process.nextTick(() => this.destroy());
  }

  get needsDrain(): boolean { return this.socket.writableNeedDrain; }
  /** Bytes written but not yet taken by the kernel. */
  get writeBacklog(): number { return this.socket.writableLength; }
  get isDestroyed(): boolean { return this.destroyed; }
  /** HAVEs announced and not yet written (diagnostics and tests). */
  get waitingHaveCount(): number { return this.waitingHaves.length; }

  /**
   * Bytes 0..length of `buf` arrived (the socket reader calls this; see ReadSink). Whatever handling one read makes us
   * send to this peer (pieces for its requests, our next requests, haves) leaves in one write at the end of the read
   * instead of one write per message handled: on a real network a read often carries a block and a request or two,
   * and each write is a syscall and a trip through the TCP stack.
   */
  onRead(buf: Buffer, length: number): void {
    this.bytesReceived += length;
    const socket = this.socket;
    socket.cork();
    try {
      this.parser.push(buf, length);
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      socket.uncork();
    }
  }

  cork(): void { this.socket.cork(); }
  uncork(): void { this.socket.uncork(); }

  choke(): void { this.send(CHOKE); }
  unchoke(): void { this.send(UNCHOKE); }
  interested(): void { this.send(INTERESTED); }
  notInterested(): void { this.send(NOT_INTERESTED); }
  /** Announces a piece: sent with the next message to this peer, or after HAVE_DELAY_MS (see there). */
  have(index: number): void {
    if (this.destroyed) return;
    const waiting = this.waitingHaves;
    waiting.push(index);
    if (waiting.length >= MAX_WAITING_HAVES) this.flushHaves();
    else if (this.haveTimer === null) {
      this.haveTimer = setTimeout(this.flushHaves, HAVE_DELAY_MS);
      this.haveTimer.unref();
    }
  }
  /** Sends waiting HAVEs now (e.g. an initial seed's advertisement, which is the only message it sends). */
  readonly flushHaves = (): void => {
    if (this.haveTimer !== null) {
      clearTimeout(this.haveTimer);
      this.haveTimer = null;
    }
    const waiting = this.waitingHaves;
    const n = waiting.length;
    if (n === 0) return;
    if (this.destroyed) {
      waiting.length = 0;
      return;
    }
    const buf = Buffer.allocUnsafe(9 * n);
    for (let i = 0, o = 0; i < n; i++, o += 9) {
      buf.writeUInt32BE(5, o);
      buf[o + 4] = MessageId.Have;
      buf.writeUInt32BE(waiting[i]!, o + 5);
    }
    waiting.length = 0;
    this.bytesSent += buf.length;
    this.socket.write(buf);
  };
  /** Copies `bits`, so the caller may keep mutating its bitfield. */
  bitfield(bits: Buffer): void { this.send(encodeBitfield(bits)); }
  request(index: number, begin: number, length: number): void {
    this.send(encodeBlockMessage(MessageId.Request, index, begin, length));
  }
  cancel(index: number, begin: number, length: number): void {
    this.send(encodeBlockMessage(MessageId.Cancel, index, begin, length));
  }
  /**
   * Several requests in one write: `blocks` holds (index, begin, length) triples. The downloader asks for dozens
   * of blocks at a time, and one 17·n-byte write costs one syscall instead of n.
   */
  requests(blocks: Uint32Array | number[], count: number): void {
    if (count === 0) return;
    const buf = Buffer.allocUnsafe(17 * count);
    for (let i = 0, o = 0; i < count; i++, o += 17) {
      buf.writeUInt32BE(13, o);
      buf[o + 4] = MessageId.Request;
      buf.writeUInt32BE(blocks[3 * i]!, o + 5);
      buf.writeUInt32BE(blocks[3 * i + 1]!, o + 9);
      buf.writeUInt32BE(blocks[3 * i + 2]!, o + 13);
    }
    this.send(buf);
  }
  port(p: number): void { this.send(encodePort(p)); }
  keepAlive(): void { this.send(KEEP_ALIVE); }

  /**
   * Sends a block without copying it: the socket holds `block` until written, so do not modify it meanwhile.
   * `done` is called once the socket no longer needs `block` (written, failed, or never sent because the wire is
   * destroyed), in the order blocks were sent while the socket is open.
   * Returns false when the socket wants a drain (handler.onDrain follows).
   */
  piece(index: number, begin: number, block: Buffer, done?: () => void): boolean {
    if (this.destroyed) {
      done?.();
      return false;
    }
    const s = this.socket;
    s.cork();
    if (this.waitingHaves.length > 0) this.flushHaves();
    s.write(encodePieceHeader(index, begin, block.length));
    const ok = done === undefined ? s.write(block) : s.write(block, done);
    s.uncork();
    this.bytesSent += 13 + block.length;
    return ok;
  }

  // BEP 6
  suggest(index: number): void { this.needFast('suggest'); this.send(encodeIndexMessage(MessageId.Suggest, index)); }
  haveAll(): void { this.needFast('have all'); this.send(HAVE_ALL); }
  haveNone(): void { this.needFast('have none'); this.send(HAVE_NONE); }
  reject(index: number, begin: number, length: number): void {
    this.needFast('reject');
    this.send(encodeBlockMessage(MessageId.Reject, index, begin, length));
  }
  allowedFast(index: number): void {
    this.needFast('allowed fast');
    this.send(encodeIndexMessage(MessageId.AllowedFast, index));
  }

  // BEP 10
  extendedHandshake(dict: Record<string, unknown>): void {
    this.needExtended();
    this.send(encodeExtended(0, encode(dict)));
  }
  extended(id: number, payload: Buffer): void {
    this.needExtended();
    if (!Number.isInteger(id) || id < 1 || id > 255) throw new RangeError(`extended message id ${id} is not in 1..255`);
    this.send(encodeExtended(id, payload));
  }

  /** Idempotent. Closes the socket and calls handler.onClose(err) once. */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.parser.stop();
    this.flushHaves(); // destroyed: clears the timer and drops what waits
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this.detachReader();
    this.socket.off('drain', this.onSocketDrain);
    // The error listener stays: a destroyed socket may still report a pending write failure.
    this.socket.destroy();
    this.handler.onClose(err);
  }

  private send(buf: Buffer): boolean {
    if (this.destroyed) return false;
    this.bytesSent += buf.length;
    if (this.waitingHaves.length === 0) return this.socket.write(buf);
    // Waiting HAVEs go first (they were sent first) and in the same write.
    const s = this.socket;
    s.cork();
    this.flushHaves();
    const ok = s.write(buf);
    s.uncork();
    return ok;
  }

  private needFast(what: string): void {
    if (!this.fastEnabled) throw new Error(`cannot send ${what}: the fast extension was not negotiated with ${this.where}`);
  }

  private needExtended(): void {
    if (!this.extendedEnabled) throw new Error(`cannot send an extended message: BEP 10 was not negotiated with ${this.where}`);
  }

  private checkTimers(): void {
    if (this.destroyed) return;
    const now = Date.now();
    if (this.bytesReceived !== this.checkedReceived) {
      this.checkedReceived = this.bytesReceived;
      this.lastReceiveAt = now;
    } else if (now - this.lastReceiveAt >= this.idleTimeoutMs) {
      this.destroy(new ShoalError('ETIMEOUT', `peer ${this.where} sent nothing for ${now - this.lastReceiveAt} ms`));
      return;
    }
    if (this.bytesSent !== this.checkedSent) {
      this.checkedSent = this.bytesSent;
      this.lastSendAt = now;
    } else if (now - this.lastSendAt >= this.keepAliveMs) {
      this.keepAlive();
      this.checkedSent = this.bytesSent;
      this.lastSendAt = now;
    }
  }
}
