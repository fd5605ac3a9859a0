import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { startProcess, pollUntil, FatalError } from './proc.js';

/** lt_peer.py sits next to the .ts source; tsc does not copy it into dist/. */
export const LT_PEER_SCRIPT = (() => {
  const here = fileURLToPath(new URL('./lt_peer.py', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../../../test/helpers/real-peers/lt_peer.py', import.meta.url));
})();

/** The Debian python3-libtorrent module is built for this interpreter only. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface LibtorrentStatus {
  state: string; progress: number; totalDone: number; totalWanted: number;
  downloadRate: number; uploadRate: number; totalUpload: number; totalDownload: number;
  peers: number; seeds: number; isSeeding: boolean; error: string;
  /** Nodes in libtorrent's DHT routing table; present only when started with `dhtBootstrap`. */
  dhtNodes?: number;
}

export interface LibtorrentPeer {
  readonly port: number;
  readonly pid: number;
  readonly infoHash: string;
  /** Resolves once all wanted data is present and verified (for a seed: once its check passed). */
  waitDone(timeoutMs: number): Promise<void>;
  status(): LibtorrentStatus | undefined;
  /** True once a magnet's metadata arrived from a peer (libtorrent's metadata_received_alert). */
  readonly gotMetadata: boolean;
  connect(host: string, port: number): void;
  /** Alerts lt_peer.py reported (the last 500), optionally only those of one type, e.g. 'tracker_reply'. */
  alerts(type?: string): Array<{ type: string; msg: string }>;
  logTail(): string;
  stop(): Promise<void>;
}

export interface LibtorrentOptions {
  mode: 'seed' | 'download';
  /** The .torrent to add; or give `magnet` instead (download mode: the metadata comes from peers, BEP 9). */
  torrentPath?: string;
  magnet?: string;
  /** Local Service Discovery (BEP 14, multicast), repeated every `lsdIntervalSeconds` (default 2). */
  lsd?: boolean;
  lsdIntervalSeconds?: number;
  /** Rate limits in bytes/s, applied to loopback and LAN peers too. */
  uploadLimit?: number;
  downloadLimit?: number;
  /** Turns libtorrent's DHT on, bootstrapped from these 'ip:port' nodes only (off when absent). */
  dhtBootstrap?: string[];
  /** How often libtorrent re-announces/looks up the torrent on the DHT (default 2 s; libtorrent's own is 15 min). */
  dhtAnnounceIntervalSeconds?: number;
  savePath: string;
  /** Listen address; port 0 picks one (reported as `port`). Default 127.0.0.1:0. */
  listen?: string;
  /** Source address for outgoing connections; defaults to the listen IP when that is not a wildcard. */
  outgoing?: string;
  peers?: string[];
  /** Wrap the command (e.g. to run it inside a network namespace). */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
}

export async function startLibtorrent(opts: LibtorrentOptions): Promise<LibtorrentPeer> {
  const listen = opts.listen ?? '127.0.0.1:0';
  const listenIp = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const outgoing = opts.outgoing ?? (listenIp === '0.0.0.0' || listenIp === '::' ? '' : listenIp);
  if ((opts.torrentPath === undefined) === (opts.magnet === undefined)) throw new Error('startLibtorrent: give torrentPath or magnet');
  const source = opts.magnet !== undefined ? ['--magnet', opts.magnet] : ['--torrent', opts.torrentPath!];
  const extra = [
    ...(opts.lsd ? ['--lsd', '--lsd-interval', String(opts.lsdIntervalSeconds ?? 2)] : []),
    ...(opts.uploadLimit ? ['--upload-limit', String(opts.uploadLimit)] : []),
    ...(opts.downloadLimit ? ['--download-limit', String(opts.downloadLimit)] : []),
    ...(opts.dhtBootstrap ?? []).flatMap((b) => ['--dht-bootstrap', b]),
    ...(opts.dhtBootstrap?.length && opts.dhtAnnounceIntervalSeconds ? ['--dht-announce-interval', String(opts.dhtAnnounceIntervalSeconds)] : []),
  ];
  const args = [LT_PEER_SCRIPT, 'run', '--mode', opts.mode, ...source, '--save', opts.savePath, ...extra,
    '--listen', listen, ...(outgoing ? ['--outgoing', outgoing] : []), ...(opts.peers ?? []).flatMap((p) => ['--peer', p])];
  const [cmd, argv] = opts.wrap ? opts.wrap(SYSTEM_PYTHON, args) : [SYSTEM_PYTHON, args];
  const proc = startProcess('libtorrent', cmd, argv, { keepInTail: (l) => !l.startsWith('{"event": "status"') });

  let port = 0;
  let infoHash = '';
  let last: LibtorrentStatus | undefined;
  let done = false;
  let gotMetadata = false;
  let seedProblem: string | undefined;
  const alerts: Array<{ type: string; msg: string }> = [];
  proc.onLine((line, stream) => {
    if (stream !== 'stdout' || !line.startsWith('{')) return;
    let ev: { event: string; [k: string]: unknown };
    try { ev = JSON.parse(line); } catch { return; }
    if (ev.event === 'listening') { port = ev.port as number; infoHash = ev.infoHash as string; }
    else if (ev.event === 'status') last = ev as unknown as LibtorrentStatus;
    else if (ev.event === 'done') done = true;
    else if (ev.event === 'metadata') gotMetadata = true;
    else if (ev.event === 'alert') {
      if (ev.type === 'seed_incomplete') seedProblem = ev.msg as string;
      alerts.push({ type: String(ev.type), msg: String(ev.msg) });
      if (alerts.length > 500) alerts.shift();
    }
  });

  const describe = () => `libtorrent (${opts.mode}, pid ${proc.pid}) last status: ${JSON.stringify(last)}\nlog tail:\n${proc.logTail()}`;
  const checkAlive = () => {
    if (proc.exitCode !== undefined) throw new FatalError(`libtorrent exited early (code ${proc.exitCode})`);
  };

  try {
    await pollUntil('libtorrent to listen', 20_000, () => { checkAlive(); return port > 0 ? true : undefined; }, describe, 50);
    if (port === 0) throw new Error('libtorrent did not report a listen port');
  } catch (e) {
    await proc.stop();
    throw e;
  }

  return {
    port,
    pid: proc.pid,
    infoHash,
    async waitDone(timeoutMs) {
      await pollUntil(`libtorrent ${opts.mode} to complete`, timeoutMs, () => {
        if (done) return true;
        if (seedProblem) throw new FatalError(`libtorrent seed: ${seedProblem}`);
        checkAlive();
        return undefined;
      }, describe, 100);
    },
    status: () => last,
    get gotMetadata() { return gotMetadata; },
    connect(host, p) { proc.child.stdin?.write(JSON.stringify({ cmd: 'connect', host, port: p }) + '\n'); },
    alerts: (type) => (type === undefined ? [...alerts] : alerts.filter((a) => a.type === type)),
    logTail: () => proc.logTail(),
    stop: () => proc.stop(),
  };
}

/** Makes a .torrent with libtorrent (no tracker needed, unlike mktorrent). */
export async function makeTorrentLt(opts: { path: string; out: string; pieceLength: number; announce?: string[] }): Promise<void> {
  const proc = startProcess('lt_peer make', SYSTEM_PYTHON, [LT_PEER_SCRIPT, 'make', '--path', opts.path, '--out', opts.out,
    '--piece-length', String(opts.pieceLength), ...(opts.announce ?? []).flatMap((a) => ['--announce', a])],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => { void proc.stop(); }, 120_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`lt_peer.py make failed (code ${code}):\n${proc.logTail()}`);
}
