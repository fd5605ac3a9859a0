import type { PeerConnection } from '../connection/connection.js';
import type { TorrentContent } from './content.js';

/*
 * CROSS-STRUCTURE INVARIANTS (the picker's own are at the top of piece-picker.ts). They hold between events, i.e. at
 * every macrotask boundary; `checkInvariants` verifies them in debug mode (ClientOptions.debugInvariants, or
 * SHOAL_DEBUG_INVARIANTS=1, which the test runner sets) on every tick and every connection change.
 *
 *  C1. Storage and picker agree on what we have: `Storage.have[i]` ⇔ picker state HAVE. Storage marks a piece only
 *      after its verified write completed, and the downloader tells the picker in the same continuation.
 *  C2. The downloader holds a piece buffer exactly for the pieces the picker has in flight (ACTIVE or PENDING).
 *      A piece whose requests were all cancelled before any block arrived goes back to QUEUED in the picker and its
 *      buffer back to the pool: buffers never sit outside the pending-bytes bound.
 *  C3. Each connection's outstanding requests are the picker's record of that peer's requests: every
 *      (index, begin) in `c.download.outstanding` has `c` as a requester in the picker, and the counts are equal.
 *  C4. Availability is the sum of connected peers' announcements: for every piece, the picker's announced count is
 *      the number of attached connections (those that know the piece count) that are not have-all and have the bit;
 *      the picker's have-all count is the number of attached have-all connections. A HAVE before a HAVE_ALL is
 *      taken out when the HAVE_ALL arrives. Web seeds announce nothing: they are in no availability count.
 *  C6. One writer per block: a piece buffer's count of copies in progress is the number of its blocks with a writer,
 *      each writer is an open connection (or web seed) whose copy target is exactly that piece and block, and a block
 *      that has a writer has no sender yet. A connection that closes mid-block gives its claim up (its bytes are
 *      overwritten by the block's next sender), so no piece waits forever for a copy that will never finish.
 *  C5. Web seeds are block sources like connections: a usable web seed's outstanding requests are the picker's record
 *      of its requests (as C3); a dropped (closed) web seed has no request left, neither of its own nor in the picker.
 * The storage's piece cache checks its own (P1–P3, piece-cache.ts): recycled memory is never still in use.
 */
export function checkInvariants(content: TorrentContent, connections: Iterable<PeerConnection>): void {
  const fail = (msg: string): never => { throw new Error(`torrent invariant: ${msg}`); };
  const picker = content.picker;
  picker.checkInvariants();
  content.storage.checkInvariants();
  const n = content.meta.pieceCount;
  const have = content.storage.have;

  // C1
  for (let i = 0; i < n; i++) {
    if (have.get(i) !== picker.hasPiece(i)) fail(`C1: piece ${i} storage.have=${have.get(i)} picker=${picker.pieceState(i)}`);
  }

  // C2
  const buffered = new Set<number>(content.downloader.inFlightIndices());
  for (const i of buffered) {
    const st = picker.pieceState(i);
    if (st !== 'active' && st !== 'pending') fail(`C2: downloader holds a buffer for piece ${i}, which the picker has as ${st}`);
  }
  for (let i = 0; i < n; i++) {
    const st = picker.pieceState(i);
    if ((st === 'active' || st === 'pending') && !buffered.has(i)) fail(`C2: piece ${i} is ${st} in the picker but has no buffer`);
  }

  // C3 and C4
  const announced = new Uint32Array(n);
  let haveAll = 0;
  for (const c of connections) {
    if (c.closed || !c.knowsPieceCount) continue;
    for (const r of c.download.outstanding.values()) {
      if (!picker.isRequester(c, r.index, r.begin)) fail(`C3: ${c.address} has request ${r.index}/${r.begin} the picker does not know`);
    }
    const known = picker.requestCount(c);
    if (known !== c.download.outstanding.size) fail(`C3: ${c.address} has ${c.download.outstanding.size} outstanding, picker counts ${known}`);
    if (c.isSeed) { haveAll++; continue; }
    for (const i of c.bits.indices()) announced[i]!++;
  }
  // C5
  for (const ws of content.webSeedSources()) {
    const known = picker.requestCount(ws);
    if (ws.closed) {
      if (ws.download.outstanding.size > 0 || known > 0) fail(`C5: dropped web seed ${ws.url} still has ${ws.download.outstanding.size} outstanding, picker counts ${known}`);
      continue;
    }
    for (const r of ws.download.outstanding.values()) {
      if (!picker.isRequester(ws, r.index, r.begin)) fail(`C5: web seed ${ws.url} has request ${r.index}/${r.begin} the picker does not know`);
    }
    if (known !== ws.download.outstanding.size) fail(`C5: web seed ${ws.url} has ${ws.download.outstanding.size} outstanding, picker counts ${known}`);
  }
  // C6
  const copies = content.downloader.checkCopies();
  if (copies !== null) fail(`C6: ${copies}`);
  if (haveAll !== picker.haveAllCount) fail(`C4: ${haveAll} have-all connections, picker counts ${picker.haveAllCount}`);
  for (let i = 0; i < n; i++) {
    if (announced[i] !== picker.announcedCount(i)) fail(`C4: piece ${i} announced by ${announced[i]} connections, picker counts ${picker.announcedCount(i)}`);
  }
}
