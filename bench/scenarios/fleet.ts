// fleet: what organisations run Shoal for. A controller and the publisher (origin) on one host, N agents on their
// own hosts, every host's upload shaped as in the swarm scenario (network namespaces, tbf). Measures the time from
// the release's registration until the last agent switched `current`, against the Kumar–Ross floor, and the copies
// the origin sent; then the same rollout over plain HTTP (every host fetches the file from the origin) for comparison.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseRate, writeRandomFile } from '../lib/data.js';
import { ROOT } from '../lib/engines.js';
import { createNet } from '../lib/netns.js';
import { cpuSeconds } from '../lib/proc.js';
import { percentile } from '../lib/stats.js';
import { kumarRossFloor, runSwarm, TBF_PAYLOAD_FRACTION } from './swarm.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const CONTROLLER_PORT = 7070;

export interface FleetBenchResult {
  agents: number; rate: string; size: number; ok: boolean; failure?: string;
  /** Seconds from registration until the last agent switched `current` (controller clock). */
  lastSeconds: number;
  /** Seconds at which each agent switched, sorted. */
  completions: number[];
  floorSeconds: number; floorEffectiveSeconds: number; ratioToFloor: number;
  originCopies: number | null;
  /** Whole machine busy fraction from registration to the last switch (includes other users of the machine). */
  cpuBusy?: number;
  /** CPU seconds of the fleet's own processes (controller, publisher, agents) ÷ (wall seconds × cores). */
  cpuShareOurs?: number;
  /** The fleet's processes used most of the cores: the time measures CPU, not distribution. */
  saturated?: boolean;
  /** Where the time went, from the agents' own reports (seconds after the release's registration). */
  timeline?: {
    /** When agents started downloading (learned of the release): first / last. */
    learnedFirst: number; learnedLast: number;
    /** Download done → `current` switched, worst agent. */
    switchLagMax: number;
    /** Peers connected per agent at the end: min / median. */
    peersMin: number; peersMedian: number;
    /** Share of the agents' payload that came from the origin. */
    originShare: number;
    /** Payload received and discarded (duplicates, failed pieces) ÷ (agents × size). */
    wastedShare: number;
    /** CPU seconds over the rollout: controller, publisher, and the mean agent. */
    cpuSeconds?: { controller: number; publisher: number; agentMean: number };
  };
  http?: { lastSeconds: number; ratioToFloor: number; originCopies: number | null; ok: boolean; failure?: string };
}

export interface FleetOptions { agents: number; rate: string; size: number; pieceLength: number; workDir: string; log: (m: string) => void; http?: boolean }

/** Share of all cores above which a run counts as CPU-bound (as in the swarm scenario). */
const SATURATED = 0.75;

