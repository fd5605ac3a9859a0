/**
 * Torrents whose names or paths would write outside the download folder: Client.add must refuse them with EPATH
 * before touching the disk, whether it gets the .torrent bytes or an already-parsed Metainfo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join, relative } from 'node:path';
import { encode } from '../../src/bencode/index.js';
import { isShoalError } from '../../src/util/errors.js';
import { makeMetainfo } from '../helpers/make-meta.js';
import { withScope, writeContent, type Scope } from '../helpers/engine/harness.js';
import type { Metainfo } from '../../src/metainfo/types.js';

const PIECE = 16384;

/** A complete .torrent with a hand-written info dict (hashes of zeros: never checked before the path is). */
function torrentBytes(info: Record<string, unknown>): Buffer {
  const total = Array.isArray(info['files'])
    ? (info['files'] as { length: number }[]).reduce((n, f) => n + f.length, 0)
    : (info['length'] as number);
  const pieces = Buffer.alloc(Math.max(1, Math.ceil(total / PIECE)) * 20);
  return encode({ announce: 'http://127.0.0.1:1/announce', info: { 'piece length': PIECE, pieces, ...info } });
}

const CASES: [string, Record<string, unknown>][] = [
  ['multi-file path starting with ..', { name: 'ok', files: [{ length: 10, path: ['..', 'evil.txt'] }] }],
  ['multi-file path climbing out midway', { name: 'ok', files: [{ length: 10, path: ['a'] }, { length: 10, path: ['a', '..', '..', '..', 'evil.txt'] }] }],
  ['multi-file path ending in ..', { name: 'ok', files: [{ length: 10, path: ['sub', '..'] }] }],
  ['multi-file absolute path (separator in a component)', { name: 'ok', files: [{ length: 10, path: ['/tmp/evil.txt'] }] }],
  ['multi-file absolute path (empty first component)', { name: 'ok', files: [{ length: 10, path: ['', 'tmp', 'evil.txt'] }] }],
  ['multi-file component with ../ inside', { name: 'ok', files: [{ length: 10, path: ['../evil.txt'] }] }],
  ['multi-file component with a backslash', { name: 'ok', files: [{ length: 10, path: ['..\\evil.txt'] }] }],
  ['multi-file name ..', { name: '..', files: [{ length: 10, path: ['evil.txt'] }] }],
  ['single-file name ..', { name: '..', length: 10 }],
  ['single-file name .', { name: '.', length: 10 }],
  ['single-file absolute name', { name: '/tmp/evil.txt', length: 10 }],
  ['single-file name ../evil.txt', { name: '../evil.txt', length: 10 }],
  ['single-file empty name', { name: '', length: 10 }],
];

/** Every path under `root`, relative to it, so "nothing written" can be checked exactly. */
async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      out.push(relative(root, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out.sort();
}

async function expectRefused(s: Scope, source: Buffer | Metainfo, label: string): Promise<void> {
  // The download folder sits two levels down, so a climb of one or two levels still lands inside the scope
  // where it can be seen.
  const dir = join(s.dir, 'a', 'b', 'dl');
  await fsp.mkdir(dir, { recursive: true });
  const before = await listTree(s.dir);
  const client = await s.client();
  await assert.rejects(client.add(source, { path: dir }), (e) => {
    assert.ok(isShoalError(e, 'EPATH'), `${label}: rejected with ${String(e)}`);
    return true;
  });
  assert.equal(client.torrents.length, 0, `${label}: a refused torrent stayed in the client`);
  assert.deepEqual(await listTree(s.dir), before, `${label}: files appeared`);
  await client.close();
}

for (const [label, info] of CASES) {
  test(`Client.add refuses a torrent with ${label} (EPATH, nothing written)`, async () => {
    await withScope('path-escape', async (s) => {
      await expectRefused(s, torrentBytes(info), label);
    });
  });
}

test('a parsed Metainfo whose paths were tampered with is refused too (storage re-checks)', async () => {
  await withScope('path-escape-meta', async (s) => {
    const { meta } = makeMetainfo([{ path: ['x.bin'], data: Buffer.alloc(100, 1) }, { path: ['y.bin'], data: Buffer.alloc(100, 2) }], PIECE, 'tampered');
    const climbing: Metainfo = { ...meta, files: meta.files.map((f, i) => (i === 1 ? { ...f, path: ['..', '..', '..', 'evil.bin'] } : f)) };
    await expectRefused(s, climbing, 'file path ../../../evil.bin');
    const badName: Metainfo = { ...meta, name: '..' };
    await expectRefused(s, badName, 'name ..');
    const absolute: Metainfo = { ...meta, multiFile: false, name: join(s.dir, 'evil.bin'), files: [{ ...meta.files[0]!, path: [join(s.dir, 'evil.bin')] }] };
    await expectRefused(s, absolute, 'absolute single-file name');
  });
});

test('names and components that merely contain dots are accepted and stay inside the folder', async () => {
  await withScope('path-dots', async (s) => {
    const data = Buffer.alloc(50, 7);
    const { meta } = makeMetainfo([{ path: ['..a', 'b..', '...'], data }], PIECE, '..name..');
    const dir = join(s.dir, 'dl');
    await writeContent(meta, data, dir);
    const client = await s.client();
    const t = await client.add(meta, { path: dir });
    assert.equal(t.done, true, 'existing data at dl/..name../..a/b../... was not found');
    assert.deepEqual((await listTree(s.dir)).filter((p) => !p.includes('.shoal')), ['dl', 'dl/..name..', 'dl/..name../..a', 'dl/..name../..a/b..', 'dl/..name../..a/b../...']);
  });
});
