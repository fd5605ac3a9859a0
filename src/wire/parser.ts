import { decode } from '../bencode/index.js';
import { ShoalError } from '../util/errors.js';
import { MessageId, type WireHandler } from './types.js';

/** Large enough for BEP 10 messages (ut_metadata pieces) and bitfields of huge torrents. */
export const DEFAULT_MAX_MESSAGE_LENGTH = 1024 * 1024 + 13;
/** Clients request 16 KiB blocks; some serve up to 128 KiB. Anything larger is hostile. */
export const DEFAULT_MAX_BLOCK_LENGTH = 128 * 1024;

export interface ParserOptions {
  /** Largest accepted length prefix (default 1 MiB + 13). */
  maxMessageLength?: number;
  /** Largest accepted `piece` block (default 128 KiB). */
  maxBlockLength?: number;
  /** BEP 6 negotiated: when false, fast-extension messages are protocol errors (default true). */
  fast?: boolean;
  /** BEP 10 negotiated: when false, extended messages are protocol errors (default true). */
  extended?: boolean;
  /**
   * Pushed chunks are only valid during push() (a reused read buffer, see socket-reader.ts): extended payloads are
   * copied before they reach handlers, which may keep them. Blocks are copied into their targets either way.
   */
  volatileInput?: boolean;
  /** Protocol violations stop the parser and are reported here; without it, push() throws them. */
  onError?: (err: ShoalError) => void;
}

// Parser states.
const S_HEAD = 0;   // reading a length prefix / id / piece header / small message body
const S_PIECE = 1;  // copying block bytes into the handler's buffer
const S_SKIP = 2;   // discarding the payload of an unknown message (or of a discarded block)

// Stages while in S_HEAD and the head is split across chunks.
const ST_LEN = 0, ST_ID = 1, ST_PIECE_HDR = 2, ST_BODY = 3;

// Expected total length (id + payload) by message id: > 0 fixed, VARIABLE checked against MIN_LEN, UNKNOWN skipped.
const UNKNOWN = 0, VARIABLE = -1;
const LEN_TABLE = new Int32Array(256);
const MIN_LEN = new Int32Array(256);
LEN_TABLE[MessageId.Choke] = 1;
LEN_TABLE[MessageId.Unchoke] = 1;
LEN_TABLE[MessageId.Interested] = 1;
LEN_TABLE[MessageId.NotInterested] = 1;
LEN_TABLE[MessageId.Have] = 5;
LEN_TABLE[MessageId.Bitfield] = VARIABLE; MIN_LEN[MessageId.Bitfield] = 1;
LEN_TABLE[MessageId.Request] = 13;
LEN_TABLE[MessageId.Cancel] = 13;
LEN_TABLE[MessageId.Port] = 3;
LEN_TABLE[MessageId.Suggest] = 5;
LEN_TABLE[MessageId.HaveAll] = 1;
LEN_TABLE[MessageId.HaveNone] = 1;
LEN_TABLE[MessageId.Reject] = 13;
LEN_TABLE[MessageId.AllowedFast] = 5;
LEN_TABLE[MessageId.Extended] = VARIABLE; MIN_LEN[MessageId.Extended] = 2;
// Piece (7) has its own path and never goes through the table.

const MESSAGE_NAMES: Record<number, string> = {
  0: 'choke', 1: 'unchoke', 2: 'interested', 3: 'not interested', 4: 'have', 5: 'bitfield', 6: 'request',
  7: 'piece', 8: 'cancel', 9: 'port', 0x0d: 'suggest', 0x0e: 'have all', 0x0f: 'have none', 0x10: 'reject',
  0x11: 'allowed fast', 20: 'extended',
};

const INITIAL_CAPACITY = 64;
/** After a large buffered message, drop the big buffer so idle peers do not pin memory. */
const KEEP_CAPACITY = 64 * 1024;

/**
 * Incremental, bounded BEP 3/6/10 message parser. Feed it whatever the socket delivers; it calls the handler
 * in message order. Messages wholly inside a chunk are parsed in place; split ones are gathered in a small
 * reusable buffer; piece blocks are copied once, straight from the chunks into the handler's buffer.
 */
export class MessageParser {
  private readonly handler: WireHandler;
  private readonly maxMessageLength: number;
  private readonly maxBlockLength: number;
  private readonly fast: boolean;
  private readonly extended: boolean;
  private readonly volatileInput: boolean;
  private readonly onError: ((err: ShoalError) => void) | undefined;

  private state = S_HEAD;
  private stage = ST_LEN;
  private acc: Buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
  private accHave = 0;
  private accNeed = 4;
  private msgLen = 0;

  // Current piece block (S_PIECE) or skip count (S_SKIP).
  private remaining = 0;
  private target: Buffer | null = null;
  private targetOff = 0;
  private pIndex = 0;
  private pBegin = 0;
  private pLen = 0;

  private stopped = false;
  private protocolError: ShoalError | null = null;

