// The Node floor: a runner (JSON-lines protocol, see bench/README.md) that moves a swarm's bytes the way a
// BitTorrent engine in Node must, and does nothing else. It answers "how much of an engine's CPU is Node itself?":
// the sockets, the event loop, the block copy, SHA-1 and the file writes, with no protocol, no picking, no choking.
//
// Shape (the swarm scenario's mesh mode, which introduces downloader i to the seed and to downloaders 0..i-1):
// - the seed sends on every connection it accepts, as fast as each socket drains;
// - a downloader reads from every connection, sends on every connection except the one to the seed, and counts
//   what it received: each byte is copied into a 1 MiB "piece" buffer, each full piece is hashed (SHA-1, inline,
//   as Shoal does below 16 MiB/s) and written to a file at its offset; 'done' when it has received the torrent's
//   length. It keeps sending (and discarding what it reads) until told to quit, as a BitTorrent downloader seeds on.
// Reads go through Shoal's own socket reader (one shared buffer, no allocation per read); sends are 16 KiB slices of
// one buffer, one write per slice, like piece messages. Not a BitTorrent engine: it only runs in the swarm scenario's
// mesh mode and its bytes are not BitTorrent's (no framing, random payload).
import { createHash, randomFillSync } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { emit, fail, floorArgs, shoalParts, type PeerAddress } from './floor-runner.js';

const a = floorArgs('node-floor');
const { reader, meta } = await shoalParts(a.torrent!);
const seed = a.role === 'seed';

const SLICE = 16 * 1024;
const payload = randomFillSync(Buffer.allocUnsafeSlow(meta.pieceLength));
let uploaded = 0;
let received = 0;
let done = false;

/** Keeps `socket` full: one 16 KiB write after another until the socket asks to wait, then again on 'drain'. */
function sendForever(socket: net.Socket): void {
  let offset = 0;
  const pump = (): void => {
    while (!socket.destroyed) {
      const slice = payload.subarray(offset, offset + SLICE);
      offset = (offset + SLICE) % payload.length;
      uploaded += slice.length;
      if (!socket.write(slice)) return;
    }
  };
  socket.on('drain', pump);
  pump();
}

// The downloader's side: copy into the current piece, hash and write it once full.
let file: FileHandle | undefined;
let piece: Buffer = Buffer.allocUnsafeSlow(meta.pieceLength);
let filled = 0;
let pieceIndex = 0;
const spare: Buffer[] = [];
let writing = 0;
/** Pieces waiting for their write before reading stops (as Shoal bounds its pending pieces), so memory stays bounded. */
const MAX_WRITING = 8;
const readers = new Set<net.Socket>();
/** The socket reader's sink for every connection: bytes 0..length of the shared read buffer. */
const sink = { onRead: onChunk };
let readingPaused = false;

function onChunk(chunk: Buffer, length: number): void {
  if (done) return;
  let at = 0;
  while (at < length && !done) {
    const want = Math.min(piece.length - filled, meta.length - received);
    const n = Math.min(want, length - at);
    chunk.copy(piece, filled, at, at + n);
    filled += n;
    at += n;
    received += n;
    if (filled === piece.length || received === meta.length) completePiece();
  }
}

function completePiece(): void {
  const full = piece;
  const length = filled;
  const index = pieceIndex++;
  createHash('sha1').update(full.subarray(0, length)).digest();
  piece = spare.pop() ?? Buffer.allocUnsafeSlow(meta.pieceLength);
  filled = 0;
  writing++;
  if (writing >= MAX_WRITING && !readingPaused) {
    readingPaused = true;
    for (const s of readers) s.pause();
  }
  file!.write(full, 0, length, index * meta.pieceLength).then(() => {
    spare.push(full);
    writing--;
    if (readingPaused && writing < MAX_WRITING / 2) {
      readingPaused = false;
      for (const s of readers) s.resume();
    }
    maybeDone();
  }, fail);
  if (received === meta.length) done = true;
}

function maybeDone(): void {
  if (done && writing === 0) emit({ event: 'done', downloaded: received });
}

function attach(socket: net.Socket, send: boolean): void {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  reader.readFrom(socket, sink);
  readers.add(socket);
  socket.on('close', () => readers.delete(socket));
  if (!readingPaused) reader.resumeReading(socket);
  if (send) sendForever(socket);
}

const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  reader.reuseBufferOnAccepted(socket);
  attach(socket, true);
});
server.listen(Number(a.port), a.host, () => {
  const addr = server.address() as net.AddressInfo;
  emit({ event: 'ready', port: addr.port });
});
if (!seed) file = await open(join(a.dir!, 'data.bin'), 'w').catch(fail);

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { cmd?: string; peers?: PeerAddress[] };
  try { cmd = JSON.parse(line) as typeof cmd; } catch { return; }
  if (cmd.cmd === 'peers' && !seed) {
    // The first address is the seed's: read from it, never send to it.
    (cmd.peers ?? []).forEach((p, i) => {
      const socket = reader.connectReusingBuffer({ host: p.host, port: p.port, localAddress: a.host! });
      // A peer it cannot reach would leave this downloader short of its bytes: say so rather than time out.
      const refused = (err: Error): void => fail(`cannot connect to ${p.host}:${p.port}: ${err.message}`);
      socket.once('error', refused);
      socket.on('connect', () => { socket.off('error', refused); attach(socket, i > 0); });
    });
  } else if (cmd.cmd === 'stats') {
    emit({ event: 'stats', uploaded, downloaded: received, peers: 0, progress: received / meta.length });
  } else if (cmd.cmd === 'quit') {
    process.exit(0);
  }
}).on('close', () => process.exit(0));
