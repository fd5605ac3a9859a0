import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore } from '../../src/tracker/memory-store.js';
import { Endpoint, L4, L6, S4, S6, SwarmPeers } from '../../src/tracker/peer-table.js';
import type { AnnounceEvent, AnnounceRequest } from '../../src/tracker/swarm-store.js';

// The compact peer table and the memory store are checked against a plain Map-of-objects model:
// random operations on a small address pool (IPv4 and IPv6, so entries collide, move between
// seed and leecher lists, and the open-addressing index sees deletions in the middle of probe runs).

/** Address pool: 0..23 IPv4 (some sharing an IP with different ports), 24..31 IPv6. */
function compactOf(a: number): Buffer {
  if (a < 24) return Buffer.from([10, 0, a >> 2, 1, 0x1a, 0xe1 + (a & 3)]);
  const b = Buffer.alloc(18);
  b[0] = 0xfd; b[15] = a; b[16] = 0x1a; b[17] = 0xe1;
  return b;
}

function idOf(n: number): Buffer {
  const b = Buffer.alloc(20, n);
  b.write('-MD0001-', 0, 'latin1');
  return b;
}

interface ModelPeer { seed: boolean; id: number; exp: number }

type TableOp =
  | { op: 'put'; addr: number; seed: boolean; id: number; exp: number }
  | { op: 'remove'; addr: number }
  | { op: 'expire'; now: number };

const tableOp: fc.Arbitrary<TableOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('put' as const), addr: fc.nat(31), seed: fc.boolean(), id: fc.nat(255), exp: fc.integer({ min: 1, max: 100 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('remove' as const), addr: fc.nat(31) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('expire' as const), now: fc.integer({ min: 0, max: 100 }) }) },
);

function checkTable(t: SwarmPeers, model: Map<number, ModelPeer>): void {
  let seeds = 0, leechers = 0;
  for (const p of model.values()) if (p.seed) seeds++; else leechers++;
  assert.equal(t.size, model.size);
  assert.equal(t.seeds, seeds);
  assert.equal(t.leechers, leechers);
  const e = new Endpoint();
  for (let a = 0; a < 32; a++) {
    const ref = t.find(e.set(compactOf(a)));
    const m = model.get(a);
    if (!m) { assert.equal(ref, -1, `address ${a} should be absent`); continue; }
    assert.ok(ref >= 0, `address ${a} should be present`);
    const no = ref & 3, i = ref >>> 2;
    assert.equal(no, (m.seed ? S4 : L4) + (a >= 24 ? S6 : 0));
    const list = t.lists[no]!;
    assert.ok(i < list.len);
    assert.deepEqual(list.compact(i), compactOf(a));
    assert.deepEqual(list.peerId(i), idOf(m.id));
    assert.equal(list.expires(i), m.exp);
  }
  for (const no of [S4, L4, S6, L6]) {
    const l = t.lists[no];
    if (l) assert.ok(l.len > 0, 'empty lists are dropped');
  }
}

test('SwarmPeers matches a Map model under random put/remove/expire', () => {
  fc.assert(fc.property(fc.array(tableOp, { maxLength: 200 }), (ops) => {
    const t = new SwarmPeers(false);
    const model = new Map<number, ModelPeer>();
    const e = new Endpoint();
    for (const o of ops) {
      if (o.op === 'put') {
        e.set(compactOf(o.addr));
        const no = (o.seed ? S4 : L4) + (e.v6 ? S6 : 0);
        const ref = t.find(e);
        if (ref >= 0) t.update(ref, no, idOf(o.id), o.exp); else t.add(no, e, idOf(o.id), o.exp, undefined);
        model.set(o.addr, { seed: o.seed, id: o.id, exp: o.exp });
      } else if (o.op === 'remove') {
        const ref = t.find(e.set(compactOf(o.addr)));
        assert.equal(ref >= 0, model.has(o.addr));
        if (ref >= 0) t.remove(ref);
        model.delete(o.addr);
      } else {
        const gone = { seeds: 0, leechers: 0 };
        t.expire(o.now, gone);
        let s = 0, l = 0;
        for (const [a, p] of model) if (p.exp <= o.now) { model.delete(a); if (p.seed) s++; else l++; }
        assert.deepEqual(gone, { seeds: s, leechers: l });
      }
      checkTable(t, model);
    }
  }), { seed: 0x7ab1e, numRuns: 300 });
});

