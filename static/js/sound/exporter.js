// "Take the sound home": a run (or a range of it) as WAV or MIDI through the live voices, or the stage as a clip.
import { api } from '../api.js';
import { frameSteps } from '../socket.js';
import { notesToMidi } from './midi.js';
import { MAX_EXPORT_STEPS, collectNotes, exportProblem, renderWav } from './render.js';
import { runLabel } from './runs.js';
import { $ } from '../dom.js';
import { formatCount } from '../format.js';

/** Offer a blob as a file download. */
export function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

export class SoundExporter {
  /** settings(): the viewer's sound settings; onStage(): the run id on stage; tempo(): the transport's steps/s. */
  constructor({ settings, onStage, tempo }) {
    Object.assign(this, { settings, onStage, tempo });
    this.busy = false;
    $('export-wav').addEventListener('click', () => this.run('wav'));
    $('export-midi').addEventListener('click', () => this.run('midi'));
  }

  /** The dialog opened: list the stored runs, the one on stage first. */
  async refresh(runs) {
    const select = $('export-run');
    const current = this.onStage() || select.value;
    select.replaceChildren(...runs.map((r) => new Option(runLabel(r), r.id)));
    if (runs.some((r) => r.id === current)) select.value = current;
    const tempo = this.tempo();
    if (tempo) $('export-tempo').value = String(tempo);
  }

  status(text, progress = null) {
    $('export-status').textContent = text;
    const bar = $('export-progress');
    bar.hidden = progress === null;
    if (progress !== null) bar.value = progress;
  }

  /** The chosen range's steps and cues, or a problem to show. */
  async load() {
    const id = $('export-run').value;
    if (!id) return { problem: 'No stored run to export yet: train one first.' };
    const tempo = Number($('export-tempo').value);
    const from = $('export-from').value ? Math.max(1, Math.floor(Number($('export-from').value))) : 1;
    const to = $('export-to').value ? Math.floor(Number($('export-to').value)) : null;
    if (to !== null && to < from) return { problem: '“To step” must not be before “From step”.' };
    const record = await api.run(id);
    const last = Math.min(record.step, to ?? Infinity);
    if (last - from + 1 > MAX_EXPORT_STEPS)
      return {
        problem: `That range has ${formatCount(last - from + 1)} steps; exports take at most ${formatCount(MAX_EXPORT_STEPS)}. Choose a range.`,
      };
    const problem = exportProblem(Math.max(0, last - from + 1), tempo);
    if (problem) return { problem };
    const data = await api.steps(id, from, to === null ? null : to + 1);
    const steps = frameSteps(data);
    const tooLong = exportProblem(steps.length, tempo);
    if (tooLong) return { problem: tooLong };
    const range =
      to === null && from === 1 ? '' : `-steps-${from}-${steps.length ? steps[steps.length - 1].step : from}`;
    return { run: { layers: data.layers, steps, events: data.events || [] }, tempo, name: `backbeat-${id}${range}` };
  }

  async run(kind) {
    if (this.busy) return;
    this.busy = true;
    try {
      this.status('Fetching the run…', kind === 'wav' ? 0 : null);
      const job = await this.load();
      if (job.problem) {
        this.status(job.problem);
        return;
      }
      const settings = this.settings();
      if (kind === 'midi') {
        const notes = collectNotes(job.run, { tempo: job.tempo, settings });
        download(new Blob([notesToMidi(notes)], { type: 'audio/midi' }), `${job.name}.mid`);
        this.status(`MIDI ready: ${formatCount(job.run.steps.length)} steps, ${formatCount(notes.length)} notes.`);
      } else {
        const wav = await renderWav(job.run, {
          tempo: job.tempo,
          settings,
          onProgress: (p) => this.status(`Rendering audio… ${Math.round(p * 100)} %`, p),
        });
        download(wav.blob, `${job.name}.wav`);
        this.status(`Audio ready: ${wav.seconds.toFixed(1)} s, ${formatCount(job.run.steps.length)} steps.`, 1);
      }
    } catch (err) {
      this.status(`Export failed: ${err.message || err}`);
    } finally {
      this.busy = false;
    }
  }
}