function machineCpu(): { busy: number; total: number } {
  const v = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

interface Cli { child: ChildProcess; events: Record<string, unknown>[]; waitFor(type: string, ms: number): Promise<Record<string, unknown>>; stop(): Promise<void> }

function cli(ns: string, args: string[], label: string, log: (m: string) => void): Cli {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const events: Record<string, unknown>[] = [];
  const waiters: Array<{ type: string; resolve: (e: Record<string, unknown>) => void }> = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-2000); });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let e: Record<string, unknown>;
    try { e = JSON.parse(line) as Record<string, unknown>; } catch { return; }
    events.push(e);
    for (const w of waiters.splice(0)) { if (w.type === e['type']) w.resolve(e); else waiters.push(w); }
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child, events,
    waitFor(type, ms) {
      const seen = events.find((e) => e['type'] === type);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${label}: no "${type}" within ${ms} ms; stderr: ${stderr}`)), ms);
        waiters.push({ type, resolve: (e) => { clearTimeout(t); resolve(e); } });
        void exited.then(() => { clearTimeout(t); reject(new Error(`${label} exited before "${type}"; stderr: ${stderr}`)); });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await exited;
      clearTimeout(t);
      log(`${label} stopped`);
    },
  };
}

export async function runFleet(o: FleetOptions): Promise<FleetBenchResult> {
  const rateBps = parseRate(o.rate);
  const floor = kumarRossFloor(o.size, o.agents, rateBps, rateBps);
  const floorEff = kumarRossFloor(o.size, o.agents, rateBps * TBF_PAYLOAD_FRACTION, rateBps * TBF_PAYLOAD_FRACTION);
  const tag = `[fleet N=${o.agents} ${o.rate}]`;
  const base: FleetBenchResult = {
    agents: o.agents, rate: o.rate, size: o.size, ok: false, lastSeconds: NaN, completions: [],
    floorSeconds: floor, floorEffectiveSeconds: floorEff, ratioToFloor: NaN, originCopies: null,
  };
  const dir = join(o.workDir, 'fleet');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'release'), { recursive: true });
  const data = join(dir, 'release', 'data.bin');
  await writeRandomFile(data, o.size);
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'bench-token-0123456789abcdef\n', { mode: 0o600 });
  const net = await createNet(o.agents + 1, o.rate);
  const procs: Cli[] = [];
  let result: FleetBenchResult = base;
  try {
    const [origin, ...hosts] = net.hosts;
    const url = `http://${origin!.ip}:${CONTROLLER_PORT}`;
    const ctl = cli(origin!.ns, ['controller', '--host', origin!.ip, '--http-port', String(CONTROLLER_PORT), '--state', join(dir, 'controller'), '--token-file', tokenFile], `${tag} controller`, o.log);
    procs.push(ctl);
    await ctl.waitFor('listening', 30_000);
    const agents = hosts.map((h, i) => cli(h.ns, [
      'agent', '--controller', url, '--token-file', tokenFile, '--dir', join(dir, `agent-${i}`), '--channel', 'bench',
      '--name', `agent-${i}`, '--host', h.ip, '--zone', i % 2 ? 'b' : 'a',
    ], `${tag} agent ${i}`, o.log));
    procs.push(...agents);
    await Promise.all(agents.map((a) => a.waitFor('connected', 60_000)));
    const timeoutS = Math.max(120, Math.ceil(6 * floor));
    const pub = cli(origin!.ns, [
      'publish', data, '--controller', url, '--token-file', tokenFile, '--channel', 'bench', '--version', 'v1',
      '--host', origin!.ip, '--piece-length', String(o.pieceLength), '--timeout', String(timeoutS),
    ], `${tag} publisher`, o.log);
    procs.push(pub);
    // CPU is counted from the registration (after hashing) to the summary, over every fleet process.
    await pub.waitFor('registered', 600_000);
    const cpuEach = (): number[] => procs.map((p) => (p.child.pid !== undefined ? cpuSeconds(p.child.pid) ?? 0 : 0));
    const cpuOf = (): number => cpuEach().reduce((a, b) => a + b, 0);
    const each0 = cpuEach();
    const cpu0 = cpuOf();
    const sys0 = machineCpu();
    const t0 = Date.now();
    const summary = await pub.waitFor('summary', (timeoutS + 120) * 1000);
    const wall = (Date.now() - t0) / 1000;
    const cpuOurs = cpuOf() - cpu0;
    // procs: controller, agents…, publisher.
    const used = cpuEach().map((c, i) => c - (each0[i] ?? 0));
    const cpuRoles = { controller: used[0] ?? NaN, publisher: used[used.length - 1] ?? NaN, agentMean: used.slice(1, -1).reduce((a, b) => a + b, 0) / Math.max(1, used.length - 2) };
    const sys1 = machineCpu();
    const cores = cpus().length;
    const view = JSON.parse(await fetchInNs(origin!.ns, `${url}/api/channels/bench`)) as { doneTimes: number[]; latest?: { createdAt: number } };
    const agentsNow = JSON.parse(await fetchInNs(origin!.ns, `${url}/api/agents`)) as Array<{ releases: Array<{ version: string; startedAt?: number; doneAt?: number; switchedAt?: number; peers: number; fromPeers: number; fromOrigin: number; wasted?: number }> }>;
    const last = summary['timeToLastHost'] as number | undefined;
    if (summary['outcome'] !== 'complete' || last === undefined) throw new Error(`rollout ${String(summary['outcome'])}: ${summary['done']}/${summary['subscribed']} done`);
    for (let i = 0; i < hosts.length; i++) {
      const got = await readFile(join(dir, `agent-${i}`, 'bench', 'current', 'data.bin')).then((b) => b.length).catch(() => -1);
      if (got !== o.size) throw new Error(`agent ${i}: current/data.bin has ${got} bytes, expected ${o.size}`);
    }
    const created = view.latest?.createdAt ?? 0;
    const rels = agentsNow.map((a) => a.releases.find((r) => r.version === 'v1')).filter((r) => r !== undefined);
    const learned = rels.map((r) => ((r.startedAt ?? created) - created) / 1000).sort((a, b) => a - b);
    const peers = rels.map((r) => r.peers).sort((a, b) => a - b);
    const fromOrigin = rels.reduce((n, r) => n + r.fromOrigin, 0);
    const fromAll = rels.reduce((n, r) => n + r.fromOrigin + r.fromPeers, 0);
    const share = cpuOurs / (wall * cores);
    result = {
      ...base, ok: true, lastSeconds: last, completions: view.doneTimes, ratioToFloor: last / floor,
      originCopies: typeof summary['originCopies'] === 'number' ? summary['originCopies'] : null,
      cpuBusy: (sys1.busy - sys0.busy) / Math.max(1, sys1.total - sys0.total), cpuShareOurs: share, saturated: share > SATURATED,
      timeline: {
        learnedFirst: learned[0] ?? NaN, learnedLast: learned[learned.length - 1] ?? NaN,
        switchLagMax: Math.max(...rels.map((r) => ((r.switchedAt ?? 0) - (r.doneAt ?? 0)) / 1000)),
        peersMin: peers[0] ?? NaN, peersMedian: peers.length ? percentile(peers, 0.5) : NaN,
        originShare: fromAll > 0 ? fromOrigin / fromAll : NaN,
        wastedShare: rels.reduce((n, r) => n + (r.wasted ?? 0), 0) / (o.agents * o.size),
        cpuSeconds: cpuRoles,
      },
    };
    const tl = result.timeline!;
    o.log(`${tag} last agent switched after ${last.toFixed(2)} s = ${result.ratioToFloor.toFixed(2)}× floor (${floor.toFixed(2)} s), origin copies ${result.originCopies?.toFixed(2) ?? '–'}, ` +
      `CPU ours ${(share * 100).toFixed(0)}%${result.saturated ? ' (SATURATED)' : ''}, machine busy ${((result.cpuBusy ?? NaN) * 100).toFixed(0)}%; ` +
      `agents learned of the release at ${tl.learnedFirst.toFixed(2)}–${tl.learnedLast.toFixed(2)} s, done→switched ≤ ${tl.switchLagMax.toFixed(2)} s, ` +
      `peers at the end min ${tl.peersMin} median ${tl.peersMedian}, ${(tl.originShare * 100).toFixed(0)}% of agents' bytes from the origin, ${(tl.wastedShare * 100).toFixed(1)}% wasted; CPU s controller ${cpuRoles.controller.toFixed(1)}, publisher ${cpuRoles.publisher.toFixed(1)}, agent mean ${cpuRoles.agentMean.toFixed(1)}; done at ${view.doneTimes.map((x) => x.toFixed(1)).join(' ')}`);
  } catch (err) {
    result = { ...base, failure: (err as Error).message };
    o.log(`${tag} FAILED: ${result.failure}`);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    net.teardown();
    await rm(join(dir), { recursive: true, force: true });
  }
  if (o.http !== false) result.http = await runFleetHttp(o);
  return result;
}

