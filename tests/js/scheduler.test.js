// The live scheduler when the page falls behind: late steps fuse into beats, never vanish.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AudioEngine } from '../../static/js/audio.js';
import { preset } from '../../static/js/sound/settings.js';

const grads = [0.1, 0.1, 0.1];
const timed = (n, rate, from = 0) =>
  Array.from({ length: n }, (_, i) => ({
    time: from + i / rate,
    data: { step: i + 1, loss: 1 - i / n, entropy: 0.5, crescendo: i / n, grads },
  }));

function engine() {
  const e = new AudioEngine({ virtual: true });
  e.setSettings(preset());
  e.recorded = [];
  e.resetRun(3);
  return e;
}

test('steps that reach a busy page late are heard in fused beats, at most 16 a second', () => {
  const e = engine();
  e.addTimedSteps(timed(400, 1000)); // 0.4 s of an unpaced run…
  for (let now = 2; now < 3; now += 0.025) e.pump(now, now + 0.1); // …scheduled 2 s late
  const beats = e.recorded.filter((n) => n.kind === 'beat');
  assert.ok(beats.length >= 1, 'the late steps are heard');
  assert.equal(
    beats.reduce((sum, b) => sum + b.count, 0),
    400,
    'every late step is in one beat',
  );
  assert.equal(beats[beats.length - 1].step, 400);
  beats.slice(1).forEach((b, i) => assert.ok(b.time - beats[i].time >= 1 / 16 - 1e-9, `beat ${i + 1} too soon`));
  assert.ok(
    beats.every((b) => b.time >= 2),
    'nothing is scheduled in the past',
  );
});

test('steps on time still get one beat each below 16 a second', () => {
  const e = engine();
  e.addTimedSteps(timed(20, 8, 0.2));
  for (let now = 0; now < 3; now += 0.025) e.pump(now, now + 0.1);
  const beats = e.recorded.filter((n) => n.kind === 'beat');
  assert.deepEqual(
    beats.map((b) => b.step),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test('a step that came late joins the next on-time beat instead of sounding out of time', () => {
  const e = engine();
  const items = timed(20, 10, 0.5); // 10 steps/s: a beat for each
  const at = Object.fromEntries(items.map((it) => [it.data.step, it.time]));
  // frames come in order, 0.15 s ahead of their steps, except steps 5 and 6: the server stalled
  let latest = -Infinity;
  const arrival = items.map(
    (it) => (latest = Math.max(latest, it.time + ([5, 6].includes(it.data.step) ? 0.1 : -0.15))),
  );
  let next = 0;
  for (let now = 0; now < 4; now += 0.025) {
    while (next < items.length && arrival[next] <= now) e.addTimedSteps([items[next++]]);
    e.pump(now, now + 0.1);
  }
  const beats = e.recorded.filter((n) => n.kind === 'beat');
  for (const b of beats) assert.ok(Math.abs(b.time - at[b.step]) < 0.05, `step ${b.step} sounded out of time`);
  assert.equal(
    beats.reduce((sum, b) => sum + b.count, 0),
    20,
    'every step is heard once',
  );
  assert.equal(beats.find((b) => b.count > 1).step, 7, 'the late steps joined the next on-time beat');
});

test('steps paced at 16 a second with jitter each get a beat, at most 25 ms late', () => {
  const e = engine();
  const jitter = [0, 0.004, -0.003, 0.005, -0.005, 0.002];
  const items = timed(96, 16, 0.2).map((it, i) => ({ ...it, time: it.time + jitter[i % jitter.length] }));
  e.addTimedSteps(items);
  for (let now = 0; now < 8; now += 0.025) e.pump(now, now + 0.1);
  const beats = e.recorded.filter((n) => n.kind === 'beat');
  assert.equal(beats.length, 96, 'one beat per step');
  beats.forEach((b, i) => {
    assert.ok(b.time - items[i].time >= -1e-9 && b.time - items[i].time <= 0.025 + 1e-9, `beat ${i} on time`);
    if (i) assert.ok(b.time - beats[i - 1].time >= 1 / 16 - 1e-9, `beat ${i} too soon`);
  });
});

test('faster than 16 a second the beats fuse and never fall behind by more than 25 ms', () => {
  const e = engine();
  const items = timed(170, 17, 0.2);
  e.addTimedSteps(items);
  for (let now = 0; now < 12; now += 0.025) e.pump(now, now + 0.1);
  const beats = e.recorded.filter((n) => n.kind === 'beat');
  const at = Object.fromEntries(items.map((it) => [it.data.step, it.time]));
  assert.ok(beats.length <= 160 && beats.length >= 136, `${beats.length} beats`); // ≤ 16 a second, most steps still heard alone
  assert.equal(
    beats.reduce((sum, b) => sum + b.count, 0),
    170,
  );
  for (const b of beats) assert.ok(b.time - at[b.step] <= 0.025 + 1e-9, `step ${b.step} fell behind`);
});
