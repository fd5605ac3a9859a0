import net from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Reading peer sockets without a fresh buffer per read.
 *
 * Node reads a socket into a new 64 KiB ArrayBuffer for every 'data' event. At hundreds of MB/s that is thousands
 * of external allocations a second, and V8 answers external-memory pressure with garbage collections: in a 512 MiB
 * pair transfer the downloader ran 47 scavenges and 11 mark-compacts for it (about a fifth of its main-thread CPU).
 * Sockets we dial can instead read into one buffer that is reused (`net.connect`'s `onread`); the bytes then
 * live only until the reader returns, so readers copy what they keep ("volatile" chunks). Node offers `onread` only
 * to sockets it creates for `net.connect`; `reuseBufferOnAccepted` gives accepted sockets the same read path (see
 * there), and any socket it cannot switch keeps 'data' events. `readFrom` hides the difference.
 *
 * One buffer serves every dialed socket of the process: JavaScript runs one read callback at a time, and each
 * callback consumes its chunk before returning.
 */
const READ_BUFFER_BYTES = 256 * 1024;
let shared: Buffer | null = null;

/**
 * Where a socket's bytes go: `onRead(buf, length)` gets bytes 0..length of `buf`, so no view is made per read. An
 * object with a method rather than a callback: every connection's reads then run one function, with one set of type
 * feedback, instead of a closure per connection (closures made before their maker has feedback of its own get
 * feedback of their own, and are optimized separately).
 */
export interface ReadSink {
  onRead(buf: Buffer, length: number): void;
}

interface VolatileState {
  sink: ReadSink | null;
  /** Chunks that arrived with no reader attached (copied; the socket was paused right after). */
  pending: Buffer[];
}

const volatileSockets = new WeakMap<Duplex, VolatileState>();

function sharedBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
}

/**
 * The `onread` callback of every socket reading into the shared buffer (Node calls it with the socket as `this`):
 * one function for all of them (see ReadSink). Returning false pauses the socket.
 */
function onVolatileRead(this: Duplex, n: number, buf: Uint8Array): boolean {
  const state = volatileSockets.get(this);
  if (state === undefined) return false;
  const sink = state.sink;
  if (sink !== null) {
    sink.onRead(buf as Buffer, n);
    return true;
  }
  state.pending.push(Buffer.from(buf.subarray(0, n)));
  return false; // pauses the socket until a reader attaches
}

/** `net.connect` whose reads go into the shared buffer; read it with `readFrom`. */
export function connectReusingBuffer(opts: net.NetConnectOpts): net.Socket {
  const socket = net.connect({ ...opts, onread: { buffer: sharedBuffer(), callback: onVolatileRead } } as net.NetConnectOpts);
  volatileSockets.set(socket, { sink: null, pending: [] });
  return socket;
}

/**
 * Where `net.Socket` keeps what its `onread` option set up: the buffer and the callback. Node's own read path
 * (`onStreamRead`) calls the callback instead of pushing a fresh buffer through the stream whenever these are set
 * and the handle reads into the user buffer. They are private symbols; found by description on a probe socket, and
 * null when this Node lays sockets out differently (then accepted sockets simply keep 'data' events).
 */
let onreadSlots: { buffer: symbol; callback: symbol } | null | undefined;

function findOnreadSlots(): { buffer: symbol; callback: symbol } | null {
  const probe = new net.Socket();
  const symbols = Object.getOwnPropertySymbols(probe);
  const buffer = symbols.find((s) => s.description === 'kBuffer');
  const callback = symbols.find((s) => s.description === 'kBufferCb');
  probe.destroy();
  return buffer && callback ? { buffer, callback } : null;
}

/**
 * Switch a socket a server just accepted (with `pauseOnConnect`, so nothing has been read yet) to the shared read
 * buffer, exactly what `onread` does for a dialled socket. In a swarm about half the connections are accepted ones,
 * and without this each of their reads allocates a 64 KiB buffer (then shrunk by a copy) and travels through the
 * stream machinery: external allocations that drive scavenges (in the 16-host swarm benchmark, a fifth of a
 * downloader's CPU and 20 MiB of its peak memory; see bench/PROFILE.md). Returns false, changing nothing, when the
 * socket is not in that state or this Node's internals differ.
 */
export function reuseBufferOnAccepted(socket: net.Socket): boolean {
  onreadSlots ??= findOnreadSlots();
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buf: Uint8Array) => void } | null })._handle;
  if (onreadSlots === null || typeof handle?.useUserBuffer !== 'function') return false;
  if (socket.readableFlowing === true || socket.readableLength > 0 || volatileSockets.has(socket)) return false;
  const buffer = sharedBuffer();
  const slots = socket as unknown as Record<symbol, unknown>;
  slots[onreadSlots.buffer] = buffer;
  slots[onreadSlots.callback] = onVolatileRead;
  handle.useUserBuffer(buffer);
  volatileSockets.set(socket, { sink: null, pending: [] });
  return true;
}

/** True when the chunks `readFrom` delivers for this socket are only valid during the call. */
export function isVolatile(socket: Duplex): boolean {
  return volatileSockets.has(socket);
}

/**
 * Delivers the socket's bytes to `sink` in order. For a volatile socket the sink must copy whatever it keeps.
 * Neither resumes the socket nor delivers bytes that arrived while nobody was reading: `resumeReading` does both.
 * Returns a function that detaches the reader.
 */
export function readFrom(socket: Duplex, sink: ReadSink): () => void {
  const state = volatileSockets.get(socket);
  if (state === undefined) {
    const onChunk = (chunk: Buffer): void => sink.onRead(chunk, chunk.length);
    socket.on('data', onChunk);
    return () => { socket.off('data', onChunk); };
  }
  state.sink = sink;
  return () => { if (state.sink === sink) state.sink = null; };
}

/** Hands the attached reader what arrived while nobody was reading, then lets the socket flow. */
export function resumeReading(socket: Duplex): void {
  const state = volatileSockets.get(socket);
  if (state !== undefined) {
    // Bounded by the chunks already queued; a reader that detaches midway leaves the rest for the next one.
    while (state.pending.length > 0 && state.sink !== null && !socket.destroyed) {
      const chunk = state.pending.shift()!;
      state.sink.onRead(chunk, chunk.length);
    }
    if (state.sink === null) return;
  }
  socket.resume();
}
