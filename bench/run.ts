// `npm run bench`: Shoal against the tools users would pick instead, measured in the same run and
// reported as ratios. See bench/README.md for the scenarios and what each number means.
import { Command, Option } from 'commander';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRate, parseSize, writeRandomFile } from './lib/data.js';
import { ALL_ENGINES, displayName, ensureWebTorrent, ROOT, SWARM_ONLY_ENGINES, type EngineName } from './lib/engines.js';
import { engineVersions, machineFacts } from './lib/machine.js';
import { sweep } from './lib/netns.js';
import { killAll } from './lib/proc.js';
import { sha1CeilingPerCore, writeLatest, writeResult, type ResultFile, type Scenario } from './lib/report.js';
import { runCreateScenario, type Creator } from './scenarios/create.js';
import { measureLimits, type Limits } from './scenarios/limits.js';
import { runPairScenario } from './scenarios/pair.js';
import { NO_DISCOVERY_ENGINES, runSwarm, TRACKER_ONLY_ENGINES, WEBSEED_ENGINES, type SwarmDiscovery, type SwarmOrigin, type SwarmResult } from './scenarios/swarm.js';
import { NGINX } from './lib/nginx.js';
import { runStreamScenario, type StreamEngine } from './scenarios/stream.js';
import { runFleet, runFleetHttp, type FleetBenchResult } from './scenarios/fleet.js';

// Benchmarks run on shared machines: Shoal must not send anything outside loopback and the namespaces' 198.18.0.0/15.
process.env['SHOAL_SANDBOX'] = '1';

const program = new Command()
  .name('bench')
  .description('Shoal benchmarks against libtorrent, WebTorrent, aria2, mktorrent and plain HTTP')
  .addOption(new Option('--scenario <name>', 'which scenario').choices(['pair', 'swarm', 'create', 'limits', 'stream', 'fleet', 'all']).default('all'))
  .option('--engines <list>', 'engines to compare (comma-separated)', 'shoal,libtorrent,webtorrent,aria2,http')
  .option('--size <size>', 'pair: file size', '1GiB')
  .option('--piece <list>', 'pair: piece lengths (comma-separated)', '1MiB,256KiB')
  .option('--runs <n>', 'pair, create and stream: runs per case (median reported)', '3')
  .option('--peers <list>', 'swarm: downloader counts (comma-separated)', '16')
  .option('--rate <rate>', 'swarm: upload rate of every host (tc syntax)', '200mbit')
  .option('--swarm-size <size>', 'swarm: file size', '256MiB')
  .option('--swarm-piece <size>', 'swarm: piece length', '1MiB')
  .option('--create-size <size>', 'create: file size', '4GiB')
  .option('--origin <list>', 'swarm: who holds the data at the start: seed (a BitTorrent seed), webseed (nginx as BEP 19 web seed, no BitTorrent seed), or both: seed,webseed', 'seed')
  .option('--discovery <list>', 'swarm: how downloaders find each other: mesh (the harness introduces every pair), tracker (an opentracker plus the seed\'s address, as real deployments do), or both: mesh,tracker', 'mesh')
  .option('--stream-piece <size>', 'stream: piece length of the video torrents', '256KiB')
  .option('--stream-settle <ms>', 'stream: pause after the client has connected to the seed, before the player\'s request', '250')
  .option('--stream-rate <multiple>', 'stream: seed upload as a multiple of the video bitrate', '4')
  .option('--fleet-agents <n>', 'fleet: agents', '16')
  .option('--fleet-size <size>', 'fleet: release size', '256MiB')
  .option('--no-adapt', 'swarm: do not rerun at half the rate when the cores saturate')
  .option('--quick', 'small sizes and one run: a smoke test, not a measurement')
  .option('--report-only', 'only rebuild results/latest.md and the README section from existing result files')
  .parse();

const opts = program.opts<{
  scenario: Scenario | 'all'; engines: string; size: string; piece: string; runs: string; peers: string; rate: string;
  swarmSize: string; swarmPiece: string; createSize: string; streamPiece: string; streamSettle: string; streamRate: string; fleetAgents: string; fleetSize: string; adapt: boolean; quick?: boolean; reportOnly?: boolean; origin: string; discovery: string;
}>();

