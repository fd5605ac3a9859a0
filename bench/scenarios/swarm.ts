// swarm: one seed and N downloaders, each in its own network namespace with its upload shaped by
// tbf; all downloaders start together. Compared with the Kumar–Ross floor for distributing a file.
// Downloaders find each other either through the harness (every pair introduced: 'mesh') or, as in real
// deployments, through an opentracker in the seed's namespace plus the seed's address ('tracker').
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { infoHashOf, makeTorrent, parseRate, warmCache, writeRandomFile } from '../lib/data.js';
import { altShoalRoot, startRole, type EngineName } from '../lib/engines.js';
import { createNet, hostIp, type Net } from '../lib/netns.js';
import { startOrigin, type Origin } from '../lib/nginx.js';
import { startOpentracker, type Tracker } from '../lib/opentracker.js';
import type { Proc } from '../lib/proc.js';
import { percentile } from '../lib/stats.js';
import { TransferMeter } from '../lib/transfer-meter.js';

const PORT = 6881;
const ORIGIN_PORT = 8080;
const TRACKER_PORT = 6969;
/** How long a seed may take, once ready, to show up in the tracker's scrape before the run is given up. */
const SEED_ANNOUNCE_TIMEOUT_MS = 30_000;
const GiB = 2 ** 30;

/**
 * Who holds the data at the start: a BitTorrent seed of the same engine, or an HTTP origin (nginx, shaped like every
 * host) that the torrent names as its web seed (BEP 19 url-list); then no BitTorrent seed exists.
 */
export type SwarmOrigin = 'seed' | 'webseed';
/**
 * How downloaders find each other. 'mesh': at the start signal the harness introduces every pair once (downloader i
 * dials the seed and downloaders 0..i−1). 'tracker': an opentracker runs in the seed's namespace; every torrent
 * announces to it (the seed before the clock starts, each downloader from the start signal on) and each downloader
 * is told only the seed's address; whatever else it learns comes from the tracker (and the engine's own PEX).
 */
export type SwarmDiscovery = 'mesh' | 'tracker';
/** Engines that can only find peers through a tracker (aria2 has no way to be given a peer's address). */
export const TRACKER_ONLY_ENGINES: EngineName[] = ['aria2'];
/** Runners that discover nothing (plain HTTP, the Node floor): they run the same way whatever discovery is asked for. */
export const NO_DISCOVERY_ENGINES: EngineName[] = ['http', 'node-floor', 'bt-floor'];
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
  /** Absent in results written before tracker discovery existed: 'mesh'. */
  discovery?: SwarmDiscovery;
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
  /**
   * User+sys CPU seconds of the engine's processes from the start signal until the last downloader completed: the
   * seed's (null with a web-seed origin: nginx is not counted), the mean downloader's, and all of them together.
   * Absent in older results.
   */
  cpuSeconds?: { seed: number | null; downloaderMean: number; total: number };
  /** cpuSeconds.total ÷ GiB delivered (downloaders × file size): what distributing one GiB costs. Absent in older results. */
  cpuPerGiB?: number;
  /**
   * cpuPerGiB split into user-space and kernel seconds: the kernel part (TCP, the page cache, page faults) is much the
   * same work for every engine, so the user part is where engines differ. Absent in older results.
   */
  cpuSplitPerGiB?: { user: number; sys: number };
  /**
   * With SHOAL_BENCH_ALT_DIST: CPU seconds per GiB handled (received + sent) by the downloaders running this build
   * (even-numbered) and those running the other (odd-numbered), from the same run.
   */
  altSplit?: { altRoot: string; ours: BuildShare; alt: BuildShare; equalUpload: EqualUpload | null };
  /**
   * The same, over the middle half of the transfer only (from the moment the downloaders' hosts had received a
   * quarter of their bytes to three quarters): what each further byte costs, without start-up, JIT warm-up and the
   * tail. Null when the run was too short to sample; absent in older results.
   */
  middleCpuPerGiB?: { total: number; user: number } | null;
  /**
   * Peak anonymous memory (RssAnon, sampled every 100 ms) of the seed and of the downloaders (median and largest),
   * MiB: what a host pays in memory beside its page cache. Absent in older results.
   */
  peakAnonMiB?: { seed: number | null; downloaderMedian: number; downloaderMax: number };
  /** The engines themselves used most of the cores: times measure CPU, not distribution. */
  saturated: boolean;
  /** The machine was busy (also with other users' work) most of the run. */
  contended: boolean;
}

