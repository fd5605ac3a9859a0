// `node dist/bench/soak.js [--minutes 20] [--downloaders 5] [--size 64MiB] [--piece 256KiB]`: the long-running soak
// (bench/scenarios/soak.ts). Writes bench/results/soak-<time>.json; exit 1 when a download differs or none completed.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseSize } from './lib/data.js';
import { ROOT } from './lib/engines.js';
import { killAll } from './lib/proc.js';
import { runSoak } from './scenarios/soak.js';

// Everything stays on loopback.
process.env['SHOAL_SANDBOX'] = '1';

const { values: a } = parseArgs({
  options: {
    minutes: { type: 'string', default: '20' }, downloaders: { type: 'string', default: '5' },
    size: { type: 'string', default: '64MiB' }, piece: { type: 'string', default: '256KiB' },
  },
});
const minutes = Number(a.minutes);
const downloaders = Number(a.downloaders);
if (!(minutes > 0) || !Number.isInteger(downloaders) || downloaders < 1 || downloaders > 7) {
  console.error('--minutes must be > 0 and --downloaders 1..7 (the seed allows 8 inbound connections per address)');
  process.exit(2);
}
const log = (m: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`); };
process.on('SIGINT', () => { killAll(); process.exit(130); });

const workDir = await mkdtemp(join(tmpdir(), 'shoal-soak-'));
try {
  const r = await runSoak({ minutes, downloaders, size: parseSize(a.size!), pieceLength: parseSize(a.piece!), workDir, log });
  const out = join(ROOT, 'bench/results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await mkdir(join(ROOT, 'bench/results'), { recursive: true });
  await writeFile(out, JSON.stringify(r, null, 1));
  log(`soak ${r.ok ? 'OK' : `FAILED: ${r.failure}`}: ${r.started} downloaders started, ${r.completed} completed (${r.corrupt} differing), ${r.killed} killed mid-download`);
  log(`seed RSS: first ${r.seedRss.firstKiB} KiB, peak ${r.seedRss.peakKiB} KiB, last ${r.seedRss.lastKiB} KiB, growth over the last half ${r.seedRss.growthLastHalfKiB} KiB`);
  for (const p of r.rss) {
    const k = p.samples.map((s) => s[1]);
    if (k.length > 0) log(`  ${p.label}: ${k.length} samples, ${k[0]} → ${k[k.length - 1]} KiB (peak ${Math.max(...k)})`);
  }
  log(`hostile: liar asked ${r.hostile.liarRequests}, misaligned ${r.hostile.misalignedRequests}, wrong-size ${r.hostile.wrongSizeRequests} blocks; ${r.hostile.silentOpened} silent and ${r.hostile.keepAliveOpened} keep-alive-only connections opened`);
  log(`results: ${out}`);
  process.exitCode = r.ok ? 0 : 1;
} finally {
  killAll();
  await rm(workDir, { recursive: true, force: true });
}
