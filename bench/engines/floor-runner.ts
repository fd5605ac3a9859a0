// What the two floor runners (node-floor.ts, bt-floor.ts) share: their arguments and JSON-lines output (the runner
// protocol in bench/README.md), the few Shoal modules they borrow (its socket reader, its torrent parser), loaded at
// run time so the benchmark builds on its own, and the piece message's head, which paced.ts writes too.
import type net from 'node:net';
import { parseArgs } from 'node:util';

export interface PeerAddress { host: string; port: number }
/** Bytes 0..length of the socket reader's shared buffer (src/wire/socket-reader.ts). */
export interface ReadSink { onRead(buf: Buffer, length: number): void }
export interface SocketReader {
  connectReusingBuffer(opts: net.NetConnectOpts): net.Socket;
  reuseBufferOnAccepted(socket: net.Socket): boolean;
  readFrom(socket: net.Socket, sink: ReadSink): () => void;
  resumeReading(socket: net.Socket): void;
}
/** The part of src/metainfo's Metainfo the floors read. */
export interface FloorMeta {
  infoHash: Buffer; name: string; pieceLength: number; pieceCount: number; pieceHashes: Buffer; length: number;
  lastPieceLength: number; multiFile: boolean;
}

export const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
export const fail = (err: unknown): never => {
  emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
};

/** The runner arguments every engine takes; a floor refuses --tracker (it runs only in the swarm's mesh mode). */
export function floorArgs(name: string): { role?: string; torrent?: string; dir?: string; host: string; port: string } {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' }, torrent: { type: 'string' }, dir: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' },
      strategy: { type: 'string' }, tracker: { type: 'string' },
    },
  });
  if (values.tracker) fail(`${name} runs only in the swarm scenario's mesh mode (--discovery mesh)`);
  return values as { role?: string; torrent?: string; dir?: string; host: string; port: string };
}

/** Shoal's socket reader and torrent parser, from the build this file is in. */
export async function shoalParts(torrent: string): Promise<{ reader: SocketReader; meta: FloorMeta }> {
  const src = (path: string): Promise<unknown> => import(new URL(`../../src/${path}`, import.meta.url).href).catch(fail);
  const reader = (await src('wire/socket-reader.js')) as SocketReader;
  const metainfo = (await src('metainfo/index.js')) as { readTorrentFile(file: string): Promise<FloorMeta> };
  const meta = await metainfo.readTorrentFile(torrent).catch(fail);
  return { reader, meta };
}

/** The first 13 bytes of a BitTorrent piece message: length prefix, id 7, index, begin; the block follows. */
export function pieceMessageHead(index: number, begin: number, blockLength: number): Buffer {
  const head = Buffer.allocUnsafe(13);
  head.writeUInt32BE(9 + blockLength, 0);
  head[4] = 7;
  head.writeUInt32BE(index, 5);
  head.writeUInt32BE(begin, 9);
  return head;
}
