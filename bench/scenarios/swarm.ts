// swarm: one seed and N downloaders, each in its own network namespace with its upload shaped by
// tbf; all downloaders start together. Compared with the Kumar–Ross floor for distributing a file.
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeTorrent, parseRate, warmCache, writeRandomFile } from '../lib/data.js';
import { startRole, type EngineName } from '../lib/engines.js';
import { createNet, hostIp, type Net } from '../lib/netns.js';
import { startOrigin, type Origin } from '../lib/nginx.js';
import type { Proc } from '../lib/proc.js';
import { percentile } from '../lib/stats.js';

const PORT = 6881;
const ORIGIN_PORT = 8080;

/**
 * Who holds the data at the start: a BitTorrent seed of the same engine, or an HTTP origin (nginx, shaped like every
 * host) that the torrent names as its web seed (BEP 19 url-list); then no BitTorrent seed exists.
 */
export type SwarmOrigin = 'seed' | 'webseed';
/**
 * Share of all cores used by the benchmark's own processes above which a run counts as CPU-bound.
 * Kernel networking work done in softirq context is partly charged to no process, hence below 1.
 */
const SATURATED = 0.75;
/** tbf counts whole Ethernet frames; TCP payload per full frame is 1448 of 1514 bytes (MTU 1500, timestamps on). */
export const TBF_PAYLOAD_FRACTION = 1448 / 1514;

export interface SwarmResult {
  engine: EngineName; peers: number; rate: string; size: number; pieceLength: number;
  /** Absent in results written before the web-seed variant existed: 'seed'. */
  origin?: SwarmOrigin;
  ok: boolean; failure?: string;
  /** Seconds from start until each downloader completed, sorted. */
  completions: number[];
  lastSeconds: number;
  floorSeconds: number; floorEffectiveSeconds: number;
  ratioToFloor: number; ratioToEffectiveFloor: number;
  originCopies: number | null;
  spread: { first: number; median: number; p90: number; last: number };
  /** Whole machine busy fraction during the run (includes other users of the machine). */
  cpuBusy: number;
  /** CPU seconds used by the benchmark's own processes ÷ (wall seconds × cores). */
  cpuShareOurs: number;
  /** The engines themselves used most of the cores: times measure CPU, not distribution. */
  saturated: boolean;
  /** The machine was busy (also with other users' work) most of the run. */
  contended: boolean;
}

export interface SwarmOptions { engine: EngineName; peers: number; rate: string; size: number; pieceLength: number; workDir: string; log: (m: string) => void; origin?: SwarmOrigin }

/** The engines whose runners use a torrent's url-list (WebTorrent's runner turns web seeds off; HTTP has no swarm). */
export const WEBSEED_ENGINES: EngineName[] = ['shoal', 'libtorrent', 'libtorrent-default'];

