import { Readable } from 'node:stream';
import type { Metainfo } from '../metainfo/types.js';
import { ShoalError } from '../util/errors.js';
import { HEAD_BYTES, mediaContainerOf, mp4LayoutFromHead, tailBytes, type Mp4Layout } from '../stream/media.js';
import { RateMeter } from './rate-meter.js';

/** What the stream manager needs from the torrent's content. */
export interface StreamHost {
  readonly meta: Metainfo;
  hasPiece(index: number): boolean;
  isWanted(index: number): boolean;
  readPiece(index: number): Promise<Buffer>;
  /**
   * Tell the picker which pieces readers need next, most urgent first (the first `urgent` are being waited on), and
   * whether readers are streaming at all (then request pipelines stay short).
   */
  setCritical(indices: number[], urgent: number, streaming: boolean): void;
}

/**
 * Pieces kept requested ahead of a reader: few at first (a player that opens a file often jumps elsewhere after its
 * first reads, and what was requested for the old place delays the new one)…
 */
const MIN_WINDOW_PIECES = 2;
/** …growing to this many seconds at the rate the reader consumes, up to MAX_WINDOW_BYTES. */
const WINDOW_SECONDS = 10;
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;
/**
 * After the last reader closes, streaming continues this long: a player closes one request and opens the next (a
 * seek, the jump to an MP4's index), and a deep pipeline filled in between would delay the next one.
 */
const LINGER_MS = 5000;
/** An MP4's index is fetched ahead of the head up to this many bytes (the most `tailBytes` guesses for any file). */
const MAX_INDEX_BYTES = 16 * 1024 * 1024;

interface ReaderState {
  readonly file: number;
  /** Torrent-wide byte offset of the next byte to deliver, and of the last byte wanted (inclusive). */
  pos: number;
  readonly end: number;
  /** It started at the file's first byte: a player reads the head, then its media index (see upfrontPieces). */
  readonly fromStart: boolean;
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
  /** File a player is about to open (`prefetch`), until a reader of it exists. */
  private hintFile: number | null = null;
  /** MP4 files whose head has been read: where their index is (null: the head did not tell). */
  private readonly layouts = new Map<number, Mp4Layout | null>();
  private readonly probing = new Set<number>();
  /** Streaming lasts until then after the last reader closed (see LINGER_MS). */
  private lingerUntil = 0;
  private lingerTimer: NodeJS.Timeout | null = null;
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
      file: index, pos: file.offset + start, end: file.offset + end, fromStart: start === 0, waiting: null, rate: new RateMeter(), wake: null,
    };
    // The hint has served its purpose: the reader now says what is needed, and from where.
    if (this.hintFile === index) this.hintFile = null;
    this.probe(index);
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
   * or in flight. The first reader of the file replaces the hint.
   */
  prefetch(index: number): void {
    const file = this.host.meta.files[index];
    if (!file || file.padding || file.length === 0) return;
    this.hintFile = index;
    this.probe(index);
    this.update();
  }

  /** A piece was verified: wake readers waiting for it; learn an MP4's layout from its head. */
  pieceVerified(index: number): void {
    for (const st of this.readers) if (st.waiting === index && st.wake) st.wake();
    const meta = this.host.meta;
    if (this.hintFile !== null && firstPieceOf(meta, this.hintFile) === index) this.probe(this.hintFile);
    for (const st of this.readers) if (st.fromStart && firstPieceOf(meta, st.file) === index) this.probe(st.file);
  }

  /**
   * Reads an MP4's first piece (once it is verified) to learn where its index is: nothing at the end to fetch first
   * when the moov leads (faststart), or exactly the pieces from the end of the media data when it trails. Until then
   * nothing from the end is asked for (the first piece is first in line); when the head does not tell, a guess by
   * size, as for other containers.
   */
  private probe(index: number): void {
    const meta = this.host.meta;
    const file = meta.files[index]!;
    if (mediaContainerOf(file.path.join('/')) !== 'mp4' || this.layouts.has(index) || this.probing.has(index)) return;
    const first = firstPieceOf(meta, index);
    if (!this.host.hasPiece(first)) return;
    this.probing.add(index);
    this.host.readPiece(first).then((piece) => {
      const from = file.offset - first * meta.pieceLength;
      this.layouts.set(index, mp4LayoutFromHead(piece.subarray(from, from + file.length), file.length));
    }, () => {
      this.layouts.set(index, null);
    }).finally(() => {
      this.probing.delete(index);
      this.update();
    });
  }

  private remove(st: ReaderState): void {
    if (!this.readers.delete(st)) return;
    if (this.readers.size === 0 && !this.closed) {
      this.lingerUntil = Date.now() + LINGER_MS;
      if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
      this.lingerTimer = setTimeout(() => { this.lingerTimer = null; this.update(); }, LINGER_MS + 10);
      this.lingerTimer.unref();
    }
    st.wake?.();
    this.update();
  }

  /**
   * Recompute the picker's critical list from every reader's position and rate: the pieces readers are blocked on
   * (urgent), then each reader's media head/index and readahead window, readers that wait before readers that are
   * merely reading ahead, interleaved so none starves; a prefetch hint last.
   */
  update(): void {
    if (this.closed) return;
    const meta = this.host.meta;
    const urgent: number[] = [];
    const waiting: number[][] = [];
    const others: number[][] = [];
    for (const st of this.readers) {
      if (st.waiting !== null) urgent.push(st.waiting);
      const list = st.fromStart ? upfrontPieces(meta, st.file, this.layouts.get(st.file)) : [];
      const windowBytes = Math.min(MAX_WINDOW_BYTES, Math.max(MIN_WINDOW_PIECES * meta.pieceLength, st.rate.rate() * WINDOW_SECONDS));
      const first = Math.floor(st.pos / meta.pieceLength);
      const last = Math.min(Math.floor(st.end / meta.pieceLength), first + Math.ceil(windowBytes / meta.pieceLength) - 1);
      for (let i = first; i <= last; i++) list.push(i);
      // Interleaving counts pieces still missing, so a reader whose window is mostly here does not fall behind.
      (st.waiting !== null ? waiting : others).push(list.filter((i) => !this.host.hasPiece(i)));
    }
    const out = [...urgent];
    for (const lists of [waiting, others]) {
      for (let k = 0; lists.some((l) => k < l.length); k++) for (const l of lists) if (k < l.length) out.push(l[k]!);
    }
    let hintMissing = false;
    if (this.hintFile !== null) {
      const file = meta.files[this.hintFile]!;
      const first = firstPieceOf(meta, this.hintFile);
      const lastOfFile = Math.floor((file.offset + file.length - 1) / meta.pieceLength);
      const hint = upfrontPieces(meta, this.hintFile, this.layouts.get(this.hintFile));
      for (let i = first; i < first + MIN_WINDOW_PIECES && i <= lastOfFile; i++) hint.push(i);
      hintMissing = hint.some((i) => !this.host.hasPiece(i));
      out.push(...hint);
    }
    const streaming = this.readers.size > 0 || hintMissing || Date.now() < this.lingerUntil;
    // The picker drops pieces we have or do not want, and repeats.
    this.host.setCritical(out, urgent.length, streaming);
  }

  close(): void {
    this.closed = true;
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    for (const st of this.readers) st.wake?.();
    this.readers.clear();
  }
}

