// Replaying a stored run: play / pause, scrub to a step, change tempo, stop. Each is a (re)connection with `start=`.
import { api } from './api.js';
import { frameSteps } from './socket.js';

const SCRUB_DEBOUNCE = 180; // ms: keyboard scrubbing settles before the replay reconnects
const MAX_TEMPO = 1000; // steps/s when the tempo is "max" (a replay needs a number)
const PAST_POINTS = 1000; // steps fetched to draw what came before a scrubbed replay's start

const $ = (id) => document.getElementById(id);

export class Replayer {
  /**
   * play(run, {start, stepsPerSecond, past}) opens a replay (`past`: the steps before `start`, for the
   * charts); halt() closes it, keeping the picture;
   * tempo() is the transport's steps/s (null = max); onState(state) shows 'replaying' / 'replay-paused';
   * onStop() ends the replay.
   */
  constructor({ play, halt, tempo, onState, onStop }) {
    Object.assign(this, { playRun: play, halt, tempo, onState });
    this.el = Object.fromEntries(
      ['replay-bar', 'replay-title', 'scrub', 'scrub-value', 'replay-toggle', 'replay-stop'].map((id) => [id, $(id)]),
    );
    this.active = false;
    this.run = null;
    this.position = 0; // the last step seen
    this.playing = false;
    this.done = false;
    this.dragging = false;
    this.seeks = 0; // only the newest seek opens a stream
    this.el.scrub.addEventListener('input', () => {
      this.dragging = true;
      this.showPosition(Number(this.el.scrub.value));
      clearTimeout(this.scrubTimer);
    });
    this.el.scrub.addEventListener('change', () => {
      clearTimeout(this.scrubTimer);
      this.scrubTimer = setTimeout(() => {
        this.dragging = false;
        this.seek(Number(this.el.scrub.value));
      }, SCRUB_DEBOUNCE);
    });
    this.el['replay-toggle'].addEventListener('click', () => this.toggle());
    this.el['replay-stop'].addEventListener('click', () => onStop());
  }

  /** Start replaying `run` (an entry of GET /api/runs) from its first step. */
  begin(run) {
    this.run = run;
    this.active = true;
    this.el['replay-bar'].hidden = false;
    this.el.scrub.max = String(run.step);
    this.el['replay-title'].textContent = `Replay · ${run.config.dataset} · ${(run.layers || []).join('–')}`;
    this.seek(0);
  }

  /** Jump to `step` and play from there. */
  async seek(step) {
    if (!this.active) return;
    const run = this.run;
    const start = Math.max(0, Math.min(step, run.step));
    const seek = ++this.seeks;
    this.position = start;
    this.playing = true;
    this.done = false;
    this.showPosition(start);
    this.render();
    const past = start > 0 ? await pastSteps(run, start) : null;
    if (seek !== this.seeks || this.run !== run || !this.playing) return; // something newer won
    this.playRun(run, { start, stepsPerSecond: this.tempo() ?? MAX_TEMPO, past });
  }

  toggle() {
    if (!this.active) return;
    if (this.playing) this.pause();
    else this.seek(this.done ? 0 : this.position + 1);
  }

  pause() {
    if (!this.playing) return;
    this.seeks += 1;
    this.playing = false;
    this.halt();
    this.render();
    this.onState('replay-paused');
  }

  tempoChanged() {
    if (this.playing) this.seek(this.position + 1);
  }

  /** Steps as they play: the slider follows unless the user holds it. */
  progress(step) {
    if (!this.active || step === null || step === undefined) return;
    this.position = step;
    if (!this.dragging) this.showPosition(step);
  }

  /** The replay reached its end. */
  finished() {
    this.playing = false;
    this.done = true;
    this.render();
  }

  /** Hide the bar: the replay is over or something else took the stage. */
  close() {
    this.seeks += 1;
    this.active = false;
    this.playing = false;
    this.run = null;
    clearTimeout(this.scrubTimer);
    this.el['replay-bar'].hidden = true;
  }

  showPosition(step) {
    const total = this.run ? this.run.step : 0;
    if (!this.dragging) this.el.scrub.value = String(step);
    this.el['scrub-value'].textContent = `${step.toLocaleString('en-US')} / ${total.toLocaleString('en-US')}`;
    this.el.scrub.setAttribute('aria-valuetext', `step ${step} of ${total}`);
  }

  render() {
    const label = this.playing ? 'Pause replay' : this.done ? 'Replay again' : 'Resume replay';
    this.el['replay-toggle'].setAttribute('aria-label', label);
    this.el['replay-toggle'].classList.toggle('playing', this.playing);
  }
}

/** The run's steps before `start`, thinned to about PAST_POINTS over the whole run; null if unreachable. */
async function pastSteps(run, start) {
  try {
    const metrics = await api.metrics(run.id, Math.max(1, Math.ceil(run.step / PAST_POINTS)));
    return frameSteps(metrics).filter((s) => s.step < start);
  } catch {
    return null; // the charts start at the scrubbed step instead
  }
}
