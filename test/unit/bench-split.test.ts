// The A/B split's comparison at equal upload (bench/scenarios/swarm.ts): the bench's own arithmetic, checked on
// numbers whose answer is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareAtEqualUpload } from '../../bench/scenarios/swarm.js';

test('two halves that differ only in how much they sent compare as equal at equal upload', () => {
  // Every downloader: 3 s plus 0.5 s per GiB sent; the odd half sent more, so per GiB handled it would look cheaper.
  const sent = Array.from({ length: 16 }, (_, i) => (i % 2 === 1 ? 0.4 : 0.2) + 0.01 * i);
  const cpu = sent.map((s) => 3 + 0.5 * s);
  const r = compareAtEqualUpload(cpu, sent);
  assert.ok(r);
  assert.ok(Math.abs(r.ratio - 1) < 1e-12, `ratio ${r.ratio}`);
  assert.ok(Math.abs(r.sentCostPerGiB - 0.5) < 1e-12);
});

test('a half that costs more per downloader shows it at the mean upload', () => {
  const sent = Array.from({ length: 16 }, (_, i) => 0.1 + 0.02 * i);
  const cpu = sent.map((s, i) => (i % 2 === 0 ? 2.0 : 2.5) + 0.7 * s);
  const r = compareAtEqualUpload(cpu, sent)!;
  const at = sent.reduce((a, b) => a + b, 0) / sent.length;
  assert.ok(Math.abs(r.oursSeconds - (2.0 + 0.7 * at)) < 1e-9);
  assert.ok(Math.abs(r.altSeconds - (2.5 + 0.7 * at)) < 1e-9);
});

test('no comparison without every upload, or with uploads that do not vary', () => {
  assert.equal(compareAtEqualUpload([1, 2, 3, 4], [0.1, Number.NaN, 0.3, 0.4]), null);
  assert.equal(compareAtEqualUpload([1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5]), null);
  assert.equal(compareAtEqualUpload([1, 2], [0.1, 0.2]), null);
});
