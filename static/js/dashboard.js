// The metric charts: loss, accuracy, entropy and per-layer gradient norms, fed from hello, frames and evals.
import { themeColor } from './canvas.js';
import { LineChart } from './charts.js';
import { $ } from './dom.js';

const LOSS_NAMES = { classification: 'loss: cross-entropy', regression: 'loss: squared error' };
const percent = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * 100)}%`);

export class Dashboard {
  constructor() {
    this.loss = new LineChart($('chart-loss'), { log: true, keyElement: $('loss-key') });
    this.accuracy = new LineChart($('chart-accuracy'), { yRange: [0, 1], keyElement: $('accuracy-key') });
    this.entropy = new LineChart($('chart-entropy'), { yRange: [0, 1], keyElement: $('entropy-key') });
    this.grad = new LineChart($('chart-grad'), { log: true, keyElement: $('grad-key') });
    this.charts = [this.loss, this.accuracy, this.entropy, this.grad];
    const batch = themeColor('--series-3');
    const train = themeColor('--series-1');
    const test = themeColor('--series-2');
    this.loss.setSeries([
      ['batch', 'batch', batch, { width: 1 }],
      ['train', 'train', train, { width: 2.2, band: false }],
      ['test', 'test', test, { width: 2.2, band: false }],
    ]);
    this.accuracy.setSeries([
      ['batch', 'batch', batch, { width: 1 }],
      ['train', 'train', train, { width: 2.2, band: false }],
      ['test', 'test', test, { width: 2.2, band: false }],
    ]);
    this.entropy.setSeries([
      ['batch', 'batch', batch, { width: 1.2 }],
      ['test', 'test', test, { width: 2.2, band: false }],
    ]);
    this.setLayers(3);
  }

  /** One gradient series per weight layer, coloured from the input side (L1) to the output; `names` from an outside run's model. */
  setLayers(n, names = []) {
    const label = (i) => names[i] || (i === n - 1 ? 'out' : `L${i + 1}`);
    this.grad.setSeries(
      Array.from({ length: n }, (_, i) => [i, label(i), themeColor(`--layer-${(i % 9) + 1}`), { width: 1.4 }]),
    );
  }

  /** Theme or type size changed (presenter mode). */
  restyle() {
    this.charts.forEach((c) => c.restyle());
  }

  setLog(log) {
    this.loss.setLog(log);
  }

  /** Regression has no accuracy or class entropy: say so instead of waiting for it. */
  setTask(task) {
    const regression = task === 'regression';
    $('loss-name').textContent = LOSS_NAMES[task] || '';
    $('accuracy-now').textContent = '';
    this.accuracy.setEmptyText(regression ? 'no accuracy for regression' : 'waiting for steps…');
    this.entropy.setEmptyText(regression ? 'no class entropy for regression' : 'waiting for steps…');
  }

  setOverfit(on) {
    const test = this.loss.series.get('test');
    test.width = on ? 3.5 : 2.2;
    this.loss.dirty = true;
  }

  reset(layers, names = []) {
    this.charts.forEach((c) => c.reset());
    this.setLayers(layers, names);
    this.setOverfit(false);
    $('accuracy-now').textContent = '';
  }

  /** Per-step points: [{step, loss, accuracy, entropy, grads}]; a summary adds {count, lo, hi}. */
  addSteps(steps) {
    for (const s of steps) {
      const n = s.count || 1;
      const lo = s.lo || s;
      const hi = s.hi || s;
      this.loss.add('batch', s.step, s.loss, n, lo.loss, hi.loss);
      this.accuracy.add('batch', s.step, s.accuracy, n, lo.accuracy, hi.accuracy);
      this.entropy.add('batch', s.step, s.entropy, n, lo.entropy, hi.entropy);
      if (s.grads) s.grads.forEach((g, i) => this.grad.add(i, s.step, g, n, lo.grads[i], hi.grads[i]));
    }
  }

  addEval(ev) {
    this.loss.add('train', ev.step, ev.train_loss);
    this.loss.add('test', ev.step, ev.test_loss);
    this.accuracy.add('train', ev.step, ev.train_accuracy);
    this.accuracy.add('test', ev.step, ev.test_accuracy);
    this.entropy.add('test', ev.step, ev.test_entropy);
    // the latest evaluation as numbers, for a student reading the chart
    if (ev.train_accuracy !== null && ev.train_accuracy !== undefined) {
      $('accuracy-now').textContent = `train ${percent(ev.train_accuracy)} · test ${percent(ev.test_accuracy)}`;
    }
  }

  /** What the charts hold: the newest step on any (-1: none yet), and whether every line runs forward in steps. */
  extent() {
    let last = -1;
    let ordered = true;
    for (const chart of this.charts) {
      for (const s of chart.series.values()) {
        for (let i = 0; i < s.length; i++) {
          last = Math.max(last, s.x[i]);
          if (i && s.x[i] < s.x[i - 1]) ordered = false; // a line drawn back to an earlier step
        }
      }
    }
    return { last, ordered };
  }

  /** A moment on every chart: a knob turned, a plateau began. */
  addMarker(step, label) {
    this.charts.forEach((c) => c.addMarker(step, label));
  }

  draw() {
    this.charts.forEach((c) => c.draw());
  }
}
