import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { encode } from '../../src/bencode/index.js';
import { pseudoRandom } from '../helpers/make-meta.js';
import { jsonLines, runCli, stderrLines, type CliResult } from '../helpers/cli.js';

// Layout: root/in holds the bad inputs, root/out is the download folder, the CLI runs in root/cwd.
// After each run the whole of root must look exactly as before (bar files the command may create in out).
const root = await mkdtemp(join(tmpdir(), 'shoal-cli-bad-'));
after(() => rm(root, { recursive: true, force: true }));
const inDir = join(root, 'in');
const cwd = join(root, 'cwd');
await mkdir(inDir);
await mkdir(cwd);

const PIECE = 16384;
const content = pseudoRandom(PIECE + 100, 7);
const sha1 = (b: Buffer): Buffer => createHash('sha1').update(b).digest();
const pieces = Buffer.concat([sha1(content.subarray(0, PIECE)), sha1(content.subarray(PIECE))]);
const goodInfo = { name: 'payload', 'piece length': PIECE, length: content.length, pieces };
const goodTorrent = encode({ announce: 'http://127.0.0.1:1/announce', info: goodInfo });

// Each escaping file is named so it would land right next to the output folder, in root, or in /tmp.
const escapeName = `shoal-escape-${process.pid}`;
const multi = (files: unknown[]): Buffer =>
  encode({ info: { name: 'dir', 'piece length': PIECE, pieces: pieces.subarray(0, 20), files } });

const badFiles: Array<{ name: string; bytes: Buffer; code: number; message: RegExp }> = [
  { name: 'empty', bytes: Buffer.alloc(0), code: 3, message: /empty input/ },
  { name: 'random bytes', bytes: pseudoRandom(4096, 99), code: 3, message: /bencode/ },
  { name: 'truncated torrent', bytes: goodTorrent.subarray(0, goodTorrent.length - 40), code: 3, message: /bencode/ },
  { name: 'bencode but not a torrent', bytes: encode({ hello: 'world', list: [1, 2, 3] }), code: 3, message: /info/ },
  { name: 'bencode list', bytes: encode(['announce', 'info']), code: 3, message: /not a dict/ },
  { name: 'pieces not a multiple of 20', bytes: encode({ info: { ...goodInfo, pieces: pieces.subarray(0, 39) } }), code: 3, message: /multiple of 20/ },
  { name: 'path escaping with ..', bytes: multi([{ length: PIECE, path: ['..', '..', escapeName] }]), code: 3, message: /escapes/ },
  { name: 'name escaping with ..', bytes: encode({ info: { ...goodInfo, name: '..' } }), code: 3, message: /name|escape|path/ },
  { name: 'absolute path', bytes: multi([{ length: PIECE, path: ['/tmp', escapeName] }]), code: 3, message: /path/ },
  { name: 'path with a separator inside a component', bytes: multi([{ length: PIECE, path: [`../${escapeName}`] }]), code: 3, message: /path|separator|escape/ },
];

