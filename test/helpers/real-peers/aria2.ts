import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startProcess, pollUntil, FatalError } from './proc.js';
import { freePort } from './ports.js';

export interface Aria2Status {
  gid: string; status: string; totalLength: string; completedLength: string; verifiedLength?: string;
  verifyIntegrityPending?: string; seeder?: string; numSeeders?: string; connections: string;
  downloadSpeed: string; uploadSpeed: string; uploadLength: string; errorCode?: string; errorMessage?: string;
}

export interface Aria2Torrent {
  readonly gid: string;
  status(): Promise<Aria2Status>;
  /** Resolves once all data is present and verified (a seed resolves after its integrity check). */
  waitDone(timeoutMs: number): Promise<void>;
}

export interface Aria2Daemon {
  readonly host: string;
  readonly peerPort: number;
  readonly pid: number;
  add(torrentPath: string, dir: string): Promise<Aria2Torrent>;
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  logTail(): string;
  stop(): Promise<void>;
}

/**
 * aria2c as a JSON-RPC daemon bound to `host`; it finds peers only through the torrent's tracker
 * (DHT, LPD and PEX off). Seeds forever and verifies existing data before seeding it.
 */
export async function startAria2(opts: { host?: string; extraArgs?: string[] } = {}): Promise<Aria2Daemon> {
  const host = opts.host ?? '127.0.0.1';
  const rpcPort = await freePort('127.0.0.1');
  const secret = randomBytes(12).toString('hex');
  const peerPort = await freePort(host);
  const workDir = await mkdtemp(join(tmpdir(), 'shoal-aria2-'));
  const args = ['--enable-rpc', `--rpc-listen-port=${rpcPort}`, '--rpc-listen-all=false', `--rpc-secret=${secret}`,
    '--seed-ratio=0.0', '--bt-enable-lpd=false', '--enable-dht=false', '--enable-dht6=false', '--enable-peer-exchange=false',
    `--listen-port=${peerPort}`, `--interface=${host}`, '--disable-ipv6=true', `--dir=${workDir}`,
    '--check-integrity=true', '--bt-hash-check-seed=true', '--bt-seed-unverified=false',
    '--bt-require-crypto=false', '--bt-min-crypto-level=plain', '--file-allocation=none',
    '--follow-torrent=false', '--bt-save-metadata=false', '--auto-file-renaming=false', '--allow-overwrite=true',
    '--max-overall-download-limit=0', '--max-overall-upload-limit=0', '--bt-max-peers=0',
    // Re-announce often so a peer that registered after our first announce is still found quickly.
    '--bt-tracker-interval=5', '--bt-stop-timeout=0',
    '--summary-interval=0', '--console-log-level=notice', '--daemon=false',
    `--save-session-interval=0`, '--enable-color=false', ...(opts.extraArgs ?? [])];
  const proc = startProcess('aria2', 'aria2c', args, { stdio: ['ignore', 'pipe', 'pipe'], keepInTail: (l) => l.trim() !== '' });
  let nextId = 1;

  const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: String(nextId++), method, params: [`token:${secret}`, ...params] });
    const res = await post(`http://127.0.0.1:${rpcPort}/jsonrpc`, body);
    const reply = JSON.parse(res) as { result?: T; error?: { code: number; message: string } };
    if (reply.error) throw new Error(`aria2 ${method}: ${reply.error.message}`);
    return reply.result as T;
  };
  const describeDaemon = () => `aria2c (pid ${proc.pid}) log tail:\n${proc.logTail()}`;
  const stop = async () => { await proc.stop(); await rm(workDir, { recursive: true, force: true }); };
  try {
    await pollUntil('aria2 RPC', 20_000, async () => {
      if (proc.exitCode !== undefined) throw new FatalError(`aria2c exited (code ${proc.exitCode})`);
      await rpc('aria2.getVersion');
      return true;
    }, describeDaemon, 100);
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    host, peerPort, pid: proc.pid, rpc, stop,
    logTail: () => proc.logTail(),
    async add(torrentPath, dir) {
      await mkdir(dir, { recursive: true });
      const b64 = (await readFile(torrentPath)).toString('base64');
      const gid = await rpc<string>('aria2.addTorrent', [b64, [], { dir }]);
      let last: Aria2Status | undefined;
      const status = () => rpc<Aria2Status>('aria2.tellStatus', [gid]);
      return {
        gid,
        status,
        async waitDone(timeoutMs) {
          await pollUntil(`aria2 to complete ${gid}`, timeoutMs, async () => {
            if (proc.exitCode !== undefined) throw new FatalError(`aria2c exited (code ${proc.exitCode})`);
            last = await status();
            if (last.status === 'error' || last.status === 'removed') {
              throw new FatalError(`aria2 download ${last.status}: ${last.errorCode ?? ''} ${last.errorMessage ?? ''}`);
            }
            const total = Number(last.totalLength);
            const complete = total > 0 && Number(last.completedLength) === total && last.verifyIntegrityPending !== 'true'
              && last.verifiedLength === undefined;
            return complete && (last.seeder === 'true' || last.status === 'complete') ? true : undefined;
          }, () => `last status: ${JSON.stringify(last)}\n${describeDaemon()}`, 250);
        },
      };
    },
  };
}

function post(url: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no reply from ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}