export interface SwarmOptions {
  engine: EngineName; peers: number; rate: string; size: number; pieceLength: number; workDir: string; log: (m: string) => void;
  origin?: SwarmOrigin; discovery?: SwarmDiscovery;
}

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

/** The clock must not start before the seed is in the tracker's list, or a downloader that finds it only there (aria2) could miss it. */
async function waitForSeedAnnounce(tracker: Tracker, infoHash: string, who: string): Promise<void> {
  const until = performance.now() + SEED_ANNOUNCE_TIMEOUT_MS;
  let last: { complete: number; incomplete: number } | undefined;
  while (performance.now() < until) {
    last = await tracker.scrape(infoHash);
    if (last && last.complete >= 1) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${who}: not announced to ${tracker.url} as a seeder within ${SEED_ANNOUNCE_TIMEOUT_MS / 1000} s (scrape: ${last ? `${last.complete} seeders, ${last.incomplete} leechers` : 'no answer'})`);
}

export interface BuildShare { downloaders: number; userPerGiB: number; sysPerGiB: number; gibHandled: number }

/**
 * The halves compared at equal upload: every downloader receives the same file, but not every one sends as much, and
 * a byte sent costs less than a byte received, so a half that happened to send more looks cheaper per GiB handled.
 * Fit each downloader's CPU seconds as its half's intercept plus a slope (s per GiB sent) common to both halves, and
 * compare the halves' fitted CPU at the mean upload of all downloaders.
 */
export interface EqualUpload { sentCostPerGiB: number; oursSeconds: number; altSeconds: number; ratio: number }

export function compareAtEqualUpload(cpuSeconds: number[], sentGiB: number[]): EqualUpload | null {
  const halves = [0, 1].map((odd) => cpuSeconds.map((c, i) => ({ c, s: sentGiB[i]! })).filter((_, i) => i % 2 === odd));
  if (halves.some((h) => h.length < 2) || sentGiB.some((x) => !Number.isFinite(x))) return null;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  let num = 0, den = 0;
  const centres = halves.map((h) => ({ c: mean(h.map((x) => x.c)), s: mean(h.map((x) => x.s)) }));
  halves.forEach((h, k) => {
    for (const x of h) {
      num += (x.s - centres[k]!.s) * (x.c - centres[k]!.c);
      den += (x.s - centres[k]!.s) ** 2;
    }
  });
  if (den === 0) return null;
  const slope = num / den;
  const at = mean(sentGiB);
  const [ours, alt] = centres.map((m) => m.c + slope * (at - m.s)) as [number, number];
  return { sentCostPerGiB: slope, oursSeconds: ours, altSeconds: alt, ratio: ours / alt };
}

/**
 * CPU per GiB each half of an A/B swarm handled: a downloader receives the file and sends what its peers asked, so
 * bytes received + sent is its work; the halves' totals are compared, not single processes. Also the halves at equal
 * upload (see compareAtEqualUpload).
 */
async function splitByBuild(leeches: Proc[], cpu: { user: number; sys: number }[], fileBytes: number, altRoot: string,
  tag: string, log: (m: string) => void): Promise<{ altRoot: string; ours: BuildShare; alt: BuildShare; equalUpload: EqualUpload | null }> {
  const sent = await Promise.all(leeches.map((p) => p.request('stats').then((s) => (typeof s['uploaded'] === 'number' ? s['uploaded'] : NaN), () => NaN)));
  const share = (odd: number): BuildShare => {
    let user = 0, sys = 0, bytes = 0, n = 0;
    leeches.forEach((_, i) => {
      if (i % 2 !== odd) return;
      user += cpu[i]!.user;
      sys += cpu[i]!.sys;
      bytes += fileBytes + sent[i]!;
      n++;
    });
    const gib = bytes / GiB;
    return { downloaders: n, userPerGiB: user / gib, sysPerGiB: sys / gib, gibHandled: gib };
  };
  const ours = share(0), alt = share(1);
  const total = (b: BuildShare): number => b.userPerGiB + b.sysPerGiB;
  const equalUpload = compareAtEqualUpload(cpu.map((t) => t.user + t.sys), sent.map((b) => b / GiB));
  const fitted = equalUpload === null ? 'not computable (a stats request failed)'
    : `this ${equalUpload.oursSeconds.toFixed(2)} s, that ${equalUpload.altSeconds.toFixed(2)} s per downloader (a GiB sent costs ${equalUpload.sentCostPerGiB.toFixed(2)} s): this ÷ that ${equalUpload.ratio.toFixed(3)}`;
  log(`${tag} A/B in one swarm, CPU s per GiB handled (received + sent): this build ${total(ours).toFixed(2)} (user ${ours.userPerGiB.toFixed(2)}, kernel ${ours.sysPerGiB.toFixed(2)}; ${ours.downloaders} downloaders, ${ours.gibHandled.toFixed(2)} GiB), ${altRoot} ${total(alt).toFixed(2)} (user ${alt.userPerGiB.toFixed(2)}, kernel ${alt.sysPerGiB.toFixed(2)}; ${alt.downloaders}, ${alt.gibHandled.toFixed(2)} GiB): this ÷ that ${(total(ours) / total(alt)).toFixed(3)}; at equal upload ${fitted}`);
  return { altRoot, ours, alt, equalUpload };
}

export async function runSwarm(o: SwarmOptions, net: Net | undefined = undefined): Promise<SwarmResult> {
  const rateBps = parseRate(o.rate);
  const floor = kumarRossFloor(o.size, o.peers, rateBps, rateBps);
  const floorEff = kumarRossFloor(o.size, o.peers, rateBps * TBF_PAYLOAD_FRACTION, rateBps * TBF_PAYLOAD_FRACTION);
  const origin = o.origin ?? 'seed';
  // Runners that discover nothing run as in mesh mode whatever was asked (plain HTTP uses only the seed's address).
  const discovery = NO_DISCOVERY_ENGINES.includes(o.engine) ? 'mesh' : o.discovery ?? 'mesh';
  // The web seed is given to each downloader with the start signal (not in the torrent's url-list), so that no
  // engine starts fetching from the origin before the clock starts.
  const { seedDir, torrent } = await prepareSwarmData(o.workDir, o.size, o.pieceLength);
  const webSeed = `http://${hostIp(0)}:${ORIGIN_PORT}/data.bin`;
  const tag = `[swarm ${o.engine} N=${o.peers} ${o.rate}${origin === 'webseed' ? ' web-seed origin' : ''}${discovery === 'tracker' ? ' via tracker' : ''}]`;
  const base: SwarmResult = {
    engine: o.engine, peers: o.peers, rate: o.rate, size: o.size, pieceLength: o.pieceLength, origin, discovery, ok: false, completions: [],
    lastSeconds: NaN, floorSeconds: floor, floorEffectiveSeconds: floorEff, ratioToFloor: NaN, ratioToEffectiveFloor: NaN,
    originCopies: null, spread: { first: NaN, median: NaN, p90: NaN, last: NaN }, cpuBusy: NaN, cpuShareOurs: NaN, saturated: false, contended: false,
  };
  const ownNet = !net;
  const altRoot = o.engine === 'shoal' ? altShoalRoot() : undefined;
  const procs: Proc[] = [];
  const leechDirs: string[] = [];
  let nginx: Origin | undefined;
  let tracker: Tracker | undefined;
  try {
    if (discovery === 'mesh' && TRACKER_ONLY_ENGINES.includes(o.engine)) throw new Error(`${o.engine} cannot be given peers' addresses: it runs only with --discovery tracker`);
    net ??= await createNet(o.peers + 1, o.rate);
    await warmCache(join(seedDir, 'data.bin'));
    const [seedHost, ...leechHosts] = net.hosts;
    const infoHash = await infoHashOf(torrent);
    if (discovery === 'tracker') {
      // Every engine announces to this URL: it must name a namespace address (198.18.0.0/15), never one outside.
      if (!/^198\.1[89]\.\d+\.\d+$/.test(seedHost!.ip)) throw new Error(`tracker address ${seedHost!.ip} is outside 198.18.0.0/15`);
      tracker = await startOpentracker(seedHost!.ip, [infoHash], { netns: seedHost!.ns, port: TRACKER_PORT });
    }
    const common = { torrent, host: '', port: PORT, strategy: 'rarest' as const, file: 'data.bin', ...(tracker ? { tracker: tracker.url } : {}) };
    let seed: Proc | undefined;
    if (origin === 'webseed') {
      nginx = await startOrigin(seedDir, seedHost!.ns, seedHost!.ip, ORIGIN_PORT);
    } else {
      seed = startRole({ ...common, engine: o.engine, role: 'seed', dir: seedDir, host: seedHost!.ip, netns: seedHost!.ns }, `${tag} seed`);
      procs.push(seed);
      await seed.waitFor('ready', 600_000);
      if (tracker) await waitForSeedAnnounce(tracker, infoHash, `${tag} seed`);
    }
    const leeches: Proc[] = [];
    for (let i = 0; i < o.peers; i++) {
      const h = leechHosts[i]!;
      const dir = join(o.workDir, `swarm-leech-${i}`);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      leechDirs.push(dir);
      const p = startRole({ ...common, engine: o.engine, role: 'leech', dir, host: h.ip, netns: h.ns, alt: altRoot !== undefined && i % 2 === 1 }, `${tag} leech ${i}`);
      procs.push(p);
      leeches.push(p);
    }
    await Promise.all(leeches.map((p) => p.waitFor('ready', 120_000)));

    // A warm process's warm-up (before 'ready') is no more part of the measured work than its start-up.
    if (o.engine === 'shoal-warm') for (const p of procs) p.resetPeakAnon();
    const cpu0 = procs.map((p) => p.cpuSplit());
    const sys0 = cpuTimes();
    const meter = new TransferMeter(procs, leeches);
    const seedAddr = { host: seedHost!.ip, port: PORT };
    const t0 = performance.now();
    // mesh: each pair of downloaders is introduced once (i dials j < i), so no engine has to resolve duplicate
    // connections. tracker: only the seed (no one with a web-seed origin); the tracker does the rest.
    leeches.forEach((p, i) => {
      const others = tracker ? [] : leechHosts.slice(0, i).map((h) => ({ host: h.ip, port: PORT }));
      const peers = o.engine === 'http' ? [seedAddr] : origin === 'webseed' ? others : [seedAddr, ...others];
      p.send('peers', origin === 'webseed' ? { peers, webSeeds: [webSeed] } : { peers });
    });
    const timeout = Math.max(120_000, 4 * ((o.peers * o.size * 8) / rateBps) * 1000);
    const completions = await Promise.all(leeches.map((p) => p.waitFor('done', timeout).then(() => (performance.now() - t0) / 1000)));
    const wall = (performance.now() - t0) / 1000;
    meter.stop();
    const sys1 = cpuTimes();
    const split = procs.map((p, i) => { const t = p.cpuSplit(); return { user: t.user - cpu0[i]!.user, sys: t.sys - cpu0[i]!.sys }; });
    const used = split.map((t) => t.user + t.sys);
    const cpuOurs = used.reduce((a, b) => a + b, 0);
    const gibMoved = (o.peers * o.size) / GiB;
    const cpuSplitPerGiB = { user: split.reduce((a, t) => a + t.user, 0) / gibMoved, sys: split.reduce((a, t) => a + t.sys, 0) / gibMoved };
    const leechCpu = used.slice(seed ? 1 : 0).reduce((a, b) => a + b, 0) / Math.max(1, used.length - (seed ? 1 : 0));
    const cpuPerGiB = cpuOurs / gibMoved;
    const middle = meter.window(o.peers * o.size);
    const middleCpuPerGiB = middle ? { total: middle.cpuPerGiB, user: middle.userPerGiB } : null;
    const st = seed ? await seed.request('stats').catch(() => undefined) : { uploaded: await nginx!.bodyBytesServed() };
    for (const d of leechDirs) {
      const s = await stat(join(d, 'data.bin'));
      if (s.size !== o.size) throw new Error(`${tag}: a downloader's file has ${s.size} bytes, expected ${o.size}`);
    }
    completions.sort((a, b) => a - b);
    const last = completions[completions.length - 1]!;
    const leechAnon = leeches.map((p) => p.peakAnonKiB / 1024);
    const peakAnonMiB = { seed: seed ? seed.peakAnonKiB / 1024 : null, downloaderMedian: percentile(leechAnon, 0.5), downloaderMax: Math.max(...leechAnon) };
    const cores = cpus().length;
    const busy = (sys1.busy - sys0.busy) / Math.max(1, sys1.total - sys0.total);
    const r: SwarmResult = {
      ...base, ok: true, completions, lastSeconds: last, ratioToFloor: last / floor, ratioToEffectiveFloor: last / floorEff,
      originCopies: typeof st?.uploaded === 'number' ? st.uploaded / o.size : null,
      spread: { first: completions[0]!, median: percentile(completions, 0.5), p90: percentile(completions, 0.9), last },
      cpuBusy: busy, cpuShareOurs: cpuOurs / (wall * cores), saturated: cpuOurs / (wall * cores) > SATURATED, contended: busy > 0.9,
      cpuSeconds: { seed: seed ? used[0]! : null, downloaderMean: leechCpu, total: cpuOurs }, cpuPerGiB, cpuSplitPerGiB,
      middleCpuPerGiB, peakAnonMiB,
    };
    if (altRoot !== undefined) r.altSplit = await splitByBuild(leeches, split.slice(seed ? 1 : 0), o.size, altRoot, tag, o.log);
    o.log(`${tag} last ${last.toFixed(2)} s = ${r.ratioToFloor.toFixed(2)}× floor (${floor.toFixed(2)} s; ${r.ratioToEffectiveFloor.toFixed(2)}× tbf-effective floor), origin copies ${r.originCopies?.toFixed(2) ?? '–'}, CPU ours ${(r.cpuShareOurs * 100).toFixed(0)}%${r.saturated ? ' (SATURATED)' : ''}, machine busy ${(busy * 100).toFixed(0)}%${r.contended && !r.saturated ? ' (shared with other work)' : ''}; CPU s ${seed ? `seed ${used[0]!.toFixed(1)}, ` : ''}mean downloader ${leechCpu.toFixed(1)}, ${cpuPerGiB.toFixed(2)} s per GiB moved (user ${cpuSplitPerGiB.user.toFixed(2)}, kernel ${cpuSplitPerGiB.sys.toFixed(2)})${middleCpuPerGiB ? `, middle half ${middleCpuPerGiB.total.toFixed(2)} (user ${middleCpuPerGiB.user.toFixed(2)})` : ''}; peak anon MiB ${seed ? `seed ${peakAnonMiB.seed!.toFixed(0)}, ` : ''}downloaders median ${peakAnonMiB.downloaderMedian.toFixed(0)}, max ${peakAnonMiB.downloaderMax.toFixed(0)}`);
    return r;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    o.log(`${tag} FAILED: ${msg}`);
    return { ...base, failure: msg };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await nginx?.stop();
    await tracker?.stop();
    if (ownNet) net?.teardown();
    await Promise.all(leechDirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

