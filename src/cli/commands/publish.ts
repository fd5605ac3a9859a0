import { readFile } from 'node:fs/promises';
import { readToken } from '../../fleet/auth.js';
import { publish } from '../../fleet/publisher.js';
import { loadPrivateKey } from '../../fleet/signing.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, formatBytes, formatDuration, parseSize, type Output } from '../output.js';
import { clientOptions, type NetworkOptions } from './network-options.js';

export interface PublishCommandOptions extends NetworkOptions {
  controller?: string;
  tokenFile?: string;
  channel?: string;
  releaseVersion?: string;
  webSeed?: string[];
  key?: string;
  until?: string;
  timeout?: string;
  originHost?: string;
  pieceLength?: string;
}

export async function publishCommand(path: string, opts: PublishCommandOptions, out: Output): Promise<number> {
  if (!opts.controller) throw new ShoalError('EUSAGE', '--controller URL is required');
  if (!opts.channel) throw new ShoalError('EUSAGE', '--channel NAME is required');
  const until = opts.until === undefined ? 100 : Number(String(opts.until).replace(/%$/, ''));
  let timeoutMs: number | undefined;
  if (opts.timeout !== undefined) {
    timeoutMs = Number(opts.timeout) * 1000;
    if (!(timeoutMs > 0)) throw new ShoalError('EUSAGE', `--timeout takes seconds, got "${opts.timeout}"`);
  }
  let key;
  if (opts.key) {
    const pem = await readFile(opts.key, 'utf8').catch((e: NodeJS.ErrnoException) => { throw new ShoalError('EUSAGE', `cannot read --key ${opts.key}: ${e.code ?? e.message}`); });
    key = loadPrivateKey(pem, opts.key);
  }
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let lastLine = '';
  try {
    const r = await publish({
      path, controller: opts.controller, channel: opts.channel, until, signal: ac.signal,
      client: clientOptions({ ...opts, dht: false }, 0),
      ...(opts.releaseVersion ? { version: opts.releaseVersion } : {}),
      ...(opts.tokenFile ? { token: await readToken(opts.tokenFile) } : {}),
      ...(opts.webSeed?.length ? { webSeeds: opts.webSeed } : {}),
      ...(key ? { key } : {}), ...(timeoutMs ? { timeoutMs } : {}),
      ...(opts.originHost ? { originHost: opts.originHost } : {}),
      ...(opts.pieceLength ? { pieceLength: parseSize(opts.pieceLength) } : {}),
      onRegistered: (rel) => out.event('registered', { ...rel }, `registered ${rel.channel}/${rel.version} (${formatBytes(rel.size)}, ${rel.infoHash})${rel.signature ? ', signed' : ''}; seeding as origin${rel.origin ? ` at ${rel.origin}` : ''}`),
      onProgress: (v) => {
        const s = v.summary;
        const line = `hosts: ${s.done}/${s.subscribed} done, ${s.inProgress} in progress, ${s.failed} failed, ${s.offline} offline`;
        if (out.json) out.event('progress', { summary: s });
        else if (line !== lastLine) out.line(line);
        lastLine = line;
      },
    });
    const ttl = r.timeToLastHost !== undefined ? formatDuration(r.timeToLastHost) : 'n/a';
    out.event('summary', { ...r },
      `${r.outcome}: ${r.done}/${r.subscribed} hosts done, ${r.failed} failed; time to last host ${ttl}` +
      `${r.floorSeconds !== undefined ? ` (floor est. ${formatDuration(r.floorSeconds)})` : ''}; origin sent ${formatBytes(r.originBytesSent)} = ${r.originCopies.toFixed(2)} copies of ${formatBytes(r.size)}`);
    if (r.outcome === 'complete' || r.outcome === 'until' || r.outcome === 'superseded') return EXIT.ok;
    if (r.outcome === 'interrupted') return EXIT.interrupted;
    return r.outcome === 'timeout' ? EXIT.network : EXIT.failure;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