const log = (m: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`); };
const quick = !!opts.quick;
const engines = opts.engines.split(',').map((s) => s.trim()).filter(Boolean) as EngineName[];
for (const e of engines) if (!ALL_ENGINES.includes(e)) program.error(`unknown engine "${e}" (known: ${ALL_ENGINES.join(', ')})`);
const pairSize = quick ? 64 << 20 : parseSize(opts.size);
const pieceLengths = opts.piece.split(',').map(parseSize);
const runs = quick ? 1 : Number(opts.runs);
const peersList = (quick ? '4' : opts.peers).split(',').map(Number);
const swarmSize = quick ? 32 << 20 : parseSize(opts.swarmSize);
const swarmPiece = parseSize(opts.swarmPiece);
const createSize = quick ? 256 << 20 : parseSize(opts.createSize);
const fleetAgents = quick ? 4 : Number(opts.fleetAgents);
const fleetSize = quick ? 32 << 20 : parseSize(opts.fleetSize);
parseRate(opts.rate);
if (!Number.isInteger(runs) || runs < 1) program.error('--runs must be a positive integer');
const streamPiece = parseSize(opts.streamPiece);
const streamSettle = Number(opts.streamSettle);
const streamRate = Number(opts.streamRate);
if (!Number.isFinite(streamSettle) || streamSettle < 0 || streamSettle > 60_000) program.error('--stream-settle takes milliseconds from 0 to 60000');
if (!Number.isFinite(streamRate) || streamRate <= 0 || streamRate > 1000) program.error('--stream-rate takes a positive multiple of the bitrate, e.g. 4');
if (peersList.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) program.error('--peers must be integers from 1 to 200');
const origins = opts.origin.split(',').map((s) => s.trim()).filter(Boolean) as SwarmOrigin[];
if (origins.length === 0 || origins.some((o) => o !== 'seed' && o !== 'webseed')) program.error('--origin takes seed, webseed or seed,webseed');
const discoveries = [...new Set(opts.discovery.split(',').map((s) => s.trim()).filter(Boolean))] as SwarmDiscovery[];
if (discoveries.length === 0 || discoveries.some((d) => d !== 'mesh' && d !== 'tracker')) program.error('--discovery takes mesh, tracker or mesh,tracker');

let workDir = '';
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: stopping engines and removing namespaces ...');
  killAll();
  const n = sweep();
  if (n) log(`removed ${n} network namespace(s)`);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(130);
});

/** Engines that cannot run here are dropped with a note instead of failing the whole run. */
async function usableEngines(notes: string[], inSwarm = false): Promise<EngineName[]> {
  const ok: EngineName[] = [];
  for (const e of engines) {
    if (SWARM_ONLY_ENGINES.includes(e) && !inSwarm) { notes.push(`${displayName(e)} skipped: it runs only in the swarm scenario`); continue; }
    if ((e === 'shoal' || e === 'shoal-warm') && !existsSync(join(ROOT, 'dist/src/index.js'))) { notes.push('Shoal skipped: dist/src/index.js is missing (engine not built)'); continue; }
    if (e === 'webtorrent') {
      try { await ensureWebTorrent(log); } catch (err) { notes.push(`WebTorrent skipped: install failed: ${(err as Error).message.split('\n')[0]}`); continue; }
    }
    ok.push(e);
  }
  return ok;
}

async function base(scenario: Scenario, options: Record<string, unknown>): Promise<ResultFile> {
  return {
    scenario, startedAt: new Date().toISOString(), finishedAt: '', quick, options,
    machine: machineFacts(), versions: await engineVersions(), charts: [], notes: [],
  };
}

async function finish(r: ResultFile): Promise<void> {
  r.finishedAt = new Date().toISOString();
  const path = await writeResult(r);
  log(`wrote ${path}`);
}

async function scenarioLimits(file: string | undefined, size: number): Promise<Limits> {
  return measureLimits({ file, size, workDir, log });
}

async function pair(): Promise<Limits> {
  const r = await base('pair', { size: pairSize, pieceLengths, runs, engines });
  const use = await usableEngines(r.notes);
  r.options.engines = use;
  const res = await runPairScenario({ size: pairSize, pieceLengths, runs, engines: use, workDir, log });
  r.pair = res;
  // Limits after the runs, on the same (still cached) data file, so they describe this run's machine state.
  r.limits = await scenarioLimits(join(workDir, 'seed/data.bin'), pairSize);
  await rm(join(workDir, 'seed'), { recursive: true, force: true });
  await finish(r);
  return r.limits;
}

async function swarm(): Promise<void> {
  const r = await base('swarm', { size: swarmSize, pieceLength: swarmPiece, peers: peersList, rate: opts.rate, engines, origins, discoveries });
  if (process.getuid?.() !== 0) {
    r.notes.push('swarm skipped: network namespaces need root');
    log(r.notes[0]!);
    await finish(r);
    return;
  }
  const use = await usableEngines(r.notes, true);
  const swarmEngines: EngineName[] = [];
  for (const e of use) {
    if (e === 'libtorrent') swarmEngines.push('libtorrent', 'libtorrent-default');
    else swarmEngines.push(e);
  }
  r.options.engines = swarmEngines;
  const results: SwarmResult[] = [];
  r.swarm = results;
  const removed = sweep();
  if (removed) log(`swarm: removed ${removed} leftover namespace(s)`);
  try {
    if (origins.includes('webseed')) {
      if (!existsSync(NGINX)) r.notes.push(`web-seed origin skipped: ${NGINX} not installed (apt-get install nginx-light)`);
      else r.notes.push('Web-seed origin: nginx in the origin namespace (upload shaped like every host) is the only source; no BitTorrent seed. Each downloader gets the web seed URL with the start signal (libtorrent: add_url_seed; Shoal: Torrent.addWebSeed). Origin copies = body bytes in nginx\'s access log ÷ file size. WebTorrent and HTTP are not part of this variant.');
    }
    const trackerOnly = swarmEngines.filter((e) => TRACKER_ONLY_ENGINES.includes(e));
    if (trackerOnly.length && discoveries.includes('mesh')) {
      r.notes.push(`${trackerOnly.join(', ')} cannot be given peers' addresses, so ${trackerOnly.length > 1 ? 'they run' : 'it runs'} only with tracker discovery (--discovery tracker)${discoveries.includes('tracker') ? '' : ': skipped in this run'}`);
    }
    if (discoveries.includes('tracker')) {
      r.notes.push('Tracker discovery: an opentracker in the seed\'s namespace; the seed announces before the clock starts, each downloader from the start signal on, told only the seed\'s address (aria2: not even that). PEX stays at each engine\'s default (on). Plain HTTP runs as in mesh mode.');
    }
    for (const n of peersList) for (const origin of origins) for (const discovery of discoveries) {
      if (origin === 'webseed' && !existsSync(NGINX)) continue;
      let rate = opts.rate;
      const engs = (origin === 'webseed' ? swarmEngines.filter((e) => WEBSEED_ENGINES.includes(e)) : swarmEngines)
        .filter((e) => discovery === 'tracker' || !TRACKER_ONLY_ENGINES.includes(e))
        // Plain HTTP and the Node floor discover nothing: with both modes asked for, they run once (with mesh).
        .filter((e) => !(NO_DISCOVERY_ENGINES.includes(e) && discovery === 'tracker' && discoveries.includes('mesh')));
      if (engs.length === 0) continue;
      for (let attempt = 0; attempt < 2; attempt++) {
        const batch: SwarmResult[] = [];
        for (const e of engs) batch.push(await runSwarm({ engine: e, peers: n, rate, size: swarmSize, pieceLength: swarmPiece, workDir, log, origin, discovery }));
        results.push(...batch);
        if (!opts.adapt || attempt > 0 || !batch.some((b) => b.saturated)) break;
        const lower = `${Math.round(parseRate(rate) / 2e6)}mbit`;
        r.notes.push(`N=${n}${discoveries.length > 1 ? `, ${discovery} discovery` : ''}: the ${cpus().length} cores saturated at ${rate}; reran every engine at ${lower}`);
        log(`swarm: cores saturated at ${rate}; rerunning N=${n} at ${lower}`);
        r.options.adaptedFrom = rate;
        rate = lower;
      }
    }
  } finally {
    sweep();
  }
  await finish(r);
}

