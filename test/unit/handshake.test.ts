import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { isShoalError } from '../../src/util/errors.js';
import {
  connectPeer, encodeHandshake, encodeIndexMessage, MessageId, parseHandshake, readHandshake, type HandshakeInfo,
} from '../../src/wire/index.js';
import { hasIPv6Loopback } from '../helpers/wire-sockets.js';

const INFO_HASH = Buffer.alloc(20, 0xab);

interface Server {
  port: number;
  /** Resolves with what the server-side connection handler returned (or threw). */
  results: Array<Promise<unknown>>;
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** A loopback server running `onConn` for each accepted socket. */
async function serve(host: string, onConn: (s: net.Socket) => Promise<unknown>): Promise<Server> {
  const sockets: net.Socket[] = [];
  const results: Array<Promise<unknown>> = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    const r = onConn(s);
    r.catch(() => {});
    results.push(r);
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    results,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The usual inbound side: read their handshake, answer with ours plus a message. */
function answering(infoHash: Buffer, extra: Buffer = Buffer.alloc(0)) {
  return async (s: net.Socket): Promise<HandshakeInfo> => {
    const { handshake } = await readHandshake(s, 5000);
    s.write(Buffer.concat([encodeHandshake(infoHash, Buffer.alloc(20, 0x22), { fast: true, extended: true }), extra]));
    return handshake;
  };
}

/** Collects `n` bytes: the handshake's leftover plus whatever follows on the socket. */
function readBytes(socket: net.Socket, first: Buffer, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts = [first];
    let have = first.length;
    const check = (): void => {
      if (have >= n) {
        socket.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    const onData = (c: Buffer): void => { parts.push(c); have += c.length; check(); };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
    check();
  });
}

test('encodeHandshake / parseHandshake round trip with reserved bits', () => {
  const peerId = randomBytes(20);
  for (const flags of [{}, { fast: true }, { extended: true }, { dht: true }, { fast: true, extended: true, dht: true }]) {
    const buf = encodeHandshake(INFO_HASH, peerId, flags);
    assert.equal(buf.length, 68);
    assert.equal(buf.subarray(0, 20).toString('latin1'), '\x13BitTorrent protocol');
    const h = parseHandshake(buf);
    assert.ok(h.infoHash.equals(INFO_HASH));
    assert.ok(h.peerId.equals(peerId));
    assert.equal(h.fast, !!(flags as { fast?: boolean }).fast);
    assert.equal(h.extended, !!(flags as { extended?: boolean }).extended);
    assert.equal(h.dht, !!(flags as { dht?: boolean }).dht);
  }
  const all = encodeHandshake(INFO_HASH, peerId, { fast: true, extended: true, dht: true });
  assert.equal(all[25], 0x10);
  assert.equal(all[27], 0x05);
});

test('parseHandshake rejects a wrong pstrlen, pstr or size', () => {
  const good = encodeHandshake(INFO_HASH, Buffer.alloc(20), {});
  const badLen = Buffer.from(good); badLen[0] = 18;
  assert.throws(() => parseHandshake(badLen), (e) => isShoalError(e, 'EWIRE') && /protocol string length 18/.test(e.message));
  const badStr = Buffer.from(good); badStr[5] = 0x78;
  assert.throws(() => parseHandshake(badStr), (e) => isShoalError(e, 'EWIRE') && /is not "BitTorrent protocol"/.test(e.message));
  assert.throws(() => parseHandshake(good.subarray(0, 60)), (e) => isShoalError(e, 'EWIRE') && /60-byte handshake/.test(e.message));
  assert.throws(() => encodeHandshake(Buffer.alloc(19), Buffer.alloc(20), {}), (e) => isShoalError(e, 'EUSAGE'));
});

for (const host of ['127.0.0.1', '::1']) {
  test(`connectPeer <-> readHandshake over ${host}`, async (t) => {
    if (host === '::1' && !(await hasIPv6Loopback())) return t.skip('no IPv6 loopback here');
    const extra = Buffer.concat([encodeIndexMessage(MessageId.Have, 5), encodeIndexMessage(MessageId.Have, 6)]);
    const server = await serve(host, answering(INFO_HASH, extra));
    const peerId = Buffer.alloc(20, 0x11);
    try {
      const { socket, handshake, rest } = await connectPeer({ host, port: server.port }, {
        infoHash: INFO_HASH, peerId, fast: true, extended: true, timeoutMs: 5000,
      });
      try {
        assert.ok(handshake.infoHash.equals(INFO_HASH));
        assert.ok(handshake.peerId.equals(Buffer.alloc(20, 0x22)));
        assert.equal(handshake.fast, true);
        assert.equal(handshake.extended, true);
        // Bytes after the handshake are neither lost nor duplicated, however they were chunked.
        assert.ok((await readBytes(socket, rest, extra.length)).equals(extra));
        const theirs = (await server.results[0]) as HandshakeInfo;
        assert.ok(theirs.peerId.equals(peerId));
        assert.equal(theirs.fast, true);
        assert.equal(theirs.extended, true);
        assert.equal(socket.remoteAddress, host);
      } finally {
        socket.destroy();
      }
    } finally {
      await server.close();
    }
  });
}

test('connectPeer rejects and closes when the peer answers for another torrent', async () => {
  const server = await serve('127.0.0.1', answering(Buffer.alloc(20, 0x01)));
  try {
    await assert.rejects(
      connectPeer({ host: '127.0.0.1', port: server.port }, { infoHash: INFO_HASH, peerId: Buffer.alloc(20), timeoutMs: 5000 }),
      (e) => isShoalError(e, 'EWIRE') && /answered with info-hash 0101/.test(e.message),
    );
    // Our side closed the connection: the server socket sees the end.
    await new Promise<void>((resolve) => {
      const s = server.sockets[0]!;
      if (s.destroyed) resolve();
      s.once('close', () => resolve());
      s.resume();
    });
  } finally {
    await server.close();
  }
});

test('connectPeer rejects a bad protocol string without waiting for 68 bytes', async () => {
  const server = await serve('127.0.0.1', async (s) => { s.write('HTTP/1.1 400 Bad'); });
  try {
    await assert.rejects(
      connectPeer({ host: '127.0.0.1', port: server.port }, { infoHash: INFO_HASH, peerId: Buffer.alloc(20), timeoutMs: 30_000 }),
      (e) => isShoalError(e, 'EWIRE') && /protocol string length 72/.test(e.message),
    );
  } finally {
    await server.close();
  }
});

test('readHandshake rejects garbage from an inbound peer and leaves the socket to the caller', async () => {
  const server = await serve('127.0.0.1', (s) => readHandshake(s, 30_000));
  const client = net.connect({ host: '127.0.0.1', port: server.port });
  client.on('error', () => {});
  try {
    client.write(Buffer.from('\x13BitTorrent protokol'));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    await assert.rejects(waitResult(server),
      (e) => isShoalError(e, 'EWIRE') && /"BitTorrent protokol" is not "BitTorrent protocol"/.test(e.message));
    assert.equal(server.sockets[0]!.destroyed, false);
    assert.equal(server.sockets[0]!.listenerCount('data'), 0);
  } finally {
    client.destroy();
    await server.close();
  }
});

function waitResult(server: Server): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (server.results.length > 0) {
        clearInterval(poll);
        server.results[0]!.then(resolve, reject);
      }
    }, 5);
  });
}

