import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect } from 'node:net';

/** True if a redis-server binary is on PATH. */
export function haveRedis(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Why a Redis test is skipped, or throws when CI=true (CI must run it). */
export function redisSkipReason(): string | false {
  if (haveRedis()) return false;
  if (process.env.CI === 'true') throw new Error('redis-server is required in CI: apt-get install redis-server');
  return 'redis-server not installed (apt-get install redis-server)';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisHandle { url: string; port: number; pid: number; stop(): Promise<void> }

/**
 * Starts a throwaway redis-server on a loopback port (no persistence) and waits until it accepts
 * connections. Pass `port` to restart one on the same port after stop().
 */
export async function startRedis(port?: number): Promise<RedisHandle> {
  const p = port ?? await freePort();
  const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  child.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid!;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited early: ${output}`);
    if (await pingOnce(p)) {
      return {
        url: `redis://127.0.0.1:${p}`, port: p, pid,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
          await exited;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(pid, 'SIGKILL');
  throw new Error(`redis-server on port ${p} did not answer PING: ${output}`);
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}