/** Kumar–Ross: T_min = max(F/u_s, N·F/(u_s + N·u)) with seed upload u_s and per-downloader upload u. */
export function kumarRossFloor(fileBytes: number, n: number, seedBps: number, peerBps: number): number {
  const F = fileBytes * 8;
  return Math.max(F / seedBps, (n * F) / (seedBps + n * peerBps));
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export async function prepareSwarmData(workDir: string, size: number, pieceLength: number): Promise<{ seedDir: string; torrent: string }> {
  const seedDir = join(workDir, 'swarm-seed');
  await mkdir(seedDir, { recursive: true });
  const file = join(seedDir, 'data.bin');
  const have = await stat(file).catch(() => undefined);
  if (have?.size !== size) await writeRandomFile(file, size);
  const torrent = join(workDir, `swarm-${pieceLength}.torrent`);
  if (!(await stat(torrent).catch(() => undefined))) await makeTorrent(file, torrent, pieceLength);
  return { seedDir, torrent };
}

export async function runSwarm(o: SwarmOptions, net: Net | undefined = undefined): Promise<SwarmResult> {
  const rateBps = parseRate(o.rate);
  const floor = kumarRossFloor(o.size, o.peers, rateBps, rateBps);
  const floorEff = kumarRossFloor(o.size, o.peers, rateBps * TBF_PAYLOAD_FRACTION, rateBps * TBF_PAYLOAD_FRACTION);
  const origin = o.origin ?? 'seed';
  // The web seed is given to each downloader with the start signal (not in the torrent's url-list), so that no
  // engine starts fetching from the origin before the clock starts.
  const { seedDir, torrent } = await prepareSwarmData(o.workDir, o.size, o.pieceLength);
  const webSeed = `http://${hostIp(0)}:${ORIGIN_PORT}/data.bin`;
  const tag = `[swarm ${o.engine} N=${o.peers} ${o.rate}${origin === 'webseed' ? ' web-seed origin' : ''}]`;
  const base: SwarmResult = {
    engine: o.engine, peers: o.peers, rate: o.rate, size: o.size, pieceLength: o.pieceLength, origin, ok: false, completions: [],
    lastSeconds: NaN, floorSeconds: floor, floorEffectiveSeconds: floorEff, ratioToFloor: NaN, ratioToEffectiveFloor: NaN,
    originCopies: null, spread: { first: NaN, median: NaN, p90: NaN, last: NaN }, cpuBusy: NaN, cpuShareOurs: NaN, saturated: false, contended: false,
  };
  const ownNet = !net;
  const procs: Proc[] = [];
  const leechDirs: string[] = [];
  let nginx: Origin | undefined;
  try {
    net ??= await createNet(o.peers + 1, o.rate);
    await warmCache(join(seedDir, 'data.bin'));
    const [seedHost, ...leechHosts] = net.hosts;
    const common = { torrent, host: '', port: PORT, strategy: 'rarest' as const, file: 'data.bin' };
    let seed: Proc | undefined;
    if (origin === 'webseed') {
      nginx = await startOrigin(seedDir, seedHost!.ns, seedHost!.ip, ORIGIN_PORT);
    } else {
      seed = startRole({ ...common, engine: o.engine, role: 'seed', dir: seedDir, host: seedHost!.ip, netns: seedHost!.ns }, `${tag} seed`);
      procs.push(seed);
      await seed.waitFor('ready', 600_000);
    }
    const leeches: Proc[] = [];
    for (let i = 0; i < o.peers; i++) {
      const h = leechHosts[i]!;
      const dir = join(o.workDir, `swarm-leech-${i}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      leechDirs.push(dir);
      const p = startRole({ ...common, engine: o.engine, role: 'leech', dir, host: h.ip, netns: h.ns }, `${tag} leech ${i}`);
      procs.push(p);
      leeches.push(p);
    }
    await Promise.all(leeches.map((p) => p.waitFor('ready', 120_000)));

    const cpu0 = procs.map((p) => p.cpu());
    const sys0 = cpuTimes();
    const seedAddr = { host: seedHost!.ip, port: PORT };
    const t0 = performance.now();
    // Each pair of downloaders is introduced once (i dials j < i), so no engine has to resolve duplicate connections.
    leeches.forEach((p, i) => {
      const others = leechHosts.slice(0, i).map((h) => ({ host: h.ip, port: PORT }));
      const peers = o.engine === 'http' ? [seedAddr] : origin === 'webseed' ? others : [seedAddr, ...others];
      p.send('peers', origin === 'webseed' ? { peers, webSeeds: [webSeed] } : { peers });
    });
    const timeout = Math.max(120_000, 4 * ((o.peers * o.size * 8) / rateBps) * 1000);
    const completions = await Promise.all(leeches.map((p) => p.waitFor('done', timeout).then(() => (performance.now() - t0) / 1000)));
    const wall = (performance.now() - t0) / 1000;
    const sys1 = cpuTimes();
    const used = procs.map((p, i) => p.cpu() - cpu0[i]!);
    const cpuOurs = used.reduce((a, b) => a + b, 0);
    const leechCpu = used.slice(seed ? 1 : 0).reduce((a, b) => a + b, 0) / Math.max(1, used.length - (seed ? 1 : 0));
    const st = seed ? await seed.request('stats').catch(() => undefined) : { uploaded: await nginx!.bodyBytesServed() };
    for (const d of leechDirs) {
      const s = await stat(join(d, 'data.bin'));
      if (s.size !== o.size) throw new Error(`${tag}: a downloader's file has ${s.size} bytes, expected ${o.size}`);
    }
    completions.sort((a, b) => a - b);
    const last = completions[completions.length - 1]!;
    const cores = cpus().length;
    const busy = (sys1.busy - sys0.busy) / Math.max(1, sys1.total - sys0.total);
    const r: SwarmResult = {
      ...base, ok: true, completions, lastSeconds: last, ratioToFloor: last / floor, ratioToEffectiveFloor: last / floorEff,
      originCopies: typeof st?.uploaded === 'number' ? st.uploaded / o.size : null,
      spread: { first: completions[0]!, median: percentile(completions, 0.5), p90: percentile(completions, 0.9), last },
      cpuBusy: busy, cpuShareOurs: cpuOurs / (wall * cores), saturated: cpuOurs / (wall * cores) > SATURATED, contended: busy > 0.9,
    };
    o.log(`${tag} last ${last.toFixed(2)} s = ${r.ratioToFloor.toFixed(2)}× floor (${floor.toFixed(2)} s; ${r.ratioToEffectiveFloor.toFixed(2)}× tbf-effective floor), origin copies ${r.originCopies?.toFixed(2) ?? '–'}, CPU ours ${(r.cpuShareOurs * 100).toFixed(0)}%${r.saturated ? ' (SATURATED)' : ''}, machine busy ${(busy * 100).toFixed(0)}%${r.contended && !r.saturated ? ' (shared with other work)' : ''}; CPU s ${seed ? `seed ${used[0]!.toFixed(1)}, ` : ''}mean downloader ${leechCpu.toFixed(1)}`);
    return r;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    o.log(`${tag} FAILED: ${msg}`);
    return { ...base, failure: msg };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await nginx?.stop();
    if (ownNet) net?.teardown();
    await Promise.all(leechDirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

