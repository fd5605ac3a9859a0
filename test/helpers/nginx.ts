import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePort } from './redis.js';

export const NGINX = '/usr/sbin/nginx';

/** Whether nginx can be used: missing under CI=true fails (CI installs it), elsewhere the test is skipped. */
export function requireNginx(t: TestContext): boolean {
  try { accessSync(NGINX, constants.X_OK); return true; } catch { /* missing */ }
  const msg = `${NGINX} not installed: apt-get install nginx-light`;
  if (process.env.CI === 'true') throw new Error(`${msg} (required under CI=true)`);
  t.skip(msg);
  return false;
}

export interface NginxHandle {
  /** http://127.0.0.1:PORT */
  url: string;
  /** https://127.0.0.1:PORT when started with `tls: true`. */
  httpsUrl?: string;
  /** The self-signed certificate (PEM) the https listener serves, to trust in the client. */
  cert?: string;
  port: number;
  pid: number;
  /** The folder served as `/`. */
  root: string;
  accessLog: string;
  errorLog: string;
  /** Access-log lines, parsed (the log is written per request, unbuffered). */
  requests(): Promise<NginxRequest[]>;
  /** Sum of $body_bytes_sent over the access log: payload bytes nginx served. */
  bodyBytesServed(): Promise<number>;
  stop(): Promise<void>;
}

export interface NginxRequest { connection: number; method: string; uri: string; status: number; bodyBytes: number; bytes: number; range: string }

/**
 * Starts nginx in the foreground (`daemon off; master_process off;`) on a free loopback port, serving `root`,
 * with its config, pid file, logs and temp folders in a fresh temp dir. Stop it with stop() (by PID).
 * `tls: true` adds an https listener with a self-signed certificate for 127.0.0.1 (made with openssl).
 */
export async function startNginx(root: string, opts: { tls?: boolean; netns?: string; host?: string; port?: number } = {}): Promise<NginxHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-nginx-'));
  for (const d of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, 'tmp', d), { recursive: true });
  // In a network namespace (`netns`, run through `ip netns exec`) the server listens on `host`:`port` there, and
  // readiness is its pid file, which nginx writes only after it has bound its listening sockets.
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? await freePort();
  const tlsPort = opts.tls ? await freePort() : 0;
  let cert: string | undefined;
  if (opts.tls) {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr}`);
    cert = await readFile(join(dir, 'cert.pem'), 'utf8');
  }
  const accessLog = join(dir, 'access.log');
  const errorLog = join(dir, 'error.log');
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections 256; }
http {
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  log_format webseed '$connection\\t$request_method\\t$request_uri\\t$status\\t$body_bytes_sent\\t$bytes_sent\\t$http_range';
  access_log ${accessLog} webseed;
  client_body_temp_path ${join(dir, 'tmp', 'client')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  sendfile on;
  keepalive_requests 10000;
  server {
    listen ${host}:${port};
    ${opts.tls ? `listen 127.0.0.1:${tlsPort} ssl; ssl_certificate ${join(dir, 'cert.pem')}; ssl_certificate_key ${join(dir, 'key.pem')};` : ''}
    root ${root};
    location / { }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  // -e: the error log before the config is read (otherwise the compiled-in default would be used).
  const args = ['-p', dir, '-e', errorLog, '-c', confPath];
  const child = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, NGINX, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(NGINX, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  child.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid!;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM');
    const t = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL'); }, 3000);
    await exited;
    clearTimeout(t);
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) {
      const log = await readFile(errorLog, 'utf8').catch(() => '');
      throw new Error(`nginx exited early (${child.exitCode}): ${output}${log}`);
    }
    const up = opts.netns ? await readFile(join(dir, 'nginx.pid'), 'utf8').then(() => true, () => false)
      : await accepts(port) && (!opts.tls || await accepts(tlsPort));
    if (up) {
      const requests = async (): Promise<NginxRequest[]> => {
        const text = await readFile(accessLog, 'utf8').catch(() => '');
        return text.split('\n').filter((l) => l.length > 0).map((l) => {
          const [conn, method, uri, status, bodyBytes, bytes, range] = l.split('\t');
          return { connection: Number(conn), method: method!, uri: uri!, status: Number(status), bodyBytes: Number(bodyBytes), bytes: Number(bytes), range: range === '-' ? '' : range ?? '' };
        });
      };
      const h: NginxHandle = {
        url: `http://${host}:${port}`, port, pid, root, accessLog, errorLog, requests,
        async bodyBytesServed() { return (await requests()).reduce((s, r) => s + r.bodyBytes, 0); },
        stop,
      };
      if (opts.tls) { h.httpsUrl = `https://127.0.0.1:${tlsPort}`; h.cert = cert!; }
      return h;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`nginx did not accept connections on port ${port}: ${output}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => done(true));
  });
}
