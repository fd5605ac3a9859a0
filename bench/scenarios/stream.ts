// stream: play a video while it downloads. One Shoal seed whose upload is shaped to 4× the video's bitrate, one
// streaming client in its own network namespace — `shoal stream` (the CLI) or WebTorrent's own HTTP server — and
// a player's first requests timed against that client's URL: first byte, first decoded frame, first frame after a
// seek to the middle. Every measurement uses a fresh client (empty folder) that has already connected to the seed.
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fmtSize, makeTorrent } from '../lib/data.js';
import { DIST_BENCH, ROOT, startRole } from '../lib/engines.js';
import { createNet, hostIp, type Net } from '../lib/netns.js';
import { Proc, run } from '../lib/proc.js';
import { summarize, type Summary } from '../lib/stats.js';

export type StreamEngine = 'shoal' | 'webtorrent';
/** moov-end: ffmpeg's default MP4 (index after the media data, as many files are); faststart: index first. */
export type Layout = 'moov-end' | 'faststart';
export type Measure = 'firstByte' | 'firstFrame' | 'seek';
export const LAYOUTS: Layout[] = ['moov-end', 'faststart'];
export const MEASURES: Measure[] = ['firstByte', 'firstFrame', 'seek'];

export interface StreamCase {
  layout: Layout; engine: StreamEngine; measure: Measure;
  /** Milliseconds per run. */
  runs: number[];
  /** Client start → connected to the seed, per run (not part of the figure; shows startup cost). */
  setupMs: number[];
  failures: string[];
  summary: Summary; setup: Summary;
}
export interface StreamResult {
  video: { seconds: number; width: number; height: number; fps: number; bitrateBps: number; bytes: Record<Layout, number>; pieceLength: number };
  /** tbf rate of the seed's upload (tc syntax), its burst, and the ratio to the video's bitrate. */
  seedRate: string; seedBurst: string; rateMultiple: number;
  settleMs: number; seekToSeconds: number; runs: number;
  /** ffmpeg on the seed's file on disk, same command and namespace: the floor for firstFrame and seek. */
  local: { layout: Layout; measure: Measure; summary: Summary }[];
  cases: StreamCase[];
}

export interface StreamOptions {
  engines: StreamEngine[]; runs: number; pieceLength: number; settleMs: number; rateMultiple: number;
  seconds: number; workDir: string; log: (m: string) => void;
}

const W = 640;
const H = 360;
const FPS = 30;
const VIDEO_KBPS = 1850;
const AUDIO_KBPS = 128;
/** tbf bucket: a few frames, so the seed cannot send a second's worth at line rate after an idle gap. */
const SEED_BURST = '32kb';
const SEED_PORT: Record<Layout, number> = { 'moov-end': 6881, faststart: 6882 };
const STEP_TIMEOUT_MS = 60_000;

const ffmpegArgs = (input: string, measure: Measure, seekTo: number): string[] => [
  '-nostdin', '-v', 'error', ...(measure === 'seek' ? ['-ss', String(seekTo)] : []), '-i', input,
  '-frames:v', '1', '-f', 'null', '-progress', 'pipe:1', '-nostats', '-',
];

/** Top-level MP4 box types in file order (ftyp, free, mdat, moov …): tells the two layouts apart. */
async function topLevelBoxes(path: string): Promise<string[]> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const out: string[] = [];
    const head = Buffer.alloc(16);
    for (let off = 0; off < size && out.length < 64;) {
      await fh.read(head, 0, 16, off);
      let len = head.readUInt32BE(0);
      if (len === 1) len = Number(head.readBigUInt64BE(8));
      else if (len === 0) len = size - off;
      if (len < 8) throw new Error(`${path}: bad MP4 box at ${off}`);
      out.push(head.toString('latin1', 4, 8));
      off += len;
    }
    return out;
  } finally {
    await fh.close();
  }
}

