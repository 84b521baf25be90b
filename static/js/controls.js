// Transport: play/pause, step, reset, tempo, volume and mute; run status, counters and errors by the play button.
import { UNREACHABLE, api } from './api.js';
import { readHash, updateHash } from './hash.js';
import { SLIDER_STEPS, sliderToTempo, tempoToSlider } from './tempo.js';
import { LIVE_STATES, STATE_LABELS } from './states.js';
import { $ } from './dom.js';
import { formatCount } from './format.js';

const TEMPO_LIMITS = [0.1, 10000]; // steps/s the server accepts (a bookmark may ask for any of them)
let defaultTempo = null; // steps/s, null = unpaced; the page sets it from GET /api/defaults first
const TEMPO_DEBOUNCE = 120; // ms before a dragged tempo is sent to a live run
const TEMPO_KEY_STEP = 40; // slider units per ↑/↓ key press
const STEP_RETRIES = 30; // a just-created run may still be `starting`; retry a step this often…
const STEP_RETRY_DELAY = 100; // …this many ms apart
const MAX_QUEUED_STEPS = 20; // S pressed faster than the server answers: steps wait their turn, up to this many
const LISTEN_TIMEOUT = 3000; // ms to wait for the run's websocket hello before going on regardless
const PAGE_LABELS = { idle: 'Ready', replaying: 'Replay', 'replay-paused': 'Replay paused' }; // the page's own states
const OFFLINE_LABEL = 'Connection lost'; // the badge during an outage: the run's last state is not known

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The tempo a run gets when the address names none: the server's default. */
export function setDefaultTempo(sps) {
  if (sps === null || (sps >= TEMPO_LIMITS[0] && sps <= TEMPO_LIMITS[1])) defaultTempo = sps;
}

export class Transport {
  constructor({ form, audio, onStart, onReset }) {
    Object.assign(this, { form, audio, onStart, onReset });
    this.runId = null;
    this.state = 'idle';
    this.busy = false;
    this.shown = { step: null, epoch: null };
    this.el = Object.fromEntries(
      [
        'play',
        'step',
        'reset',
        'tempo',
        'tempo-max',
        'tempo-value',
        'mute',
        'volume',
        'status',
        'step-count',
        'epoch-count',
        'error-run',
      ].map((id) => [id, $(id)]),
    );
    this.exact = null; // a tempo from a bookmark or a run, shown as is until the slider moves
    this.replay = null; // set by the page: while a replay shows, play/pause and tempo drive it
    // While the run's websocket is open it alone says the state: its messages are in order, whereas an
    // HTTP answer can overtake a state message still on its way and the badge would then go stale.
    this.streaming = false;
    this.pressedWhileBusy = false; // play/pause pressed while the last press was still being answered
    this.playAfterStep = false; // play/pause pressed while a step was still being answered
    this.offline = false; // the server cannot be reached: the badge says so instead of a stale state
    this.loadHash();
    this.bind();
  }

  /** Tempo from the URL (`tempo=12` or `tempo=max`); the default when absent. */
  loadHash() {
    const raw = readHash().get('tempo');
    const sps = raw === 'max' ? null : Number(raw);
    if (raw === 'max' || (raw && sps >= TEMPO_LIMITS[0] && sps <= TEMPO_LIMITS[1])) this.showRunTempo(sps);
    else this.showRunTempo(defaultTempo);
  }

  /** Show a tempo that came from elsewhere (a bookmark, a watched run) without sending it anywhere. */
  showRunTempo(sps) {
    clearTimeout(this.tempoTimer);
    this.tempoPending = false;
    this.el['tempo-max'].setAttribute('aria-pressed', String(sps === null));
    if (sps !== null) {
      this.el.tempo.value = String(Math.max(0, Math.min(SLIDER_STEPS, tempoToSlider(sps))));
      this.exact = sps;
    }
    this.showTempo();
  }

