import { mkdtemp, writeFile, chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { get } from 'node:http';
import { startProcess, pollUntil, FatalError } from './proc.js';
import { freePort } from './ports.js';
import { decode, isDict } from '../../../src/bencode/index.js';

export interface RunningTracker { httpUrl: string; udpUrl: string; stop(): Promise<void> }

/**
 * opentracker bound to one address (test/helpers/opentracker.ts covers loopback; this one is for the
 * root side of a test namespace). Debian's build refuses root and only serves whitelisted info-hashes.
 * Ports can be chosen beforehand (freePort) because the torrent must name the tracker before its
 * info-hash, which the whitelist needs, exists.
 */
export async function startOpentrackerOn(opts: { host: string; infoHashes: string[]; httpPort?: number; udpPort?: number }): Promise<RunningTracker> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-ot-'));
  // After chroot and dropping to nobody, opentracker must still read the whitelist.
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'whitelist.txt'), opts.infoHashes.map((h) => h.toLowerCase()).join('\n') + '\n', { mode: 0o644 });
  const httpPort = opts.httpPort ?? await freePort(opts.host);
  const udpPort = opts.udpPort ?? await freePort(opts.host);
  const proc = startProcess('opentracker', 'opentracker',
    ['-u', 'nobody', '-d', dir, '-w', '/whitelist.txt', '-i', opts.host, '-p', String(httpPort), '-P', String(udpPort)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async () => { await proc.stop(); await rm(dir, { recursive: true, force: true }); };
  try {
    await pollUntil('opentracker to accept connections', 10_000, async () => {
      if (proc.exitCode !== undefined) throw new FatalError(`opentracker exited with ${proc.exitCode}`);
      return (await canConnect(opts.host, httpPort)) ? true : undefined;
    }, () => proc.logTail(), 100);
  } catch (e) {
    await stop();
    throw e;
  }
  return { httpUrl: `http://${opts.host}:${httpPort}/announce`, udpUrl: `udp://${opts.host}:${udpPort}/announce`, stop };
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface SwarmCounts { complete: number; incomplete: number; downloaded: number }

/** BEP 48 scrape of one info-hash over HTTP (announce URL's last `/announce` becomes `/scrape`). */
export async function scrapeHttp(announceUrl: string, infoHashHex: string): Promise<SwarmCounts | undefined> {
  const i = announceUrl.lastIndexOf('/announce');
  if (i < 0) throw new Error(`cannot derive a scrape URL from ${announceUrl}`);
  const url = announceUrl.slice(0, i) + '/scrape' + announceUrl.slice(i + '/announce'.length) +
    (announceUrl.includes('?') ? '&' : '?') + 'info_hash=' + escapeBinary(Buffer.from(infoHashHex, 'hex'));
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`scrape HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
  const top = decode(body, { allowUnsortedKeys: true });
  const files = isDict(top) ? top['files'] : undefined;
  if (!isDict(files)) throw new Error(`scrape reply without files: ${body.toString('latin1').slice(0, 200)}`);
  const entry = files[Buffer.from(infoHashHex, 'hex').toString('latin1')];
  if (!isDict(entry)) return undefined;
  const n = (k: string) => { const v = entry[k]; return typeof v === 'number' ? v : 0; };
  return { complete: n('complete'), incomplete: n('incomplete'), downloaded: n('downloaded') };
}

function escapeBinary(b: Buffer): string {
  let s = '';
  for (const byte of b) s += '%' + byte.toString(16).padStart(2, '0');
  return s;
}

/**
 * Waits until the tracker knows at least `seeds` seeders of the torrent, so a leecher started next
 * gets them in its first announce (trackers' re-announce intervals are far longer than a test).
 */
export async function waitForSeeders(announceUrl: string, infoHashHex: string, seeds: number, timeoutMs: number,
  describe: () => string = () => ''): Promise<void> {
  await pollUntil(`${seeds} seeder(s) of ${infoHashHex} at ${announceUrl}`, timeoutMs, async () => {
    const c = await scrapeHttp(announceUrl, infoHashHex);
    return c && c.complete >= seeds ? true : undefined;
  }, describe, 250);
}
