// Exports play a run through the live engine on another clock: OfflineAudioContext (WAV) or virtual (MIDI).
import { AudioEngine } from '../audio.js';
import { encodeWav } from './wav.js';

export const MAX_EXPORT_SECONDS = 600; // s of sound at most (10 min): a WAV of 10 min is ~106 MB
export const MAX_EXPORT_STEPS = 200_000; // steps fetched for one export (choose a range for more)
export const EXPORT_SAMPLE_RATE = 44100; // Hz
export const EXPORT_LEAD = 0.25; // s before the first step's beat: Chromium's limiter opens up over its first 0.2 s
export const EXPORT_TAIL = 3; // s after the last step, for the last notes (a chime rings 3.5 s) to ring out
const CHUNK = 1; // s of audio scheduled per render slice (the offline lookahead), one progress tick each

/** Seconds of sound an export of `steps` at `tempo` steps/s lasts: steps ÷ tempo plus lead-in and ring-out. */
export function exportSeconds(steps, tempo) {
  return EXPORT_LEAD + steps / tempo + EXPORT_TAIL;
}

/** Why an export cannot be made (too long, nothing to play), or null. */
export function exportProblem(steps, tempo) {
  if (!(tempo > 0)) return 'Choose a tempo above 0 steps per second.';
  if (!steps) return 'No steps to play in that range.';
  const seconds = steps / tempo;
  if (seconds > MAX_EXPORT_SECONDS) {
    const minutes = (seconds / 60).toFixed(1);
    return `That is ${minutes} min of sound; exports are limited to ${MAX_EXPORT_SECONDS / 60} min. Raise the tempo or choose a shorter range.`;
  }
  return null;
}

/** Put a run's steps and cues on the engine's clock: step i at lead + i ÷ tempo. */
export function scheduleRun(engine, run, tempo) {
  engine.resetRun(run.layers.length - 1);
  const at = new Map();
  const items = run.steps.map((data, i) => {
    const time = EXPORT_LEAD + i / tempo;
    at.set(data.step, time);
    return { time, data };
  });
  engine.addTimedSteps(items);
  for (const ev of run.events || []) {
    if (!at.has(ev.step)) continue;
    engine.addCue(ev.type, ev, at.get(ev.step));
  }
  engine.buffer.sort((a, b) => a.time - b.time || (a.kind === 'step' ? -1 : 1)); // a step before its cue
}

/** Every note the run would play, on a virtual clock (for MIDI): the live scheduler, no audio. */
export function collectNotes(run, { tempo, settings }) {
  const engine = new AudioEngine({ virtual: true });
  engine.setSettings(settings);
  engine.recorded = [];
  scheduleRun(engine, run, tempo);
  engine.pump(0, Infinity);
  return engine.recorded;
}

/** Render the run into stereo PCM with the live voices; onProgress(0…1) after every slice. */
export async function renderAudio(run, { tempo, settings, volume = 0.7, onProgress = () => {} }) {
  const seconds = exportSeconds(run.steps.length, tempo);
  const sampleRate = EXPORT_SAMPLE_RATE;
  const ctx = new OfflineAudioContext(2, Math.ceil(seconds * sampleRate), sampleRate);
  const engine = new AudioEngine({ offline: ctx });
  engine.setSettings(settings);
  engine.setVolume(volume);
  engine.recorded = [];
  scheduleRun(engine, run, tempo);
  const first = run.steps.find((s) => Number.isFinite(s.crescendo));
  if (first) engine.setCrescendo(first.crescendo, 0); // a range from mid-run starts at its own swell
  engine.mixer.settle(engine.gates(), 0); // not ramping up from silence or from the previous settings
  engine.pump(0, 2 * CHUNK);
  for (let t = CHUNK; t < seconds; t += CHUNK) {
    ctx.suspend(t).then(() => {
      engine.pump(t, t + 2 * CHUNK);
      onProgress(t / seconds);
      ctx.resume();
    });
  }
  const buffer = await ctx.startRendering();
  onProgress(1);
  const channels = [buffer.getChannelData(0), buffer.getChannelData(1)];
  return { channels, sampleRate, notes: engine.recorded, seconds };
}

/** The rendered run as a WAV blob. */
export async function renderWav(run, options) {
  const audio = await renderAudio(run, options);
  return { blob: new Blob([encodeWav(audio.channels, audio.sampleRate)], { type: 'audio/wav' }), ...audio };
}
