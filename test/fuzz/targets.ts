/**
 * Fuzz targets: for each parser of untrusted input, a generator (mutations of valid inputs) and a property.
 * Every target's property includes: it throws nothing but the documented ShoalError codes, a case finishes in
 * bounded time (HANG_MS), and memory stays bounded (MAX_RSS_GROWTH over the run). Most add a round-trip
 * property: whatever a parser accepts must re-encode to exactly what it read, or re-parse to the same thing.
 * Used by test/adversarial/fuzz.test.ts (short, seeded) and test/fuzz/run.ts (`npm run fuzz`, long).
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { RemoteInfo } from 'node:dgram';
import { pino } from 'pino';
import { BencodeError, decode, decodeWithSpans, encode, type BValue } from '../../src/bencode/index.js';
import { buildMagnet, encodeTorrent, parseMagnet, parseTorrent } from '../../src/metainfo/index.js';
import { decodeResume, encodeResume, type ResumeData } from '../../src/storage/resume.js';
import { MemoryStore } from '../../src/tracker/memory-store.js';
import { TrackerMetrics } from '../../src/tracker/metrics.js';
import { UdpTracker } from '../../src/tracker/udp.js';
import { TrackerServer, parseQuery } from '../../src/tracker/index.js';
import type { TrackerContext } from '../../src/tracker/context.js';
import { isShoalError, type ShoalErrorCode } from '../../src/util/errors.js';
import {
  CHOKE, HAVE_ALL, INTERESTED, KEEP_ALIVE, MessageId, MessageParser, UNCHOKE,
  encodeBitfield, encodeBlockMessage, encodeExtended, encodeIndexMessage, encodePiece, encodePort, encodeRaw,
} from '../../src/wire/index.js';
import { encodeHandshake, parseHandshake } from '../../src/wire/handshake.js';
import type { WireHandler } from '../../src/wire/types.js';
import { mutated } from './mutate.js';

export const HANG_MS = 2000;
export const MAX_RSS_GROWTH = 512 * 1024 * 1024;

export interface FuzzTarget<T = unknown> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  /** One case. Returns normally, or throws; `expected` decides whether a thrown error is acceptable. */
  run(input: T): void | Promise<void>;
  expected(err: unknown): boolean;
  show(input: T): string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

const codes = (...c: ShoalErrorCode[]) => (err: unknown): boolean => c.some((x) => isShoalError(err, x));
const hex = (b: Buffer): string => b.toString('hex');

/** A property violation: never an expected error, whatever its class. */
class Violation extends Error { override name = 'Violation'; }
function check(ok: boolean, what: string): void { if (!ok) throw new Violation(what); }

// ---------------------------------------------------------------- corpora of valid inputs

const sha = (s: string): Buffer => createHash('sha1').update(s).digest();

function torrents(): Buffer[] {
  const pieces = (n: number): Buffer => Buffer.concat(Array.from({ length: n }, (_, i) => sha(`p${i}`)));
  return [
    encode({ announce: 'http://127.0.0.1:6969/announce', 'creation date': 1700000000, comment: 'c', info: { name: 'a.bin', 'piece length': 16384, length: 40000, pieces: pieces(3) } }),
    encode({
      'announce-list': [['http://127.0.0.1:1/a', 'udp://127.0.0.1:2'], ['http://127.0.0.1:3/b']], 'url-list': ['http://127.0.0.1/ws/'],
      info: {
        name: 'folder', 'piece length': 32768, pieces: pieces(2), private: 1,
        files: [
          { length: 10, path: ['a', 'b.txt'] }, { length: 32758, path: ['.pad', '32758'], attr: 'p' },
          { length: 0, path: ['empty'] }, { length: 20000, path: ['c'], 'path.utf-8': ['ç'] },
        ],
      },
    }),
    encode({ info: { name: 'n', 'name.utf-8': 'ñ', 'piece length': 1, pieces: pieces(2), length: 2 } }),
  ];
}

