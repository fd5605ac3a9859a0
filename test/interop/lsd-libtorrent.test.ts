// Local Service Discovery against libtorrent (python3-libtorrent 2.0), by real multicast between two
// network namespaces: each side must find the other by BEP 14 alone (no trackers, DHT or explicit peers).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { createLan, requireLan, type LanHost } from '../helpers/netns.js';
import { startLsdNode } from '../helpers/lsd-proc.js';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { SYSTEM_PYTHON } from '../helpers/real-peers/libtorrent.js';
import { startProcess, pollUntil, FatalError } from '../helpers/real-peers/proc.js';
import { withScope } from '../helpers/real-peers/scope.js';

/** lt_lsd.py sits next to the .ts source; tsc does not copy it into dist/. */
const LT_LSD = (() => {
  const here = fileURLToPath(new URL('../helpers/real-peers/lt_lsd.py', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../../test/helpers/real-peers/lt_lsd.py', import.meta.url));
})();

async function startLtLsd(host: LanHost, infoHash: string, saveDir: string) {
  const [cmd, args] = host.wrap(SYSTEM_PYTHON, [LT_LSD, '--listen', `${host.ip}:0`, '--info-hash', infoHash, '--save', saveDir]);
  const proc = startProcess('lt_lsd', cmd, args, { keepInTail: (l) => !l.startsWith('{"event": "status"') });
  let port = 0;
  proc.onLine((line, stream) => {
    if (stream !== 'stdout' || !line.startsWith('{"event": "listening"')) return;
    port = (JSON.parse(line) as { port: number }).port;
  });
  try {
    await pollUntil('libtorrent to listen', 15_000, () => {
      if (proc.exitCode !== undefined) throw new FatalError(`lt_lsd.py exited (code ${proc.exitCode})`);
      return port > 0 ? port : undefined;
    }, () => proc.logTail(), 50);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { port, logTail: () => proc.logTail(), stop: () => proc.stop(3000) };
}

function ready(t: TestContext): boolean {
  return requirePeer(t, 'python3:libtorrent', 'python3-libtorrent') && requireLan(t);
}

test('libtorrent announces on LSD; our Lsd reports its address and listen port for that info-hash', { timeout: 25_000 }, async (t) => {
  if (!ready(t)) return;
  await withScope(async (s) => {
    const lan = createLan(2);
    s.defer(() => lan.destroy());
    const [ha, hb] = lan.hosts as [LanHost, LanHost];
    const infoHash = randomBytes(20).toString('hex');
    const other = randomBytes(20).toString('hex');
    const ours = s.use(await startLsdNode(hb, { port: 40100, watch: [infoHash, other] }));
    const lt = s.use(await startLtLsd(ha, infoHash, await s.tempDir('shoal-lsd-lt-')));
    const peer = await ours.waitFor('a peer event for libtorrent\'s torrent', 10_000, (e) => e.event === 'peer')
      .catch((e: Error) => { throw new Error(`${e.message}\nlibtorrent log:\n${lt.logTail()}`); });
    assert.deepEqual(peer, { event: 'peer', infoHash, host: ha.ip, port: lt.port });
    assert.equal(ours.events.filter((e) => e.event === 'peer' && e.infoHash !== infoHash).length, 0);
    const st = await ours.stats();
    assert.equal(st.malformed, 0, 'libtorrent\'s announces parse strictly');
  });
});

test('our Lsd announces; libtorrent connects to the announced port and handshakes for that info-hash', { timeout: 25_000 }, async (t) => {
  if (!ready(t)) return;
  await withScope(async (s) => {
    const lan = createLan(2);
    s.defer(() => lan.destroy());
    const [ha, hb] = lan.hosts as [LanHost, LanHost];
    const infoHash = randomBytes(20).toString('hex');
    const lt = s.use(await startLtLsd(ha, infoHash, await s.tempDir('shoal-lsd-lt-')));
    // libtorrent has the torrent before we announce; announces repeat each second (limit lowered to 1 s) in
    // case the first one arrives before its LSD socket has joined the group.
    const ours = s.use(await startLsdNode(hb, { listen: true, announce: [infoHash], minIntervalMs: 1000, repeatMs: 1000 }));
    const hs = await ours.waitFor('libtorrent\'s handshake on our announced port', 15_000, (e) => e.event === 'handshake')
      .catch((e: Error) => { throw new Error(`${e.message}\nlibtorrent log:\n${lt.logTail()}`); });
    assert.deepEqual(hs, { event: 'handshake', infoHash, from: ha.ip });
    assert.deepEqual(ours.events.filter((e) => e.event === 'bad-connection'), []);
  });
});
