// soak: one Shoal seed and a few Shoal downloaders (one process each) on loopback for a long time (default 20 min),
// downloaders joining and leaving (finishing and lingering, or killed mid-download and replaced), next to hostile
// peers: a liar (random data), a misaligned-block sender, a wrong-size sender, silent connections flooding the seed
// and keep-alive-only peers holding its slots. Samples every Shoal process's RSS over time and checks every
// completed download byte for byte. Not part of the test suite: run it on purpose (see bench/README.md).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startRole } from '../lib/engines.js';
import type { Proc } from '../lib/proc.js';
import { createTorrent } from '../../src/metainfo/index.js';
import { connectPeer } from '../../src/wire/handshake.js';
import { RawPeer, RawServer, fullBitfield, randomPeerId } from '../../test/helpers/engine/raw-peer.js';

export interface SoakOptions {
  minutes: number;
  downloaders: number;
  size: number;
  pieceLength: number;
  workDir: string;
  log: (m: string) => void;
  /** Seconds between RSS samples. */
  sampleSeconds?: number;
}

export interface SoakResult {
  minutes: number;
  downloaders: number;
  size: number;
  /** Completed downloads, and those whose bytes differed from the source (must be 0). */
  completed: number;
  corrupt: number;
  killed: number;
  started: number;
  /** Per Shoal process: label, RSS samples [seconds since start, KiB]. */
  rss: { label: string; samples: [number, number][] }[];
  seedRss: { firstKiB: number; peakKiB: number; lastKiB: number; growthLastHalfKiB: number };
  hostile: { liarRequests: number; misalignedRequests: number; wrongSizeRequests: number; silentOpened: number; keepAliveOpened: number };
  ok: boolean;
  failure?: string;
}

function rssKiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rand = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const t0 = Date.now();
  const secs = (): number => Math.round((Date.now() - t0) / 100) / 10;
  const endAt = t0 + o.minutes * 60_000;
  await mkdir(o.workDir, { recursive: true });
  const srcDir = join(o.workDir, 'seed');
  await mkdir(srcDir, { recursive: true });
  const name = 'soak.bin';
  const data = randomBytes(o.size);
  await writeFile(join(srcDir, name), data);
  const wantHash = createHash('sha256').update(data).digest('hex');
  const { torrent, meta } = await createTorrent(join(srcDir, name), { pieceLength: o.pieceLength });
  const torrentPath = join(o.workDir, 'soak.torrent');
  await writeFile(torrentPath, torrent);

  const rss = new Map<string, [number, number][]>();
  const procs = new Map<string, Proc>();
  const result: SoakResult = {
    minutes: o.minutes, downloaders: o.downloaders, size: o.size, completed: 0, corrupt: 0, killed: 0, started: 0, rss: [],
    seedRss: { firstKiB: 0, peakKiB: 0, lastKiB: 0, growthLastHalfKiB: 0 },
    hostile: { liarRequests: 0, misalignedRequests: 0, wrongSizeRequests: 0, silentOpened: 0, keepAliveOpened: 0 },
    ok: false,
  };
  const cleanups: (() => unknown)[] = [];
  let stopping = false;

  try {
    const seed = startRole({ engine: 'shoal', role: 'seed', torrent: torrentPath, dir: srcDir, host: '127.0.0.1', port: 0 }, 'seed');
    procs.set('seed', seed);
    cleanups.push(() => seed.stop());
    const seedPort = Number((await seed.waitFor('ready', 120_000))['port']);
    o.log(`soak: seed ready on ${seedPort}; ${o.downloaders} downloader slots for ${o.minutes} min`);

    // Hostile peers that downloaders are told about.
    const fake = (answer: (p: RawPeer, i: number, b: number, l: number) => void): RawServer => new RawServer(meta.infoHash, (p) => p.wire.bitfield(fullBitfield(meta.pieceCount)), {
      hooks: { onInterested: (p) => p.wire.unchoke(), onRequest: answer },
    });
    const pieceLen = (i: number): number => (i === meta.pieceCount - 1 ? meta.lastPieceLength : meta.pieceLength);
    const liar = fake((p, i, b, l) => { result.hostile.liarRequests++; p.wire.piece(i, b, randomBytes(l)); });
    const misaligned = fake((p, i, b, l) => { result.hostile.misalignedRequests++; if (b + 1 + l <= pieceLen(i)) p.wire.piece(i, b + 1, randomBytes(l)); });
    const wrongSize = fake((p, i, b, l) => { result.hostile.wrongSizeRequests++; p.wire.piece(i, b, randomBytes(l >> 1)); });
    const hostileServers = [liar, misaligned, wrongSize];
    const hostilePeers: { host: string; port: number }[] = [];
    for (const [k, srv] of hostileServers.entries()) {
      hostilePeers.push({ host: `127.0.0.${40 + k}`, port: await srv.listen(`127.0.0.${40 + k}`) });
      cleanups.push(() => srv.close());
    }

    // Silent connections and keep-alive-only peers against the seed, each from its own address, reopened.
    stopping = false;
    const keep = (from: string, open: () => Promise<{ destroy(): void; closed: Promise<void> }>): void => {
      const loop = async (): Promise<void> => {
        while (!stopping) {
          try {
            const c = await open();
            cleanups.push(() => c.destroy());
            await c.closed;
          } catch { /* refused */ }
          await sleep(500);
        }
      };
      void loop();
      void from;
    };
    for (let i = 0; i < 40; i++) {
      const from = `127.0.1.${10 + i}`;
      keep(from, () => new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: seedPort, localAddress: from });
        s.on('error', () => undefined);
        const closed = new Promise<void>((r) => s.once('close', () => r()));
        s.once('connect', () => { result.hostile.silentOpened++; resolve({ destroy: () => s.destroy(), closed }); });
        s.once('error', reject);
      }));
    }
    for (let i = 0; i < 20; i++) {
      const from = `127.0.2.${10 + i}`;
      keep(from, async () => {
        const { socket, handshake, rest } = await connectPeer({ host: '127.0.0.1', port: seedPort }, { infoHash: meta.infoHash, peerId: randomPeerId(), timeoutMs: 5000, localAddress: from });
        result.hostile.keepAliveOpened++;
        const p = new RawPeer(socket, handshake, rest, false);
        const timer = setInterval(() => p.sendRaw(Buffer.alloc(4)), 2000);
        const closed = new Promise<void>((r) => socket.once('close', () => { clearInterval(timer); r(); }));
        return { destroy: () => { clearInterval(timer); p.destroy(); }, closed };
      });
    }
    cleanups.push(() => { stopping = true; });

    // RSS sampler.
    const sampler = setInterval(() => {
      for (const [label, p] of procs) {
        const kib = rssKiB(p.child.pid);
        if (kib === undefined) continue;
        let list = rss.get(label);
        if (!list) rss.set(label, list = []);
        list.push([secs(), kib]);
      }
    }, (o.sampleSeconds ?? 5) * 1000);
    cleanups.push(() => clearInterval(sampler));

    // Downloader slots: join, download, linger and leave, or get killed mid-download; a newcomer replaces each.
    interface Dl { label: string; proc: Proc; port: number; dir: string; done: boolean }
    const live = new Set<Dl>();
    let gen = 0;
    const runSlot = async (): Promise<void> => {
      while (Date.now() < endAt - 30_000) {
        const label = `dl${gen++}`;
        const dir = join(o.workDir, label);
        await mkdir(dir, { recursive: true });
        const proc = startRole({ engine: 'shoal', role: 'leech', torrent: torrentPath, dir, host: '127.0.0.1', port: 0 }, label);
        result.started++;
        procs.set(label, proc);
        const port = Number((await proc.waitFor('ready', 60_000))['port']);
        const dl: Dl = { label, proc, port, dir, done: false };
        live.add(dl);
        const others = [...live].filter((x) => x !== dl).map((x) => ({ host: '127.0.0.1', port: x.port }));
        proc.send('peers', { peers: [{ host: '127.0.0.1', port: seedPort }, ...others, ...hostilePeers] });
        const killAfter = Math.random() < 0.3 ? rand(2_000, 20_000) : Infinity;
        const outcome = await Promise.race([
          proc.waitFor('done', Math.max(1000, endAt - Date.now())).then(() => 'done' as const, () => 'timeout' as const),
          sleep(killAfter === Infinity ? 2 ** 31 - 1 : killAfter).then(() => 'kill' as const),
        ]);
        if (outcome === 'done') {
          dl.done = true;
          result.completed++;
          const got = await sha256File(join(dir, name));
          if (got !== wantHash) { result.corrupt++; o.log(`soak: ${label} finished with content that differs`); }
          await sleep(rand(5_000, 30_000));
          await proc.stop();
        } else {
          if (outcome === 'kill') result.killed++;
          proc.kill('SIGKILL');
          await proc.exited;
        }
        live.delete(dl);
        procs.delete(label);
        await rm(dir, { recursive: true, force: true });
        await sleep(rand(1_000, 3_000));
      }
    };
    const slots = Array.from({ length: o.downloaders }, (_, i) => sleep(i * 1500).then(runSlot));
    const progress = setInterval(() => o.log(`soak ${secs()} s: started ${result.started}, completed ${result.completed}, corrupt ${result.corrupt}, killed ${result.killed}, seed RSS ${rssKiB(seed.child.pid)} KiB`), 30_000);
    cleanups.push(() => clearInterval(progress));
    await Promise.all(slots);

    result.rss = [...rss].map(([label, samples]) => ({ label, samples }));
    const seedSamples = rss.get('seed') ?? [];
    if (seedSamples.length > 0) {
      const kib = seedSamples.map((s) => s[1]);
      const half = seedSamples.slice(Math.floor(seedSamples.length / 2)).map((s) => s[1]);
      result.seedRss = { firstKiB: kib[0]!, peakKiB: Math.max(...kib), lastKiB: kib[kib.length - 1]!, growthLastHalfKiB: half[half.length - 1]! - half[0]! };
    }
    result.ok = result.corrupt === 0 && result.completed > 0;
    if (!result.ok) result.failure = result.completed === 0 ? 'no download completed' : `${result.corrupt} download(s) differ from the source`;
  } catch (err) {
    result.failure = (err as Error).message;
  } finally {
    stopping = true;
    for (const c of cleanups.reverse()) { try { await c(); } catch { /* best effort */ } }
    for (const p of procs.values()) p.kill('SIGKILL');
  }
  return result;
}
