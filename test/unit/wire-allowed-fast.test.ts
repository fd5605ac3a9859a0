import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isShoalError } from '../../src/util/errors.js';
import { allowedFastSet } from '../../src/wire/index.js';

const AA = Buffer.alloc(20, 0xaa);

test('BEP 6 published vectors', () => {
  assert.deepEqual(allowedFastSet(7, AA, '80.4.4.200', 1313), [1059, 431, 808, 1217, 287, 376, 1188]);
  assert.deepEqual(allowedFastSet(9, AA, '80.4.4.200', 1313), [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]);
});

test('only the /24 matters, IPv4-mapped addresses are accepted, k+1 extends the k set', () => {
  const base = allowedFastSet(10, AA, '80.4.4.200', 1313);
  assert.deepEqual(allowedFastSet(10, AA, '80.4.4.1', 1313), base);
  assert.deepEqual(allowedFastSet(10, AA, '::ffff:80.4.4.9', 1313), base);
  assert.notDeepEqual(allowedFastSet(10, AA, '80.4.5.200', 1313), base);
  assert.deepEqual(allowedFastSet(11, AA, '80.4.4.200', 1313).slice(0, 10), base);
});

test('k is capped by the piece count and the indices are distinct', () => {
  const set = allowedFastSet(10, AA, '10.0.0.1', 4);
  assert.deepEqual([...set].sort(), [0, 1, 2, 3]);
  assert.deepEqual(allowedFastSet(5, AA, '10.0.0.1', 0), []);
  assert.deepEqual(allowedFastSet(0, AA, '10.0.0.1', 100), []);
});

test('non-IPv4 addresses are refused', () => {
  assert.throws(() => allowedFastSet(5, AA, '::1', 10), (e) => isShoalError(e, 'EUSAGE'));
});
