// Musical mapping, the same in every run: progress → pitch on a scale, gradient norm → echo level by decade.
// Every number here is documented in docs/sound.md; tests/js/test_sonify.mjs checks them.

export const TONIC = 261.63; // Hz, C4; the melody resolves to the tonic two octaves up as loss → 0
export const SCALES = {
  pentatonic: [0, 2, 4, 7, 9], // major pentatonic: never a wrong note
  major: [0, 2, 4, 5, 7, 9, 11],
  minor: [0, 2, 3, 5, 7, 8, 10], // natural minor
  'whole-tone': [0, 2, 4, 6, 8, 10],
  chromatic: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
};
export const OCTAVES = 2; // the beat climbs two octaves from loss at its start to loss near zero
const ECHO_STEP = 2; // scale degrees each echo falls below the previous one, walking back to the input

// Echoes: an absolute level per decade of gradient norm, relative to the beat's level.
export const GRAD_REFERENCE = 0.1; // gradient norm heard at ECHO_REFERENCE_DB
export const ECHO_REFERENCE_DB = -15; // dB re the beat
export const DB_PER_DECADE = { normal: 10, high: 15 }; // dB louder for every 10× in gradient norm
export const ECHO_FLOOR_DB = -45; // dB re the beat: vanishing gradients stay audible, never silent
export const ECHO_CAP_DB = 0; // dB re the beat: exploding (and NaN/Inf) echoes are never louder than a beat
export const PITCH_SEMITONES_PER_DECADE = 4; // echoes mapped to pitch: a major third higher per 10×
export const PITCH_RANGE = [-12, 6]; // semitones: the pitch mapping is capped like the loudness one
export const BRIGHTNESS_HZ = [250, 10000]; // echo low-pass cutoff from floor to cap (log-spaced)

// Loudness follows the loss alone: the master level, from the crescendo (0 = loss at start, 1 = near zero).
export const SWELL_FLOOR = 0.3; // master level at the start of training, × volume (−10.5 dB)

// Breath: predictive entropy changes the timbre, not the loudness.
export const BREATH_MIX = 0.5; // share of the beat's power given to noise at entropy 1

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const clamp01 = (v) => clamp(v, 0, 1);

/** The scale's semitone offsets; unknown names fall back to pentatonic. */
export function scaleSteps(scale = 'pentatonic') {
  return SCALES[scale] || SCALES.pentatonic;
}

/** Highest beat degree: two octaves of the scale, landing on the tonic. */
export function topDegree(scale = 'pentatonic') {
  return OCTAVES * scaleSteps(scale).length;
}

/** Frequency of a scale degree (0 = C4; may be negative). */
export function degreeFrequency(degree, scale = 'pentatonic') {
  const steps = scaleSteps(scale);
  const n = steps.length;
  const octave = Math.floor(degree / n);
  const step = ((degree % n) + n) % n;
  return TONIC * 2 ** (octave + steps[step] / 12);
}

/** Beat degree from the crescendo (0 = loss at its start, 1 = loss near zero). */
export function beatDegree(progress, scale = 'pentatonic') {
  return Math.round(clamp01(progress ?? 0) * topDegree(scale));
}

/** Echo k (0 = output layer) sits below the beat and falls further with each layer. */
export function echoDegree(beat, k) {
  return beat - ECHO_STEP * (k + 1);
}

/** Decades of a gradient norm from the reference; null/NaN/Inf (the server saw an explosion) = +Infinity. */
export function gradDecades(g) {
  if (g === null || g === undefined || !Number.isFinite(g)) return Infinity;
  if (g <= 0) return -Infinity;
  return Math.log10(g / GRAD_REFERENCE);
}

/** Echo level in dB re the beat: fixed dB per decade around the reference, between floor and cap. */
export function echoDb(g, contrast = 'normal') {
  const perDecade = DB_PER_DECADE[contrast] ?? DB_PER_DECADE.normal;
  return clamp(ECHO_REFERENCE_DB + perDecade * gradDecades(g), ECHO_FLOOR_DB, ECHO_CAP_DB);
}

