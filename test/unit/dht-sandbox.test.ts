import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { Dht, PUBLIC_ROUTERS } from '../../src/dht/index.js';
import { isSandboxAddress } from '../../src/util/sandbox.js';

/** Records the destination of every datagram this process sends (observes the real socket, changes nothing). */
function watchSends(): { destinations: string[]; restore(): void } {
  const proto = dgram.Socket.prototype as unknown as { send: (...args: unknown[]) => void };
  const orig = proto.send;
  const destinations: string[] = [];
  proto.send = function (this: unknown, ...args: unknown[]) {
    destinations.push(String(args.find((a) => typeof a === 'string')));
    return orig.apply(this, args);
  };
  return { destinations, restore: () => { proto.send = orig; } };
}

test('SHOAL_SANDBOX=1: public routers are dropped, sends outside loopback/198.18.0.0/15 are refused, resolved names are checked', { timeout: 10_000 }, async () => {
  const saved = process.env['SHOAL_SANDBOX'];
  process.env['SHOAL_SANDBOX'] = '1';
  const watch = watchSends();
  const local = new Dht({ port: 0, host: '127.0.0.1' });
  const resolved: string[] = [];
  let dht: Dht | undefined;
  try {
    await local.listen();
    dht = new Dht({
      port: 0,
      host: '127.0.0.1',
      queryTimeoutMs: 300,
      bootstrap: ['8.8.8.8:6881', ...PUBLIC_ROUTERS, 'Router.BitTorrent.com:1234', 'evil.example:6881', `localhost:${local.port}`, '198.18.0.9:6881'],
      resolve: async (host) => {
        resolved.push(host);
        // A name that resolves outside the sandbox must be refused at send time like a literal address.
        if (host === 'evil.example') return ['8.8.4.4'];
        return (await lookup(host, { family: 4, all: true })).map((a) => a.address);
      },
    });
    const warnings: string[] = [];
    dht.on('warning', (m: string) => warnings.push(m));
    await dht.listen();
    await dht.bootstrapped();
    dht.addNode({ host: '1.1.1.1', port: 6881 });

    assert.deepEqual(resolved.sort(), ['evil.example', 'localhost'], 'public routers are never even resolved');
    const st = dht.stats();
    assert.equal(st.refusedSends, 3, '8.8.8.8, evil.example → 8.8.4.4, and 1.1.1.1 were refused');
    assert.ok(warnings.some((w) => /SHOAL_SANDBOX=1: refusing to send to 8\.8\.8\.8:6881/.test(w)));
    const outside = watch.destinations.filter((d) => !isSandboxAddress(d));
    assert.deepEqual(outside, [], 'no datagram left for an address outside the sandbox');
    // Loopback and 198.18.0.0/15 are allowed: the local node was reached and answered.
    assert.ok(watch.destinations.includes('127.0.0.1'));
    assert.ok(watch.destinations.includes('198.18.0.9'));
    assert.equal(st.nodes, 1);
    assert.equal(st.packetsOut + local.stats().packetsOut, watch.destinations.length, 'packetsOut counts only datagrams really sent');
  } finally {
    watch.restore();
    await dht?.close();
    await local.close();
    if (saved === undefined) delete process.env['SHOAL_SANDBOX']; else process.env['SHOAL_SANDBOX'] = saved;
  }
});

test('bad options are EUSAGE errors', () => {
  assert.throws(() => new Dht({ port: 70000 }), /port 70000/);
  assert.throws(() => new Dht({ port: 0, bootstrap: ['nonsense'] }), /bootstrap node nonsense/);
  assert.throws(() => new Dht({ port: 0, host: '::1' }), /IPv6/);
  assert.throws(() => new Dht({ port: 0, nodeId: Buffer.alloc(3) }), /20 bytes/);
});
