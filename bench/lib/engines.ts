// How each engine's runner is started. All runners take the same arguments and speak the same
// JSON-lines protocol, so scenarios never special-case an engine.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Proc, run } from './proc.js';

/** Repository root, from dist/bench/lib/engines.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DIST_BENCH = join(ROOT, 'dist/bench');
const WT_DIR = join(ROOT, 'bench/engines/webtorrent');

export type EngineName = 'shoal' | 'shoal-warm' | 'libtorrent' | 'libtorrent-default' | 'webtorrent' | 'aria2' | 'http' | 'node-floor' | 'bt-floor';
/**
 * 'node-floor' is not an engine: it moves the swarm's bytes with nothing but Node's sockets, SHA-1 and file writes
 * (bench/engines/node-floor.ts), so a run beside Shoal shows how much of Shoal's CPU is Node itself. Swarm, mesh only.
 * 'bt-floor' is the leanest BitTorrent engine in Node (bench/engines/bt-floor.ts): the wire, rarest-first picking,
 * verification and serving, nothing that is not per block. Beside 'node-floor' and Shoal it splits Shoal's CPU into
 * Node's, the protocol's and Shoal's own. Swarm, mesh only.
 */
export const ALL_ENGINES: EngineName[] = ['shoal', 'shoal-warm', 'libtorrent', 'libtorrent-default', 'webtorrent', 'aria2', 'http', 'node-floor', 'bt-floor'];
/** Runners that only make sense in the swarm scenario; elsewhere they are skipped with a note. */
export const SWARM_ONLY_ENGINES: EngineName[] = ['shoal-warm', 'node-floor', 'bt-floor'];
/**
 * 'shoal-warm' is Shoal in processes that have already moved data: before reporting ready, each runs a transfer to
 * itself over 127.0.0.1 (WARM_UP_BYTES, see `--warm-up` in engines/shoal-peer.ts), so V8 has compiled and optimized
 * the engine by the time the measured transfer starts, as in a long-running agent after its first rollout. CPU is
 * counted from 'ready', and loopback traffic is not counted, so the warm-up is in neither figure. Swarm only, not
 * in the default list: beside 'shoal' it bounds what a fresh process's warming up costs per GiB (bench/README.md).
 */
export const WARM_UP_BYTES = 128 * 1024 * 1024;

export interface RoleSpec {
  engine: EngineName;
  role: 'seed' | 'leech';
  torrent: string;
  dir: string;
  host: string;
  port: number;
  /** Network namespace to run in (swarm); undefined = the benchmark's own (loopback). */
  netns?: string;
  /** Piece picking hint for engines that default to sequential (WebTorrent). */
  strategy?: 'rarest' | 'sequential';
  /** Tracker announce URL, for engines that cannot be given peers directly (aria2). */
  tracker?: string;
  /** Extra knobs for engines that need them (the HTTP runner serves this file). */
  file?: string;
  /** Shoal only: turn initial seeding (piece-by-piece advertising by a lone seed) off. */
  noInitialSeeding?: boolean;
  /** Shoal only: run the build in SHOAL_BENCH_ALT_DIST's checkout instead of this one (see altShoalRoot). */
  alt?: boolean;
}

/**
 * SHOAL_BENCH_ALT_DIST=DIR (a built checkout of another commit, e.g. a `git worktree`): the swarm runs every other
 * Shoal downloader from DIR's build, and reports CPU per GiB each build handled in the same run. Two builds compared
 * in one swarm see the same host, the same moment and the same peers, where two runs a minute apart on this shared
 * machine differ by ±10 %. For changes to what one process costs (not for changes in what peers send each other,
 * whose effect lands on both halves).
 */
export function altShoalRoot(): string | undefined {
  const dir = process.env['SHOAL_BENCH_ALT_DIST'];
  if (dir === undefined || dir === '') return undefined;
  const root = resolve(dir);
  if (!existsSync(join(root, 'dist/bench/engines/shoal-peer.js'))) {
    throw new Error(`SHOAL_BENCH_ALT_DIST=${dir}: no dist/bench/engines/shoal-peer.js there (build that checkout first)`);
  }
  return root;
}

/**
 * SHOAL_BENCH_CPU_PROF=DIR: every Shoal process writes a V8 CPU profile into DIR/<role>/ when it exits (open them in
 * Chrome DevTools or summarise them with a script), to profile the engine inside a real scenario. Timings of such a
 * run are not comparable with others.
 * SHOAL_BENCH_CPU_PROF_ONE=1 with it: only the first downloader this benchmark invocation starts is profiled (the
 * others run at full speed).
 * SHOAL_BENCH_FIRST_NODE_FLAGS="--flag …": flags for that first downloader only (e.g. `--perf-basic-prof` for `perf`).
 * SHOAL_BENCH_NODE_FLAGS="--flag …": extra Node/V8 flags for every Shoal process (e.g. `--max-opt=1`, `--import` of a
 * sampling module), for experiments; the flags are not recorded in the results.
 */
