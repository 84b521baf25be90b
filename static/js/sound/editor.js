// The sound editor: one viewer's style (scale, instruments, echo target, voices), kept in the URL and localStorage.
import { readHash, updateHash } from '../hash.js';
import {
  BRIGHTNESS_HZ,
  DB_PER_DECADE,
  ECHO_FLOOR_DB,
  ECHO_REFERENCE_DB,
  GRAD_REFERENCE,
  PITCH_RANGE,
  PITCH_SEMITONES_PER_DECADE,
  SCALES,
} from '../sonify.js';
import {
  CONTRASTS,
  ECHO_TARGETS,
  INSTRUMENTS,
  PLAYED_BY,
  PRESETS,
  VOICES,
  decodeSettings,
  encodeSettings,
  preset,
  presetOf,
} from './settings.js';
import { $ } from '../dom.js';

export const HASH_KEY = 'sound'; // #sound=classic or #sound=scale:major,…
export const STORAGE_KEY = 'backbeat.sound';
const VOICE_LABELS = {
  beats: 'Beats (steps)',
  echoes: 'Echoes (gradients)',
  breath: 'Breath (uncertainty)',
  test: 'Test voice (overfitting)',
  cues: 'Cues (chime, alarm)',
};
const TARGET_LABELS = { loudness: 'loudness + brightness', brightness: 'brightness only', pitch: 'pitch' };
const CONTRAST_LABELS = { normal: 'normal (10 dB per 10×)', high: 'high (15 dB per 10×)' };
const EDITED = ''; // the preset menu's value once settings differ from every preset

const minus = (v) => String(v).replace('-', '−');

/** The legend's echo line for these settings: what a 10× change in gradient norm does, with its numbers. */
export function echoLegend({ target, contrast }) {
  const held = `held at ${minus(ECHO_REFERENCE_DB)} dB under the beat`;
  if (target === 'pitch') {
    const [lo, hi] = PITCH_RANGE;
    return `: ${held}; ${PITCH_SEMITONES_PER_DECADE} semitones higher per 10× in gradient norm (${minus(lo)} to +${hi}).`;
  }
  const [dull, bright] = BRIGHTNESS_HZ;
  if (target === 'brightness')
    return `: ${held}; brighter per 10× in gradient norm, from a dull ${dull} Hz (vanishing) to ${bright / 1000} kHz (exploding).`;
  const k = DB_PER_DECADE[contrast] ?? DB_PER_DECADE.normal;
  return (
    `: +${k} dB per 10× in gradient norm, ${minus(ECHO_REFERENCE_DB)} dB under the beat at ${GRAD_REFERENCE}. ` +
    `Quiet & dull = vanishing (never below ${minus(ECHO_FLOOR_DB)} dB); loud & bright = exploding (capped at the beat’s level).`
  );
}

function fill(select, values, labels = {}) {
  select.replaceChildren(...values.map((v) => new Option(labels[v] || v, v)));
}

/** Where a viewer's settings come from: the URL first (a shared bookmark), then this browser, then Classic. */
function storedText() {
  const fromHash = readHash().get(HASH_KEY);
  if (fromHash) return fromHash;
  try {
    return localStorage.getItem(STORAGE_KEY) || '';
  } catch {
    return ''; // storage blocked: the URL still holds the settings
  }
}

export class SoundEditor {
  /** onChange(settings): the engines take the new settings. */
  constructor(onChange) {
    this.onChange = onChange;
    fill($('sound-preset'), [...Object.keys(PRESETS), EDITED], {
      ...Object.fromEntries(Object.entries(PRESETS).map(([k, p]) => [k, p.label])),
      [EDITED]: 'Custom',
    });
    fill($('sound-scale'), Object.keys(SCALES));
    for (const voice of PLAYED_BY) fill($(`sound-inst-${voice}`), INSTRUMENTS);
    fill($('sound-target'), ECHO_TARGETS, TARGET_LABELS);
    fill($('sound-contrast'), CONTRASTS, CONTRAST_LABELS);
    $('sound-voices').replaceChildren(...VOICES.map((v) => this.voiceRow(v)));
    $('sound-preset').addEventListener('change', (e) => e.target.value !== EDITED && this.set(preset(e.target.value)));
    $('sound-scale').addEventListener('change', (e) => this.edit((s) => (s.scale = e.target.value)));
    for (const voice of PLAYED_BY)
      $(`sound-inst-${voice}`).addEventListener('change', (e) =>
        this.edit((s) => (s.instruments[voice] = e.target.value)),
      );
    $('sound-target').addEventListener('change', (e) => this.edit((s) => (s.target = e.target.value)));
    $('sound-contrast').addEventListener('change', (e) => this.edit((s) => (s.contrast = e.target.value)));
    this.load();
  }

  voiceRow(voice) {
    const row = document.createElement('tr');
    const name = document.createElement('th');
    name.scope = 'row';
    name.textContent = VOICE_LABELS[voice];
    const cell = (kind) => {
      const td = document.createElement('td');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.dataset.testid = `voice-${kind}-${voice}`;
      box.setAttribute('aria-label', `${kind === 'on' ? 'Play' : 'Solo'} ${VOICE_LABELS[voice]}`);
      box.addEventListener('change', () =>
        this.edit((s) => toggle(kind === 'on' ? s.off : s.solo, voice, kind === 'on' ? !box.checked : box.checked)),
      );
      td.append(box);
      return td;
    };
    row.append(name, cell('on'), cell('solo'));
    return row;
  }

  /** Settings from the URL or this browser; problems with a bad bookmark are shown, Classic fills in. */
  load() {
    const { settings, problems } = decodeSettings(storedText());
    $('sound-problems').textContent = problems.length
      ? `Sound settings in the link were partly unknown (${problems.join('; ')}); Classic values used instead.`
      : '';
    this.set(settings, { quiet: true });
  }

  edit(change) {
    const next = structuredClone(this.settings);
    change(next);
    this.set(next);
  }

  set(settings, { quiet = false } = {}) {
    this.settings = settings;
    this.render();
    const text = encodeSettings(settings);
    updateHash({ [HASH_KEY]: text === 'classic' ? null : text }); // the default keeps bookmarks short
    try {
      localStorage.setItem(STORAGE_KEY, text);
    } catch {
      // storage blocked: the URL still holds the settings
    }
    if (!quiet) $('sound-problems').textContent = '';
    this.onChange(settings);
  }

  render() {
    const s = this.settings;
    $('sound-preset').value = presetOf(s) ?? EDITED;
    $('sound-scale').value = s.scale;
    for (const voice of PLAYED_BY) $(`sound-inst-${voice}`).value = s.instruments[voice];
    $('sound-target').value = s.target;
    $('sound-contrast').value = s.contrast;
    $('legend-echo').textContent = echoLegend(s);
    for (const voice of VOICES) {
      document.querySelector(`[data-testid="voice-on-${voice}"]`).checked = !s.off.includes(voice);
      document.querySelector(`[data-testid="voice-solo-${voice}"]`).checked = s.solo.includes(voice);
    }
  }
}

function toggle(list, voice, present) {
  const i = list.indexOf(voice);
  if (present && i < 0) list.push(voice);
  if (!present && i >= 0) list.splice(i, 1);
}
