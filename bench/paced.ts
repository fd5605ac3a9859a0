// `node dist/bench/paced.js`: the CPU one downloader spends per block when its blocks arrive paced, a few at a
// time, as they do in a shaped swarm, on an otherwise quiet machine. The swarm scenario measures the same cost with
// 17 processes sharing 2 cores (each wake-up runs cold) and every engine's own seeding mixed in; here the seeds are
// this process, answering from memory on a fixed tick, so what is measured is one engine's receive path: parse,
// copy, hash, write, request more. Loopback only. See bench/README.md ("Paced downloads").
import { Command } from 'commander';
import net from 'node:net';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { infoHashOf, makeTorrent, parseSize, writeRandomFile } from './lib/data.js';
import { pieceMessageHead } from './engines/floor-runner.js';
import { displayName, startRole, type EngineName } from './lib/engines.js';
import { startOpentracker, type Tracker } from './lib/opentracker.js';
import { killAll, type Proc } from './lib/proc.js';

process.env['SHOAL_SANDBOX'] = '1';

const program = new Command()
  .name('paced')
  .description('CPU per block of one downloader fed by paced seeds on loopback')
  .option('--engines <list>', 'downloaders to compare (shoal, libtorrent, libtorrent-default, aria2)', 'shoal,libtorrent-default,aria2')
  .option('--rate <n>', 'blocks (16 KiB) per second the seeds send in all', '1000')
  .option('--tick <ms>', 'the seeds send every this many ms (how many wake-ups a second the downloader gets)', '5')
  .option('--seeds <n>', 'paced seeds (connections)', '4')
  .option('--runs <n>', 'runs per engine, alternated (median reported)', '3')
  .option('--size <size>', 'file size', '256MiB')
  .option('--warm <n>', 'blocks before measuring (start-up and JIT warm-up)', '2000')
  .option('--measure <n>', 'blocks measured', '10000')
  .parse();
const o = program.opts<{ engines: string; rate: string; tick: string; seeds: string; runs: string; size: string; warm: string; measure: string }>();
const engines = o.engines.split(',').map((s) => s.trim()).filter(Boolean) as EngineName[];
for (const e of engines) if (!['shoal', 'libtorrent', 'libtorrent-default', 'aria2'].includes(e)) program.error(`engine ${e} cannot download here`);
const RATE = Number(o.rate), TICK = Number(o.tick), SEEDS = Number(o.seeds), RUNS = Number(o.runs);
const WARM = Number(o.warm), MEASURE = Number(o.measure);
const SIZE = ((): number => { try { return parseSize(o.size); } catch (err) { return program.error(`--size: ${(err as Error).message}`); } })();
const PIECE = 1 << 20;
const BLOCK = 16 * 1024;
const whole = (v: number, min: number): boolean => Number.isInteger(v) && v >= min;
if (!(RATE > 0)) program.error(`--rate must be a positive number of blocks per second, not "${o.rate}"`);
if (!whole(TICK, 1)) program.error(`--tick must be a whole number of milliseconds, at least 1, not "${o.tick}"`);
if (!whole(SEEDS, 1)) program.error(`--seeds must be a whole number, at least 1, not "${o.seeds}"`);
if (!whole(RUNS, 1)) program.error(`--runs must be a whole number, at least 1, not "${o.runs}"`);
if (!whole(WARM, 0)) program.error(`--warm must be a whole number of blocks, not "${o.warm}"`);
if (!whole(MEASURE, 1)) program.error(`--measure must be a whole number of blocks, at least 1, not "${o.measure}"`);
if (SIZE <= 0 || SIZE % PIECE !== 0) program.error(`--size must be a whole number of MiB (the pieces are 1 MiB), not "${o.size}"`);
if ((WARM + MEASURE) * BLOCK > SIZE) program.error(`--warm plus --measure blocks (${WARM + MEASURE}) do not fit in --size`);

