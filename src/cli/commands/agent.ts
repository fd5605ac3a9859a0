import { resolve } from 'node:path';
import { FleetAgent } from '../../fleet/agent.js';
import { readToken } from '../../fleet/auth.js';
import { parsePublicKey } from '../../fleet/signing.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, parseSize, type Output } from '../output.js';
import { clientOptions, parsePort, type NetworkOptions } from './network-options.js';
import { untilSignal } from './run-torrent.js';

export interface AgentCommandOptions extends NetworkOptions {
  controller?: string;
  tokenFile?: string;
  dir?: string;
  channel?: string[];
  zone?: string;
  rack?: string;
  name?: string;
  keep?: string;
  maxDisk?: string;
  onRelease?: string;
  trust?: string;
  apiPort?: string;
}

export async function agentCommand(opts: AgentCommandOptions, out: Output): Promise<number> {
  if (!opts.controller) throw new ShoalError('EUSAGE', '--controller URL is required');
  const channels = opts.channel ?? [];
  if (channels.length === 0) throw new ShoalError('EUSAGE', 'at least one --channel NAME is required');
  const keep = opts.keep === undefined ? 2 : Number(opts.keep);
  if (!Number.isInteger(keep) || keep < 1) throw new ShoalError('EUSAGE', `--keep must be a whole number >= 1, got "${opts.keep}"`);
  let maxDisk: number | undefined;
  if (opts.maxDisk !== undefined) {
    try { maxDisk = parseSize(opts.maxDisk); } catch (e) { throw new ShoalError('EUSAGE', `--max-disk: ${(e as Error).message}`); }
  }
  // No DHT unless asked: a fleet's releases are found through the controller's tracker.
  const client = clientOptions({ ...opts, dht: opts.dht === true ? true : false }, 0);
  const agent = new FleetAgent({
    controller: opts.controller, dir: resolve(opts.dir ?? '.'), channels, keep, client,
    ...(opts.tokenFile ? { token: await readToken(opts.tokenFile) } : {}),
    ...(maxDisk !== undefined ? { maxDisk } : {}),
    ...(opts.zone ? { zone: opts.zone } : {}), ...(opts.rack ? { rack: opts.rack } : {}), ...(opts.name ? { name: opts.name } : {}),
    ...(opts.onRelease ? { onRelease: opts.onRelease } : {}),
    ...(opts.trust ? { trust: parsePublicKey(opts.trust) } : {}),
    ...(opts.apiPort !== undefined ? { apiPort: parsePort(opts.apiPort, '--api-port') } : {}),
  });
  agent.on('warning', (m: string) => out.warn(m));
  agent.on('connected', () => out.event('connected', { controller: opts.controller }, `connected to ${opts.controller}`));
  agent.on('disconnected', (why: string) => out.event('disconnected', { reason: why }, `controller unreachable (${why}); seeding on, retrying`));
  agent.on('release', (channel: string, version: string) => out.event('release', { channel, version }, `${channel}: downloading ${version}`));
  agent.on('switched', (channel: string, version: string) => out.event('switched', { channel, version }, `${channel}: current → ${version}`));
  agent.on('hook', (channel: string, version: string, exit: number | null) => out.event('hook', { channel, version, exit }, `${channel}/${version}: --on-release exited ${exit}`));
  agent.on('refused', (channel: string, version: string, reason: string) => out.event('refused', { channel, version, reason }, `${channel}/${version}: refused: ${reason}`));
  agent.on('failed', (channel: string, version: string, error: string) => out.event('failed', { channel, version, error }, `${channel}/${version}: failed: ${error}`));
  agent.on('superseded', (channel: string, version: string) => out.event('superseded', { channel, version }, `${channel}/${version}: superseded by a newer release`));
  agent.on('deleted', (channel: string, version: string) => out.event('deleted', { channel, version }, `${channel}/${version}: deleted (disk budget)`));
  const signal = untilSignal();
  try {
    await agent.start();
    out.event('started', { id: agent.agentId, peerPort: agent.peerPort, apiPort: agent.apiPort || null, channels },
      `agent ${agent.agentId}: channels ${channels.join(', ')}; peer port ${agent.peerPort}${agent.apiPort ? `; status http://127.0.0.1:${agent.apiPort}/status` : ''}`);
    const why = await signal.promise;
    out.event('stopped', { signal: why }, `agent stopping (${why})`);
    return EXIT.ok;
  } finally {
    signal.dispose();
    await agent.close();
  }
}
