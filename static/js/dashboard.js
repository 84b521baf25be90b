// The metric charts: loss, accuracy, entropy and per-layer gradient norms, fed from hello, frames and evals.
import { themeColor } from './canvas.js';
import { LineChart } from './charts.js';

const $ = (id) => document.getElementById(id);

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

  /** One gradient series per weight layer, coloured from the input side (L1) to the output. */
  setLayers(n) {
    this.grad.setSeries(
      Array.from({ length: n }, (_, i) => [i, i === n - 1 ? 'out' : `L${i + 1}`, themeColor(`--layer-${(i % 9) + 1}`), { width: 1.4 }]),
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
    this.accuracy.setEmptyText(regression ? 'no accuracy for regression' : 'waiting for steps…');
    this.entropy.setEmptyText(regression ? 'no class entropy for regression' : 'waiting for steps…');
  }

  setOverfit(on) {
    const test = this.loss.series.get('test');
    test.width = on ? 3.5 : 2.2;
    this.loss.dirty = true;
  }

  reset(layers) {
    this.charts.forEach((c) => c.reset());
    this.setLayers(layers);
    this.setOverfit(false);
  }

  /** Per-step points: [{step, loss, accuracy, entropy, grads}]. */
  addSteps(steps) {
    for (const s of steps) {
      this.loss.add('batch', s.step, s.loss);
      this.accuracy.add('batch', s.step, s.accuracy);
      this.entropy.add('batch', s.step, s.entropy);
      if (s.grads) s.grads.forEach((g, i) => this.grad.add(i, s.step, g));
    }
  }

  addEval(ev) {
    this.loss.add('train', ev.step, ev.train_loss);
    this.loss.add('test', ev.step, ev.test_loss);
    this.accuracy.add('train', ev.step, ev.train_accuracy);
    this.accuracy.add('test', ev.step, ev.test_accuracy);
    this.entropy.add('test', ev.step, ev.test_entropy);
  }

  draw() {
    this.charts.forEach((c) => c.draw());
  }
}
