import type { ClientOptions } from '../../engine/types.js';
import { ShoalError } from '../../util/errors.js';
import { parseSize } from '../output.js';

export interface NetworkOptions {
  port?: string;
  host?: string;
  uploadLimit?: string;
  downloadLimit?: string;
  maxPeers?: string;
  originLimit?: string;
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
  if (opts.uploadLimit !== undefined) c.uploadLimit = parseRate(opts.uploadLimit, '--upload-limit');
  if (opts.downloadLimit !== undefined) c.downloadLimit = parseRate(opts.downloadLimit, '--download-limit');
  if (opts.originLimit !== undefined) c.originLimit = parseRate(opts.originLimit, '--origin-limit');
  if (opts.maxPeers !== undefined) {
    const n = Number(opts.maxPeers);
    if (!Number.isInteger(n) || n < 1) throw new ShoalError('EUSAGE', `--max-peers must be a positive number, got "${opts.maxPeers}"`);
    c.maxPeersPerTorrent = n;
  }
  return c;
}
