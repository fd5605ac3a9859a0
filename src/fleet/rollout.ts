import type { AgentRecord, ChannelView, FloorEstimate, HostView, Release, RolloutSummary } from './types.js';

export interface RolloutOptions {
  /** An agent silent for this long is offline. */
  offlineMs: number;
  now?: number;
}

/** Strips the torrent bytes: views and events carry release facts, not payload metadata. */
export function releaseInfo(r: Release): Omit<Release, 'torrent'> {
  const { torrent: _t, ...rest } = r;
  return rest;
}

/**
 * The rollout of a channel's latest release as hosts report it. A host is done once `current` points at the release;
 * a host whose hook failed counts as failed although the bytes are there.
 */
export function channelView(name: string, releases: Release[], agents: AgentRecord[], opts: RolloutOptions): ChannelView {
  const now = opts.now ?? Date.now();
  const latest = releases[releases.length - 1];
  const hosts: HostView[] = [];
  const summary: RolloutSummary = { subscribed: 0, done: 0, inProgress: 0, failed: 0, waiting: 0, offline: 0 };
  const bytes = { fromPeers: 0, fromOrigin: 0, fromWebSeeds: 0, ...(latest?.originStats ? { originSent: latest.originStats.uploaded } : {}) };
  const doneTimes: number[] = [];
  const zoneMap = new Map<string, { zone: string; rack?: string; done: number; total: number }>();
  let minDown = Infinity;
  let sumUp = 0;
  const rates: number[] = [];

  for (const a of agents) {
    if (!a.channels.includes(name)) continue;
    summary.subscribed++;
    const s = latest ? a.releases.find((r) => r.channel === name && r.version === latest.version) : undefined;
    const online = now - a.lastSeen <= opts.offlineMs;
    const switched = latest !== undefined && a.current[name] === latest.version;
    const h: HostView = {
      id: a.id, host: a.host, state: 'waiting', progress: s?.progress ?? (switched ? 1 : 0),
      fromPeers: s?.fromPeers ?? 0, fromOrigin: s?.fromOrigin ?? 0, fromWebSeeds: s?.fromWebSeeds ?? 0,
      downloadRate: s?.downloadRate ?? 0, lastSeen: a.lastSeen,
      ...(a.zone !== undefined ? { zone: a.zone } : {}), ...(a.rack !== undefined ? { rack: a.rack } : {}),
      ...(a.current[name] !== undefined ? { current: a.current[name] } : {}),
      ...(s?.doneAt !== undefined ? { doneAt: s.doneAt } : {}),
      ...(s?.switchedAt !== undefined ? { switchedAt: s.switchedAt } : {}),
      ...(s?.hookExit !== undefined ? { hookExit: s.hookExit } : {}),
      ...(s?.reason !== undefined ? { reason: s.reason } : {}),
      ...(s?.error !== undefined ? { error: s.error } : {}),
    };
    if (!latest) h.state = online ? 'waiting' : 'offline';
    else if (s?.reason === 'hook-failed' || s?.state === 'failed' || s?.state === 'refused') h.state = 'failed';
    else if (switched) h.state = 'done';
    else if (!online) { h.state = 'offline'; h.reason = 'offline'; }
    else if (s && (s.state === 'downloading' || s.state === 'pending' || s.state === 'done')) h.state = 'in-progress';
    else h.state = 'waiting';
    summary[h.state === 'in-progress' ? 'inProgress' : h.state]++;
    if (h.state === 'in-progress') rates.push(h.downloadRate);
    if (h.state === 'done' && latest && s?.switchedAt !== undefined) doneTimes.push(Math.max(0, (s.switchedAt - latest.createdAt) / 1000));
    bytes.fromPeers += h.fromPeers;
    bytes.fromOrigin += h.fromOrigin;
    bytes.fromWebSeeds += h.fromWebSeeds;
    if (s) {
      if (s.peakDownloadRate > 0) minDown = Math.min(minDown, s.peakDownloadRate);
      sumUp += s.peakUploadRate;
    }
    const key = `${a.zone ?? '-'}/${a.rack ?? ''}`;
    const z = zoneMap.get(key) ?? { zone: a.zone ?? '-', ...(a.rack !== undefined ? { rack: a.rack } : {}), done: 0, total: 0 };
    z.total++;
    if (h.state === 'done') z.done++;
    zoneMap.set(key, z);
    hosts.push(h);
  }
  // A host well below the median rate of those still downloading is a straggler worth naming.
  if (rates.length >= 3) {
    const sorted = [...rates].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    for (const h of hosts) if (h.state === 'in-progress' && !h.reason && h.progress > 0 && h.downloadRate < median / 3) h.reason = 'slow';
  }
  hosts.sort((x, y) => x.host.localeCompare(y.host) || x.id.localeCompare(y.id));
  doneTimes.sort((x, y) => x - y);
  const view: ChannelView = {
    name, versions: releases.map((r) => r.version), summary, hosts,
    zones: [...zoneMap.values()].sort((x, y) => x.zone.localeCompare(y.zone) || (x.rack ?? '').localeCompare(y.rack ?? '')),
    bytes, doneTimes,
  };
  if (latest) view.latest = releaseInfo(latest);
  if (summary.subscribed > 0 && summary.done === summary.subscribed && doneTimes.length > 0) view.completionSeconds = doneTimes[doneTimes.length - 1]!;
  const floor = latest ? kumarRossFloor(latest.size, summary.subscribed, latest.originStats?.peakUploadRate ?? 0, minDown, sumUp) : undefined;
  if (floor) view.floor = floor;
  return view;
}

/**
 * Kumar & Ross's lower bound on the time to get F bytes from one server to N peers:
 * max(F/u_s, F/d_min, N·F/(u_s + Σu_i)). Undefined until the origin's and the hosts' rates are known.
 */
export function kumarRossFloor(size: number, n: number, originUpload: number, minDownload: number, sumUpload: number): FloorEstimate | undefined {
  if (!(size > 0 && n > 0 && originUpload > 0 && Number.isFinite(minDownload) && minDownload > 0)) return undefined;
  const seconds = Math.max(size / originUpload, size / minDownload, (n * size) / (originUpload + sumUpload));
  return { seconds, sizeBytes: size, hosts: n, originUpload, minDownload, sumUpload };
}