function bencodes(): Buffer[] {
  return [
    ...torrents(),
    encode({ m: { ut_metadata: 2, ut_pex: 1 }, v: 'Shoal 0.1', p: 6881, reqq: 250, metadata_size: 31337, yourip: Buffer.from([127, 0, 0, 1]) }),
    encode({ msg_type: 1, piece: 0, total_size: 16384 }),
    encode([1, -5, [], {}, ['x', [['deep']]], Buffer.alloc(3)]),
    Buffer.from('i0e'), Buffer.from('0:'), Buffer.from('le'), Buffer.from('de'),
  ];
}

function magnets(): Buffer[] {
  const h = sha('magnet');
  return [
    buildMagnet({ infoHash: h }),
    buildMagnet({ infoHash: h, name: 'a name & more', trackers: ['http://127.0.0.1:6969/announce', 'udp://[::1]:6969'], webSeeds: ['http://127.0.0.1/x'], peers: [{ host: '127.0.0.1', port: 6881 }] }),
    `magnet:?xt=urn:btih:${'A'.repeat(32)}&dn=x&tr=http%3A%2F%2F127.0.0.1%2Fa&x.pe=[::1]:6881`,
    `magnet:?xt=urn:btih:${h.toString('hex').toUpperCase()}&xt=urn:btmh:1220${'0'.repeat(64)}&so=0-3`,
  ].map((s) => Buffer.from(s));
}

function wireStreams(): Buffer[] {
  const hs = encodeHandshake(sha('ih'), sha('peer'), { fast: true, extended: true, dht: true });
  const msgs = [
    KEEP_ALIVE, CHOKE, UNCHOKE, INTERESTED, HAVE_ALL,
    encodeIndexMessage(MessageId.Have, 7), encodeBitfield(Buffer.from([0xff, 0x80])),
    encodeBlockMessage(MessageId.Request, 1, 0, 16384), encodeBlockMessage(MessageId.Cancel, 1, 0, 16384),
    encodeBlockMessage(MessageId.Reject, 1, 16384, 16384), encodeIndexMessage(MessageId.AllowedFast, 3),
    encodePiece(1, 0, Buffer.alloc(64, 7)), encodePort(6881),
    encodeExtended(0, encode({ m: { ut_metadata: 2 }, v: 'x', p: 1 })),
    encodeExtended(2, Buffer.concat([encode({ msg_type: 1, piece: 0, total_size: 10 }), Buffer.alloc(10)])),
    encodeRaw(99, Buffer.from('unknown')),
  ];
  return [Buffer.concat([hs, ...msgs]), Buffer.concat([hs, ...msgs.slice().reverse()]), Buffer.concat(msgs)];
}

function resumeRecords(): { buf: Buffer; data: ResumeData }[] {
  const recs: ResumeData[] = [
    { infoHash: sha('r1'), pieceLength: 16384, pieces: Buffer.from([0xa5, 0x80]), files: [{ length: 20000, mtime: 1700000000123 }, { length: -1, mtime: 0 }], parts: { length: -1, mtime: 0 } },
    { infoHash: sha('r2'), pieceLength: 1 << 20, pieces: Buffer.alloc(8, 0xff), files: [{ length: 64 << 20, mtime: 1 }], parts: { length: 5, mtime: 7 } },
  ];
  return recs.map((data) => ({ buf: encodeResume(data), data }));
}

// ---------------------------------------------------------------- helpers for round-trip properties

function shape(v: BValue, limits: { list: number; values: number }): boolean {
  let values = 0;
  const walk = (x: BValue): boolean => {
    values++;
    if (Array.isArray(x)) { if (x.length > limits.list) return false; return x.every(walk); }
    if (typeof x === 'object' && !Buffer.isBuffer(x)) return Object.values(x).every(walk);
    return true;
  };
  return walk(v) && values <= limits.values;
}

class SinkHandler implements WireHandler {
  onKeepAlive(): void {}
  onChoke(): void {}
  onUnchoke(): void {}
  onInterested(): void {}
  onNotInterested(): void {}
  onHave(): void {}
  onBitfield(): void {}
  onRequest(): void {}
  onCancel(): void {}
  onPieceStart(_i: number, _b: number, length: number): Buffer | null { return length % 2 ? null : Buffer.allocUnsafe(length); }
  onPiece(): void {}
  onPort(): void {}
  onSuggest(): void {}
  onHaveAll(): void {}
  onHaveNone(): void {}
  onReject(): void {}
  onAllowedFast(): void {}
  onExtendedHandshake(): void {}
  onExtended(): void {}
  onClose(): void {}
}

