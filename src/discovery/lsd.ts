// Local Service Discovery (BEP 14): announces our torrents on the local network by UDP multicast
// (239.192.152.143:6771 and [ff15::efc0:988f]:6771) and learns peers from others' announces.
//
// Sandbox (SHOAL_SANDBOX=1, set by tests, CI and benchmarks): LSD stays off (no socket is created, a
// 'warning' says why) unless SHOAL_LSD_IN_SANDBOX=1 is also set AND `interfaceAddress` is inside
// 198.18.0.0/15. The second condition means a leaked SHOAL_LSD_IN_SANDBOX can only ever multicast on a
// namespace interface that a test built, never on the host's real networks. IPv6 is off in the sandbox:
// its sources (link-local) are outside the sandbox ranges, so every peer learned over it would be dropped.
import { EventEmitter } from 'node:events';
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ShoalError } from '../util/errors.js';
import { sandboxed, isSandboxAddress, mayContact } from '../util/sandbox.js';
import type { PeerAddress } from './compact.js';
import type { PeerSink, PeerSource, PeerSourceKind } from '../peers/source.js';

export const LSD_PORT = 6771;
export const LSD_GROUP4 = '239.192.152.143';
export const LSD_GROUP6 = 'ff15::efc0:988f';
export const LSD_HOST4 = `${LSD_GROUP4}:${LSD_PORT}`;
export const LSD_HOST6 = `[${LSD_GROUP6}]:${LSD_PORT}`;
/** BEP 14: "the packet length should not exceed 1400 bytes to avoid MTU/fragmentation problems". */
export const LSD_MAX_SEND = 1400;
/** Receive bound: generous (others may pack more), yet a datagram never costs more than this to parse. */
export const LSD_MAX_PARSE = 4096;
/** BEP 14: "send no more than 1 announce per minute" (per torrent here; several torrents share a datagram). */
export const LSD_DEFAULT_MIN_INTERVAL_MS = 60_000;
/** BEP 14: "send a LSD announce every 5 minutes" while in the swarm. libtorrent uses the same 5 minutes. */
export const LSD_DEFAULT_REANNOUNCE_MS = 5 * 60_000;
const MAX_COOKIE_LENGTH = 64;
const MAX_WATCHED = 100_000;

export interface LsdMessage {
  /** The Host header: LSD_HOST4 or LSD_HOST6. */
  host: string;
  port: number;
  /** Lowercase hex, 40 characters each, in message order, without duplicates. */
  infoHashes: string[];
  cookie?: string;
}

function bad(why: string): ShoalError {
  return new ShoalError('EWIRE', `LSD message: ${why}`);
}

function hexOf(ih: Buffer | string): string {
  if (typeof ih === 'string') {
    if (!/^[0-9a-fA-F]{40}$/.test(ih)) throw new ShoalError('EUSAGE', `LSD: info-hash must be 40 hex characters, got ${JSON.stringify(ih)}`);
    return ih.toLowerCase();
  }
  if (ih.length !== 20) throw new ShoalError('EUSAGE', `LSD: info-hash must be 20 bytes, got ${ih.length}`);
  return ih.toString('hex');
}

