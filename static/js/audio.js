// The sound engine: a lookahead scheduler turns buffered, server-timed steps into beats and echoes.
import { JITTER_BUFFER, ServerClock } from './clock.js';
import { Mixer } from './mixer.js';
import { GradRange, StepGroup, beatDegree, degreeFrequency, echoDegree, overfitDetune } from './sonify.js';
import * as voices from './voices.js';

const TICK = 0.025; // s, scheduler period (setInterval)
const SCHEDULE_AHEAD = 0.1; // s, how far ahead of the audio clock notes are committed
const LATE_LIMIT = 0.05; // s, steps later than this are skipped (the tab slept), not crammed in
const START_MARGIN = 0.01; // s, a note that is due already starts this far ahead of the clock, read afresh
const MAX_BEATS_PER_SECOND = 16; // faster than this beats fuse: one beat per group of steps
const MAX_NOTES_PER_SECOND = 150; // beats + echoes + test voice together
const BEAT_GAIN = 0.42;
const ECHO_GAIN = [0.012, 0.32]; // vanishing … exploding gradient
const TEST_GAIN = 0.1;
const CUE_GAIN = 0.45; // chime and alarm, at the user's volume (no crescendo)
const ECHO_SPACING = [0.03, 0.09]; // s between echoes, fitted to the beat interval
const DRAW_QUEUE_LIMIT = 4000; // notes kept for the picture when nothing draws (hidden tab)

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

export class AudioEngine {
  constructor() {
    this.ctx = null;
    this.mixer = null;
    this.source = 'performance'; // which clock schedules: performance.now until the audio clock runs
    this.volume = 0.7;
    this.muted = false;
    this.clock = new ServerClock();
    this.notes = []; // the draw queue: audio hands scheduled notes to the picture
    this.resetRun(0);
    setInterval(() => this.tick(), TICK * 1000);
  }

  /** Create or resume the AudioContext; must run inside a user gesture. */
  unlock() {
    if (this.ctx) {
      if (this.ctx.state === 'suspended') this.ctx.resume();
      return;
    }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    this.ctx = new Ctx({ latencyHint: 'interactive' });
    this.mixer = new Mixer(this.ctx, { volume: this.volume, muted: this.muted, crescendo: this.crescendo });
    if (this.ctx.state === 'suspended') this.ctx.resume();
  }

  /** The master gain node (crescendo × volume). */
  get master() {
    return this.mixer ? this.mixer.master : null;
  }

  /** True once the audio clock runs: only then are notes synthesised and announced. */
  get live() {
    return this.source === 'audio';
  }

  /** The clock notes are scheduled on (and drawn by). */
  now() {
    return this.source === 'audio' ? this.ctx.currentTime : performance.now() / 1000;
  }

  /** Forget the previous run; `layers` = number of weight layers (one echo each). */
  resetRun(layers) {
    this.layers = layers;
    this.buffer = [];
    this.head = 0;
    this.group = new StepGroup();
    this.grads = new GradRange();
    this.lastBeat = -Infinity;
    this.beatInterval = 0.25; // s, smoothed time between beats
    this.lastStepTime = null;
    this.overfit = null;
    this.silenced = false;
    this.notes.length = 0;
    this.clock.reset();
    this.setCrescendo(0, this.now());
  }

  /** Late joiners: learn the gradient range and the volume from history without playing it. */
  primeHistory(history, diverged) {
    (history.grad_norm || []).forEach((row) => this.grads.observe(row));
    const c = history.crescendo || [];
    if (c.length && c[c.length - 1] !== null) this.setCrescendo(c[c.length - 1], this.now());
    this.silenced = diverged;
  }

  /** Steps from a frame: [{step, t, loss, entropy, crescendo, grads}]. Buffered, never played here. */
  addSteps(steps) {
    if (!steps.length) return;
    const now = this.now();
    const newest = steps[steps.length - 1].t;
    if (newest !== null && newest !== undefined) this.clock.observe(newest, now);
    for (const s of steps) {
      const time = s.t === null || s.t === undefined ? now + JITTER_BUFFER : this.clock.toLocal(s.t);
      this.buffer.push({ kind: 'step', time, data: s });
    }
    this.lastStepTime = this.buffer[this.buffer.length - 1].time;
  }

