// The Sound dialog: the editor, A/B compare, and exports, wired to the page's engine and stage.
import { api } from '../api.js';
import { ClipRecorder } from './clip.js';
import { Compare } from './compare.js';
import { SoundEditor } from './editor.js';
import { SoundExporter } from './exporter.js';
import { $ } from '../dom.js';

export class SoundPanel {
  /** audio: the AudioEngine; stage: the Stage; tempo(): steps/s or null; onStage(): run id; leave()/back(): the stage gives way / returns. */
  constructor({ audio, stage, tempo, onStage, leave, back }) {
    this.audio = audio;
    this.compare = new Compare({
      host: audio,
      dashboard: stage.dashboard,
      tempo,
      onBegin: leave,
      onEnd: back,
      onStatus: (text) => ($('compare-status').textContent = text),
    });
    this.editor = new SoundEditor((settings) => {
      audio.setSettings(settings);
      this.compare.setSettings(settings);
    });
    this.exporter = new SoundExporter({ settings: () => this.editor.settings, onStage, tempo });
    this.clip = new ClipRecorder($('record-clip'), document.querySelector('main.stage'), audio, (t) =>
      this.exporter.status(t),
    );
    $('open-sound').addEventListener('click', () => this.open());
    $('compare-start').addEventListener('click', () => this.startCompare());
    $('compare-stop').addEventListener('click', () => this.stopCompare());
    for (const label of ['A', 'B'])
      $(`compare-solo-${label.toLowerCase()}`).addEventListener('click', (e) => this.solo(label, e.target));
    window.addEventListener('hashchange', () => this.editor.load());
  }

  async open() {
    const dialog = $('sound');
    if (!dialog.open) dialog.showModal();
    try {
      const runs = await api.runs();
      this.compare.fillMenus(runs);
      await this.exporter.refresh(runs);
    } catch (err) {
      $('compare-status').textContent = `Could not list the runs: ${err.message}`;
    }
  }

  async startCompare() {
    try {
      $('compare-status').textContent = 'Loading both runs…';
      await this.compare.start($('compare-a').value, $('compare-b').value);
      this.setCompareButtons(true);
    } catch (err) {
      $('compare-status').textContent = err.message;
    }
  }

  /** `back`: the stage returns to its own run; false when a run being started or joined takes it. */
  stopCompare({ back = true } = {}) {
    if (!back && !this.compare.active) return;
    this.compare.stop({ back });
    this.setCompareButtons(false);
    $('compare-status').textContent = '';
  }

  /** Solo A or B; pressing the pressed one again hears both. */
  solo(label, button) {
    const on = button.getAttribute('aria-pressed') !== 'true';
    for (const l of ['a', 'b']) $(`compare-solo-${l}`).setAttribute('aria-pressed', 'false');
    button.setAttribute('aria-pressed', String(on));
    this.compare.solo(on ? label : null);
  }

  setCompareButtons(active) {
    for (const id of ['compare-solo-a', 'compare-solo-b', 'compare-stop']) $(id).disabled = !active;
    if (!active) for (const l of ['a', 'b']) $(`compare-solo-${l}`).setAttribute('aria-pressed', 'false');
  }
}
