import { isIPv4, isIPv6 } from 'node:net';
import { decode, encode, isDict } from '../bencode/index.js';
import type { BValue } from '../bencode/index.js';
import type { Extension, ExtensionConnection } from '../connection/extension.js';
import {
  decodeCompactPeers4, decodeCompactPeers6, encodeCompactPeer4, encodeCompactPeer6, isValidPort,
} from '../discovery/compact.js';
import type { PeerAddress } from '../discovery/compact.js';
import { mayContact } from '../util/sandbox.js';

/**
 * BEP 11 `ut_pex`: tells each connected peer, at most once a minute, which peers we are connected to now (as a diff
 * against what we last told that peer) and passes on what peers tell us.
 *
 * Outgoing, per connection we keep the set the remote last heard from us; a message adds what is connected now and
 * was not advertised, and drops what was advertised and is gone. The bound per message (50 added, 50 dropped) leaves
 * the rest for the next message, so nothing is lost and an address is never both added and dropped in one message.
 * Only peers connected at the moment of sending are ever added.
 *
 * Incoming data is untrusted (BEP 11 "Security Considerations"): entries past a per-message bound are ignored,
 * repeated IPs in a message are ignored, the sender's own address and ours are never learned, LAN/loopback
 * addresses are only learned from a peer that is itself on a local network, and a connection sending faster than
 * one message per half interval (after a grace of a few) is closed.
 */

export const PEX_FLAG_ENCRYPTION = 0x01;
export const PEX_FLAG_SEED = 0x02;
export const PEX_FLAG_UTP = 0x04;
export const PEX_FLAG_HOLEPUNCH = 0x08;
/** We connected out to it: the peer is reachable at this address. */
export const PEX_FLAG_REACHABLE = 0x10;

/** BEP 11: "the combined amount of added v4/v6 contacts should not exceed 50 entries. The same applies to dropped". */
export const PEX_MAX_PER_MESSAGE = 50;
/**
 * Entries accepted from one incoming message. Above the 50 we send because clients send more in their first message
 * (libtorrent up to 100 added, with no bound on dropped).
 */
export const PEX_MAX_ACCEPTED_PER_MESSAGE = 100;
/** Addresses remembered per connection to dedupe its announcements (libtorrent's `max_pex_peers` default is 200). */
export const PEX_MAX_KNOWN_PER_PEER = 200;
/** BEP 11: "no more than 1 PEX message per minute". */
export const PEX_DEFAULT_INTERVAL_MS = 60_000;
/** libtorrent closes connections sending larger PEX messages; no valid message comes near it. */
const MAX_MESSAGE_SIZE = 500 * 1024;
/** Messages a connection may send back to back before the rate limit bites (slow links deliver queued ones in bursts). */
const INCOMING_BURST = 3;

export interface PexPeer extends PeerAddress {
  /** BEP 11 flags for the address (`PEX_FLAG_*`); 0 when the sender gave none. */
  flags: number;
}

export interface PexHost {
  /** Listen addresses of the peers we are connected to right now, with BEP 11 flags. */
  connectedPeers(): Iterable<{ address: PeerAddress; flags: number }>;
  /** Addresses a peer told us about (filtered and bounded; never empty). PexPeer is a PeerAddress plus flags. */
  peersLearned(peers: PexPeer[], from: ExtensionConnection): void;
  /** Our listen port: with the remote's `yourip` it recognises our own address in what peers send. */
  readonly listenPort?: number;
  /** Optional extra self-check (e.g. every local interface on our listen port). */
  isOwnAddress?(address: PeerAddress): boolean;
}

export interface UtPexOptions {
  /** Least time between two messages to one connection (default 60 s, the BEP's minimum). */
  intervalMs?: number;
  /** Bound on added and (separately) dropped entries per message we send (default 50). */
  maxPerMessage?: number;
  /** Entries taken from one incoming message; the rest are ignored (default 100). */
  maxAcceptedPerMessage?: number;
  /** Addresses remembered per connection (default 200); announcements past it are ignored until some are dropped. */
  maxKnownPerPeer?: number;
  /** Which learned hosts may be passed on at all (default: `mayContact`, so under SHOAL_SANDBOX only sandbox ones). */
  mayLearn?: (host: string) => boolean;
  now?: () => number;
}

