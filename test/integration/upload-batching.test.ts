/**
 * How a seed's answers leave: the blocks for the requests that arrived in one read go out in one write. In a shaped
 * swarm a peer's requests trickle in a few per read, and a seed that stopped at the socket's 16 KiB high-water mark
 * sent the first block at the end of the read and the others one 'drain' later: two writes (and two trips through
 * the TCP stack) for every read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, startSeed, until, withScope } from '../helpers/engine/harness.js';
import { dialRaw } from '../helpers/engine/raw-peer.js';

type WriteFn = (...args: unknown[]) => unknown;

test('a seed answers the requests of one read with one write', { timeout: 30_000 }, async () => {
  await withScope('upload-batching', async (s) => {
    const data = randomBytes(4 * 256 * KiB);
    const { meta } = makeMetainfo([{ path: ['u.bin'], data }], 256 * KiB, 'u.bin');
    const seed = await startSeed(s, meta, data);
    const p = await dialRaw(seed.client.port, meta.infoHash);
    s.defer(() => p.destroy());

    // Count the writes of the seed's end of this connection: one per _write or _writev call, each one trip to the
    // kernel. The seed runs in this process, so its accepted socket is the one whose peer is our local port.
    let writes = 0;
    const proto = net.Socket.prototype as unknown as { _write: WriteFn; _writev: WriteFn };
    const write1 = proto._write;
    const writev = proto._writev;
    const ours = (sock: net.Socket): boolean => sock.remotePort === p.socket.localPort;
    proto._write = function (this: net.Socket, ...args: unknown[]) { if (ours(this)) writes++; return write1.apply(this, args); };
    proto._writev = function (this: net.Socket, ...args: unknown[]) { if (ours(this)) writes++; return writev.apply(this, args); };
    s.defer(() => { proto._write = write1; proto._writev = writev; });

    p.wire.interested();
    await p.waitUnchoke(5000);
    // The first block brings piece 0 into the seed's cache, so the next requests are answered without a disk read.
    p.wire.request(0, 0, 16 * KiB);
    await until('the first block', 5000, () => p.pieces === 1);

    writes = 0;
    p.wire.cork();
    for (let i = 1; i <= 3; i++) p.wire.request(0, i * 16 * KiB, 16 * KiB);
    p.wire.uncork(); // 51 bytes in one segment: one read on the seed's side
    await until('three more blocks', 5000, () => p.pieces === 4);
    assert.equal(p.pieceBytes, 4 * 16 * KiB);
    assert.equal(writes, 1, 'the three blocks left in one write');
  });
});