  /** The watched run reports its tempo; a change of our own still on its way wins. */
  followRunTempo(sps) {
    if (!this.tempoPending && sps !== this.tempo) this.showRunTempo(sps);
  }

  get live() {
    return this.runId !== null && LIVE_STATES.has(this.state);
  }

  /** Steps per second for the server; null = as fast as it goes. */
  get tempo() {
    if (this.el['tempo-max'].getAttribute('aria-pressed') === 'true') return null;
    return this.exact ?? sliderToTempo(Number(this.el.tempo.value));
  }

  bind() {
    this.el.play.addEventListener('click', () => this.play());
    this.el.step.addEventListener('click', () => this.step());
    this.el.reset.addEventListener('click', () => this.reset());
    this.el.tempo.addEventListener('input', () => {
      this.exact = null;
      this.tempoChanged();
    });
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
    // No stop on unload: a presenter reloading mid-talk must find the run still playing.
    this.audio.setVolume(Number(this.el.volume.value) / 100);
  }

  /** ↑ / ↓: one notch faster or slower on the log-scale slider. */
  nudgeTempo(direction) {
    if (this.el['tempo-max'].disabled) return;
    if (this.tempo === null) {
      if (direction > 0) return; // already as fast as it goes; ↓ comes back to the slider's top
      this.el['tempo-max'].setAttribute('aria-pressed', 'false');
      this.el.tempo.value = String(SLIDER_STEPS);
    } else {
      const next = Number(this.el.tempo.value) + direction * TEMPO_KEY_STEP;
      this.el.tempo.value = String(Math.max(0, Math.min(SLIDER_STEPS, next)));
    }
    this.exact = null;
    this.tempoChanged();
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
    this.el.tempo.disabled = sps === null || this.el['tempo-max'].disabled;
  }

  tempoChanged() {
    this.showTempo();
    updateHash({ tempo: this.tempo ?? 'max' });
    clearTimeout(this.tempoTimer);
    if (this.replay && this.replay.active) {
      this.tempoTimer = setTimeout(() => this.replay.tempoChanged(), TEMPO_DEBOUNCE);
    } else if (this.live) {
      this.tempoPending = true;
      this.tempoTimer = setTimeout(async () => {
        await this.control('tempo', { steps_per_second: this.tempo });
        this.tempoPending = false;
      }, TEMPO_DEBOUNCE);
    }
  }

  /** Play starts a fresh run from the form, or pauses / resumes the live one. */
  async play() {
    this.audio.unlock(); // first, while we are still inside the user's gesture
    if (this.el.play.disabled) return;
    if (this.replay && this.replay.active) return this.replay.toggle();
    if (this.busy) {
      // acted on once the press (or the step) in flight is answered, never lost
      if (this.stepping) this.playAfterStep = true;
      else this.pressedWhileBusy = true;
      return;
    }
    this.busy = true;
    try {
      if (!this.live) {
        if (await this.start()) await this.control('resume');
      } else await this.toggle();
      while (this.pressedWhileBusy && this.live) {
        this.pressedWhileBusy = false;
        await this.toggle();
      }
    } finally {
      this.busy = false;
      this.pressedWhileBusy = false;
    }
  }

  /** Pause a running run, resume a paused one. The badge may lag the server by a message; a 409 that
   * says so ("cannot pause: the run is paused") is answered with the other action, once. */
  async toggle() {
    const first = this.state === 'paused' ? 'resume' : 'pause';
    try {
      this.answered((await api.control(this.runId, first)).state);
    } catch (e) {
      const other = first === 'pause' ? 'resume' : 'pause';
      if (e.status !== 409 || !String(e.message).endsWith(other === 'pause' ? 'running' : 'paused')) {
        this.fail(e);
        return;
      }
      await this.control(other);
    }
  }

