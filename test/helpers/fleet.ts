// Starts a fleet (controller + agents as CLI processes) for the fleet tests and polls the controller's API.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI_PATH, startCli, runCli, type CliProcess, type CliResult, type JsonEvent } from './cli.js';

export interface Fleet {
  dir: string;
  url: string;
  port: number;
  tokenFile: string;
  controller: CliProcess;
  agents: CliProcess[];
  agentArgs: string[][];
}

export async function startController(dir: string, tokenFile: string, port = 0): Promise<{ proc: CliProcess; url: string; port: number }> {
  const proc = startCli(['controller', '--http-port', String(port), '--state', join(dir, 'controller'), '--token-file', tokenFile, '--json']);
  const ev = await proc.waitFor('listening', 15_000);
  return { proc, url: ev['url'] as string, port: ev['port'] as number };
}

export function agentArgs(url: string, tokenFile: string, dir: string, name: string, extra: string[] = []): string[] {
  return ['agent', '--controller', url, '--token-file', tokenFile, '--dir', dir, '--channel', 'app', '--name', name, '--json', ...extra];
}

export async function writeToken(file: string): Promise<void> {
  await fsp.writeFile(file, 'test-token-0123456789abcdef\n', { mode: 0o600 });
}

export async function api<T>(url: string, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const r = await fetch(url + path, { ...init, signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  let body: unknown;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, body: body as T };
}

/** Polls `probe` every 150 ms until it returns a value (not undefined) or `ms` pass. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export function publishCli(args: string[], timeoutMs = 40_000): Promise<CliResult> {
  return runCli(['publish', ...args, '--json'], { timeoutMs });
}

/** A shoal CLI process inside a network namespace (`ip netns exec` execs node, so the PID is node's). */
export class NsCli {
  readonly child: ChildProcess;
  readonly events: JsonEvent[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private partial = '';
  private waiters: Array<{ type: string; resolve: (e: JsonEvent) => void }> = [];

  constructor(ns: string, args: string[]) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.stderr = (this.stderr + s).slice(-8000); });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) {
        let e: JsonEvent;
        try { e = JSON.parse(l) as JsonEvent; } catch { continue; }
        this.events.push(e);
        this.waiters = this.waiters.filter((w) => (w.type === e.type ? (w.resolve(e), false) : true));
      }
    });
    this.exited = new Promise((r) => this.child.once('close', (code) => r(code)));
  }

  waitFor(type: string, ms: number): Promise<JsonEvent> {
    const seen = this.events.find((e) => e.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no "${type}" within ${ms} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)), ms);
      this.waiters.push({ type, resolve: (e) => { clearTimeout(t); resolve(e); } });
      void this.exited.then((c) => { clearTimeout(t); reject(new Error(`exited (${c}) before "${type}"\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)); });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return;
    try { process.kill(this.child.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(this.child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * HTTP GETs from inside a namespace through one long-lived node process: the test's own namespace cannot reach
 * hosts of the LAN, and a process per request would cost more CPU than the fleet under test.
 */
export class NsFetcher {
  private readonly child: ChildProcess;
  private nextId = 0;
  private partial = '';
  private readonly pending = new Map<number, { resolve: (r: { status: number; body: string }) => void; timer: NodeJS.Timeout }>();

  constructor(ns: string) {
    const code = "const rl=require('node:readline').createInterface({input:process.stdin});" +
      "rl.on('line',(l)=>{const q=JSON.parse(l);fetch(q.url,{signal:AbortSignal.timeout(5000)})" +
      ".then(async(r)=>({id:q.id,status:r.status,body:await r.text()}),(e)=>({id:q.id,status:0,body:String(e&&e.message)}))" +
      ".then((o)=>process.stdout.write(JSON.stringify(o)+'\\n'))});rl.on('close',()=>process.exit(0));";
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      const lines = (this.partial + s).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) {
        const o = JSON.parse(l) as { id: number; status: number; body: string };
        const p = this.pending.get(o.id);
        if (!p) continue;
        this.pending.delete(o.id);
        clearTimeout(p.timer);
        p.resolve(o);
      }
    });
  }

  /** GET `url`; status 0 when the request failed (refused, timed out). */
  get(url: string): Promise<{ status: number; body: string }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending.delete(id); resolve({ status: 0, body: 'no answer within 8 s' }); }, 8000);
      this.pending.set(id, { resolve, timer });
      this.child.stdin!.write(JSON.stringify({ id, url }) + '\n');
    });
  }

  async json<T>(url: string): Promise<T> {
    const r = await this.get(url);
    if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.body.slice(0, 200)}`);
    return JSON.parse(r.body) as T;
  }

  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('close', r));
    this.child.stdin!.end();
    const t = setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    await exited;
    clearTimeout(t);
  }
}
