// Debian's opentracker for engines that need a tracker (aria2). Its build refuses root and only
// serves whitelisted info-hashes: run as nobody, chrooted in a temp dir holding the whitelist.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Proc } from './proc.js';

/** A port that was free a moment ago on `host` (the OS picks it). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Tracker { url: string; stop(): Promise<void> }

export async function startOpentracker(host: string, infoHashesHex: string[]): Promise<Tracker> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-ot-'));
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'whitelist.txt'), infoHashesHex.join('\n') + '\n', { mode: 0o644 });
  const port = await freePort(host);
  const p = new Proc('opentracker', 'opentracker', ['-u', 'nobody', '-d', dir, '-w', '/whitelist.txt', '-i', host, '-p', String(port), '-P', String(port)]);
  const url = `http://${host}:${port}/announce`;
  // Ready once it answers HTTP.
  for (let i = 0; i < 50; i++) {
    const ok = await fetch(`http://${host}:${port}/stats`).then((r) => r.ok || r.status > 0, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 2000).unref();
      await p.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