test('SwarmPeers grows and shrinks its arrays and index with thousands of peers', () => {
  const t = new SwarmPeers(false);
  const e = new Endpoint();
  const c = Buffer.alloc(6);
  const n = 5000;
  for (let k = 0; k < n; k++) {
    c.writeUInt32BE(0x0a000000 + k, 0); c.writeUInt16BE(6881, 4);
    t.add(k % 3 === 0 ? S4 : L4, e.set(c), idOf(k & 255), 1000 + k, undefined);
  }
  assert.equal(t.size, n);
  assert.ok(t.lists[L4]!.capacity >= t.lists[L4]!.len);
  // Expire all but the last 10: lists and index give their memory back.
  const gone = { seeds: 0, leechers: 0 };
  t.expire(1000 + n - 11, gone);
  assert.equal(gone.seeds + gone.leechers, n - 10);
  assert.equal(t.size, 10);
  assert.ok(t.lists[L4]!.capacity <= 64, `leecher list capacity ${t.lists[L4]!.capacity} after shrinking`);
  for (let k = n - 10; k < n; k++) {
    c.writeUInt32BE(0x0a000000 + k, 0);
    const ref = t.find(e.set(c));
    assert.ok(ref >= 0);
    assert.equal(t.lists[ref & 3]!.expires(ref >>> 2), 1000 + k);
  }
  c.writeUInt32BE(0x0a000000, 0);
  assert.equal(t.find(e.set(c)), -1);
});

type StoreOp =
  | { op: 'announce'; addr: number; event: AnnounceEvent; seed: boolean; id: number; numwant: number; family: 0 | 4 | 6; compactOnly: boolean }
  | { op: 'expireAll' };

const storeOp: fc.Arbitrary<StoreOp> = fc.oneof(
  { weight: 12, arbitrary: fc.record({
    op: fc.constant('announce' as const), addr: fc.nat(31),
    event: fc.constantFrom<AnnounceEvent>('none', 'started', 'completed', 'stopped', 'none'),
    seed: fc.boolean(), id: fc.nat(255), numwant: fc.constantFrom(0, 1, 3, 10, 50),
    family: fc.constantFrom<0 | 4 | 6>(0, 4, 6), compactOnly: fc.boolean(),
  }) },
  { weight: 1, arbitrary: fc.constant({ op: 'expireAll' as const }) },
);

test('MemoryStore matches a model: counts, downloaded, numwant, no self, seeds get no seeds, family filter', () => {
  const ih = Buffer.alloc(20, 7);
  fc.assert(fc.property(fc.array(storeOp, { maxLength: 120 }), (ops) => {
    const ttl = 3_600_000;
    const store = new MemoryStore({ peerTtlMs: ttl, sweepIntervalMs: 3_600_000 });
    const model = new Map<number, { seed: boolean; id: number }>();
    let downloaded = 0;
    try {
      for (const o of ops) {
        if (o.op === 'expireAll') {
          store.sweep(Date.now() + ttl + 1);
          // A swarm without peers and without announces for a TTL is forgotten, its counters too.
          model.clear();
          downloaded = 0;
          assert.equal(store.stats().swarms, 0);
          assert.equal(store.peerCount, 0);
          continue;
        }
        const compact = compactOf(o.addr);
        const seed = o.seed || o.event === 'completed';
        const req: AnnounceRequest = { infoHash: ih, peerId: idOf(o.id), compact, seed, event: o.event, numwant: o.numwant, family: o.family, compactOnly: o.compactOnly };
        const r = store.announce(req);
        const prev = model.get(o.addr);
        if (o.event === 'stopped') model.delete(o.addr);
        else {
          if (o.event === 'completed' && !prev?.seed) downloaded++;
          model.set(o.addr, { seed, id: o.id });
        }
        let seeds = 0, leechers = 0;
        for (const p of model.values()) if (p.seed) seeds++; else leechers++;
        assert.equal(r.complete, seeds);
        assert.equal(r.incomplete, leechers);
        assert.equal(r.downloaded, downloaded);
        if (o.event === 'stopped') { assert.equal(r.peers.length, 0); continue; }

        const eligible = new Map<string, number>();
        for (const [a, p] of model) {
          if (a === o.addr || (seed && p.seed)) continue;
          if (o.family === 4 && a >= 24) continue;
          if (o.family === 6 && a < 24) continue;
          eligible.set(compactOf(a).toString('hex'), a);
        }
        const got: string[] = [];
        if (o.compactOnly) {
          const b4 = r.compact4 ?? Buffer.alloc(0), b6 = r.compact6 ?? Buffer.alloc(0);
          assert.equal(b4.length % 6, 0);
          assert.equal(b6.length % 18, 0);
          for (let k = 0; k < b4.length; k += 6) got.push(b4.subarray(k, k + 6).toString('hex'));
          for (let k = 0; k < b6.length; k += 18) got.push(b6.subarray(k, k + 18).toString('hex'));
        } else {
          for (const p of r.peers) {
            const hex = p.compact.toString('hex');
            got.push(hex);
            const a = eligible.get(hex);
            assert.ok(a !== undefined, `returned peer ${hex} is not eligible`);
            assert.deepEqual(p.peerId, idOf(model.get(a)!.id));
          }
        }
        assert.equal(got.length, Math.min(o.numwant, eligible.size));
        assert.equal(new Set(got).size, got.length, 'no peer twice');
        for (const g of got) assert.ok(eligible.has(g), `returned peer ${g} is not eligible`);
      }
    } finally {
      void store.close();
    }
  }), { seed: 0x5107e, numRuns: 200 });
});
