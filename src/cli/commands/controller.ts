import { join, resolve } from 'node:path';
import { ensureTokenFile, readTokens } from '../../fleet/auth.js';
import { FleetController } from '../../fleet/controller.js';
import { EXIT, type Output } from '../output.js';
import { parsePort } from './network-options.js';
import { untilSignal } from './run-torrent.js';

export interface ControllerCommandOptions {
  host?: string;
  httpPort?: string;
  publicHost?: string;
  state?: string;
  tokenFile?: string;
  zones?: string;
  redis?: string;
}

export async function controllerCommand(opts: ControllerCommandOptions, out: Output): Promise<number> {
  const httpPort = parsePort(opts.httpPort ?? '7070', '--http-port');
  const stateDir = opts.state ? resolve(opts.state) : undefined;
  let tokenFile = opts.tokenFile ? resolve(opts.tokenFile) : undefined;
  let tokens: string[];
  if (tokenFile) tokens = await readTokens(tokenFile);
  else if (stateDir) {
    // Without --token-file, a token is made once and kept beside the state: writes are never open to anyone.
    const { mkdir } = await import('node:fs/promises');
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    tokenFile = join(stateDir, 'token');
    tokens = await ensureTokenFile(tokenFile);
  } else tokens = [];
  const c = new FleetController({
    host: opts.host ?? '127.0.0.1', httpPort, tokens,
    ...(opts.publicHost ? { publicHost: opts.publicHost } : {}),
    ...(stateDir ? { stateDir } : {}), ...(opts.zones ? { zones: resolve(opts.zones) } : {}),
    ...(opts.redis ? { redisUrl: opts.redis } : {}),
  });
  await c.listen();
  out.event('listening', { url: c.url, announce: c.announceUrl, port: c.port, state: stateDir ?? null, tokenFile: tokenFile ?? null },
    `controller on ${c.url}\n  dashboard: ${c.url}/\n  tracker:   ${c.announceUrl}\n  state:     ${opts.redis ? 'Redis' : stateDir ?? '(memory only: pass --state DIR to keep it)'}\n` +
    `  tokens:    ${tokenFile ?? '(none: the API is read-only; pass --token-file F)'}`);
  const signal = untilSignal();
  try {
    const why = await signal.promise;
    out.event('stopped', { signal: why }, `controller stopping (${why})`);
  } finally {
    signal.dispose();
    await c.close();
  }
  return EXIT.ok;
}
