// create: making a .torrent of a big file, which is SHA-1 over every byte. The ceiling is the
// machine's SHA-1 rate × cores, measured in the same run.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readFile, rm } from 'node:fs/promises';
import { fmtSize, warmCache, writeRandomFile } from '../lib/data.js';
import { DIST_BENCH, ROOT } from '../lib/engines.js';
import { Proc } from '../lib/proc.js';
import { summarize, type Summary } from '../lib/stats.js';

export type Creator = 'shoal' | 'mktorrent' | 'libtorrent';
export interface CreateRun { seconds: number; mbps: number; cpuSeconds: number; peakRssMiB: number }
export interface CreateResult {
  tool: Creator; command: string; runs: CreateRun[]; failures: string[];
  summary: { seconds: Summary; mbps: Summary; cpuSeconds: Summary };
  /** Median MB/s ÷ (SHA-1 MB/s per core × cores). */
  ratioToSha1Cores: number;
}
export interface CreateOptions { size: number; pieceLength: number; runs: number; tools: Creator[]; workDir: string; sha1PerCoreMBps: number; cores: number; log: (m: string) => void }

function commandFor(tool: Creator, file: string, piece: number, out: string, cores: number): [string, string[]] {
  switch (tool) {
    case 'shoal': return [process.execPath, [join(DIST_BENCH, 'engines/shoal-create.js'), '--file', file, '--piece', String(piece), '--out', out]];
    case 'mktorrent': return ['mktorrent', ['-l', String(Math.log2(piece)), '-t', String(cores), '-o', out, file]];
    case 'libtorrent': return ['/usr/bin/python3', [join(ROOT, 'bench/engines/lt_create.py'), file, String(piece), out]];
  }
}

async function timeOne(tool: Creator, file: string, piece: number, out: string, cores: number, workDir: string): Promise<CreateRun> {
  const [cmd, args] = commandFor(tool, file, piece, out, cores);
  await rm(out, { force: true });
  // GNU time reports the exact rusage of the exited process (CPU and peak RSS), which sampling cannot.
  const timeFile = join(workDir, 'create.time');
  const t0 = performance.now();
  const p = new Proc(`create ${tool}`, '/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...args]);
  const code = await p.exited;
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${tool} exited with ${code}: ${p.stderr.trim().slice(-400)}`);
  const [user, sys, maxKiB] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  return { seconds, mbps: 0, cpuSeconds: user! + sys!, peakRssMiB: maxKiB! / 1024 };
}

export async function runCreateScenario(o: CreateOptions): Promise<CreateResult[]> {
  const file = join(o.workDir, 'create.bin');
  o.log(`create: writing ${fmtSize(o.size)} of random data`);
  await writeRandomFile(file, o.size);
  const results: CreateResult[] = o.tools.map((tool) => ({
    tool, command: commandFor(tool, '<file>', o.pieceLength, '<out>', o.cores).flat().join(' ').replace(ROOT + '/', ''),
    runs: [], failures: [], summary: {} as CreateResult['summary'], ratioToSha1Cores: NaN,
  }));
  const ceiling = o.sha1PerCoreMBps * o.cores;
  try {
    for (let run = 1; run <= o.runs; run++) {
      for (const r of results) {
        await warmCache(file);
        const out = join(o.workDir, `create-${r.tool}.torrent`);
        try {
          const x = await timeOne(r.tool, file, o.pieceLength, out, o.cores, o.workDir);
          x.mbps = o.size / 1e6 / x.seconds;
          r.runs.push(x);
          o.log(`[create ${r.tool} run ${run}/${o.runs}] ${x.seconds.toFixed(2)} s, ${x.mbps.toFixed(0)} MB/s = ${(x.mbps / ceiling * 100).toFixed(0)}% of SHA-1 × ${o.cores} cores, CPU ${x.cpuSeconds.toFixed(2)} s`);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          r.failures.push(msg);
          o.log(`[create ${r.tool} run ${run}/${o.runs}] FAILED: ${msg}`);
        } finally {
          await rm(out, { force: true });
        }
      }
    }
  } finally {
    await rm(file, { force: true });
  }
  for (const r of results) {
    r.summary = { seconds: summarize(r.runs.map((x) => x.seconds)), mbps: summarize(r.runs.map((x) => x.mbps)), cpuSeconds: summarize(r.runs.map((x) => x.cpuSeconds)) };
    r.ratioToSha1Cores = r.summary.mbps.median / ceiling;
  }
  return results;
}
