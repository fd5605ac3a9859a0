import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BencodeError, decode, decodePrefix, decodeWithSpans, encode, toStr, type BValue } from '../../src/bencode/index.js';
import { ShoalError } from '../../src/util/errors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function rejects(input: string | Buffer, pattern: RegExp, offset?: number, opts?: Parameters<typeof decode>[1]): void {
  const buf = typeof input === 'string' ? b(input) : input;
  assert.throws(() => decode(buf, opts), (e: unknown) => {
    assert.ok(e instanceof BencodeError, `expected BencodeError, got ${String(e)}`);
    assert.ok(e instanceof ShoalError);
    assert.equal(e.code, 'EBENCODE');
    assert.match(e.message, /^bencode: .* at byte \d+$/);
    assert.match(e.message, pattern);
    if (offset !== undefined) assert.equal(e.offset, offset);
    return true;
  });
}

test('decodes scalars, lists and dicts', () => {
  assert.equal(decode(b('i0e')), 0);
  assert.equal(decode(b('i-42e')), -42);
  assert.equal(decode(b('i9007199254740991e')), Number.MAX_SAFE_INTEGER);
  assert.equal(decode(b('i-9007199254740991e')), -Number.MAX_SAFE_INTEGER);
  assert.deepEqual(decode(b('4:spam')), Buffer.from('spam'));
  assert.deepEqual(decode(b('0:')), Buffer.alloc(0));
  assert.deepEqual(decode(b('l4:spami7ee')), [Buffer.from('spam'), 7]);
  const d = decode(b('d3:cow3:moo4:spaml1:a1:bee')) as Record<string, BValue>;
  assert.equal(Object.getPrototypeOf(d), null);
  assert.deepEqual(Object.keys(d), ['cow', 'spam']);
  assert.equal(toStr(d['cow']), 'moo');
  assert.equal(toStr(42), undefined);
  assert.equal(toStr(undefined), undefined);
});

test('accepts plain Uint8Array input and copies strings out of the input', () => {
  const u = new Uint8Array(b('l3:abce'));
  const v = decode(u) as Buffer[];
  u[4] = 0x7a;
  assert.equal(v[0]!.toString(), 'abc');
});

test('dict keys are latin1 strings of the raw bytes', () => {
  // key bytes 0xc3 0xa9 ("é" in UTF-8) stay two latin1 chars
  const d = decode(Buffer.concat([b('d2:'), Buffer.from([0xc3, 0xa9]), b('i1ee')])) as Record<string, BValue>;
  assert.deepEqual(Object.keys(d), ['\u00c3\u00a9']);
  // order is by raw bytes: 0x7f < 0x80
  assert.doesNotThrow(() => decode(Buffer.concat([b('d1:'), Buffer.from([0x7f]), b('i1e1:'), Buffer.from([0x80]), b('i2ee')])));
  rejects(Buffer.concat([b('d1:'), Buffer.from([0x80]), b('i1e1:'), Buffer.from([0x7f]), b('i2ee')]), /out of order/, 7);
  // __proto__ is an ordinary key
  const p = decode(b('d9:__proto__i1ee')) as Record<string, BValue>;
  assert.equal(Object.getOwnPropertyDescriptor(p, '__proto__')?.value, 1);
});

test('rejects non-canonical and malformed integers', () => {
  rejects('i-0e', /non-canonical integer at byte 0/, 0);
  rejects('i03e', /non-canonical integer/, 0);
  rejects('i-03e', /non-canonical integer/, 0);
  rejects('ie', /non-canonical integer/, 0);
  rejects('i-e', /non-canonical integer/, 0);
  rejects('i1.5e', /invalid character in integer/, 2);
  rejects('i+1e', /invalid character in integer/, 1);
  rejects('i12', /unterminated integer/, 0);
  rejects('l1:ai01ee', /non-canonical integer at byte 4/, 4);
});

test('rejects integers outside ±2^53', () => {
  rejects('i9007199254740992e', /out of range/);
  rejects('i-9007199254740992e', /out of range/);
  rejects('i99999999999999999999999999e', /out of range/);
});