/** The same rollout over plain HTTP: every host fetches the whole file from the origin. */
export async function runFleetHttp(o: FleetOptions): Promise<NonNullable<FleetBenchResult['http']>> {
  const h = await runSwarm({ engine: 'http', peers: o.agents, rate: o.rate, size: o.size, pieceLength: o.pieceLength, workDir: o.workDir, log: o.log });
  return { lastSeconds: h.lastSeconds, ratioToFloor: h.ratioToFloor, originCopies: h.originCopies, ok: h.ok, ...(h.failure ? { failure: h.failure } : {}) };
}

/** GET a URL from inside a namespace (the controller listens on the namespace's address only). */
function fetchInNs(ns: string, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const code = `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>process.stdout.write(t)).catch(e=>{console.error(e.message);process.exit(1)})`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
    const t = setTimeout(() => { if (child.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 15_000);
    child.once('exit', (c) => { clearTimeout(t); if (c === 0) resolve(out); else reject(new Error(`fetch ${url} in ${ns} failed`)); });
  });
}

export function fleetMarkdown(results: FleetBenchResult[]): string {
  const rows = ['| agents | size | upload each | last agent switched | × floor | origin copies | CPU ours | CPU busy (machine) | plain HTTP | HTTP × floor | HTTP origin copies |', '|---|---|---|---|---|---|---|---|---|---|---|'];
  const pct = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '–' : `${(n * 100).toFixed(0)}%`);
  for (const r of results) {
    const f = (n: number | null | undefined, d = 2): string => (n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(d));
    rows.push(`| ${r.agents} | ${(r.size / 2 ** 20).toFixed(0)} MiB | ${r.rate} | ${r.ok ? `${f(r.lastSeconds)} s` : `failed: ${r.failure ?? ''}`} | ${f(r.ratioToFloor)} | ${f(r.originCopies)} | ${pct(r.cpuShareOurs)}${r.saturated ? ' ⚠ saturated' : ''} | ${pct(r.cpuBusy)} | ${r.http?.ok ? `${f(r.http.lastSeconds)} s` : '–'} | ${f(r.http?.ratioToFloor)} | ${f(r.http?.originCopies)} |`);
  }
  const timelines = results.filter((r) => r.timeline).map((r) => {
    const t = r.timeline!;
    return `- ${r.rate}: agents learned of the release ${f2(t.learnedFirst)}–${f2(t.learnedLast)} s after registration; download done → \`current\` switched ≤ ${f2(t.switchLagMax)} s; peers per agent at the end min ${t.peersMin}, median ${t.peersMedian}; ${(t.originShare * 100).toFixed(0)}% of the agents' bytes came from the origin; ${((t.wastedShare ?? NaN) * 100).toFixed(1)}% of what they received was discarded (duplicates);${t.cpuSeconds ? ` CPU seconds: controller ${t.cpuSeconds.controller.toFixed(1)}, publisher ${t.cpuSeconds.publisher.toFixed(1)}, mean agent ${t.cpuSeconds.agentMean.toFixed(1)};` : ''} done at ${r.completions.map((x) => x.toFixed(1)).join(', ')} s`;
  });
  const met = (ok: boolean): string => (ok ? '✅ met' : '❌ not met');
  const targets = results.filter((r) => r.ok).map((r) => `${r.rate}: last agent ≤ 1.3× floor: ${r.ratioToFloor.toFixed(2)}× ${met(r.ratioToFloor <= 1.3)} · origin copies ≤ 1.2: ${r.originCopies?.toFixed(2) ?? '–'} ${met((r.originCopies ?? Infinity) <= 1.2)}${r.saturated ? ' (saturated: the time measures CPU)' : ''}`);
  return `${rows.join('\n')}\n\n${targets.length ? `Targets: ${targets.join(' — ')}\n\n` : ''}Floor: Kumar–Ross max(F/u_s, N·F/(u_s+N·u)) for the shaped rates; "last agent switched" runs from the release's registration at the controller (after hashing) to the last agent's \`current\` switch, as the agents report it. CPU ours: CPU seconds of the controller, publisher and agents ÷ (wall × cores) over that interval; above 75 % the time measures CPU, not distribution.\n${timelines.length ? `\n${timelines.join('\n')}\n` : ''}`;
}

function f2(n: number): string { return Number.isNaN(n) ? '–' : n.toFixed(2); }
