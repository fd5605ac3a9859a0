// fleet: what organisations run Shoal for. A controller and the publisher (origin) on one host, N agents on their
// own hosts, every host's upload shaped as in the swarm scenario (network namespaces, tbf). Measures the time from
// the release's registration until the last agent switched `current`, against the Kumar–Ross floor, and the copies
// the origin sent; then the same rollout over plain HTTP (every host fetches the file from the origin) for comparison.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseRate, writeRandomFile } from '../lib/data.js';
import { ROOT } from '../lib/engines.js';
import { createNet } from '../lib/netns.js';
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
  http?: { lastSeconds: number; ratioToFloor: number; originCopies: number | null; ok: boolean; failure?: string };
}

export interface FleetOptions { agents: number; rate: string; size: number; pieceLength: number; workDir: string; log: (m: string) => void; http?: boolean }

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
    const summary = await pub.waitFor('summary', (timeoutS + 120) * 1000);
    const view = JSON.parse(await fetchInNs(origin!.ns, `${url}/api/channels/bench`)) as { doneTimes: number[] };
    const last = summary['timeToLastHost'] as number | undefined;
    if (summary['outcome'] !== 'complete' || last === undefined) throw new Error(`rollout ${String(summary['outcome'])}: ${summary['done']}/${summary['subscribed']} done`);
    for (let i = 0; i < hosts.length; i++) {
      const got = await readFile(join(dir, `agent-${i}`, 'bench', 'current', 'data.bin')).then((b) => b.length).catch(() => -1);
      if (got !== o.size) throw new Error(`agent ${i}: current/data.bin has ${got} bytes, expected ${o.size}`);
    }
    result = {
      ...base, ok: true, lastSeconds: last, completions: view.doneTimes, ratioToFloor: last / floor,
      originCopies: typeof summary['originCopies'] === 'number' ? summary['originCopies'] : null,
    };
    o.log(`${tag} last agent switched after ${last.toFixed(2)} s = ${result.ratioToFloor.toFixed(2)}× floor (${floor.toFixed(2)} s), origin copies ${result.originCopies?.toFixed(2) ?? '–'}`);
  } catch (err) {
    result = { ...base, failure: (err as Error).message };
    o.log(`${tag} FAILED: ${result.failure}`);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    net.teardown();
    await rm(join(dir), { recursive: true, force: true });
  }
  if (o.http !== false) {
    // The same rollout over plain HTTP: every host fetches the whole file from the origin.
    const h = await runSwarm({ engine: 'http', peers: o.agents, rate: o.rate, size: o.size, pieceLength: o.pieceLength, workDir: o.workDir, log: o.log });
    result.http = { lastSeconds: h.lastSeconds, ratioToFloor: h.ratioToFloor, originCopies: h.originCopies, ok: h.ok, ...(h.failure ? { failure: h.failure } : {}) };
  }
  return result;
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
  const rows = ['| agents | size | upload each | last agent switched | × floor | origin copies | plain HTTP | HTTP × floor | HTTP origin copies |', '|---|---|---|---|---|---|---|---|---|'];
  for (const r of results) {
    const f = (n: number | null | undefined, d = 2): string => (n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(d));
    rows.push(`| ${r.agents} | ${(r.size / 2 ** 20).toFixed(0)} MiB | ${r.rate} | ${r.ok ? `${f(r.lastSeconds)} s` : `failed: ${r.failure ?? ''}`} | ${f(r.ratioToFloor)} | ${f(r.originCopies)} | ${r.http?.ok ? `${f(r.http.lastSeconds)} s` : '–'} | ${f(r.http?.ratioToFloor)} | ${f(r.http?.originCopies)} |`);
  }
  return `${rows.join('\n')}\n\nFloor: Kumar–Ross max(F/u_s, N·F/(u_s+N·u)) for the shaped rates; "last agent switched" runs from the release's registration at the controller (after hashing) to the last agent's \`current\` switch, as the agents report it.\n`;
}