let profiledDownloaders = 0;
function shoalProfileFlags(s: RoleSpec): string[] {
  const dir = process.env['SHOAL_BENCH_CPU_PROF'];
  const extra = (process.env['SHOAL_BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
  // SHOAL_BENCH_CPU_PROF_ONE=1: only the first downloader started is profiled. The profiler samples wall time, so a
  // profile taken while the cores are contended charges a process's waits for the CPU to whatever it was running.
  const one = process.env['SHOAL_BENCH_CPU_PROF_ONE'] === '1';
  const first = s.role === 'leech' && profiledDownloaders++ === 0;
  const profile = dir !== undefined && (!one || first);
  const firstOnly = first ? (process.env['SHOAL_BENCH_FIRST_NODE_FLAGS'] ?? '').split(' ').filter(Boolean) : [];
  return [...extra, ...firstOnly, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, s.role)}`] : [])];
}

function command(s: RoleSpec): [string, string[]] {
  const common = ['--role', s.role, '--torrent', s.torrent, '--dir', s.dir, '--host', s.host, '--port', String(s.port)];
  if (s.strategy) common.push('--strategy', s.strategy);
  if (s.tracker) common.push('--tracker', s.tracker);
  switch (s.engine) {
    case 'shoal': case 'shoal-warm': return [process.execPath, [
      ...shoalProfileFlags(s), join(s.alt ? join(altShoalRoot()!, 'dist/bench') : DIST_BENCH, 'engines/shoal-peer.js'), ...common,
      ...(s.noInitialSeeding ? ['--no-initial-seeding'] : []), ...(s.engine === 'shoal-warm' ? ['--warm-up', String(WARM_UP_BYTES)] : []),
    ]];
    case 'libtorrent': return ['/usr/bin/python3', [join(ROOT, 'bench/engines/lt_peer.py'), ...common, '--profile', 'tuned']];
    case 'libtorrent-default': return ['/usr/bin/python3', [join(ROOT, 'bench/engines/lt_peer.py'), ...common, '--profile', 'default']];
    case 'webtorrent': return [process.execPath, [join(WT_DIR, 'peer.mjs'), ...common]];
    case 'aria2': return [process.execPath, [join(DIST_BENCH, 'engines/aria2-peer.js'), ...common]];
    case 'http': return [process.execPath, [join(DIST_BENCH, 'engines/http-peer.js'), ...common, ...(s.file ? ['--file', s.file] : [])]];
    // The floors take the same profiling variables as Shoal, so their profiles can be set beside Shoal's.
    case 'node-floor': return [process.execPath, [...shoalProfileFlags(s), join(DIST_BENCH, 'engines/node-floor.js'), ...common]];
    case 'bt-floor': return [process.execPath, [...shoalProfileFlags(s), join(DIST_BENCH, 'engines/bt-floor.js'), ...common]];
  }
}

export function startRole(s: RoleSpec, label: string): Proc {
  const [cmd, args] = command(s);
  // `ip netns exec` execs in place (no fork), so the PID we get is the engine's own.
  if (s.netns) return new Proc(label, 'ip', ['netns', 'exec', s.netns, cmd, ...args]);
  return new Proc(label, cmd, args);
}

/** Installs WebTorrent into bench/engines/webtorrent on first use (kept out of the root package: see README). */
export async function ensureWebTorrent(log: (m: string) => void): Promise<void> {
  if (existsSync(join(WT_DIR, 'node_modules/webtorrent/package.json'))) return;
  log('installing webtorrent into bench/engines/webtorrent (npm install --ignore-scripts) ...');
  await run('npm', ['install', '--prefix', WT_DIR, '--ignore-scripts', '--no-audit', '--no-fund'], { timeoutMs: 300_000 });
}

export function displayName(e: EngineName): string {
  return e === 'libtorrent-default' ? 'libtorrent (defaults)' : e === 'http' ? 'HTTP' : e === 'libtorrent' ? 'libtorrent' : e === 'webtorrent' ? 'WebTorrent' : e === 'aria2' ? 'aria2' : e === 'node-floor' ? 'Node floor (no BitTorrent)' : e === 'bt-floor' ? 'BitTorrent floor (leanest Node engine)' : e === 'shoal-warm' ? 'Shoal, warm process' : 'Shoal';
}
