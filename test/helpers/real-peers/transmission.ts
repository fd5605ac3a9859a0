import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startProcess, pollUntil, FatalError } from './proc.js';
import type { Netns } from './netns.js';

/** Inside its own namespace the ports cannot collide with anything, so they are fixed. */
const PEER_PORT = 51413;
const RPC_PORT = 9091;

export interface TransmissionStatus {
  id: number; hashString: string; name: string;
  /** 0 stopped, 1 check-wait, 2 checking, 3 download-wait, 4 downloading, 5 seed-wait, 6 seeding */
  status: number;
  percentDone: number; leftUntilDone: number; haveValid: number; sizeWhenDone: number;
  error: number; errorString: string; rateDownload: number; rateUpload: number;
  peersConnected: number; uploadedEver: number; downloadedEver: number;
  trackerStats: Array<{ announce: string; lastAnnounceResult: string; lastAnnounceSucceeded: boolean; lastAnnouncePeerCount: number }>;
}

const FIELDS = ['id', 'hashString', 'name', 'status', 'percentDone', 'leftUntilDone', 'haveValid', 'sizeWhenDone', 'error',
  'errorString', 'rateDownload', 'rateUpload', 'peersConnected', 'uploadedEver', 'downloadedEver', 'trackerStats'];

export interface TransmissionTorrent {
  readonly hash: string;
  status(): Promise<TransmissionStatus>;
  /** Resolves once every byte is present and verified (a seed resolves after its check). */
  waitDone(timeoutMs: number): Promise<void>;
}

export interface TransmissionDaemon {
  /** Where other peers reach it (the namespace address and its fixed peer port). */
  readonly host: string;
  readonly peerPort: number;
  readonly rpcUrl: string;
  readonly pid: number;
  add(torrentPath: string, downloadDir: string): Promise<TransmissionTorrent>;
  rpc<T = Record<string, unknown>>(method: string, args?: Record<string, unknown>): Promise<T>;
  logTail(): string;
  stop(): Promise<void>;
}

/**
 * transmission-daemon 3.00 in the foreground inside `netns` (it ignores 127.0.0.0/8 peers), with
 * DHT/LPD/PEX/uTP and speed limits off, so it finds peers only through the torrent's tracker.
 */
export async function startTransmission(opts: { netns: Netns }): Promise<TransmissionDaemon> {
  const host = opts.netns.nsAddr;
  const confDir = await mkdtemp(join(tmpdir(), 'shoal-tr-'));
  const settings = {
    'rpc-enabled': true, 'rpc-bind-address': host, 'rpc-port': RPC_PORT,
    'rpc-authentication-required': false, 'rpc-whitelist-enabled': false, 'rpc-host-whitelist-enabled': false,
    'dht-enabled': false, 'lpd-enabled': false, 'pex-enabled': false, 'utp-enabled': false, 'port-forwarding-enabled': false,
    'peer-port': PEER_PORT, 'peer-port-random-on-start': false, 'bind-address-ipv4': host, 'bind-address-ipv6': '::1',
    // 0 = prefer plaintext: Shoal does not speak MSE, and Transmission then skips the encrypted first try.
    encryption: 0,
    'speed-limit-down-enabled': false, 'speed-limit-up-enabled': false, 'alt-speed-enabled': false,
    'ratio-limit-enabled': false, 'idle-seeding-limit-enabled': false, 'queue-stalled-enabled': false,
    'download-queue-enabled': false, 'seed-queue-enabled': false,
    'download-dir': join(confDir, 'downloads'), 'incomplete-dir-enabled': false, 'watch-dir-enabled': false,
    'start-added-torrents': true, 'blocklist-enabled': false, 'script-torrent-done-enabled': false,
    'cache-size-mb': 4, 'message-level': 2, 'peer-limit-global': 200, 'peer-limit-per-torrent': 60, umask: 18,
  };
  await writeFile(join(confDir, 'settings.json'), JSON.stringify(settings, null, 2));
  const [cmd, args] = opts.netns.wrap('transmission-daemon', ['-f', '-g', confDir, '--log-info']);
  const proc = startProcess('transmission', cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const rpcUrl = `http://${host}:${RPC_PORT}/transmission/rpc`;
  let sessionId = '';

  const rpc = async <T>(method: string, args: Record<string, unknown> = {}): Promise<T> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await post(rpcUrl, JSON.stringify({ method, arguments: args }), { 'X-Transmission-Session-Id': sessionId });
      if (res.status === 409) { sessionId = String(res.headers['x-transmission-session-id'] ?? ''); continue; }
      if (res.status !== 200) throw new Error(`transmission RPC ${method}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
      const reply = JSON.parse(res.body) as { result: string; arguments: T };
      if (reply.result !== 'success') throw new Error(`transmission RPC ${method}: ${reply.result}`);
      return reply.arguments;
    }
    throw new Error(`transmission RPC ${method}: session id handshake failed`);
  };

  const describeDaemon = () => `transmission-daemon (pid ${proc.pid}) log tail:\n${proc.logTail()}`;
  const stop = async () => { await proc.stop(); await rm(confDir, { recursive: true, force: true }); };
  try {
    await pollUntil('transmission RPC', 20_000, async () => {
      if (proc.exitCode !== undefined) throw new FatalError(`transmission-daemon exited (code ${proc.exitCode})`);
      await rpc('session-get');
      return true;
    }, describeDaemon, 100);
  } catch (e) {
    await stop();
    throw e;
  }

  const get = async (hash: string): Promise<TransmissionStatus> => {
    const r = await rpc<{ torrents: TransmissionStatus[] }>('torrent-get', { ids: [hash], fields: FIELDS });
    const t = r.torrents[0];
    if (!t) throw new Error(`transmission does not know torrent ${hash}`);
    return t;
  };

  return {
    host, peerPort: PEER_PORT, rpcUrl, pid: proc.pid,
    rpc,
    logTail: () => proc.logTail(),
    stop,
    async add(torrentPath, downloadDir) {
      await mkdir(downloadDir, { recursive: true });
      const metainfo = (await readFile(torrentPath)).toString('base64');
      const r = await rpc<{ 'torrent-added'?: { hashString: string }; 'torrent-duplicate'?: { hashString: string } }>(
        'torrent-add', { metainfo, 'download-dir': downloadDir, paused: false });
      const hash = (r['torrent-added'] ?? r['torrent-duplicate'])?.hashString;
      if (!hash) throw new Error(`transmission torrent-add returned no hash: ${JSON.stringify(r)}`);
      let last: TransmissionStatus | undefined;
      return {
        hash,
        status: () => get(hash),
        async waitDone(timeoutMs) {
          await pollUntil(`transmission to complete ${hash}`, timeoutMs, async () => {
            if (proc.exitCode !== undefined) throw new FatalError(`transmission-daemon exited (code ${proc.exitCode})`);
            last = await get(hash);
            // error 3 is a local (disk) error: final. 1/2 are tracker warnings/errors: the test's timeout decides.
            if (last.error === 3) throw new FatalError(`transmission local error: ${last.errorString}`);
            const checking = last.status === 1 || last.status === 2;
            return !checking && last.leftUntilDone === 0 && last.haveValid === last.sizeWhenDone && last.sizeWhenDone > 0
              ? true : undefined;
          }, () => `last status: ${JSON.stringify(last)}\n${describeDaemon()}`, 250);
        },
      };
    },
  };
}

function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no reply from ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}
