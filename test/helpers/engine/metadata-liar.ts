/**
 * A listening peer that speaks just enough BEP 3/10/9 to serve a magnet fetcher *wrong* metadata: it advertises
 * ut_metadata with a metadata_size (the true one, so it cannot be told apart by size) and answers every request
 * with that many bytes of garbage. Real sockets and Shoal's own wire code, so the fetcher under test is a real Client.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { encodeHandshake, readHandshake } from '../../../src/wire/handshake.js';
import { PeerWire } from '../../../src/wire/peer-wire.js';
import type { WireHandler } from '../../../src/wire/types.js';
import { decodePrefix, encode, isDict } from '../../../src/bencode/index.js';

const OUR_UT_METADATA_ID = 3;
const PIECE = 16 * 1024;

export class MetadataLiar {
  readonly server: net.Server;
  port = 0;
  connections = 0;
  /** Metadata requests answered with garbage. */
  served = 0;
  /** Connections the other side closed (after we served garbage, that is the fetcher dropping us). */
  closedByRemote = 0;
  private readonly wires = new Set<PeerWire>();

  constructor(infoHash: Buffer, metadataSize: number) {
    const garbage = randomBytes(metadataSize);
    const peerId = Buffer.concat([Buffer.from('-LI0001-'), randomBytes(12)]);
    this.server = net.createServer((socket) => {
      this.connections++;
      socket.on('error', () => undefined);
      readHandshake(socket, 5000).then(({ handshake, rest }) => {
        if (!handshake.infoHash.equals(infoHash) || !handshake.extended) return socket.destroy();
        socket.write(encodeHandshake(infoHash, peerId, { extended: true }));
        let remoteId = 0;
        let wire: PeerWire | undefined;
        const ignore = (): void => undefined;
        const handler: WireHandler = {
          onChoke: ignore, onUnchoke: ignore, onInterested: ignore, onNotInterested: ignore, onHave: ignore,
          onBitfield: ignore, onRequest: ignore, onCancel: ignore, onPieceStart: () => null, onPiece: ignore,
          onPort: ignore, onSuggest: ignore, onHaveAll: ignore, onHaveNone: ignore, onReject: ignore, onAllowedFast: ignore,
          onExtendedHandshake: (dict) => {
            const m = dict['m'];
            const id = isDict(m as never) ? (m as Record<string, unknown>)['ut_metadata'] : undefined;
            remoteId = typeof id === 'number' ? id : 0;
          },
          onExtended: (id, payload) => {
            if (id !== OUR_UT_METADATA_ID || remoteId === 0 || !wire) return;
            const { value } = decodePrefix(payload);
            const msg = value as Record<string, unknown>;
            if (msg['msg_type'] !== 0 || typeof msg['piece'] !== 'number') return;
            const piece = msg['piece'];
            const chunk = garbage.subarray(piece * PIECE, Math.min(metadataSize, (piece + 1) * PIECE));
            this.served++;
            wire.extended(remoteId, Buffer.concat([encode({ msg_type: 1, piece, total_size: metadataSize }), chunk]));
          },
          onClose: () => {
            if (wire) this.wires.delete(wire);
            this.closedByRemote++;
          },
        };
        wire = new PeerWire(socket, handler, { fast: false, extended: true, rest });
        this.wires.add(wire);
        wire.extendedHandshake({ m: { ut_metadata: OUR_UT_METADATA_ID }, metadata_size: metadataSize, v: 'metadata-liar' });
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
    for (const w of this.wires) w.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
