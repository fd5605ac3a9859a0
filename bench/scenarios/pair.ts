// pair: one seed, one downloader on loopback; each engine against itself plus Shoal<->libtorrent.
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { infoHashOf, makeTorrent, warmCache, writeRandomFile, fmtSize } from '../lib/data.js';
import { displayName, startRole, type EngineName } from '../lib/engines.js';
import { startOpentracker, type Tracker } from '../lib/opentracker.js';
import type { Proc } from '../lib/proc.js';
import { summarize, type Summary } from '../lib/stats.js';

const GiB = 1 << 30;
const MiB = 1 << 20;

export interface PairRun {
  seconds: number; mbps: number;
  seedCpuSeconds: number; leechCpuSeconds: number; seedCpuPerGiB: number; leechCpuPerGiB: number;
  seedPeakRssMiB: number; leechPeakRssMiB: number; seedPeakAnonMiB: number; leechPeakAnonMiB: number;
  seedUploaded: number | null;
}
export interface PairResult {
  seed: EngineName; leech: EngineName; label: string; pieceLength: number;
  runs: PairRun[]; failures: string[];
  summary: Record<Exclude<keyof PairRun, 'seedUploaded'>, Summary>;
}

export interface PairOptions { size: number; pieceLengths: number[]; runs: number; engines: EngineName[]; workDir: string; log: (m: string) => void }

export function pairList(engines: EngineName[]): [EngineName, EngineName][] {
  const has = (e: EngineName): boolean => engines.includes(e);
  const out: [EngineName, EngineName][] = [];
  for (const e of ['shoal', 'libtorrent', 'webtorrent', 'aria2'] as EngineName[]) if (has(e)) out.push([e, e]);
  if (has('shoal') && has('libtorrent')) out.push(['shoal', 'libtorrent'], ['libtorrent', 'shoal']);
  return out;
}

export function pairLabel(seed: EngineName, leech: EngineName): string {
  return `${displayName(seed)} → ${displayName(leech)}`;
}

async function stopAll(ps: (Proc | undefined)[]): Promise<void> {
  await Promise.all(ps.map((p) => p?.stop()));
}

async function oneRun(o: PairOptions, seedE: EngineName, leechE: EngineName, seedDir: string, torrent: string, tracker: Tracker | undefined, tag: string): Promise<PairRun> {
  const leechDir = await mkdtemp(join(o.workDir, 'leech-'));
  let seed: Proc | undefined;
  let leech: Proc | undefined;
  const trackerUrl = seedE === 'aria2' || leechE === 'aria2' ? tracker?.url : undefined;
  try {
    await warmCache(join(seedDir, 'data.bin'));
    seed = startRole({ engine: seedE, role: 'seed', torrent, dir: seedDir, host: '127.0.0.1', port: 0, tracker: trackerUrl }, `${tag} seed ${seedE}`);
    const ready = await seed.waitFor('ready', 600_000);
    const seedPort = Number(ready.port);
    leech = startRole({ engine: leechE, role: 'leech', torrent, dir: leechDir, host: '127.0.0.1', port: 0, tracker: trackerUrl }, `${tag} leech ${leechE}`);
    await leech.waitFor('ready', 120_000);
    const seedCpu0 = seed.cpu();
    const leechCpu0 = leech.cpu();
    const t0 = performance.now();
    leech.send('peers', { peers: [{ host: '127.0.0.1', port: seedPort }] });
    await leech.waitFor('done', Math.max(300_000, (o.size / (2 * MiB)) * 1000));
    const seconds = (performance.now() - t0) / 1000;
    const seedCpu = seed.cpu() - seedCpu0;
    const leechCpu = leech.cpu() - leechCpu0;
    seed.sample();
    leech.sample();
    const st = await seed.request('stats').catch(() => undefined);
    const got = await stat(join(leechDir, 'data.bin'));
    if (got.size !== o.size) throw new Error(`${tag}: downloaded file has ${got.size} bytes, expected ${o.size}`);
    const gib = o.size / GiB;
    return {
      seconds, mbps: o.size / 1e6 / seconds,
      seedCpuSeconds: seedCpu, leechCpuSeconds: leechCpu, seedCpuPerGiB: seedCpu / gib, leechCpuPerGiB: leechCpu / gib,
      seedPeakRssMiB: seed.peakRssKiB / 1024, leechPeakRssMiB: leech.peakRssKiB / 1024,
      seedPeakAnonMiB: seed.peakAnonKiB / 1024, leechPeakAnonMiB: leech.peakAnonKiB / 1024,
      seedUploaded: typeof st?.uploaded === 'number' ? st.uploaded : null,
    };
  } finally {
    await stopAll([leech, seed]);
    await rm(leechDir, { recursive: true, force: true });
  }
}

export async function runPairScenario(o: PairOptions): Promise<PairResult[]> {
  const pairs = pairList(o.engines);
  if (pairs.length === 0) throw new Error('pair: no engines selected that can run a pair (shoal, libtorrent, webtorrent, aria2)');
  const seedDir = join(o.workDir, 'seed');
  await mkdir(seedDir, { recursive: true });
  o.log(`pair: writing ${fmtSize(o.size)} of random data`);
  await writeRandomFile(join(seedDir, 'data.bin'), o.size);
  const torrents = new Map<number, string>();
  for (const pl of o.pieceLengths) {
    const t = join(o.workDir, `data-${pl}.torrent`);
    await makeTorrent(join(seedDir, 'data.bin'), t, pl);
    torrents.set(pl, t);
  }
  let tracker: Tracker | undefined;
  if (o.engines.includes('aria2')) tracker = await startOpentracker('127.0.0.1', await Promise.all([...torrents.values()].map(infoHashOf)));

  const results: PairResult[] = [];
  for (const pl of o.pieceLengths) for (const [s, l] of pairs) {
    results.push({ seed: s, leech: l, label: pairLabel(s, l), pieceLength: pl, runs: [], failures: [], summary: {} as PairResult['summary'] });
  }
  try {
    // Runs are interleaved across pairs so background load on a shared machine hits all of them alike.
    for (let run = 1; run <= o.runs; run++) {
      for (const r of results) {
        const tag = `[pair ${fmtSize(r.pieceLength)} ${r.label} run ${run}/${o.runs}]`;
        try {
          const x = await oneRun(o, r.seed, r.leech, seedDir, torrents.get(r.pieceLength)!, tracker, tag);
          r.runs.push(x);
          o.log(`${tag} ${x.seconds.toFixed(2)} s, ${x.mbps.toFixed(0)} MB/s, CPU/GiB seed ${x.seedCpuPerGiB.toFixed(2)} s leech ${x.leechCpuPerGiB.toFixed(2)} s, anon MiB seed ${x.seedPeakAnonMiB.toFixed(0)} leech ${x.leechPeakAnonMiB.toFixed(0)}`);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          r.failures.push(msg);
          o.log(`${tag} FAILED: ${msg}`);
        }
      }
    }
  } finally {
    await tracker?.stop();
  }
  for (const r of results) {
    const keys = Object.keys(r.runs[0] ?? {}).filter((k) => k !== 'seedUploaded') as (keyof PairResult['summary'])[];
    for (const k of keys) r.summary[k] = summarize(r.runs.map((x) => x[k]));
  }
  return results;
}
