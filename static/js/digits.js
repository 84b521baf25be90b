// Digits: sample test images badged with the predicted label (red when wrong), and the confusion matrix.
import { fitCanvas, hexToRgb, mix, rgba, themeColor } from './canvas.js';

const COLUMNS = 8; // images per row
const SAMPLES = 32; // the first 32 test images, as eval.predictions covers
const GAP = 4; // css px between images
const LABEL_SHARE = 0.34; // the predicted label's strip under each image, as a share of its height

// A canvas that repaints only when its data or size changed: `paint(ctx, width, height)`.
class DirtyCanvas {
  constructor(canvas) {
    this.canvas = canvas;
    this.dirty = true;
    new ResizeObserver(() => (this.dirty = true)).observe(canvas);
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const { ctx, width, height } = fitCanvas(this.canvas);
    ctx.clearRect(0, 0, width, height);
    this.paint(ctx, width, height);
  }
}

export class DigitGallery extends DirtyCanvas {
  constructor(canvas) {
    super(canvas);
    this.images = []; // [{pixels: 64 values in 0…1, label}]
    this.predictions = null;
  }

  setImages(x, y) {
    this.images = x.slice(0, SAMPLES).map((pixels, i) => ({ pixels, label: y[i] }));
    this.dirty = true;
  }

  setPredictions(predictions) {
    this.predictions = predictions;
    this.dirty = true;
  }

  reset() {
    this.images = [];
    this.predictions = null;
    this.dirty = true;
  }

  /** Each image with its predicted label in a strip below it (never over the digit); red when wrong. */
  paint(ctx, width, height) {
    const rows = Math.ceil(SAMPLES / COLUMNS);
    const strip = Math.max(10, Math.round(Math.min(width / COLUMNS, height / rows) * LABEL_SHARE));
    const cell = Math.floor(Math.min(width / COLUMNS, height / rows - strip));
    const img = cell - GAP;
    const rowH = img + strip + GAP;
    const left = (width - cell * COLUMNS) / 2;
    const ink = hexToRgb('#e8edf5');
    const paper = hexToRgb('#0c1220');
    const bad = themeColor('--bad');
    ctx.font = `700 ${Math.round(strip * 0.85)}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    for (let k = 0; k < SAMPLES; k++) {
      const x0 = left + (k % COLUMNS) * cell;
      const y0 = Math.floor(k / COLUMNS) * rowH;
      const image = this.images[k];
      const px = img / 8;
      ctx.fillStyle = rgba(paper);
      ctx.fillRect(x0, y0, img, img);
      if (!image) continue;
      image.pixels.forEach((v, i) => {
        if (v <= 0) return;
        ctx.fillStyle = rgba(mix(paper, ink, Math.min(1, v)));
        ctx.fillRect(x0 + (i % 8) * px, y0 + Math.floor(i / 8) * px, px + 0.5, px + 0.5);
      });
      const predicted = this.predictions ? this.predictions[k] : null;
      if (predicted === null || predicted === undefined) continue;
      const wrong = predicted !== image.label;
      ctx.fillStyle = wrong ? bad : themeColor('--pos');
      ctx.fillText(wrong ? `${predicted} ✗` : String(predicted), x0 + img / 2, y0 + img + strip / 2 + 1);
      if (wrong) {
        ctx.strokeStyle = bad;
        ctx.lineWidth = 2;
        ctx.strokeRect(x0 + 1, y0 + 1, img - 2, img - 2);
      }
    }
  }
}

export class ConfusionMatrix extends DirtyCanvas {
  constructor(canvas) {
    super(canvas);
    this.matrix = null; // rows = true class, columns = predicted
  }

  set(matrix) {
    this.matrix = matrix;
    this.dirty = true;
  }

  reset() {
    this.matrix = null;
    this.dirty = true;
  }

  /** Rows: the true digit; columns: the predicted one; every cell its count (the diagonal is right). */
  paint(ctx, width, height) {
    const n = this.matrix ? this.matrix.length : 10;
    const title = 14; // css px for an axis title
    const margin = title + 16; // the title and the class numbers
    const cell = (Math.min(width, height) - margin) / n;
    const side = cell * n;
    const pos = hexToRgb(themeColor('--pos'));
    const neg = hexToRgb(themeColor('--bad'));
    const base = hexToRgb(themeColor('--panel-2'));
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = themeColor('--muted');
    ctx.font = '600 11px system-ui, sans-serif';
    ctx.fillText('predicted', margin + side / 2, title / 2);
    ctx.save();
    ctx.translate(title / 2, margin + side / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText('true', 0, 0);
    ctx.restore();
    ctx.font = '11px system-ui, sans-serif';
    for (let i = 0; i < n; i++) {
      ctx.fillText(String(i), margin + (i + 0.5) * cell, title + 8);
      ctx.fillText(String(i), title + 8, margin + (i + 0.5) * cell);
    }
    ctx.font = `${Math.max(8, Math.min(12, Math.floor(cell * 0.45)))}px system-ui, sans-serif`;
    for (let r = 0; r < n; r++) {
      const row = this.matrix ? this.matrix[r] : null;
      const total = row ? row.reduce((a, b) => a + b, 0) || 1 : 1;
      for (let c = 0; c < n; c++) {
        const share = row ? row[c] / total : 0;
        const color = mix(base, r === c ? pos : neg, r === c ? share : Math.min(1, share * 3));
        ctx.fillStyle = rgba(color);
        ctx.fillRect(margin + c * cell + 1, margin + r * cell + 1, cell - 2, cell - 2);
        if (row && cell >= 12) {
          ctx.fillStyle = share > 0.5 ? '#06101d' : row[c] ? themeColor('--text') : themeColor('--faint');
          ctx.fillText(String(row[c]), margin + (c + 0.5) * cell, margin + (r + 0.5) * cell);
        }
      }
    }
  }
}
