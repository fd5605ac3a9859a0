import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTorrent, parseMagnet, type Metainfo } from '../../src/metainfo/index.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import { jsonLines, runCli, startCli, stderrLines, type CliProcess, type CliResult } from '../helpers/cli.js';

const root = await mkdtemp(join(tmpdir(), 'shoal-cli-'));
const started: CliProcess[] = [];
after(async () => {
  for (const p of started) await p.stop(2000);
  await rm(root, { recursive: true, force: true });
});

// A folder with an odd-sized file, a nested file and a tiny one, so pieces straddle file boundaries.
const folder = join(root, 'share');
const FILES: Record<string, Buffer> = {
  'a.bin': pseudoRandom(300_001, 1),
  'sub/b.txt': pseudoRandom(50_000, 2),
  'c.bin': pseudoRandom(70_000, 3),
};
await mkdir(join(folder, 'sub'), { recursive: true });
for (const [p, data] of Object.entries(FILES)) await writeFile(join(folder, p), data);
const single = join(root, 'single.dat');
await writeFile(single, pseudoRandom(100_000, 4));

async function tempDir(name: string): Promise<string> {
  return mkdtemp(join(root, `${name}-`));
}

function oneErrorLine(r: CliResult): string {
  const lines = stderrLines(r);
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^shoal: /);
  return lines[0]!;
}

/** Every piece hash of the torrent matches the concatenated file data. */
function assertHashesMatch(meta: Metainfo, data: Buffer): void {
  assert.equal(meta.length, data.length);
  for (let i = 0; i < meta.pieceCount; i++) {
    const piece = data.subarray(i * meta.pieceLength, (i + 1) * meta.pieceLength);
    const want = meta.pieceHashes.subarray(i * 20, i * 20 + 20);
    assert.deepEqual(createHash('sha1').update(piece).digest(), want, `piece ${i} hash`);
  }
}

async function sameTree(dir: string): Promise<void> {
  for (const [p, data] of Object.entries(FILES)) {
    assert.ok((await readFile(join(dir, p))).equals(data), `${p} differs from the original`);
  }
}

