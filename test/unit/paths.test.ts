import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { resolveInside, validatePathComponents } from '../../src/metainfo/index.js';
import { isShoalError } from '../../src/util/errors.js';

function rejects(parts: string[], why: RegExp): void {
  assert.throws(() => validatePathComponents(parts), (e: unknown) => {
    assert.ok(isShoalError(e, 'EPATH'), `expected EPATH for ${JSON.stringify(parts)}, got ${String(e)}`);
    assert.match(e.message, /^torrent: file path/);
    assert.match(e.message, why);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
}

test('accepts ordinary paths, including unicode, dots inside names and hidden files', () => {
  for (const p of [['a'], ['dir', 'file.txt'], ['.hidden'], ['...'], ['caf\u00e9', '\u65e5\u672c'], ['CONSOLE'], ['com10'], ['lpt'], ['x'.repeat(255)], ['.pad', '123']]) {
    assert.doesNotThrow(() => validatePathComponents(p), JSON.stringify(p));
  }
});

test('rejects empty lists and empty components', () => {
  assert.throws(() => validatePathComponents([]), (e: unknown) => isShoalError(e, 'EPATH') && /is empty/.test((e as Error).message));
  rejects([''], /empty component/);
  rejects(['a', '', 'b'], /empty component/);
});

test('rejects traversal', () => {
  rejects(['..', '..', 'etc', 'passwd'], /^torrent: file path "\.\.\/\.\.\/etc\/passwd" escapes the download folder$/);
  rejects(['a', '..'], /escapes/);
  rejects(['.'], /escapes/);
});

test('rejects separators, absolute paths, NUL and drive-like components', () => {
  rejects(['/etc/passwd'], /separator/);
  rejects(['a/b'], /separator/);
  rejects(['a\\b'], /separator/);
  rejects(['\\\\server\\share'], /separator/);
  rejects(['a\0b'], /NUL/);
  rejects(['C:'], /":"/);
  rejects(['C:evil'], /":"/);
  rejects(['file:stream'], /":"/);
});

test('rejects Windows reserved names in any case, with or without extensions', () => {
  for (const n of ['CONIN$', 'conout$', 'CON', 'con', 'Prn', 'AUX', 'nul', 'COM1', 'com9', 'LPT1', 'lpt9', 'con.txt', 'NUL.tar.gz', 'aux ', 'con.']) {
    rejects(['dir', n], /reserved name/);
  }
});

test('rejects components over 255 bytes (counted in UTF-8)', () => {
  rejects(['x'.repeat(256)], /longer than 255 bytes/);
  rejects(['\u00e9'.repeat(128)], /longer than 255 bytes/); // 256 bytes, 128 chars
});

test('resolveInside returns an absolute path inside root and refuses escapes', () => {
  const root = path.join(path.sep, 'tmp', 'dl');
  assert.equal(resolveInside(root, ['a', 'b.txt']), path.join(root, 'a', 'b.txt'));
  assert.equal(resolveInside('relative/root', ['x']), path.resolve('relative/root', 'x'));
  for (const bad of [['..', 'x'], ['/etc'], ['a', '..', '..'], []]) {
    assert.throws(() => resolveInside(root, bad), (e: unknown) => isShoalError(e, 'EPATH'));
  }
});
