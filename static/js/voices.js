// Backbeat's instruments on the Web Audio graph. Every voice is scheduled at `time`; none plays "now".

const ATTACK = 0.004; // s
const FLOOR = 0.0001; // exponential ramps cannot reach 0
const BELL_RATIO = 3.5; // modulator : carrier — inharmonic enough to ring like a bell
const BELL_INDEX = 2.2; // peak FM depth as a multiple of the carrier frequency
const BREATH_GAIN = 0.55; // noise level at entropy 1, relative to the beat
const CHIME_CHORD = [523.25, 659.25, 783.99, 1046.5, 1318.5]; // Hz, C major: C5 E5 G5 C6 E6
const CHIME_STRUM = 0.06; // s between chord notes
const ALARM_CLUSTER = [440, 466.16, 622.25, 659.26]; // Hz, A4 B♭4 D♯5 E5: semitones and a tritone
const ALARM_LENGTH = 1.4; // s
const ALARM_PULSE = 7; // Hz tremolo

const noiseBuffers = new WeakMap();

/** Two seconds of white noise per context, shared by every breath. */
function noiseBuffer(ctx) {
  if (!noiseBuffers.has(ctx)) {
    const buffer = ctx.createBuffer(1, ctx.sampleRate * 2, ctx.sampleRate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
    noiseBuffers.set(ctx, buffer);
  }
  return noiseBuffers.get(ctx);
}

/** Percussive envelope on a new gain node: fast attack to `peak`, exponential fall until `end`. */
function envelope(ctx, time, peak, end) {
  const amp = ctx.createGain();
  amp.gain.setValueAtTime(FLOOR, time);
  amp.gain.exponentialRampToValueAtTime(Math.max(peak, FLOOR * 2), time + ATTACK);
  amp.gain.exponentialRampToValueAtTime(FLOOR, end);
  return amp;
}

function startStop(nodes, time, end, cleanup) {
  nodes.forEach((n) => {
    n.start(time);
    n.stop(end + 0.02);
  });
  nodes[0].onended = () => cleanup.forEach((n) => n.disconnect());
}

/** The beat: an FM bell whose pure tone is clouded by filtered noise when predictions are uncertain. */
export function bell(ctx, out, { time, freq, gain, breath = 0, decay = 0.4 }) {
  const end = time + decay;
  const carrier = ctx.createOscillator();
  carrier.frequency.value = freq;
  const modulator = ctx.createOscillator();
  modulator.frequency.value = freq * BELL_RATIO;
  const depth = ctx.createGain();
  depth.gain.setValueAtTime(freq * BELL_INDEX, time);
  depth.gain.exponentialRampToValueAtTime(freq * 0.02, time + decay * 0.5);
  const amp = envelope(ctx, time, gain * (1 - 0.5 * breath), end);
  modulator.connect(depth).connect(carrier.frequency);
  carrier.connect(amp).connect(out);
  startStop([carrier, modulator], time, end, [amp, depth]);
  if (breath > 0.04) breathNoise(ctx, out, { time, freq, gain: gain * breath * BREATH_GAIN, decay });
}

function breathNoise(ctx, out, { time, freq, gain, decay }) {
  const source = ctx.createBufferSource();
  source.buffer = noiseBuffer(ctx);
  const band = ctx.createBiquadFilter();
  band.type = 'bandpass';
  band.frequency.value = Math.min(freq * 3, 8000);
  band.Q.value = 0.9;
  const end = time + decay * 0.8;
  const amp = ctx.createGain();
  amp.gain.setValueAtTime(FLOOR, time);
  amp.gain.exponentialRampToValueAtTime(Math.max(gain, FLOOR * 2), time + 0.02);
  amp.gain.exponentialRampToValueAtTime(FLOOR, end);
  source.connect(band).connect(amp).connect(out);
  source.start(time, Math.random() * 1.5);
  source.stop(end + 0.02);
  source.onended = () => amp.disconnect();
}

/** An echo: a softer, low-passed repeat; `brightness` 0…1 opens the filter from 250 Hz to 10 kHz. */
export function echo(ctx, out, { time, freq, gain, brightness, decay = 0.25 }) {
  const end = time + decay;
  const osc = ctx.createOscillator();
  osc.type = 'triangle';
  osc.frequency.value = freq;
  const filter = ctx.createBiquadFilter();
  filter.type = 'lowpass';
  filter.frequency.value = 250 * 40 ** brightness;
  filter.Q.value = 0.7 + 4 * brightness;
  const amp = envelope(ctx, time, gain, end);
  osc.connect(filter).connect(amp).connect(out);
  startStop([osc], time, end, [amp, filter]);
}

/** The test voice: the beat's pitch sung by a second, detuned voice while the model overfits. */
export function testVoice(ctx, out, { time, freq, gain, cents, decay = 0.4 }) {
  const end = time + decay;
  const osc = ctx.createOscillator();
  osc.type = 'sawtooth';
  osc.frequency.value = freq;
  osc.detune.value = cents;
  const filter = ctx.createBiquadFilter();
  filter.type = 'lowpass';
  filter.frequency.value = freq * 4;
  const amp = envelope(ctx, time, gain, end);
  osc.connect(filter).connect(amp).connect(out);
  startStop([osc], time, end, [amp, filter]);
}

/** The final chime: a strummed major chord of long bells. Returns the chord's root frequency. */
export function chime(ctx, out, time, gain) {
  CHIME_CHORD.forEach((freq, i) => bell(ctx, out, { time: time + i * CHIME_STRUM, freq, gain: gain / (1 + i * 0.3), decay: 3.5 }));
  return CHIME_CHORD[0];
}

/** The alarm: a pulsing dissonant cluster, then nothing. Returns its lowest frequency. */
export function alarm(ctx, out, time, gain) {
  const end = time + ALARM_LENGTH;
  const amp = ctx.createGain();
  amp.gain.setValueAtTime(FLOOR, time);
  amp.gain.exponentialRampToValueAtTime(gain, time + 0.02);
  amp.gain.setValueAtTime(gain, end - 0.4);
  amp.gain.exponentialRampToValueAtTime(FLOOR, end);
  const tremolo = ctx.createGain();
  tremolo.gain.value = 0.5;
  const lfo = ctx.createOscillator();
  lfo.type = 'square';
  lfo.frequency.value = ALARM_PULSE;
  const lfoDepth = ctx.createGain();
  lfoDepth.gain.value = 0.5;
  lfo.connect(lfoDepth).connect(tremolo.gain);
  const filter = ctx.createBiquadFilter();
  filter.type = 'lowpass';
  filter.frequency.value = 3200;
  const oscs = ALARM_CLUSTER.map((freq) => {
    const osc = ctx.createOscillator();
    osc.type = 'sawtooth';
    osc.frequency.value = freq;
    osc.connect(filter);
    return osc;
  });
  filter.connect(tremolo).connect(amp).connect(out);
  startStop([...oscs, lfo], time, end, [amp, tremolo, filter, lfoDepth]);
  return ALARM_CLUSTER[0];
}

/** A short synthetic room so bells ring rather than click: decaying stereo noise. */
export function roomImpulse(ctx, seconds = 1.6) {
  const length = Math.round(ctx.sampleRate * seconds);
  const buffer = ctx.createBuffer(2, length, ctx.sampleRate);
  for (let c = 0; c < 2; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < length; i++) data[i] = (Math.random() * 2 - 1) * (1 - i / length) ** 3;
  }
  return buffer;
}
