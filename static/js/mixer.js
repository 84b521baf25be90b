// The mixing desk: voices → bus (+ a little room) → master (crescendo × volume) → limiter; cues at volume.
import { roomImpulse } from './voices.js';

const CRESCENDO_FLOOR = 0.3; // master level when training starts, × volume
const MASTER_SMOOTHING = 0.12; // s, time constant of the crescendo
const VOLUME_SMOOTHING = 0.03; // s, time constant when the user moves the volume
const MIN_CHANGE = 0.002; // smaller crescendo changes are not worth an automation event
const REVERB_WET = 0.22;
const LIMIT_THRESHOLD = -12; // dB
const LIMIT_RATIO = 6;

export class Mixer {
  constructor(ctx, { volume, muted, crescendo }) {
    Object.assign(this, { ctx, volume, muted, crescendo, lastTarget: null });
    const limiter = ctx.createDynamicsCompressor();
    limiter.threshold.value = LIMIT_THRESHOLD;
    limiter.ratio.value = LIMIT_RATIO;
    this.master = ctx.createGain(); // read by tests through window.backbeat.audio.master
    this.master.gain.value = this.target();
    this.cues = ctx.createGain(); // chime and alarm: the user's volume, no crescendo
    this.cues.gain.value = muted ? 0 : volume;
    this.bus = ctx.createGain(); // every musical voice
    const room = ctx.createConvolver();
    room.buffer = roomImpulse(ctx);
    const wet = ctx.createGain();
    wet.gain.value = REVERB_WET;
    this.bus.connect(this.master);
    this.bus.connect(room).connect(wet).connect(this.master);
    this.master.connect(limiter);
    this.cues.connect(limiter);
    limiter.connect(ctx.destination);
  }

  target() {
    return this.muted ? 0 : this.volume * (CRESCENDO_FLOOR + (1 - CRESCENDO_FLOOR) * this.crescendo);
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
    for (const [param, value] of [[this.master.gain, this.lastTarget], [this.cues.gain, muted ? 0 : volume]]) {
      param.cancelScheduledValues(now);
      param.setTargetAtTime(value, now, VOLUME_SMOOTHING);
    }
  }
}
