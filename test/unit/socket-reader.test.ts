// Dialed sockets read into one reused buffer (socket-reader.ts): bytes must arrive complete and in order, including
// those that came while no reader was attached, and whatever a reader keeps must survive later reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connectReusingBuffer, isVolatile, readFrom, resumeReading, reuseBufferOnAccepted, type ReadSink } from '../../src/wire/socket-reader.js';
import { MessageParser } from '../../src/wire/parser.js';
import { encodeExtended } from '../../src/wire/encode.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import type { WireHandler } from '../../src/wire/types.js';

/** A reader that hands on exactly the bytes delivered (0..length of the buffer). */
function sink(onChunk: (chunk: Buffer) => void): ReadSink {
  return { onRead: (buf, length) => onChunk(buf.subarray(0, length)) };
}

async function server(onSocket: (s: net.Socket) => void, opts: net.ServerOpts = {}): Promise<{ port: number; srv: net.Server; close(): Promise<void> }> {
  const srv = net.createServer(opts, onSocket);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as AddressInfo).port, srv, close: () => new Promise((r) => srv.close(() => r())) };
}

test('bytes sent before a reader attaches are delivered first, in order, then the live stream', { timeout: 10_000 }, async () => {
  const data = pseudoRandom(3 * 1024 * 1024 + 17, 7);
  const srv = await server((s) => { s.end(data); });
  try {
    const sock = connectReusingBuffer({ host: '127.0.0.1', port: srv.port });
    assert.equal(isVolatile(sock), true);
    await once(sock, 'connect');
    // Let the first bytes arrive with nobody reading: they are copied aside and the socket pauses.
    await new Promise((r) => setTimeout(r, 100));
    const got: Buffer[] = [];
    readFrom(sock, sink((chunk) => got.push(Buffer.from(chunk))));
    resumeReading(sock);
    await once(sock, 'end');
    sock.destroy();
    assert.ok(Buffer.concat(got).equals(data), 'every byte, in order');
  } finally {
    await srv.close();
  }
});

test('a reader that detaches midway leaves the rest for the next reader', { timeout: 10_000 }, async () => {
  const data = pseudoRandom(1024 * 1024, 8);
  const srv = await server((s) => { s.end(data); });
  try {
    const sock = connectReusingBuffer({ host: '127.0.0.1', port: srv.port });
    const first: Buffer[] = [];
    const detach = readFrom(sock, sink((chunk) => {
      first.push(Buffer.from(chunk));
      detach();
      sock.pause();
    }));
    resumeReading(sock);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(first.length, 1);
    const rest: Buffer[] = [];
    readFrom(sock, sink((chunk) => rest.push(Buffer.from(chunk))));
    resumeReading(sock);
    await once(sock, 'end');
    sock.destroy();
    assert.ok(Buffer.concat([...first, ...rest]).equals(data));
  } finally {
    await srv.close();
  }
});

test('a volatile parser hands handlers extended payloads that later reads cannot overwrite', () => {
  const kept: Buffer[] = [];
  const handler = { onExtended: (_id: number, payload: Buffer) => { kept.push(payload); } } as unknown as WireHandler;
  const parser = new MessageParser(handler, { volatileInput: true });
  const reused = Buffer.alloc(64);
  for (const text of ['first message', 'second one!!']) {
    const msg = encodeExtended(3, Buffer.from(text));
    msg.copy(reused);
    parser.push(reused.subarray(0, msg.length));
    reused.fill(0xee);
  }
  assert.deepEqual(kept.map((b) => b.toString()), ['first message', 'second one!!']);
});

test('accepted sockets left alone are not volatile and read through data events', { timeout: 10_000 }, async () => {
  let accepted: net.Socket | undefined;
  const srv = await server((s) => { accepted = s; s.pause(); });
  try {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    await once(sock, 'connect');
    sock.end('hello');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(accepted);
    assert.equal(isVolatile(accepted), false);
    const got: Buffer[] = [];
    readFrom(accepted, sink((c) => got.push(c)));
    resumeReading(accepted);
    await once(accepted, 'end');
    assert.equal(Buffer.concat(got).toString(), 'hello');
    accepted.destroy();
    sock.destroy();
  } finally {
    await srv.close();
  }
});

