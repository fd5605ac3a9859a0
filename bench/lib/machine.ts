// Machine facts and versions of every engine, recorded with each result file.
import { readFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './engines.js';
import { run } from './proc.js';

async function firstLine(cmd: string, args: string[], re?: RegExp): Promise<string | null> {
  const r = await run(cmd, args, { allowFail: true, timeoutMs: 10_000 });
  const text = `${r.stdout}\n${r.stderr}`;
  if (re) return re.exec(text)?.[1] ?? null;
  return text.trim().split('\n')[0] || null;
}

function readJsonVersion(path: string): string | null {
  try { return (JSON.parse(readFileSync(path, 'utf8')) as { version?: string }).version ?? null; } catch { return null; }
}

async function dpkgVersion(pkg: string): Promise<string | null> {
  const r = await run('dpkg-query', ['-W', '-f=${Version}', pkg], { allowFail: true, timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : null;
}

export interface Machine { cpuModel: string; cores: number; memoryBytes: number; kernel: string; node: string; os: string | null }

export function machineFacts(): Machine {
  let os: string | null = null;
  if (existsSync('/etc/os-release')) os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  return { cpuModel: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem(), kernel: release(), node: process.version, os };
}

export async function engineVersions(): Promise<Record<string, string | null>> {
  const gitRev = await run('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { allowFail: true });
  const [libtorrent, aria2, mktorrent, transmission, opentracker, openssl] = await Promise.all([
    firstLine('/usr/bin/python3', ['-c', 'import libtorrent as lt; print(lt.__version__)']),
    firstLine('aria2c', ['--version'], /aria2 version (\S+)/),
    firstLine('mktorrent', ['-h'], /mktorrent (\S+)/),
    firstLine('transmission-daemon', ['--version'], /transmission-daemon (\S+(?: \([^)]*\))?)/),
    dpkgVersion('opentracker'),
    firstLine('openssl', ['version'], /OpenSSL (\S+)/),
  ]);
  return {
    shoal: `${readJsonVersion(join(ROOT, 'package.json')) ?? '?'}${gitRev.code === 0 ? ` (${gitRev.stdout.trim()})` : ''}`,
    libtorrent, aria2, mktorrent, transmission, opentracker, openssl,
    webtorrent: readJsonVersion(join(ROOT, 'bench/engines/webtorrent/node_modules/webtorrent/package.json')),
    node: process.version,
  };
}
