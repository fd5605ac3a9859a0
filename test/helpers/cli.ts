import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry (dist/src/cli/main.js), found relative to this compiled helper. */
export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the helper had to kill the process because it ran past its time limit. */
  timedOut: boolean;
}

export interface CliOptions {
  cwd?: string;
  /** Milliseconds before the process is killed (SIGKILL by PID). Default 30 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

const live = new Set<ChildProcess>();
let hooked = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!hooked) {
    hooked = true;
    // A failed assertion must not leave a seeding CLI behind.
    process.once('exit', () => {
      for (const c of live) if (c.pid !== undefined) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
    });
  }
}

function spawnCli(args: string[], opts: CliOptions): ChildProcess {
  // stdin ignored: no command may wait for input; NO_COLOR keeps output stable.
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd: opts.cwd, env: { ...process.env, NO_COLOR: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  return child;
}

/** Runs `shoal <args>` to completion (bounded by timeoutMs) and collects its output. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, opts);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }, opts.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    // 'close' (not 'exit') so every byte of stdout/stderr has been read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

export interface JsonEvent { type: string; [key: string]: unknown }

/** A long-running CLI process (`seed`, `tracker`) whose --json lines can be awaited. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly events: JsonEvent[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<{ type: string; resolve: (e: JsonEvent) => void }> = [];
  private partial = '';

  constructor(args: string[], opts: CliOptions = {}) {
    this.child = spawnCli(args, opts);
    if (this.child.pid === undefined) throw new Error('could not start the shoal CLI');
    this.pid = this.child.pid;
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => this.onStdout(s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => resolve({ code, signal }));
    });
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      let ev: JsonEvent;
      try { ev = JSON.parse(line) as JsonEvent; } catch { continue; } // human lines are not events
      this.events.push(ev);
      this.waiters = this.waiters.filter((w) => {
        if (w.type !== ev.type) return true;
        w.resolve(ev);
        return false;
      });
    }
  }

  /** Resolves with the first event of this type; rejects if the process exits first or after timeoutMs. */
  waitFor(type: string, timeoutMs = 20_000): Promise<JsonEvent> {
    const seen = this.events.find((e) => e.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => reject(new Error(`${why} waiting for a "${type}" event\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const waiter = { type, resolve: (e: JsonEvent) => { clearTimeout(timer); resolve(e); } };
      this.waiters.push(waiter);
      void this.exited.then(({ code }) => {
        if (this.waiters.includes(waiter)) { clearTimeout(timer); fail(`the CLI exited (code ${code})`); }
      });
    });
  }

  /**
   * SIGINT (a user's Ctrl-C), then SIGKILL if it has not exited within graceMs.
   * Resolves with how it exited; `killed` says whether SIGKILL was needed.
   */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return { ...(await this.exited), killed: false };
    try { process.kill(this.pid, 'SIGINT'); } catch { /* already gone */ }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs); });
    const first = await Promise.race([this.exited, grace]);
    clearTimeout(timer);
    if (first !== 'late') return { ...first, killed: false };
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* already gone */ }
    return { ...(await this.exited), killed: true };
  }
}

export function startCli(args: string[], opts: CliOptions = {}): CliProcess {
  return new CliProcess(args, opts);
}

/** Lines of stderr that are not blank. */
export function stderrLines(r: { stderr: string }): string[] {
  return r.stderr.split('\n').filter((l) => l.trim() !== '');
}

/** Parses every JSON line of a command's stdout. */
export function jsonLines(stdout: string): JsonEvent[] {
  return stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as JsonEvent);
}
