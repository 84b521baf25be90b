// The stage: what a run looks and sounds like. Hello, frames, evals and events go to the sound and the pictures.
import { api } from './api.js';
import { Dashboard } from './dashboard.js';
import { ConfusionMatrix, DigitGallery } from './digits.js';
import { FEATURE_LABELS } from './form.js';
import { DecisionHeatmap } from './heatmap.js';
import { NetworkDiagram } from './network.js';
import { historySteps } from './socket.js';
import { previewPoints } from './thumbs.js';
import { $ } from './dom.js';
import { formatCount, formatLoss } from './format.js';

const BANNER_TIME = 6000; // ms a converged / overfitting banner stays up (diverged and interrupted stay)
const PREVIEW_MAX_POINTS = 600;
const STAYING_BANNERS = new Set(['diverged', 'interrupted', 'plateau']);
const ENDED = new Set(['finished', 'converged', 'stopped', 'diverged', 'failed', 'interrupted']);
// events drawn as a marker on the charts, with their label
const MARKED = {
  change: (e) =>
    Object.entries(e.changes || {})
      .map(([k, v]) => `${SHORT[k] || k} ${v}`)
      .join(' '),
  plateau: () => 'stuck',
};
const SHORT = {
  learning_rate: 'lr',
  regularization_rate: 'reg',
  batch_size: 'batch',
  optimizer: '',
  max_steps: 'steps',
};

function plateauText(msg) {
  return `Plateau at step ${formatCount(msg.step)}: ${msg.message || 'stuck: more capacity or a higher learning rate may help'}`;
}

export class Stage {
  /** audio: the AudioEngine; onLayout: the diagram moved its columns (the layer editor follows). */
  constructor(audio, onLayout) {
    this.audio = audio;
    this.dashboard = new Dashboard();
    this.heatmap = new DecisionHeatmap($('heatmap'), $('heat-legend'));
    this.gallery = new DigitGallery($('digits'));
    this.confusion = new ConfusionMatrix($('confusion'));
    this.network = new NetworkDiagram($('network'), onLayout);
    this.run = null;
    this.bannerTimer = null;
    this.drawing = null; // () => the draw pad's points while it is open, else null
  }

  /** A run's hello: its history (for a scrubbed replay, the run before its start) primes the charts and the sound. */
  hello(msg, interruptedText) {
    const r = msg.run;
    this.run = r;
    const layers = r.layers.length - 1;
    this.audio.resetRun(layers);
    this.audio.primeHistory(msg.history || {}, r.state === 'diverged');
    this.dashboard.reset(layers, r.layer_names || []);
    this.dashboard.addSteps(historySteps(msg.history || {}));
    (msg.evals || []).forEach((ev) => this.dashboard.addEval(ev));
    this.network.clearPulses();
    this.network.setArchitecture(r.layers, inputLabels(r.features), outputLabels(r.n_classes));
    this.showOutput(outputMode(r.config.dataset, r.config.table), r.task, r.config.table, r.n_classes);
    // nothing from beyond the hello's point (a replay scrubbed back) stays in the pictures
    this.heatmap.clearField();
    this.gallery.setPredictions(null);
    this.confusion.reset();
    setText($('train-loss'), '–');
    setText($('test-loss'), '–');
    if (msg.last_eval) this.applyEval(msg.last_eval, false);
    const kinds = new Set((msg.events || []).map((e) => e.type));
    for (const e of msg.events || []) if (MARKED[e.type]) this.dashboard.addMarker(e.step, MARKED[e.type](e));
    const plateaus = (msg.events || []).filter((e) => e.type === 'plateau' || e.type === 'plateau_end');
    const stuck =
      plateaus.length && plateaus[plateaus.length - 1].type === 'plateau' ? plateaus[plateaus.length - 1] : null;
    if (kinds.has('overfit') && msg.last_eval) this.audio.overfitStarted(msg.last_eval);
    this.setMood(
      kinds.has('alarm') ? 'diverged' : kinds.has('chime') ? 'converged' : kinds.has('overfit') ? 'overfit' : 'idle',
    );
    if (kinds.has('alarm')) this.banner('diverged', 'Diverged');
    else if (r.state === 'interrupted') this.banner('interrupted', interruptedText(r.step));
    else if (stuck && !ENDED.has(r.state)) this.banner('plateau', plateauText(stuck));
    else this.banner(null, '');
    this.loadData(r);
  }

