import { ShoalError } from '../util/errors.js';

export type BValue = number | Buffer | BValue[] | BDict;
/** Null-prototype object; keys are latin1 ("binary") strings of the raw key bytes. */
export interface BDict { [key: string]: BValue }

export class BencodeError extends ShoalError {
  /** Byte offset in the input where the problem was found (-1 for encoding errors). */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super('EBENCODE', message);
    this.name = 'BencodeError';
    this.offset = offset;
  }
}

/**
 * A size limit from DecodeOptions (maxListLength, maxValues) was exceeded. Found by a scan that allocates
 * nothing, before any value is built, so oversized input costs one pass over its bytes and no memory.
 */
export class BencodeLimitError extends BencodeError {
  readonly limit: 'maxListLength' | 'maxValues';
  constructor(limit: 'maxListLength' | 'maxValues', message: string, offset: number) {
    super(message, offset);
    this.name = 'BencodeLimitError';
    this.limit = limit;
  }
}

export interface DecodeOptions {
  /** Deepest allowed nesting of lists/dicts (default 64). */
  maxDepth?: number;
  /** Accept dicts whose keys are not in raw-byte order (duplicates are still rejected). */
  allowUnsortedKeys?: boolean;
  /** Reject inputs longer than this many bytes. */
  maxLength?: number;
  /** Reject (BencodeLimitError) any list with more items than this, before decoding anything. */
  maxListLength?: number;
  /** Reject (BencodeLimitError) input holding more values (integers, strings, lists, dicts; keys not counted). */
  maxValues?: number;
}

const CH_i = 0x69, CH_l = 0x6c, CH_d = 0x64, CH_e = 0x65, CH_0 = 0x30, CH_9 = 0x39, CH_MINUS = 0x2d, CH_COLON = 0x3a;
const MAX_INT = Number.MAX_SAFE_INTEGER;

interface ListFrame { list: BValue[]; dict: undefined; start: number }
interface DictFrame { list: undefined; dict: BDict; start: number; key: string | undefined; lastKey: string | undefined; valueStart: number }
type Frame = ListFrame | DictFrame;

