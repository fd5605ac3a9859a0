// An nginx origin for the swarm's web-seed variant: runs in a host's network namespace (`ip netns exec` execs in
// place, so the PID is nginx's own), serves one folder, logs every request's body bytes so origin copies can be
// counted from the access log.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';

export interface Origin { url: string; pid: number; bodyBytesServed(): Promise<number>; stop(): Promise<void> }

export async function startOrigin(root: string, netns: string, host: string, port: number): Promise<Origin> {
  const dir = await mkdtemp(join(tmpdir(), 'shoalbench-nginx-'));
  for (const d of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, 'tmp', d), { recursive: true });
  const accessLog = join(dir, 'access.log');
  const errorLog = join(dir, 'error.log');
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  log_format bytes '$body_bytes_sent';
  access_log ${accessLog} bytes;
  client_body_temp_path ${join(dir, 'tmp', 'client')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  sendfile on;
  keepalive_requests 100000;
  server { listen ${host}:${port}; root ${root}; location / { } }
}
`;
  const confPath = join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  const child = spawn('ip', ['netns', 'exec', netns, NGINX, '-p', dir, '-e', errorLog, '-c', confPath], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 3000);
    await exited;
    clearTimeout(t);
    await rm(dir, { recursive: true, force: true });
  };
  // nginx writes its pid file only after it has bound the listening socket.
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited early: ${await readFile(errorLog, 'utf8').catch(() => '')}`);
    if (await readFile(join(dir, 'nginx.pid'), 'utf8').then(() => true, () => false)) {
      return {
        url: `http://${host}:${port}`,
        pid: child.pid!,
        async bodyBytesServed() {
          const text = await readFile(accessLog, 'utf8').catch(() => '');
          return text.split('\n').reduce((n, l) => n + (Number(l) || 0), 0);
        },
        stop,
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error('nginx did not start within 10 s');
}
