import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { requirePeer } from './real-peers/require-peer.js';

export const FFMPEG = '/usr/bin/ffmpeg';
export const FFPROBE = '/usr/bin/ffprobe';

export interface TestVideos {
  dir: string;
  /** H.264 + AAC, 20 s, `-movflags +faststart`: moov before mdat. */
  faststart: string;
  /** The same streams as ffmpeg writes them by default: mdat first, moov at the end. */
  moovAtEnd: string;
  /** The same streams in Matroska. */
  matroska: string;
  durationSeconds: number;
}

let cached: Promise<TestVideos> | null = null;

/**
 * Generated once per test process with the real ffmpeg (never checked in: a fixture we cannot regenerate
 * would hide what it is). Returns null (test skipped) when ffmpeg is missing; under CI=true that fails.
 */
export async function testVideos(t: TestContext): Promise<TestVideos | null> {
  if (!requirePeer(t, FFMPEG, 'ffmpeg') || !requirePeer(t, FFPROBE, 'ffmpeg')) return null;
  cached ??= generate();
  return cached;
}

async function generate(): Promise<TestVideos> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-media-'));
  process.once('exit', () => { void rm(dir, { recursive: true, force: true }); });
  const durationSeconds = 20;
  const moovAtEnd = join(dir, 'moov-at-end.mp4');
  const faststart = join(dir, 'faststart.mp4');
  const matroska = join(dir, 'video.mkv');
  const encoders = await run(FFMPEG, ['-hide_banner', '-encoders']);
  // Debian's ffmpeg has libx264; a build without it still has the native MPEG-4 part 2 encoder.
  const video = encoders.includes('libx264') ? ['-c:v', 'libx264', '-preset', 'ultrafast'] : ['-c:v', 'mpeg4', '-q:v', '5'];
  await run(FFMPEG, ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=duration=${durationSeconds}:size=320x240:rate=25`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${durationSeconds}`,
    ...video, '-g', '50', '-c:a', 'aac', '-shortest', moovAtEnd]);
  await run(FFMPEG, ['-v', 'error', '-y', '-i', moovAtEnd, '-c', 'copy', '-movflags', '+faststart', faststart]);
  await run(FFMPEG, ['-v', 'error', '-y', '-i', moovAtEnd, '-c', 'copy', matroska]);
  return { dir, faststart, moovAtEnd, matroska, durationSeconds };
}

/** Runs a tool to completion (killed after timeoutMs) and returns its stdout; rejects with stderr on failure. */
export function run(bin: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Duration in seconds as ffprobe reads it from a path or URL. */
export async function probeDuration(input: string): Promise<number> {
  const out = await run(FFPROBE, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'default=noprint_wrappers=1:nokey=1', input]);
  return Number(out.trim());
}

/** Like run, for tools that write binary data (decoded frames) to stdout. */
export function runBinary(bin: string, args: string[], timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}
