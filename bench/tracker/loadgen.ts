// Tracker load generator: a population of simulated peers spread over many swarms (popularity is
// Zipf-like: a few big swarms, a long tail), each announcing with a realistic event mix. Works over
// BEP 15 UDP (many sockets, a window of requests in flight on each) and HTTP (keep-alive pool).
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { Agent, request } from 'node:http';

export interface Population {
  swarms: Buffer[];
  /** Per peer: swarm index, peer id, port, and whether it is currently seeding / started. */
  peerSwarm: Uint32Array;
  peerIds: Buffer[];
  peerPorts: Uint16Array;
  seeding: Uint8Array;
  started: Uint8Array;
}

export function benchInfoHashes(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => createHash('sha1').update(`shoal-tracker-bench-${i}`).digest());
}

export function makePopulation(swarmCount: number, peerCount: number, seedFraction = 0.3): Population {
  const swarms = benchInfoHashes(swarmCount);
  // Zipf(s=1) over swarms via the inverse CDF on precomputed cumulative weights.
  const cum = new Float64Array(swarmCount);
  let total = 0;
  for (let i = 0; i < swarmCount; i++) { total += 1 / (i + 1); cum[i] = total; }
  const peerSwarm = new Uint32Array(peerCount);
  const peerIds: Buffer[] = [];
  const peerPorts = new Uint16Array(peerCount);
  const seeding = new Uint8Array(peerCount);
  for (let p = 0; p < peerCount; p++) {
    const x = Math.random() * total;
    let lo = 0, hi = swarmCount - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid]! < x) lo = mid + 1; else hi = mid; }
    peerSwarm[p] = lo;
    peerIds.push(Buffer.concat([Buffer.from('-BN0001-'), randomBytes(12)]));
    peerPorts[p] = 1024 + (p % 60000);
    seeding[p] = Math.random() < seedFraction ? 1 : 0;
  }
  return { swarms, peerSwarm, peerIds, peerPorts, seeding, started: new Uint8Array(peerCount) };
}

/** BEP 15 events: 0 none, 1 completed, 2 started, 3 stopped. */
function nextEvent(pop: Population, p: number): number {
  if (!pop.started[p]) { pop.started[p] = 1; return 2; }
  const r = Math.random();
  if (r < 0.02) { pop.started[p] = 0; return 3; }
  if (r < 0.04 && !pop.seeding[p]) { pop.seeding[p] = 1; return 1; }
  if (r < 0.05 && pop.seeding[p]) pop.seeding[p] = 0; // a new torrent version: back to leeching
  return 0;
}

export interface LoadResult {
  seconds: number;
  announces: number;
  errors: number;
  timeouts: number;
  peersReturned: number;
  firstError?: string;
}

export interface UdpLoadOptions { host: string; port: number; seconds: number; sockets?: number; window?: number; numwant?: number }

interface Slot { tid: number; sent: number }

