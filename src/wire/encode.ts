import { MessageId } from './types.js';

/**
 * Encoders for single peer-wire messages (length prefix included). PeerWire writes these; tests and tools
 * use them to build byte streams without a socket. Messages with no payload are shared constant buffers:
 * sockets only read what they are given, so reusing them is safe and saves an allocation per send.
 */

function constant(id: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(1, 0);
  b[4] = id;
  return b;
}

export const KEEP_ALIVE: Buffer = Buffer.alloc(4);
export const CHOKE: Buffer = constant(MessageId.Choke);
export const UNCHOKE: Buffer = constant(MessageId.Unchoke);
export const INTERESTED: Buffer = constant(MessageId.Interested);
export const NOT_INTERESTED: Buffer = constant(MessageId.NotInterested);
export const HAVE_ALL: Buffer = constant(MessageId.HaveAll);
export const HAVE_NONE: Buffer = constant(MessageId.HaveNone);

/** have / suggest / allowed-fast: `<len=5><id><index>`. */
export function encodeIndexMessage(id: number, index: number): Buffer {
  // allocUnsafe below Buffer.poolSize/2 is carved from Node's shared slab: no per-message malloc.
  const b = Buffer.allocUnsafe(9);
  b.writeUInt32BE(5, 0);
  b[4] = id;
  b.writeUInt32BE(index, 5);
  return b;
}

/** request / cancel / reject: `<len=13><id><index><begin><length>`. */
export function encodeBlockMessage(id: number, index: number, begin: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(17);
  b.writeUInt32BE(13, 0);
  b[4] = id;
  b.writeUInt32BE(index, 5);
  b.writeUInt32BE(begin, 9);
  b.writeUInt32BE(length, 13);
  return b;
}

/** The 13 bytes that precede a piece block: `<len=9+n><7><index><begin>`. */
export function encodePieceHeader(index: number, begin: number, blockLength: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  b.writeUInt32BE(9 + blockLength, 0);
  b[4] = MessageId.Piece;
  b.writeUInt32BE(index, 5);
  b.writeUInt32BE(begin, 9);
  return b;
}

/** A whole piece message in one buffer (copies the block; for tests and tools, PeerWire avoids the copy). */
export function encodePiece(index: number, begin: number, block: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(13 + block.length);
  encodePieceHeader(index, begin, block.length).copy(b, 0);
  b.set(block, 13);
  return b;
}

export function encodeBitfield(bits: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + bits.length);
  b.writeUInt32BE(1 + bits.length, 0);
  b[4] = MessageId.Bitfield;
  b.set(bits, 5);
  return b;
}

export function encodePort(port: number): Buffer {
  const b = Buffer.allocUnsafe(7);
  b.writeUInt32BE(3, 0);
  b[4] = MessageId.Port;
  b.writeUInt16BE(port, 5);
  return b;
}

/** BEP 10: `<len=2+n><20><extended id><payload>`; id 0 is the extended handshake. */
export function encodeExtended(extId: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(6 + payload.length);
  b.writeUInt32BE(2 + payload.length, 0);
  b[4] = MessageId.Extended;
  b[5] = extId;
  b.set(payload, 6);
  return b;
}

/** Any message by id and raw payload (no validation): for tests that need odd or unknown messages. */
export function encodeRaw(id: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(5 + payload.length);
  b.writeUInt32BE(1 + payload.length, 0);
  b[4] = id;
  b.set(payload, 5);
  return b;
}