const badMagnets: Array<{ name: string; uri: string; message: RegExp }> = [
  { name: 'magnet missing xt', uri: 'magnet:?dn=thing&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce', message: /xt/ },
  { name: 'magnet with a short hash', uri: 'magnet:?xt=urn:btih:0123456789abcdef', message: /info-hash/ },
  { name: 'magnet with a 41-char hex hash', uri: 'magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef012345678', message: /info-hash/ },
  { name: 'magnet with bad base32', uri: 'magnet:?xt=urn:btih:01189AERUKZ4JVPG66AJDIVTYTK6N54A', message: /base32/ },
  { name: 'magnet with non-hex 40-char hash', uri: 'magnet:?xt=urn:btih:zz23456789abcdef0123456789abcdef01234567', message: /info-hash|hex/ },
  { name: 'magnet with a bad peer address', uri: 'magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&x.pe=nope', message: /peer/ },
];

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(root, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Files named escapeName anywhere the escaping paths above could have put them. */
async function escapees(): Promise<string[]> {
  const found: string[] = [];
  for (const d of [root, tmpdir(), join(root, '..'), '/']) {
    const names = await readdir(d).catch(() => [] as string[]);
    if (names.includes(escapeName)) found.push(join(d, escapeName));
  }
  return found;
}

function assertOneCleanLine(r: CliResult, what: string, message?: RegExp): void {
  assert.equal(r.timedOut, false, `${what}: the CLI hung`);
  const lines = stderrLines(r);
  assert.equal(lines.length, 1, `${what}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^shoal: \S/, what);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace on stderr`);
  assert.doesNotMatch(r.stderr, /\b(TypeError|RangeError|ReferenceError|SyntaxError)\b/, `${what}: internal error leaked`);
  if (message) assert.match(lines[0]!, message, what);
}

type Case = { name: string; source: string; code: number; message?: RegExp };
const cases: Case[] = [
  { name: 'missing file', source: join(inDir, 'does-not-exist.torrent'), code: 2, message: /does-not-exist\.torrent.*no such file/ },
  { name: 'a folder instead of a file', source: inDir, code: 2, message: /folder/ },
  ...badFiles.map((f, i) => ({ name: f.name, source: join(inDir, `bad-${i}.torrent`), code: f.code, message: f.message })),
  ...badMagnets.map((m) => ({ name: m.name, source: m.uri, code: 3, message: m.message })),
];
for (const [i, f] of badFiles.entries()) await writeFile(join(inDir, `bad-${i}.torrent`), f.bytes);

for (const command of ['info', 'get'] as const) {
  test(`${command} rejects bad input with one line, the right exit code, and no writes`, { timeout: 120_000 }, async (t) => {
    const before = await listTree(root);
    for (const c of cases) {
      await t.test(c.name, async () => {
        const out = join(root, 'out');
        const args = command === 'get' ? ['get', c.source, '-o', out, '--port', '0', '--timeout', '20'] : ['info', c.source];
        const r = await runCli(args, { cwd, timeoutMs: 30_000 });
        assert.equal(r.code, c.code, `${c.name}: exit ${r.code}, stderr: ${r.stderr}`);
        assertOneCleanLine(r, c.name, c.message);
        assert.equal(r.stdout, '', `${c.name}: unexpected stdout`);
        // A file path in the message says where the problem is.
        if (!c.source.startsWith('magnet:')) assert.ok(r.stderr.includes(c.source), `${c.name}: message names the file`);
        assert.deepEqual(await listTree(root), before, `${c.name}: files were written`);
        assert.deepEqual(await escapees(), []);
      });
    }
  });
}

test('--json: a bad input gives one `error` JSON line on stdout and one line on stderr', async () => {
  for (const [command, source] of [['info', join(inDir, 'bad-0.torrent')], ['get', badMagnets[0]!.uri], ['info', join(inDir, 'nope.torrent')]] as const) {
    const r = await runCli(['--json', command, source, ...(command === 'get' ? ['-o', join(root, 'out')] : [])], { cwd });
    assert.notEqual(r.code, 0);
    assertOneCleanLine(r, `${command} ${source}`);
    const events = jsonLines(r.stdout);
    assert.equal(events.length, 1, r.stdout);
    assert.equal(events[0]!.type, 'error');
    assert.match(String(events[0]!.code), /^E[A-Z]+$/);
    assert.equal(typeof events[0]!.message, 'string');
  }
});

test('get: bad option values are usage errors before anything is opened', async () => {
  const good = join(inDir, 'good.torrent');
  await writeFile(good, goodTorrent);
  const before = await listTree(root);
  const out = join(root, 'out');
  for (const extra of [['--select', 'two'], ['--select', '7'], ['--timeout', '-1'], ['--peer', 'nowhere'], ['--port', '70000'],
    ['--max-peers', '0'], ['--upload-limit', 'fast'], ['--cache', 'lots']]) {
    const r = await runCli(['get', good, '-o', out, ...extra], { cwd });
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    assertOneCleanLine(r, extra.join(' '));
  }
  assert.deepEqual(await listTree(root), before);
});

test('seed: a missing path, a bad .torrent, or data that does not match fail with one line', async () => {
  const good = join(inDir, 'good.torrent');
  await writeFile(good, goodTorrent);
  const emptyData = await mkdtemp(join(root, 'nodata-'));
  const net = ['--port', '0', '--tracker-port', '0', '--announce-host', '127.0.0.1'];
  const runs: Array<[string[], number, RegExp]> = [
    [['seed', join(inDir, 'nothing-here'), ...net], 2, /no such file or folder/],
    [['seed', join(inDir, 'bad-1.torrent'), ...net], 3, /bad-1\.torrent: bencode/],
    [['seed', good, '-d', emptyData, ...net], 4, /does not match/],
  ];
  for (const [args, code, message] of runs) {
    const r = await runCli(args, { cwd });
    assert.equal(r.code, code, `${args.slice(0, 2).join(' ')}: ${r.stderr}`);
    assertOneCleanLine(r, args.slice(0, 2).join(' '), message);
  }
});