const log = (m: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`); };

/** Seeds that answer requests from memory, but only on each tick and only their share of the rate. */
class PacedSeeds {
  /** 16 KiB blocks sent since reset(). */
  sent = 0;
  readonly ports: number[] = [];
  private readonly servers: net.Server[] = [];
  private readonly conns = new Set<{ socket: net.Socket; queue: number[] }>();
  private readonly timer: NodeJS.Timeout;
  private credit = 0;
  private waiters: { at: number; resolve: () => void }[] = [];

  constructor(private readonly data: Buffer, private readonly infoHash: Buffer) {
    this.timer = setInterval(() => this.tick(), TICK);
  }

  async listen(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const server = net.createServer((s) => this.accept(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      this.servers.push(server);
      this.ports.push((server.address() as net.AddressInfo).port);
    }
  }

  reset(): void { this.sent = 0; this.credit = 0; }

  /** Resolves once `n` blocks have been sent since reset(). */
  reached(n: number): Promise<void> {
    return new Promise((resolve) => { if (this.sent >= n) resolve(); else this.waiters.push({ at: n, resolve }); });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const c of this.conns) c.socket.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const conn = { socket, queue: [] as number[] };
    const pieces = SIZE / PIECE;
    let buf: Buffer = Buffer.alloc(0);
    let greeted = false;
    socket.on('data', (d: Buffer) => {
      buf = buf.length > 0 ? Buffer.concat([buf, d]) : d;
      if (!greeted) {
        // Plain handshakes only: aria2 tries an encrypted one first and falls back when it is hung up on.
        if (buf[0] !== 19) { socket.destroy(); return; }
        if (buf.length < 68) return;
        greeted = true;
        const hs = Buffer.alloc(68);
        hs[0] = 19;
        hs.write('BitTorrent protocol', 1, 'latin1');
        this.infoHash.copy(hs, 28);
        randomBytes(20).copy(hs, 48);
        const bits = Buffer.alloc(5 + Math.ceil(pieces / 8), 0xff);
        bits.writeUInt32BE(1 + Math.ceil(pieces / 8), 0);
        bits[4] = 5;
        socket.write(Buffer.concat([hs, bits]));
        buf = buf.subarray(68);
        this.conns.add(conn);
      }
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > 1 << 20) { socket.destroy(); return; }
        if (buf.length < 4 + len) break;
        const id = len > 0 ? buf[4] : -1;
        if (id === 2) socket.write(Buffer.from([0, 0, 0, 1, 1])); // interested: unchoke
        else if (id === 6 && len === 13) conn.queue.push(buf.readUInt32BE(5), buf.readUInt32BE(9), buf.readUInt32BE(13));
        else if (id === 8 && len === 13) {
          const [i, b] = [buf.readUInt32BE(5), buf.readUInt32BE(9)];
          for (let k = 0; k < conn.queue.length; k += 3) if (conn.queue[k] === i && conn.queue[k + 1] === b) { conn.queue.splice(k, 3); break; }
        }
        buf = buf.subarray(4 + len);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => this.conns.delete(conn));
  }

  private tick(): void {
    this.credit += (RATE * TICK) / 1000;
    const live = [...this.conns].filter((c) => c.queue.length > 0);
    if (live.length === 0) { this.credit = Math.min(this.credit, (RATE * TICK) / 1000); return; }
    const share = Math.floor(this.credit / live.length);
    if (share === 0) return;
    for (const c of live) {
      c.socket.cork();
      for (let n = 0; n < share && c.queue.length > 0; n++) {
        const [index, begin, length] = c.queue.splice(0, 3) as [number, number, number];
        const at = index * PIECE + begin;
        if (length > 128 * 1024 || at + length > SIZE) { c.socket.destroy(); break; }
        c.socket.write(pieceMessageHead(index, begin, length));
        c.socket.write(this.data.subarray(at, at + length));
        this.credit -= length / BLOCK;
        this.sent += length / BLOCK;
      }
      c.socket.uncork();
    }
    if (this.waiters.length > 0) {
      const due = this.waiters.filter((w) => this.sent >= w.at);
      this.waiters = this.waiters.filter((w) => this.sent < w.at);
      for (const w of due) w.resolve();
    }
  }
}

interface Run { userUs: number; sysUs: number; blocksPerSec: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no progress within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function oneRun(engine: EngineName, seeds: PacedSeeds, torrent: string, workDir: string, tracker: Tracker | undefined, tag: string): Promise<Run> {
  const dir = await mkdtemp(join(workDir, 'dl-'));
  let p: Proc | undefined;
  try {
    p = startRole({ engine, role: 'leech', torrent, dir, host: '127.0.0.1', port: 0, ...(engine === 'aria2' ? { tracker: tracker!.url } : {}) }, tag);
    await p.waitFor('ready', 120_000);
    seeds.reset();
    p.send('peers', { peers: seeds.ports.map((port) => ({ host: '127.0.0.1', port })) });
    const slack = 60_000 + ((WARM + MEASURE) / RATE) * 2000;
    await withTimeout(seeds.reached(WARM), slack, `${tag} warm-up`);
    const c0 = p.cpuSplit();
    const t0 = performance.now();
    await withTimeout(seeds.reached(WARM + MEASURE), slack, `${tag} measured blocks`);
    const c1 = p.cpuSplit();
    const seconds = (performance.now() - t0) / 1000;
    return { userUs: ((c1.user - c0.user) * 1e6) / MEASURE, sysUs: ((c1.sys - c0.sys) * 1e6) / MEASURE, blocksPerSec: MEASURE / seconds };
  } finally {
    await p?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const workDir = await mkdtemp(join(tmpdir(), 'shoal-paced-'));
  let tracker: Tracker | undefined;
  let seeds: PacedSeeds | undefined;
  try {
    const file = join(workDir, 'data.bin');
    await writeRandomFile(file, SIZE);
    const torrent = join(workDir, 'data.torrent');
    if (!(await stat(torrent).catch(() => undefined))) await makeTorrent(file, torrent, PIECE);
    const infoHashHex = await infoHashOf(torrent);
    seeds = new PacedSeeds(await readFile(file), Buffer.from(infoHashHex, 'hex'));
    await seeds.listen(SEEDS);
    if (engines.includes('aria2')) {
      // aria2 cannot be given a peer's address: it learns the seeds from a tracker they announce to.
      tracker = await startOpentracker('127.0.0.1', [infoHashHex]);
      const ih = Buffer.from(infoHashHex, 'hex').toString('latin1').split('').map((ch) => '%' + ch.charCodeAt(0).toString(16).padStart(2, '0')).join('');
      for (const port of seeds.ports) {
        const peerId = '-PC0001-' + randomBytes(6).toString('hex');
        const r = await fetch(`${tracker.url}?info_hash=${ih}&peer_id=${peerId}&port=${port}&uploaded=0&downloaded=0&left=0&compact=1&event=started`);
        if (!r.ok) throw new Error(`the tracker refused a seed's announce: HTTP ${r.status}`);
        await r.arrayBuffer();
      }
    }
    log(`paced: ${engines.map(displayName).join(', ')}; ${SEEDS} seeds sending ${RATE} blocks/s in all every ${TICK} ms (${(1000 / TICK).toFixed(0)} wake-ups/s); ${WARM} blocks warm-up, ${MEASURE} measured, ${RUNS} runs`);
    const runs = new Map<EngineName, Run[]>(engines.map((e) => [e, []]));
    for (let r = 1; r <= RUNS; r++) {
      for (const e of engines) {
        const tag = `[paced ${displayName(e)} run ${r}/${RUNS}]`;
        const run = await oneRun(e, seeds, torrent, workDir, tracker, tag);
        runs.get(e)!.push(run);
        log(`${tag} ${run.blocksPerSec.toFixed(0)} blocks/s; CPU per block: user ${run.userUs.toFixed(1)} µs, kernel ${run.sysUs.toFixed(1)} µs`);
      }
    }
    const ref = engines.includes('shoal') ? 'shoal' : engines[0]!;
    const total = (e: EngineName): number => median(runs.get(e)!.map((x) => x.userUs + x.sysUs));
    process.stdout.write(`\n| downloader | CPU µs per block: user | kernel | total (median of ${RUNS}) | × ${displayName(ref)} |\n|---|---|---|---|---|\n`);
    for (const e of engines) {
      const rs = runs.get(e)!;
      process.stdout.write(`| ${displayName(e)} | ${median(rs.map((x) => x.userUs)).toFixed(1)} | ${median(rs.map((x) => x.sysUs)).toFixed(1)} | ${total(e).toFixed(1)} | ${(total(e) / total(ref)).toFixed(2)} |\n`);
    }
  } finally {
    await seeds?.close();
    await tracker?.stop();
    killAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  log(`paced: ${(err as Error).message}`);
  killAll();
  process.exit(1);
});
