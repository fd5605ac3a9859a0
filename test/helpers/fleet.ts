// Starts a fleet (controller + agents as CLI processes) for the fleet tests and polls the controller's API.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { startCli, runCli, type CliProcess, type CliResult } from './cli.js';

export interface Fleet {
  dir: string;
  url: string;
  port: number;
  tokenFile: string;
  controller: CliProcess;
  agents: CliProcess[];
  agentArgs: string[][];
}

export async function startController(dir: string, tokenFile: string, port = 0): Promise<{ proc: CliProcess; url: string; port: number }> {
  const proc = startCli(['controller', '--http-port', String(port), '--state', join(dir, 'controller'), '--token-file', tokenFile, '--json']);
  const ev = await proc.waitFor('listening', 15_000);
  return { proc, url: ev['url'] as string, port: ev['port'] as number };
}

export function agentArgs(url: string, tokenFile: string, dir: string, name: string, extra: string[] = []): string[] {
  return ['agent', '--controller', url, '--token-file', tokenFile, '--dir', dir, '--channel', 'app', '--name', name, '--json', ...extra];
}

export async function writeToken(file: string): Promise<void> {
  await fsp.writeFile(file, 'test-token-0123456789abcdef\n', { mode: 0o600 });
}

export async function api<T>(url: string, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const r = await fetch(url + path, { ...init, signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  let body: unknown;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, body: body as T };
}

/** Polls `probe` every 150 ms until it returns a value (not undefined) or `ms` pass. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export function publishCli(args: string[], timeoutMs = 40_000): Promise<CliResult> {
  return runCli(['publish', ...args, '--json'], { timeoutMs });
}
