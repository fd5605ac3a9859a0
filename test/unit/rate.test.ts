import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateMeter } from '../../src/engine/rate-meter.js';
import { TokenBucket } from '../../src/engine/token-bucket.js';
import { isShoalError } from '../../src/util/errors.js';

test('RateMeter: no samples means zero rate', () => {
  const m = new RateMeter();
  assert.equal(m.rate(1000), 0);
  assert.equal(m.total, 0);
});

test('RateMeter: early samples are divided by the time actually measured', () => {
  const m = new RateMeter(5000);
  m.add(5000, 0);
  assert.equal(m.rate(1000), 5000);   // 5000 B over 1 s, not over the nominal 5 s window
  assert.equal(m.rate(0), 20000);     // clamped to one 250 ms bucket, not divided by zero
});

test('RateMeter: steady stream converges to the true rate and total counts everything', () => {
  const m = new RateMeter(5000);
  for (let t = 0; t <= 10_000; t += 100) m.add(1000, t);   // 10 kB/s
  const r = m.rate(10_000);
  assert.ok(r > 9_500 && r < 10_500, `rate ${r}`);
  assert.equal(m.total, 101_000);
});

test('RateMeter: old data leaves the window', () => {
  const m = new RateMeter(5000);
  for (let t = 0; t < 5000; t += 100) m.add(1000, t);
  const full = m.rate(5000);
  const half = m.rate(7500);
  assert.ok(half < full * 0.6 && half > full * 0.4, `full ${full} half ${half}`);
  assert.equal(m.rate(10_250), 0);
  assert.equal(m.rate(60_000), 0);
  m.add(250, 60_000);
  // 19 whole buckets plus 125 ms of the current one
  assert.equal(m.rate(60_125), 250 * 1000 / 4875);
});

test('RateMeter: matches a sum over the window whatever the gaps between samples', () => {
  const windowMs = 1000, bucketMs = 100, n = windowMs / bucketMs;
  const m = new RateMeter(windowMs, bucketMs);
  const samples: { slot: number; bytes: number }[] = [];
  let seed = 7, t = 0, start = -1;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    // Mostly short gaps, sometimes longer than the whole window.
    t += next() < 0.05 ? Math.floor(next() * 3 * windowMs) : Math.floor(next() * 60);
    const bytes = 1 + Math.floor(next() * 16384);
    m.add(bytes, t);
    if (start < 0) start = t;
    samples.push({ slot: Math.floor(t / bucketMs), bytes });
    const head = Math.floor(t / bucketMs);
    const inWindow = samples.reduce((a, x) => a + (x.slot > head - n ? x.bytes : 0), 0);
    const span = Math.max(bucketMs, Math.min((n - 1) * bucketMs + (t - head * bucketMs), t - start));
    const expected = (inWindow * 1000) / span;
    assert.ok(Math.abs(m.rate(t) - expected) <= expected * 1e-9, `at ${t}: ${m.rate(t)} against ${expected}`);
  }
});

test('RateMeter: a clock stepping backwards neither throws nor loses bytes', () => {
  const m = new RateMeter(1000, 100);
  m.add(100, 5000);
  m.add(100, 4000);
  assert.equal(m.total, 200);
  assert.ok(m.rate(5000) > 0);
});

test('TokenBucket: unlimited never blocks', () => {
  const b = new TokenBucket(0);
  assert.equal(b.tryTake(1e12, 0), true);
  assert.equal(b.take(1e12, 0), 0);
  assert.equal(b.unlimited, true);
});

test('TokenBucket: starts full, refills at the rate, never above the burst', () => {
  const b = new TokenBucket(1000, 1000);
  assert.equal(b.tryTake(1000, 0), true);
  assert.equal(b.tryTake(1, 0), false);
  assert.equal(b.tryTake(500, 499), false);
  assert.equal(b.tryTake(500, 500), true);
  assert.equal(b.available(500), 0);
  assert.equal(b.available(100_000), 1000);   // long idle: capped at the burst
});

test('TokenBucket: take allows debt and reports the wait', () => {
  const b = new TokenBucket(1000, 1000);
  assert.equal(b.take(600, 0), 0);
  assert.equal(b.take(600, 0), 200);          // 200 B of debt at 1000 B/s
  assert.equal(b.take(1000, 100), 1100);      // 100 ms repaid 100 B; now 1100 B owed
  assert.equal(b.tryTake(1, 1000), false);    // still 200 B in debt
  assert.equal(b.tryTake(1, 1200), false);    // balance exactly 0
  assert.equal(b.tryTake(1, 1201), true);
});

test('TokenBucket: a request larger than the burst succeeds from a full bucket', () => {
  const b = new TokenBucket(1000, 1000);
  assert.equal(b.tryTake(5000, 0), true);
  assert.equal(b.available(0), -4000);
  assert.equal(b.tryTake(5000, 4999), false);
  assert.equal(b.tryTake(5000, 5000), true);
});

test('TokenBucket: setRate settles at the old rate then applies the new one', () => {
  const b = new TokenBucket(1000, 10_000);
  assert.equal(b.take(10_000 + 2000, 0), 2000);
  b.setRate(2000, 1000);                       // 1000 B repaid at the old rate, 1000 B still owed
  assert.equal(b.take(0, 1000), 500);
  b.setRate(0, 1000);
  assert.equal(b.take(1e9, 1000), 0);
  b.setRate(1000, 2000);                       // back from unlimited: a fresh, full bucket
  assert.equal(b.available(2000), 10_000);
});

test('TokenBucket: default burst scales with the rate', () => {
  const b = new TokenBucket(1_000_000);
  assert.equal(b.available(0), 1_000_000);
  b.setRate(10, 0);
  assert.equal(b.available(0), 65536);
});

test('TokenBucket: invalid rates are usage errors', () => {
  assert.throws(() => new TokenBucket(-1), (e) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => new TokenBucket(NaN), (e) => isShoalError(e, 'EUSAGE'));
  assert.throws(() => new TokenBucket(100).setRate(Infinity), (e) => isShoalError(e, 'EUSAGE'));
});
