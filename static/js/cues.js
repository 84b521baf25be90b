// Cues beside the music: a knob turned (change) and being stuck (plateau drone). Scheduled at `time`, never "now".

export const CHANGE_NOTES = [987.77, 1318.51]; // Hz, B5 then E6: a short rising "tick-tock" over the beats
const CHANGE_SPACING = 0.07; // s between its two notes
const CHANGE_DECAY = 0.18; // s each note rings
const DRONE_FREQS = [73.42, 110.0]; // Hz, D2 and A2: a low open fifth held under the beats
const DRONE_SWELL = 1.2; // s to fade the drone in (and out)
const DRONE_WOBBLE = 0.25; // Hz: its slow tremolo, restless rather than calm
const FLOOR = 0.0001; // exponential ramps cannot reach 0

/** A knob turned: two quick sine pings, rising. Returns the first note's frequency. */
export function changeCue(ctx, out, time, gain) {
  CHANGE_NOTES.forEach((freq, i) => {
    const at = time + i * CHANGE_SPACING;
    const osc = ctx.createOscillator();
    osc.type = 'sine';
    osc.frequency.value = freq;
    const amp = ctx.createGain();
    amp.gain.setValueAtTime(FLOOR, at);
    amp.gain.exponentialRampToValueAtTime(gain, at + 0.005);
    amp.gain.exponentialRampToValueAtTime(FLOOR, at + CHANGE_DECAY);
    osc.connect(amp).connect(out);
    osc.start(at);
    osc.stop(at + CHANGE_DECAY + 0.02);
    osc.onended = () => amp.disconnect();
  });
  return CHANGE_NOTES[0];
}

/** Stuck: a held low fifth that swells in at `time`; returns stop(time) that fades it out. */
export function drone(ctx, out, time, gain) {
  const amp = ctx.createGain();
  amp.gain.setValueAtTime(FLOOR, time);
  amp.gain.exponentialRampToValueAtTime(gain, time + DRONE_SWELL);
  const wobble = ctx.createOscillator();
  wobble.frequency.value = DRONE_WOBBLE;
  const depth = ctx.createGain();
  depth.gain.value = gain * 0.35;
  wobble.connect(depth).connect(amp.gain);
  const voices = DRONE_FREQS.map((freq) => {
    const osc = ctx.createOscillator();
    osc.type = 'triangle';
    osc.frequency.value = freq;
    osc.connect(amp);
    return osc;
  });
  amp.connect(out);
  [wobble, ...voices].forEach((o) => o.start(time));
  let stopped = false;
  return (at) => {
    if (stopped) return;
    stopped = true;
    const end = Math.max(at, time) + DRONE_SWELL;
    amp.gain.cancelScheduledValues(at);
    amp.gain.setTargetAtTime(FLOOR, at, DRONE_SWELL / 4);
    [wobble, ...voices].forEach((o) => o.stop(end));
    voices[0].onended = () => [amp, depth].forEach((n) => n.disconnect());
  };
}

export const DRONE_FREQUENCY = DRONE_FREQS[0];
