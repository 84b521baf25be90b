// The bookmark's compact encoding of drawn points, and the CSV header the upload form reads.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodePoints, encodePoints } from '../../static/js/draw.js';
import { headerCells } from '../../static/js/upload.js';

const STEP = 12 / 4095; // one grid step across [-6, 6]
const onGrid = (v) => (Math.round(((v + 6) / 12) * 4095) / 4095) * 2 * 6 - 6; // as the page snaps

test('drawn classes round-trip exactly through the bookmark, 4 bytes a point', () => {
  const points = [
    [-6, 6, 1],
    [6, -6, 0],
    [onGrid(0), onGrid(0), 1],
    [onGrid(1.2345), onGrid(-3.3), 0],
  ];
  const text = encodePoints('classification', points);
  assert.match(text, /^c\.[A-Za-z0-9_-]+$/);
  assert.equal(text.length, 2 + Math.ceil((points.length * 4 * 4) / 3));
  assert.deepEqual(decodePoints(text), { task: 'classification', points });
});

test('regression values keep 255 levels over [-1, 1]', () => {
  const levels = [-1, 1, 0, (127 / 254) * 2 - 1];
  const points = levels.map((t, i) => [onGrid(i), onGrid(-i), t]);
  const { task, points: back } = decodePoints(encodePoints('regression', points));
  assert.equal(task, 'regression');
  back.forEach((p, i) => {
    assert.ok(Math.abs(p[0] - points[i][0]) < STEP / 2);
    assert.ok(Math.abs(p[2] - levels[i]) < 1e-12, `${p[2]} vs ${levels[i]}`);
  });
});

test('text that is not an encoding is refused', () => {
  for (const text of [null, '', 'x.abc', 'c.a', 'c.$$$$']) assert.equal(decodePoints(text), null, text);
  assert.deepEqual(decodePoints('c.'), { task: 'classification', points: [] });
});

test('the header row: quotes, other delimiters, a byte-order mark', () => {
  assert.deepEqual(headerCells('a,b,label\n1,2,3'), ['a', 'b', 'label']);
  assert.deepEqual(headerCells('\uFEFF"size, cm";"say ""hi""";y\r\n1;2;3'), ['size, cm', 'say "hi"', 'y']);
  assert.deepEqual(headerCells('x\ty\n'), ['x', 'y']);
});
