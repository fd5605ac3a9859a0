import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { lazyModule } from '../util/lazy-module.js';
import { ShoalError } from '../util/errors.js';
import { TrackerServer, type TrackerOptions } from './server.js';

const pinoModule = lazyModule<typeof import('pino')>('pino');

/** Options of `shoal tracker`, as commander hands them over (ports may arrive as strings). */
export interface TrackerCommandOptions {
  httpPort?: number | string | false;
  udpPort?: number | string | false;
  host?: string;
  publicHost?: string;
  redis?: string;
  allow?: string;
  zones?: string;
  interval?: number | string;
  passkey?: string[];
  /** File with one passkey per line (# comments); announces must use /<passkey>/announce. */
  passkeys?: string;
  trustProxy?: boolean;
  /** JSON log lines (pino) instead of short human-readable lines. */
  json?: boolean;
  logLevel?: string;
  /** Debug-level logs. */
  verbose?: boolean;
  /** For tests/embedding: resolve once listening instead of waiting for a signal. */
  signal?: AbortSignal;
  /** Where the announce URLs are printed. Default process.stdout. */
  out?: NodeJS.WritableStream;
}

function port(name: string, v: number | string | false | undefined, dflt: number): number | false {
  if (v === false || v === 'false' || v === 'off') return false;
  if (v === undefined) return dflt;
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(Number.isInteger(n) && n >= 0 && n <= 65535)) throw new ShoalError('EUSAGE', `--${name} must be a port number 0..65535 (0 = any), got "${v}"`);
  return n;
}

async function readPasskeys(path: string): Promise<string[]> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    throw new ShoalError('EUSAGE', `cannot read passkeys file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const keys = text.split(/\r?\n/).map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
  const bad = keys.find((k) => !/^[A-Za-z0-9_-]{1,64}$/.test(k));
  if (bad !== undefined) throw new ShoalError('EUSAGE', `${path}: passkey "${bad.slice(0, 70)}" must be 1-64 characters of A-Z a-z 0-9 _ -`);
  if (keys.length === 0) throw new ShoalError('EUSAGE', `${path}: no passkeys found`);
  return keys;
}

function makeLogger(json: boolean, level: string): Logger {
  const { pino } = pinoModule();
  if (json) return pino({ level, base: { service: 'shoal-tracker' } });
  // Human-readable lines without pulling in pino-pretty: level, message, then the structured fields.
  const names: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
  return pino({ level, base: undefined, timestamp: false }, {
    write(line: string) {
      try {
        const { level: lv, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        process.stderr.write(`${names[lv as number] ?? lv}: ${String(msg)}${extra}\n`);
      } catch {
        process.stderr.write(line);
      }
    },
  });
}

/**
 * `shoal tracker`: starts a TrackerServer, prints its announce URLs, and stops cleanly on
 * SIGINT/SIGTERM (or when `signal` aborts). SIGHUP reloads the allow-list file.
 * Resolves with the (closed) server once it has stopped. Ports default to 6969, the customary tracker port.
 */
export async function runTrackerCommand(opts: TrackerCommandOptions): Promise<TrackerServer> {
  const logger = makeLogger(opts.json === true, opts.logLevel ?? (opts.verbose ? 'debug' : 'info'));
  const passkeys = [...(opts.passkey ?? []), ...(opts.passkeys ? await readPasskeys(opts.passkeys) : [])];
  const interval = opts.interval === undefined ? undefined : Number(opts.interval);
  if (interval !== undefined && !(Number.isFinite(interval) && interval >= 1)) throw new ShoalError('EUSAGE', `--interval must be a number of seconds >= 1, got "${opts.interval}"`);
  const httpPort = port('http-port', opts.httpPort, 6969);
  const udpPort = port('udp-port', opts.udpPort, 6969);
  const to: TrackerOptions = {
    host: opts.host ?? '0.0.0.0',
    httpPort, udpPort, logger,
    ...(opts.publicHost ? { publicHost: opts.publicHost } : {}),
    ...(interval !== undefined ? { interval } : {}),
    ...(opts.redis ? { store: { redisUrl: opts.redis } } : {}),
    ...(opts.allow ? { allowList: opts.allow } : {}),
    ...(opts.zones ? { zones: opts.zones } : {}),
    ...(passkeys.length ? { passkeys } : {}),
    ...(opts.trustProxy ? { trustProxyHeader: true } : {}),
  };
  const server = new TrackerServer(to);
  await server.listen();
  const out = opts.out ?? process.stdout;
  if (httpPort !== false) out.write(`HTTP announce: ${server.announceUrl}\n`);
  if (udpPort !== false) out.write(`UDP announce:  ${server.udpUrl}\n`);

  await new Promise<void>((resolve) => {
    const stop = (why: string): void => {
      process.off('SIGINT', onInt); process.off('SIGTERM', onTerm); process.off('SIGHUP', onHup);
      opts.signal?.removeEventListener('abort', onAbort);
      logger.info({ reason: why }, 'tracker stopping');
      server.close().then(resolve, (err: unknown) => { logger.error({ err }, 'error while closing tracker'); resolve(); });
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    const onAbort = (): void => stop('abort');
    const onHup = (): void => {
      if (!opts.allow) return;
      server.reloadAllowList().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'allow-list reload failed; keeping the old list'));
    };
    process.on('SIGINT', onInt); process.on('SIGTERM', onTerm); process.on('SIGHUP', onHup);
    if (opts.signal?.aborted) stop('abort');
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
  return server;
}
