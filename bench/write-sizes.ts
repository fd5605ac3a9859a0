// `node dist/bench/write-sizes.js`: what writing downloaded data to the page cache costs this machine, by the size of
// each write. Storage writes a piece in writes of at most 512 KiB (MAX_WRITE in src/storage/storage.ts) because on
// the benchmark VM a 1 MiB write after a few idle seconds cost about three times the CPU of two 512 KiB ones; this
// re-measures that on any machine. Each trial writes `--size` to a new file in the temp dir through fs.promises (the
// thread pool, as Storage does), one piece after another, then deletes it; `--idle` seconds pass before each trial,
// so the memory the last trial freed has time to go back to the host where the VM gives idle memory back.
import { Command } from 'commander';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSize } from './lib/data.js';

const program = new Command()
  .name('write-sizes')
  .description('process CPU per MiB written to the page cache, by write size')
  .option('--writes <list>', 'write sizes to compare, each dividing the piece', '1MiB,512KiB,256KiB')
  .option('--piece <size>', 'piece size (the data written at once by the downloader)', '1MiB')
  .option('--size <size>', 'bytes written per trial', '256MiB')
  .option('--idle <s>', 'seconds to wait before each trial', '4')
  .option('--rounds <n>', 'trials per write size, alternated (median reported)', '3')
  .parse();
const o = program.opts<{ writes: string; piece: string; size: string; idle: string; rounds: string }>();
const size = (name: string, v: string): number => {
  try { return parseSize(v); } catch (err) { return program.error(`${name}: ${(err as Error).message}`); }
};
const PIECE = size('--piece', o.piece);
const TOTAL = size('--size', o.size);
const WRITES = o.writes.split(',').map((w) => size('--writes', w.trim()));
const IDLE = Number(o.idle), ROUNDS = Number(o.rounds);
for (const w of WRITES) if (!(w > 0) || PIECE % w !== 0) program.error(`--writes: ${w} bytes does not divide the ${PIECE}-byte piece`);
if (!(TOTAL >= PIECE) || TOTAL % PIECE !== 0) program.error(`--size must be a whole number of pieces, not "${o.size}"`);
if (!(IDLE >= 0 && IDLE <= 600)) program.error(`--idle must be 0 to 600 seconds, not "${o.idle}"`);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 50)) program.error(`--rounds must be a whole number from 1 to 50, not "${o.rounds}"`);

const MiB = 1 << 20;
const data = randomFillSync(Buffer.allocUnsafeSlow(PIECE));
const dir = await mkdtemp(join(tmpdir(), 'shoal-write-sizes-'));

async function trial(write: number): Promise<{ cpu: number; sys: number; wall: number }> {
  await new Promise((r) => setTimeout(r, IDLE * 1000));
  const path = join(dir, 'data');
  const fh = await open(path, 'w');
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let pos = 0; pos < TOTAL; pos += PIECE) {
    for (let d = 0; d < PIECE; d += write) await fh.write(data, d, write, pos + d);
  }
  const c = process.cpuUsage(c0);
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  await fh.close();
  await rm(path);
  const mib = TOTAL / MiB;
  return { cpu: (c.user + c.system) / mib, sys: c.system / mib, wall: wall / mib };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const results = new Map<number, { cpu: number; sys: number; wall: number }[]>(WRITES.map((w) => [w, []]));
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const w of WRITES) {
      const t = await trial(w);
      results.get(w)!.push(t);
      process.stderr.write(`round ${r + 1}, writes of ${w / 1024} KiB: ${t.cpu.toFixed(0)} µs CPU per MiB (kernel ${t.sys.toFixed(0)})\n`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(`\n${TOTAL / MiB} MiB in ${PIECE / 1024} KiB pieces, ${IDLE} s idle before each trial, median of ${ROUNDS}\n`);
console.log('| write size | CPU µs per MiB | of which kernel | wall µs per MiB |');
console.log('|---|---|---|---|');
for (const w of WRITES) {
  const ts = results.get(w)!;
  console.log(`| ${w / 1024} KiB | ${median(ts.map((t) => t.cpu)).toFixed(0)} | ${median(ts.map((t) => t.sys)).toFixed(0)} | ${median(ts.map((t) => t.wall)).toFixed(0)} |`);
}