test('connectPeer times out when the peer never answers', async () => {
  const server = await serve('127.0.0.1', () => new Promise(() => {}));
  try {
    await assert.rejects(
      connectPeer({ host: '127.0.0.1', port: server.port }, { infoHash: INFO_HASH, peerId: Buffer.alloc(20), timeoutMs: 150 }),
      (e) => isShoalError(e, 'ETIMEOUT') && /sent no handshake within/.test(e.message),
    );
  } finally {
    await server.close();
  }
});

test('readHandshake times out, and rejects when the peer closes mid-handshake', async () => {
  const server = await serve('127.0.0.1', (s) => readHandshake(s, 150));
  const client = net.connect({ host: '127.0.0.1', port: server.port });
  client.on('error', () => {});
  try {
    client.write(encodeHandshake(INFO_HASH, Buffer.alloc(20), {}).subarray(0, 30));
    await assert.rejects(waitResult(server), (e) => isShoalError(e, 'ETIMEOUT'));
  } finally {
    client.destroy();
    await server.close();
  }

  const server2 = await serve('127.0.0.1', (s) => readHandshake(s, 30_000));
  const client2 = net.connect({ host: '127.0.0.1', port: server2.port });
  client2.on('error', () => {});
  try {
    client2.end(encodeHandshake(INFO_HASH, Buffer.alloc(20), {}).subarray(0, 40));
    await assert.rejects(waitResult(server2), (e) => isShoalError(e, 'EWIRE') && /closed the connection during the handshake/.test(e.message));
  } finally {
    client2.destroy();
    await server2.close();
  }
});

test('connectPeer reports a refused connection as a ShoalError', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  await assert.rejects(
    connectPeer({ host: '127.0.0.1', port }, { infoHash: INFO_HASH, peerId: Buffer.alloc(20), timeoutMs: 5000 }),
    (e) => isShoalError(e, 'EWIRE') && /could not connect to peer 127\.0\.0\.1:\d+/.test(e.message),
  );
});
