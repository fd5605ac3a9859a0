// Makes a .torrent with Shoal's library createTorrent (run as its own process so its CPU is its own).
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { file: { type: 'string' }, piece: { type: 'string' }, out: { type: 'string' } } });
const entry = new URL('../../src/metainfo/index.js', import.meta.url).href;
const mod = (await import(entry)) as { createTorrent(path: string, opts: { pieceLength: number }): Promise<{ torrent: Buffer }> };
const { torrent } = await mod.createTorrent(a.file!, { pieceLength: Number(a.piece) });
await writeFile(a.out!, torrent);