test('an accepted socket switched to the shared buffer delivers every byte in order, early ones first', { timeout: 10_000 }, async () => {
  const data = pseudoRandom(3 * 1024 * 1024 + 5, 9);
  let accepted: net.Socket | undefined;
  let switched = false;
  const srv = await server((s) => { accepted = s; switched = reuseBufferOnAccepted(s); }, { pauseOnConnect: true });
  try {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    await once(sock, 'connect');
    sock.end(data);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(accepted);
    // The engine's Node: if this fails, Node's socket internals changed and accepted sockets lost the reused buffer.
    assert.equal(switched, true, 'switched to the shared read buffer');
    assert.equal(isVolatile(accepted), true);
    // A first reader takes one chunk and leaves; the bytes that arrive meanwhile wait for the next reader.
    const first: Buffer[] = [];
    const detach = readFrom(accepted, sink((c) => { first.push(Buffer.from(c)); detach(); accepted!.pause(); }));
    resumeReading(accepted);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(first.length, 1);
    const rest: Buffer[] = [];
    readFrom(accepted, sink((c) => rest.push(Buffer.from(c))));
    resumeReading(accepted);
    await once(accepted, 'end');
    assert.ok(Buffer.concat([...first, ...rest]).equals(data), 'every byte, in order');
    accepted.destroy();
    sock.destroy();
    await once(accepted, 'close');
    assert.equal(await new Promise((r) => srv.srv.getConnections((_e, n) => r(n))), 0, 'the server counts the connection as closed');
  } finally {
    await srv.close();
  }
});

test('a socket that is already flowing is not switched', { timeout: 10_000 }, async () => {
  let result: boolean | undefined;
  const srv = await server((s) => { s.on('data', () => undefined); result = reuseBufferOnAccepted(s); s.destroy(); });
  try {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    await once(sock, 'connect');
    await new Promise((r) => setTimeout(r, 50));
    sock.destroy();
    assert.equal(result, false);
  } finally {
    await srv.close();
  }
});

test('every socket on the shared buffer reads through one function, not a closure per socket', { timeout: 10_000 }, async () => {
  const acceptedAll: net.Socket[] = [];
  const srv = await server((s) => { acceptedAll.push(s); reuseBufferOnAccepted(s); }, { pauseOnConnect: true });
  try {
    const a = connectReusingBuffer({ host: '127.0.0.1', port: srv.port });
    const b = connectReusingBuffer({ host: '127.0.0.1', port: srv.port });
    await Promise.all([once(a, 'connect'), once(b, 'connect')]);
    await new Promise((r) => setTimeout(r, 50));
    const accepted = acceptedAll[0];
    assert.ok(accepted && isVolatile(accepted));
    // Node keeps the onread callback under a private symbol (socket-reader.ts finds it the same way).
    const callbackOf = (s: net.Socket): unknown => {
      const key = Object.getOwnPropertySymbols(s).find((k) => k.description === 'kBufferCb');
      assert.ok(key, 'Node stores the onread callback on the socket');
      return (s as unknown as Record<symbol, unknown>)[key];
    };
    assert.equal(typeof callbackOf(a), 'function');
    assert.equal(callbackOf(a), callbackOf(b), 'two dialed sockets share the callback');
    assert.equal(callbackOf(a), callbackOf(accepted), 'an accepted socket shares it too');
    a.destroy();
    b.destroy();
    for (const s of acceptedAll) s.destroy();
  } finally {
    await srv.close();
  }
});

test('a sink is handed only the bytes read, not the rest of the shared buffer', { timeout: 10_000 }, async () => {
  const srv = await server((s) => { s.end(Buffer.from('abc')); });
  try {
    const sock = connectReusingBuffer({ host: '127.0.0.1', port: srv.port });
    const lengths: number[] = [];
    let bytes = '';
    readFrom(sock, { onRead: (buf, length) => { lengths.push(length); bytes += buf.toString('latin1', 0, length); } });
    resumeReading(sock);
    await once(sock, 'end');
    sock.destroy();
    assert.equal(bytes, 'abc');
    assert.ok(lengths.every((n) => n > 0));
  } finally {
    await srv.close();
  }
});
