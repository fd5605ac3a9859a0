import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { decode, encode } from '../../src/bencode/index.js';
import type { Extension, ExtensionConnection } from '../../src/connection/extension.js';
import { HANDSHAKE_LENGTH, encodeExtended, encodeHandshake, parseHandshake } from '../../src/wire/index.js';

/**
 * A minimal BitTorrent connection that speaks only the handshake and BEP 10, for testing extensions against real
 * clients before the engine hosts them: it dials, sends our extended handshake (`m` ids, `p`, and the extensions'
 * fields), routes the remote's extended messages to the extensions by our ids and ignores every other message.
 */
export class TcpExtensionConnection implements ExtensionConnection {
  readonly address: string;
  readonly host: string;
  readonly outbound: boolean;
  listenPort: number;
  remoteHandshake: Record<string, unknown> | undefined;
  closedReason: string | undefined;
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private handshaken = false;

  private constructor(private readonly socket: net.Socket, host: string, port: number, private readonly extensions: Extension[]) {
    this.host = host;
    this.outbound = socket.connecting;
    this.listenPort = port;
    this.address = `${host}:${port}`;
  }

  /** Dials and resolves once the remote's extended handshake arrived. */
  static dial(host: string, port: number, infoHash: Buffer, extensions: Extension[], ourListenPort: number, timeoutMs = 10_000): Promise<TcpExtensionConnection> {
    const socket = net.connect({ host, port });
    const conn = new TcpExtensionConnection(socket, host, port, extensions);
    socket.on('connect', () => conn.begin(infoHash, ourListenPort));
    return conn.ready(timeoutMs);
  }

  /** Takes an inbound socket; the remote's listen port is learned from its `p`. */
  static accept(socket: net.Socket, infoHash: Buffer, extensions: Extension[], ourListenPort: number, timeoutMs = 10_000): Promise<TcpExtensionConnection> {
    const conn = new TcpExtensionConnection(socket, socket.remoteAddress ?? '?', socket.remotePort ?? 0, extensions);
    conn.listenPort = 0;
    conn.begin(infoHash, ourListenPort);
    return conn.ready(timeoutMs);
  }

  private begin(infoHash: Buffer, ourListenPort: number): void {
    this.socket.write(encodeHandshake(infoHash, randomBytes(20), { extended: true }));
    const m: Record<string, number> = {};
    this.extensions.forEach((e, i) => { m[e.name] = i + 1; });
    const dict: Record<string, unknown> = { m, p: ourListenPort, v: 'shoal-ext-test' };
    for (const e of this.extensions) Object.assign(dict, e.handshakeFields?.() ?? {});
    this.socket.write(encodeExtended(0, encode(dict)));
  }

  private ready(timeoutMs: number): Promise<TcpExtensionConnection> {
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.close('no extended handshake'); reject(new Error(`no extended handshake from ${this.address} in ${timeoutMs} ms`)); }, timeoutMs);
      socket.on('data', (chunk: Buffer) => {
        try {
          this.onData(chunk);
          if (this.remoteHandshake !== undefined) { clearTimeout(timer); resolve(this); }
        } catch (e) {
          clearTimeout(timer);
          this.close(`test transport: ${(e as Error).message}`);
          reject(e as Error);
        }
      });
      socket.on('error', (e) => { clearTimeout(timer); reject(e); this.end(); });
      socket.on('close', () => { clearTimeout(timer); reject(new Error('connection closed before the extended handshake')); this.end(); });
    });
  }

  supports(name: string): boolean {
    const m = this.remoteHandshake?.['m'] as Record<string, unknown> | undefined;
    const id = m?.[name];
    return !this.closed && typeof id === 'number' && id > 0;
  }

  sendExtended(name: string, payload: Buffer): boolean {
    if (!this.supports(name)) return false;
    this.socket.write(encodeExtended((this.remoteHandshake!['m'] as Record<string, number>)[name]!, payload));
    return true;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.socket.destroy();
    this.end();
  }

  private end(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.extensions) e.onClose?.(this);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.handshaken) {
      if (this.buf.length < HANDSHAKE_LENGTH) return;
      const hs = parseHandshake(this.buf.subarray(0, HANDSHAKE_LENGTH));
      if (!hs.extended) throw new Error('remote does not support BEP 10');
      this.handshaken = true;
      this.buf = this.buf.subarray(HANDSHAKE_LENGTH);
    }
    while (this.buf.length >= 4 && !this.closed) {
      const len = this.buf.readUInt32BE(0);
      if (len > 1 << 20) throw new Error(`message of ${len} bytes`);
      if (this.buf.length < 4 + len) return;
      const msg = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      if (len < 2 || msg[0] !== 20) continue; // not an extended message
      const id = msg[1]!;
      const payload = msg.subarray(2);
      if (id === 0) {
        const dict = decode(payload, { allowUnsortedKeys: true }) as Record<string, unknown>;
        this.remoteHandshake = dict;
        const p = dict['p'];
        if (!this.outbound && typeof p === 'number' && p > 0 && p < 65536) this.listenPort = p;
        for (const e of this.extensions) e.onHandshake?.(this, dict);
      } else {
        this.extensions[id - 1]?.onMessage(this, payload);
      }
    }
  }
}
