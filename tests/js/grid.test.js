// The eval grid's compact encoding: the page inflates what the server compressed to the very same cells.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';

import { gridCells } from '../../static/js/grid.js';

/** 16 × 16 cells whose every value both languages compute exactly. */
function bowl(size = 16) {
  const cells = new Uint8Array(size * size);
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) cells[r * size + c] = Math.min(255, ((r - 8) ** 2 + (c - 8) ** 2) * 4);
  return cells;
}

// app.engine.grid.grid_message(bowl, (-6, 6, -6, 6)) as Python's zlib wrote it
const FROM_PYTHON = {
  size: 16,
  x: [-6, 6],
  y: [-6, 6],
  zlib: 'eJz7/x8LeHHlxJETV15AeV8ubFkwZcKUBVsufAFzTyzpKMlIySjpWHICJHBhSUNKgIuDS0BKw5ILQL1bOlI8TDRUNEw8Ujq2vPh/ZUFJgImCiICIgklAyYIr/09MyXDREOFg4RDRcMmYcuL/kQkpDioCLAwsAioOKROOYMij60c3H91+DPehux/VfwBSt5ti',
};

test('a grid the server compressed inflates to the cells it quantised', async () => {
  assert.deepEqual(await gridCells(FROM_PYTHON), bowl());
});

test('any zlib stream of the cells decodes the same: a 64² grid, row 0 first', async () => {
  const cells = new Uint8Array(64 * 64).map((_, i) => (i < 64 ? 7 : (i * 31) % 256));
  const grid = { size: 64, x: [0, 1], y: [0, 1], zlib: deflateSync(cells).toString('base64') };
  const got = await gridCells(grid);
  assert.deepEqual(got, cells);
  assert.equal(got[0], 7); // row 0 = ymax, as the heatmap paints it
});

test('a grid of the wrong size or not zlib is refused, not painted', async () => {
  await assert.rejects(gridCells({ ...FROM_PYTHON, size: 15 }), /grid/);
  await assert.rejects(gridCells({ ...FROM_PYTHON, zlib: btoa('not zlib at all') }));
});
