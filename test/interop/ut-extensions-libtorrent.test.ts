// ut_metadata and ut_pex against libtorrent 2.0 (Debian python3-libtorrent) on loopback, over a minimal BEP 10 transport.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decode, decodeWithSpans, encode } from '../../src/bencode/index.js';
import { decodeCompactPeers4 } from '../../src/discovery/compact.js';
import { UtMetadata } from '../../src/extensions/ut-metadata.js';
import { UtPex } from '../../src/extensions/ut-pex.js';
import type { PexPeer } from '../../src/extensions/ut-pex.js';
import { requirePeer } from '../helpers/real-peers/require-peer.js';
import { makeTorrentLt, startLibtorrent } from '../helpers/real-peers/libtorrent.js';
import { writeRandomFile } from '../helpers/real-peers/data.js';
import { withScope } from '../helpers/real-peers/scope.js';
import type { Scope } from '../helpers/real-peers/scope.js';
import { TestMetadataHost, sha1 } from '../helpers/metadata-fixtures.js';
import { TcpExtensionConnection } from '../helpers/tcp-extension-conn.js';
import { SYSTEM_PYTHON } from '../helpers/real-peers/libtorrent.js';
import { startProcess } from '../helpers/real-peers/proc.js';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

const HOST = '127.0.0.1';

/** A libtorrent seed of a torrent whose info dict spans several 16 KiB metadata pieces. */
async function ltSeed(s: Scope): Promise<{ port: number; info: Buffer; infoHash: Buffer }> {
  const dir = await s.tempDir('shoal-ext-');
  const data = join(dir, 'seed', 'payload.bin');
  await writeRandomFile(data, 32 * 1024 * 1024); // 2048 pieces of 16 KiB: 40 KiB of piece hashes, 3 metadata pieces
  const torrentPath = join(dir, 'lt.torrent');
  await makeTorrentLt({ path: data, out: torrentPath, pieceLength: 16384 });
  const torrent = await readFile(torrentPath);
  const [a, b] = decodeWithSpans(torrent).spans.get('info')!;
  const info = torrent.subarray(a, b);
  const lt = s.use(await startLibtorrent({ mode: 'seed', torrentPath, savePath: join(dir, 'seed') }));
  await lt.waitDone(30_000);
  return { port: lt.port, info, infoHash: sha1(info) };
}

function every(ms: number, fn: () => void, s: Scope): void {
  const t = setInterval(fn, ms);
  s.defer(() => clearInterval(t));
}