export const dbToGain = (db) => 10 ** (db / 20);

/**
 * How an echo sounds for gradient norm g: gain (× the beat's), brightness 0…1, pitch offset in semitones.
 * target: 'loudness' (louder and brighter), 'brightness' (brighter only), 'pitch' (higher only).
 */
export function echoMapping(g, { target = 'loudness', contrast = 'normal' } = {}) {
  const db = echoDb(g, contrast);
  const level = (db - ECHO_FLOOR_DB) / (ECHO_CAP_DB - ECHO_FLOOR_DB); // 0 at the floor, 1 at the cap
  const reference = dbToGain(ECHO_REFERENCE_DB);
  if (target === 'pitch') {
    const semitones = clamp(PITCH_SEMITONES_PER_DECADE * gradDecades(g), ...PITCH_RANGE);
    return { db: ECHO_REFERENCE_DB, gain: reference, brightness: 0.5, semitones, level };
  }
  if (target === 'brightness')
    return { db: ECHO_REFERENCE_DB, gain: reference, brightness: level, semitones: 0, level };
  return { db, gain: dbToGain(db), brightness: level, semitones: 0, level };
}

/** Echo low-pass cutoff in Hz for brightness 0…1 (log-spaced from 250 Hz to 10 kHz). */
export function brightnessHz(brightness) {
  const [lo, hi] = BRIGHTNESS_HZ;
  return lo * (hi / lo) ** clamp01(brightness);
}

/** Master level (× volume) from the crescendo: loudness follows the loss alone. */
export function swellLevel(crescendo) {
  return SWELL_FLOOR + (1 - SWELL_FLOOR) * clamp01(crescendo ?? 0);
}

/** Tone and noise amplitudes (× the beat's gain) for entropy 0…1: their powers sum to 1 at every entropy. */
export function breathSplit(entropy) {
  const mix = BREATH_MIX * clamp01(entropy ?? 0);
  return { tone: Math.sqrt(1 - mix), noise: Math.sqrt(mix) };
}

/** Running mean of the steps that fuse into one beat when the tempo is too fast to hear each. */
export class StepGroup {
  constructor() {
    this.clear();
  }

  clear() {
    this.count = 0;
    this.sums = { loss: 0, entropy: 0 };
    this.counts = { loss: 0, entropy: 0 };
    this.grads = null;
    this.exploded = null; // per layer: a non-finite norm anywhere in the group
    this.last = null;
  }

  /** One step, or a summary standing for `s.count` steps (weighted by them). */
  add(s) {
    const n = s.count || 1;
    this.count += n;
    this.last = s;
    for (const key of ['loss', 'entropy']) {
      if (s[key] !== null && s[key] !== undefined && Number.isFinite(s[key])) {
        this.sums[key] += s[key] * n;
        this.counts[key] += n;
      }
    }
    if (!s.grads) return;
    if (!this.grads) {
      this.grads = new Array(s.grads.length).fill(0);
      this.exploded = new Array(s.grads.length).fill(false);
    }
    s.grads.forEach((g, i) => {
      if (g === null || !Number.isFinite(g)) this.exploded[i] = true;
      else this.grads[i] += g * n;
    });
  }

  /** The group as one step: mean loss, entropy and gradient norms, the last step's number and crescendo. */
  mean() {
    const m = (key) => (this.counts[key] ? this.sums[key] / this.counts[key] : null);
    const grads = this.grads && this.grads.map((g, i) => (this.exploded[i] ? null : g / this.count));
    return { ...this.last, loss: m('loss'), entropy: m('entropy'), grads, count: this.count };
  }
}

/** Cents the test voice drifts from the train voice: grows with the relative loss gap, bounded. */
export function overfitDetune(trainLoss, testLoss) {
  const MAX_DETUNE_CENTS = 90;
  if (!(trainLoss > 0) || !(testLoss > trainLoss)) return 0;
  const gap = testLoss / trainLoss - 1;
  return MAX_DETUNE_CENTS * (1 - Math.exp(-2 * gap));
}
