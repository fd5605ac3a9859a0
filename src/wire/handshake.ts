import net from 'node:net';
import { ShoalError } from '../util/errors.js';
import { connectReusingBuffer, isVolatile, readFrom, resumeReading } from './socket-reader.js';
import type { HandshakeInfo } from './types.js';

export const HANDSHAKE_LENGTH = 68;
const PSTR = Buffer.from('\x13BitTorrent protocol', 'latin1');
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** `host:port`, with brackets for IPv6, for error messages. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  const h = host ?? '?';
  return `${h.includes(':') ? `[${h}]` : h}:${port ?? '?'}`;
}

export function encodeHandshake(
  infoHash: Buffer, peerId: Buffer, opts: { fast?: boolean; extended?: boolean; dht?: boolean } = {},
): Buffer {
  if (infoHash.length !== 20) throw new ShoalError('EUSAGE', `info-hash must be 20 bytes, got ${infoHash.length}`);
  if (peerId.length !== 20) throw new ShoalError('EUSAGE', `peer id must be 20 bytes, got ${peerId.length}`);
  const b = Buffer.alloc(HANDSHAKE_LENGTH);
  PSTR.copy(b, 0);
  if (opts.extended) b[25]! |= 0x10;
  if (opts.fast) b[27]! |= 0x04;
  if (opts.dht) b[27]! |= 0x01;
  infoHash.copy(b, 28);
  peerId.copy(b, 48);
  return b;
}

/** Compares the first bytes we have so far with the protocol string, so garbage is refused early. */
function badPrefix(buf: Buffer): string | null {
  const n = Math.min(buf.length, PSTR.length);
  if (n === 0) return null;
  if (buf[0] !== PSTR[0]) return `peer sent a bad handshake: protocol string length ${buf[0]} (expected 19)`;
  if (buf.compare(PSTR, 1, n, 1, n) !== 0) {
    const shown = JSON.stringify(buf.subarray(1, n).toString('latin1'));
    return `peer sent a bad handshake: protocol string ${shown} is not "BitTorrent protocol"`;
  }
  return null;
}

export function parseHandshake(buf: Buffer): HandshakeInfo {
  const bad = badPrefix(buf);
  if (bad !== null) throw new ShoalError('EWIRE', bad);
  if (buf.length < HANDSHAKE_LENGTH) {
    throw new ShoalError('EWIRE', `peer sent a ${buf.length}-byte handshake (expected ${HANDSHAKE_LENGTH})`);
  }
  // Copies, so a small handshake never pins a large socket chunk.
  const reserved = Buffer.from(buf.subarray(20, 28));
  return {
    reserved,
    infoHash: Buffer.from(buf.subarray(28, 48)),
    peerId: Buffer.from(buf.subarray(48, 68)),
    fast: (reserved[7]! & 0x04) !== 0,
    extended: (reserved[5]! & 0x10) !== 0,
    dht: (reserved[7]! & 0x01) !== 0,
  };
}

/**
 * Reads exactly the 68-byte handshake from a fresh socket; resolves with it and any bytes that arrived after it.
 * Rejects (without destroying the socket: the caller decides) on timeout, close, error or a bad protocol string.
 * Removes its listeners when done and leaves the socket paused so no later bytes are lost before the caller
 * attaches its own reader (PeerWire resumes it). Until then the caller must handle the socket's 'error' events.
 */
export function readHandshake(socket: net.Socket, timeoutMs: number): Promise<{ handshake: HandshakeInfo; rest: Buffer }> {
  const where = formatAddress(socket.remoteAddress, socket.remotePort);
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readableEnded) {
      reject(new ShoalError('EWIRE', `peer ${where} closed the connection before the handshake`));
      return;
    }
    const parts: Buffer[] = [];
    let have = 0;
    let prefixOk = false;
    const volatile = isVolatile(socket);
    let detach = (): void => undefined;

    const cleanup = (): void => {
      clearTimeout(timer);
      detach();
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    const fail = (err: Error): void => {
      cleanup();
      socket.pause();
      reject(err);
    };
    const onData = (received: Buffer): void => {
      // A dialed socket's chunk is only valid during this call (socket-reader.ts); the handshake is tiny to copy.
      const chunk = volatile ? Buffer.from(received) : received;
      parts.push(chunk);
      have += chunk.length;
      if (!prefixOk) {
        const head = parts.length === 1 ? chunk : Buffer.concat(parts);
        const bad = badPrefix(head);
        if (bad !== null) return fail(new ShoalError('EWIRE', `${bad} (from ${where})`));
        prefixOk = have >= PSTR.length;
      }
      if (have < HANDSHAKE_LENGTH) return;
      cleanup();
      socket.pause();
      const all = parts.length === 1 ? chunk : Buffer.concat(parts, have);
      let handshake: HandshakeInfo;
      try {
        handshake = parseHandshake(all);
      } catch (err) {
        reject(err);
        return;
      }
      resolve({ handshake, rest: all.subarray(HANDSHAKE_LENGTH) });
    };
    const onEnd = (): void => fail(new ShoalError('EWIRE', `peer ${where} closed the connection during the handshake`));
    const onError = (err: Error): void =>
      fail(new ShoalError('EWIRE', `peer ${where} failed during the handshake: ${err.message}`, { cause: err }));
    const timer = setTimeout(
      () => fail(new ShoalError('ETIMEOUT', `peer ${where} sent no handshake within ${timeoutMs} ms`)), timeoutMs);

    detach = readFrom(socket, { onRead: (buf, length) => onData(length === buf.length ? buf : buf.subarray(0, length)) });
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    resumeReading(socket);
  });
}

/**
 * Opens a TCP connection (IPv4 or IPv6), sends our handshake and reads the peer's. The timeout covers
 * connecting and the handshake. On any failure the socket is destroyed. The returned socket is paused with
 * no listeners: hand it (and `rest`) to a PeerWire.
 */
export async function connectPeer(
  addr: { host: string; port: number },
  opts: { infoHash: Buffer; peerId: Buffer; fast?: boolean; extended?: boolean; dht?: boolean; timeoutMs?: number; localAddress?: string },
): Promise<{ socket: net.Socket; handshake: HandshakeInfo; rest: Buffer }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const where = formatAddress(addr.host, addr.port);
  const ours = encodeHandshake(opts.infoHash, opts.peerId, opts);
  const started = Date.now();
  const connectOpts: net.NetConnectOpts = { host: addr.host, port: addr.port };
  if (opts.localAddress !== undefined) connectOpts.localAddress = opts.localAddress;
  const socket = connectReusingBuffer(connectOpts);
  socket.setNoDelay(true);

  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve();
    };
    const onConnect = (): void => done();
    const onError = (err: Error): void =>
      done(new ShoalError('EWIRE', `could not connect to peer ${where}: ${err.message}`, { cause: err }));
    const timer = setTimeout(
      () => done(new ShoalError('ETIMEOUT', `connecting to peer ${where} timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', onConnect);
    socket.on('error', onError);
  });

  const pending = readHandshake(socket, Math.max(1, timeoutMs - (Date.now() - started)));
  socket.write(ours);
  let result: { handshake: HandshakeInfo; rest: Buffer };
  try {
    result = await pending;
  } catch (err) {
    socket.destroy();
    throw err;
  }
  if (!result.handshake.infoHash.equals(opts.infoHash)) {
    socket.destroy();
    throw new ShoalError('EWIRE',
      `peer ${where} answered with info-hash ${result.handshake.infoHash.toString('hex')} instead of ${opts.infoHash.toString('hex')}`);
  }
  return { socket, handshake: result.handshake, rest: result.rest };
}
