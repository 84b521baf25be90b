// Transport: play/pause, step, reset, tempo, volume and mute; run status, counters and errors by the play button.
import { api } from './api.js';

const TEMPO_MIN = 0.5; // steps/s at the slider's left end
const TEMPO_MAX = 1000; // steps/s at its right end (log scale between)
const SLIDER_STEPS = 1000; // the range input's max
const DEFAULT_TEMPO = 8; // steps/s
const TEMPO_DEBOUNCE = 120; // ms before a dragged tempo is sent to a live run
const TEMPO_KEY_STEP = 40; // slider units per ↑/↓ key press
const STEP_RETRIES = 30; // a just-created run may still be `starting`; retry a step this often…
const STEP_RETRY_DELAY = 100; // …this many ms apart
const LISTEN_TIMEOUT = 3000; // ms to wait for the run's websocket hello before going on regardless
const LIVE_STATES = new Set(['starting', 'running', 'paused']);
const STATE_LABELS = {
  idle: 'Ready', starting: 'Starting', running: 'Running', paused: 'Paused', finished: 'Finished',
  stopped: 'Stopped', diverged: 'Diverged', interrupted: 'Interrupted', failed: 'Failed', replaying: 'Replay',
};

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Slider position (0…1000) → steps per second, rounded to two significant digits. */
export function sliderToTempo(v) {
  const sps = TEMPO_MIN * (TEMPO_MAX / TEMPO_MIN) ** (v / SLIDER_STEPS);
  return Number(sps.toPrecision(2));
}

export function tempoToSlider(sps) {
  return Math.round((Math.log(sps / TEMPO_MIN) / Math.log(TEMPO_MAX / TEMPO_MIN)) * SLIDER_STEPS);
}

export class Transport {
  constructor({ form, audio, onStart, onReset }) {
    Object.assign(this, { form, audio, onStart, onReset });
    this.runId = null;
    this.state = 'idle';
    this.busy = false;
    this.shown = { step: null, epoch: null };
    this.el = Object.fromEntries(
      ['play', 'step', 'reset', 'tempo', 'tempo-max', 'tempo-value', 'mute', 'volume', 'status', 'step-count', 'epoch-count', 'error-run'].map((id) => [id, $(id)]),
    );
    this.el.tempo.value = String(tempoToSlider(DEFAULT_TEMPO));
    this.showTempo();
    this.bind();
  }

  get live() {
    return this.runId !== null && LIVE_STATES.has(this.state);
  }

  /** Steps per second for the server; null = as fast as it goes. */
  get tempo() {
    return this.el['tempo-max'].getAttribute('aria-pressed') === 'true' ? null : sliderToTempo(Number(this.el.tempo.value));
  }

  bind() {
    this.el.play.addEventListener('click', () => this.play());
    this.el.step.addEventListener('click', () => this.step());
    this.el.reset.addEventListener('click', () => this.reset());
    this.el.tempo.addEventListener('input', () => this.tempoChanged());
    this.el['tempo-max'].addEventListener('click', () => {
      const on = this.el['tempo-max'].getAttribute('aria-pressed') !== 'true';
      this.el['tempo-max'].setAttribute('aria-pressed', String(on));
      this.tempoChanged();
    });
    this.el.volume.addEventListener('input', () => {
      this.audio.unlock();
      this.audio.setVolume(Number(this.el.volume.value) / 100);
    });
    this.el.mute.addEventListener('click', () => this.toggleMute());
    document.addEventListener('keydown', (e) => this.shortcut(e));
    // A run this page started should not outlive the page and hold one of the server's slots.
    window.addEventListener('pagehide', () => {
      if (this.startedHere && this.live) api.stopOnExit(this.runId);
    });
    this.audio.setVolume(Number(this.el.volume.value) / 100);
  }

  /** Keyboard-driven for the stage; keys typed into fields stay with the fields. */
  shortcut(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.closest && e.target.closest('input[type="number"], select, textarea');
    const onSlider = e.target.matches && e.target.matches('input[type="range"]');
    if (typing) return;
    const k = e.key;
    const native = e.target.closest && e.target.closest('button, a, input[type="checkbox"]');
    if (k === ' ' && native) return; // Space already clicks a focused button: no double toggle
    if (k === ' ' || k === 'k') {
      e.preventDefault();
      this.play();
    } else if ((k === 'ArrowRight' || k === '.') && !onSlider) {
      e.preventDefault();
      this.step();
    } else if (k === 'r' || k === 'R') this.reset();
    else if (k === 'm' || k === 'M') this.toggleMute();
    else if ((k === 'ArrowUp' || k === 'ArrowDown') && !onSlider) {
      e.preventDefault();
      const next = Number(this.el.tempo.value) + (k === 'ArrowUp' ? TEMPO_KEY_STEP : -TEMPO_KEY_STEP);
      this.el.tempo.value = String(Math.max(0, Math.min(SLIDER_STEPS, next)));
      this.tempoChanged();
    }
  }

