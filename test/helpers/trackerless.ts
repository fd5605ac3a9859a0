// Shared pieces of the trackerless tests (magnet links, PEX, LSD): payloads whose info dictionary spans several
// ut_metadata pieces, magnet URIs with x.pe peers, and per-peer byte accounting that survives disconnects.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Torrent } from '../../src/engine/index.js';
import { writeRandomFile } from './real-peers/data.js';
import { mulberry32 } from './random.js';

/**
 * A folder of `count` files (1..`maxFileBytes` bytes each, nested two levels, long names) plus one larger file.
 * With 16 KiB pieces the info dictionary is over 16 KiB (file list + piece hashes), so fetching it by BEP 9 takes
 * more than one metadata piece. Returns the total size.
 */
export async function writeManyFiles(root: string, opts: { count?: number; maxFileBytes?: number; bigBytes?: number; seed?: number } = {}): Promise<number> {
  const count = opts.count ?? 160;
  const maxFile = opts.maxFileBytes ?? 24 * 1024;
  const rnd = mulberry32(opts.seed ?? 42);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const dir = join(root, `group-${i % 7}`, `set-${i % 3}`);
    await mkdir(dir, { recursive: true });
    const size = 1 + Math.floor(rnd() * maxFile);
    await writeRandomFile(join(dir, `file-number-${String(i).padStart(4, '0')}-with-a-longer-name.bin`), size);
    total += size;
  }
  const big = opts.bigBytes ?? 3 * 1024 * 1024 + 4321;
  await writeRandomFile(join(root, 'big.bin'), big);
  return total + big;
}

export function magnetUri(infoHashHex: string, peers: string[] = [], name?: string): string {
  const parts = [`xt=urn:btih:${infoHashHex}`];
  if (name !== undefined) parts.push(`dn=${encodeURIComponent(name)}`);
  // Not percent-encoded: libtorrent 2.0.8 ignores an x.pe whose colon is written %3A.
  for (const p of peers) parts.push(`x.pe=${p}`);
  return `magnet:?${parts.join('&')}`;
}

/**
 * Records, every `intervalMs`, the payload bytes each connected peer delivered, keeping the largest figure per
 * address (a connection's counters vanish with it, e.g. when both ends become seeds and one hangs up), so the
 * last bytes before a disconnect may be missed: use it for "got data from X" rather than exact totals.
 */
export function trackPeerBytes(t: Torrent, intervalMs = 100): { byAddress: Map<string, number>; byHost(host: string): number; stop(): void } {
  const byAddress = new Map<string, number>();
  const sample = (): void => {
    for (const p of t.peerStats()) byAddress.set(p.address, Math.max(byAddress.get(p.address) ?? 0, p.downloaded));
  };
  const timer = setInterval(sample, intervalMs);
  return {
    byAddress,
    byHost(host: string) {
      let n = 0;
      for (const [a, b] of byAddress) if (a.slice(0, a.lastIndexOf(':')).replace(/^\[|\]$/g, '') === host) n += b;
      return n;
    },
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}
