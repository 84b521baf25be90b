// Audience summaries: one step standing for many sounds and draws as those steps would.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Series } from '../../static/js/series.js';
import { frameSteps } from '../../static/js/socket.js';
import { StepGroup } from '../../static/js/sonify.js';

const STEPS = Array.from({ length: 40 }, (_, i) => ({
  step: i + 1,
  t: 100 + i / 1000,
  epoch: Math.floor(i / 7),
  loss: 1 / (i + 1),
  accuracy: i / 40,
  entropy: 0.5 + 0.01 * Math.sin(i),
  crescendo: i / 40,
  grads: [0.1 * (i + 1), 0.01 * (40 - i)],
}));

/** The audience frame the server would send for STEPS (app/live/audience.py). */
function summaryFrame(steps) {
  const cols = ['t', 'epoch', 'loss', 'accuracy', 'entropy', 'crescendo'];
  const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
  const stats = [mean, (v) => Math.min(...v), (v) => Math.max(...v), (v) => v[v.length - 1]]; // the wire's order
  return {
    type: 'frame',
    count: steps.length,
    first: steps[0].step,
    last: steps[steps.length - 1].step,
    summary: {
      ...Object.fromEntries(cols.map((c) => [c, stats.map((fn) => fn(steps.map((s) => s[c])))])),
      grad_norm: stats.map((fn) => steps[0].grads.map((_, k) => fn(steps.map((s) => s.grads[k])))),
    },
  };
}

const close = (a, b) => Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));

test('a summary is one step carrying the last step and the means', () => {
  const [s] = frameSteps(summaryFrame(STEPS));
  assert.equal(s.count, 40);
  assert.equal(s.step, 40);
  assert.equal(s.crescendo, STEPS[39].crescendo);
  assert.equal(s.lo.loss, 1 / 40);
  assert.equal(s.hi.grads[1], 0.4);
});

test('a beat from summaries equals the beat from their steps', () => {
  const full = new StepGroup();
  const summarised = new StepGroup();
  STEPS.forEach((s) => full.add(s));
  [STEPS.slice(0, 17), STEPS.slice(17)].forEach((part) =>
    frameSteps(summaryFrame(part)).forEach((s) => summarised.add(s)),
  );
  const a = full.mean();
  const b = summarised.mean();
  assert.equal(b.count, a.count);
  assert.equal(b.step, a.step);
  assert.equal(b.crescendo, a.crescendo);
  assert.ok(close(a.loss, b.loss) && close(a.entropy, b.entropy));
  a.grads.forEach((g, k) => assert.ok(close(g, b.grads[k])));
});

test('a chart bucket from a summary keeps the steps’ band and mean', () => {
  const full = new Series('loss', '#fff');
  const summarised = new Series('loss', '#fff');
  STEPS.forEach((s) => full.add(s.step, s.loss));
  const [s] = frameSteps(summaryFrame(STEPS));
  summarised.add(s.step, s.loss, s.count, s.lo.loss, s.hi.loss);
  const total = (series, key) => series[key].reduce((a, b) => a + b, 0);
  assert.equal(Math.min(...summarised.lo), Math.min(...full.lo));
  assert.equal(Math.max(...summarised.hi), Math.max(...full.hi));
  assert.ok(close(total(summarised, 'sum') / total(summarised, 'w'), total(full, 'sum') / total(full, 'w')));
});
