// Tracker benchmark: announces per second over UDP and HTTP for one Shoal tracker process and one
// Debian opentracker process, measured in the same run with the same load generator, plus the
// tracker's own CPU time so the per-core rate is comparable even when the load generator (which
// shares the machine) is the limit.
//
// Usage: node dist/bench/tracker/run.js [--seconds 30] [--http-seconds 15] [--swarms 2000] [--peers 100000]
//        [--targets shoal,opentracker] [--protocols udp,http] [--warmup 3] [--shoal-node-flags "--max-semi-space-size=2"]
// Before each measurement and after it, the Shoal tracker reports its memory (RSS split into the node binary's
// file-backed pages and anonymous memory, V8 heap spaces) and how many peers it stores.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { httpLoad, makePopulation, udpLoad, type LoadResult } from './loadgen.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..'); // dist/bench/tracker -> repo root

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const SECONDS = Number(arg('seconds', '30'));
const HTTP_SECONDS = Number(arg('http-seconds', '15'));
const WARMUP = Number(arg('warmup', '3'));
const SWARMS = Number(arg('swarms', '2000'));
const PEERS = Number(arg('peers', '100000'));
const TARGETS = arg('targets', 'shoal,opentracker').split(',');
const PROTOCOLS = arg('protocols', 'udp,http').split(',');
/** Extra node flags for the Shoal tracker process (e.g. "--max-semi-space-size=1"), to compare V8 settings. */
const SHOAL_NODE_FLAGS = arg('shoal-node-flags', '').split(' ').filter(Boolean);

