// The tempo slider's log mapping: position ↔ steps per second.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { sliderToTempo, tempoToSlider } from '../../static/js/tempo.js';

test('the slider spans 0.5 to 1,000 steps/s on a log scale', () => {
  assert.equal(sliderToTempo(0), 0.5);
  assert.equal(sliderToTempo(1000), 1000);
  const mid = sliderToTempo(500); // geometric mean of the ends
  assert.ok(Math.abs(mid - Math.sqrt(0.5 * 1000)) / mid < 0.05, `${mid}`);
});

test('tempo → slider → tempo round-trips to two significant digits', () => {
  for (const sps of [0.5, 1, 2, 8, 16, 60, 250, 1000]) {
    const back = sliderToTempo(tempoToSlider(sps));
    assert.ok(Math.abs(back - sps) / sps < 0.02, `${sps} → ${back}`);
  }
});

test('the mapping is monotonic', () => {
  let last = 0;
  for (let v = 0; v <= 1000; v += 10) {
    const sps = sliderToTempo(v);
    assert.ok(sps >= last, `${v}: ${sps} < ${last}`);
    last = sps;
  }
});
