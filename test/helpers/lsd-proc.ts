// Drives test/helpers/lsd-node.ts inside a LAN namespace: one Node process per host, JSON lines both ways.
import { fileURLToPath } from 'node:url';
import { startProcess, pollUntil, FatalError } from './real-peers/proc.js';
import type { LanHost } from './netns.js';

const SCRIPT = fileURLToPath(new URL('./lsd-node.js', import.meta.url));

export interface LsdNodeConfig {
  port?: number;
  listen?: boolean;
  watch?: string[];
  announce?: string[];
  minIntervalMs?: number;
  repeatMs?: number;
  cookie?: string;
  ipv6?: boolean;
}

export interface LsdEvent { event: string; [k: string]: unknown }

export interface LsdNode {
  readonly pid: number;
  /** The port this node announces (its TCP listener's when `listen`). */
  readonly port: number;
  readonly events: LsdEvent[];
  waitFor(what: string, timeoutMs: number, pred: (e: LsdEvent) => boolean): Promise<LsdEvent>;
  send(cmd: Record<string, unknown>): void;
  stats(timeoutMs?: number): Promise<LsdEvent>;
  logTail(): string;
  stop(): Promise<void>;
}

export async function startLsdNode(host: LanHost, cfg: LsdNodeConfig): Promise<LsdNode> {
  const rest = cfg;
  const [cmd, args] = host.wrap(process.execPath, [SCRIPT, JSON.stringify({ iface: host.ip, ...rest })]);
  // The explicit allowance for LSD inside the sandbox; it only works because iface is in 198.18.0.0/15.
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_SANDBOX: '1', SHOAL_LSD_IN_SANDBOX: '1' };
  const proc = startProcess(`lsd-node ${host.ns}`, cmd, args, { env });
  const events: LsdEvent[] = [];
  proc.onLine((line, stream) => {
    if (stream !== 'stdout' || !line.startsWith('{')) return;
    try { events.push(JSON.parse(line) as LsdEvent); } catch { /* not ours */ }
    if (events.length > 10_000) events.shift();
  });
  const describe = (): string => `lsd-node in ${host.ns} (pid ${proc.pid}) log tail:\n${proc.logTail()}`;
  const waitFor = (what: string, timeoutMs: number, pred: (e: LsdEvent) => boolean): Promise<LsdEvent> =>
    pollUntil(what, timeoutMs, () => {
      const hit = events.find(pred);
      if (hit) return hit;
      const fatal = events.find((e) => e.event === 'fatal');
      if (fatal) throw new FatalError(String(fatal.msg));
      if (proc.exitCode !== undefined) throw new FatalError(`lsd-node exited (code ${proc.exitCode})`);
      return undefined;
    }, describe, 50);
  let ready: LsdEvent;
  try {
    ready = await waitFor(`lsd-node in ${host.ns} to start`, 10_000, (e) => e.event === 'ready');
    if (ready.active !== true) throw new Error(`Lsd in ${host.ns} is not active\n${describe()}`);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  const send = (c: Record<string, unknown>): void => { proc.child.stdin?.write(JSON.stringify(c) + '\n'); };
  return {
    pid: proc.pid,
    port: ready.port as number,
    events,
    waitFor,
    send,
    async stats(timeoutMs = 5000) {
      const n = events.length;
      send({ cmd: 'stats' });
      return waitFor('stats', timeoutMs, (e) => e.event === 'stats' && events.indexOf(e) >= n);
    },
    logTail: () => proc.logTail(),
    stop: () => proc.stop(2000),
  };
}