async function makeVideos(dir: string, seconds: number, log: (m: string) => void): Promise<{ files: Record<Layout, string>; bitrateBps: number; bytes: Record<Layout, number> }> {
  const moovEnd = join(dir, 'video-moov-end.mp4');
  const faststart = join(dir, 'video-faststart.mp4');
  log(`stream: encoding a ${seconds} s ${W}x${H} H.264 + AAC test video with ffmpeg ...`);
  // Light temporal noise keeps x264 near its target bitrate (testsrc2 alone compresses to almost nothing).
  await run('ffmpeg', [
    '-y', '-nostdin', '-v', 'error',
    '-f', 'lavfi', '-i', `testsrc2=size=${W}x${H}:rate=${FPS}:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    '-vf', 'noise=alls=10:allf=t', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
    '-b:v', `${VIDEO_KBPS}k`, '-maxrate', `${VIDEO_KBPS}k`, '-bufsize', `${2 * VIDEO_KBPS}k`, '-g', String(2 * FPS),
    '-c:a', 'aac', '-b:a', `${AUDIO_KBPS}k`, '-shortest', moovEnd,
  ], { timeoutMs: 600_000 });
  await run('ffmpeg', ['-y', '-nostdin', '-v', 'error', '-i', moovEnd, '-c', 'copy', '-movflags', '+faststart', faststart], { timeoutMs: 120_000 });
  const a = await topLevelBoxes(moovEnd);
  const b = await topLevelBoxes(faststart);
  if (!(a.indexOf('moov') > a.indexOf('mdat'))) throw new Error(`expected moov after mdat, got ${a.join(',')}`);
  if (!(b.indexOf('moov') >= 0 && b.indexOf('moov') < b.indexOf('mdat'))) throw new Error(`expected moov before mdat with +faststart, got ${b.join(',')}`);
  const bytes = { 'moov-end': (await stat(moovEnd)).size, faststart: (await stat(faststart)).size };
  return { files: { 'moov-end': moovEnd, faststart }, bitrateBps: (bytes['moov-end'] * 8) / seconds, bytes };
}

/** Runs ffmpeg in the client's namespace; resolves with wall milliseconds from spawn to a decoded frame. */
async function timeFfmpeg(ns: string, input: string, measure: Measure, seekTo: number): Promise<number> {
  const t0 = performance.now();
  const r = await run('ip', ['netns', 'exec', ns, 'ffmpeg', ...ffmpegArgs(input, measure, seekTo)], { timeoutMs: STEP_TIMEOUT_MS, allowFail: true });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`ffmpeg exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
  if (!/^frame=1$/m.test(r.stdout)) throw new Error(`ffmpeg decoded no frame (${r.stdout.trim().split('\n').slice(0, 2).join(' ')})`);
  return ms;
}

async function timeFirstByte(ns: string, url: string): Promise<number> {
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, join(DIST_BENCH, 'engines/http-probe.js'), url, 'bytes=0-'], { timeoutMs: STEP_TIMEOUT_MS + 5000, allowFail: true });
  if (r.code !== 0) throw new Error(`http-probe: ${r.stderr.trim().slice(-300)}`);
  const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { status: number; firstByteMs: number };
  if (o.status !== 206) throw new Error(`expected 206 for Range bytes=0-, got ${o.status}`);
  return o.firstByteMs;
}

function startClient(engine: StreamEngine, ns: string, torrent: string, dir: string, seed: string, tag: string): Proc {
  if (engine === 'shoal') {
    // Shoal's user-facing path: the CLI, as a user would start it (DHT, LSD, PEX off: the seed is given).
    return new Proc(tag, 'ip', ['netns', 'exec', ns, process.execPath, join(ROOT, 'dist/src/cli/main.js'), '--json', '-v', 'stream', torrent,
      '-o', dir, '--peer', seed, '--no-dht', '--no-lsd', '--no-pex'], { eventKey: 'type' });
  }
  return new Proc(tag, 'ip', ['netns', 'exec', ns, process.execPath, join(ROOT, 'bench/engines/webtorrent/stream.mjs'),
    '--torrent', torrent, '--dir', dir, '--peer', seed]);
}

async function stopClient(p: Proc): Promise<void> {
  // The CLI stops on SIGTERM (no stdin protocol); the WebTorrent script reads quit. Both get SIGTERM, then SIGKILL.
  p.send('quit');
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 3000);
  await p.exited;
  clearTimeout(t);
}

