// Replaying a stored run: play / pause, scrub to a step, change tempo, stop. Each is a (re)connection with `start=`.
import { $ } from './dom.js';
import { formatCount } from './format.js';

const SCRUB_DEBOUNCE = 180; // ms: keyboard scrubbing settles before the replay reconnects
const MAX_TEMPO = 1000; // steps/s when the tempo is "max" (a replay needs a number)

export class Replayer {
  /**
   * play(run, {start, stepsPerSecond}) opens a replay (its hello carries the run before `start`);
   * halt() closes it, keeping the picture;
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
  seek(step) {
    if (!this.active) return;
    const run = this.run;
    const start = Math.max(0, Math.min(step, run.step));
    this.position = start;
    this.playing = true;
    this.done = false;
    this.showPosition(start);
    this.render();
    this.playRun(run, { start, stepsPerSecond: this.tempo() ?? MAX_TEMPO });
  }

  toggle() {
    if (!this.active) return;
    if (this.playing) this.pause();
    else this.seek(this.done ? 0 : this.position + 1);
  }

  pause() {
    if (!this.playing) return;
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
    this.active = false;
    this.playing = false;
    this.run = null;
    clearTimeout(this.scrubTimer);
    this.el['replay-bar'].hidden = true;
  }

  showPosition(step) {
    const total = this.run ? this.run.step : 0;
    if (!this.dragging) this.el.scrub.value = String(step);
    this.el['scrub-value'].textContent = `${formatCount(step)} / ${formatCount(total)}`;
    this.el.scrub.setAttribute('aria-valuetext', `step ${step} of ${total}`);
  }

  render() {
    const label = this.playing ? 'Pause replay' : this.done ? 'Replay again' : 'Resume replay';
    this.el['replay-toggle'].setAttribute('aria-label', label);
    this.el['replay-toggle'].classList.toggle('playing', this.playing);
  }
}
