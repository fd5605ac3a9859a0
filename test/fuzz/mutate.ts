/**
 * Mutation-based input generation: start from valid inputs (torrents, handshakes and messages, packets) and
 * apply a few byte-level edits. Parsers reject random bytes at the first byte; edits of valid input get deep
 * into them, which is where the bugs are.
 */
import fc from 'fast-check';

export type Op =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'insert'; at: number; bytes: Uint8Array }
  | { k: 'delete'; at: number; n: number }
  | { k: 'dup'; at: number; n: number; to: number }
  | { k: 'splice'; at: number; from: number; src: number; n: number }
  | { k: 'truncate'; at: number }
  | { k: 'magic'; at: number; v: number };

/** Values that break length fields, counters and integer parsing. */
const MAGIC = ['0', '-1', '-0', '00', '1', '4294967295', '4294967296', '9007199254740993', '99999999999999999999999', 'i-0e', 'le', 'de', '0:', '1:', ':', 'e'];
const MAGIC_BYTES = [[0], [0xff], [0x7f], [0x80], [0xff, 0xff, 0xff, 0xff], [0, 0, 0, 0], [0x7f, 0xff, 0xff, 0xff], [0, 0x10, 0, 0x0d]];

const pos = fc.nat({ max: 1 << 20 });

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('flip' as const), at: pos, bit: fc.nat({ max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('set' as const), at: pos, v: fc.nat({ max: 255 }) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('insert' as const), at: pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('delete' as const), at: pos, n: fc.integer({ min: 1, max: 16 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('dup' as const), at: pos, n: fc.integer({ min: 1, max: 64 }), to: pos }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('splice' as const), at: pos, from: pos, src: fc.nat(), n: fc.integer({ min: 1, max: 64 }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('truncate' as const), at: pos }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('magic' as const), at: pos, v: fc.nat({ max: MAGIC.length + MAGIC_BYTES.length - 1 }) }), weight: 3 },
);

export function applyOps(seed: Buffer, ops: readonly Op[], corpus: readonly Buffer[]): Buffer {
  let b = Buffer.from(seed);
  for (const op of ops) {
    const n = b.length;
    const at = n === 0 ? 0 : op.at % (n + (op.k === 'insert' || op.k === 'magic' ? 1 : 0));
    switch (op.k) {
      case 'flip': if (n) b[at % n]! ^= 1 << op.bit; break;
      case 'set': if (n) b[at % n] = op.v; break;
      case 'insert': b = Buffer.concat([b.subarray(0, at), op.bytes, b.subarray(at)]); break;
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + op.n)]); break;
      case 'dup': {
        const part = b.subarray(at, at + op.n);
        const to = n === 0 ? 0 : op.to % (n + 1);
        b = Buffer.concat([b.subarray(0, to), part, b.subarray(to)]);
        break;
      }
      case 'splice': {
        const src = corpus[op.src % corpus.length]!;
        const from = src.length === 0 ? 0 : op.from % src.length;
        b = Buffer.concat([b.subarray(0, at), src.subarray(from, from + op.n), b.subarray(at + op.n)]);
        break;
      }
      case 'truncate': b = b.subarray(0, at); break;
      case 'magic': {
        const m = op.v < MAGIC.length ? Buffer.from(MAGIC[op.v]!) : Buffer.from(MAGIC_BYTES[op.v - MAGIC.length]!);
        // Overwrite a digit run when there is one here (length prefixes, integers); insert otherwise.
        let end = at;
        while (end < n && b[end]! >= 0x30 && b[end]! <= 0x39) end++;
        b = Buffer.concat([b.subarray(0, at), m, b.subarray(end > at ? end : at)]);
        break;
      }
    }
  }
  return b;
}

/** Inputs made from `corpus` by 0..maxOps edits (0 keeps the valid input: the happy path is checked too). */
export function mutated(corpus: readonly Buffer[], maxOps = 6): fc.Arbitrary<Buffer> {
  return fc.tuple(fc.nat({ max: corpus.length - 1 }), fc.array(opArb, { maxLength: maxOps }))
    .map(([i, ops]) => applyOps(corpus[i]!, ops, corpus));
}