  /** One step: creates a paused run if there is none, pauses a running one. Presses while stepping queue up. */
  async step() {
    this.audio.unlock();
    if (this.el.step.disabled || (this.replay && this.replay.active)) return;
    if (this.busy) {
      if (this.stepping) this.queuedSteps = Math.min(this.queuedSteps + 1, MAX_QUEUED_STEPS);
      return;
    }
    this.busy = this.stepping = true;
    this.queuedSteps = 0;
    try {
      let ok = await this.stepOnce();
      while (ok && this.queuedSteps > 0) {
        this.queuedSteps -= 1;
        ok = await this.stepOnce();
      }
    } finally {
      this.busy = this.stepping = false;
    }
    if (this.playAfterStep) {
      this.playAfterStep = false;
      await this.play();
    }
  }

  async stepOnce() {
    if (!this.live && !(await this.start())) return false;
    if (this.state === 'running' && !(await this.control('pause'))) return false;
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await api.control(this.runId, 'step');
        this.answered(answer.state);
        return true;
      } catch (e) {
        if (e.status !== 409 || attempt >= STEP_RETRIES || !this.live) {
          this.fail(e);
          return false;
        }
        await sleep(STEP_RETRY_DELAY);
      }
    }
  }

  /** Stop the live run (it stays in history); the next play starts afresh from the form. */
  async reset() {
    if (this.el.reset.disabled) return;
    const id = this.runId;
    const wasLive = this.live && this.enabled !== false; // a viewer only stops watching
    this.detach();
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
    if (this.form.problems().length) {
      document.querySelector('[aria-invalid="true"]')?.focus(); // the message is already beside it
      return false;
    }
    const config = { ...this.form.value(), steps_per_second: this.tempo, start_paused: true };
    this.setState('starting');
    try {
      const run = await api.createRun(config);
      this.runId = run.id;
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
      this.answered(answer.state);
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

  /** Let go of the run on stage without stopping it. */
  detach() {
    this.runId = null;
    this.playAfterStep = false;
    this.setState('idle');
    this.clearErrors();
  }

  /** Take over a run the page did not start (late join, ?run=…). */
  adopt(runId, state) {
    this.runId = runId;
    this.setState(state);
  }

  /** A control's HTTP answer: the badge follows it only when no stream is open to say it in order. */
  answered(state) {
    if (!this.streaming) this.setState(state);
  }

  /** The run's state as the stream (or, without one, an answer) reports it. */
  setState(state) {
    if (!state) return;
    this.state = state;
    const playing = state === 'running' || state === 'starting' || state === 'replaying';
    this.el.play.classList.toggle('playing', playing);
    this.el.play.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    this.showStatus();
  }

  showStatus() {
    this.el.status.dataset.state = this.offline ? 'offline' : this.state;
    const label = PAGE_LABELS[this.state] || STATE_LABELS[this.state] || this.state;
    this.el.status.textContent = this.offline ? OFFLINE_LABEL : label;
  }

  /** The link to the server went down or came back: the badge tells the truth, a stale error goes. */
  linkChanged(up) {
    const wasOffline = this.offline;
    this.offline = !up;
    if (up && this.el['error-run'].textContent === UNREACHABLE) this.showError('');
    if (wasOffline !== this.offline) this.showStatus();
  }

  /** Counters change the DOM only when their value does; true if it did. */
  setCounters(step, epoch) {
    let changed = false;
    for (const [key, value] of [
      ['step', step],
      ['epoch', epoch],
    ]) {
      if (this.shown[key] === value) continue;
      this.shown[key] = value;
      const el = this.el[`${key}-count`];
      el.textContent = value === null || value === undefined ? '–' : formatCount(value);
      el.dataset.value = String(value ?? '');
      changed = true;
    }
    return changed;
  }

  /** Viewers cannot control the run; during their own replay, play, reset and tempo drive the replay. */
  setEnabled(enabled, replaying = false) {
    this.enabled = enabled;
    const own = enabled || replaying;
    this.el.play.disabled = !own;
    this.el.reset.disabled = !own;
    this.el.step.disabled = !enabled || replaying;
    this.el['tempo-max'].disabled = !own;
    this.showTempo();
  }
}