async function create(limits: Limits | undefined): Promise<void> {
  const r = await base('create', { size: createSize, pieceLength: 1 << 20, runs });
  const tools: Creator[] = [];
  if (engines.includes('shoal')) {
    if (existsSync(join(ROOT, 'dist/src/metainfo/index.js'))) tools.push('shoal');
    else r.notes.push('Shoal skipped: dist/src/metainfo/index.js is missing');
  }
  tools.push('mktorrent');
  if (engines.includes('libtorrent')) tools.push('libtorrent');
  r.limits = limits ?? (await scenarioLimits(undefined, 64 << 20));
  const perCore = sha1CeilingPerCore(r.limits);
  r.create = await runCreateScenario({ size: createSize, pieceLength: 1 << 20, runs, tools, workDir, sha1PerCoreMBps: perCore, cores: cpus().length, log });
  await finish(r);
}

async function stream(): Promise<void> {
  const r = await base('stream', { runs, pieceLength: streamPiece, settleMs: streamSettle, rateMultiple: streamRate, engines });
  const missing = ['ffmpeg', 'mktorrent'].filter((t) => !existsSync(`/usr/bin/${t}`));
  if (process.getuid?.() !== 0) r.notes.push('stream skipped: the seed\'s shaped link uses network namespaces, which need root');
  else if (missing.length) r.notes.push(`stream skipped: ${missing.join(' and ')} not installed`);
  if (r.notes.length) {
    log(r.notes[0]!);
    await finish(r);
    return;
  }
  const use = (await usableEngines(r.notes)).filter((e): e is StreamEngine => e === 'shoal' || e === 'webtorrent');
  if (engines.some((e) => e !== 'shoal' && e !== 'webtorrent')) r.notes.push('libtorrent, aria2 and HTTP have no streaming server: the stream scenario compares Shoal with WebTorrent');
  r.options.engines = use;
  const removed = sweep();
  if (removed) log(`stream: removed ${removed} leftover namespace(s)`);
  try {
    r.stream = await runStreamScenario({
      engines: use, runs, pieceLength: streamPiece, settleMs: streamSettle, rateMultiple: streamRate,
      seconds: quick ? 20 : 60, workDir, log,
    });
  } finally {
    sweep();
  }
  await finish(r);
}