test('ut_metadata and ut_pex against a libtorrent seed', { timeout: 120_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const seed = await ltSeed(s);

    await t.test('UtMetadata fetches a multi-piece info dict from libtorrent and verifies it', async () => {
      assert.ok(seed.info.length > 2 * 16384, `info is ${seed.info.length} bytes`);
      const host = new TestMetadataHost(seed.infoHash);
      const got = new Promise<Buffer>((resolve) => { host.metadataReceived = (b) => { TestMetadataHost.prototype.metadataReceived.call(host, b); resolve(b); }; });
      const ext = new UtMetadata(host);
      const conn = await TcpExtensionConnection.dial(HOST, seed.port, seed.infoHash, [ext], 40_001);
      s.defer(() => conn.close('test done'));
      assert.equal(conn.remoteHandshake!['metadata_size'], seed.info.length);
      every(1000, () => ext.tick(), s);
      let timer: NodeJS.Timeout | undefined;
      const info = await Promise.race([got, new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no metadata: ${JSON.stringify(ext.progress())} closed=${conn.closedReason}`)), 30_000);
      })]).finally(() => clearTimeout(timer));
      assert.ok(info.equals(seed.info));
      assert.equal(host.received.length, 1);
      assert.equal(conn.closed, false);
      assert.deepEqual(host.warnings, []);
      conn.close('test done');
    });

    await t.test('UtPex learns peers from libtorrent\'s PEX, never its own address or libtorrent\'s', async () => {
      // Two connections from "different peers" (listen ports 40101, 40102 as told in `p`), each with its own UtPex.
      const learned: PexPeer[][] = [[], []];
      const rawAdded: string[][] = [[], []];
      const exts = [40_101, 40_102].map((port, i) => {
        const ext = new UtPex({
          listenPort: port,
          connectedPeers: () => [],
          peersLearned: (peers) => { learned[i]!.push(...peers); },
        });
        const onMessage = ext.onMessage.bind(ext);
        ext.onMessage = (c, payload) => {
          const d = decode(payload) as Record<string, Buffer>;
          rawAdded[i]!.push(...decodeCompactPeers4(d['added'] ?? Buffer.alloc(0)).map((a) => `${a.host}:${a.port}`));
          onMessage(c, payload);
        };
        return ext;
      });
      const conns: TcpExtensionConnection[] = [];
      for (const [i, port] of [40_101, 40_102].entries()) {
        const c = await TcpExtensionConnection.dial(HOST, seed.port, seed.infoHash, [exts[i]!], port);
        s.defer(() => c.close('test done'));
        conns.push(c);
      }
      every(1000, () => { for (const e of exts) e.tick(); }, s);
      const deadline = Date.now() + 20_000;
      while ((learned[0]!.length === 0 || learned[1]!.length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const show = (l: PexPeer[]) => l.map((p) => `${p.host}:${p.port}`);
      // libtorrent sends every connection the full list, the recipient included: UtPex filters that one out
      // (libtorrent's `yourip` plus our listen port) and keeps the other.
      assert.ok(rawAdded[0]!.includes(`${HOST}:40101`), `libtorrent sent ${rawAdded[0]!.join(', ')}`);
      assert.deepEqual(show(learned[0]!), [`${HOST}:40102`]);
      assert.deepEqual(show(learned[1]!), [`${HOST}:40101`]);
      for (const c of conns) assert.equal(c.closed, false, c.closedReason);
    });
  });
});

/** libtorrent given only a magnet link and our address: prints the info-hash and size once it has the metadata. */
const LT_MAGNET = `
import json, sys, time
import libtorrent as lt
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                  "enable_upnp": False, "enable_natpmp": False,
                  "enable_outgoing_utp": False, "enable_incoming_utp": False})
params = lt.parse_magnet_uri(sys.argv[1])
params.save_path = sys.argv[2]
h = ses.add_torrent(params)
deadline = time.time() + 40
last = 0
while time.time() < deadline:
    st = h.status()
    if st.has_metadata:
        ti = h.torrent_file()
        print(json.dumps({"event": "metadata", "infoHash": str(ti.info_hash()), "size": ti.metadata_size()}), flush=True)
        break
    if time.time() - last > 1:
        last = time.time()
        h.connect_peer(("127.0.0.1", int(sys.argv[3])))
    ses.wait_for_alert(100)
    ses.pop_alerts()
`;

test('libtorrent with only a magnet link fetches the info dict that UtMetadata serves', { timeout: 60_000 }, async (t) => {
  if (!requirePeer(t, 'python3:libtorrent', 'python3-libtorrent')) return;
  await withScope(async (s) => {
    const dir = await s.tempDir('shoal-ext-');
    // An info dict of 3 metadata pieces, built without any payload (libtorrent only needs the metadata here).
    const pieces = Buffer.alloc(2048 * 20);
    for (let i = 0; i < pieces.length; i++) pieces[i] = (i * 131 + 7) & 0xff;
    const info = encode({ length: 2048 * 16384, name: 'served.bin', 'piece length': 16384, pieces });
    const infoHash = sha1(info);
    const host = new TestMetadataHost(infoHash, info);
    const ext = new UtMetadata(host);
    const conns: TcpExtensionConnection[] = [];
    const server = createServer((socket: Socket) => {
      void TcpExtensionConnection.accept(socket, infoHash, [ext], (server.address() as AddressInfo).port)
        .then((c) => conns.push(c), () => {}); // libtorrent's first try is encrypted (MSE), which this transport refuses
    });
    await new Promise<void>((r) => server.listen(0, HOST, r));
    s.defer(() => new Promise<void>((r) => { for (const c of conns) c.close('test done'); server.close(() => r()); }));
    const port = (server.address() as AddressInfo).port;
    const lt = startProcess('libtorrent magnet', SYSTEM_PYTHON, ['-c', LT_MAGNET, `magnet:?xt=urn:btih:${infoHash.toString('hex')}`, join(dir, 'lt'), String(port)]);
    s.defer(() => lt.stop());
    const got = await new Promise<{ infoHash: string; size: number }>((resolve, reject) => {
      lt.onLine((line, stream) => {
        if (stream === 'stdout' && line.startsWith('{')) resolve(JSON.parse(line) as { infoHash: string; size: number });
      });
      void lt.exited.then(({ code }) => reject(new Error(`libtorrent exited (${code}) without the metadata:\n${lt.logTail()}`)));
    });
    assert.equal(got.infoHash, infoHash.toString('hex'));
    assert.equal(got.size, info.length);
    assert.ok(conns.length >= 1);
    for (const c of conns) assert.equal(c.closedReason, undefined);
  });
});