function checkCookie(cookie: string): void {
  if (cookie.length === 0 || cookie.length > MAX_COOKIE_LENGTH || !/^[\x21-\x7e]+$/.test(cookie)) {
    throw new ShoalError('EUSAGE', `LSD: cookie must be 1-${MAX_COOKIE_LENGTH} visible ASCII characters`);
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ShoalError('EUSAGE', `LSD: port must be 1-65535, got ${port}`);
}

export interface BuildLsdOptions {
  port: number;
  infoHashes: Array<Buffer | string>;
  cookie?: string;
  /** Which group the datagram is for (sets the Host header). Default 4. */
  family?: 4 | 6;
}

/** One announce datagram. Throws EUSAGE when it would exceed LSD_MAX_SEND bytes; packLsdMessages splits. */
export function buildLsdMessage(opts: BuildLsdOptions): Buffer {
  checkPort(opts.port);
  if (opts.infoHashes.length === 0) throw new ShoalError('EUSAGE', 'LSD: an announce needs at least one info-hash');
  if (opts.cookie !== undefined) checkCookie(opts.cookie);
  let s = `BT-SEARCH * HTTP/1.1\r\nHost: ${opts.family === 6 ? LSD_HOST6 : LSD_HOST4}\r\nPort: ${opts.port}\r\n`;
  for (const ih of opts.infoHashes) s += `Infohash: ${hexOf(ih)}\r\n`;
  if (opts.cookie !== undefined) s += `cookie: ${opts.cookie}\r\n`;
  s += '\r\n\r\n'; // header end plus the empty line BEP 14 shows (libtorrent sends it too)
  if (s.length > LSD_MAX_SEND) {
    throw new ShoalError('EUSAGE', `LSD: announce of ${opts.infoHashes.length} info-hashes is ${s.length} bytes (max ${LSD_MAX_SEND}); use packLsdMessages`);
  }
  return Buffer.from(s, 'latin1');
}

/** As few datagrams (each at most LSD_MAX_SEND bytes) as carry all `infoHashes`. */
export function packLsdMessages(opts: BuildLsdOptions): Buffer[] {
  const all = opts.infoHashes.map(hexOf);
  if (all.length === 0) return [];
  const fixed = buildLsdMessage({ ...opts, infoHashes: [all[0]!] }).length - 52; // 52 = "Infohash: " + 40 + CRLF
  const perMessage = Math.floor((LSD_MAX_SEND - fixed) / 52);
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += perMessage) out.push(buildLsdMessage({ ...opts, infoHashes: all.slice(i, i + perMessage) }));
  return out;
}

/**
 * Strict parse of one datagram: `BT-SEARCH * HTTP/1.1`, CRLF line ends, exactly one Host (one of the two
 * LSD groups) and one Port (1-65535, decimal), one or more Infohash (40 hex), at most one cookie, other headers
 * ignored (BEP 14 asks for forward compatibility), nothing but empty lines after the header block.
 * Throws ShoalError EWIRE saying what is wrong.
 */