  addSteps(steps) {
    this.audio.addSteps(steps);
    this.dashboard.addSteps(steps);
  }

  applyEval(ev, live) {
    if (ev.grid) this.heatmap.setGrid(ev.grid);
    if (ev.predictions) this.gallery.setPredictions(ev.predictions);
    if (ev.confusion) this.confusion.set(ev.confusion);
    setText($('train-loss'), formatLoss(ev.train_loss));
    setText($('test-loss'), formatLoss(ev.test_loss));
    if (!live) return;
    this.dashboard.addEval(ev);
    this.audio.evalArrived(ev);
    if (!this.audio.overfitting && document.body.dataset.mood === 'overfit') {
      this.setMood('idle');
      this.dashboard.setOverfit(false);
    }
  }

  chime(msg) {
    this.audio.addCue('chime', msg);
    this.setMood('converged');
    this.banner('converged', `Converged at step ${formatCount(msg.step)}`);
  }

  alarm(msg) {
    this.audio.addCue('alarm', msg);
    this.setMood('diverged');
    this.banner('diverged', `Diverged at step ${formatCount(msg.step)}${msg.reason ? ` — ${msg.reason}` : ''}`);
  }

  /** A knob turned: a short cue when its step sounds, and a marker on every chart. */
  change(msg) {
    this.audio.addCue('change', msg);
    this.dashboard.addMarker(msg.step, MARKED.change(msg));
  }

  /** Stuck: the drone holds under the beats and the advice stays up until learning resumes. */
  plateau(msg) {
    this.audio.addCue('plateau', msg);
    this.dashboard.addMarker(msg.step, MARKED.plateau(msg));
    this.banner('plateau', plateauText(msg));
  }

  plateauEnd(msg) {
    this.audio.addCue('plateau_end', msg);
    if ($('banner').dataset.kind === 'plateau') this.banner(null, '');
  }

  overfit(msg) {
    this.audio.overfitStarted(msg);
    this.dashboard.setOverfit(true);
    if (document.body.dataset.mood !== 'converged') this.setMood('overfit');
    this.banner('overfit', 'Overfitting: test loss rising while train loss falls');
  }

  /** Nothing on stage: the form's preview (architecture and data points), empty charts, silence. */
  clear(form) {
    this.run = null;
    const c = form.value();
    const arch = form.architecture();
    this.audio.resetRun(arch.sizes.length - 1);
    this.dashboard.reset(arch.sizes.length - 1);
    this.heatmap.clearField();
    this.gallery.reset();
    this.confusion.reset();
    this.network.clearPulses();
    this.network.setArchitecture(arch.sizes, inputLabels(arch.inputs), outputLabels(form.dataset().n_classes));
    this.network.setWeights(null);
    this.setMood('idle');
    this.banner(null, '');
    $('train-loss').textContent = '–';
    $('test-loss').textContent = '–';
    const d = form.dataset();
    const table = d.source === 'uploaded' ? { kind: d.kind, inputs: d.inputs } : null;
    const mode = outputMode(c.dataset, table);
    this.showOutput(mode, d.task, table, d.n_classes);
    const drawn = this.drawing && this.drawing();
    if (drawn) {
      this.heatmap.setTask(drawn.task);
      this.heatmap.setPoints(drawn, null);
    } else if (mode === 'map' && !table) {
      const points = previewPoints(c.dataset, {
        n: Math.min(c.n_samples, PREVIEW_MAX_POINTS),
        noise: c.noise,
        seed: c.seed,
      });
      this.heatmap.setPoints(points, null);
    } else if (mode === 'map') {
      this.heatmap.setPoints(null, null);
      if (d.kind === 'drawn') this.previewStored(d.name);
    }
  }