// ---------------------------------------------------------------- targets

const bencodeTarget: FuzzTarget<Buffer> = {
  name: 'bencode',
  arbitrary: mutated(bencodes()),
  expected: codes('EBENCODE'),
  show: hex,
  run(buf) {
    let v: BValue;
    try { v = decode(buf); } catch (e) {
      // The limit scan must not change what is accepted: with no limits hit, the same error comes back.
      if (e instanceof BencodeError) assert.throws(() => decode(buf, { maxListLength: 1e9, maxValues: 1e9 }));
      throw e;
    }
    check(encode(v).equals(buf), 'strict decode accepted a non-canonical encoding (re-encoding differs)');
    const limits = { list: 3, values: 12 };
    let limited: BValue | undefined;
    try { limited = decode(buf, { maxListLength: limits.list, maxValues: limits.values }); } catch (e) { if (!(e instanceof BencodeError)) throw e; }
    check((limited !== undefined) === shape(v, limits), `maxListLength/maxValues scan disagrees with the decoded shape`);
    if (buf[0] === 0x64) {
      const { value, spans } = decodeWithSpans(buf);
      for (const [k, [s, e]] of spans) check(encode(value[k]!).equals(buf.subarray(s, e)), `span of ${k} is wrong`);
    }
  },
};

const assert = {
  throws(fn: () => unknown): void {
    try { fn(); } catch { return; }
    throw new Violation('decode with limits accepted what decode without limits refused');
  },
};

const metainfoTarget: FuzzTarget<Buffer> = {
  name: 'metainfo',
  arbitrary: mutated(torrents()),
  expected: codes('EBENCODE', 'EMETAINFO', 'EPATH'),
  show: hex,
  run(buf) {
    const m = parseTorrent(buf, { maxFiles: 1000 });
    let off = 0;
    for (const f of m.files) { check(f.offset === off && f.length >= 0, 'file offsets not contiguous'); off += f.length; }
    check(off === m.length && m.length > 0, 'length is not the sum of the files');
    check(m.pieceCount === Math.ceil(m.length / m.pieceLength) && m.pieceHashes.length === m.pieceCount * 20, 'piece count inconsistent');
    check(m.lastPieceLength > 0 && m.lastPieceLength <= m.pieceLength, 'last piece length out of range');
    const again = parseTorrent(encodeTorrent(m));
    check(again.infoHash.equals(m.infoHash) && again.files.length === m.files.length, 're-encoded torrent differs');
  },
};

const magnetTarget: FuzzTarget<Buffer> = {
  name: 'magnet',
  arbitrary: mutated(magnets()),
  expected: codes('EMAGNET'),
  show: (b) => JSON.stringify(b.toString('latin1')),
  run(buf) {
    const m = parseMagnet(buf.toString('latin1'));
    check(m.infoHash.length === 20, 'info-hash is not 20 bytes');
    const again = parseMagnet(buildMagnet(m));
    check(again.infoHash.equals(m.infoHash), 'buildMagnet/parseMagnet round trip changed the info-hash');
  },
};

interface WireCase { bytes: Buffer; cuts: number[] }
const wireTarget: FuzzTarget<WireCase> = {
  name: 'wire',
  arbitrary: fc.record({ bytes: mutated(wireStreams(), 8), cuts: fc.array(fc.nat({ max: 4096 }), { maxLength: 6 }) }),
  expected: codes('EWIRE'),
  show: (c) => `${hex(c.bytes)} cuts=${c.cuts.join(',')}`,
  run({ bytes, cuts }) {
    let rest = bytes;
    if (bytes.length >= 68 && bytes[0] === 19) {
      try { parseHandshake(bytes.subarray(0, 68)); } catch (e) { if (!isShoalError(e, 'EWIRE')) throw e; }
      rest = bytes.subarray(68);
    }
    let error: unknown;
    const parser = new MessageParser(new SinkHandler(), { onError: (e) => { error = e; } });
    const points = [...new Set(cuts.map((c) => c % (rest.length + 1)))].sort((a, b) => a - b);
    let prev = 0;
    for (const p of [...points, rest.length]) { parser.push(rest.subarray(prev, p)); prev = p; }
    check(parser.bufferCapacity <= 2 * 1024 * 1024, `parser holds ${parser.bufferCapacity} bytes`);
    if (error !== undefined) throw error;
  },
};

