// Musical mapping: learning progress → pitch on a pentatonic scale; gradient norms → echo level.

export const TONIC = 261.63; // Hz, C4; the melody resolves to C6 (two octaves up) as loss → 0
export const SCALE = [0, 2, 4, 7, 9]; // semitones of the major pentatonic: never a wrong note
export const TOP_DEGREE = 10; // two octaves of the scale: degree 10 is the tonic again
const MIN_SPAN_DECADES = 3; // gradient range heard at least this wide, so steady norms sit mid-level
const ECHO_STEP = 2; // scale degrees each echo falls below the previous one, walking back to the input

const clamp01 = (v) => Math.min(1, Math.max(0, v));

/** Frequency of a scale degree (0 = C4; may be negative). */
export function degreeFrequency(degree) {
  const n = SCALE.length;
  const octave = Math.floor(degree / n);
  const step = ((degree % n) + n) % n;
  return TONIC * 2 ** (octave + SCALE[step] / 12);
}

/** Beat degree from the crescendo (0 = loss at its start, 1 = loss near zero). */
export function beatDegree(progress) {
  return Math.round(clamp01(progress ?? 0) * TOP_DEGREE);
}

/** Echo k (0 = output layer) sits below the beat and falls further with each layer. */
export function echoDegree(beat, k) {
  return beat - ECHO_STEP * (k + 1);
}

/** Observed range of log10 gradient norms over a run; level() places a norm in it, 0…1. */
export class GradRange {
  constructor() {
    this.lo = Infinity;
    this.hi = -Infinity;
  }

  observe(norms) {
    if (!norms) return;
    for (const g of norms) {
      if (g > 0 && Number.isFinite(g)) {
        const l = Math.log10(g);
        if (l < this.lo) this.lo = l;
        if (l > this.hi) this.hi = l;
      }
    }
  }

  /** null means the server saw NaN/Inf: as loud as it gets. */
  level(g) {
    if (g === null || g === undefined || !Number.isFinite(g)) return 1;
    if (g <= 0) return 0;
    if (this.lo > this.hi) return 0.5;
    const span = Math.max(this.hi - this.lo, MIN_SPAN_DECADES);
    const bottom = (this.lo + this.hi) / 2 - span / 2;
    return clamp01((Math.log10(g) - bottom) / span);
  }
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

  add(s) {
    this.count += 1;
    this.last = s;
    for (const key of ['loss', 'entropy']) {
      if (s[key] !== null && s[key] !== undefined && Number.isFinite(s[key])) {
        this.sums[key] += s[key];
        this.counts[key] += 1;
      }
    }
    if (!s.grads) return;
    if (!this.grads) {
      this.grads = new Array(s.grads.length).fill(0);
      this.exploded = new Array(s.grads.length).fill(false);
    }
    s.grads.forEach((g, i) => {
      if (g === null || !Number.isFinite(g)) this.exploded[i] = true;
      else this.grads[i] += g;
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
