// The stage: what a run looks and sounds like. Hello, frames, evals and events go to the sound and the pictures.
import { api } from './api.js';
import { Dashboard } from './dashboard.js';
import { ConfusionMatrix, DigitGallery } from './digits.js';
import { FEATURE_LABELS } from './form.js';
import { DecisionHeatmap } from './heatmap.js';
import { formatLoss } from './history.js';
import { NetworkDiagram } from './network.js';
import { historySteps } from './socket.js';
import { previewPoints } from './thumbs.js';

const BANNER_TIME = 6000; // ms a converged / overfitting banner stays up (diverged and interrupted stay)
const PREVIEW_MAX_POINTS = 600;
const STAYING_BANNERS = new Set(['diverged', 'interrupted']);

const $ = (id) => document.getElementById(id);

export class Stage {
  /** audio: the AudioEngine; onLayout: the diagram moved its columns (the layer editor follows). */
  constructor(audio, onLayout) {
    this.audio = audio;
    this.dashboard = new Dashboard();
    this.heatmap = new DecisionHeatmap($('heatmap'));
    this.gallery = new DigitGallery($('digits'));
    this.confusion = new ConfusionMatrix($('confusion'));
    this.network = new NetworkDiagram($('network'), onLayout);
    this.run = null;
    this.bannerTimer = null;
  }

  /** A run's hello: its history primes the charts and the sound; `past` are steps before a scrubbed replay. */
  hello(msg, past, interruptedText) {
    const r = msg.run;
    this.run = r;
    const layers = r.layers.length - 1;
    this.audio.resetRun(layers);
    this.audio.primeHistory(msg.history || {}, r.state === 'diverged');
    this.dashboard.reset(layers);
    if (past) {
      this.dashboard.addSteps(past);
      this.audio.primeHistory({ grad_norm: past.map((s) => s.grads), crescendo: past.map((s) => s.crescendo) }, false);
    }
    this.dashboard.addSteps(historySteps(msg.history || {}));
    (msg.evals || []).forEach((ev) => this.dashboard.addEval(ev));
    this.network.clearPulses();
    this.network.setArchitecture(r.layers, inputLabels(r.features), outputLabels(r.n_classes));
    this.showOutput(r.config.dataset === 'digits', r.task);
    if (msg.last_eval) this.applyEval(msg.last_eval, false);
    const kinds = new Set((msg.events || []).map((e) => e.type));
    if (kinds.has('overfit') && msg.last_eval) this.audio.overfitStarted(msg.last_eval);
    this.setMood(kinds.has('alarm') ? 'diverged' : kinds.has('chime') ? 'converged' : kinds.has('overfit') ? 'overfit' : 'idle');
    if (kinds.has('alarm')) this.banner('diverged', 'Diverged');
    else if (r.state === 'interrupted') this.banner('interrupted', interruptedText(r.step));
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
    this.banner('converged', `Converged at step ${msg.step.toLocaleString('en-US')}`);
  }

  alarm(msg) {
    this.audio.addCue('alarm', msg);
    this.setMood('diverged');
    this.banner('diverged', `Diverged at step ${msg.step.toLocaleString('en-US')}${msg.reason ? ` — ${msg.reason}` : ''}`);
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
    const digits = form.isDigits();
    this.showOutput(digits, form.dataset().task);
    if (!digits) {
      const points = previewPoints(c.dataset, { n: Math.min(c.n_samples, PREVIEW_MAX_POINTS), noise: c.noise, seed: c.seed });
      this.heatmap.setPoints(points, null);
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

  showOutput(digits, task) {
    $('output-2d').hidden = digits;
    $('output-digits').hidden = !digits;
    $('show-test').closest('label').hidden = digits;
    this.heatmap.setTask(task);
    this.dashboard.setTask(task);
  }

  async loadData(r) {
    try {
      const data = await api.data(r.id);
      if (this.run !== r) return;
      if (data.train.points) this.heatmap.setPoints(data.train, data.test);
      else this.gallery.setImages(data.test.x, data.test.y);
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
