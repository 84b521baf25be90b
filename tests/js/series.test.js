// Series: bounded chart memory whose buckets keep the exact min, max and mean of what they fold.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Series } from '../../static/js/series.js';

test('non-finite values are skipped', () => {
  const s = new Series('loss', '#fff');
  [1, NaN, null, undefined, Infinity, 2].forEach((y, x) => s.add(x, y));
  assert.equal(s.length, 2);
  assert.deepEqual([s.lo[0], s.lo[1]], [1, 2]);
});

test('memory stays bounded and buckets keep exact min, max and mean', () => {
  const s = new Series('loss', '#fff');
  const n = 10_000;
  for (let x = 0; x < n; x++) s.add(x, Math.sin(x));
  assert.ok(s.length <= 1000, `${s.length} buckets`);
  let count = 0;
  let sum = 0;
  for (let i = 0; i < s.length; i++) {
    count += s.n[i];
    sum += s.sum[i];
    assert.ok(s.lo[i] <= s.mean(i) && s.mean(i) <= s.hi[i]);
  }
  assert.equal(count, n);
  let expected = 0;
  for (let x = 0; x < n; x++) expected += Math.sin(x);
  assert.ok(Math.abs(sum - expected) < 1e-9);
  assert.equal(Math.min(...s.lo), Math.min(...Array.from({ length: n }, (_, x) => Math.sin(x))));
});

test('nearest finds the closest bucket', () => {
  const s = new Series('loss', '#fff');
  [0, 10, 20, 30].forEach((x) => s.add(x, x));
  assert.equal(s.nearest(12), 1);
  assert.equal(s.nearest(16), 2);
  assert.equal(s.nearest(-5), 0);
  assert.equal(s.nearest(99), 3);
});
