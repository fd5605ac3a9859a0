import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/**
 * A child process started by a test: its own process group (so stop() reaches anything it forks),
 * a bounded log tail for error messages, and a guarantee it is killed if the test process exits.
 */
export interface ManagedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exitCode: number | null | undefined; // undefined while running
  logTail(lines?: number): string;
  onLine(fn: (line: string, stream: 'stdout' | 'stderr') => void): void;
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<number>();
const exitHooks = new Set<() => void>();
let hooked = false;

/** Registers a synchronous cleanup to run if the test process exits with it still pending. */
export function onProcessExit(fn: () => void): () => void {
  installHook();
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

function installHook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const pid of live) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    for (const fn of exitHooks) {
      try { fn(); } catch { /* best effort at exit */ }
    }
  });
}

/**
 * util-linux `setpriv --pdeathsig` makes the kernel kill the child if the test process dies without
 * running exit hooks (SIGKILL, crash). Lost for daemons that switch user (opentracker); those rely on the hooks.
 */
const SETPRIV = (() => {
  try { accessSync('/usr/bin/setpriv', constants.X_OK); return '/usr/bin/setpriv'; } catch { return undefined; }
})();

export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: SpawnOptions & { keepLines?: number; keepInTail?: (line: string) => boolean } = {},
): ManagedProcess {
  installHook();
  const { keepLines = 200, keepInTail, ...spawnOpts } = opts;
  const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { ...spawnOpts, detached: true, stdio: spawnOpts.stdio ?? ['pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    child.once('error', () => {}); // reported by the throw below, not as an uncaught 'error' event
    throw new Error(`${name}: could not start ${cmd}`);
  }
  const pid = child.pid;
  live.add(pid);
  const tail: string[] = [];
  const listeners: Array<(line: string, stream: 'stdout' | 'stderr') => void> = [];
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;

  const feed = (stream: 'stdout' | 'stderr') => {
    let partial = '';
    return (chunk: Buffer) => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        if (!keepInTail || keepInTail(line)) {
          tail.push(`[${stream}] ${line}`);
          if (tail.length > keepLines) tail.shift();
        }
        for (const l of listeners) l(line, stream);
      }
    };
  };
  child.stdout?.on('data', feed('stdout'));
  child.stderr?.on('data', feed('stderr'));
  // EPIPE on stdin when the child exits first is expected; it must not crash the test process.
  child.stdin?.on('error', () => {});

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      live.delete(pid);
      exitCode = null;
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      live.delete(pid);
      exitCode = code;
      resolve({ code, signal });
    });
  });

  return {
    pid,
    child,
    exited,
    get exitCode() { return exitCode; },
    logTail(lines = 40) {
      const t = tail.slice(-lines).join('\n');
      return spawnError ? `${t}\n(spawn error: ${spawnError.message})` : t;
    },
    onLine(fn) { listeners.push(fn); },
    async stop(graceMs = 5000) {
      if (exitCode !== undefined) return;
      child.stdin?.end();
      signalGroup(pid, 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => { const h = setTimeout(() => r('timeout'), graceMs); h.unref(); });
      if ((await Promise.race([exited, timer])) === 'timeout') {
        signalGroup(pid, 'SIGKILL');
        await exited;
      }
    },
  };
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(-pid, sig); } catch { /* group already gone */ }
}

/** Thrown from a pollUntil check to stop waiting at once (the thing waited for can no longer happen). */
export class FatalError extends Error {}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, or fails after `timeoutMs`.
 * Other errors thrown by `check` count as "not yet" (e.g. an RPC port still opening) and are reported at timeout.
 */
export async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  describe: () => string = () => '',
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      lastErr = undefined;
    } catch (e) {
      if (e instanceof FatalError) throw new Error(`gave up waiting for ${what}: ${e.message}\n${describe()}`);
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const cause = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}\n${describe()}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs a short command synchronously, throwing with its stderr on failure. */
export function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}
