// The controller's embedded tracker places agents by the --zone/--rack they report (no --zones file): each agent
// reports from its own loopback address, then announces from it; peer lists put the same rack first, then the zone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetController } from '../../src/fleet/controller.js';
import { AgentZones } from '../../src/fleet/locality.js';
import { decode, type BDict } from '../../src/bencode/index.js';
import { request } from 'node:http';
import { announceQuery, infoHash, peerId } from '../helpers/tracker-raw.js';

const TOKEN = 'test-token-0123456789abcdef';

/** An HTTP request from a chosen loopback address (the controller tells agents apart by address). */
function httpFrom(localAddress: string, port: number, path: string, body?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path, localAddress, method: body === undefined ? 'GET' : 'POST', timeout: 5000,
      headers: body === undefined ? {} : { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function report(zone: string, rack: string): string {
  return JSON.stringify({ host: `h-${zone}-${rack}`, addresses: [], channels: ['app'], peerPort: 6881, current: {}, releases: [], zone, rack });
}

function peersOf(body: Buffer): string[] {
  const d = decode(body) as BDict;
  const c = d['peers'];
  assert.ok(Buffer.isBuffer(c), `no compact peers in ${body.toString('latin1')}`);
  const out: string[] = [];
  for (let i = 0; i + 6 <= c.length; i += 6) out.push(`${c[0 + i]}.${c[1 + i]}.${c[2 + i]}.${c[3 + i]}`);
  return out;
}

test('controller tracker: agents\' own zone/rack labels order peer lists (same rack, then same zone)', { timeout: 20_000 }, async (t) => {
  const ctl = new FleetController({ tokens: [TOKEN] });
  const port = await ctl.listen();
  t.after(() => ctl.close());
  const agents = [
    { ip: '127.0.0.2', zone: 'a', rack: 'r1' },
    { ip: '127.0.0.3', zone: 'a', rack: 'r2' },
    { ip: '127.0.0.4', zone: 'b', rack: 'r1' },
    { ip: '127.0.0.5', zone: 'b', rack: 'r1' },
    { ip: '127.0.0.6', zone: 'c', rack: 'r1' },
  ];
  for (const [i, a] of agents.entries()) {
    const r = await httpFrom(a.ip, port, `/api/agents/agent${i}/report`, report(a.zone, a.rack));
    assert.equal(r.status, 200, r.body.toString());
  }
  const ih = infoHash('fleet-locality');
  const announce = async (i: number, numwant: number): Promise<string[]> => {
    const r = await httpFrom(agents[i]!.ip, port, `/announce?${announceQuery({ infoHash: ih, peerId: peerId(`agent${i}`), numwant, compact: 1 })}`);
    assert.equal(r.status, 200);
    return peersOf(r.body);
  };
  for (let i = 0; i < agents.length; i++) await announce(i, 50);
  for (let round = 0; round < 5; round++) {
    assert.deepEqual(await announce(0, 1), ['127.0.0.3'], 'a/r1 gets its zone before other zones');
    assert.deepEqual(await announce(2, 1), ['127.0.0.5'], 'b/r1 gets its rack first');
    assert.deepEqual(await announce(3, 1), ['127.0.0.4'], 'b/r1 gets its rack first');
    const two = await announce(2, 2);
    assert.equal(two.length, 2);
    assert.equal(two[0], '127.0.0.5', 'then the rest');
  }
  // Without labels (an agent that reports no zone) nothing changes for the others.
  assert.equal((await announce(4, 4)).length, 4);
});

test('AgentZones: labels by address, removal, bad addresses ignored', () => {
  const z = new AgentZones();
  assert.equal(z.set('10.0.0.1', 'a', 'r1'), true);
  assert.equal(z.set('10.0.0.1', 'a', 'r1'), false, 'unchanged');
  assert.equal(z.set('10.0.0.2', 'a', undefined), true);
  assert.equal(z.set('not-an-ip', 'a', 'r1'), false);
  assert.equal(z.set('fd00::1', 'b', 'r1'), true);
  const a1 = z.lookupIp('10.0.0.1')!, a2 = z.lookupIp('10.0.0.2')!, b1 = z.lookupIp('fd00::1')!;
  assert.equal(a1.zone, a2.zone);
  assert.notEqual(a1.zone, b1.zone);
  assert.equal(a2.rack, 0, 'no rack: matches no other rack');
  assert.equal(z.lookup(Buffer.from([10, 0, 0, 1, 0x1a, 0xe1]))?.zone, a1.zone, 'compact address');
  assert.equal(z.lookupIp('10.0.0.3'), undefined);
  assert.equal(z.lookupIp('::ffff:10.0.0.1'), a1, 'v4-mapped');
  assert.equal(z.lookup(Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff, 10, 0, 0, 1, 0x1a, 0xe1])])), a1, 'v4-mapped compact');
  assert.equal(z.set('10.0.0.9', 'a', 'r1'), true);
  assert.deepEqual(z.lookupIp('10.0.0.9'), a1, 'same labels, same ids');
  assert.equal(z.set('10.0.0.1', 'b', 'r1'), true, 'moved');
  assert.equal(z.lookupIp('10.0.0.1')!.zone, b1.zone);
  assert.notEqual(z.lookupIp('10.0.0.1')!.rack, a1.rack, 'rack r1 of zone b is not rack r1 of zone a');
  assert.equal(z.set('10.0.0.1', undefined, undefined), true);
  assert.equal(z.lookupIp('10.0.0.1'), undefined);
  assert.equal(z.agentCount, 3);
});
