/**
 * Hand-driven peers for adversarial tests: the real wire code (handshake, PeerWire) with every decision left to
 * the test, so a peer can lie, flood or send garbage at a real Shoal Client.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { connectPeer, encodeHandshake, readHandshake } from '../../../src/wire/handshake.js';
import { PeerWire } from '../../../src/wire/peer-wire.js';
import type { HandshakeInfo, WireHandler } from '../../../src/wire/types.js';

export function randomPeerId(tag = '-XX0000-'): Buffer {
  return Buffer.concat([Buffer.from(tag), randomBytes(12)]);
}

/** Callbacks a test may set; anything unset is counted and otherwise ignored. */
export interface RawHooks {
  onInterested?(p: RawPeer): void;
  onUnchoke?(p: RawPeer): void;
  onRequest?(p: RawPeer, index: number, begin: number, length: number): void;
  onBitfield?(p: RawPeer, bits: Buffer): void;
  onHave?(p: RawPeer, index: number): void;
}

/** One connection after the handshake, with counters of what the other side sent. */
export class RawPeer {
  wire!: PeerWire;
  readonly socket: net.Socket;
  readonly remote: HandshakeInfo;
  closed = false;
  closeError: Error | undefined;
  unchoked = false;
  requests = 0;
  rejects = 0;
  pieces = 0;
  pieceBytes = 0;
  haves: number[] = [];
  bitfield: Buffer | null = null;
  haveAll = false;
  private readonly closeWaiters: (() => void)[] = [];
  private readonly unchokeWaiters: (() => void)[] = [];

  constructor(socket: net.Socket, remote: HandshakeInfo, rest: Buffer, fast: boolean, hooks: RawHooks = {}) {
    this.socket = socket;
    this.remote = remote;
    const self = this;
    const handler: WireHandler = {
      onChoke() { self.unchoked = false; },
      onUnchoke() {
        self.unchoked = true;
        for (const w of self.unchokeWaiters.splice(0)) w();
        hooks.onUnchoke?.(self);
      },
      onInterested() { hooks.onInterested?.(self); },
      onNotInterested() { /* ignored */ },
      onHave(index) { self.haves.push(index); hooks.onHave?.(self, index); },
      onBitfield(bits) { self.bitfield = bits; hooks.onBitfield?.(self, bits); },
      onRequest(index, begin, length) { self.requests++; hooks.onRequest?.(self, index, begin, length); },
      onCancel() { /* ignored */ },
      onPieceStart() { return null; },
      onPiece(_i, _b, length) { self.pieces++; self.pieceBytes += length; },
      onPort() { /* ignored */ },
      onSuggest() { /* ignored */ },
      onHaveAll() { self.haveAll = true; },
      onHaveNone() { /* ignored */ },
      onReject() { self.rejects++; },
      onAllowedFast() { /* ignored */ },
      onExtendedHandshake() { /* ignored */ },
      onExtended() { /* ignored */ },
      onClose(err) {
        self.closed = true;
        self.closeError = err;
        for (const w of self.closeWaiters.splice(0)) w();
        for (const w of self.unchokeWaiters.splice(0)) w();
      },
    };
    // Hostile peers must be able to send what a polite one would not, so nothing is negotiated away here:
    // `fast` only controls whether the parser accepts BEP 6 messages from the other side.
    this.wire = new PeerWire(socket, handler, { fast, extended: remote.extended, rest });
  }

  /** Raw bytes straight onto the socket, bypassing PeerWire's encoders. */
  sendRaw(buf: Buffer): void {
    if (!this.closed) this.socket.write(buf);
  }

  /** Resolves when the connection ends; rejects if it is still open after `timeoutMs`. */
  waitClose(timeoutMs: number): Promise<Error | undefined> {
    if (this.closed) return Promise.resolve(this.closeError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(timer); resolve(this.closeError); });
    });
  }

  /** Resolves once the other side unchokes us; rejects on close or after `timeoutMs`. */
  waitUnchoke(timeoutMs: number): Promise<void> {
    if (this.unchoked) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not unchoked within ${timeoutMs} ms`)), timeoutMs);
      this.unchokeWaiters.push(() => {
        clearTimeout(timer);
        if (this.unchoked) resolve();
        else reject(new Error(`connection closed before unchoke: ${this.closeError?.message ?? 'no error'}`));
      });
    });
  }

  destroy(): void {
    this.wire.destroy();
  }
}

/** Dial a Shoal client as a raw peer. */
export async function dialRaw(
  port: number, infoHash: Buffer, opts: { host?: string; fast?: boolean; hooks?: RawHooks; peerId?: Buffer } = {},
): Promise<RawPeer> {
  const fast = opts.fast ?? true;
  const { socket, handshake, rest } = await connectPeer(
    { host: opts.host ?? '127.0.0.1', port },
    { infoHash, peerId: opts.peerId ?? randomPeerId(), fast, extended: false, timeoutMs: 5000 },
  );
  return new RawPeer(socket, handshake, rest, fast, opts.hooks);
}

/**
 * A listening raw peer for Shoal to dial: answers handshakes for `infoHash` and hands each connection to
 * `onPeer`. Counts connections so tests can tell whether a banned peer is dialled again.
 */
export class RawServer {
  readonly server: net.Server;
  readonly peers: RawPeer[] = [];
  connections = 0;
  port = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(infoHash: Buffer, onPeer: (p: RawPeer) => void, opts: { fast?: boolean; hooks?: RawHooks } = {}) {
    const fast = opts.fast ?? false;
    const peerId = randomPeerId();
    this.server = net.createServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      readHandshake(socket, 5000).then(({ handshake, rest }) => {
        if (!handshake.infoHash.equals(infoHash)) return socket.destroy();
        socket.write(encodeHandshake(infoHash, peerId, { fast }));
        const p = new RawPeer(socket, handshake, rest, fast && handshake.fast, opts.hooks);
        this.peers.push(p);
        onPeer(p);
      }, () => socket.destroy());
    });
  }

  async listen(host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, host, () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.destroy();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A bitfield payload with every one of `pieceCount` pieces set (spare bits clear). */
export function fullBitfield(pieceCount: number): Buffer {
  const b = Buffer.alloc((pieceCount + 7) >> 3, 0xff);
  const spare = b.length * 8 - pieceCount;
  if (spare > 0) b[b.length - 1] = (0xff << spare) & 0xff;
  return b;
}
