// Standard MIDI files from the engine's notes: one track per voice, the crescendo as velocity and expression.

export const PPQ = 480; // ticks per quarter note
export const BPM = 120; // so one second = 960 ticks
const TICKS_PER_SECOND = (PPQ * BPM) / 60;
export const BEAT_GAIN_REFERENCE = 0.42; // the beat's gain in the engine: velocity 127 × √swell
const EXPRESSION = 11; // MIDI controller: expression
// kind → [track name, channel, General MIDI program (0-based)]
export const TRACKS = {
  beat: ['Beats', 0, 14], // tubular bells
  echo: ['Echoes', 1, 12], // marimba
  'test-voice': ['Test voice', 2, 45], // pizzicato strings
  chime: ['Cues', 3, 14],
  alarm: ['Cues', 3, 14],
};

/** Nearest MIDI note number of a frequency (A4 = 440 Hz = 69). */
export function midiNote(frequency) {
  return Math.max(0, Math.min(127, Math.round(69 + 12 * Math.log2(frequency / 440))));
}

/**
 * Velocity 1…127 of a note heard at `gain` (× the beat's) under master level `swell`: the squared
 * velocity curve of General MIDI (amplitude ∝ velocity²), so a beat at full swell is 127.
 */
export function velocity(gain, swell) {
  const amplitude = (gain / BEAT_GAIN_REFERENCE) * swell;
  return Math.max(1, Math.min(127, Math.round(127 * Math.sqrt(Math.max(0, amplitude)))));
}

function vlq(n) {
  const bytes = [n & 0x7f];
  while ((n >>= 7)) bytes.unshift((n & 0x7f) | 0x80);
  return bytes;
}

function track(name, events) {
  events.sort((a, b) => a.tick - b.tick || a.order - b.order);
  const body = [0, 0xff, 0x03, ...vlq(name.length), ...[...name].map((c) => c.charCodeAt(0) & 0x7f)];
  let last = 0;
  for (const e of events) {
    body.push(...vlq(e.tick - last), ...e.bytes);
    last = e.tick;
  }
  body.push(0, 0xff, 0x2f, 0); // end of track
  return [0x4d, 0x54, 0x72, 0x6b, ...u32(body.length), ...body];
}

const u32 = (n) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const u16 = (n) => [(n >>> 8) & 0xff, n & 0xff];

/** Notes [{kind, time (s), duration (s), frequency, gain, swell}] → the bytes of a type-1 MIDI file. */
export function notesToMidi(notes) {
  const start = notes.reduce((m, n) => Math.min(m, n.time), notes.length ? Infinity : 0);
  const byName = new Map();
  for (const [name, channel, program] of Object.values(TRACKS)) {
    if (!byName.has(name))
      byName.set(name, { channel, events: [{ tick: 0, order: 0, bytes: [0xc0 | channel, program] }] });
  }
  for (const n of notes) {
    const spec = TRACKS[n.kind];
    if (!spec) continue;
    const t = byName.get(spec[0]);
    const ch = t.channel;
    const on = Math.round((n.time - start) * TICKS_PER_SECOND);
    const off = Math.max(on + 1, Math.round((n.time - start + n.duration) * TICKS_PER_SECOND));
    const key = midiNote(n.frequency);
    if (n.kind === 'beat')
      t.events.push({ tick: on, order: 1, bytes: [0xb0 | ch, EXPRESSION, Math.round(127 * n.swell)] });
    t.events.push({ tick: on, order: 2, bytes: [0x90 | ch, key, velocity(n.gain, n.swell)] });
    t.events.push({ tick: off, order: 0, bytes: [0x80 | ch, key, 0] });
  }
  const tempo = 60_000_000 / BPM; // µs per quarter note
  const conductor = track('Backbeat', [
    { tick: 0, order: 0, bytes: [0xff, 0x51, 0x03, (tempo >> 16) & 0xff, (tempo >> 8) & 0xff, tempo & 0xff] },
  ]);
  const tracks = [conductor, ...[...byName].map(([name, t]) => track(name, t.events))];
  const header = [0x4d, 0x54, 0x68, 0x64, ...u32(6), ...u16(1), ...u16(tracks.length), ...u16(PPQ)];
  return new Uint8Array([...header, ...tracks.flat()]);
}
