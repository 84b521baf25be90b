// The sound engine: a lookahead scheduler turns buffered, timed steps into beats, echoes and cues.
// One class for every clock: live (AudioContext), A/B strips sharing a live context, offline (WAV
// export, OfflineAudioContext) and virtual (MIDI export: notes only) — so exports sound as live does.
import { JITTER_BUFFER, ServerClock } from './clock.js';
import { Desk, Mixer } from './mixer.js';
import {
  StepGroup,
  beatDegree,
  breathSplit,
  degreeFrequency,
  echoDegree,
  echoMapping,
  overfitDetune,
  swellLevel,
} from './sonify.js';
import { audible, preset } from './sound/settings.js';
import * as voices from './voices.js';
import * as cueVoices from './cues.js';

const TICK = 0.025; // s, scheduler period (setInterval)
const SCHEDULE_AHEAD = 0.1; // s, how far ahead of the audio clock notes are committed
const LATE_LIMIT = 0.05; // s, steps later than this (a busy or sleeping page) fuse into the next beat, not crammed in
const LATE_BEAT_GAP = 0.5; // s, steps that all came late (a busy page) still beat this often, fused
const START_MARGIN = 0.01; // s, a note that is due already starts this far ahead of the clock, read afresh
const MAX_BEATS_PER_SECOND = 16; // faster than this beats fuse: one beat per group of steps
const MAX_NOTES_PER_SECOND = 150; // beats + echoes + test voice together
const BEAT_JITTER = 0.025; // s a beat may wait so that steps paced at 16/s, with jitter, each keep their own
const BEAT_GAIN = 0.42;
const TEST_GAIN = 0.1;
const CUE_GAIN = 0.45; // chime and alarm, at the user's volume (no crescendo)
const CHANGE_GAIN = 0.3; // the knob-turned cue: heard over the beats, softer than the chime
const DRONE_GAIN = 0.12; // the plateau drone: held under the beats
const ECHO_SPACING = [0.03, 0.09]; // s between echoes, fitted to the beat interval
const DRAW_QUEUE_LIMIT = 4000; // notes kept for the picture when nothing draws (hidden tab)
const CHIME_HOLD = 2.2; // s the beats stay ducked under the chime
const ALARM_GAP = 0.12; // s of quiet between the diverged step's last echo and the alarm
const ALARM_LENGTH = 1.4; // s

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

export class AudioEngine {
  /**
   * options: {host, pan, label} — an A/B strip playing through `host`'s live context, panned, its
   * scheduling driven by the comparison (prepare + pump) so both strips share one clock reading;
   * {offline} — an OfflineAudioContext to render into; {virtual: true} — no audio, notes only.
   */
  constructor({ host = null, pan = 0, label = null, offline = null, virtual = false } = {}) {
    Object.assign(this, { host, pan, label, virtual, offline: Boolean(offline) });
    this.ctx = null;
    this.desk = null;
    this.mixer = null;
    this.source = 'performance'; // which clock schedules: performance.now until the audio clock runs
    this.virtualNow = 0; // s, the clock of a virtual engine (moved by pump)
    this.volume = host ? host.volume : 0.7;
    this.muted = false;
    this.settings = host ? host.settings : preset();
    this.clock = new ServerClock();
    this.notes = []; // the draw queue: audio hands scheduled notes to the picture
    this.recorded = null; // every note, when an export collects them
    this.resetRun(0);
    if (offline) {
      this.attach(offline, new Desk(offline));
      this.source = 'audio';
    } else if (virtual) this.source = 'virtual';
    else if (!host) this.timer = setInterval(() => this.tick(), TICK * 1000);
  }

  /** Create or resume the AudioContext; must run inside a user gesture. */
  unlock() {
    if (this.host) return this.host.unlock();
    if (this.ctx) {
      if (this.ctx.state === 'suspended') this.ctx.resume();
      return;
    }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    const ctx = new Ctx({ latencyHint: 'interactive' });
    this.attach(ctx, new Desk(ctx));
    if (ctx.state === 'suspended') ctx.resume();
  }