  constructor(handler: WireHandler, opts: ParserOptions = {}) {
    this.handler = handler;
    this.maxMessageLength = opts.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    this.maxBlockLength = opts.maxBlockLength ?? DEFAULT_MAX_BLOCK_LENGTH;
    this.fast = opts.fast ?? true;
    this.extended = opts.extended ?? true;
    this.volatileInput = opts.volatileInput ?? false;
    this.onError = opts.onError;
  }

  /** True once stop() was called or a protocol error was found; further input is ignored. */
  get isStopped(): boolean { return this.stopped; }

  /** Bytes held for split messages (for bounds checks in tests). */
  get bufferCapacity(): number { return this.acc.length; }

  /** Stop delivering messages, including the rest of a chunk being parsed (safe to call from a handler). */
  stop(): void {
    this.stopped = true;
    this.target = null;
  }

  /**
   * Parse bytes 0..end of a chunk (all of it by default). Protocol errors stop the parser and go to opts.onError (or
   * are thrown without one); an exception thrown by a handler method stops the parser and propagates.
   */
  push(chunk: Buffer, end: number = chunk.length): void {
    if (this.stopped) return;
    try {
      this.consume(chunk, end);
    } catch (err) {
      this.stop();
      if (err === this.protocolError && this.onError) this.onError(err as ShoalError);
      else throw err;
    }
  }

  private consume(chunk: Buffer, end: number): void {
    let pos = 0;
    while (pos < end) {
      if (this.state === S_PIECE) {
        const n = Math.min(this.remaining, end - pos);
        // TypedArray#set of a view: Buffer#copy wraps the same memcpy in two layers of argument checks, which cost
        // more than the copy itself for small chunks until V8 optimizes them (a block arrives in several chunks).
        if (this.target !== null) this.target.set(new Uint8Array(chunk.buffer, chunk.byteOffset + pos, n), this.targetOff);
        this.targetOff += n;
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) this.finishPiece();
        if (this.stopped) return;
        continue;
      }
      if (this.state === S_SKIP) {
        const n = Math.min(this.remaining, end - pos);
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0) this.state = S_HEAD;
        continue;
      }

      // Fast path: the whole head (or whole message) is in this chunk, nothing buffered.
      if (this.accHave === 0 && end - pos >= 5) {
        const len = chunk.readUInt32BE(pos);
        if (len === 0) {
          pos += 4;
          this.handler.onKeepAlive?.();
          if (this.stopped) return;
          continue;
        }
        if (len > this.maxMessageLength) this.tooLong(len);
        const id = chunk[pos + 4]!;
        if (id === MessageId.Piece) {
          this.checkPieceLength(len);
          if (end - pos >= 13) {
            const index = chunk.readUInt32BE(pos + 5);
            const begin = chunk.readUInt32BE(pos + 9);
            pos += 13;
            this.startPiece(len - 9, index, begin);
            if (this.stopped) return;
            continue;
          }
        } else if (end - pos - 4 >= len) {
          if (this.validate(id, len)) this.dispatch(id, chunk, pos + 4, len);
          pos += 4 + len;
          if (this.stopped) return;
          continue;
        }
      }

