import { Readable } from 'node:stream';
import type { Metainfo } from '../metainfo/types.js';
import { ShoalError } from '../util/errors.js';
import { mediaContainerOf, mediaHeadTailPieces, tailBytes } from '../stream/media.js';
import { RateMeter } from './rate-meter.js';

/** What the stream manager needs from the torrent's content. */
export interface StreamHost {
  readonly meta: Metainfo;
  hasPiece(index: number): boolean;
  isWanted(index: number): boolean;
  readPiece(index: number): Promise<Buffer>;
  /** Tell the picker which pieces readers need next, most urgent first (the first `urgent` are being waited on). */
  setCritical(indices: number[], urgent: number): void;
}

/** Pieces kept requested ahead of a reader: at least this many… */
const MIN_WINDOW_PIECES = 4;
/** …and enough for this many seconds at the rate the reader consumes, up to MAX_WINDOW_BYTES. */
const WINDOW_SECONDS = 10;
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;

interface ReaderState {
  readonly file: number;
  /** Torrent-wide byte offset of the next byte to deliver, and of the last byte wanted (inclusive). */
  pos: number;
  readonly end: number;
  /** Media head/tail pieces still to fetch first (MP4 moov, Matroska cues). */
  upfront: number[];
  waiting: number | null;
  readonly rate: RateMeter;
  wake: (() => void) | null;
}

/**
 * Readers of a torrent's files while it downloads. Each reader's position becomes a priority in the (pure) piece
 * picker: the piece it waits on is urgent (may be requested twice), the next pieces form a readahead window that
 * grows with the rate the reader consumes, and a media file's head and tail come first. Several readers share the
 * list, interleaved; a reader that is destroyed stops asking for its pieces.
 */
export class StreamManager {
  private readonly host: StreamHost;
  private readonly readers = new Set<ReaderState>();
  /** Pieces to fetch first before any reader exists (`prefetch`): a player is about to open this file. */
  private hinted: number[] = [];
  private closed = false;

  constructor(host: StreamHost) {
    this.host = host;
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** A readable of bytes [start, end] (inclusive) of file `index`, yielding only verified bytes, in order. */
  createReadStream(index: number, range: { start?: number; end?: number } = {}): Readable {
    const meta = this.host.meta;
    const file = meta.files[index];
    if (!file || file.padding) throw new ShoalError('EUSAGE', `file ${index} does not exist (the torrent has ${meta.files.length} files)`);
    const start = range.start ?? 0;
    const end = range.end ?? file.length - 1;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || (file.length > 0 && end >= file.length) || start > end + 1) {
      throw new ShoalError('EUSAGE', `range ${start}-${end} is outside file ${index} (${file.length} bytes)`);
    }
    const first = Math.floor(file.offset / meta.pieceLength);
    const last = Math.floor((file.offset + Math.max(0, file.length - 1)) / meta.pieceLength);
    for (const i of [first, last]) {
      if (file.length > 0 && !this.host.isWanted(i) && !this.host.hasPiece(i)) {
        throw new ShoalError('EUSAGE', `file ${index} is not selected for download`);
      }
    }
    const st: ReaderState = {
      file: index, pos: file.offset + start, end: file.offset + end, upfront: [], waiting: null, rate: new RateMeter(), wake: null,
    };
    if (start === 0) {
      // Media players read the head, then jump to the index at the end (MP4 moov, Matroska cues): fetch both first.
      st.upfront = upfrontPieces(meta, index);
    }
    const manager = this;
    const reader = new Readable({
      highWaterMark: meta.pieceLength,
      read() { void manager.pump(st, reader); },
      destroy(err, cb) { manager.remove(st); cb(err); },
    });
    this.readers.add(st);
    this.update();
    if (file.length === 0 || st.pos > st.end) reader.push(null);
    return reader;
  }