/** user and system CPU seconds of a process (utime, stime from /proc; USER_HZ = 100 on Linux). */
function cpuTimes(pid: number): { user: number; sys: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

interface Target { name: string; pid: number; httpPort: number; udpPort: number; child: ChildProcess; lines?: AsyncIterator<string> }

async function startShoal(allowFile: string): Promise<Target> {
  const child = spawn(process.execPath, [...SHOAL_NODE_FLAGS, join(here, 'serve.js'), allowFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await Promise.race([
    lines.next(),
    new Promise<never>((_, reject) => child.once('exit', (c) => reject(new Error(`shoal tracker exited (${c}) before listening`)))),
  ]);
  const j = JSON.parse(String(first.value)) as { httpPort: number; udpPort: number };
  return { name: 'shoal', pid: child.pid!, httpPort: j.httpPort, udpPort: j.udpPort, child, lines };
}

/** Shoal's own memory breakdown (serve.ts answers SIGUSR2 with one JSON line); undefined for other targets. */
async function memoryReport(t: Target): Promise<Record<string, unknown> | undefined> {
  if (!t.lines) return undefined;
  process.kill(t.pid, 'SIGUSR2');
  const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000).unref());
  const next = await Promise.race([t.lines.next(), timeout]);
  return next && !next.done ? JSON.parse(String(next.value)) as Record<string, unknown> : undefined;
}

async function startOpentracker(dir: string): Promise<Target> {
  const port = await freePort();
  // Debian's build refuses root and enforces the whitelist: run as nobody, chrooted in `dir`.
  const child = spawn('opentracker', ['-u', 'nobody', '-d', dir, '-w', '/whitelist.txt', '-i', '127.0.0.1', '-p', String(port), '-P', String(port)], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/stats`).then(() => true, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name: 'opentracker', pid: child.pid!, httpPort: port, udpPort: port, child };
}

interface Row {
  target: string; protocol: string; seconds: number; announces: number; announcesPerSec: number;
  trackerCpuSeconds: number; trackerUserSeconds: number; trackerSysSeconds: number; announcesPerCpuSecond: number; errors: number; timeouts: number;
  avgPeersPerReply: number; rssMiB: number; firstError?: string; memory?: Record<string, unknown>;
}

async function measure(t: Target, protocol: string): Promise<Row> {
  const seconds = protocol === 'udp' ? SECONDS : HTTP_SECONDS;
  const pop = makePopulation(SWARMS, PEERS);
  const load = (s: number): Promise<LoadResult> => protocol === 'udp'
    ? udpLoad(pop, { host: '127.0.0.1', port: t.udpPort, seconds: s })
    : httpLoad(pop, { host: '127.0.0.1', port: t.httpPort, seconds: s });
  await load(WARMUP); // fills the swarms so the measured part sees steady state
  const c0 = cpuTimes(t.pid);
  const r = await load(seconds);
  const c1 = cpuTimes(t.pid);
  const user = c1.user - c0.user, sys = c1.sys - c0.sys, cpu = user + sys;
  const row: Row = {
    target: t.name, protocol, seconds: round(r.seconds, 2), announces: r.announces,
    announcesPerSec: Math.round(r.announces / r.seconds),
    trackerCpuSeconds: round(cpu, 2), trackerUserSeconds: round(user, 2), trackerSysSeconds: round(sys, 2),
    announcesPerCpuSecond: cpu > 0 ? Math.round(r.announces / cpu) : 0,
    errors: r.errors, timeouts: r.timeouts,
    avgPeersPerReply: r.announces ? round(r.peersReturned / r.announces, 1) : 0,
    rssMiB: rssMiB(t.pid),
    ...(r.firstError ? { firstError: r.firstError } : {}),
  };
  const mem = await memoryReport(t);
  if (mem) row.memory = mem;
  console.log(`${t.name.padEnd(12)} ${protocol.padEnd(5)} ${String(row.announcesPerSec).padStart(8)} announces/s  ` +
    `${String(row.announcesPerCpuSecond).padStart(8)} per CPU-s  cpu ${row.trackerCpuSeconds}s (user ${row.trackerUserSeconds}, sys ${row.trackerSysSeconds})  errors ${row.errors}  timeouts ${row.timeouts}  peers/reply ${row.avgPeersPerReply}  rss ${row.rssMiB} MiB`);
  if (mem) console.log(`             memory: ${JSON.stringify(mem)}`);
  return row;
}

function round(n: number, d: number): number { const k = 10 ** d; return Math.round(n * k) / k; }

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-tracker-bench-'));
  await chmod(dir, 0o755);
  const hashes = makePopulation(SWARMS, 1).swarms.map((h) => h.toString('hex'));
  await writeFile(join(dir, 'whitelist.txt'), hashes.join('\n') + '\n', { mode: 0o644 });
  const targets: Target[] = [];
  const rows: Row[] = [];
  const idleRssMiB: Record<string, number> = {};
  try {
    for (const name of TARGETS) targets.push(name === 'shoal' ? await startShoal(join(dir, 'whitelist.txt')) : await startOpentracker(dir));
    await new Promise((r) => setTimeout(r, 500));
    for (const t of targets) idleRssMiB[t.name] = rssMiB(t.pid);
    console.log(`idle RSS: ${targets.map((t) => `${t.name} ${idleRssMiB[t.name]} MiB`).join(', ')}`);
    for (const t of targets) { const m = await memoryReport(t); if (m) console.log(`             memory: ${JSON.stringify(m)}`); }
    console.log(`tracker bench: ${SWARMS} swarms (Zipf), ${PEERS} peers, numwant 50, UDP ${SECONDS}s / HTTP ${HTTP_SECONDS}s per target, warm-up ${WARMUP}s`);
    for (const protocol of PROTOCOLS) for (const t of targets) rows.push(await measure(t, protocol));
  } finally {
    for (const t of targets) { try { process.kill(t.pid, 'SIGTERM'); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 300));
    for (const t of targets) { try { process.kill(t.pid, 'SIGKILL'); } catch { /* gone */ } }
    await rm(dir, { recursive: true, force: true });
  }
  const ratios: Record<string, Record<string, number>> = {};
  for (const protocol of PROTOCOLS) {
    const s = rows.find((r) => r.target === 'shoal' && r.protocol === protocol);
    const o = rows.find((r) => r.target === 'opentracker' && r.protocol === protocol);
    if (s && o) {
      ratios[protocol] = {
        throughputShoalOverOpentracker: round(s.announcesPerSec / Math.max(1, o.announcesPerSec), 3),
        perCpuShoalOverOpentracker: round(s.announcesPerCpuSecond / Math.max(1, o.announcesPerCpuSecond), 3),
      };
      console.log(`${protocol}: Shoal/opentracker throughput ${ratios[protocol]!.throughputShoalOverOpentracker}, per CPU-second ${ratios[protocol]!.perCpuShoalOverOpentracker}`);
    }
  }
  const out = {
    benchmark: 'tracker', date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model,
    config: { shoalNodeFlags: SHOAL_NODE_FLAGS.join(' '), swarms: SWARMS, peers: PEERS, udpSeconds: SECONDS, httpSeconds: HTTP_SECONDS, warmupSeconds: WARMUP, numwant: 50, udpSockets: 16, udpWindow: 24, httpConcurrency: 32 },
    note: 'Load generator and trackers share the machine; announcesPerCpuSecond divides by the tracker process\'s own user+sys CPU time.',
    idleRssMiB, rows, ratios,
  };
  const resDir = join(repo, 'bench', 'results');
  await mkdir(resDir, { recursive: true });
  const file = join(resDir, `tracker-${out.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${file}`);
}

await main();
