// Debian's opentracker for engines that need a tracker (aria2) and for the swarm's tracker discovery. Its build
// refuses root and only serves whitelisted info-hashes: run as nobody, chrooted in a temp dir holding the whitelist.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nsHttpGet } from './netns.js';
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

export interface Tracker {
  url: string;
  /** Seeders and leechers the tracker knows for an info-hash (its scrape), or undefined if it did not answer. */
  scrape(infoHashHex: string): Promise<{ complete: number; incomplete: number } | undefined>;
  stop(): Promise<void>;
}

export interface TrackerPlace {
  /** Network namespace to run in (the swarm's); the tracker is then reachable only from the namespaces. */
  netns?: string;
  /** Fixed port (needed in a namespace, where the benchmark cannot ask the OS for a free one); default: a free one. */
  port?: number;
}

const READY_TRIES = 50;
const READY_PAUSE_MS = 100;

export async function startOpentracker(host: string, infoHashesHex: string[], place: TrackerPlace = {}): Promise<Tracker> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-ot-'));
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'whitelist.txt'), infoHashesHex.join('\n') + '\n', { mode: 0o644 });
  const port = place.port ?? (await freePort(host));
  const args = ['-u', 'nobody', '-d', dir, '-w', '/whitelist.txt', '-i', host, '-p', String(port), '-P', String(port)];
  const p = place.netns ? new Proc('opentracker', 'ip', ['netns', 'exec', place.netns, 'opentracker', ...args]) : new Proc('opentracker', 'opentracker', args);
  const base = `http://${host}:${port}`;
  const get = (path: string): Promise<{ status: number; body: string } | undefined> => place.netns
    ? nsHttpGet(place.netns, `${base}${path}`)
    : fetch(`${base}${path}`).then(async (r) => ({ status: r.status, body: await r.text() }), () => undefined);
  const stop = async (): Promise<void> => {
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 2000).unref();
    await p.exited;
    await rm(dir, { recursive: true, force: true });
  };
  // Ready once it answers HTTP (with "Access Denied" outside loopback: /stats is for its admin addresses).
  let ready = false;
  for (let i = 0; i < READY_TRIES && !ready; i++) {
    ready = (await get('/stats')) !== undefined;
    if (!ready) await new Promise((r) => setTimeout(r, READY_PAUSE_MS));
  }
  if (!ready) {
    const why = p.stderr.trim().split('\n').slice(-3).join(' / ');
    await stop();
    throw new Error(`opentracker did not answer on ${base} within ${(READY_TRIES * READY_PAUSE_MS) / 1000} s${why ? `: ${why}` : ''}`);
  }
  return {
    url: `${base}/announce`,
    async scrape(infoHashHex) {
      const q = infoHashHex.replace(/../g, (h) => `%${h}`);
      const res = await get(`/scrape?info_hash=${q}`);
      if (res?.status !== 200) return undefined;
      const body = res.body;
      const complete = /8:completei(\d+)e/.exec(body);
      const incomplete = /10:incompletei(\d+)e/.exec(body);
      return { complete: complete ? Number(complete[1]) : 0, incomplete: incomplete ? Number(incomplete[1]) : 0 };
    },
    stop,
  };
}