  attach(ctx, desk) {
    this.ctx = ctx;
    this.desk = desk;
    this.mixer = new Mixer(ctx, {
      volume: this.volume,
      muted: this.muted,
      crescendo: this.crescendo,
      output: desk.input,
      pan: this.pan,
    });
    this.mixer.setVoices(this.gates(), 0);
  }

  /** An A/B strip is silent until its host's context exists; then it joins it. */
  joinHost() {
    if (this.host && !this.ctx && this.host.ctx) this.attach(this.host.ctx, this.host.desk);
  }

  /** Stop scheduling (an A/B strip leaving); notes already scheduled ring out. */
  dispose() {
    clearInterval(this.timer);
    if (this.mixer) this.mixer.panner.disconnect();
    this.mixer = null;
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
    if (this.source === 'virtual') return this.virtualNow;
    return this.source === 'audio' ? this.ctx.currentTime : performance.now() / 1000;
  }

  /** Voices that sound under the current settings (on/off, solo). */
  gates() {
    return Object.fromEntries(['beats', 'echoes', 'breath', 'test', 'cues'].map((v) => [v, audible(this.settings, v)]));
  }

  /** New sound settings (editor): scale, instruments and echo mapping apply from the next beat. */
  setSettings(settings) {
    this.settings = settings;
    if (this.mixer) this.mixer.setVoices(this.gates(), this.now());
  }

  /** Forget the previous run; `layers` = number of weight layers (one echo each). */
  resetRun(layers) {
    this.layers = layers;
    this.buffer = [];
    this.head = 0;
    this.group = new StepGroup();
    this.lateInGroup = false;
    this.lastBeat = -Infinity;
    this.lastSound = -Infinity; // when the last scheduled beat or echo has rung out
    this.beatInterval = 0.25; // s, smoothed time between beats
    this.lastStepTime = null;
    this.lastStep = null;
    this.lastBeatStep = null;
    this.overfit = null;
    this.silenced = false;
    this.stopDrone(this.now());
    this.notes.length = 0;
    this.clock.reset();
    this.setCrescendo(0, this.now());
  }

  /** Late joiners: learn the volume from history without playing it (echo levels need no history). */
  primeHistory(history, diverged) {
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

  /** Steps already placed on this engine's clock (A/B alignment, exports): [{time, data}]. */
  addTimedSteps(items) {
    for (const { time, data } of items) this.buffer.push({ kind: 'step', time, data });
    if (items.length) this.lastStepTime = items[items.length - 1].time;
  }

  /** Chime, alarm (or an export's overfit): sounds when the step that caused it sounds (or at `time`). */
  addCue(kind, msg, time = null) {
    const at = time ?? this.lastStepTime ?? this.now() + JITTER_BUFFER;
    this.buffer.push({ kind, time: at, data: msg });
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
    if (this.live && this.mixer) this.mixer.setLevels(this.volume, this.muted, this.now());
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.live && this.mixer) this.mixer.setLevels(this.volume, this.muted, this.now());
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
    this.prepare();
    const now = this.now();
    this.pump(now, now + SCHEDULE_AHEAD);
  }

  /** Join the host's context and move onto the audio clock once it runs. */
  prepare() {
    this.joinHost();
    if (this.ctx && this.source !== 'audio' && this.ctx.state === 'running') this.switchToAudioClock();
  }

