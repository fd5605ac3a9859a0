/**
 * The contract between the wire parser and whoever owns a peer (the engine).
 * The parser calls these in message order; payload Buffers passed to handlers are only valid during the call
 * unless stated otherwise (copy what you keep).
 */
export interface WireHandler {
  onKeepAlive?(): void;
  onChoke(): void;
  onUnchoke(): void;
  onInterested(): void;
  onNotInterested(): void;
  onHave(index: number): void;
  /** Raw bitfield payload (a copy the handler may keep). */
  onBitfield(bits: Buffer): void;
  onRequest(index: number, begin: number, length: number): void;
  onCancel(index: number, begin: number, length: number): void;
  /**
   * A `piece` message header arrived. Return the buffer the block's `length` bytes are copied into
   * (exactly `length` bytes long, typically a subarray of the piece buffer), or null to discard them.
   * This is how block data reaches the piece buffer with a single copy from the socket's chunk.
   */
  onPieceStart(index: number, begin: number, length: number): Buffer | null;
  /** All bytes of the block announced by the last onPieceStart have been delivered (or discarded). */
  onPiece(index: number, begin: number, length: number): void;
  onPort(port: number): void;
  // BEP 6 fast extension
  onSuggest(index: number): void;
  onHaveAll(): void;
  onHaveNone(): void;
  onReject(index: number, begin: number, length: number): void;
  onAllowedFast(index: number): void;
  // BEP 10 extension protocol
  onExtendedHandshake(dict: Record<string, unknown>): void;
  onExtended(id: number, payload: Buffer): void;
  /** The socket's write buffer has drained after a send returned false. */
  onDrain?(): void;
  /** Called once when the connection ends, with the reason if it was an error or protocol violation. */
  onClose(err?: Error): void;
}

export interface HandshakeInfo {
  infoHash: Buffer;
  peerId: Buffer;
  reserved: Buffer;
  /** BEP 6: reserved[7] & 0x04 */
  fast: boolean;
  /** BEP 10: reserved[5] & 0x10 */
  extended: boolean;
  /** BEP 5: reserved[7] & 0x01 */
  dht: boolean;
}

export const MessageId = {
  Choke: 0, Unchoke: 1, Interested: 2, NotInterested: 3, Have: 4, Bitfield: 5, Request: 6, Piece: 7, Cancel: 8, Port: 9,
  Suggest: 0x0d, HaveAll: 0x0e, HaveNone: 0x0f, Reject: 0x10, AllowedFast: 0x11, Extended: 20,
} as const;

export const BLOCK_SIZE = 16384;
