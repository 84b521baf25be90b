// Sound settings of one viewer (scale, instruments, echo target, voices on/off/solo): presets and URL text.
import { SCALES } from '../sonify.js';

export const INSTRUMENTS = ['bell', 'pluck', 'marimba', 'sine'];
export const ECHO_TARGETS = ['loudness', 'brightness', 'pitch'];
export const CONTRASTS = ['normal', 'high'];
export const VOICES = ['beats', 'echoes', 'breath', 'test', 'cues'];
export const PLAYED_BY = ['beats', 'echoes', 'test']; // voices with an instrument of their own

export const PRESETS = {
  classic: {
    label: 'Classic',
    scale: 'pentatonic',
    instruments: { beats: 'bell', echoes: 'pluck', test: 'pluck' },
    target: 'loudness',
    contrast: 'normal',
    off: [],
    solo: [],
  },
  minimal: {
    label: 'Minimal (beats + crescendo)',
    scale: 'pentatonic',
    instruments: { beats: 'bell', echoes: 'pluck', test: 'pluck' },
    target: 'loudness',
    contrast: 'normal',
    off: ['echoes', 'breath', 'test', 'cues'],
    solo: [],
  },
  contrast: {
    label: 'High contrast (for hearing the echoes apart)',
    scale: 'pentatonic',
    instruments: { beats: 'sine', echoes: 'marimba', test: 'pluck' },
    target: 'loudness',
    contrast: 'high',
    off: ['breath'],
    solo: [],
  },
};
export const DEFAULT_PRESET = 'classic';

/** A fresh copy of a preset's settings. */
export function preset(name = DEFAULT_PRESET) {
  const p = PRESETS[name] || PRESETS[DEFAULT_PRESET];
  return {
    scale: p.scale,
    instruments: { ...p.instruments },
    target: p.target,
    contrast: p.contrast,
    off: [...p.off],
    solo: [...p.solo],
  };
}

/** The preset these settings equal exactly, or null when edited. */
export function presetOf(settings) {
  const text = JSON.stringify(normalise(settings));
  return Object.keys(PRESETS).find((name) => JSON.stringify(preset(name)) === text) || null;
}

/** Sorted, de-duplicated voice lists, so equal settings compare equal. */
function normalise(s) {
  const list = (v) => VOICES.filter((x) => v.includes(x));
  return {
    scale: s.scale,
    instruments: { ...s.instruments },
    target: s.target,
    contrast: s.contrast,
    off: list(s.off),
    solo: list(s.solo),
  };
}

/** Whether a voice sounds: soloed voices alone when any is soloed, otherwise every voice not switched off. */
export function audible(settings, voice) {
  if (settings.solo.length) return settings.solo.includes(voice);
  return !settings.off.includes(voice);
}

/** Settings as URL text: a preset's name, or `scale:…,beats:…,echoes:…,test:…,map:…,contrast:…,off:a+b,solo:c`. */
export function encodeSettings(settings) {
  const s = normalise(settings);
  const name = presetOf(s);
  if (name) return name;
  const parts = [
    `scale:${s.scale}`,
    ...PLAYED_BY.map((v) => `${v}:${s.instruments[v]}`),
    `map:${s.target}`,
    `contrast:${s.contrast}`,
  ];
  if (s.off.length) parts.push(`off:${s.off.join('+')}`);
  if (s.solo.length) parts.push(`solo:${s.solo.join('+')}`);
  return parts.join(',');
}

/**
 * URL text back to settings. Anything unknown is reported in `problems` and replaced by the
 * Classic value, so a bad bookmark still plays.
 */
export function decodeSettings(text) {
  const problems = [];
  if (!text) return { settings: preset(), problems };
  if (PRESETS[text]) return { settings: preset(text), problems };
  const s = preset();
  const voices = (v) => {
    const names = v ? v.split('+') : [];
    const bad = names.filter((n) => !VOICES.includes(n));
    if (bad.length) problems.push(`unknown voice ${bad.join(', ')}`);
    return names.filter((n) => VOICES.includes(n));
  };
  for (const part of text.split(',')) {
    const at = part.indexOf(':');
    const key = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? '' : part.slice(at + 1);
    const pick = (choices, apply) =>
      choices.includes(value) ? apply(value) : problems.push(`${key}: unknown “${value}”`);
    if (key === 'scale') pick(Object.keys(SCALES), (v) => (s.scale = v));
    else if (PLAYED_BY.includes(key)) pick(INSTRUMENTS, (v) => (s.instruments[key] = v));
    else if (key === 'map') pick(ECHO_TARGETS, (v) => (s.target = v));
    else if (key === 'contrast') pick(CONTRASTS, (v) => (s.contrast = v));
    else if (key === 'off') s.off = voices(value);
    else if (key === 'solo') s.solo = voices(value);
    else problems.push(`unknown sound setting “${key}”`);
  }
  return { settings: normalise(s), problems };
}