interface ConnState {
  readonly conn: ExtensionConnection;
  /** compact key -> address as the remote last heard it from us. */
  readonly advertised: Map<string, PeerAddress>;
  lastSent: number;
  /** compact keys this remote announced and has not dropped. */
  readonly known: Set<string>;
  tokens: number;
  tokensAt: number;
}

interface Candidate { address: PeerAddress; flags: number; compact: Buffer }

/** The compact form doubles as a canonical key: IPv6 text forms and IPv4-mapped addresses collapse to one. */
function toCompact(a: PeerAddress): Buffer | undefined {
  if (!isValidPort(a.port)) return undefined;
  let host = a.host;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const lower = host.toLowerCase();
  if (lower.startsWith('::ffff:') && isIPv4(host.slice(7))) host = host.slice(7);
  try {
    if (isIPv4(host)) return encodeCompactPeer4(host, a.port);
    if (isIPv6(host)) return encodeCompactPeer6(host, a.port);
  } catch {
    return undefined;
  }
  return undefined;
}

function ipPart(compact: Buffer): string {
  return compact.toString('latin1', 0, compact.length - 2);
}

/** Addresses nobody can usefully dial: unspecified, broadcast, multicast. */
function unusable(compact: Buffer): boolean {
  if (compact.length === 6) {
    const a = compact[0]!;
    return a === 0 || a >= 224; // 0/8, multicast 224/4, reserved 240/4 and broadcast
  }
  if (compact[0] === 0xff) return true; // multicast
  for (let i = 0; i < 16; i++) if (compact[i] !== 0) return false;
  return true; // ::
}