test('rejects bad string lengths', () => {
  rejects('03:abc', /leading zero/, 0);
  rejects('00:', /leading zero/, 0);
  rejects('4:abc', /past end of input/, 0);
  rejects('99999999999999999999:x', /past end of input/, 0);
  rejects('3abc', /invalid character in string length/, 1);
  rejects('1', /unterminated string length/, 0);
  rejects('12', /past end of input/, 0);
  rejects('l5:abe', /past end of input at byte 1/, 1);
});

test('rejects trailing data', () => {
  rejects('i1ei2e', /trailing data at byte 3/, 3);
  rejects('le ', /trailing data/, 2);
  rejects('4:spamx', /trailing data/, 6);
});

test('rejects truncated input and stray bytes', () => {
  rejects('', /empty input/, 0);
  rejects('l', /unexpected end of input inside list/, 1);
  rejects('d3:foo', /unexpected end of input inside dict/, 6);
  rejects('e', /unexpected 'e'/, 0);
  rejects('x', /unexpected byte 0x78/, 0);
  rejects('d1:ae', /has no value/, 4);
});

test('rejects unsorted and duplicate keys; allowUnsortedKeys permits order but not duplicates', () => {
  rejects('d1:bi1e1:ai2ee', /dict key "a" out of order at byte 7/, 7);
  rejects('d1:ai1e1:ai2ee', /duplicate dict key "a"/, 7);
  rejects('d2:aai1e1:ai2ee', /out of order/);
  const v = decode(b('d1:bi1e1:ai2ee'), { allowUnsortedKeys: true }) as Record<string, BValue>;
  assert.deepEqual({ ...v }, { b: 1, a: 2 });
  rejects('d1:bi1e1:ai2e1:bi3ee', /duplicate dict key "b"/, 13, { allowUnsortedKeys: true });
  rejects('d1:ai1e1:ai2ee', /duplicate/, 7, { allowUnsortedKeys: true });
});

test('rejects non-string dict keys', () => {
  rejects('di1ei2ee', /dict key is not a string at byte 1/, 1);
  rejects('dlei1ee', /dict key is not a string/, 1);
  rejects('d1:ai1edeeee', /dict key is not a string/, 7);
});

test('nesting limit: default 64, configurable, and a deep bomb does not overflow the stack', () => {
  const nest = (n: number): string => 'l'.repeat(n) + 'e'.repeat(n);
  assert.doesNotThrow(() => decode(b(nest(64))));
  rejects(nest(65), /nesting deeper than 64 at byte 64/, 64);
  rejects(nest(5), /nesting deeper than 4/, 4, { maxDepth: 4 });
  rejects('d1:a'.repeat(70) + 'i1e' + 'e'.repeat(70), /nesting deeper than 64/);
  const bomb = Buffer.alloc(1_000_000, 0x6c);
  rejects(bomb, /nesting deeper than 64/);
  // even when the caller lifts the limit, an unterminated million-deep nest is an EBENCODE, not a RangeError
  rejects(bomb, /unexpected end of input/, 1_000_000, { maxDepth: Infinity });
});

test('maxLength', () => {
  rejects('4:spam', /input longer than 5 bytes/, 5, { maxLength: 5 });
  assert.deepEqual(decode(b('4:spam'), { maxLength: 6 }), Buffer.from('spam'));
});

test('decodeWithSpans gives byte spans of top-level values', () => {
  const buf = b('d8:announce3:url4:infod6:lengthi5e4:name1:xe1:zi1ee');
  const { value, spans } = decodeWithSpans(buf);
  const [s, e] = spans.get('info')!;
  assert.equal(buf.subarray(s, e).toString('latin1'), 'd6:lengthi5e4:name1:xe');
  assert.equal(buf.subarray(...spans.get('announce')!).toString(), '3:url');
  assert.equal(buf.subarray(...spans.get('z')!).toString(), 'i1e');
  assert.equal(spans.size, 3);
  assert.equal(toStr(value['announce']), 'url');
  assert.throws(() => decodeWithSpans(b('li1ee')), /top-level value is not a dict at byte 0/);
  assert.throws(() => decodeWithSpans(b('de1')), /trailing data/);
});