/** One measurement with a fresh client: start, wait until it serves and is connected to the seed, settle, measure. */
async function session(o: StreamOptions, net: Net, engine: StreamEngine, layout: Layout, measure: Measure, torrent: string, seekTo: number, tag: string): Promise<{ ms: number; setupMs: number }> {
  const ns = net.hosts[1]!.ns;
  const dir = await mkdtemp(join(o.workDir, 'client-'));
  const t0 = performance.now();
  const p = startClient(engine, ns, torrent, dir, `${hostIp(0)}:${SEED_PORT[layout]}`, tag);
  try {
    const streaming = await p.waitFor('streaming', STEP_TIMEOUT_MS);
    const url = String(streaming.url);
    await p.waitFor('peer', STEP_TIMEOUT_MS, (e) => engine !== 'shoal' || e.detail === 'connected');
    const setupMs = performance.now() - t0;
    await sleep(o.settleMs);
    const ms = measure === 'firstByte' ? await timeFirstByte(ns, url) : await timeFfmpeg(ns, url, measure, seekTo);
    return { ms, setupMs };
  } finally {
    await stopClient(p);
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runStreamScenario(o: StreamOptions): Promise<StreamResult> {
  const seedDir = join(o.workDir, 'stream-seed');
  await mkdir(seedDir, { recursive: true });
  const v = await makeVideos(seedDir, o.seconds, o.log);
  const torrents = {} as Record<Layout, string>;
  for (const l of LAYOUTS) {
    torrents[l] = join(o.workDir, `stream-${l}.torrent`);
    await makeTorrent(v.files[l], torrents[l], o.pieceLength);
  }
  const seedRate = `${Math.round((o.rateMultiple * v.bitrateBps) / 1000)}kbit`;
  const seekTo = Math.floor(o.seconds / 2);
  o.log(`stream: video ${(v.bitrateBps / 1e6).toFixed(2)} Mbit/s, ${fmtSize(o.pieceLength)} pieces; seed upload shaped to ${seedRate} (${o.rateMultiple}× the bitrate), burst ${SEED_BURST}`);
  const result: StreamResult = {
    video: { seconds: o.seconds, width: W, height: H, fps: FPS, bitrateBps: v.bitrateBps, bytes: v.bytes, pieceLength: o.pieceLength },
    seedRate, seedBurst: SEED_BURST, rateMultiple: o.rateMultiple, settleMs: o.settleMs, seekToSeconds: seekTo, runs: o.runs,
    local: [], cases: [],
  };
  // Host 0: the seed (its upload shaped); host 1: the streaming client and the player. Both hosts get the same tbf,
  // which on the client only shapes its requests.
  const net = await createNet(2, seedRate, SEED_BURST);
  const seeds: Proc[] = [];
  try {
    // The same Shoal seed serves both clients, so they compete on the client side only. Initial seeding is off:
    // a lone seed in that mode advertises pieces a few at a time in random order, so the first viewer of a fresh
    // seed waits for piece 0 until it happens to be offered (seconds; the same for every client) — it would measure
    // the seed's distribution policy, not streaming.
    for (const l of LAYOUTS) {
      const s = startRole({
        engine: 'shoal', role: 'seed', torrent: torrents[l], dir: seedDir, host: hostIp(0), port: SEED_PORT[l], netns: net.hosts[0]!.ns, noInitialSeeding: true,
      }, `stream seed ${l}`);
      seeds.push(s);
      await s.waitFor('ready', 120_000);
    }
    for (const layout of LAYOUTS) for (const measure of ['firstFrame', 'seek'] as Measure[]) {
      const xs: number[] = [];
      for (let i = 0; i < o.runs; i++) xs.push(await timeFfmpeg(net.hosts[1]!.ns, v.files[layout], measure, seekTo));
      result.local.push({ layout, measure, summary: summarize(xs) });
    }
    for (const layout of LAYOUTS) for (const measure of MEASURES) for (const engine of o.engines) {
      result.cases.push({ layout, engine, measure, runs: [], setupMs: [], failures: [], summary: summarize([]), setup: summarize([]) });
    }
    // Interleaved, and the engines' order alternates per run, so drifting background load hits both alike.
    for (let r = 1; r <= o.runs; r++) {
      const order = r % 2 ? o.engines : [...o.engines].reverse();
      for (const layout of LAYOUTS) for (const measure of MEASURES) for (const engine of order) {
        const c = result.cases.find((x) => x.layout === layout && x.measure === measure && x.engine === engine)!;
        const tag = `[stream ${layout} ${measure} ${engine} run ${r}/${o.runs}]`;
        try {
          const x = await session(o, net, engine, layout, measure, torrents[layout], seekTo, tag);
          c.runs.push(x.ms);
          c.setupMs.push(x.setupMs);
          o.log(`${tag} ${x.ms.toFixed(0)} ms (client start → connected ${x.setupMs.toFixed(0)} ms)`);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          c.failures.push(msg);
          o.log(`${tag} FAILED: ${msg}`);
        }
      }
    }
  } finally {
    await Promise.all(seeds.map((s) => s.stop()));
    net.teardown();
  }
  for (const c of result.cases) {
    c.summary = summarize(c.runs);
    c.setup = summarize(c.setupMs);
  }
  return result;
}