      // Slow path: gather the head across chunks.
      const n = Math.min(this.accNeed - this.accHave, end - pos);
      chunk.copy(this.acc, this.accHave, pos, pos + n);
      this.accHave += n;
      pos += n;
      if (this.accHave === this.accNeed) {
        this.headComplete();
        if (this.stopped) return;
      }
    }
  }

  /** acc holds accNeed bytes: move to the next stage, or deliver the message. */
  private headComplete(): void {
    const acc = this.acc;
    switch (this.stage) {
      case ST_LEN: {
        const len = acc.readUInt32BE(0);
        if (len === 0) {
          this.resetHead();
          this.handler.onKeepAlive?.();
          return;
        }
        if (len > this.maxMessageLength) this.tooLong(len);
        this.msgLen = len;
        this.stage = ST_ID;
        this.accNeed = 5;
        return;
      }
      case ST_ID: {
        const id = acc[4]!;
        const len = this.msgLen;
        if (id === MessageId.Piece) {
          this.checkPieceLength(len);
          this.stage = ST_PIECE_HDR;
          this.accNeed = 13;
          return;
        }
        if (!this.validate(id, len)) {
          this.resetHead();
          this.remaining = len - 1;
          if (this.remaining > 0) this.state = S_SKIP;
          return;
        }
        if (len === 1) {
          this.resetHead();
          this.dispatch(id, acc, 4, 1);
          return;
        }
        if (acc.length < 4 + len) this.grow(4 + len);
        this.stage = ST_BODY;
        this.accNeed = 4 + len;
        return;
      }
      case ST_PIECE_HDR: {
        const index = acc.readUInt32BE(5);
        const begin = acc.readUInt32BE(9);
        this.resetHead();
        this.startPiece(this.msgLen - 9, index, begin);
        return;
      }
      default: {
        this.resetHead();
        this.dispatch(acc[4]!, acc, 4, this.msgLen);
        if (this.acc.length > KEEP_CAPACITY) this.acc = Buffer.allocUnsafe(INITIAL_CAPACITY);
      }
    }
  }

  private resetHead(): void {
    this.stage = ST_LEN;
    this.accHave = 0;
    this.accNeed = 4;
  }

  private grow(size: number): void {
    const next = Buffer.allocUnsafe(Math.max(size, Math.min(this.acc.length * 2, this.maxMessageLength + 4)));
    this.acc.copy(next, 0, 0, this.accHave);
    this.acc = next;
  }

  private startPiece(blockLength: number, index: number, begin: number): void {
    this.pIndex = index;
    this.pBegin = begin;
    this.pLen = blockLength;
    const target = this.handler.onPieceStart(index, begin, blockLength);
    if (this.stopped) return;
    if (target !== null && target.length < blockLength) {
      // A handler bug, not the peer's fault: copying would silently drop bytes.
      throw new RangeError(`onPieceStart returned a ${target.length}-byte buffer for a ${blockLength}-byte block`);
    }
    this.target = target;
    this.targetOff = 0;
    this.remaining = blockLength;
    if (blockLength === 0) this.finishPiece();
    else this.state = S_PIECE;
  }

  private finishPiece(): void {
    this.state = S_HEAD;
    this.target = null;
    this.handler.onPiece(this.pIndex, this.pBegin, this.pLen);
  }

  /** Checks a non-piece message's length; false means an unknown id whose payload is skipped. */
  private validate(id: number, len: number): boolean {
    const expected = LEN_TABLE[id]!;
    if (expected === UNKNOWN) return false;
    if (id >= MessageId.Suggest && id <= MessageId.AllowedFast && !this.fast) {
      this.fail(`peer sent a ${MESSAGE_NAMES[id]} message but the fast extension was not negotiated`);
    }
    if (id === MessageId.Extended && !this.extended) {
      this.fail('peer sent an extended message but the extension protocol was not negotiated');
    }
    if (expected > 0 ? len !== expected : len < MIN_LEN[id]!) {
      this.fail(`peer sent a ${MESSAGE_NAMES[id]} message of length ${len} (expected ${expected > 0 ? expected : `at least ${MIN_LEN[id]}`})`);
    }
    return true;
  }

  private checkPieceLength(len: number): void {
    if (len < 9) this.fail(`peer sent a piece message of length ${len} (expected at least 9)`);
    if (len - 9 > this.maxBlockLength) {
      this.fail(`peer sent a ${len - 9}-byte block (limit ${this.maxBlockLength})`);
    }
  }

  /** Deliver a validated message whose id byte is buf[off] and whose length (id included) is len. */
  private dispatch(id: number, buf: Buffer, off: number, len: number): void {
    const h = this.handler;
    switch (id) {
      case MessageId.Choke: h.onChoke(); return;
      case MessageId.Unchoke: h.onUnchoke(); return;
      case MessageId.Interested: h.onInterested(); return;
      case MessageId.NotInterested: h.onNotInterested(); return;
      case MessageId.Have: h.onHave(buf.readUInt32BE(off + 1)); return;
      case MessageId.Bitfield: h.onBitfield(Buffer.from(buf.subarray(off + 1, off + len))); return;
      case MessageId.Request:
        h.onRequest(buf.readUInt32BE(off + 1), buf.readUInt32BE(off + 5), buf.readUInt32BE(off + 9)); return;
      case MessageId.Cancel:
        h.onCancel(buf.readUInt32BE(off + 1), buf.readUInt32BE(off + 5), buf.readUInt32BE(off + 9)); return;
      case MessageId.Port: h.onPort(buf.readUInt16BE(off + 1)); return;
      case MessageId.Suggest: h.onSuggest(buf.readUInt32BE(off + 1)); return;
      case MessageId.HaveAll: h.onHaveAll(); return;
      case MessageId.HaveNone: h.onHaveNone(); return;
      case MessageId.Reject:
        h.onReject(buf.readUInt32BE(off + 1), buf.readUInt32BE(off + 5), buf.readUInt32BE(off + 9)); return;
      case MessageId.AllowedFast: h.onAllowedFast(buf.readUInt32BE(off + 1)); return;
      case MessageId.Extended: {
        const extId = buf[off + 1]!;
        const view = buf.subarray(off + 2, off + len);
        const payload = this.volatileInput ? Buffer.from(view) : view;
        if (extId === 0) h.onExtendedHandshake(this.decodeExtendedHandshake(payload));
        else h.onExtended(extId, payload);
        return;
      }
    }
  }

  private decodeExtendedHandshake(payload: Buffer): Record<string, unknown> {
    let value: unknown;
    try {
      // Several real clients emit unsorted keys here; being strict would only cut us off from them.
      value = decode(payload, { allowUnsortedKeys: true });
    } catch (err) {
      this.fail(`peer sent a malformed extended handshake: ${(err as Error).message}`, err);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
      this.fail('peer sent an extended handshake that is not a dictionary');
    }
    return value as Record<string, unknown>;
  }

  private tooLong(len: number): never {
    this.fail(`peer sent a ${len}-byte message (limit ${this.maxMessageLength})`);
  }

  private fail(message: string, cause?: unknown): never {
    const err = new ShoalError('EWIRE', message, cause === undefined ? undefined : { cause });
    this.protocolError = err;
    throw err;
  }
}
