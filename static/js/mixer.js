// The mixing desk: voice buses (on/off/solo) → duck → room → master (crescendo × volume) → pan → limiter.
import { swellLevel } from './sonify.js';
import { roomImpulse } from './voices.js';

const MASTER_SMOOTHING = 0.12; // s, time constant of the crescendo
const VOLUME_SMOOTHING = 0.03; // s, time constant when the user moves the volume or a voice switch
const MIN_CHANGE = 0.002; // smaller crescendo changes are not worth an automation event
const REVERB_WET = 0.22;
const LIMIT_THRESHOLD = -12; // dB
const LIMIT_RATIO = 6;
export const DUCK_DB = -12; // dB: the beats and echoes step back while the chime rings
const DUCK_ATTACK = 0.04; // s
const DUCK_RELEASE = 0.6; // s, time constant back to full level
export const BUS_VOICES = ['beats', 'echoes', 'breath', 'test'];

/** What every run's strip plays into: one limiter before the speakers, and a tap for recording clips. */
export class Desk {
  constructor(ctx) {
    this.ctx = ctx;
    this.limiter = ctx.createDynamicsCompressor();
    this.limiter.threshold.value = LIMIT_THRESHOLD;
    this.limiter.ratio.value = LIMIT_RATIO;
    this.limiter.connect(ctx.destination);
    this.tap = null;
  }

  get input() {
    return this.limiter;
  }

  /** A MediaStream of everything heard, for MediaRecorder (created on first use; live contexts only). */
  stream() {
    if (!this.tap) {
      this.tap = this.ctx.createMediaStreamDestination();
      this.limiter.connect(this.tap);
    }
    return this.tap.stream;
  }
}

/** One run's strip on the desk; `pan` −1 (left, run A) … +1 (right, run B). */
export class Mixer {
  constructor(ctx, { volume, muted, crescendo, output, pan = 0 }) {
    Object.assign(this, { ctx, volume, muted, crescendo, lastTarget: null });
    this.panner = ctx.createStereoPanner(); // read by tests: A left, B right
    this.panner.pan.value = pan;
    this.panner.connect(output);
    this.master = ctx.createGain(); // read by tests through window.backbeat.audio.master
    this.master.gain.value = this.target();
    this.master.connect(this.panner);
    this.cues = ctx.createGain(); // chime and alarm: the user's volume, no crescendo
    this.cues.gain.value = muted ? 0 : volume;
    this.cueGate = ctx.createGain(); // cues on/off/solo
    this.cueGate.connect(this.cues).connect(this.panner);
    this.ducker = ctx.createGain(); // every musical voice steps back under the chime
    const room = ctx.createConvolver();
    room.buffer = roomImpulse(ctx);
    const wet = ctx.createGain();
    wet.gain.value = REVERB_WET;
    this.ducker.connect(this.master);
    this.ducker.connect(room).connect(wet).connect(this.master);
    this.bus = {}; // per voice, gain 1 (on) or 0 (off / not soloed)
    for (const voice of BUS_VOICES) {
      this.bus[voice] = ctx.createGain();
      this.bus[voice].connect(this.ducker);
    }
  }

  target() {
    return this.muted ? 0 : this.volume * swellLevel(this.crescendo);
  }

  /** The swell follows learning progress, smoothly, from `time` on the audio clock. */
  setCrescendo(crescendo, time) {
    this.crescendo = crescendo;
    const target = this.target();
    if (this.lastTarget !== null && Math.abs(target - this.lastTarget) < MIN_CHANGE) return;
    this.lastTarget = target;
    this.master.gain.setTargetAtTime(target, time, MASTER_SMOOTHING);
  }

  /** The user's volume and mute apply now, overriding swells already scheduled. */
  setLevels(volume, muted, now) {
    Object.assign(this, { volume, muted });
    this.lastTarget = this.target();
    for (const [param, value] of [
      [this.master.gain, this.lastTarget],
      [this.cues.gain, muted ? 0 : volume],
    ]) {
      param.cancelScheduledValues(now);
      param.setTargetAtTime(value, now, VOLUME_SMOOTHING);
    }
  }

  /** Voices on or off (after solo): `gates` = {beats, echoes, breath, test, cues} → bool. */
  setVoices(gates, now) {
    for (const voice of BUS_VOICES) this.bus[voice].gain.setTargetAtTime(gates[voice] ? 1 : 0, now, VOLUME_SMOOTHING);
    this.cueGate.gain.setTargetAtTime(gates.cues ? 1 : 0, now, VOLUME_SMOOTHING);
  }

  /** Every level jumps to its target at `time`, unsmoothed: an export's first beat sounds as loud as its mapping says. */
  settle(gates, time) {
    this.lastTarget = this.target();
    const levels = [
      [this.master.gain, this.lastTarget],
      [this.cues.gain, this.muted ? 0 : this.volume],
      [this.cueGate.gain, gates.cues ? 1 : 0],
      ...BUS_VOICES.map((voice) => [this.bus[voice].gain, gates[voice] ? 1 : 0]),
    ];
    for (const [param, value] of levels) {
      param.cancelScheduledValues(time);
      param.setValueAtTime(value, time);
    }
  }

  /** Beats and echoes duck by DUCK_DB from `time` for `hold` seconds, then come back. */
  duck(time, hold) {
    const g = this.ducker.gain;
    g.cancelScheduledValues(time);
    g.setTargetAtTime(10 ** (DUCK_DB / 20), time, DUCK_ATTACK / 3);
    g.setTargetAtTime(1, time + hold, DUCK_RELEASE / 3);
  }
}