/** Loopback, private, link-local and unique-local ranges. */
function isLocal(compact: Buffer): boolean {
  if (compact.length === 6) {
    const a = compact[0]!, b = compact[1]!;
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
  }
  let loopback = compact[15] === 1;
  for (let i = 0; i < 15 && loopback; i++) if (compact[i] !== 0) loopback = false;
  if (loopback) return true;
  const a = compact[0]!, b = compact[1]!;
  if ((a & 0xfe) === 0xfc) return true; // fc00::/7
  if (a === 0xfe && (b & 0xc0) === 0x80) return true; // fe80::/10
  // IPv4-mapped (::ffff:a.b.c.d)
  let mapped = compact[10] === 0xff && compact[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (compact[i] !== 0) mapped = false;
  if (mapped) return isLocal(Buffer.from([compact[12]!, compact[13]!, compact[14]!, compact[15]!, 0, 1]));
  return false;
}

function hostIsLocal(host: string): boolean {
  const c = toCompact({ host, port: 1 });
  return c !== undefined && isLocal(c);
}

/** `yourip` from a BEP 10 handshake: 4 or 16 raw bytes. */
function yourIp(handshake: Record<string, unknown> | undefined): string | undefined {
  const v = handshake?.['yourip'];
  return Buffer.isBuffer(v) && (v.length === 4 || v.length === 16) ? v.toString('latin1') : undefined;
}

export class UtPex implements Extension {
  readonly name = 'ut_pex' as const;
  private readonly host: PexHost;
  private readonly intervalMs: number;
  private readonly maxPerMessage: number;
  private readonly maxAccepted: number;
  private readonly maxKnown: number;
  private readonly mayLearn: (host: string) => boolean;
  /** Incoming: one message per this many ms is fine (half the interval, capped at half the BEP's minute). */
  private readonly minGapMs: number;
  private readonly now: () => number;
  private readonly conns = new Map<ExtensionConnection, ConnState>();
  /** Closed connections: late messages on them are ignored and keep no state. */
  private readonly gone = new WeakSet<ExtensionConnection>();

  constructor(host: PexHost, opts: UtPexOptions = {}) {
    this.host = host;
    this.intervalMs = opts.intervalMs ?? PEX_DEFAULT_INTERVAL_MS;
    this.maxPerMessage = opts.maxPerMessage ?? PEX_MAX_PER_MESSAGE;
    this.maxAccepted = opts.maxAcceptedPerMessage ?? PEX_MAX_ACCEPTED_PER_MESSAGE;
    this.maxKnown = opts.maxKnownPerPeer ?? PEX_MAX_KNOWN_PER_PEER;
    this.mayLearn = opts.mayLearn ?? ((host) => mayContact(host));
    // A peer we configured a long interval for may still send once a minute as BEP 11 allows.
    this.minGapMs = Math.min(this.intervalMs, PEX_DEFAULT_INTERVAL_MS) / 2;
    this.now = opts.now ?? Date.now;
  }

  onHandshake(conn: ExtensionConnection): void {
    if (!this.gone.has(conn)) this.stateFor(conn);
  }

  onClose(conn: ExtensionConnection): void {
    this.gone.add(conn);
    this.conns.delete(conn);
  }

  /** Called about once a second; sends to each connection whose interval has passed. */
  tick(): void {
    const now = this.now();
    let current: Map<string, Candidate> | undefined;
    for (const st of this.conns.values()) {
      if (now - st.lastSent < this.intervalMs || !st.conn.supports(this.name)) continue;
      current ??= this.currentPeers();
      const msg = this.buildMessage(st, current);
      if (msg === undefined) continue;
      if (st.conn.sendExtended(this.name, msg.payload)) {
        msg.commit();
        st.lastSent = now;
      }
    }
  }

  onMessage(conn: ExtensionConnection, payload: Buffer): void {
    if (this.gone.has(conn)) return;
    const st = this.stateFor(conn);
    const now = this.now();
    st.tokens = Math.min(INCOMING_BURST, st.tokens + Math.max(0, now - st.tokensAt) / this.minGapMs);
    st.tokensAt = now;
    if (st.tokens < 1) {
      this.close(st, `ut_pex: messages faster than one per ${Math.round(this.minGapMs / 1000)} s`);
      return;
    }
    st.tokens -= 1;
    if (payload.length > MAX_MESSAGE_SIZE) {
      this.close(st, `ut_pex: message of ${payload.length} bytes`);
      return;
    }
    let dict: Record<string, BValue>;
    try {
      const v = decode(payload, { maxDepth: 8 });
      if (!isDict(v)) throw new Error('not a dict');
      dict = v;
    } catch {
      this.close(st, 'ut_pex: malformed message (not a bencoded dict)');
      return;
    }
    for (const [field, len] of [['dropped', 6], ['dropped6', 18]] as const) {
      const v = dict[field];
      if (!Buffer.isBuffer(v)) continue;
      for (let i = 0; i + len <= v.length; i += len) st.known.delete(v.toString('latin1', i, i + len));
    }
    const learned = this.acceptAdded(st, dict);
    if (learned.length > 0) this.host.peersLearned(learned, conn);
  }

  // --- incoming ------------------------------------------------------------------------------------------------

  private acceptAdded(st: ConnState, dict: Record<string, BValue>): PexPeer[] {
    const conn = st.conn;
    const senderLocal = hostIsLocal(conn.host);
    const skip = new Set<string>();
    for (const a of [{ host: conn.host, port: conn.listenPort }, { host: conn.host, port: portOf(conn.address) }]) {
      const c = toCompact(a);
      if (c !== undefined) skip.add(c.toString('latin1'));
    }
    const mine = yourIp(conn.remoteHandshake);
    const ourPort = this.host.listenPort;
    const seenIps = new Set<string>();
    const out: PexPeer[] = [];
    let taken = 0;
    for (const [field, flagsField, len] of [['added', 'added.f', 6], ['added6', 'added6.f', 18]] as const) {
      const v = dict[field];
      if (!Buffer.isBuffer(v)) continue;
      const f = dict[flagsField];
      const flags = Buffer.isBuffer(f) ? f : undefined;
      for (let i = 0, n = 0; i + len <= v.length && taken < this.maxAccepted; i += len, n++) {
        taken++;
        const compact = v.subarray(i, i + len);
        const key = compact.toString('latin1');
        const ip = ipPart(compact);
        if (compact.readUInt16BE(len - 2) === 0 || unusable(compact)) continue;
        if (skip.has(key) || seenIps.has(ip) || st.known.has(key)) continue;
        if (mine !== undefined && ourPort !== undefined && ip === mine && compact.readUInt16BE(len - 2) === ourPort) continue;
        if (!senderLocal && isLocal(compact)) continue;
        const [address] = len === 6 ? decodeCompactPeers4(compact) : decodeCompactPeers6(compact);
        if (address === undefined) continue;
        if (this.host.isOwnAddress?.(address) === true || !this.mayLearn(address.host)) continue;
        if (st.known.size >= this.maxKnown) break;
        seenIps.add(ip);
        st.known.add(key);
        out.push({ host: address.host, port: address.port, flags: flags !== undefined && n < flags.length ? flags[n]! : 0 });
      }
    }
    return out;
  }

  // --- outgoing ------------------------------------------------------------------------------------------------

  private currentPeers(): Map<string, Candidate> {
    const out = new Map<string, Candidate>();
    for (const { address, flags } of this.host.connectedPeers()) {
      const compact = toCompact(address);
      if (compact === undefined) continue;
      const key = compact.toString('latin1');
      if (!out.has(key)) out.set(key, { address, flags: flags & 0xff, compact });
    }
    return out;
  }

  private buildMessage(st: ConnState, current: Map<string, Candidate>): { payload: Buffer; commit(): void } | undefined {
    const conn = st.conn;
    const self = new Set<string>();
    for (const a of [{ host: conn.host, port: conn.listenPort }, { host: conn.host, port: portOf(conn.address) }]) {
      const c = toCompact(a);
      if (c !== undefined) self.add(c.toString('latin1'));
    }
    const added: Candidate[] = [];
    for (const [key, c] of current) {
      if (added.length >= this.maxPerMessage) break;
      if (!st.advertised.has(key) && !self.has(key)) added.push(c);
    }
    const dropped: [string, Buffer][] = [];
    for (const key of st.advertised.keys()) {
      if (dropped.length >= this.maxPerMessage) break;
      if (!current.has(key) || self.has(key)) dropped.push([key, Buffer.from(key, 'latin1')]);
    }
    if (added.length === 0 && dropped.length === 0) return undefined;
    const a4 = added.filter((c) => c.compact.length === 6);
    const a6 = added.filter((c) => c.compact.length === 18);
    const d4 = dropped.filter(([, b]) => b.length === 6).map(([, b]) => b);
    const d6 = dropped.filter(([, b]) => b.length === 18).map(([, b]) => b);
    const msg: Record<string, Buffer> = {};
    if (a4.length > 0) {
      msg['added'] = Buffer.concat(a4.map((c) => c.compact));
      msg['added.f'] = Buffer.from(a4.map((c) => c.flags));
    }
    if (a6.length > 0) {
      msg['added6'] = Buffer.concat(a6.map((c) => c.compact));
      msg['added6.f'] = Buffer.from(a6.map((c) => c.flags));
    }
    if (d4.length > 0) msg['dropped'] = Buffer.concat(d4);
    if (d6.length > 0) msg['dropped6'] = Buffer.concat(d6);
    return {
      payload: encode(msg),
      commit: () => {
        for (const c of added) st.advertised.set(c.compact.toString('latin1'), c.address);
        for (const [key] of dropped) st.advertised.delete(key);
      },
    };
  }

  private stateFor(conn: ExtensionConnection): ConnState {
    let st = this.conns.get(conn);
    if (st === undefined) {
      st = {
        conn, advertised: new Map(), lastSent: -Infinity, known: new Set(), tokens: INCOMING_BURST, tokensAt: this.now(),
      };
      this.conns.set(conn, st);
    }
    return st;
  }

  private close(st: ConnState, reason: string): void {
    this.gone.add(st.conn);
    this.conns.delete(st.conn);
    st.conn.close(reason);
  }
}

function portOf(address: string): number {
  const i = address.lastIndexOf(':');
  const p = i < 0 ? NaN : Number(address.slice(i + 1));
  return Number.isInteger(p) ? p : 0;
}