export function parseLsdMessage(buf: Uint8Array): LsdMessage {
  if (buf.length > LSD_MAX_PARSE) throw bad(`${buf.length} bytes is over the ${LSD_MAX_PARSE}-byte limit`);
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('latin1');
  if (/[^\t\r\n\x20-\x7e]/.test(text)) throw bad('contains bytes that are not printable ASCII');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw bad('header block is not terminated by an empty line');
  if (!/^(\r\n)*$/.test(text.slice(end + 4))) throw bad('unexpected content after the header block');
  const lines = text.slice(0, end).split('\r\n');
  if (lines.some((l) => l.includes('\r') || l.includes('\n'))) throw bad('bare CR or LF inside a line');
  const requestLine = lines[0]!;
  const m = /^(\S+) (\S+) (\S+)$/.exec(requestLine);
  if (!m) throw bad(`malformed request line ${JSON.stringify(requestLine.slice(0, 80))}`);
  if (m[1] !== 'BT-SEARCH') throw bad(`method ${JSON.stringify(m[1]!.slice(0, 40))} is not BT-SEARCH`);
  if (m[2] !== '*') throw bad(`request target ${JSON.stringify(m[2]!.slice(0, 40))} is not *`);
  if (m[3] !== 'HTTP/1.1') throw bad(`version ${JSON.stringify(m[3]!.slice(0, 40))} is not HTTP/1.1`);

  let host: string | undefined;
  let port: number | undefined;
  let cookie: string | undefined;
  const infoHashes: string[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw bad(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon);
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw bad(`malformed header name ${JSON.stringify(name.slice(0, 40))}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    switch (name.toLowerCase()) {
      case 'host': {
        if (host !== undefined) throw bad('more than one Host header');
        const v = value.toLowerCase();
        if (v !== LSD_HOST4 && v !== LSD_HOST6) throw bad(`Host ${JSON.stringify(value.slice(0, 60))} is not an LSD group`);
        host = v;
        break;
      }
      case 'port': {
        if (port !== undefined) throw bad('more than one Port header');
        if (!/^[0-9]{1,5}$/.test(value)) throw bad(`Port ${JSON.stringify(value.slice(0, 20))} is not a decimal number`);
        const p = Number(value);
        if (p < 1 || p > 65535) throw bad(`Port ${p} is out of range`);
        port = p;
        break;
      }
      case 'infohash': {
        if (!/^[0-9a-fA-F]{40}$/.test(value)) throw bad(`Infohash ${JSON.stringify(value.slice(0, 70))} is not 40 hex characters`);
        const ih = value.toLowerCase();
        if (!seen.has(ih)) { seen.add(ih); infoHashes.push(ih); }
        break;
      }
      case 'cookie': {
        if (cookie !== undefined) throw bad('more than one cookie header');
        if (value.length === 0 || value.length > MAX_COOKIE_LENGTH) throw bad(`cookie must be 1-${MAX_COOKIE_LENGTH} characters`);
        cookie = value;
        break;
      }
      default: break; // BEP 14: ignore headers we do not understand
    }
  }
  if (host === undefined) throw bad('no Host header');
  if (port === undefined) throw bad('no Port header');
  if (infoHashes.length === 0) throw bad('no Infohash header');
  return cookie === undefined ? { host, port, infoHashes } : { host, port, infoHashes, cookie };
}

/**
 * Per-info-hash announce limiter: `take` returns the hashes whose last announce is at least `minIntervalMs`
 * old and marks them sent at `now`. Bounded: entries older than the interval are dropped when it grows large.
 */
export class LsdRateLimiter {
  private readonly last = new Map<string, number>();
  constructor(readonly minIntervalMs: number) {}

  take(infoHashesHex: Iterable<string>, now: number): string[] {
    const due: string[] = [];
    for (const ih of infoHashesHex) {
      const t = this.last.get(ih);
      if (t !== undefined && now - t < this.minIntervalMs) continue;
      this.last.set(ih, now);
      due.push(ih);
    }
    if (this.last.size > MAX_WATCHED) {
      for (const [ih, t] of this.last) if (now - t >= this.minIntervalMs) this.last.delete(ih);
    }
    return due;
  }
}

export interface LsdOptions {
  /** Our TCP peer listen port: what we announce. */
  port: number;
  /**
   * IPv4 address of the one interface to join and send on. Default: every non-internal IPv4 interface
   * (as found at start). In tests: the namespace's veth address, e.g. 198.18.0.2.
   */
  interfaceAddress?: string;
  /** Also use [ff15::efc0:988f]:6771. Default true (off in the sandbox). Failing to join it is only a warning. */
  ipv6?: boolean;
  /** Default: 8 random hex digits (libtorrent parses cookies as hex). A message carrying our own cookie is ignored. */
  cookie?: string;
  /** Minimum time between two announces of one info-hash. Default LSD_DEFAULT_MIN_INTERVAL_MS (1 min). */
  minIntervalMs?: number;
  /** Every watched info-hash is announced again this often. Default LSD_DEFAULT_REANNOUNCE_MS (5 min); 0 = never. */
  reannounceIntervalMs?: number;
  /**
   * Let announces loop back to other sockets on this host (another client on the same machine then finds us;
   * our own copies are dropped by cookie). Default true, as libtorrent and Transmission do.
   */
  multicastLoopback?: boolean;
  /** Environment to read SHOAL_SANDBOX / SHOAL_LSD_IN_SANDBOX from. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface LsdStats {
  active: boolean;
  datagramsSent: number;
  datagramsReceived: number;
  malformed: number;
  ownDropped: number;
  peersReported: number;
  sendErrors: number;
  watching: number;
}

interface SendPath { family: 4 | 6; socket: Socket; group: string; label: string }

/** Why LSD may not start here, or null when it may. Throws EUSAGE when the sandbox allowance is misused. */
function sandboxRefusal(env: NodeJS.ProcessEnv, iface: string | undefined): string | null {
  if (!sandboxed(env)) return null;
  if (env['SHOAL_LSD_IN_SANDBOX'] !== '1') {
    return 'LSD is off under SHOAL_SANDBOX=1 (it would multicast on the host\'s networks); '
      + 'set SHOAL_LSD_IN_SANDBOX=1 and an interfaceAddress in 198.18.0.0/15 to use it in a network namespace';
  }
  if (iface === undefined || !isIPv4(iface) || !isSandboxAddress(iface) || iface.startsWith('127.')) {
    throw new ShoalError('EUSAGE', `SHOAL_LSD_IN_SANDBOX=1 needs an LSD interfaceAddress inside 198.18.0.0/15 (got ${iface ?? 'none'})`);
  }
  return null;
}

/**
 * One per Client. Events: 'peer' (infoHashHex: string, addr: PeerAddress) for watched info-hashes only,
 * 'warning' (message: string). start() never fails for environmental reasons (no interface, port taken):
 * LSD is best effort, so it warns and stays inactive; it throws EUSAGE for bad options.
 */
export class Lsd extends EventEmitter {
  readonly cookie: string;
  private readonly opts: LsdOptions;
  private readonly limiter: LsdRateLimiter;
  private readonly watched = new Set<string>();
  private readonly pending = new Set<string>();
  private flushScheduled = false;
  private receivers: Socket[] = [];
  private senders: SendPath[] = [];
  private timer: NodeJS.Timeout | undefined;
  private state: 'new' | 'starting' | 'active' | 'inactive' | 'closed' = 'new';
  private readonly counters = { datagramsSent: 0, datagramsReceived: 0, malformed: 0, ownDropped: 0, peersReported: 0, sendErrors: 0 };

  constructor(opts: LsdOptions) {
    super();
    checkPort(opts.port);
    if (opts.interfaceAddress !== undefined && !isIPv4(opts.interfaceAddress)) {
      throw new ShoalError('EUSAGE', `LSD: interfaceAddress must be an IPv4 address, got ${JSON.stringify(opts.interfaceAddress)}`);
    }
    const min = opts.minIntervalMs ?? LSD_DEFAULT_MIN_INTERVAL_MS;
    if (!Number.isFinite(min) || min < 0) throw new ShoalError('EUSAGE', `LSD: minIntervalMs must be >= 0, got ${min}`);
    const re = opts.reannounceIntervalMs ?? LSD_DEFAULT_REANNOUNCE_MS;
    if (!Number.isFinite(re) || re < 0) throw new ShoalError('EUSAGE', `LSD: reannounceIntervalMs must be >= 0, got ${re}`);
    if (opts.cookie !== undefined) checkCookie(opts.cookie);
    this.opts = opts;
    this.cookie = opts.cookie ?? randomBytes(4).readUInt32BE(0).toString(16);
    this.limiter = new LsdRateLimiter(min);
  }

  get active(): boolean { return this.state === 'active'; }

  stats(): LsdStats {
    return { active: this.active, ...this.counters, watching: this.watched.size };
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new ShoalError('EUSAGE', 'LSD: start() called twice');
    const env = this.opts.env ?? process.env;
    const refusal = sandboxRefusal(env, this.opts.interfaceAddress);
    if (refusal !== null) {
      this.state = 'inactive';
      this.emit('warning', refusal);
      return;
    }
    this.state = 'starting';
    const v4 = this.opts.interfaceAddress !== undefined ? [this.opts.interfaceAddress] : localIPv4Addresses();
    await this.open4(v4);
    if ((this.opts.ipv6 ?? true) && !sandboxed(env) && (this.state as string) !== 'closed') await this.open6(this.opts.interfaceAddress);
    if ((this.state as string) === 'closed') { await this.closeSockets(); return; } // close() ran while we opened
    if (this.senders.length === 0 || this.receivers.length === 0) {
      await this.closeSockets();
      this.state = 'inactive';
      this.emit('warning', 'LSD inactive: no interface could join the multicast group');
      return;
    }
    this.state = 'active';
    const every = this.opts.reannounceIntervalMs ?? LSD_DEFAULT_REANNOUNCE_MS;
    if (every > 0) {
      this.timer = setInterval(() => { for (const ih of this.watched) this.pending.add(ih); this.flush(); }, every);
      this.timer.unref();
    }
    if (this.pending.size > 0) this.scheduleFlush();
  }

  /** Report peers announcing `infoHash` (and include it in the periodic announce). */
  watch(infoHash: Buffer | string): void {
    const ih = hexOf(infoHash);
    if (!this.watched.has(ih) && this.watched.size >= MAX_WATCHED) throw new ShoalError('EUSAGE', `LSD: more than ${MAX_WATCHED} torrents`);
    this.watched.add(ih);
  }

  unwatch(infoHash: Buffer | string): void {
    const ih = hexOf(infoHash);
    this.watched.delete(ih);
    this.pending.delete(ih);
  }

  /**
   * Announce now (batched with other calls in the same tick into as few datagrams as fit). Info-hashes
   * announced less than minIntervalMs ago are skipped. Announcing also watches. A no-op when inactive.
   */
  announce(infoHashes: Array<Buffer | string>): void {
    for (const x of infoHashes) {
      const ih = hexOf(x);
      this.watch(ih);
      this.pending.add(ih);
    }
    if (this.state === 'active') this.scheduleFlush();
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer) clearInterval(this.timer);
    this.pending.clear();
    await this.closeSockets();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => { this.flushScheduled = false; this.flush(); });
  }

  private flush(): void {
    if (this.state !== 'active' || this.pending.size === 0) return;
    const due = this.limiter.take(this.pending, Date.now());
    this.pending.clear();
    if (due.length === 0) return;
    for (const path of this.senders) {
      for (const msg of packLsdMessages({ port: this.opts.port, infoHashes: due, cookie: this.cookie, family: path.family })) {
        path.socket.send(msg, LSD_PORT, path.group, (err) => {
          if (err) {
            this.counters.sendErrors++;
            if (this.counters.sendErrors <= 3) this.emit('warning', `LSD: send on ${path.label} failed: ${err.message}`);
          } else {
            this.counters.datagramsSent++;
          }
        });
      }
    }
  }

  /** The receive path of every LSD socket: one datagram from `rinfo.address`. Public for tests. */
  receive(buf: Buffer, rinfo: Pick<RemoteInfo, 'address'>): void {
    this.counters.datagramsReceived++;
    let msg: LsdMessage;
    try {
      msg = parseLsdMessage(buf);
    } catch {
      this.counters.malformed++; // not a warning: anyone on the LAN could flood us with garbage
      return;
    }
    if (msg.cookie !== undefined && msg.cookie.toLowerCase() === this.cookie.toLowerCase()) {
      this.counters.ownDropped++;
      return;
    }
    const host = rinfo.address;
    if (!mayContact(host, this.opts.env ?? process.env)) return;
    for (const ih of msg.infoHashes) {
      if (!this.watched.has(ih)) continue;
      this.counters.peersReported++;
      const addr: PeerAddress = { host, port: msg.port };
      this.emit('peer', ih, addr);
    }
  }

  private async open4(addresses: string[]): Promise<void> {
    const loop = this.opts.multicastLoopback ?? true;
    const rx = createSocket({ type: 'udp4', reuseAddr: true });
    const rxOk = await bindSocket(rx, LSD_PORT, '0.0.0.0');
    if (rxOk !== null) {
      this.emit('warning', `LSD: cannot bind UDP ${LSD_PORT}: ${rxOk}`);
      rx.close();
      return;
    }
    let joined = 0;
    for (const a of addresses) {
      try {
        rx.addMembership(LSD_GROUP4, a);
      } catch (e) {
        this.emit('warning', `LSD: cannot join ${LSD_GROUP4} on ${a}: ${(e as Error).message}`);
        continue;
      }
      const tx = createSocket({ type: 'udp4' });
      const err = await bindSocket(tx, 0, a);
      if (err !== null) {
        this.emit('warning', `LSD: cannot bind a sender on ${a}: ${err}`);
        tx.close();
        continue;
      }
      try {
        tx.setMulticastInterface(a);
        tx.setMulticastTTL(1); // link-local only, whatever BEP 14's note says: LSD is for the local segment
        tx.setMulticastLoopback(loop);
      } catch (e) {
        this.emit('warning', `LSD: cannot configure the sender on ${a}: ${(e as Error).message}`);
        tx.close();
        continue;
      }
      tx.on('error', (e) => this.emit('warning', `LSD: sender on ${a}: ${e.message}`));
      this.senders.push({ family: 4, socket: tx, group: LSD_GROUP4, label: a });
      joined++;
    }
    if (joined === 0) { rx.close(); return; }
    rx.on('message', (b, r) => this.receive(b, r));
    rx.on('error', (e) => this.emit('warning', `LSD: receiver: ${e.message}`));
    this.receivers.push(rx);
  }

  private async open6(v4Address: string | undefined): Promise<void> {
    const names = v4Address !== undefined ? interfaceNamesOf(v4Address) : localIPv6InterfaceNames();
    if (names.length === 0) return;
    const loop = this.opts.multicastLoopback ?? true;
    const rx = createSocket({ type: 'udp6', reuseAddr: true, ipv6Only: true });
    const err = await bindSocket(rx, LSD_PORT, '::');
    if (err !== null) {
      this.emit('warning', `LSD: IPv6 off, cannot bind [::]:${LSD_PORT}: ${err}`);
      rx.close();
      return;
    }
    let joined = 0;
    for (const name of names) {
      const scoped = `::%${name}`;
      try {
        rx.addMembership(LSD_GROUP6, scoped);
        const tx = createSocket({ type: 'udp6', ipv6Only: true });
        const e = await bindSocket(tx, 0, '::');
        if (e !== null) throw new Error(e);
        tx.setMulticastInterface(scoped);
        tx.setMulticastTTL(1);
        tx.setMulticastLoopback(loop);
        tx.on('error', (er) => this.emit('warning', `LSD: IPv6 sender on ${name}: ${er.message}`));
        this.senders.push({ family: 6, socket: tx, group: LSD_GROUP6, label: name });
        joined++;
      } catch (e) {
        this.emit('warning', `LSD: IPv6 off on ${name}: ${(e as Error).message}`);
      }
    }
    if (joined === 0) { rx.close(); return; }
    rx.on('message', (b, r) => this.receive(b, r));
    rx.on('error', (e) => this.emit('warning', `LSD: IPv6 receiver: ${e.message}`));
    this.receivers.push(rx);
  }

  private async closeSockets(): Promise<void> {
    const all = [...this.receivers, ...this.senders.map((s) => s.socket)];
    this.receivers = [];
    this.senders = [];
    await Promise.all(all.map((s) => new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } })));
  }
}

function bindSocket(s: Socket, port: number, address: string): Promise<string | null> {
  return new Promise((resolve) => {
    const onError = (e: Error): void => resolve(e.message);
    s.once('error', onError);
    s.bind({ port, address, exclusive: false }, () => { s.off('error', onError); resolve(null); });
  });
}

function localIPv4Addresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

function localIPv6InterfaceNames(): string[] {
  const out: string[] = [];
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if ((list ?? []).some((a) => a.family === 'IPv6' && !a.internal)) out.push(name);
  }
  return out;
}

/** The interface carrying `v4Address`, if it also has an IPv6 address. */
function interfaceNamesOf(v4Address: string): string[] {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    const l = list ?? [];
    if (l.some((a) => a.family === 'IPv4' && a.address === v4Address) && l.some((a) => a.family === 'IPv6')) return [name];
  }
  return [];
}

/**
 * The LSD peer source of one torrent: watches its info-hash on the Client's shared Lsd, announces it at
 * start (the Lsd re-announces every watched torrent periodically, batched), and pushes the peers heard for
 * it into the sink. Never create one for a private torrent (BEP 27; see PUBLIC_ONLY_SOURCES).
 */
export class LsdPeerSource implements PeerSource {
  readonly kind: PeerSourceKind = 'lsd';
  private readonly ih: string;
  private sink: PeerSink | undefined;
  private peers = 0;
  private lastPeer: string | undefined;
  private readonly onPeer = (ih: string, addr: PeerAddress): void => {
    if (ih !== this.ih || !this.sink) return;
    this.peers++;
    this.lastPeer = isIPv6(addr.host) ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
    this.sink([addr], 'lsd');
  };

  constructor(private readonly lsd: Lsd, infoHash: Buffer) {
    this.ih = hexOf(infoHash);
  }

  start(sink: PeerSink): void {
    if (this.sink) return;
    this.sink = sink;
    this.lsd.on('peer', this.onPeer);
    this.lsd.announce([this.ih]);
  }

  async stop(): Promise<void> {
    if (!this.sink) return;
    this.sink = undefined;
    this.lsd.off('peer', this.onPeer);
    this.lsd.unwatch(this.ih);
  }

  describe(): Record<string, unknown> {
    return { active: this.lsd.active, peersHeard: this.peers, ...(this.lastPeer ? { lastPeer: this.lastPeer } : {}) };
  }
}
