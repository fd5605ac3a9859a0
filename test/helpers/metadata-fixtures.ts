import { createHash } from 'node:crypto';
import { encode } from '../../src/bencode/index.js';
import type { MetadataHost } from '../../src/extensions/ut-metadata.js';
import { mulberry32 } from './random.js';

/** A bencoded info dict of roughly `approxSize` bytes (random piece hashes), deterministic per seed. */
export function makeInfo(approxSize: number, seed = 1): Buffer {
  const rnd = mulberry32(seed);
  const n = Math.max(1, Math.floor((approxSize - 80) / 20));
  const pieces = Buffer.alloc(n * 20);
  for (let i = 0; i < pieces.length; i++) pieces[i] = Math.floor(rnd() * 256);
  return encode({ length: n * 16384, name: `file-${seed}`, 'piece length': 16384, pieces });
}

export function sha1(b: Buffer): Buffer {
  return createHash('sha1').update(b).digest();
}

/** A torrent session's side of ut_metadata: knows the info-hash, maybe the info, records what happens. */
export class TestMetadataHost implements MetadataHost {
  readonly received: Buffer[] = [];
  readonly warnings: string[] = [];
  constructor(readonly infoHash: Buffer, private current?: Buffer) {}
  info(): Buffer | undefined {
    return this.current;
  }
  metadataReceived(info: Buffer): void {
    this.received.push(Buffer.from(info));
    this.current = info;
  }
  warning(message: string): void {
    this.warnings.push(message);
  }
}

/** A fake clock the extensions read through their `now` option. */
export class Clock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}
