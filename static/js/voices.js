// Backbeat's instruments on the Web Audio graph. Every voice is scheduled at `time`; none plays "now".
// The same code plays live, into an OfflineAudioContext for WAV export, and into the A/B mix.
import { brightnessHz } from './sonify.js';

const ATTACK = 0.004; // s
const FLOOR = 0.0001; // exponential ramps cannot reach 0
const BELL_RATIO = 3.5; // modulator : carrier — inharmonic enough to ring like a bell
const BELL_INDEX = 2.2; // peak FM depth as a multiple of the carrier frequency
const BREATH_Q = 0.9; // band-pass of the breath noise: about an octave and a half wide
const NOISE_RMS = 1 / Math.sqrt(3); // RMS of uniform white noise in [-1, 1]
const SAW_MATCH = 1.4; // the pluck's closing low-pass leaves less power than a sine's: measured, −4.9 dB at 0.8
const NOISE_TRIM = 1.13; // measured: the band-pass formula leaves the noise 1.1 dB under a sine
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

/** An FM bell: inharmonic partials that fall silent as the modulation depth decays. */
function bell(ctx, out, { time, freq, gain, decay }) {
  const end = time + decay;
  const carrier = ctx.createOscillator();
  carrier.frequency.value = freq;
  const modulator = ctx.createOscillator();
  modulator.frequency.value = freq * BELL_RATIO;
  const depth = ctx.createGain();
  depth.gain.setValueAtTime(freq * BELL_INDEX, time);
  depth.gain.exponentialRampToValueAtTime(freq * 0.02, time + decay * 0.5);
  const amp = envelope(ctx, time, gain, end);
  modulator.connect(depth).connect(carrier.frequency);
  carrier.connect(amp).connect(out);
  startStop([carrier, modulator], time, end, [amp, depth]);
  return carrier;
}

/** A plucked string: a sawtooth whose low-pass closes from bright to dull as it rings. */
function pluck(ctx, out, { time, freq, gain, decay }) {
  const end = time + decay;
  const osc = ctx.createOscillator();
  osc.type = 'sawtooth';
  osc.frequency.value = freq;
  const filter = ctx.createBiquadFilter();
  filter.type = 'lowpass';
  filter.frequency.setValueAtTime(Math.min(freq * 8, 12000), time);
  filter.frequency.exponentialRampToValueAtTime(Math.min(freq * 1.5, 12000), end);
  const amp = envelope(ctx, time, gain * SAW_MATCH, end);
  osc.connect(filter).connect(amp).connect(out);
  startStop([osc], time, end, [amp, filter]);
  return osc;
}

/** A marimba bar: the fundamental plus a quickly fading fourth harmonic (the bar's bright strike). */
function marimba(ctx, out, { time, freq, gain, decay }) {
  const end = time + decay;
  const body = ctx.createOscillator();
  body.frequency.value = freq;
  const strike = ctx.createOscillator();
  strike.frequency.value = freq * 4;
  const amp = envelope(ctx, time, gain, end);
  const strikeAmp = envelope(ctx, time, gain * 0.35, time + Math.min(decay, 0.12));
  body.connect(amp).connect(out);
  strike.connect(strikeAmp).connect(out);
  startStop([body, strike], time, end, [amp, strikeAmp]);
  return body;
}

/** A pure sine: nothing but the pitch. */
function sine(ctx, out, { time, freq, gain, decay }) {
  const end = time + decay;
  const osc = ctx.createOscillator();
  osc.frequency.value = freq;
  const amp = envelope(ctx, time, gain, end);
  osc.connect(amp).connect(out);
  startStop([osc], time, end, [amp]);
  return osc;
}

export const INSTRUMENT_VOICES = { bell, pluck, marimba, sine };

/** Play one note on a named instrument (unknown names play the bell); returns its lead source node. */
export function play(instrument, ctx, out, note) {
  return (INSTRUMENT_VOICES[instrument] || bell)(ctx, out, note);
}

/**
 * The beat: a note whose pure tone is clouded by band-passed noise when predictions are uncertain.
 * `split` = {tone, noise} amplitudes from breathSplit(): tone and noise powers sum to the beat's, so
 * entropy changes the timbre and not the loudness.
 */
export function beat(ctx, { tone, breath }, { instrument = 'bell', time, freq, gain, split, decay = 0.4 }) {
  play(instrument, ctx, tone, { time, freq, gain: gain * split.tone, decay });
  if (split.noise > 0.01 && breath) breathNoise(ctx, breath, { time, freq, gain: gain * split.noise, decay });
}

/** Noise band-passed around the note, scaled so its power equals a sine of amplitude `gain`. */
function breathNoise(ctx, out, { time, freq, gain, decay }) {
  const source = ctx.createBufferSource();
  source.buffer = noiseBuffer(ctx);
  source.loop = true;
  const band = ctx.createBiquadFilter();
  band.type = 'bandpass';
  const centre = Math.min(freq * 3, 8000);
  band.frequency.value = centre;
  band.Q.value = BREATH_Q;
  const end = time + decay;
  // power of uniform noise through a 2-pole band-pass: σ² × (π/2 × bandwidth) / Nyquist
  const passed = Math.min(1, ((Math.PI / 2) * (centre / BREATH_Q)) / (ctx.sampleRate / 2));
  const match = (NOISE_TRIM * Math.SQRT1_2) / (NOISE_RMS * Math.sqrt(passed));
  const amp = envelope(ctx, time, gain * match, end);
  source.connect(band).connect(amp).connect(out);
  source.start(time, Math.random() * 1.5);
  source.stop(end + 0.02);
  source.onended = () => amp.disconnect();
}

/** An echo: a repeat through a low-pass; `brightness` 0…1 opens it from 250 Hz to 10 kHz. */
export function echo(ctx, out, { instrument = 'pluck', time, freq, gain, brightness, decay = 0.25 }) {
  const filter = ctx.createBiquadFilter();
  filter.type = 'lowpass';
  filter.frequency.value = brightnessHz(brightness);
  filter.Q.value = 0.7 + 4 * brightness;
  filter.connect(out);
  const lead = play(instrument, ctx, filter, { time, freq, gain, decay });
  lead.addEventListener('ended', () => filter.disconnect());
}

/** The test voice: the beat's pitch sung by a second, detuned voice while the model overfits. */
export function testVoice(ctx, out, { instrument = 'pluck', time, freq, gain, cents, decay = 0.4 }) {
  play(instrument, ctx, out, { time, freq: freq * 2 ** (cents / 1200), gain, decay });
}

/** The final chime: a strummed major chord of long bells. Returns the chord's root frequency. */
export function chime(ctx, out, time, gain) {
  CHIME_CHORD.forEach((freq, i) =>
    bell(ctx, out, { time: time + i * CHIME_STRUM, freq, gain: gain / (1 + i * 0.3), decay: 3.5 }),
  );
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
