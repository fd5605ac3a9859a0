/**
 * Start the real Debian `opentracker` on loopback for interop tests.
 * Debian's build refuses to run as root and only serves whitelisted info-hashes, so it runs as `nobody`,
 * chrooted into a temp dir that holds the whitelist.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import type { TestContext } from 'node:test';

export interface RunningOpentracker {
  httpUrl: string;
  udpUrl: string;
  httpPort: number;
  udpPort: number;
  pid: number;
  stop(): Promise<void>;
}

export function opentrackerPath(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'opentracker');
    try { accessSync(p, constants.X_OK); return p; } catch { /* keep looking */ }
  }
  return undefined;
}

/**
 * Returns true when opentracker can be used. Otherwise skips the test with an install hint, or fails it
 * under CI=true, where a missing tracker means a broken environment rather than an optional extra.
 */
export function requireOpentracker(t: TestContext): boolean {
  if (opentrackerPath()) return true;
  if (process.env['CI'] === 'true') throw new Error('opentracker is not installed (CI=true): apt-get install opentracker');
  t.skip('opentracker not installed: apt-get install opentracker');
  return false;
}

async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = exited(child);
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL'); }, 3000);
  await gone;
  clearTimeout(timer);
}

async function tcpReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startOpentracker(opts: { infoHashes: string[] }): Promise<RunningOpentracker> {
  const bin = opentrackerPath();
  if (!bin) throw new Error('opentracker is not installed: apt-get install opentracker');
  const dir = await mkdtemp(join(tmpdir(), 'shoal-opentracker-'));
  // After chroot + setuid nobody the tracker must still be able to read its whitelist.
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'whitelist.txt'), opts.infoHashes.map((h) => h.toLowerCase()).join('\n') + '\n', { mode: 0o644 });
  let lastErr = '';
  // Free ports can be taken by someone else between probing and binding: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const httpPort = await freeTcpPort();
    const udpPort = await freeUdpPort();
    const child = spawn(bin, ['-i', '127.0.0.1', '-p', String(httpPort), '-P', String(udpPort),
      '-d', dir, '-u', 'nobody', '-w', '/whitelist.txt'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', (e) => { output += String(e); });
    const deadline = Date.now() + 5000;
    let ready = false;
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      if (await tcpReady(httpPort)) { ready = true; break; }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (ready) {
      return {
        httpPort, udpPort, pid: child.pid!,
        httpUrl: `http://127.0.0.1:${httpPort}/announce`,
        udpUrl: `udp://127.0.0.1:${udpPort}/announce`,
        stop: async () => {
          await killChild(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await killChild(child);
    lastErr = output.trim();
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`opentracker did not start: ${lastErr || 'no output'}`);
}
