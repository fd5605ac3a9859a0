// Engine processes and what they cost: every role (seed, downloader) is its own process so CPU and
// memory are per role. Runners speak JSON lines: they print {"event":...} objects and read
// {"cmd":...} objects on stdin (see bench/README.md, "Runner protocol").
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const CLK_TCK = 100; // Linux USER_HZ on every supported architecture
const SAMPLE_MS = 100;

export interface EngineEvent { event: string; [k: string]: unknown }

/** CPU seconds in user space and in the kernel (all threads) of a live process, or undefined once it is gone. */
export function cpuSplit(pid: number): { user: number; sys: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm may contain spaces and parentheses: fields are counted after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK }; // utime, stime (fields 14, 15)
  } catch {
    return undefined;
  }
}

/** CPU seconds (user+sys, all threads) of a live process, or undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  const t = cpuSplit(pid);
  return t === undefined ? undefined : t.user + t.sys;
}

function statusKiB(pid: number): { hwm: number; anon: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'latin1');
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    const anon = /RssAnon:\s+(\d+)/.exec(s);
    return { hwm: hwm ? Number(hwm[1]) : 0, anon: anon ? Number(anon[1]) : 0 };
  } catch {
    return undefined;
  }
}

const live = new Set<Proc>();

/** Kills every process this benchmark started (by PID). Used on SIGINT and on fatal errors. */
export function killAll(): void {
  for (const p of live) p.kill('SIGKILL');
}

export class Proc {
  readonly child: ChildProcess;
  readonly name: string;
  /** The PID whose CPU and memory are measured: the child itself unless its runner names another (aria2c). */
  measuredPid: number;
  peakRssKiB = 0;
  peakAnonKiB = 0;
  exited: Promise<number | null>;
  private events: EngineEvent[] = [];
  private waiters: { pred: (e: EngineEvent) => boolean; resolve: (e: EngineEvent) => void }[] = [];
  private timer: NodeJS.Timeout;
  private stderrTail = '';
  private exitCode: number | null | undefined;

  /** Which JSON key names the event: runners print `event`; the shoal CLI's --json lines print `type`. */
  private readonly eventKey: 'event' | 'type';

  constructor(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; eventKey?: 'event' | 'type' } = {}) {
    this.name = name;
    this.eventKey = opts.eventKey ?? 'event';
    this.child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
    this.measuredPid = this.child.pid;
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, sig) => {
        this.exitCode = code ?? (sig ? -1 : null);
        live.delete(this);
        clearInterval(this.timer);
        for (const w of this.waiters.splice(0)) w.resolve({ event: 'exit', code, signal: sig });
        resolve(code);
      });
      this.child.on('error', () => resolve(null));
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onLine(line));
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-4000);
    });
    this.child.stdin!.on('error', () => {}); // the runner may exit before reading everything
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  get stderr(): string { return this.stderrTail; }

  private onLine(line: string): void {
    if (!line.startsWith('{')) return;
    let e: EngineEvent;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o[this.eventKey] !== 'string') return;
      e = this.eventKey === 'event' ? o as EngineEvent : { ...o, event: o[this.eventKey] as string, detail: o['event'] };
    } catch { return; }
    if (e.event === 'ready' && typeof e.pid === 'number') this.measuredPid = e.pid;
    this.events.push(e);
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i]!;
      if (w.pred(e)) { this.waiters.splice(i--, 1); w.resolve(e); }
    }
  }

  /** Forget the anonymous-memory peak so far, e.g. a warm-up before 'ready' that is not part of the work measured. */
  resetPeakAnon(): void {
    this.peakAnonKiB = 0;
    this.sample();
  }

  sample(): void {
    const s = statusKiB(this.measuredPid);
    if (!s) return;
    if (s.hwm > this.peakRssKiB) this.peakRssKiB = s.hwm;
    if (s.anon > this.peakAnonKiB) this.peakAnonKiB = s.anon;
  }

  cpu(): number { return cpuSeconds(this.measuredPid) ?? NaN; }

  cpuSplit(): { user: number; sys: number } { return cpuSplit(this.measuredPid) ?? { user: NaN, sys: NaN }; }

  /** Resolves with the first event (already seen or future) named `name`; rejects on timeout or exit. */
  waitFor(name: string, timeoutMs: number, match: (e: EngineEvent) => boolean = () => true): Promise<EngineEvent> {
    const wanted = (e: EngineEvent): boolean => e.event === name && match(e);
    const seen = this.events.find(wanted);
    if (seen) return Promise.resolve(seen);
    if (this.exitCode !== undefined) return Promise.reject(this.failure(`exited (code ${this.exitCode}) before "${name}"`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(this.failure(`no "${name}" within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const waiter = {
        pred: (e: EngineEvent) => wanted(e) || e.event === 'exit' || e.event === 'error',
        resolve: (e: EngineEvent) => {
          clearTimeout(t);
          if (wanted(e)) resolve(e);
          else reject(this.failure(e.event === 'exit' ? `exited (code ${String(e.code)}) before "${name}"` : `error: ${String(e.message)}`));
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Sends a command and waits for the reply event of the same name. */
  async request(cmd: string, extra: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<EngineEvent> {
    this.events = this.events.filter((e) => e.event !== cmd);
    const p = this.waitFor(cmd, timeoutMs);
    this.send(cmd, extra);
    return p;
  }

  send(cmd: string, extra: Record<string, unknown> = {}): void {
    if (this.exitCode === undefined) this.child.stdin!.write(JSON.stringify({ cmd, ...extra }) + '\n');
  }

  private failure(what: string): Error {
    const tail = this.stderrTail.trim().split('\n').slice(-8).join('\n');
    return new Error(`${this.name}: ${what}${tail ? `\n  stderr: ${tail.replace(/\n/g, '\n  ')}` : ''}`);
  }

  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitCode !== undefined) return;
    try { this.child.kill(sig); } catch { /* already gone */ }
    if (this.measuredPid !== this.child.pid) {
      try { process.kill(this.measuredPid, sig); } catch { /* already gone */ }
    }
  }

  /** Asks the runner to quit, then escalates; always resolves once the process has exited. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.send('quit');
    const t1 = setTimeout(() => this.kill('SIGTERM'), graceMs);
    const t2 = setTimeout(() => this.kill('SIGKILL'), graceMs * 2);
    await this.exited;
    clearTimeout(t1);
    clearTimeout(t2);
  }
}

/** Runs a command to completion, capturing output; rejects on non-zero exit. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; allowFail?: boolean; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const t = opts.timeoutMs ? setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs) : undefined;
    c.on('error', (err) => { if (t) clearTimeout(t); if (opts.allowFail) resolve({ code: null, stdout, stderr: String(err) }); else reject(err); });
    c.on('close', (code) => {
      if (t) clearTimeout(t);
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(-500)}`));
      else resolve({ code, stdout, stderr });
    });
    c.stdin.on('error', () => {}); // the command may exit without reading its input
    c.stdin.end(opts.input ?? '');
  });
}
