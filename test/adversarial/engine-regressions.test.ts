/**
 * Regressions found by reviewing the engine when it was split into connection, session and content layers. Each test
 * failed before its fix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeMetainfo } from '../helpers/make-meta.js';
import { KiB, until, withScope } from '../helpers/engine/harness.js';
import { dialRaw, fullBitfield } from '../helpers/engine/raw-peer.js';

const TIMEOUT = 30_000;

test('a peer that sends HAVEs and then HAVE_ALL leaves no availability behind when it disconnects', { timeout: TIMEOUT }, async () => {
  await withScope('regress-haveall', async (s) => {
    const data = randomBytes(16 * 32 * KiB);
    const { meta } = makeMetainfo([{ path: ['a.bin'], data }], 32 * KiB, 'a.bin');
    // The invariant checker would throw on the broken count too; this test shows the symptom on its own.
    const client = await s.client({ debugInvariants: false });
    const t = await client.add(meta, { path: join(s.dir, 'dl'), resumeFile: false });
    const p = await dialRaw(client.port, meta.infoHash);
    p.wire.have(3);
    p.wire.have(5);
    p.wire.haveAll();
    await until('the have-all is counted', 5000, () => t.picker.availability(7) === 1);
    assert.equal(t.picker.availability(3), 1, 'piece 3 counted once (have-all), not twice');
    p.destroy();
    await until('the peer is gone', 5000, () => t.peerCount === 0);
    for (let i = 0; i < meta.pieceCount; i++) assert.equal(t.picker.availability(i), 0, `availability of piece ${i} after the peer left`);
  });
});

test('a piece whose requests were all cancelled gives its buffer back', { timeout: TIMEOUT }, async () => {
  await withScope('regress-cancelled', async (s) => {
    const data = randomBytes(16 * 256 * KiB);
    const { meta } = makeMetainfo([{ path: ['b.bin'], data }], 256 * KiB, 'b.bin');
    const client = await s.client({ debugInvariants: false });
    const t = await client.add(meta, { path: join(s.dir, 'dl'), resumeFile: false });
    // Without the fast extension a choke cancels every request (BEP 3), and this peer never sends a block.
    const p = await dialRaw(client.port, meta.infoHash, { fast: false });
    p.wire.bitfield(fullBitfield(meta.pieceCount));
    p.wire.unchoke();
    await until('requests arrive', 5000, () => p.requests > 0);
    assert.ok(t.stats().piecesInFlight > 0);
    p.wire.choke();
    await until('buffers released', 5000, () => t.stats().piecesInFlight === 0);
    assert.equal(t.stats().piecesInFlight, 0);
    p.destroy();
  });
});
