/**
 * Shoal keeps resume data in <dir>/.shoal/. A torrent named ".shoal" would write into that folder and could
 * replace another torrent's resume file, so the name is reserved at parse time and again at Storage.open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { encode } from '../../src/bencode/index.js';
import { parseTorrent } from '../../src/metainfo/index.js';
import { Storage } from '../../src/storage/index.js';
import { isShoalError } from '../../src/util/errors.js';
import { makeMetainfo, pseudoRandom } from '../helpers/make-meta.js';

const PIECE = 16384;

function torrent(info: Record<string, unknown>): Buffer {
  return encode({ info: { 'piece length': PIECE, pieces: Buffer.alloc(20), ...info } });
}

for (const name of ['.shoal', '.SHOAL', '.Shoal', '.shoal.', '.shoal ']) {
  test(`parseTorrent refuses a torrent named ${JSON.stringify(name)} (multi- and single-file) with EPATH`, () => {
    for (const info of [{ name, files: [{ length: 10, path: ['x.resume'] }] }, { name, length: 10 }]) {
      assert.throws(() => parseTorrent(torrent(info)), (e: unknown) => isShoalError(e, 'EPATH') && /reserved/.test((e as Error).message));
    }
  });
}

test('names that merely contain .shoal are still fine', () => {
  for (const name of ['.shoal2', 'x.shoal', 'shoal', '.shoalx']) assert.equal(parseTorrent(torrent({ name, length: 10 })).name, name);
});

test('Storage.open refuses a Metainfo named .shoal (built without parseTorrent) and leaves other resume files alone', async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-reserved-'));
  try {
    const { meta: victim, data: vdata } = makeMetainfo([{ path: ['v.bin'], data: pseudoRandom(PIECE, 3) }], PIECE, 'v.bin');
    const v = await Storage.open(victim, { dir });
    await v.verifyExisting();
    await v.writePiece(0, vdata);
    await v.close();
    const resumeName = `${victim.infoHashHex}.resume`;
    const before = await fsp.readFile(join(dir, '.shoal', resumeName));

    const { meta: evil } = makeMetainfo([{ path: [resumeName], data: Buffer.alloc(PIECE, 0x41) }], PIECE, '.Shoal', { multiFile: true });
    await assert.rejects(Storage.open(evil, { dir }), (e: unknown) => isShoalError(e, 'EPATH') && /reserved/.test((e as Error).message));
    assert.deepEqual(await fsp.readFile(join(dir, '.shoal', resumeName)), before);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
