import net from 'node:net';
import type { WireHandler } from '../../src/wire/types.js';

/** A connected loopback TCP pair: `a` dialled `b`. The listening server is already closed. */
export async function socketPair(host = '127.0.0.1'): Promise<{ a: net.Socket; b: net.Socket; destroy(): void }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const a = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    a.once('connect', () => resolve());
    a.once('error', reject);
  });
  const b = await accepted;
  server.close();
  return { a, b, destroy() { a.destroy(); b.destroy(); } };
}

/** Whether this host can bind ::1 (some containers have IPv6 disabled). */
export async function hasIPv6Loopback(): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}

/**
 * A WireHandler that logs every call as a short string, so call sequences can be compared.
 * Piece blocks are received into fresh buffers (or discarded when `discardPieces`) and logged as hex.
 */
export class RecordingHandler implements WireHandler {
  readonly log: string[] = [];
  closed = false;
  closeError: Error | undefined;
  discardPieces = false;
  private block: Buffer | null = null;
  private closeWaiters: Array<() => void> = [];
  private logWaiters: Array<{ n: number; resolve: () => void }> = [];

  private add(entry: string): void {
    this.log.push(entry);
    this.logWaiters = this.logWaiters.filter((w) => {
      if (this.log.length >= w.n) w.resolve();
      return this.log.length < w.n;
    });
  }

  /** Resolves once the log holds at least n entries (rejects if the wire closes first). */
  waitForLog(n: number): Promise<void> {
    if (this.log.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.logWaiters.push({ n, resolve });
      this.closeWaiters.push(() => {
        if (this.log.length < n) reject(new Error(`wire closed after ${this.log.length}/${n} log entries: ${this.closeError?.message}`));
      });
    });
  }

  waitForClose(): Promise<Error | undefined> {
    if (this.closed) return Promise.resolve(this.closeError);
    return new Promise((resolve) => this.closeWaiters.push(() => resolve(this.closeError)));
  }

  onKeepAlive(): void { this.add('keep-alive'); }
  onChoke(): void { this.add('choke'); }
  onUnchoke(): void { this.add('unchoke'); }
  onInterested(): void { this.add('interested'); }
  onNotInterested(): void { this.add('not-interested'); }
  onHave(index: number): void { this.add(`have ${index}`); }
  onBitfield(bits: Buffer): void { this.add(`bitfield ${bits.toString('hex')}`); }
  onRequest(i: number, b: number, l: number): void { this.add(`request ${i} ${b} ${l}`); }
  onCancel(i: number, b: number, l: number): void { this.add(`cancel ${i} ${b} ${l}`); }
  onPieceStart(_i: number, _b: number, length: number): Buffer | null {
    this.block = this.discardPieces ? null : Buffer.alloc(length);
    return this.block;
  }
  onPiece(i: number, b: number, l: number): void {
    this.add(`piece ${i} ${b} ${l} ${this.block ? this.block.toString('hex') : 'discarded'}`);
    this.block = null;
  }
  onPort(port: number): void { this.add(`port ${port}`); }
  onSuggest(index: number): void { this.add(`suggest ${index}`); }
  onHaveAll(): void { this.add('have-all'); }
  onHaveNone(): void { this.add('have-none'); }
  onReject(i: number, b: number, l: number): void { this.add(`reject ${i} ${b} ${l}`); }
  onAllowedFast(index: number): void { this.add(`allowed-fast ${index}`); }
  onExtendedHandshake(dict: Record<string, unknown>): void { this.add(`ext-handshake ${JSON.stringify(toJson(dict))}`); }
  onExtended(id: number, payload: Buffer): void { this.add(`ext ${id} ${payload.toString('hex')}`); }
  onClose(err?: Error): void {
    if (this.closed) throw new Error('onClose called twice');
    this.closed = true;
    this.closeError = err;
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }
}

/** Bencode values to JSON-comparable form (Buffers become hex strings, dict keys sorted). */
export function toJson(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `0x${v.toString('hex')}`;
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = toJson((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