export async function udpLoad(pop: Population, o: UdpLoadOptions): Promise<LoadResult> {
  const nSock = o.sockets ?? 16, window = o.window ?? 24, numwant = o.numwant ?? 50;
  const res: LoadResult = { seconds: 0, announces: 0, errors: 0, timeouts: 0, peersReturned: 0 };
  const peerCount = pop.peerIds.length;
  let running = true;
  const socks: Socket[] = [];
  const tasks: Promise<void>[] = [];
  let tidSeq = 1;

  for (let s = 0; s < nSock; s++) {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 1 << 21, sendBufferSize: 1 << 21 });
    socks.push(sock);
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const inflight = new Map<number, Slot>();
    let connId: Buffer | undefined;
    let connAt = 0;
    let connectTid = 0;
    const pkt = Buffer.alloc(98);
    const sendConnect = (): void => {
      const c = Buffer.alloc(16);
      c.write('0000041727101980', 0, 'hex');
      const tid = tidSeq++ >>> 0;
      c.writeUInt32BE(0, 8); c.writeUInt32BE(tid, 12);
      connectTid = tid;
      inflight.set(tid, { tid, sent: Date.now() });
      sock.send(c, o.port, o.host);
    };
    const sendAnnounce = (): void => {
      const p = Math.floor(Math.random() * peerCount);
      const tid = tidSeq++ >>> 0;
      connId!.copy(pkt, 0);
      pkt.writeUInt32BE(1, 8); pkt.writeUInt32BE(tid, 12);
      pop.swarms[pop.peerSwarm[p]!]!.copy(pkt, 16);
      pop.peerIds[p]!.copy(pkt, 36);
      const ev = nextEvent(pop, p);
      pkt.writeUInt32BE(0, 56); pkt.writeUInt32BE(0, 60);
      pkt.writeUInt32BE(0, 64); pkt.writeUInt32BE(pop.seeding[p] ? 0 : 1 << 20, 68);
      pkt.writeUInt32BE(ev, 80); pkt.writeUInt32BE(0, 84); pkt.writeUInt32BE(p, 88);
      pkt.writeInt32BE(numwant, 92); pkt.writeUInt16BE(pop.peerPorts[p]!, 96);
      inflight.set(tid, { tid, sent: Date.now() });
      sock.send(pkt, o.port, o.host);
    };
    const fill = (): void => {
      if (!running || !connId) return;
      while (inflight.size < window) sendAnnounce();
    };
    sock.on('message', (m) => {
      if (m.length < 8) return;
      const tid = m.readUInt32BE(4);
      if (!inflight.delete(tid)) return;
      const action = m.readUInt32BE(0);
      if (action === 0 && m.length >= 16) { connId = Buffer.from(m.subarray(8, 16)); connAt = Date.now(); connectTid = 0; }
      else if (!running) return;
      else if (action === 1) { res.announces++; res.peersReturned += (m.length - 20) / 6; }
      else if (action === 3) { res.errors++; res.firstError ??= m.subarray(8).toString(); }
      fill();
    });
    // Lost datagrams free their slot after a second; ids are renewed well within their lifetime.
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [tid, sl] of inflight) {
        if (now - sl.sent <= 1000) continue;
        inflight.delete(tid);
        if (tid === connectTid) connectTid = 0; else if (running) res.timeouts++;
      }
      if (connectTid === 0 && (!connId || now - connAt > 45_000)) sendConnect();
      fill();
    }, 200);
    tasks.push(new Promise<void>((resolve) => {
      const stop = setInterval(() => { if (!running) { clearInterval(stop); clearInterval(timer); resolve(); } }, 50);
    }));
    sendConnect();
  }
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  running = false;
  res.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(tasks);
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return res;
}

function pct(b: Buffer): string {
  let s = '';
  for (const x of b) s += '%' + (x < 16 ? '0' : '') + x.toString(16);
  return s;
}

export interface HttpLoadOptions { host: string; port: number; seconds: number; concurrency?: number; numwant?: number }

export async function httpLoad(pop: Population, o: HttpLoadOptions): Promise<LoadResult> {
  const conc = o.concurrency ?? 32, numwant = o.numwant ?? 50;
  const res: LoadResult = { seconds: 0, announces: 0, errors: 0, timeouts: 0, peersReturned: 0 };
  // A connection per announce, like most BitTorrent clients (and opentracker closes connections anyway).
  const agent = new Agent({ keepAlive: false, maxSockets: conc });
  const swarmQ = pop.swarms.map(pct);
  const peerQ = pop.peerIds.map(pct);
  const names = ['', '&event=completed', '&event=started', '&event=stopped'];
  let running = true;
  const one = (): Promise<void> => new Promise((resolve) => {
    const p = Math.floor(Math.random() * pop.peerIds.length);
    const ev = nextEvent(pop, p);
    const path = `/announce?info_hash=${swarmQ[pop.peerSwarm[p]!]}&peer_id=${peerQ[p]}&port=${pop.peerPorts[p]}` +
      `&uploaded=0&downloaded=0&left=${pop.seeding[p] ? 0 : 1048576}&compact=1&numwant=${numwant}${names[ev]}`;
    const req = request({ host: o.host, port: o.port, path, agent, timeout: 5000 }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (d: Buffer) => chunks.push(d));
      r.on('end', () => {
        const body = Buffer.concat(chunks);
        const i = body.indexOf('5:peers');
        if (r.statusCode === 200 && i >= 0) {
          res.announces++;
          const m = /^5:peers(\d+):/.exec(body.subarray(i, i + 20).toString('latin1'));
          if (m) res.peersReturned += Number(m[1]) / 6;
        } else { res.errors++; res.firstError ??= body.toString('latin1').slice(0, 200); }
        resolve();
      });
      r.on('error', () => { res.errors++; resolve(); });
    });
    req.on('timeout', () => { res.timeouts++; req.destroy(); });
    req.on('error', (e) => { res.errors++; res.firstError ??= e.message; resolve(); });
    req.end();
  });
  const worker = async (): Promise<void> => { while (running) await one(); };
  const t0 = process.hrtime.bigint();
  const workers = Array.from({ length: conc }, () => worker());
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  running = false;
  res.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(workers);
  agent.destroy();
  return res;
}
