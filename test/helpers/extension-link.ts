import { decode, encode } from '../../src/bencode/index.js';
import type { Extension, ExtensionConnection } from '../../src/connection/extension.js';

/**
 * An in-memory BEP 10 transport for testing extensions against each other: each side builds its extended handshake
 * (`m` ids plus the extensions' handshake fields), the handshake and every extended message travel as real bencoded
 * bytes framed `[extension id][payload]`, and the receiving side maps its own ids back to names. Delivery is queued
 * and pumped by `run()` (never inside `sendExtended`), as a socket would, so tests are deterministic.
 */

export interface Endpoint {
  /** The address the other side sees this one at. */
  host: string;
  port: number;
  /** BEP 10 `p` this side sends (its listen port); defaults to `port`. */
  listenPort?: number;
}

export class Node {
  readonly extensions: Extension[];
  readonly conns: LinkConnection[] = [];
  constructor(extensions: Extension[]) {
    this.extensions = extensions;
  }
  ids(): Record<string, number> {
    const m: Record<string, number> = {};
    this.extensions.forEach((e, i) => { m[e.name] = i + 1; });
    return m;
  }
  byId(id: number): Extension | undefined {
    return this.extensions[id - 1];
  }
}

export class LinkConnection implements ExtensionConnection {
  readonly address: string;
  readonly host: string;
  listenPort: number;
  readonly outbound: boolean;
  remoteHandshake: Record<string, unknown> | undefined;
  /** Set on the side that called close(); the other side sees `endedBy`. */
  closedReason: string | undefined;
  closed = false;
  /** Extended messages this side received, by extension name (for assertions). */
  readonly received = new Map<string, number>();
  other!: LinkConnection;
  constructor(readonly net: Network, readonly node: Node, remote: Endpoint, outbound: boolean) {
    this.host = remote.host;
    this.address = remote.host.includes(':') ? `[${remote.host}]:${remote.port}` : `${remote.host}:${remote.port}`;
    this.listenPort = outbound ? remote.port : 0;
    this.outbound = outbound;
  }

  supports(name: string): boolean {
    const m = this.remoteHandshake?.['m'];
    if (this.closed || typeof m !== 'object' || m === null || Buffer.isBuffer(m) || Array.isArray(m)) return false;
    const id = (m as Record<string, unknown>)[name];
    return typeof id === 'number' && id > 0;
  }

  sendExtended(name: string, payload: Buffer): boolean {
    if (!this.supports(name)) return false;
    const id = (this.remoteHandshake!['m'] as Record<string, number>)[name]!;
    const frame = Buffer.allocUnsafe(payload.length + 1);
    frame[0] = id;
    payload.copy(frame, 1);
    this.net.sent++;
    this.net.bytes += frame.length;
    this.net.enqueue(() => this.other.deliver(frame));
    return true;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.end();
    this.other.end();
  }

  /** The extended handshake as the wire carries it. */
  sendHandshake(extra: Record<string, unknown> = {}, listenPort?: number): void {
    const dict: Record<string, unknown> = { m: this.node.ids() };
    if (listenPort !== undefined) dict['p'] = listenPort;
    for (const e of this.node.extensions) Object.assign(dict, e.handshakeFields?.() ?? {});
    Object.assign(dict, extra); // tests override what the extensions would say
    const bytes = encode(dict);
    this.net.enqueue(() => this.other.receiveHandshake(bytes));
  }

  private receiveHandshake(bytes: Buffer): void {
    if (this.closed) return;
    const dict = decode(bytes) as Record<string, unknown>;
    this.remoteHandshake = dict;
    const p = dict['p'];
    if (typeof p === 'number' && p > 0 && p < 65536) this.listenPort = p;
    for (const e of this.node.extensions) e.onHandshake?.(this, dict);
  }

  private deliver(frame: Buffer): void {
    if (this.closed) return;
    const ext = this.node.byId(frame[0]!);
    if (ext === undefined) return;
    this.received.set(ext.name, (this.received.get(ext.name) ?? 0) + 1);
    // The payload is only valid during the call: hand out a view the test overwrites afterwards to catch keepers.
    const payload = frame.subarray(1);
    ext.onMessage(this, payload);
    payload.fill(0xee);
  }

  private end(): void {
    if (this.closed) return;
    this.closed = true;
    this.net.enqueue(() => { for (const e of this.node.extensions) e.onClose?.(this); });
  }
}

const noop = (): void => {};

/** A test peer speaking an extension by hand: records what arrives, sends whatever the test gives it. */
export class RawExtension implements Extension {
  readonly messages: Buffer[] = [];
  readonly handshakes: Record<string, unknown>[] = [];
  closes = 0;
  constructor(readonly name: string, private readonly fields: Record<string, unknown> = {},
    private readonly respond?: (conn: ExtensionConnection, payload: Buffer) => void) {}
  handshakeFields(): Record<string, unknown> {
    return this.fields;
  }
  onHandshake(_conn: ExtensionConnection, dict: Record<string, unknown>): void {
    this.handshakes.push(dict);
  }
  onMessage(conn: ExtensionConnection, payload: Buffer): void {
    this.messages.push(Buffer.from(payload));
    this.respond?.(conn, payload);
  }
  onClose(): void {
    this.closes++;
  }
}

export class Network {
  private queue: (() => void)[] = [];
  private head = 0;
  sent = 0;
  bytes = 0;
  enqueue(fn: () => void): void {
    this.queue.push(fn);
  }
  /** Delivers everything queued, including what deliveries queue in turn; bounded. */
  run(maxSteps = 1_000_000): number {
    let steps = 0;
    while (this.head < this.queue.length) {
      if (++steps > maxSteps) throw new Error(`network did not settle in ${maxSteps} deliveries`);
      const fn = this.queue[this.head]!;
      this.queue[this.head++] = noop;
      fn();
    }
    this.queue = [];
    this.head = 0;
    return steps;
  }

  /**
   * Connects `a` (dialing) to `b`. `aAt`/`bAt` are the addresses each is seen at. Handshakes are queued both ways;
   * `bHandshake`/`aHandshake` add raw keys (e.g. `yourip`) to what that side sends.
   */
  connect(a: Node, aAt: Endpoint, b: Node, bAt: Endpoint, opts: { aHandshake?: Record<string, unknown>; bHandshake?: Record<string, unknown> } = {}): [LinkConnection, LinkConnection] {
    const ab = new LinkConnection(this, a, bAt, true);   // a's view of b
    const ba = new LinkConnection(this, b, aAt, false);  // b's view of a
    ab.other = ba;
    ba.other = ab;
    a.conns.push(ab);
    b.conns.push(ba);
    ab.sendHandshake(opts.aHandshake, aAt.listenPort ?? aAt.port);
    ba.sendHandshake(opts.bHandshake, bAt.listenPort ?? bAt.port);
    return [ab, ba];
  }
}
