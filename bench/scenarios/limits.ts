// limits: what this machine allows at best, measured in the same run as the engines: SHA-1 per core
// (every downloaded byte is hashed), a plain loopback TCP copy, and sequential disk writes.
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { rm } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { DIST_BENCH } from '../lib/engines.js';
import { Proc, run } from '../lib/proc.js';

export interface Limits {
  cores: number;
  sha1PerCoreMBps: number;
  /** All cores hashing at once (worker threads): what parallel hashing can really reach. */
  sha1AllCoresMBps: number;
  sha1OpensslMBps: number | null;
  tcpCopyMBps: number | null;
  diskWriteMBps: number | null;
  /** The lowest of SHA-1 per core, TCP copy and disk write: a single download cannot beat it for long. */
  lowestMBps: number;
  lowestIs: string;
}

const HASH_SRC = `
const { createHash, randomFillSync } = require('node:crypto');
const { parentPort, workerData } = require('node:worker_threads');
const buf = randomFillSync(Buffer.allocUnsafe(1 << 20));
let n = 0; const t0 = performance.now();
while (performance.now() - t0 < workerData.ms) { createHash('sha1').update(buf).digest(); n++; }
parentPort.postMessage(n * buf.length / ((performance.now() - t0) / 1000) / 1e6);
`;

function hashWorker(ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(HASH_SRC, { eval: true, workerData: { ms } });
    w.once('message', (m: number) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
}

/**
 * Best of several short windows: on a shared machine other work can steal a window, and a limit
 * is about what the machine can do, so the fastest window is the honest estimate.
 */
export async function sha1PerCore(windows = 6, ms = 400): Promise<number> {
  const buf = Buffer.allocUnsafe(1 << 20).fill(7);
  for (let i = 0; i < 20; i++) createHash('sha1').update(buf).digest(); // warm up
  let best = 0;
  for (let w = 0; w < windows; w++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) { createHash('sha1').update(buf).digest(); n++; }
    best = Math.max(best, (n * buf.length) / ((performance.now() - t0) / 1000) / 1e6);
  }
  return best;
}

export async function sha1AllCores(windows = 3, ms = 600): Promise<number> {
  let best = 0;
  for (let w = 0; w < windows; w++) {
    const rates = await Promise.all(cpus().map(() => hashWorker(ms)));
    best = Math.max(best, rates.reduce((a, b) => a + b, 0));
  }
  return best;
}

async function sha1Openssl(): Promise<number | null> {
  const r = await run('openssl', ['speed', '-seconds', '2', '-bytes', String(1 << 20), '-evp', 'sha1'], { allowFail: true, timeoutMs: 30_000 });
  const m = /^sha1\s+([\d.]+)k\s*$/m.exec(r.stdout);
  return m ? (Number(m[1]) * 1000) / 1e6 : null;
}

async function tcpCopy(file: string, workDir: string): Promise<number> {
  const out = join(workDir, 'tcp-copy.out');
  const sink = new Proc('tcp sink', process.execPath, [join(DIST_BENCH, 'engines/tcp-copy.js'), '--role', 'sink', '--out', out]);
  let source: Proc | undefined;
  try {
    const { port } = await sink.waitFor('ready', 30_000);
    source = new Proc('tcp source', process.execPath, [join(DIST_BENCH, 'engines/tcp-copy.js'), '--role', 'source', '--file', file, '--port', String(port)]);
    const done = await sink.waitFor('done', 600_000);
    return Number(done.bytes) / Number(done.seconds) / 1e6;
  } finally {
    await Promise.all([sink.stop(), source?.stop()]);
    await rm(out, { force: true });
  }
}

async function diskWrite(workDir: string, size: number): Promise<number> {
  const out = join(workDir, 'dd.out');
  const count = Math.max(1, Math.round(size / (1 << 20)));
  const t0 = performance.now();
  try {
    await run('dd', ['if=/dev/zero', `of=${out}`, 'bs=1M', `count=${count}`, 'conv=fsync'], { timeoutMs: 600_000 });
    return (count * (1 << 20)) / ((performance.now() - t0) / 1000) / 1e6;
  } finally {
    await rm(out, { force: true });
  }
}

/** `file` is an existing random file (warm in the page cache) used as the TCP copy's source. */
export async function measureLimits(o: { file?: string; size: number; workDir: string; log: (m: string) => void }): Promise<Limits> {
  const cores = cpus().length;
  o.log('limits: SHA-1 per core ...');
  const perCore = await sha1PerCore();
  const allCores = await sha1AllCores();
  const ossl = await sha1Openssl();
  let tcp: number | null = null;
  if (o.file) {
    o.log('limits: loopback TCP copy ...');
    tcp = await tcpCopy(o.file, o.workDir).catch((err: Error) => { o.log(`limits: TCP copy failed: ${err.message}`); return null; });
  }
  o.log('limits: sequential disk write with fsync ...');
  const disk = await diskWrite(o.workDir, o.size).catch((err: Error) => { o.log(`limits: disk write failed: ${err.message}`); return null; });
  const cands: [string, number | null][] = [['SHA-1 per core', perCore], ['loopback TCP copy', tcp], ['disk write', disk]];
  const valid = cands.filter((c): c is [string, number] => c[1] !== null && Number.isFinite(c[1]));
  const lowest = valid.reduce((a, b) => (b[1] < a[1] ? b : a));
  const l: Limits = { cores, sha1PerCoreMBps: perCore, sha1AllCoresMBps: allCores, sha1OpensslMBps: ossl, tcpCopyMBps: tcp, diskWriteMBps: disk, lowestMBps: lowest[1], lowestIs: lowest[0] };
  o.log(`limits: SHA-1 ${perCore.toFixed(0)} MB/s per core (${allCores.toFixed(0)} all cores, openssl ${ossl?.toFixed(0) ?? '–'}), TCP copy ${tcp?.toFixed(0) ?? '–'} MB/s, disk write ${disk?.toFixed(0) ?? '–'} MB/s`);
  return l;
}