const resumeCorpus = resumeRecords();
const resumeTarget: FuzzTarget<Buffer> = {
  name: 'resume',
  arbitrary: mutated(resumeCorpus.map((r) => r.buf), 4),
  expected: codes('EBENCODE', 'ESTORAGE'),
  show: hex,
  run(buf) {
    const r = decodeResume(buf);
    // Anything accepted must be exactly a record we could have written: a mutation that survives is a bug.
    check(encodeResume(r).equals(buf), 'a modified resume record was accepted');
    check(resumeCorpus.some((c) => c.buf.equals(buf)), 'accepted a record that is not one of the originals');
  },
};

// UDP: the real UdpTracker's packet handler, fed directly (no socket); replies are captured.
const udpReplies: Buffer[] = [];
let udp: UdpTracker | undefined;
let udpStore: MemoryStore | undefined;
const V4: RemoteInfo = { address: '127.0.0.1', family: 'IPv4', port: 40000, size: 0 };
const V6: RemoteInfo = { address: '2001:db8::1', family: 'IPv6', port: 40001, size: 0 };

function udpCorpus(t: UdpTracker): Buffer[] {
  const connect = Buffer.alloc(16);
  Buffer.from('0000041727101980', 'hex').copy(connect, 0);
  const out = [connect];
  for (const r of [V4, V6]) {
    const id = t.connectionIdFor(r.address, r.port);
    const ann = Buffer.alloc(98);
    id.copy(ann, 0); ann.writeUInt32BE(1, 8); ann.writeUInt32BE(7, 12); sha('ih').copy(ann, 16); sha('pid').copy(ann, 36);
    ann.writeBigUInt64BE(1000n, 64); ann.writeUInt32BE(2, 80); ann.writeInt32BE(-1, 92); ann.writeUInt16BE(6881, 96);
    const scr = Buffer.alloc(16 + 40);
    id.copy(scr, 0); scr.writeUInt32BE(2, 8); scr.writeUInt32BE(9, 12); sha('ih').copy(scr, 16); sha('other').copy(scr, 36);
    out.push(ann, scr);
  }
  return out;
}

function udpContext(store: MemoryStore): TrackerContext {
  return {
    store, metrics: new TrackerMetrics(async () => store.stats()), logger: pino({ level: 'silent' }),
    interval: 300, minInterval: 60, defaultNumwant: 50, maxNumwant: 200, trackerId: 'fuzz',
    isAllowed: () => true, isAllowedKey: () => true, passkeys: undefined,
    trustProxyHeader: false, trustIpParam: false, httpLimiter: undefined, udpLimiter: undefined,
    statsJson: async () => ({}),
  };
}

function makeUdp(): UdpTracker {
  udpStore = new MemoryStore({ peerTtlMs: 60_000, maxSwarms: 1000 });
  const t = new UdpTracker(udpContext(udpStore));
  (t as unknown as { send(b: Buffer): void }).send = (b: Buffer) => { udpReplies.push(b); };
  return t;
}
const udpSeedTracker = makeUdp();
const udpTarget: FuzzTarget<{ packet: Buffer; v6: boolean }> = {
  name: 'tracker-udp',
  // Connection ids are HMACs of (address, port, time bucket): valid for this process's secret only, so the
  // corpus is built from the same tracker instance the cases run against.
  arbitrary: fc.record({ packet: mutated(udpCorpus(udpSeedTracker), 5), v6: fc.boolean() }),
  expected: () => false,
  show: (c) => `${hex(c.packet)} from ${c.v6 ? V6.address : V4.address}`,
  async setup() { udp = udpSeedTracker; },
  async teardown() { await udpStore?.close(); },
  run({ packet, v6 }) {
    udpReplies.length = 0;
    (udp as unknown as { onMessage(m: Buffer, r: RemoteInfo): void }).onMessage(packet, v6 ? V6 : V4);
    for (const r of udpReplies) {
      check(r.length <= 8 + 200 * 18 + 12 * 74 + 20, `reply of ${r.length} bytes`);
      if (r.readUInt32BE(0) === 3) check(!r.subarray(8).toString().includes('internal'), `internal error: ${r.subarray(8).toString()}`);
    }
  },
};

