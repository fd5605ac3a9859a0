// Two Shoal Lsd processes on a namespace LAN find each other by real multicast (BEP 14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createLan, requireLan, listNamespaces } from '../helpers/netns.js';
import { startLsdNode } from '../helpers/lsd-proc.js';
import { withScope } from '../helpers/real-peers/scope.js';

const hex = (): string => randomBytes(20).toString('hex');

test('two namespaces learn each other for the shared info-hash only; repeated announces are rate limited', { timeout: 20_000 }, async (t) => {
  if (!requireLan(t)) return;
  let prefix = '';
  await withScope(async (s) => {
    const lan = createLan(2);
    s.defer(() => lan.destroy());
    prefix = lan.prefix;
    assert.equal(listNamespaces().filter((n) => n.startsWith(prefix)).length, 3, 'a bridge and two hosts');
    const [ha, hb] = lan.hosts as [typeof lan.hosts[0], typeof lan.hosts[0]];
    const shared = hex();
    const onlyA = hex();
    const onlyB = hex();
    // Both start before either announces, so the first announce of each is heard.
    const a = s.use(await startLsdNode(ha, { port: 40001, watch: [shared, onlyA] }));
    const b = s.use(await startLsdNode(hb, { port: 40002, watch: [shared, onlyB] }));
    a.send({ cmd: 'announce', infoHashes: [shared, onlyA] });
    b.send({ cmd: 'announce', infoHashes: [shared, onlyB] });
    const seenByA = await a.waitFor('A to hear B', 5000, (e) => e.event === 'peer' && e.infoHash === shared);
    const seenByB = await b.waitFor('B to hear A', 5000, (e) => e.event === 'peer' && e.infoHash === shared);
    assert.deepEqual({ host: seenByA.host, port: seenByA.port }, { host: hb.ip, port: 40002 });
    assert.deepEqual({ host: seenByB.host, port: seenByB.port }, { host: ha.ip, port: 40001 });

    for (let i = 0; i < 5; i++) { a.send({ cmd: 'announce', infoHashes: [shared, onlyA] }); await new Promise((r) => setTimeout(r, 100)); }
    await new Promise((r) => setTimeout(r, 300));
    const statsA = await a.stats();
    const statsB = await b.stats();
    // One datagram carried both of A's info-hashes, once: the five repeats were inside the 60 s limit.
    assert.equal(statsA.datagramsSent, 1, JSON.stringify(statsA));
    // B received A's one datagram and its own looped-back one.
    assert.equal(statsB.datagramsReceived, 2, JSON.stringify(statsB));
    assert.equal(statsB.ownDropped, 1, JSON.stringify(statsB));
    assert.equal(statsB.malformed, 0);
    // Multicast loopback is on, so each also heard its own datagram, and dropped it by cookie.
    assert.equal(statsA.ownDropped, 1, JSON.stringify(statsA));

    const peersA = a.events.filter((e) => e.event === 'peer');
    const peersB = b.events.filter((e) => e.event === 'peer');
    assert.deepEqual(peersA.map((e) => e.infoHash), [shared], 'A reports only the shared info-hash');
    assert.deepEqual(peersB.map((e) => e.infoHash), [shared], 'B reports only the shared info-hash');
    assert.deepEqual([...a.events, ...b.events].filter((e) => e.event === 'warning'), []);
  });
  assert.deepEqual(listNamespaces().filter((n) => n.startsWith(prefix)), [], 'teardown removed every namespace it created');
});

