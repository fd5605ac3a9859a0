/** Wire and storage shapes shared by the fleet controller, agents, publisher and dashboard. */

/** What the publisher signs: the exact JSON text travels with the release so no re-encoding can change it. */
export interface Manifest {
  channel: string;
  version: string;
  /** Hex SHA-1 info-hash of the release's torrent. */
  infoHash: string;
  /** ISO time of publication. */
  time: string;
  /** Total payload bytes (for the dashboard and the disk budget). */
  size: number;
  name: string;
}

/** POST /api/releases body. */
export interface ReleaseRequest {
  channel: string;
  version: string;
  /** The .torrent, base64. */
  torrent: string;
  /** Manifest JSON text (what `signature` signs). */
  manifest: string;
  /** Ed25519 signature of the manifest's UTF-8 bytes, base64; absent for unsigned releases. */
  signature?: string;
  /** The publisher's peer port: the controller pairs it with the request's source address as an explicit peer. */
  originPort?: number;
  /** Overrides the source address as the origin's host. */
  originHost?: string;
}

export interface Release {
  channel: string;
  version: string;
  infoHash: string;
  name: string;
  size: number;
  torrent: string;
  manifest: string;
  signature?: string;
  /** "host:port" of the publisher, an explicit peer for agents. */
  origin?: string;
  /** Controller-assigned order within the fleet: a higher seq supersedes a lower one of the same channel. */
  seq: number;
  /** Epoch ms when the controller registered it. */
  createdAt: number;
  /** What the publisher last said about its own seeding. */
  originStats?: { uploaded: number; uploadRate: number; peakUploadRate: number; at: number };
}

export type ReleaseState = 'pending' | 'downloading' | 'done' | 'failed' | 'refused' | 'superseded';

/** Why a host is not done yet (or failed), as the dashboard shows it. */
export type StragglerReason = 'no-peers' | 'slow' | 'disk-full' | 'hook-failed' | 'offline' | 'untrusted' | 'error';

export interface AgentReleaseStatus {
  channel: string;
  version: string;
  state: ReleaseState;
  /** 0..1 */
  progress: number;
  downloaded: number;
  uploaded: number;
  downloadRate: number;
  uploadRate: number;
  peakDownloadRate: number;
  peakUploadRate: number;
  peers: number;
  /** Payload bytes from other agents vs from the origin (publisher) and from web seeds. */
  fromPeers: number;
  fromOrigin: number;
  fromWebSeeds: number;
  /** Payload bytes received and discarded (duplicates, failed pieces): `downloaded - wasted` is what was kept. */
  wasted?: number;
  startedAt?: number;
  doneAt?: number;
  /** Epoch ms when `current` was switched to this release. */
  switchedAt?: number;
  hookExit?: number | null;
  reason?: StragglerReason;
  error?: string;
}

/** POST /api/agents/<id>/report body: a full snapshot, so a restarted controller learns everything from one report. */
export interface AgentReport {
  host: string;
  addresses: string[];
  zone?: string;
  rack?: string;
  labels?: Record<string, string>;
  channels: string[];
  peerPort: number;
  /** channel → version `current` points at. */
  current: Record<string, string>;
  releases: AgentReleaseStatus[];
  disk?: { used: number; budget?: number };
}

export interface AgentRecord extends AgentReport {
  id: string;
  /** Epoch ms of the last report. */
  lastSeen: number;
  /** Source address of the last report. */
  remoteAddress?: string;
}

export type HostState = 'done' | 'in-progress' | 'failed' | 'waiting' | 'offline';

export interface HostView {
  id: string;
  host: string;
  zone?: string;
  rack?: string;
  state: HostState;
  current?: string;
  progress: number;
  fromPeers: number;
  fromOrigin: number;
  fromWebSeeds: number;
  downloadRate: number;
  doneAt?: number;
  switchedAt?: number;
  hookExit?: number | null;
  reason?: StragglerReason;
  error?: string;
  lastSeen: number;
}

export interface RolloutSummary {
  subscribed: number;
  done: number;
  inProgress: number;
  failed: number;
  waiting: number;
  offline: number;
}

export interface FloorEstimate {
  /** Seconds: max(F/u_s, F/d_min, N·F/(u_s+Σu_i)), from reported peak rates (estimates, not measured capacities). */
  seconds: number;
  sizeBytes: number;
  hosts: number;
  originUpload: number;
  minDownload: number;
  sumUpload: number;
}

export interface ChannelView {
  name: string;
  latest?: Omit<Release, 'torrent'>;
  versions: string[];
  summary: RolloutSummary;
  hosts: HostView[];
  /** Per zone (and zone/rack) counts for the latest release. */
  zones: Array<{ zone: string; rack?: string; done: number; total: number }>;
  bytes: { fromPeers: number; fromOrigin: number; fromWebSeeds: number; originSent?: number };
  /** Seconds from registration to the last host done; absent until every subscribed host is done. */
  completionSeconds?: number;
  /** Seconds since registration at which each host finished, sorted (for the "hosts done over time" chart). */
  doneTimes: number[];
  floor?: FloorEstimate;
}