  /** Deliver what is verified; wait (urgently) for the next piece otherwise. */
  private async pump(st: ReaderState, reader: Readable): Promise<void> {
    const meta = this.host.meta;
    while (!reader.destroyed && !this.closed) {
      if (st.pos > st.end) { reader.push(null); return; }
      const index = Math.floor(st.pos / meta.pieceLength);
      if (!this.host.hasPiece(index)) {
        st.waiting = index;
        this.update();
        await new Promise<void>((resolve) => { st.wake = resolve; });
        st.wake = null;
        continue;
      }
      st.waiting = null;
      let piece: Buffer;
      try {
        piece = await this.host.readPiece(index);
      } catch (err) {
        reader.destroy(err as Error);
        return;
      }
      if (reader.destroyed) return;
      const pieceStart = index * meta.pieceLength;
      const from = st.pos - pieceStart;
      const to = Math.min(piece.length, st.end + 1 - pieceStart);
      const chunk = piece.subarray(from, to);
      st.pos += chunk.length;
      st.rate.add(chunk.length);
      this.update();
      if (!reader.push(chunk)) return;
    }
  }

  /**
   * A player is about to read file `index` from its start: fetch what it will ask for first (the head, and the tail
   * for media that keep their index there) now, instead of random pieces, so the first request finds them on disk
   * or in flight. Readers, once they exist, come before the hint.
   */
  prefetch(index: number): void {
    const meta = this.host.meta;
    const file = meta.files[index];
    if (!file || file.padding || file.length === 0) return;
    const list = upfrontPieces(meta, index);
    const first = Math.floor(file.offset / meta.pieceLength);
    for (let i = first; i < first + MIN_WINDOW_PIECES; i++) if (i < meta.pieceCount) list.push(i);
    this.hinted = list.filter((i) => this.host.isWanted(i) && !this.host.hasPiece(i));
    this.update();
  }

  /** A piece was verified: wake readers waiting for it. */
  pieceVerified(index: number): void {
    if (this.hinted.length > 0) this.hinted = this.hinted.filter((i) => i !== index);
    for (const st of this.readers) {
      st.upfront = st.upfront.filter((i) => i !== index);
      if (st.waiting === index && st.wake) st.wake();
    }
  }

  private remove(st: ReaderState): void {
    if (!this.readers.delete(st)) return;
    st.wake?.();
    this.update();
  }

  /** Recompute the picker's critical list from every reader's position and rate. */
  update(): void {
    if (this.closed) return;
    const meta = this.host.meta;
    const urgent: number[] = [];
    const lists: number[][] = [];
    for (const st of this.readers) {
      if (st.waiting !== null) urgent.push(st.waiting);
      const list: number[] = [...st.upfront];
      const windowBytes = Math.min(MAX_WINDOW_BYTES, Math.max(MIN_WINDOW_PIECES * meta.pieceLength, st.rate.rate() * WINDOW_SECONDS));
      const first = Math.floor(st.pos / meta.pieceLength);
      const last = Math.min(Math.floor(st.end / meta.pieceLength), first + Math.ceil(windowBytes / meta.pieceLength));
      for (let i = first; i <= last; i++) if (!this.host.hasPiece(i)) list.push(i);
      lists.push(list);
    }
    // Interleave readers so one does not starve another; a prefetch hint comes after them.
    const out = [...urgent];
    for (let k = 0; lists.some((l) => k < l.length); k++) for (const l of lists) if (k < l.length) out.push(l[k]!);
    out.push(...this.hinted);
    this.host.setCritical(out, urgent.length);
  }

  close(): void {
    this.closed = true;
    for (const st of this.readers) st.wake?.();
    this.readers.clear();
  }
}

/**
 * What a player of file `index` asks for first, in the order it asks: the first piece (container header), then the
 * tail where MP4 without faststart keeps its moov and Matroska its cues (the player jumps there next), then the rest of
 * the head.
 */
function upfrontPieces(meta: Metainfo, index: number): number[] {
  const file = meta.files[index]!;
  const ranges = mediaHeadTailPieces({ offset: file.offset, length: file.length }, meta.pieceLength, mediaContainerOf(file.path.join('/')));
  if (ranges.length === 0) return [];
  const first = ranges[0]!.first;
  const last = ranges[ranges.length - 1]!.last;
  const tailLen = Math.min(file.length, tailBytes(file.length, mediaContainerOf(file.path.join('/'))));
  // The head and tail ranges may have merged (a small file): the tail is still what the player asks for second.
  const tailFirst = tailLen > 0 ? Math.floor((file.offset + file.length - tailLen) / meta.pieceLength) : last + 1;
  const out: number[] = [first];
  for (let i = Math.max(tailFirst, first + 1); i <= last; i++) out.push(i);
  for (const r of ranges) for (let i = r.first; i <= r.last; i++) out.push(i);
  return [...new Set(out)];
}
