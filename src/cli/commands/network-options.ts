import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ClientOptions } from '../../engine/types.js';
import { PUBLIC_ROUTERS } from '../../dht/index.js';
import { ShoalError } from '../../util/errors.js';
import { parseSize } from '../output.js';

export interface NetworkOptions {
  port?: string;
  host?: string;
  uploadLimit?: string;
  cache?: string;
  downloadLimit?: string;
  maxPeers?: string;
  maxPeersPerHost?: string;
  originLimit?: string;
  /** commander's --no-lsd / --no-pex set these to false */
  lsd?: boolean;
  pex?: boolean;
  /** commander's --no-dht sets this to false */
  dht?: boolean;
  dhtBootstrap?: string[];
}

/**
 * Where the CLI keeps state that outlives one command (the DHT routing table): `$SHOAL_STATE_DIR`, else
 * `$XDG_STATE_HOME/shoal`, else `~/.local/state/shoal`.
 */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SHOAL_STATE_DIR']) return env['SHOAL_STATE_DIR'];
  if (env['XDG_STATE_HOME']) return join(env['XDG_STATE_HOME'], 'shoal');
  return join(homedir(), '.local', 'state', 'shoal');
}

export function parsePort(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ShoalError('EUSAGE', `${flag} must be a port number 0..65535, got "${text}"`);
  return n;
}

function parseRate(text: string, flag: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new ShoalError('EUSAGE', `${flag}: ${(err as Error).message} (bytes per second)`);
  }
}

export function clientOptions(opts: NetworkOptions, defaultPort: number): ClientOptions {
  const c: ClientOptions = { port: opts.port !== undefined ? parsePort(opts.port, '--port') : defaultPort };
  if (opts.host !== undefined) c.host = opts.host;
  if (opts.lsd === false) c.lsd = false;
  if (opts.dht === false) {
    c.dht = false;
  } else {
    // The public routers unless told otherwise; under SHOAL_SANDBOX=1 the DHT drops them and sends nowhere else.
    const bootstrap = opts.dhtBootstrap && opts.dhtBootstrap.length > 0 ? opts.dhtBootstrap : [...PUBLIC_ROUTERS];
    c.dht = { bootstrap, stateFile: join(stateDir(), 'dht.json') };
  }
  if (opts.pex === false) c.pex = false;
  if (opts.uploadLimit !== undefined) c.uploadLimit = parseRate(opts.uploadLimit, '--upload-limit');
  if (opts.downloadLimit !== undefined) c.downloadLimit = parseRate(opts.downloadLimit, '--download-limit');
  if (opts.originLimit !== undefined) c.originLimit = parseRate(opts.originLimit, '--origin-limit');
  if (opts.cache !== undefined) {
    try {
      c.cacheBytes = parseSize(opts.cache);
    } catch (err) {
      throw new ShoalError('EUSAGE', `--cache: ${(err as Error).message}`);
    }
  }
  if (opts.maxPeers !== undefined) {
    const n = Number(opts.maxPeers);
    if (!Number.isInteger(n) || n < 1) throw new ShoalError('EUSAGE', `--max-peers must be a positive number, got "${opts.maxPeers}"`);
    c.maxPeersPerTorrent = n;
  }
  if (opts.maxPeersPerHost !== undefined) {
    const n = Number(opts.maxPeersPerHost);
    if (!Number.isInteger(n) || n < 1) throw new ShoalError('EUSAGE', `--max-peers-per-host must be a positive number, got "${opts.maxPeersPerHost}"`);
    c.maxConnectionsPerHost = n;
  }
  return c;
}
