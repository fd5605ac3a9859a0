import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

/**
 * A port free for both TCP and UDP on `host` at the time of the call. Another process can still take it
 * before the caller binds; callers that cannot bind port 0 themselves (external clients) accept that race.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no address'))));
      });
    });
    if (await udpFree(host, port)) return port;
  }
  throw new Error(`could not find a free TCP+UDP port on ${host}`);
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}