  toggleMute() {
    this.audio.unlock();
    const muted = this.el.mute.getAttribute('aria-pressed') !== 'true';
    this.el.mute.setAttribute('aria-pressed', String(muted)); // a toggle: the label stays "Mute"
    this.audio.setMuted(muted);
  }

  showTempo() {
    const sps = this.tempo;
    const text = sps === null ? 'max' : `${sps} steps/s`;
    this.el['tempo-value'].textContent = text;
    this.el.tempo.setAttribute('aria-valuetext', sps === null ? 'as fast as it goes' : `${sps} steps per second`);
    this.el.tempo.disabled = sps === null;
  }

  tempoChanged() {
    this.showTempo();
    clearTimeout(this.tempoTimer);
    if (!this.live) return;
    this.tempoTimer = setTimeout(() => this.control('tempo', { steps_per_second: this.tempo }), TEMPO_DEBOUNCE);
  }

  /** Play starts a fresh run from the form, or pauses / resumes the live one. */
  async play() {
    this.audio.unlock(); // first, while we are still inside the user's gesture
    if (this.busy) return;
    this.busy = true;
    try {
      if (!this.live) {
        if (await this.start()) await this.control('resume');
      } else if (this.state === 'running' || this.state === 'starting') await this.control('pause');
      else if (this.state === 'paused') await this.control('resume');
    } finally {
      this.busy = false;
    }
  }

  /** One step: creates a paused run if there is none, pauses a running one. */
  async step() {
    this.audio.unlock();
    if (this.busy) return;
    this.busy = true;
    try {
      if (!this.live && !(await this.start())) return;
      if (this.state === 'running' && !(await this.control('pause'))) return;
      for (let attempt = 0; ; attempt++) {
        try {
          const answer = await api.control(this.runId, 'step');
          this.setState(answer.state);
          return;
        } catch (e) {
          if (e.status !== 409 || attempt >= STEP_RETRIES || !this.live) return this.fail(e);
          await sleep(STEP_RETRY_DELAY);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** Stop the live run (it stays in history); the next play starts afresh from the form. */
  async reset() {
    const id = this.runId;
    const wasLive = this.live;
    this.runId = null;
    this.setState('idle');
    this.clearErrors();
    this.onReset();
    if (!id || !wasLive) return;
    try {
      await api.control(id, 'stop');
    } catch (e) {
      if (e.status !== 409 && e.status !== 404) this.showError(e.message);
    }
  }

  /** Create a paused run and wait until the page is listening, so step 1 is seen and heard. */
  async start() {
    this.clearErrors();
    const config = { ...this.form.value(), steps_per_second: this.tempo, start_paused: true };
    this.setState('starting');
    try {
      const run = await api.createRun(config);
      this.runId = run.id;
      this.startedHere = true;
      this.setState(run.state);
      await Promise.race([this.onStart(run.id), sleep(LISTEN_TIMEOUT)]);
      return this.runId === run.id;
    } catch (e) {
      this.setState('idle');
      this.fail(e);
      return false;
    }
  }

  async control(action, extra = {}) {
    if (!this.runId) return null;
    try {
      const answer = await api.control(this.runId, action, extra);
      this.setState(answer.state);
      return answer;
    } catch (e) {
      this.fail(e);
      return null;
    }
  }

  /** 422: each message beside its control; anything else (409, 429, network) beside play. */
  fail(e) {
    if (e.status === 422) {
      const unplaced = this.form.showErrors(e.fieldErrors());
      if (unplaced.length) this.showError(unplaced.join(' · '));
    } else {
      this.showError(e.message);
    }
  }

  showError(message) {
    this.el['error-run'].textContent = message;
  }

  clearErrors() {
    this.el['error-run'].textContent = '';
    this.form.clearErrors();
  }

  /** Take over a run the page did not start (late join, ?run=…). */
  adopt(runId, state) {
    if (runId !== this.runId) this.startedHere = false;
    this.runId = runId;
    this.setState(state);
  }

  setState(state) {
    if (!state) return;
    this.state = state;
    const playing = state === 'running' || state === 'starting';
    this.el.play.classList.toggle('playing', playing);
    this.el.play.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    this.el.status.dataset.state = state;
    this.el.status.textContent = STATE_LABELS[state] || state;
  }

  /** Counters change the DOM only when their value does. */
  setCounters(step, epoch) {
    for (const [key, value] of [['step', step], ['epoch', epoch]]) {
      if (this.shown[key] === value) continue;
      this.shown[key] = value;
      const el = this.el[`${key}-count`];
      el.textContent = value === null || value === undefined ? '–' : value.toLocaleString('en-US');
      el.dataset.value = String(value ?? '');
    }
  }

  setEnabled(enabled) {
    for (const id of ['play', 'step', 'reset', 'tempo', 'tempo-max']) this.el[id].disabled = !enabled;
  }
}
