// ServerClock: server step times → local audio times through the fastest arrival plus a jitter buffer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { JITTER_BUFFER, ServerClock } from '../../static/js/clock.js';

test('a step plays one jitter buffer after its fastest arrival', () => {
  const clock = new ServerClock();
  clock.observe(100, 5.3); // offset −94.7
  clock.observe(101, 6.2); // faster: offset −94.8
  assert.ok(Math.abs(clock.toLocal(102) - (102 - 94.8 + JITTER_BUFFER)) < 1e-9);
});

test('a slower arrival only creeps the offset up', () => {
  const clock = new ServerClock();
  clock.observe(0, 1);
  clock.observe(1, 3); // one second slower than the best case
  const offset = clock.toLocal(0) - JITTER_BUFFER;
  assert.ok(offset > 1 && offset < 1.1, `offset ${offset} should move a little towards 2`);
});

test('reset forgets the offset', () => {
  const clock = new ServerClock();
  clock.observe(0, 50);
  clock.reset();
  assert.equal(clock.toLocal(10), 10 + JITTER_BUFFER);
});