  /** Chime or alarm: sounds when the step that caused it sounds. */
  addCue(kind, msg) {
    const time = this.lastStepTime ?? this.now() + JITTER_BUFFER;
    this.buffer.push({ kind, time, data: msg });
  }

  overfitStarted(msg) {
    const gap = msg.test_loss / msg.train_loss - 1;
    this.overfit = { startGap: Number.isFinite(gap) ? gap : 0, cents: overfitDetune(msg.train_loss, msg.test_loss) };
  }

  /** The test voice lasts while test loss stays above train loss by at least half the gap that set it off. */
  evalArrived(ev) {
    if (!this.overfit || ev.train_loss == null || ev.test_loss == null) return;
    const gap = ev.test_loss / ev.train_loss - 1;
    if (!(gap >= this.overfit.startGap * 0.5) || gap <= 0) this.overfit = null;
    else this.overfit.cents = overfitDetune(ev.train_loss, ev.test_loss);
  }

  get overfitting() {
    return this.overfit !== null;
  }

  setVolume(volume) {
    this.volume = volume;
    if (this.live) this.mixer.setLevels(this.volume, this.muted, this.now());
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.live) this.mixer.setLevels(this.volume, this.muted, this.now());
  }

  /** Notes whose time has come, for the picture; removed from the queue. */
  takeNotes(until) {
    const due = [];
    const later = [];
    for (const n of this.notes) (n.time <= until ? due : later).push(n);
    this.notes = later;
    return due;
  }

  // --- scheduler -----------------------------------------------------------

  tick() {
    if (this.ctx && this.source !== 'audio' && this.ctx.state === 'running') this.switchToAudioClock();
    const now = this.now();
    const horizon = now + SCHEDULE_AHEAD;
    while (this.head < this.buffer.length && this.buffer[this.head].time < horizon) {
      const item = this.buffer[this.head++];
      if (item.kind === 'step') this.takeStep(item, now);
      else this.playCue(item);
    }
    if (this.head > 1024) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    this.flushGroup(now, horizon);
  }

  /** Move everything scheduled on performance.now onto the audio clock once it runs. */
  switchToAudioClock() {
    const delta = this.ctx.currentTime - performance.now() / 1000;
    this.source = 'audio';
    for (const item of this.buffer) item.time += delta;
    for (const n of this.notes) n.time += delta;
    this.lastBeat += delta;
    if (this.lastStepTime !== null) this.lastStepTime += delta;
    if (this.clock.offset !== null) this.clock.offset += delta;
    this.mixer.setLevels(this.volume, this.muted, this.ctx.currentTime);
    this.mixer.setCrescendo(this.crescendo, this.ctx.currentTime);
  }

  minBeatInterval() {
    const notesPerBeat = 1 + this.layers + (this.overfit ? 1 : 0);
    return Math.max(1 / MAX_BEATS_PER_SECOND, notesPerBeat / MAX_NOTES_PER_SECOND);
  }

  takeStep(item, now) {
    this.grads.observe(item.data.grads);
    if (this.silenced) return;
    if (item.time < now - LATE_LIMIT) {
      this.group.clear();
      return;
    }
    this.group.add(item.data);
    if (item.time - this.lastBeat >= this.minBeatInterval()) this.beat(Math.max(item.time, now));
  }

  /** Steps left over when training pauses get their beat once the interval has passed. */
  flushGroup(now, horizon) {
    if (!this.group.count || this.head < this.buffer.length) return;
    const due = this.lastBeat + this.minBeatInterval();
    if (due < horizon) this.beat(Math.max(due, now));
  }

  beat(time) {
    time = Math.max(time, this.now() + START_MARGIN); // the clock moved on while this tick ran
    const b = this.group.mean();
    this.group.clear();
    if (Number.isFinite(this.lastBeat)) {
      const gap = clamp(time - this.lastBeat, this.minBeatInterval(), 2);
      this.beatInterval += (gap - this.beatInterval) * 0.3;
    }
    this.lastBeat = time;
    const degree = beatDegree(b.crescendo);
    const frequency = degreeFrequency(degree);
    const breath = clamp(b.entropy ?? 0, 0, 1);
    if (this.live) {
      const decay = clamp(this.beatInterval * 2, 0.18, 1.2);
      voices.bell(this.ctx, this.mixer.bus, { time, freq: frequency, gain: BEAT_GAIN, breath, decay });
    }
    const duration = clamp(this.beatInterval * 0.9, 0.15, 0.6);
    this.note({ kind: 'beat', step: b.step, time, gain: BEAT_GAIN, frequency, level: 1 - breath, duration, count: b.count });
    this.setCrescendo(b.crescendo, time);
    this.echoes(b, degree, time);
    if (this.overfit) this.testVoice(b, frequency, time);
  }

  /** One echo per weight layer, output layer first; level from that layer's gradient norm. */
  echoes(b, degree, time) {
    const spacing = clamp(this.beatInterval / (this.layers + 1), ...ECHO_SPACING);
    for (let k = 0; k < this.layers; k++) {
      const layer = this.layers - 1 - k;
      const level = b.grads ? this.grads.level(b.grads[layer]) : 0;
      const gain = ECHO_GAIN[0] + (ECHO_GAIN[1] - ECHO_GAIN[0]) * level ** 1.5;
      const frequency = degreeFrequency(echoDegree(degree, k));
      const at = time + (k + 1) * spacing;
      if (this.live) {
        voices.echo(this.ctx, this.mixer.bus, { time: at, freq: frequency, gain, brightness: level, decay: clamp(spacing * 4, 0.12, 0.35) });
      }
      this.note({ kind: 'echo', step: b.step, layer, time: at, gain, frequency, level, duration: spacing * 1.6 });
    }
  }

  testVoice(b, frequency, time) {
    const cents = this.overfit.cents;
    if (this.live) voices.testVoice(this.ctx, this.mixer.bus, { time, freq: frequency, gain: TEST_GAIN, cents });
    this.note({ kind: 'test-voice', step: b.step, time, gain: TEST_GAIN, frequency: frequency * 2 ** (cents / 1200), level: cents / 90, duration: 0.3 });
  }

  playCue(item) {
    const time = Math.max(item.time, this.now() + START_MARGIN);
    const step = item.data.step;
    if (item.kind === 'chime') {
      const frequency = this.live ? voices.chime(this.ctx, this.mixer.cues, time, CUE_GAIN) : 523.25;
      this.note({ kind: 'chime', step, time, gain: CUE_GAIN, frequency, level: 1, duration: 2.5 });
    } else if (item.kind === 'alarm') {
      const frequency = this.live ? voices.alarm(this.ctx, this.mixer.cues, time, CUE_GAIN) : 440;
      this.note({ kind: 'alarm', step, time, gain: CUE_GAIN, frequency, level: 1, duration: 1.4 });
      this.silenced = true; // then silence: no beat after a diverged step
      this.group.clear();
    }
  }

  setCrescendo(c, time) {
    if (c === null || c === undefined || !Number.isFinite(c)) return;
    this.crescendo = clamp(c, 0, 1);
    if (this.live) this.mixer.setCrescendo(this.crescendo, time);
  }

  /** Hand a scheduled note to the picture and to anyone listening (tests, tools). */
  note(n) {
    this.notes.push(n);
    if (this.notes.length > DRAW_QUEUE_LIMIT) this.notes.splice(0, this.notes.length - DRAW_QUEUE_LIMIT);
    if (!this.live) return;
    const detail = { kind: n.kind, step: n.step, time: n.time, gain: n.gain, frequency: n.frequency };
    if (n.kind === 'echo') detail.layer = n.layer;
    window.dispatchEvent(new CustomEvent('backbeat:note', { detail }));
  }
}
