// The export writers (WAV, MIDI) and the virtual run the MIDI is made from: the live scheduler, no audio.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { midiNote, notesToMidi, velocity } from '../../static/js/sound/midi.js';
import { EXPORT_LEAD, EXPORT_TAIL, collectNotes, exportProblem, exportSeconds } from '../../static/js/sound/render.js';
import { preset } from '../../static/js/sound/settings.js';
import { encodeWav } from '../../static/js/sound/wav.js';

const steps = (n, grads = [0.1, 0.1, 0.1]) =>
  Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: 1 - i / n, entropy: 0.5, crescendo: i / n, grads }));
const run = (n, events = []) => ({ layers: [2, 8, 8, 1], steps: steps(n), events });

test('WAV: RIFF header, 16-bit PCM, interleaved and clipped', () => {
  const left = Float32Array.from([0, 0.5, -1, 2]);
  const right = Float32Array.from([1, -0.5, 0, -2]);
  const bytes = new DataView(encodeWav([left, right], 44100));
  const text = (at) => String.fromCharCode(...new Uint8Array(bytes.buffer, at, 4));
  assert.equal(text(0), 'RIFF');
  assert.equal(text(8), 'WAVE');
  assert.equal(bytes.getUint16(22, true), 2); // channels
  assert.equal(bytes.getUint32(24, true), 44100);
  assert.equal(bytes.getUint16(34, true), 16);
  assert.equal(bytes.getUint32(40, true), 4 * 2 * 2);
  const pcm = [...new Int16Array(bytes.buffer, 44)];
  assert.deepEqual(pcm, [0, 32767, 16383, -16384, -32768, 0, 32767, -32768]);
});

test('MIDI: note numbers and the squared velocity curve', () => {
  assert.equal(midiNote(440), 69);
  assert.equal(midiNote(261.63), 60);
  assert.equal(velocity(0.42, 1), 127);
  assert.equal(velocity(0.42, 0.3), Math.round(127 * Math.sqrt(0.3)));
  assert.equal(velocity(0.42 * 10 ** (-45 / 20), 0.3), 5);
  assert.equal(velocity(0, 1), 1); // never a silent note-on (velocity 0 means note-off)
});

test('a virtual run gives one beat per step (below 16 steps/s) and three echoes each', () => {
  const notes = collectNotes(run(40), { tempo: 8, settings: preset() });
  const beats = notes.filter((n) => n.kind === 'beat');
  assert.deepEqual(
    beats.map((b) => b.step),
    steps(40).map((s) => s.step),
  );
  beats.forEach((b, i) => assert.ok(Math.abs(b.time - (EXPORT_LEAD + i / 8)) < 1e-9, `beat ${i} at ${b.time}`));
  assert.equal(notes.filter((n) => n.kind === 'echo').length, 120);
  assert.ok(beats[39].swell > beats[0].swell, 'the crescendo rises with progress');
});

test('at exactly 16 steps/s (the dialog default for "max") every step still gets its own beat', () => {
  for (const n of [100, 300, 2000]) {
    const beats = collectNotes(run(n), { tempo: 16, settings: preset() }).filter((x) => x.kind === 'beat');
    assert.equal(beats.length, n, `${n} steps at 16 steps/s`);
  }
});

test('the diverged step sounds, then the alarm after its echoes, then nothing', () => {
  const r = run(10, [{ type: 'alarm', step: 6 }]);
  r.steps[5].grads = [null, 5000, null];
  const notes = collectNotes(r, { tempo: 8, settings: preset() });
  const alarm = notes.find((n) => n.kind === 'alarm');
  const own = notes.filter((n) => n.step === 6 && n.kind !== 'alarm');
  assert.deepEqual(
    own.map((n) => n.kind),
    ['beat', 'echo', 'echo', 'echo'],
  );
  assert.deepEqual(
    own.filter((n) => n.kind === 'echo').map((n) => n.db),
    [0, 0, 0],
  ); // exploding: at the cap
  assert.ok(alarm.time > Math.max(...own.map((n) => n.time)));
  assert.equal(notes.filter((n) => n.step > 6).length, 0);
});

test('the MIDI file has a track per voice and one note-on per beat', () => {
  const notes = collectNotes(run(12, [{ type: 'chime', step: 12 }]), { tempo: 4, settings: preset() });
  const bytes = notesToMidi(notes);
  const text = String.fromCharCode(...bytes);
  assert.equal(text.slice(0, 4), 'MThd');
  assert.equal((bytes[10] << 8) | bytes[11], 5); // conductor + beats, echoes, test voice, cues
  for (const name of ['Beats', 'Echoes', 'Test voice', 'Cues']) assert.ok(text.includes(name), name);
  const beatTrack = text.indexOf('Beats');
  const nextTrack = text.indexOf('MTrk', beatTrack);
  const chunk = bytes.slice(beatTrack, nextTrack);
  const noteOns = [...chunk].filter((b, i) => b === 0x90 && chunk[i + 2] > 0).length;
  assert.equal(noteOns, 12);
});

test('exports state their length limit: 10 minutes of sound', () => {
  assert.equal(exportSeconds(80, 8), EXPORT_LEAD + 10 + EXPORT_TAIL);
  assert.equal(exportProblem(4800, 8), null); // exactly 10 min
  assert.match(exportProblem(4801, 8), /limited to 10 min/);
  assert.match(exportProblem(0, 8), /No steps/);
  assert.match(exportProblem(10, 0), /tempo/);
});
