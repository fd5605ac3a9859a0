/**
 * Child process for the kill/resume test: keeps writing pieces with Storage and saving resume data until killed.
 * argv: <dir> <pieceLength> <json [{path, length, seed}]> <rngSeed> [pauseMs between batches, like a network would]
 * Prints "ready <haveCount>" once verifyExisting finished, then writes forever (missing pieces first).
 */
import { Storage } from '../../src/storage/index.js';
import { makeMetainfo, pseudoRandom } from './make-meta.js';

const [dir, pl, spec, seedArg, pauseArg] = process.argv.slice(2);
const pause = Number(pauseArg ?? 0);
if (!dir || !pl || !spec || !seedArg) throw new Error('usage: storage-writer <dir> <pieceLength> <files-json> <seed>');
const files = (JSON.parse(spec) as { path: string[]; length: number; seed: number }[])
  .map((f) => ({ path: f.path, data: pseudoRandom(f.length, f.seed) }));
const { meta, data } = makeMetainfo(files, Number(pl), 'kr');

let rng = Number(seedArg) >>> 0 || 1;
const rand = (n: number): number => { rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0; return rng % n; };

const s = await Storage.open(meta, { dir, resumeIntervalMs: 15, maxOpenFiles: 3 });
await s.verifyExisting();
process.stdout.write(`ready ${s.have.count}\n`);

const order = [...Array(meta.pieceCount).keys()].filter((i) => !s.have.get(i));
for (let i = order.length - 1; i > 0; i--) { const j = rand(i + 1); [order[i], order[j]] = [order[j]!, order[i]!]; }
let n = 0;
for (;;) {
  const batch: number[] = [];
  for (let k = 0; k < 4; k++) batch.push(order.length > 0 ? order.pop()! : rand(meta.pieceCount));
  await Promise.all(batch.map((i) => s.writePiece(i, Buffer.from(data.subarray(i * meta.pieceLength, (i + 1) * meta.pieceLength)))));
  if (++n % 5 === 0) await s.saveResume();
  if (pause > 0) await new Promise((r) => setTimeout(r, pause));
}