  /** Schedule every buffered item due before `horizon` (the live tick, and exports' render loop). */
  pump(now, horizon) {
    if (this.source === 'virtual') this.virtualNow = now;
    while (this.head < this.buffer.length && this.buffer[this.head].time < horizon) {
      const item = this.buffer[this.head++];
      if (item.kind === 'step') this.takeStep(item, now);
      else if (item.kind === 'overfit') this.overfitStarted(item.data);
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
    this.lastSound += delta;
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
    if (this.silenced) return;
    this.lastStep = item.data; // the alarm sounds the diverged step even if it came too late to beat
    this.group.add(item.data);
    if (item.time < now - LATE_LIMIT) {
      this.lateInGroup = true; // heard in the next on-time beat, or a fused one: never dropped, never crammed
      return;
    }
    const wait = this.lastBeat + this.minBeatInterval() - item.time; // > 0: too soon after the last beat
    if (wait <= BEAT_JITTER) this.beat(Math.max(item.time + Math.max(wait, 0), now)); // else fused into the next
  }

  /** Steps left over when training pauses get their beat once the interval has passed. */
  flushGroup(now, horizon) {
    if (!this.group.count || this.head < this.buffer.length) return;
    const due = this.lastBeat + (this.lateInGroup ? LATE_BEAT_GAP : this.minBeatInterval());
    if (due < horizon) this.beat(Math.max(due, now));
  }

  /** Whether a voice should be synthesised now (live, and switched on). */
  plays(voice) {
    return this.live && this.mixer !== null && audible(this.settings, voice);
  }

  beat(time) {
    time = Math.max(time, this.now() + START_MARGIN); // the clock moved on while this tick ran
    const b = this.group.mean();
    this.group.clear();
    this.lateInGroup = false;
    this.lastBeatStep = b.step;
    if (Number.isFinite(this.lastBeat)) {
      const gap = clamp(time - this.lastBeat, this.minBeatInterval(), 2);
      this.beatInterval += (gap - this.beatInterval) * 0.3;
    }
    this.lastBeat = time;
    const { scale, instruments } = this.settings;
    const degree = beatDegree(b.crescendo, scale);
    const frequency = degreeFrequency(degree, scale);
    const entropy = audible(this.settings, 'breath') ? clamp(b.entropy ?? 0, 0, 1) : 0;
    const decay = clamp(this.beatInterval * 2, 0.18, 1.2);
    if (this.plays('beats')) {
      const outs = { tone: this.mixer.bus.beats, breath: this.mixer.bus.breath };
      voices.beat(this.ctx, outs, {
        instrument: instruments.beats,
        time,
        freq: frequency,
        gain: BEAT_GAIN,
        split: breathSplit(entropy),
        decay,
      });
    }
    this.lastSound = Math.max(this.lastSound, time + decay * 0.5);
    this.setCrescendo(b.crescendo, time);
    const duration = clamp(this.beatInterval * 0.9, 0.15, 0.6);
    this.note({
      kind: 'beat',
      step: b.step,
      time,
      gain: BEAT_GAIN,
      frequency,
      level: 1 - entropy,
      entropy,
      duration,
      count: b.count,
    });
    this.echoes(b, degree, time);
    if (this.overfit) this.testVoice(b, frequency, time);
  }

  /** One echo per weight layer, output layer first; level from that layer's gradient norm (absolute). */
  echoes(b, degree, time) {
    const spacing = clamp(this.beatInterval / (this.layers + 1), ...ECHO_SPACING);
    const { scale, instruments, target, contrast } = this.settings;
    const decay = clamp(spacing * 4, 0.12, 0.35);
    for (let k = 0; k < this.layers; k++) {
      const layer = this.layers - 1 - k;
      const norm = b.grads ? b.grads[layer] : undefined;
      const m = norm === undefined ? echoMapping(0, { target, contrast }) : echoMapping(norm, { target, contrast });
      const gain = BEAT_GAIN * m.gain;
      const frequency = degreeFrequency(echoDegree(degree, k), scale) * 2 ** (m.semitones / 12);
      const at = time + (k + 1) * spacing;
      if (this.plays('echoes')) {
        voices.echo(this.ctx, this.mixer.bus.echoes, {
          instrument: instruments.echoes,
          time: at,
          freq: frequency,
          gain,
          brightness: m.brightness,
          decay,
        });
      }
      this.lastSound = Math.max(this.lastSound, at + decay * 0.5);
      this.note({
        kind: 'echo',
        step: b.step,
        layer,
        time: at,
        gain,
        db: m.db,
        frequency,
        level: m.level,
        duration: spacing * 1.6,
      });
    }
  }

  testVoice(b, frequency, time) {
    const cents = this.overfit.cents;
    if (this.plays('test')) {
      voices.testVoice(this.ctx, this.mixer.bus.test, {
        instrument: this.settings.instruments.test,
        time,
        freq: frequency,
        gain: TEST_GAIN,
        cents,
      });
    }
    this.note({
      kind: 'test-voice',
      step: b.step,
      time,
      gain: TEST_GAIN,
      frequency: frequency * 2 ** (cents / 1200),
      level: cents / 90,
      duration: 0.3,
    });
  }

  /** Cues make room: the beats duck under the chime; the diverged step is heard, then the alarm, then silence. */
  playCue(item) {
    const step = item.data.step;
    const audibleCues = this.plays('cues');
    const time = Math.max(item.time, this.now() + START_MARGIN);
    if (item.kind === 'chime') {
      if (this.mixer) this.mixer.duck(time, CHIME_HOLD);
      const frequency = audibleCues ? voices.chime(this.ctx, this.mixer.cues, time, CUE_GAIN) : 523.25;
      this.note({ kind: 'chime', step, time, gain: CUE_GAIN, frequency, level: 1, duration: 2.5 });
    } else if (item.kind === 'alarm') {
      const diverged = this.lastStep && this.lastStep.step === step && this.lastBeatStep !== step;
      if (!this.group.count && diverged) this.group.add(this.lastStep);
      if (this.group.count) this.beat(Math.max(item.time, this.lastBeat + this.minBeatInterval())); // the explosion itself
      const at = Math.max(item.time, this.lastSound + ALARM_GAP, this.now() + START_MARGIN);
      const frequency = audibleCues ? voices.alarm(this.ctx, this.mixer.cues, at, CUE_GAIN) : 440;
      this.note({ kind: 'alarm', step, time: at, gain: CUE_GAIN, frequency, level: 1, duration: ALARM_LENGTH });
      this.silenced = true; // then silence: no beat after a diverged step
      this.group.clear();
      this.stopDrone(at);
    } else if (item.kind === 'change') {
      const frequency = audibleCues
        ? cueVoices.changeCue(this.ctx, this.mixer.cues, time, CHANGE_GAIN)
        : cueVoices.CHANGE_NOTES[0];
      this.note({ kind: 'change', step, time, gain: CHANGE_GAIN, frequency, level: 1, duration: 0.3 });
    } else if (item.kind === 'plateau') {
      this.stopDrone(time);
      if (audibleCues) this.droneStop = cueVoices.drone(this.ctx, this.mixer.cues, time, DRONE_GAIN);
      const frequency = cueVoices.DRONE_FREQUENCY;
      this.note({ kind: 'plateau', step, time, gain: DRONE_GAIN, frequency, level: 1, duration: 2 });
    } else if (item.kind === 'plateau_end') {
      this.stopDrone(time);
    }
  }

  /** The plateau drone fades out (learning resumed, the run ended or changed). */
  stopDrone(time) {
    if (this.droneStop) this.droneStop(time);
    this.droneStop = null;
  }

  setCrescendo(c, time) {
    if (c === null || c === undefined || !Number.isFinite(c)) return;
    this.crescendo = clamp(c, 0, 1);
    if (this.live && this.mixer) this.mixer.setCrescendo(this.crescendo, time);
  }

  /** Hand a scheduled note to the picture and to anyone listening (tests, tools, exports). */
  note(n) {
    n.swell = swellLevel(this.crescendo); // the master level it sounds at (× volume), for MIDI velocity
    if (this.label) n.run = this.label;
    if (this.recorded) this.recorded.push(n);
    if (this.virtual || this.offline) return; // exports collect `recorded`; nothing to draw or announce
    this.notes.push(n);
    if (this.notes.length > DRAW_QUEUE_LIMIT) this.notes.splice(0, this.notes.length - DRAW_QUEUE_LIMIT);
    if (!this.live) return;
    const detail = { kind: n.kind, step: n.step, time: n.time, gain: n.gain, frequency: n.frequency };
    if (n.kind === 'echo') Object.assign(detail, { layer: n.layer, db: n.db });
    if (n.kind === 'beat') detail.entropy = n.entropy;
    if (this.label) detail.run = this.label;
    window.dispatchEvent(new CustomEvent('backbeat:note', { detail }));
  }
}
