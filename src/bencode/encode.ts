import { BencodeError } from './decode.js';

const MAX_ENCODE_DEPTH = 512; // guards against cyclic structures overflowing the stack

/** Growable output buffer: avoids building many small Buffers and concatenating them. */
class Writer {
  buf = Buffer.allocUnsafe(256);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
  bytes(b: Uint8Array): void {
    this.ascii(`${b.length}:`);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

function bad(what: string): never {
  throw new BencodeError(`bencode: cannot encode ${what}`, -1);
}

/**
 * Object/Map keys: a string whose code units all fit in a byte is taken as latin1 raw bytes, matching how
 * the decoder represents keys, so decode -> encode round-trips exactly; other strings are encoded as UTF-8.
 */
function keyBytes(k: string | Uint8Array): Buffer {
  if (typeof k !== 'string') return Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  return /^[\x00-\xff]*$/.test(k) ? Buffer.from(k, 'latin1') : Buffer.from(k, 'utf8');
}

function writeDict(w: Writer, entries: [Buffer, unknown][], depth: number): void {
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  w.ascii('d');
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    if (i > 0 && k.equals(entries[i - 1]![0])) bad(`dict with duplicate key "${k.toString('latin1')}"`);
    w.bytes(k);
    write(w, v, depth + 1);
  }
  w.ascii('e');
}

function write(w: Writer, v: unknown, depth: number): void {
  if (depth > MAX_ENCODE_DEPTH) bad('value nested too deeply (cyclic?)');
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v)) bad(`number ${v} (only safe integers)`);
      w.ascii(`i${v}e`);
      return;
    case 'bigint':
      w.ascii(`i${v}e`);
      return;
    case 'boolean':
      w.ascii(v ? 'i1e' : 'i0e');
      return;
    case 'string':
      w.bytes(Buffer.from(v, 'utf8'));
      return;
    case 'object': {
      if (v === null) bad('null');
      if (v instanceof Uint8Array) { w.bytes(v); return; }
      if (ArrayBuffer.isView(v)) bad('typed array other than Uint8Array');
      if (Array.isArray(v)) {
        w.ascii('l');
        for (const item of v) {
          if (item === undefined || item === null) bad('null/undefined list item');
          write(w, item, depth + 1);
        }
        w.ascii('e');
        return;
      }
      const entries: [Buffer, unknown][] = [];
      if (v instanceof Map) {
        for (const [k, val] of v) {
          if (typeof k !== 'string' && !(k instanceof Uint8Array)) bad('Map key that is not a string or Buffer');
          if (val !== undefined && val !== null) entries.push([keyBytes(k), val]);
        }
      } else {
        for (const k of Object.keys(v)) {
          const val = (v as Record<string, unknown>)[k];
          if (val !== undefined && val !== null) entries.push([keyBytes(k), val]);
        }
      }
      writeDict(w, entries, depth);
      return;
    }
    default:
      bad(typeof v);
  }
}

/** Bencode a value. Strings are UTF-8, booleans 0/1, null/undefined dict values skipped, keys sorted by raw bytes. */
export function encode(value: unknown): Buffer {
  if (value === undefined || value === null) bad(String(value));
  const w = new Writer();
  write(w, value, 0);
  // Copy out so the result does not pin the (up to 2x larger) scratch buffer.
  return Buffer.from(w.buf.subarray(0, w.len));
}
