// The BitTorrent floor: a runner (JSON-lines protocol, see bench/README.md) that is the leanest BitTorrent
// downloader and seed we could write in Node, to answer "what does the protocol itself cost in Node?". The Node floor
// (node-floor.ts) moves the bytes with no protocol at all; this one speaks BitTorrent's wire (handshake, bitfield,
// have, request, piece), picks rarest-first piece by piece, verifies every piece against the torrent's SHA-1 and
// serves what it has, and leaves out everything a real engine needs that is not per block: choking (everyone is
// unchoked), rate estimates (a fixed pipeline), timeouts, retries, resume, extensions, peer sources other than the
// harness, limits. What Shoal costs above it is Shoal's own; what it costs above the Node floor is the protocol's.
//
// Shape: the swarm scenario's mesh mode (downloader i dials the seed and downloaders 0..i-1). Single-file torrents.
// Hot path per block: the socket reader's shared buffer → one parser loop per read (no object per message) → the
// block copied into its piece buffer → one batch of requests written per read. Piece buffers are recycled (each
// written-to socket or file write holds a count), since fresh pages cost dearly on these VMs (bench/PROFILE.md).
import { createHash, randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { emit, fail, floorArgs, pieceMessageHead, shoalParts, type PeerAddress, type ReadSink } from './floor-runner.js';

const a = floorArgs('bt-floor');
const { reader, meta } = await shoalParts(a.torrent!);
if (meta.multiFile) fail('bt-floor handles single-file torrents only');
const seed = a.role === 'seed';

const BLOCK = 16 * 1024;
/** Requests kept outstanding per connection (512 KiB): enough for a shaped link's bandwidth-delay product here. */
const PIPELINE = 32;
/** Requests are topped up once a read leaves this many or fewer outstanding, so they go out in batches. */
const REFILL_AT = PIPELINE - 8;
/** Verified pieces kept in memory to serve from (as Shoal's piece cache, 16 MiB at 1 MiB pieces). */
const CACHE_PIECES = 16;
/** The largest non-piece message accepted: a bitfield. */
const MAX_HEAD = 5 + Math.ceil(meta.pieceCount / 8) + 8;
const HANDSHAKE = 68;

const pieceCount = meta.pieceCount;
const pieceLength = (i: number): number => (i === pieceCount - 1 ? meta.lastPieceLength : meta.pieceLength);
const have = new Uint8Array(pieceCount);
const availability = new Uint16Array(pieceCount);
let haveCount = 0;
let uploaded = 0;
let downloaded = 0;
let doneSent = false;
let pendingFileWrites = 0;

/** A piece buffer that sockets and the file may still be reading: recycled only when nothing holds it. */
class PieceMemory {
  holds = 0;
  evicted = false;
  readonly release = (): void => { if (--this.holds === 0 && this.evicted) spare.push(this.buf); };
  constructor(readonly buf: Buffer) {}
}
const spare: Buffer[] = [];
const takeBuffer = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(meta.pieceLength);

/** Verified pieces in memory, oldest first (FIFO). */
const cache = new Map<number, PieceMemory>();
function cachePiece(index: number, mem: PieceMemory): void {
  cache.set(index, mem);
  if (cache.size <= CACHE_PIECES) return;
  const [oldIndex, old] = cache.entries().next().value as [number, PieceMemory];
  cache.delete(oldIndex);
  old.evicted = true;
  if (old.holds === 0) spare.push(old.buf);
}

/** A piece being downloaded: its buffer and which of its blocks arrived. */
class Partial {
  readonly blocks: number;
  readonly received: Uint8Array;
  receivedCount = 0;
  /** Next block never requested; blocks are requested in order, from one peer, until the endgame. */
  nextFree = 0;
  /** Endgame: next block to ask a second peer for. */
  nextDuplicate = 0;
  constructor(readonly index: number, readonly buf: Buffer) {
    this.blocks = Math.ceil(pieceLength(index) / BLOCK);
    this.received = new Uint8Array(this.blocks);
  }
}
const partials: (Partial | undefined)[] = new Array<Partial | undefined>(pieceCount).fill(undefined);
const active: Partial[] = [];

let file: FileHandle;
const peers = new Set<Peer>();
const handshake = Buffer.concat([Buffer.from('\x13BitTorrent protocol'), Buffer.alloc(8), meta.infoHash, randomBytes(20)]);
const UNCHOKE_INTERESTED = Buffer.from([0, 0, 0, 1, 1, 0, 0, 0, 1, 2]);

class Peer implements ReadSink {
  readonly peerHas = new Uint8Array(pieceCount);
  readonly waitingHaves: number[] = [];
  private handshakeLeft = HANDSHAKE;
  /** Bytes of the current message's head gathered so far (only when a head is split across reads). */
  private readonly head = Buffer.allocUnsafe(MAX_HEAD);
  private headLength = 0;
  /** A piece message's payload still to come, and where it goes (null: a block nobody needs any more). */
  private blockLeft = 0;
  private blockTarget: Partial | null = null;
  private blockAt = 0;
  private outstanding = 0;
  private current: Partial | null = null;

  constructor(readonly socket: net.Socket) {}

  start(): void {
    this.socket.cork();
    this.socket.write(handshake);
    if (haveCount > 0) {
      const bits = Buffer.alloc(5 + Math.ceil(pieceCount / 8));
      bits.writeUInt32BE(bits.length - 4, 0);
      bits[4] = 5;
      for (let i = 0; i < pieceCount; i++) if (have[i] === 1) bits[5 + (i >> 3)]! |= 0x80 >> (i & 7);
      this.socket.write(bits);
    }
    this.socket.write(UNCHOKE_INTERESTED);
    this.socket.uncork();
  }

  onRead(buf: Buffer, length: number): void {
    let at = 0;
    if (this.handshakeLeft > 0) {
      at = Math.min(this.handshakeLeft, length);
      this.handshakeLeft -= at;
    }
    this.socket.cork();
    while (at < length) {
      if (this.blockLeft > 0) {
        const n = Math.min(this.blockLeft, length - at);
        const target = this.blockTarget;
        // A duplicate (endgame) may still be arriving after its piece completed: never write into a finished piece.
        if (target !== null && partials[target.index] === target) buf.copy(target.buf, this.blockAt, at, at + n);
        this.blockAt += n;
        this.blockLeft -= n;
        at += n;
        if (this.blockLeft === 0) this.blockDone();
        continue;
      }
      const avail = length - at;
      if (this.headLength === 0 && avail >= 5) {
        const len = buf.readUInt32BE(at);
        if (len === 0) { at += 4; continue; }
        const need = buf[at + 4] === 7 ? 13 : 4 + len;
        if (need > MAX_HEAD) fail(`message of ${len} bytes`);
        if (avail >= need) {
          this.message(buf, at, len);
          at += need;
          continue;
        }
      }
      // A head split across reads: gather it in `head`.
      let need = 5;
      if (this.headLength >= 4 && this.head.readUInt32BE(0) === 0) { this.headLength = 0; continue; }
      if (this.headLength >= 5) need = this.head[4] === 7 ? 13 : 4 + this.head.readUInt32BE(0);
      if (need > MAX_HEAD) fail(`message of ${this.head.readUInt32BE(0)} bytes`);
      const n = Math.min(need - this.headLength, length - at);
      buf.copy(this.head, this.headLength, at, at + n);
      this.headLength += n;
      at += n;
      if (this.headLength === need && need > 5) {
        this.headLength = 0;
        this.message(this.head, 0, this.head.readUInt32BE(0));
      } else if (this.headLength === 4 && this.head.readUInt32BE(0) === 0) {
        this.headLength = 0;
      }
    }
    if (this.outstanding <= REFILL_AT) this.request();
    if (this.waitingHaves.length > 0) this.flushHaves();
    this.socket.uncork();
  }

  flushHaves(): void {
    const waiting = this.waitingHaves;
    if (waiting.length === 0 || this.socket.destroyed) return;
    const out = Buffer.allocUnsafe(9 * waiting.length);
    for (let i = 0; i < waiting.length; i++) {
      out.writeUInt32BE(5, 9 * i);
      out[9 * i + 4] = 4;
      out.writeUInt32BE(waiting[i]!, 9 * i + 5);
    }
    waiting.length = 0;
    this.socket.write(out);
  }

  /** A whole message (or a piece message's 13-byte head) at src[at..]. */
  private message(src: Buffer, at: number, len: number): void {
    const id = src[at + 4];
    if (id === 7) {
      const index = src.readUInt32BE(at + 5);
      const begin = src.readUInt32BE(at + 9);
      const p = index < pieceCount ? partials[index] : undefined;
      const block = begin / BLOCK;
      this.blockTarget = p !== undefined && p.received[block] === 0 ? p : null;
      this.blockAt = begin;
      this.blockLeft = len - 9;
      this.outstanding--;
      if (this.blockLeft === 0) this.blockDone();
    } else if (id === 6) {
      this.serve(src.readUInt32BE(at + 5), src.readUInt32BE(at + 9), src.readUInt32BE(at + 13));
    } else if (id === 4) {
      this.gained(src.readUInt32BE(at + 5));
    } else if (id === 5) {
      for (let i = 0; i < pieceCount; i++) if ((src[at + 5 + (i >> 3)]! & (0x80 >> (i & 7))) !== 0) this.gained(i);
    }
    // choke, unchoke, interested, not interested, cancel, extended: nothing to do (everyone is unchoked).
  }

  private gained(index: number): void {
    if (index >= pieceCount || this.peerHas[index] === 1) return;
    this.peerHas[index] = 1;
    availability[index]++;
  }

  private blockDone(): void {
    const p = this.blockTarget;
    if (p === null || partials[p.index] !== p) return;
    this.blockTarget = null;
    const block = (this.blockAt - 1) / BLOCK | 0;
    if (p.received[block] === 1) return;
    p.received[block] = 1;
    downloaded += this.blockAt - block * BLOCK;
    if (++p.receivedCount === p.blocks) completePiece(p);
  }

  /** Tops the pipeline up to PIPELINE requests, in one write. */
  private request(): void {
    if (haveCount === pieceCount) return;
    const want = PIPELINE - this.outstanding;
    const out = Buffer.allocUnsafe(17 * want);
    let n = 0;
    while (n < want) {
      const p = this.nextPiece();
      if (p === null) break;
      let block: number;
      if (p.nextFree < p.blocks) block = p.nextFree++;
      else {
        while (p.nextDuplicate < p.blocks && p.received[p.nextDuplicate] === 1) p.nextDuplicate++;
        if (p.nextDuplicate >= p.blocks) { this.current = null; continue; }
        block = p.nextDuplicate++;
      }
      const o = 17 * n++;
      out.writeUInt32BE(13, o);
      out[o + 4] = 6;
      out.writeUInt32BE(p.index, o + 5);
      out.writeUInt32BE(block * BLOCK, o + 9);
      out.writeUInt32BE(Math.min(BLOCK, pieceLength(p.index) - block * BLOCK), o + 13);
    }
    if (n === 0) return;
    this.outstanding += n;
    this.socket.write(n === want ? out : out.subarray(0, 17 * n));
  }

  /** The piece to request from next: this peer's current one, else the rarest it has, else (endgame) any it has. */
  private nextPiece(): Partial | null {
    const c = this.current;
    if (c !== null && c.nextFree < c.blocks && partials[c.index] === c) return c;
    let best = -1;
    let bestAvailability = 0x7fffffff;
    const start = (Math.random() * pieceCount) | 0;
    for (let k = 0; k < pieceCount; k++) {
      const i = start + k < pieceCount ? start + k : start + k - pieceCount;
      if (this.peerHas[i] === 0 || have[i] === 1 || partials[i] !== undefined) continue;
      const av = availability[i]!;
      if (av < bestAvailability) { best = i; bestAvailability = av; }
    }
    if (best >= 0) {
      const p = new Partial(best, takeBuffer());
      partials[best] = p;
      active.push(p);
      this.current = p;
      return p;
    }
    // Endgame: blocks of pieces in progress that have not arrived, asked of a second peer.
    for (const p of active) {
      if (this.peerHas[p.index] === 1 && p !== c && p.nextDuplicate < p.blocks && p.nextFree === p.blocks) {
        this.current = p;
        return p;
      }
    }
    this.current = null;
    return null;
  }

  private serve(index: number, begin: number, length: number): void {
    if (index >= pieceCount || have[index] === 0 || length > BLOCK || begin + length > pieceLength(index)) return;
    const mem = cache.get(index);
    if (mem !== undefined) this.send(mem, index, begin, length);
    else readPiece(index).then((m) => {
      if (this.socket.destroyed) return;
      this.socket.cork();
      this.send(m, index, begin, length);
      this.socket.uncork();
    }, fail);
  }

  private send(mem: PieceMemory, index: number, begin: number, length: number): void {
    this.socket.write(pieceMessageHead(index, begin, length));
    mem.holds++;
    this.socket.write(mem.buf.subarray(begin, begin + length), mem.release);
    uploaded += length;
  }
}

/** Reads a piece into the cache (the seed's, and a downloader's for pieces that left its cache); one read per piece. */
const reading = new Map<number, Promise<PieceMemory>>();
function readPiece(index: number): Promise<PieceMemory> {
  let r = reading.get(index);
  if (r === undefined) {
    const mem = new PieceMemory(takeBuffer());
    r = file.read(mem.buf, 0, pieceLength(index), index * meta.pieceLength).then(() => {
      reading.delete(index);
      const cached = cache.get(index);
      if (cached !== undefined) { spare.push(mem.buf); return cached; }
      cachePiece(index, mem);
      return mem;
    });
    reading.set(index, r);
  }
  return r;
}

function completePiece(p: Partial): void {
  const index = p.index;
  partials[index] = undefined;
  active.splice(active.indexOf(p), 1);
  const length = pieceLength(index);
  const digest = createHash('sha1').update(p.buf.subarray(0, length)).digest();
  if (!digest.equals(meta.pieceHashes.subarray(index * 20, index * 20 + 20))) {
    spare.push(p.buf); // picked again from scratch
    return;
  }
  have[index] = 1;
  haveCount++;
  const mem = new PieceMemory(p.buf);
  mem.holds++;
  pendingFileWrites++;
  file.write(p.buf, 0, length, index * meta.pieceLength).then(() => {
    mem.release();
    pendingFileWrites--;
    maybeDone();
  }, fail);
  cachePiece(index, mem);
  for (const peer of peers) if (peer.peerHas[index] === 0) peer.waitingHaves.push(index);
  if (haveCount === pieceCount) for (const peer of peers) peer.flushHaves();
}

/**
 * HAVEs wait for company, as Shoal's do (bench/PROFILE.md, fifth session): each peer's go out with the next batch
 * of requests or blocks written to it, or all together within HAVE_DELAY_MS; a 9-byte write per peer per piece
 * would be a syscall each.
 */
const HAVE_DELAY_MS = 250;
setInterval(() => { for (const peer of peers) peer.flushHaves(); }, HAVE_DELAY_MS).unref();

function maybeDone(): void {
  if (!doneSent && haveCount === pieceCount && pendingFileWrites === 0) {
    doneSent = true;
    emit({ event: 'done', downloaded });
  }
}

function attach(socket: net.Socket): void {
  socket.setNoDelay(true);
  const peer = new Peer(socket);
  socket.on('error', () => socket.destroy());
  socket.on('close', () => peers.delete(peer));
  peers.add(peer);
  reader.readFrom(socket, peer);
  peer.start();
  reader.resumeReading(socket);
}

if (seed) {
  file = await open(join(a.dir!, meta.name), 'r').catch(fail);
  have.fill(1);
  haveCount = pieceCount;
  doneSent = true;
} else {
  file = await open(join(a.dir!, meta.name), 'w+').catch(fail);
}

const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  reader.reuseBufferOnAccepted(socket);
  attach(socket);
});
server.listen(Number(a.port), a.host, () => {
  const addr = server.address() as net.AddressInfo;
  emit({ event: 'ready', port: addr.port });
});

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { cmd?: string; peers?: PeerAddress[] };
  try { cmd = JSON.parse(line) as typeof cmd; } catch { return; }
  if (cmd.cmd === 'peers' && !seed) {
    for (const p of cmd.peers ?? []) {
      const socket = reader.connectReusingBuffer({ host: p.host, port: p.port, localAddress: a.host! });
      const refused = (err: Error): void => fail(`cannot connect to ${p.host}:${p.port}: ${err.message}`);
      socket.once('error', refused);
      socket.on('connect', () => { socket.off('error', refused); attach(socket); });
    }
  } else if (cmd.cmd === 'stats') {
    emit({ event: 'stats', uploaded, downloaded, peers: peers.size, progress: haveCount / pieceCount });
  } else if (cmd.cmd === 'quit') {
    process.exit(0);
  }
}).on('close', () => process.exit(0));