test('create: single file with trackers, web seeds, private, comment and piece length', async () => {
  const dir = await tempDir('create1');
  const out = join(dir, 'single.torrent');
  const r = await runCli(['create', single, '-t', 'http://t1.example/announce', '-t', 'udp://t2.example:6969', '-w', 'http://ws.example/files/',
    '--private', '-c', 'for the fleet', '-l', '32KiB', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created .*single\.torrent/);
  const meta = parseTorrent(await readFile(out));
  assert.equal(meta.name, 'single.dat');
  assert.equal(meta.multiFile, false);
  assert.deepEqual(meta.announce, [['http://t1.example/announce'], ['udp://t2.example:6969']]);
  assert.deepEqual(meta.urlList, ['http://ws.example/files/']);
  assert.equal(meta.private, true);
  assert.equal(meta.comment, 'for the fleet');
  assert.equal(meta.pieceLength, 32768);
  assertHashesMatch(meta, await readFile(single));
});

test('create --json: a folder gives one parseable `created` line and a multi-file torrent', async () => {
  const dir = await tempDir('create2');
  const out = join(dir, 'share.torrent');
  const r = await runCli(['create', folder, '--json', '-o', out, '-n', 'renamed']);
  assert.equal(r.code, 0, r.stderr);
  const events = jsonLines(r.stdout);
  assert.equal(events.length, 1, r.stdout);
  const ev = events[0]!;
  assert.equal(ev.type, 'created');
  assert.equal(ev.file, out);
  assert.equal(ev.name, 'renamed');
  const meta = parseTorrent(await readFile(out));
  assert.equal(ev.infoHash, meta.infoHashHex);
  assert.equal(ev.length, meta.length);
  assert.equal(meta.multiFile, true);
  assert.equal(meta.private, false);
  assert.deepEqual(meta.announce, []);
  const paths = meta.files.filter((f) => !f.padding).map((f) => f.path.join('/')).sort();
  assert.deepEqual(paths, Object.keys(FILES).sort());
  const data = Buffer.concat(meta.files.map((f) => (f.padding ? Buffer.alloc(f.length) : FILES[f.path.join('/')]!)));
  assertHashesMatch(meta, data);
});

test('create: a bad --piece-length is a usage error (exit 2, one line) and writes nothing', async () => {
  const dir = await tempDir('create3');
  for (const bad of ['1000', '8KiB', 'lots']) {
    const r = await runCli(['create', single, '-l', bad, '-o', join(dir, 'x.torrent')]);
    assert.equal(r.code, 2, `-l ${bad}: ${r.stderr}`);
    assert.match(oneErrorLine(r), /piece-length/);
  }
  assert.deepEqual(await readdir(dir), []);
});

test('info: a created torrent, human-readable and --json', async () => {
  const dir = await tempDir('info');
  const file = join(dir, 'share.torrent');
  const c = await runCli(['create', folder, '-t', 'http://tr.example/announce', '-o', file, '-c', 'hello']);
  assert.equal(c.code, 0, c.stderr);
  const meta = parseTorrent(await readFile(file));

  const human = await runCli(['info', file]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^name\s+share$/m);
  assert.ok(human.stdout.includes(meta.infoHashHex));
  assert.ok(human.stdout.includes('http://tr.example/announce'));
  assert.match(human.stdout, /comment\s+hello/);
  for (const p of Object.keys(FILES)) assert.ok(human.stdout.includes(`share/${p}`), `${p} listed`);

  const j = await runCli(['info', '--json', file]);
  assert.equal(j.code, 0, j.stderr);
  const [ev, ...rest] = jsonLines(j.stdout);
  assert.equal(rest.length, 0);
  assert.equal(ev!.type, 'info');
  assert.equal(ev!.name, 'share');
  assert.equal(ev!.infoHash, meta.infoHashHex);
  assert.equal(ev!.length, meta.length);
  assert.deepEqual(ev!.trackers, [['http://tr.example/announce']]);
  const files = ev!.files as Array<{ index: number; path: string; length: number }>;
  assert.deepEqual(files.map((f) => f.path).sort(), Object.keys(FILES).sort());
  // The numbers shown are the ones `get --select` takes: indices into the torrent's file list.
  for (const f of files) assert.deepEqual(meta.files[f.index]!.path.join('/'), f.path);
});

test('info: a magnet link shows hash, name, trackers and peers', async () => {
  const hash = '0123456789abcdef0123456789abcdef01234567';
  const magnet = `magnet:?xt=urn:btih:${hash}&dn=fleet%20image&tr=${encodeURIComponent('http://tr.example:6969/announce')}&x.pe=127.0.0.1:6881`;
  const human = await runCli(['info', magnet]);
  assert.equal(human.code, 0, human.stderr);
  assert.ok(human.stdout.includes(hash));
  assert.ok(human.stdout.includes('fleet image'));
  assert.ok(human.stdout.includes('http://tr.example:6969/announce'));
  assert.ok(human.stdout.includes('127.0.0.1:6881'));

  const j = await runCli(['info', magnet, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const [ev] = jsonLines(j.stdout);
  assert.equal(ev!.infoHash, hash);
  assert.equal(ev!.name, 'fleet image');
  assert.deepEqual(ev!.trackers, ['http://tr.example:6969/announce']);
  assert.deepEqual(ev!.peers, ['127.0.0.1:6881']);

  // base32 info-hashes (BEP 9 allows both forms) decode to the same 20 bytes
  const b32 = await runCli(['info', '--json', 'magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH']);
  assert.equal(b32.code, 0, b32.stderr);
  assert.equal(jsonLines(b32.stdout)[0]!.infoHash, hash);
});

test('seed a folder, then get it through the embedded tracker and with --peer; SIGINT stops the seed', async (t) => {
  const work = await tempDir('seed');
  const torrentFile = join(work, 'share.torrent');
  const seed = startCli(['seed', folder, '--json', '--port', '0', '--tracker-port', '0', '--announce-host', '127.0.0.1', '--torrent-out', torrentFile], { cwd: work });
  started.push(seed);
  const ev = await seed.waitFor('seeding', 30_000);
  assert.equal(ev.torrent, torrentFile);
  const port = ev.port as number;
  assert.ok(Number.isInteger(port) && port > 0, `port ${String(ev.port)}`);
  const tracker = ev.tracker as string;
  assert.match(tracker, /^http:\/\/127\.0\.0\.1:\d+\/announce$/);
  const magnet = parseMagnet(ev.magnet as string);
  assert.ok(magnet.trackers.includes(tracker), `magnet trackers ${magnet.trackers.join(', ')}`);
  assert.deepEqual(magnet.peers, [{ host: '127.0.0.1', port }]);
  const meta = parseTorrent(await readFile(torrentFile));
  assert.equal(magnet.infoHashHex, meta.infoHashHex);
  assert.deepEqual(meta.announce, [[tracker]]);

  await t.test('get with no --peer finds the seed through the tracker', async () => {
    const dl = await tempDir('get-tracker');
    const r = await runCli(['get', torrentFile, '-o', dl, '--json', '--timeout', '60'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const events = jsonLines(r.stdout);
    assert.equal(events[0]!.type, 'added');
    assert.equal(events.at(-1)!.type, 'done');
    await sameTree(join(dl, 'share'));
  });

  await t.test('get --peer connects directly', async () => {
    const dl = await tempDir('get-peer');
    const r = await runCli(['get', torrentFile, '-o', dl, '--peer', `127.0.0.1:${port}`, '--timeout', '60'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /complete and verified/);
    await sameTree(join(dl, 'share'));
  });

  await t.test('get --select downloads only the selected file', async () => {
    const index = meta.files.findIndex((f) => f.path.join('/') === 'sub/b.txt');
    assert.ok(index >= 0);
    const dl = await tempDir('get-select');
    const r = await runCli(['get', torrentFile, '-o', dl, '--select', String(index), '--peer', `127.0.0.1:${port}`, '--timeout', '60', '--json'],
      { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok((await readFile(join(dl, 'share', 'sub', 'b.txt'))).equals(FILES['sub/b.txt']!));
    for (const other of ['a.bin', 'c.bin']) {
      await assert.rejects(stat(join(dl, 'share', other)), { code: 'ENOENT' }, `${other} must not be created`);
    }
  });

  await t.test('get from a magnet link (--json -v): metadata from the seed, then the data; peer lines; saved metadata', async () => {
    const dl = await tempDir('get-magnet');
    const r = await runCli(['--json', '-v', 'get', ev.magnet as string, '-o', dl, '--timeout', '60'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const events = jsonLines(r.stdout);
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'metadata-fetching');
    assert.ok(types.indexOf('metadata') < types.indexOf('added'), types.join(','));
    assert.equal(events.at(-1)!.type, 'done');
    const peerLines = events.filter((e) => e.type === 'peer');
    assert.ok(peerLines.some((e) => e.event === 'connected' && typeof e.address === 'string'), 'a `peer` connected line with -v');
    await sameTree(join(dl, 'share'));
    const saved = parseTorrent(await readFile(join(dl, '.shoal', `${meta.infoHashHex}.torrent`)));
    assert.equal(saved.infoHashHex, meta.infoHashHex);
    // Run again: the metadata is not fetched a second time.
    const again = await runCli(['--json', 'get', ev.magnet as string, '-o', dl, '--timeout', '60'], { timeoutMs: 90_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(jsonLines(again.stdout)[0]!.type, 'added');
  });

  await t.test('info --fetch shows a magnet as its .torrent', async () => {
    const r = await runCli(['--json', 'info', ev.magnet as string, '--fetch', '--timeout', '30'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const info = jsonLines(r.stdout)[0]!;
    assert.equal(info.infoHash, meta.infoHashHex);
    assert.equal(info.name, meta.name);
    assert.equal((info.files as unknown[]).length, meta.files.filter((f) => !f.padding).length);
  });

  await t.test('seed <torrent> -o DIR seeds what get -o DIR downloaded', async () => {
    const dl = await tempDir('get-then-seed');
    const r = await runCli(['get', torrentFile, '-o', dl, '--peer', `127.0.0.1:${port}`, '--timeout', '60'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    const reseed = startCli(['seed', torrentFile, '-o', dl, '--json', '--port', '0', '--no-embedded-tracker', '--host', '127.0.0.1']);
    started.push(reseed);
    const ev2 = await reseed.waitFor('seeding', 30_000);
    assert.equal(ev2.dir, dl);
    // --host names one address: that is the address in the magnet (not the machine's first IPv4).
    assert.deepEqual(parseMagnet(ev2.magnet as string).peers, [{ host: '127.0.0.1', port: ev2.port as number }]);
    const stopped2 = await reseed.stop(10_000);
    assert.equal(stopped2.code, 0, reseed.stderr);
  });

  const stopped = await seed.stop(10_000);
  assert.equal(stopped.killed, false, 'the seed did not exit on SIGINT');
  assert.equal(stopped.code, 0, seed.stderr);
  assert.ok(seed.events.some((e) => e.type === 'stopped'), 'a `stopped` line');
});

test('get --timeout with no peers exits 5 with one error line', async () => {
  const dir = await tempDir('timeout');
  const file = join(dir, 'lonely.torrent');
  const c = await runCli(['create', single, '-o', file]);
  assert.equal(c.code, 0, c.stderr);
  const dl = join(dir, 'dl');
  const r = await runCli(['-q', 'get', file, '-o', dl, '--timeout', '2']);
  assert.equal(r.code, 5, r.stderr);
  assert.match(oneErrorLine(r), /not complete after 2 s/);
});

test('--help for every command exits 0 and lists its options', async () => {
  const expected: Record<string, string[]> = {
    '': ['create', 'info', 'seed', 'get', 'tracker', '--json', '--quiet', '--verbose'],
    create: ['--tracker', '--web-seed', '--piece-length', '--private', '--comment', '--name', '--output'],
    info: ['<torrent>', '--json', '--fetch', '--save-torrent'],
    seed: ['--output', '--dir', '--torrent-out', '--no-lsd', '--no-pex', '--tracker', '--web-seed', '--no-embedded-tracker', '--tracker-port', '--announce-host', '--piece-length',
      '--private', '--output', '--recheck', '--port', '--host', '--upload-limit', '--max-peers'],
    get: ['--output', '--save-torrent', '--no-lsd', '--no-pex', '--peer', '--seed', '--select', '--recheck', '--timeout', '--port', '--host', '--upload-limit',
      '--download-limit', '--max-peers', '--json'],
    tracker: ['--http-port', '--udp-port', '--host', '--redis', '--allow', '--zones', '--interval'],
  };
  for (const [cmd, options] of Object.entries(expected)) {
    const r = await runCli(cmd ? [cmd, '--help'] : ['--help']);
    assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
    for (const o of options) assert.ok(r.stdout.includes(o), `${cmd || 'shoal'} --help lacks ${o}:\n${r.stdout}`);
  }
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});

test('unknown commands, unknown options and missing arguments are usage errors (exit 2, one line)', async () => {
  for (const args of [['frobnicate'], ['info', '--bogus', 'x.torrent'], ['get', 'x.torrent', '--no-such-flag'], ['create'], ['get', 'x.torrent', '--port', 'many']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    oneErrorLine(r);
    assert.equal(r.stdout, '');
  }
});