function firstPieceOf(meta: Metainfo, index: number): number {
  return Math.floor(meta.files[index]!.offset / meta.pieceLength);
}

/**
 * What a player of file `index` asks for first, in the order it asks: the first piece (container header), then the
 * media index where the player jumps next — an MP4's moov when it trails the media data, found exactly once the head
 * is known (`layout`: undefined before the probe, null when it did not tell, then guessed by size); Matroska cues
 * and AVI idx1 by size — then the rest of the head. An MP4 whose moov leads needs nothing from its end. Files of
 * other kinds: the head only. May repeat a piece (the picker keeps the first).
 */
function upfrontPieces(meta: Metainfo, index: number, layout: Mp4Layout | null | undefined): number[] {
  const file = meta.files[index]!;
  if (file.length === 0) return [];
  const P = meta.pieceLength;
  const container = mediaContainerOf(file.path.join('/'));
  const first = Math.floor(file.offset / P);
  const headLast = Math.floor((file.offset + Math.min(file.length, HEAD_BYTES) - 1) / P);
  const fileEnd = file.offset + file.length - 1;
  let tailFrom = -1;
  let tailTo = fileEnd;
  if (container === 'mp4' && layout?.moov === 'end') {
    tailFrom = file.offset + layout.indexAt;
    tailTo = Math.min(fileEnd, tailFrom + MAX_INDEX_BYTES - 1);
  } else if (container !== 'mp4' || layout === null) {
    // By size: Matroska cues, AVI idx1, an MP4 whose head did not tell. An MP4 not probed yet gets no guess: its
    // first piece, first in line, tells the layout soon, and a tail guessed by size is mostly pieces never read.
    const tailLen = Math.min(file.length, tailBytes(file.length, container));
    if (tailLen > 0) tailFrom = fileEnd - tailLen + 1;
  }
  const out: number[] = [first];
  if (tailFrom >= 0) for (let i = Math.floor(tailFrom / P); i <= Math.floor(tailTo / P); i++) out.push(i);
  for (let i = first + 1; i <= headLast; i++) out.push(i);
  return out;
}