function fail(what: string, offset: number): never {
  throw new BencodeError(`bencode: ${what} at byte ${offset}`, offset);
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * Core parser. Iterative with an explicit stack so a nesting bomb hits maxDepth instead of the JS stack.
 * Byte strings are copied out of the input: callers (wire parsers with reused buffers) can keep them safely.
 */
function decodeAt(
  buf: Buffer, start: number, opts: DecodeOptions | undefined,
  spans: Map<string, [number, number]> | undefined,
): { value: BValue; end: number } {
  const len = buf.length;
  const maxDepth = opts?.maxDepth ?? 64;
  const allowUnsorted = opts?.allowUnsortedKeys === true;
  const stack: Frame[] = [];
  let pos = start;

  for (;;) {
    if (pos >= len) fail(stack.length ? 'unexpected end of input inside ' + (stack[stack.length - 1]!.dict ? 'dict' : 'list') : 'unexpected end of input', pos);
    const c = buf[pos]!;
    const top = stack.length ? stack[stack.length - 1]! : undefined;
    let value: BValue;

    if (top !== undefined && top.dict !== undefined && top.key === undefined && c !== CH_e) {
      // Expecting a dict key.
      if (c < CH_0 || c > CH_9) fail('dict key is not a string', pos);
      const keyPos = pos;
      const [s, e] = stringBounds(buf, pos);
      const key = buf.toString('latin1', s, e);
      if (top.lastKey !== undefined) {
        // latin1 strings compare by code unit, which equals raw byte order.
        if (key === top.lastKey) fail(`duplicate dict key "${printable(key)}"`, keyPos);
        if (key < top.lastKey) {
          if (!allowUnsorted) fail(`dict key "${printable(key)}" out of order`, keyPos);
          if (Object.prototype.hasOwnProperty.call(top.dict, key)) fail(`duplicate dict key "${printable(key)}"`, keyPos);
        }
      }
      if (!allowUnsorted || top.lastKey === undefined || key > top.lastKey) top.lastKey = key;
      top.key = key;
      pos = e;
      top.valueStart = pos;
      continue;
    }

    if (c === CH_i) {
      const r = parseInteger(buf, pos);
      value = r.value;
      pos = r.end;
    } else if (c >= CH_0 && c <= CH_9) {
      const [s, e] = stringBounds(buf, pos);
      // One object per string (Buffer.from(subarray) makes two); small ones come from the shared pool either way.
      const copy = Buffer.allocUnsafe(e - s);
      buf.copy(copy, 0, s, e);
      value = copy;
      pos = e;
    } else if (c === CH_l || c === CH_d) {
      if (stack.length >= maxDepth) fail(`nesting deeper than ${maxDepth}`, pos);
      stack.push(c === CH_l
        ? { list: [], dict: undefined, start: pos }
        : { list: undefined, dict: Object.create(null) as BDict, start: pos, key: undefined, lastKey: undefined, valueStart: 0 });
      pos++;
      continue;
    } else if (c === CH_e) {
      if (top === undefined) fail("unexpected 'e'", pos);
      if (top.dict !== undefined && top.key !== undefined) fail(`dict key "${printable(top.key)}" has no value`, pos);
      stack.pop();
      value = top.dict ?? top.list!;
      pos++;
    } else {
      fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`, pos);
    }

    const parent = stack.length ? stack[stack.length - 1]! : undefined;
    if (parent === undefined) return { value, end: pos };
    if (parent.list !== undefined) {
      parent.list.push(value);
    } else {
      const key = parent.key!;
      parent.dict[key] = value;
      if (spans !== undefined && stack.length === 1) spans.set(key, [parent.valueStart, pos]);
      parent.key = undefined;
    }
  }
}

/** Parse `<len>:` at pos; returns the [start, end) of the string bytes. */
function stringBounds(buf: Buffer, pos: number): [number, number] {
  const len = buf.length;
  const first = pos;
  if (buf[pos] === CH_0 && pos + 1 < len && buf[pos + 1] !== CH_COLON) fail('string length with leading zero', first);
  let n = 0;
  while (pos < len) {
    const c = buf[pos]!;
    if (c === CH_COLON) break;
    if (c < CH_0 || c > CH_9) fail('invalid character in string length', pos);
    n = n * 10 + (c - CH_0);
    if (n > len) fail('string length past end of input', first);
    pos++;
  }
  if (pos >= len) fail('unterminated string length', first);
  const s = pos + 1;
  if (s + n > len) fail('string length past end of input', first);
  return [s, s + n];
}

function parseInteger(buf: Buffer, pos: number): { value: number; end: number } {
  const len = buf.length;
  const first = pos;
  pos++; // 'i'
  let neg = false;
  if (pos < len && buf[pos] === CH_MINUS) { neg = true; pos++; }
  const digitsStart = pos;
  let n = 0;
  while (pos < len) {
    const c = buf[pos]!;
    if (c === CH_e) break;
    if (c < CH_0 || c > CH_9) fail('invalid character in integer', pos);
    n = n * 10 + (c - CH_0);
    if (n > MAX_INT) fail('integer out of range ±2^53', first);
    pos++;
  }
  if (pos >= len) fail('unterminated integer', first);
  const digits = pos - digitsStart;
  if (digits === 0) fail('non-canonical integer', first);
  if (buf[digitsStart] === CH_0 && (digits > 1 || neg)) fail('non-canonical integer', first);
  return { value: neg ? -n : n, end: pos + 1 };
}

function printable(key: string): string {
  const s = key.length > 40 ? key.slice(0, 40) + '…' : key;
  return s.replace(/[^\x20-\x7e]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function checkLength(buf: Buffer, opts: DecodeOptions | undefined): void {
  if (opts?.maxLength !== undefined && buf.length > opts.maxLength) fail(`input longer than ${opts.maxLength} bytes`, opts.maxLength);
  if (buf.length === 0) fail('empty input', 0);
  if (opts?.maxListLength !== undefined || opts?.maxValues !== undefined) scanLimits(buf, opts);
}

/**
 * Counts values and list items without building anything (one Int32Array of item counts, sized by maxDepth).
 * Syntax errors are left to the real decode: the scan stops quietly at anything it does not understand.
 */
function scanLimits(buf: Buffer, opts: DecodeOptions): void {
  const maxList = opts.maxListLength ?? Infinity;
  const maxValues = opts.maxValues ?? Infinity;
  const maxDepth = opts.maxDepth ?? 64;
  const counts = new Int32Array(maxDepth + 1);
  /** Per level: 0 a list, 1 a dict expecting a key, 2 a dict expecting a value. */
  const kind = new Int8Array(maxDepth + 1);
  const len = buf.length;
  let depth = 0;
  let values = 0;
  let pos = 0;
  while (pos < len) {
    const c = buf[pos]!;
    if (c === CH_e) {
      if (depth === 0) return;
      depth--;
      pos++;
      if (depth === 0) return;
      continue;
    }
    const inDict = depth > 0 && kind[depth] !== 0;
    const isKey = inDict && kind[depth] === 1;
    if (!isKey) {
      if (++values > maxValues) throw new BencodeLimitError('maxValues', `bencode: more than ${maxValues} values`, pos);
      if (depth > 0 && !inDict && ++counts[depth]! > maxList) {
        throw new BencodeLimitError('maxListLength', `bencode: a list has more than ${maxList} items`, pos);
      }
    }
    if (inDict) kind[depth] = isKey ? 2 : 1;
    if (c === CH_l || c === CH_d) {
      if (depth >= maxDepth) return;
      depth++;
      counts[depth] = 0;
      kind[depth] = c === CH_d ? 1 : 0;
      pos++;
    } else if (c === CH_i) {
      const e = buf.indexOf(CH_e, pos);
      if (e < 0) return;
      pos = e + 1;
    } else if (c >= CH_0 && c <= CH_9) {
      let n = 0;
      let p = pos;
      while (p < len && buf[p]! >= CH_0 && buf[p]! <= CH_9 && n <= len) n = n * 10 + (buf[p++]! - CH_0);
      if (p >= len || buf[p] !== CH_COLON) return;
      pos = p + 1 + n;
    } else {
      return;
    }
    if (depth === 0) return;
  }
}

/** Strict decode of exactly one value filling the whole input. */
export function decode(input: Uint8Array, opts?: DecodeOptions): BValue {
  const buf = asBuffer(input);
  checkLength(buf, opts);
  const { value, end } = decodeAt(buf, 0, opts, undefined);
  if (end !== buf.length) fail('trailing data', end);
  return value;
}

/**
 * Decode one value at the start of the input and report where it ended; data after it is allowed.
 * For formats that append raw bytes after a bencoded header (BEP 9 ut_metadata data messages).
 */
export function decodePrefix(input: Uint8Array, opts?: DecodeOptions): { value: BValue; end: number } {
  const buf = asBuffer(input);
  checkLength(buf, opts);
  return decodeAt(buf, 0, opts, undefined);
}

/** Decode a top-level dict, also returning each top-level value's byte span (the info-hash needs the original bytes). */
export function decodeWithSpans(input: Uint8Array, opts?: DecodeOptions): { value: BDict; spans: Map<string, [start: number, end: number]> } {
  const buf = asBuffer(input);
  checkLength(buf, opts);
  if (buf[0] !== CH_d) fail('top-level value is not a dict', 0);
  const spans = new Map<string, [number, number]>();
  const { value, end } = decodeAt(buf, 0, opts, spans);
  if (end !== buf.length) fail('trailing data', end);
  return { value: value as BDict, spans };
}

export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && !Array.isArray(v);
}

/** Buffer -> UTF-8 string; anything else -> undefined. */
export function toStr(v: BValue | undefined): string | undefined {
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}
