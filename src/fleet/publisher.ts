import type { KeyObject } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { Client } from '../engine/index.js';
import type { ClientOptions } from '../engine/types.js';
import { createTorrent } from '../metainfo/index.js';
import { ShoalError } from '../util/errors.js';
import { ControllerApi } from './api-client.js';
import { checkName, signManifest } from './signing.js';
import type { ChannelView, Manifest, Release, ReleaseRequest } from './types.js';

export interface PublishOptions {
  path: string;
  controller: string;
  token?: string;
  channel: string;
  /** Default: UTC time as YYYYMMDD-HHMMSS. */
  version?: string;
  webSeeds?: string[];
  key?: KeyObject;
  /** Stop seeding once this percentage of subscribed hosts is done. Default 100. */
  until?: number;
  client?: ClientOptions;
  /** Address agents should use to reach this publisher (default: the address the controller sees). */
  originHost?: string;
  /** Give up after this long. */
  timeoutMs?: number;
  pieceLength?: number;
  onRegistered?: (r: Omit<Release, 'torrent'>) => void;
  onProgress?: (v: ChannelView) => void;
  signal?: AbortSignal;
}

export interface PublishResult {
  channel: string;
  version: string;
  infoHash: string;
  size: number;
  subscribed: number;
  done: number;
  failed: number;
  /** Seconds from registration until the last host switched `current` (undefined if not all did). */
  timeToLastHost?: number;
  originBytesSent: number;
  /** originBytesSent / size: how many copies the origin served. */
  originCopies: number;
  /** 'complete' | 'until' (the --until target) | 'superseded' | 'stalled' (every host done or failed, some failed) | 'timeout' | 'interrupted' */
  outcome: 'complete' | 'until' | 'superseded' | 'stalled' | 'timeout' | 'interrupted';
  floorSeconds?: number;
}

export function defaultVersion(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/**
 * Hashes `path`, registers it as a release of `channel` (signed when a key is given), and seeds it as the origin
 * until the subscribed hosts have it (or `until` percent of them).
 */
export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const channel = checkName('channel', opts.channel);
  const version = checkName('version', opts.version ?? defaultVersion());
  const until = opts.until ?? 100;
  if (!(until > 0 && until <= 100)) throw new ShoalError('EUSAGE', `--until must be a percentage in (0, 100], got ${opts.until}`);
  const api = new ControllerApi(opts.controller, opts.token);
  const abs = resolve(opts.path);
  const { torrent, meta } = await createTorrent(abs, {
    announce: [api.announceUrl], ...(opts.webSeeds?.length ? { urlList: opts.webSeeds } : {}),
    ...(opts.pieceLength ? { pieceLength: opts.pieceLength } : {}),
  });
  const manifest: Manifest = { channel, version, infoHash: meta.infoHashHex, time: new Date().toISOString(), size: meta.length, name: meta.name };
  const manifestJson = JSON.stringify(manifest);
  const client = new Client({ dht: false, lsd: false, ...opts.client });
  try {
    await client.listen();
    const t = await client.add(meta, { path: dirname(abs), assumeValid: true, seed: true, resumeFile: false });
    if (!t.done) await new Promise<void>((res, rej) => { t.once('done', () => res()); t.once('error', rej); });
    const req: ReleaseRequest = {
      channel, version, torrent: torrent.toString('base64'), manifest: manifestJson, originPort: client.port,
      ...(opts.key ? { signature: signManifest(manifestJson, opts.key) } : {}),
      ...(opts.originHost ? { originHost: opts.originHost } : {}),
    };
    const rel = await api.post<Omit<Release, 'torrent'>>('/api/releases', req, 30_000);
    opts.onRegistered?.(rel);
    const started = Date.now();
    let last: ChannelView | undefined;
    let outcome: PublishResult['outcome'] = 'timeout';
    for (;;) {
      if (opts.signal?.aborted) { outcome = 'interrupted'; break; }
      if (opts.timeoutMs !== undefined && Date.now() - started > opts.timeoutMs) { outcome = 'timeout'; break; }
      const s = t.stats();
      await api.post(`/api/channels/${channel}/releases/${version}/origin`, { uploaded: s.uploaded, uploadRate: s.uploadRate }).catch(() => undefined);
      const v = await api.get<ChannelView>(`/api/channels/${channel}`).catch(() => undefined);
      if (v) {
        last = v;
        opts.onProgress?.(v);
        if (v.latest && v.latest.version !== version) { outcome = 'superseded'; break; }
        const { subscribed, done, failed } = v.summary;
        if (subscribed > 0 && done === subscribed) { outcome = 'complete'; break; }
        if (subscribed > 0 && (done * 100) / subscribed >= until) { outcome = 'until'; break; }
        if (subscribed > 0 && done + failed === subscribed) { outcome = 'stalled'; break; }
      }
      await sleep(1000, opts.signal);
    }
    const sent = t.stats().uploaded;
    await api.post(`/api/channels/${channel}/releases/${version}/origin`, { uploaded: sent, uploadRate: 0 }).catch(() => undefined);
    const sm = last?.summary;
    return {
      channel, version, infoHash: meta.infoHashHex, size: meta.length,
      subscribed: sm?.subscribed ?? 0, done: sm?.done ?? 0, failed: sm?.failed ?? 0,
      ...(last?.doneTimes.length && sm && sm.done === sm.subscribed ? { timeToLastHost: last.doneTimes[last.doneTimes.length - 1]! } : {}),
      originBytesSent: sent, originCopies: sent / meta.length, outcome,
      ...(last?.floor ? { floorSeconds: last.floor.seconds } : {}),
    };
  } finally {
    await client.close();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(res, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); res(); }, { once: true });
  });
}