test('decodePrefix allows trailing bytes and reports the end', () => {
  const buf = Buffer.concat([b('d8:msg_typei1e5:piecei0ee'), Buffer.from([1, 2, 3])]);
  const { value, end } = decodePrefix(buf);
  assert.equal(end, buf.length - 3);
  assert.equal((value as Record<string, BValue>)['piece'], 0);
});

test('encodes values', () => {
  assert.equal(encode(42).toString(), 'i42e');
  assert.equal(encode(-1).toString(), 'i-1e');
  assert.equal(encode(0).toString(), 'i0e');
  assert.equal(encode('spam').toString(), '4:spam');
  assert.equal(encode('é').toString('latin1'), '2:\u00c3\u00a9'); // UTF-8
  assert.equal(encode(Buffer.from([0, 255])).toString('latin1'), '2:\u0000\u00ff');
  assert.equal(encode(true).toString(), 'i1e');
  assert.equal(encode(false).toString(), 'i0e');
  assert.equal(encode([1, 'a', [Buffer.from('b')]]).toString(), 'li1e1:al1:bee');
  assert.equal(encode({ z: 1, a: 'x', m: null, n: undefined }).toString(), 'd1:a1:x1:zi1ee');
  assert.equal(encode(new Map<string | Buffer, unknown>([['b', 1], [Buffer.from('a'), 2]])).toString(), 'd1:ai2e1:bi1ee');
  assert.equal(encode({}).toString(), 'de');
  assert.equal(encode([]).toString(), 'le');
});

test('encoder sorts keys by raw bytes, not by JS string order', () => {
  // '\u00ff' is one latin1 byte 0xff; '\u0100' is UTF-8 c4 80. Raw order: 0xc4.. < 0xff.
  const out = encode({ '\u00ff': 1, '\u0100': 2 });
  assert.deepEqual(out, Buffer.concat([b('d2:'), Buffer.from([0xc4, 0x80]), b('i2e1:'), Buffer.from([0xff]), b('i1ee')]));
  assert.doesNotThrow(() => decode(out));
});

test('encoder rejects what bencode cannot express', () => {
  for (const v of [1.5, NaN, Infinity, 2 ** 60, null, undefined, Symbol('x'), () => 1, [null], new Uint16Array(2)]) {
    assert.throws(() => encode(v), (e: unknown) => e instanceof BencodeError && /cannot encode/.test(e.message));
  }
  assert.throws(() => encode(new Map<string | Buffer, unknown>([['a', 1], [Buffer.from('a'), 2]])), /duplicate key/);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.throws(() => encode(cyclic), /nested too deeply/);
});

test('decode(encode(x)) round-trips sample torrents byte for byte', () => {
  const raw = b('d8:announce27:http://127.0.0.1:1/announce13:creation datei1700000000e4:infod6:lengthi12345e4:name5:a.txt12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee');
  assert.deepEqual(encode(decode(raw)), raw);
});

const bvalue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }).map((s) => Buffer.from(s, 'utf8').toString('latin1')), tie('value'), { maxKeys: 5 })
      .map((o) => Object.assign(Object.create(null) as object, o)),
  ),
})).value;

test('property: decode(encode(v)) deep-equals v, and encode(decode(bytes)) is the identity', () => {
  fc.assert(fc.property(bvalue, (v) => {
    const enc = encode(v);
    const dec = decode(enc);
    assert.deepEqual(dec, v);
    assert.deepEqual(encode(dec), enc);
  }), { numRuns: 500 });
});

test('property: arbitrary bytes either decode or throw BencodeError, never anything else', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (u, prefixed) => {
    const buf = prefixed ? Buffer.concat([b('d1:a'), u]) : Buffer.from(u);
    try {
      const v = decode(buf);
      assert.deepEqual(encode(v), buf); // whatever strict decoding accepts is canonical
    } catch (e) {
      assert.ok(e instanceof BencodeError, String(e));
    }
  }), { numRuns: 2000 });
});