  /** A saved drawn set before a run: its points as drawn (CSV sets show theirs once a run has them). */
  async previewStored(name) {
    try {
      const set = await api.dataset(name);
      if (this.run || (this.drawing && this.drawing())) return;
      const t = set.data[0].length - 1;
      const rows = set.data.slice(1);
      const y = rows.map((r) => (set.task === 'regression' ? r[t] : set.classes.indexOf(String(r[t]))));
      this.heatmap.setPoints({ points: rows.map((r) => [r[0], r[1]]), y }, null);
    } catch {
      // no preview: the run's own data comes with its hello
    }
  }

  /** A big one-line message over the diagram, readable from the back of the room. */
  banner(kind, text) {
    const el = $('banner');
    clearTimeout(this.bannerTimer);
    el.hidden = !text;
    el.dataset.kind = kind || '';
    el.textContent = text || '';
    if (text && !STAYING_BANNERS.has(kind)) this.bannerTimer = setTimeout(() => (el.hidden = true), BANNER_TIME);
  }

  setMood(mood) {
    document.body.dataset.mood = mood;
    this.network.setMood(mood);
  }

  /** map: the decision heatmap; digits: images and confusion; table: confusion only (more than 2 inputs). */
  showOutput(mode, task, table, nClasses) {
    $('output-2d').hidden = mode !== 'map';
    $('heat-legend').hidden = mode !== 'map';
    $('output-digits').hidden = mode === 'map' || (mode === 'table' && task === 'regression');
    $('digits-box').hidden = mode !== 'digits';
    $('show-test').closest('label').hidden = mode !== 'map';
    const note = $('output-note');
    const standardised = table && table.kind === 'csv';
    if (mode === 'table') {
      const what =
        task === 'regression'
          ? 'the loss chart shows the fit'
          : `the confusion matrix shows the test rows (${nClasses} classes)`;
      note.textContent = `${table.inputs.length} inputs: no decision map to draw; ${what}. Inputs standardised.`;
    } else note.textContent = standardised ? 'Inputs standardised: the axes are in standard deviations.' : '';
    note.hidden = !note.textContent;
    this.heatmap.setRange(null);
    this.heatmap.setTask(task);
    this.dashboard.setTask(task);
  }

  async loadData(r) {
    try {
      const data = await api.data(r.id);
      if (this.run !== r) return;
      this.heatmap.setRange(data.target_range);
      if (data.train.points) this.heatmap.setPoints(data.train, data.test);
      else if (r.config.dataset === 'digits') this.gallery.setImages(data.test.x, data.test.y);
    } catch {
      // the picture keeps the preview points
    }
  }

  /** Presenter mode swapped the theme and type sizes: the canvases re-read them. */
  restyle() {
    this.network.restyle();
    this.dashboard.restyle();
    this.heatmap.restyle();
  }

  /** One animation frame: notes whose time has come become pulses; every canvas redraws if it must. */
  draw() {
    const now = this.audio.now();
    this.network.addNotes(this.audio.takeNotes(now));
    this.network.draw(now);
    this.heatmap.draw();
    this.gallery.draw();
    this.confusion.draw();
    this.dashboard.draw();
  }
}

/** Which picture a run's data gets: a decision map for two raw inputs, else digits or the confusion matrix. */
function outputMode(dataset, table) {
  if (dataset === 'digits') return 'digits';
  return table && table.inputs.length !== 2 ? 'table' : 'map';
}

/** Evals arrive up to 60 times a second: only a changed text costs a layout. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function inputLabels(features) {
  return features.length <= 12 ? features.map((f) => FEATURE_LABELS[f] || f) : [];
}

function outputLabels(nClasses) {
  return nClasses > 2 ? Array.from({ length: nClasses }, (_, i) => String(i)) : ['ŷ'];
}
