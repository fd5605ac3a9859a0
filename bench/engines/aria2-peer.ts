// aria2 runner for the benchmarks (JSON-lines protocol, see bench/README.md). aria2c cannot be given
// a peer by address, so it finds its peers through the tracker in --tracker (addresses in 'peers' are ignored;
// the seed announces there too). PEX stays on, aria2's default, as in the other engines. It runs as a child
// process; the 'ready' event names its PID so CPU and memory are measured on aria2c, not this wrapper.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { freePort } from '../lib/opentracker.js';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    role: { type: 'string' }, torrent: { type: 'string' }, dir: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' },
    strategy: { type: 'string' }, tracker: { type: 'string' },
  },
});
let child: ChildProcess | undefined;
const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
const fail = (msg: string): never => { emit({ event: 'error', message: msg }); child?.kill('SIGKILL'); process.exit(1); };


if (!a.tracker) fail('aria2 needs --tracker');
const port = Number(a.port) || (await freePort(a.host!));
const rpcPort = await freePort('127.0.0.1');
const seed = a.role === 'seed';
const args = [
  '--enable-rpc', `--rpc-listen-port=${rpcPort}`, '--rpc-listen-all=false',
  `--dir=${a.dir}`, `--listen-port=${port}`, `--interface=${a.host}`,
  `--bt-tracker=${a.tracker}`, '--bt-exclude-tracker=*',
  '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false',
  '--seed-ratio=0.0', '--file-allocation=falloc', '--console-log-level=warn', '--summary-interval=0',
  '--auto-save-interval=0', '--bt-save-metadata=false', '--bt-stop-timeout=0',
  // A seed verifies its data first like every other engine; a downloader starts paused until told to go.
  ...(seed ? ['--check-integrity=true'] : ['--pause=true']),
  a.torrent!,
];
const aria = spawn('aria2c', args, { stdio: ['ignore', 'ignore', 'inherit'] });
child = aria;
aria.on('exit', (code) => fail(`aria2c exited with ${code}`));

let id = 0;
function rpc<T>(method: string, params: unknown[] = []): Promise<T> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: String(++id), method, params });
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: rpcPort, path: '/jsonrpc', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => { data += d.toString('utf8'); });
      res.on('end', () => {
        try {
          const j = JSON.parse(data) as { result?: T; error?: { message: string } };
          if (j.error) reject(new Error(j.error.message)); else resolve(j.result as T);
        } catch (err) { reject(err as Error); }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface Status { gid: string; status: string; completedLength: string; totalLength: string; uploadLength: string; verifiedLength?: string; errorMessage?: string }
const keys = ['gid', 'status', 'completedLength', 'totalLength', 'uploadLength', 'verifiedLength', 'errorMessage'];
async function current(): Promise<Status | undefined> {
  const lists = await Promise.all([rpc<Status[]>('aria2.tellActive', [keys]), rpc<Status[]>('aria2.tellWaiting', [0, 10, keys]), rpc<Status[]>('aria2.tellStopped', [0, 10, keys])]);
  return lists.flat()[0];
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let st: Status | undefined;
for (let i = 0; i < 6000 && !st; i++) {
  await sleep(100);
  st = await current().catch(() => undefined);
  if (st && seed && (st.verifiedLength !== undefined || st.completedLength !== st.totalLength || st.totalLength === '0')) st = undefined;
}
if (!st) fail('aria2c did not become ready');
if (st!.status === 'error') fail(`aria2c: ${st!.errorMessage}`);
emit({ event: 'ready', port, pid: aria.pid });
const gid = st!.gid;

let done = false;
if (!seed) {
  const timer = setInterval(() => {
    rpc<Status>('aria2.tellStatus', [gid, keys]).then((s) => {
      if (s.status === 'error') fail(`aria2c: ${s.errorMessage}`);
      if (!done && s.totalLength !== '0' && s.completedLength === s.totalLength) {
        done = true;
        clearInterval(timer);
        emit({ event: 'done', downloaded: Number(s.completedLength) });
      }
    }, () => {});
  }, 50);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { cmd?: string };
  try { cmd = JSON.parse(line) as typeof cmd; } catch { return; }
  if (cmd.cmd === 'peers') {
    if (!seed) rpc('aria2.unpause', [gid]).catch((err: Error) => fail(err.message));
  } else if (cmd.cmd === 'stats') {
    rpc<Status>('aria2.tellStatus', [gid, keys]).then(
      (s) => emit({ event: 'stats', uploaded: Number(s.uploadLength), downloaded: Number(s.completedLength) }),
      (err: Error) => emit({ event: 'stats', error: err.message }),
    );
  } else if (cmd.cmd === 'quit') {
    aria.removeAllListeners('exit');
    aria.on('exit', () => process.exit(0));
    aria.kill('SIGTERM');
    setTimeout(() => { aria.kill('SIGKILL'); process.exit(0); }, 2000).unref();
  }
}).on('close', () => { aria.kill('SIGKILL'); process.exit(0); });
