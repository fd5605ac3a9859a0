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

interface VolatileState {
  sink: ((chunk: Buffer) => void) | null;
  /** Chunks that arrived with no reader attached (copied; the socket was paused right after). */
  pending: Buffer[];
}

const volatileSockets = new WeakMap<Duplex, VolatileState>();

function sharedBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
}

/** The `onread` callback of a socket reading into the shared buffer: returning false pauses the socket. */
function volatileReader(state: VolatileState): (n: number, buf: Uint8Array) => boolean {
  return (n, buf) => {
    const chunk = (buf as Buffer).subarray(0, n);
    if (state.sink !== null) {
      state.sink(chunk);
      return true;
    }
    state.pending.push(Buffer.from(chunk));
    return false; // pauses the socket until a reader attaches
  };
}

/** `net.connect` whose reads go into the shared buffer; read it with `readFrom`. */
export function connectReusingBuffer(opts: net.NetConnectOpts): net.Socket {
  const state: VolatileState = { sink: null, pending: [] };
  const socket = net.connect({ ...opts, onread: { buffer: sharedBuffer(), callback: volatileReader(state) } } as net.NetConnectOpts);
  volatileSockets.set(socket, state);
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
  const state: VolatileState = { sink: null, pending: [] };
  const buffer = sharedBuffer();
  const slots = socket as unknown as Record<symbol, unknown>;
  slots[onreadSlots.buffer] = buffer;
  slots[onreadSlots.callback] = volatileReader(state);
  handle.useUserBuffer(buffer);
  volatileSockets.set(socket, state);
  return true;
}

/** True when the chunks `readFrom` delivers for this socket are only valid during the call. */
export function isVolatile(socket: Duplex): boolean {
  return volatileSockets.has(socket);
}

/**
 * Delivers the socket's bytes to `onChunk` in order. For a volatile socket `onChunk` must copy whatever it keeps.
 * Neither resumes the socket nor delivers bytes that arrived while nobody was reading: `resumeReading` does both.
 * Returns a function that detaches the reader.
 */
export function readFrom(socket: Duplex, onChunk: (chunk: Buffer) => void): () => void {
  const state = volatileSockets.get(socket);
  if (state === undefined) {
    socket.on('data', onChunk);
    return () => { socket.off('data', onChunk); };
  }
  state.sink = onChunk;
  return () => { if (state.sink === onChunk) state.sink = null; };
}

/** Hands the attached reader what arrived while nobody was reading, then lets the socket flow. */
export function resumeReading(socket: Duplex): void {
  const state = volatileSockets.get(socket);
  if (state !== undefined) {
    // Bounded by the chunks already queued; a reader that detaches midway leaves the rest for the next one.
    while (state.pending.length > 0 && state.sink !== null && !socket.destroyed) state.sink(state.pending.shift()!);
    if (state.sink === null) return;
  }
  socket.resume();
}
