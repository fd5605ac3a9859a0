import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, TrackerServer, createTorrent, type Torrent, type ClientOptions } from '../../../src/index.js';
import { pollUntil, FatalError } from './proc.js';
import { writeRandomFile, writeTree } from './data.js';
import { scrapeHttp } from './tracker.js';
import type { Scope } from './scope.js';

const MiB = 1 << 20;

/**
 * The two payload shapes every interop test moves: one file whose length is not a multiple of the
 * piece length, and a nested multi-file tree whose files straddle piece boundaries (with a tiny file).
 */
export const LAYOUTS = {
  single: { pieceLength: 256 * 1024, files: { '': 16 * MiB + 54_321 } },
  multi: {
    pieceLength: 1 * MiB,
    files: { 'a.bin': 5 * MiB + 1, 'nested/b.bin': 3 * MiB - 17, 'nested/deeper/c.txt': 777, 'z.bin': 4 * MiB + 333 },
  },
} as const;
export type Layout = keyof typeof LAYOUTS;

export interface Payload {
  /** Folder that holds the payload (the "save path" / "download dir" for a seed). */
  seedDir: string;
  name: string;
  /** seedDir/name: the file or the top folder. */
  contentPath: string;
  pieceLength: number;
}

export async function writePayload(dir: string, layout: Layout): Promise<Payload> {
  const seedDir = join(dir, 'seed');
  const spec = LAYOUTS[layout];
  const name = layout === 'single' ? 'single.bin' : 'multi';
  const contentPath = join(seedDir, name);
  if (layout === 'single') await writeRandomFile(contentPath, LAYOUTS.single.files['']);
  else await writeTree(contentPath, LAYOUTS.multi.files);
  return { seedDir, name, contentPath, pieceLength: spec.pieceLength };
}

/** Makes the torrent with Shoal's own createTorrent, so real clients also check Shoal's metainfo. */
export async function shoalTorrent(p: Payload, out: string, announce?: string): Promise<{ torrentPath: string; infoHash: string }> {
  const { torrent, meta } = await createTorrent(p.contentPath, { pieceLength: p.pieceLength, ...(announce ? { announce: [announce] } : {}) });
  await writeFile(out, torrent);
  return { torrentPath: out, infoHash: meta.infoHashHex };
}

export async function startShoal(s: Scope, opts: ClientOptions & { host: string }): Promise<Client> {
  const client = new Client({ port: 0, ...opts });
  s.defer(() => client.close());
  await client.listen();
  return client;
}

/** Shoal's own tracker on `host`; `interval` is short so a missed peer is picked up within a test. */
export async function startShoalTracker(s: Scope, host: string): Promise<{ announceUrl: string }> {
  const tracker = new TrackerServer({ host, httpPort: 0, udpPort: 0, interval: 10, minInterval: 2 });
  s.defer(() => tracker.close());
  await tracker.listen();
  return { announceUrl: tracker.announceUrl };
}

export function describeTorrent(t: Torrent): string {
  return `shoal torrent ${t.infoHashHex}: ${JSON.stringify(t.stats())}\npeers: ${JSON.stringify(t.peerStats())}`;
}

/** Bounded wait for Shoal's torrent to hold every wanted piece; fails early on an 'error' event. */
export async function waitShoalDone(t: Torrent, timeoutMs: number, extra: () => string = () => ''): Promise<void> {
  let failure: Error | undefined;
  const onError = (e: Error) => { failure = e; };
  const warnings: string[] = [];
  const onWarning = (w: string) => { warnings.push(w); if (warnings.length > 20) warnings.shift(); };
  t.on('error', onError);
  t.on('warning', onWarning);
  try {
    await pollUntil('Shoal to complete the torrent', timeoutMs, () => {
      if (failure) throw new FatalError(`torrent error: ${failure.message}`);
      if (t.state === 'error' || t.state === 'closed') throw new FatalError(`torrent is in state ${t.state}`);
      return t.done ? true : undefined;
    }, () => `${describeTorrent(t)}\nwarnings: ${warnings.join(' | ')}\n${extra()}`, 100);
  } finally {
    t.off('error', onError);
    t.off('warning', onWarning);
  }
}

/**
 * Waits until the tracker lists `n` peers of the torrent, so a client started next gets them in its
 * first announce instead of one re-announce interval later.
 */
export async function waitTrackerPeers(announceUrl: string, infoHash: string, n: number, timeoutMs: number,
  describe: () => string = () => ''): Promise<void> {
  await pollUntil(`${n} peer(s) of ${infoHash} registered at ${announceUrl}`, timeoutMs, async () => {
    const c = await scrapeHttp(announceUrl, infoHash);
    return c && c.complete + c.incomplete >= n ? true : undefined;
  }, describe, 250);
}

/**
 * Watches the peer sessions Shoal opens on a torrent. A real client that stays connected uses one
 * session per transfer; a second can race with completion (both sides seeds, one drops the other).
 * More means one side keeps dropping the other: `guard` rejects then, so the test fails at once
 * instead of crawling to completion over reconnects. Race it against the wait for completion.
 */
export function watchSessions(t: Torrent, peerName: string): { guard: Promise<never>; stop(): void } {
  const addresses: string[] = [];
  let fail: (e: Error) => void = () => {};
  const guard = new Promise<never>((_, reject) => { fail = reject; });
  guard.catch(() => {}); // handled by whoever races it; never an unhandled rejection if the test ended earlier
  const onPeer = (addr: unknown) => {
    addresses.push(String(addr));
    if (addresses.length === 3) {
      fail(new Error(`${peerName} needed ${addresses.length} connections to Shoal for one transfer (expected 1): ` +
        `one side keeps dropping the other; sessions from ${addresses.join(', ')}\n${describeTorrent(t)}`));
    }
  };
  t.on('peer', onPeer);
  return { guard, stop: () => { t.off('peer', onPeer); } };
}