const httpQueryTarget: FuzzTarget<Buffer> = {
  name: 'tracker-http-query',
  arbitrary: mutated([
    Buffer.from(`info_hash=${pct(sha('ih'))}&peer_id=${pct(sha('pid'))}&port=6881&uploaded=0&downloaded=0&left=100&compact=1&event=started&numwant=30`),
    Buffer.from(`info_hash=${pct(sha('a'))}&info_hash=${pct(sha('b'))}`),
    Buffer.from('a=%41%4g&b=+&c=%&&='),
  ], 6),
  expected: () => false,
  show: (b) => JSON.stringify(b.toString('latin1')),
  run(buf) {
    const q = parseQuery(buf.toString('latin1'));
    if (q) for (const [, vs] of q) for (const v of vs) check(Buffer.isBuffer(v), 'value is not bytes');
  },
};

function pct(b: Buffer): string { return [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''); }

/** Printable-ASCII request target: other bytes are percent-encoded so Node's HTTP client accepts the path. */
function asPath(b: Buffer): string {
  let s = '';
  for (const x of b) s += x > 0x20 && x < 0x7f && x !== 0x23 ? String.fromCharCode(x) : `%${x.toString(16).padStart(2, '0')}`;
  return s;
}

let server: TrackerServer | undefined;
let httpPort = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const httpTarget: FuzzTarget<Buffer> = {
  name: 'tracker-http',
  arbitrary: mutated([
    Buffer.from(`/announce?info_hash=${pct(sha('ih'))}&peer_id=${pct(sha('pid'))}&port=6881&left=100&compact=1&event=started`),
    Buffer.from(`/announce?info_hash=${pct(sha('ih'))}&peer_id=${pct(sha('p2'))}&port=6882&left=0&compact=0&numwant=5&ip=::1`),
    Buffer.from(`/scrape?info_hash=${pct(sha('ih'))}&info_hash=${pct(sha('x'))}`),
    Buffer.from('/stats'),
  ], 5),
  expected: () => false,
  show: (b) => JSON.stringify(asPath(b)),
  async setup() {
    server = new TrackerServer({ host: '127.0.0.1', udpPort: null, rateLimit: false, maxSwarms: 1000 });
    httpPort = (await server.listen()).httpPort;
  },
  async teardown() { agent.destroy(); await server?.close(); },
  async run(buf) {
    const path = asPath(buf);
    const { status, body } = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: httpPort, path: path.startsWith('/') ? path : `/${path}`, agent, timeout: HANG_MS }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Violation('no response in time')));
      req.on('error', reject);
    });
    check(status < 500, `status ${status}`);
    check(!body.includes('internal tracker error'), 'internal tracker error');
  },
};

export const TARGETS: FuzzTarget<any>[] = [bencodeTarget, metainfoTarget, magnetTarget, wireTarget, resumeTarget, udpTarget, httpQueryTarget, httpTarget];

/** Wraps a target's run with the time and memory bounds; throws only on a property violation. */
export function caseRunner(t: FuzzTarget<any>): (input: unknown) => Promise<void> {
  const base = process.memoryUsage.rss();
  return async (input) => {
    const t0 = performance.now();
    try {
      await t.run(input);
    } catch (e) {
      if (e instanceof Violation || !t.expected(e)) throw e;
    }
    const ms = performance.now() - t0;
    if (ms > HANG_MS) throw new Violation(`case took ${ms.toFixed(0)} ms (bound ${HANG_MS})`);
    const grew = process.memoryUsage.rss() - base;
    if (grew > MAX_RSS_GROWTH) throw new Violation(`RSS grew ${(grew / 1048576).toFixed(0)} MiB`);
  };
}