async function fleet(): Promise<void> {
  const r = await base('fleet', { agents: fleetAgents, size: fleetSize, pieceLength: swarmPiece, rate: opts.rate });
  if (process.getuid?.() !== 0) {
    r.notes.push('fleet skipped: network namespaces need root');
    await finish(r);
    return;
  }
  if (!existsSync(join(ROOT, 'dist/src/cli/main.js'))) {
    r.notes.push('fleet skipped: dist/src/cli/main.js is missing (not built)');
    await finish(r);
    return;
  }
  try {
    // As in the swarm: when the fleet's processes saturate the cores, the time measures CPU; rerun at half the rate,
    // twice at most (a fleet runs a controller and a publisher beside the N engines, so it saturates sooner).
    // Plain HTTP runs once, at the requested rate: it is bandwidth-bound (N copies from one uplink), so its ratio to
    // the floor does not depend on the rate, and at half the rate it would take twice as long.
    const results: FleetBenchResult[] = [];
    r.fleet = results;
    let rate = opts.rate;
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await runFleet({ agents: fleetAgents, rate, size: fleetSize, pieceLength: swarmPiece, workDir, log, http: false });
      results.push(res);
      if (!opts.adapt || attempt >= 2 || !res.saturated) break;
      const lower = `${Math.round(parseRate(rate) / 2e6)}mbit`;
      r.notes.push(`the ${cpus().length} cores saturated at ${rate}; reran the fleet at ${lower}`);
      log(`fleet: cores saturated at ${rate}; rerunning at ${lower}`);
      r.options.adaptedFrom ??= rate;
      rate = lower;
    }
    if (engines.includes('http')) results[0]!.http = await runFleetHttp({ agents: fleetAgents, rate: opts.rate, size: fleetSize, pieceLength: swarmPiece, workDir, log });
  } finally {
    sweep();
  }
  await finish(r);
}

async function limitsOnly(): Promise<void> {
  const r = await base('limits', { size: pairSize });
  const file = join(workDir, 'limits.bin');
  await writeRandomFile(file, pairSize);
  r.limits = await scenarioLimits(file, pairSize);
  await rm(file, { force: true });
  await finish(r);
}

async function main(): Promise<void> {
  if (opts.reportOnly) {
    log(`summary: ${await writeLatest()}`);
    return;
  }
  workDir = await mkdtemp(join(tmpdir(), 'shoal-bench-'));
  log(`bench: scenario ${opts.scenario}${quick ? ' (quick)' : ''}, engines ${engines.join(', ')}, work dir ${workDir}`);
  try {
    const s = opts.scenario;
    let limits: Limits | undefined;
    if (s === 'limits') await limitsOnly();
    if (s === 'pair' || s === 'all') limits = await pair();
    if (s === 'create' || s === 'all') await create(limits);
    if (s === 'swarm' || s === 'all') await swarm();
    if (s === 'stream' || s === 'all') await stream();
    if (s === 'fleet' || s === 'all') await fleet();
    const latest = await writeLatest();
    log(`summary: ${latest}`);
  } finally {
    killAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  log(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  killAll();
  sweep();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(1);
});


