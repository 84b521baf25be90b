// Decision boundary: the eval grid as an orange ↔ blue field, with the data points on top.
import { divergingMap, drawReadout, fitCanvas, font, formatNumber, rgba, textScale, themeColor } from './canvas.js';
import { gridCells } from './grid.js';

const POINT_RADIUS = 3.4; // css px
const DEFAULT_EXTENT = { x: [-6, 6], y: [-6, 6] };

/** The colour key under the map: what orange and blue mean, or the value scale for regression. */
class HeatLegend {
  constructor(root) {
    this.root = root;
    this.el =
      root && Object.fromEntries(['heat-lo', 'heat-hi', 'heat-what'].map((id) => [id, document.getElementById(id)]));
  }

  show(regression, range) {
    if (!this.root) return;
    const [lo, hi] = range || [-1, 1];
    this.root.dataset.task = regression ? 'regression' : 'classification';
    this.el['heat-lo'].textContent = regression ? formatNumber(lo) : 'orange: class 0';
    this.el['heat-hi'].textContent = regression ? formatNumber(hi) : 'blue: class 1';
    this.el['heat-what'].textContent = regression
      ? `predicted value, ${formatNumber(lo)} (orange) to ${formatNumber(hi)} (blue); dark = ${formatNumber((lo + hi) / 2)}`
      : 'the class predicted there; dark = unsure';
  }
}

export class DecisionHeatmap {
  /** legend: the element the colour key is written into (optional). */
  constructor(canvas, legend = null) {
    this.canvas = canvas;
    this.legend = new HeatLegend(legend);
    this.range = null; // regression: the target range the colours span
    this.field = document.createElement('canvas'); // the grid at its own resolution
    this.dots = document.createElement('canvas'); // the points, redrawn only when they change
    this.dotsKey = null;
    this.hasField = false;
    this.extent = DEFAULT_EXTENT;
    this.train = [];
    this.test = [];
    this.showTest = false;
    this.regression = false;
    this.colors = divergingMap(themeColor('--neg'), themeColor('--neutral'), themeColor('--pos'));
    this.dirty = true;
    this.bytes = null; // the latest grid, for the hover readout
    this.painted = 0; // grids painted (tests wait on it)
    this.ticket = 0; // the newest grid asked for: an older one that inflates later is not painted
    this.hover = null; // {x, y} css px while the pointer is over the map
    this.readout = null; // what the hover readout says (tests and the console)
    canvas.addEventListener('pointermove', (e) => {
      this.hover = { x: e.offsetX, y: e.offsetY };
      this.dirty = true;
    });
    canvas.addEventListener('pointerleave', () => {
      this.hover = null;
      this.readout = null;
      this.dirty = true;
    });
    new ResizeObserver(() => (this.dirty = true)).observe(canvas);
  }

  /** Theme or type size changed (presenter mode): redraw, points too. */
  restyle() {
    this.dotsKey = null;
    this.dirty = true;
  }

  setTask(task) {
    this.regression = task === 'regression';
    this.legend.show(this.regression, this.range);
    this.dirty = true;
  }

  /** Regression: the target range the colours span (null: the built-in sets' -1 … 1). */
  setRange(range) {
    this.range = range || null;
    this.legend.show(this.regression, this.range);
  }

  /** Eval grid: class-1 probability (or regression output in its target range) as 0…255, painted once inflated. */
  setGrid(grid) {
    if (!grid || !grid.zlib) return;
    const ticket = ++this.ticket;
    gridCells(grid).then(
      (bytes) => ticket === this.ticket && this.paint(grid, bytes),
      () => {}, // a malformed grid is dropped, as a malformed message is
    );
  }

  paint(grid, bytes) {
    const size = grid.size;
    this.bytes = { bytes, size };
    this.field.width = size;
    this.field.height = size;
    const ctx = this.field.getContext('2d');
    const image = ctx.createImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      const c = bytes[i] * 3;
      image.data[i * 4] = this.colors[c];
      image.data[i * 4 + 1] = this.colors[c + 1];
      image.data[i * 4 + 2] = this.colors[c + 2];
      image.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    this.extent = { x: grid.x, y: grid.y };
    this.hasField = true;
    this.painted += 1;
    this.dirty = true;
  }

  /** Points as [[x1, x2], …] with targets: class 0/1, or a regression value in [-1, 1]. */
  setPoints(train, test) {
    const pack = (set) => (set ? set.points.map((p, i) => [p[0], p[1], set.y[i]]) : []);
    this.train = pack(train);
    this.test = pack(test);
    this.dirty = true;
  }

  setShowTest(show) {
    this.showTest = show;
    this.dirty = true;
  }

  clearField() {
    this.ticket += 1; // a grid still inflating belongs to what was cleared
    this.hasField = false;
    this.bytes = null;
    this.extent = DEFAULT_EXTENT;
    this.dirty = true;
  }

  pointColor(y) {
    const t = this.regression ? (y + 1) / 2 : y;
    const i = Math.round(Math.min(1, Math.max(0, t)) * 255) * 3;
    return [this.colors[i], this.colors[i + 1], this.colors[i + 2]];
  }

  draw() {
    if (!this.dirty || !this.canvas.clientWidth || !this.canvas.clientHeight) return; // hidden: later
    this.dirty = false;
    const { ctx, width, height } = fitCanvas(this.canvas);
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = themeColor('--neutral');
    ctx.fillRect(0, 0, width, height);
    if (this.hasField) {
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(this.field, 0, 0, width, height);
    }
    const { x, y } = this.extent;
    const sx = (v) => ((v - x[0]) / (x[1] - x[0])) * width;
    const sy = (v) => (1 - (v - y[0]) / (y[1] - y[0])) * height;
    this.drawAxes(ctx, sx, sy, width, height);
    this.drawDots(sx, sy, width, height);
    ctx.drawImage(this.dots, 0, 0, width, height);
    this.drawHover(ctx, width, height);
  }

  /** Under the pointer: where it is, and what the network predicts there (class-1 probability or value). */
  drawHover(ctx, width, height) {
    this.readout = null;
    if (!this.hover) return;
    const { x, y } = this.extent;
    const u = this.hover.x / width;
    const v = this.hover.y / height;
    const lines = [`x₁ ${formatNumber(x[0] + u * (x[1] - x[0]))}, x₂ ${formatNumber(y[1] - v * (y[1] - y[0]))}`];
    if (this.hasField && this.bytes) {
      const { bytes, size } = this.bytes;
      const col = Math.min(size - 1, Math.max(0, Math.floor(u * size)));
      const row = Math.min(size - 1, Math.max(0, Math.floor(v * size)));
      const t = bytes[row * size + col] / 255;
      const [lo, hi] = this.range || [-1, 1];
      lines.push(
        this.regression ? `predicted ${formatNumber(lo + t * (hi - lo))}` : `blue (class 1): ${Math.round(t * 100)}%`,
      );
    }
    this.readout = lines;
    drawReadout(ctx, lines, this.hover, width, height, { fill: 'rgba(8, 12, 20, 0.88)', text: '#e8edf5' });
  }

  /** Points change far less often than the field: keep them on their own canvas. */
  drawDots(sx, sy, width, height) {
    const dpr = window.devicePixelRatio || 1;
    const key = [
      this.train,
      this.test,
      this.showTest,
      this.regression,
      width,
      height,
      dpr,
      ...this.extent.x,
      ...this.extent.y,
    ];
    if (this.dotsKey && key.every((v, i) => v === this.dotsKey[i])) return;
    this.dotsKey = key;
    this.dots.width = Math.round(width * dpr);
    this.dots.height = Math.round(height * dpr);
    const ctx = this.dots.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (const [px, py, t] of this.train) this.drawPoint(ctx, sx(px), sy(py), t, false);
    if (this.showTest) for (const [px, py, t] of this.test) this.drawPoint(ctx, sx(px), sy(py), t, true);
  }

  drawPoint(ctx, cx, cy, target, isTest) {
    const color = this.pointColor(target);
    ctx.beginPath();
    ctx.arc(cx, cy, POINT_RADIUS * Math.sqrt(textScale()), 0, Math.PI * 2);
    if (isTest) {
      ctx.fillStyle = rgba(color, 0.35);
      ctx.fill();
      ctx.lineWidth = 1.6;
      ctx.strokeStyle = '#0a0e16';
    } else {
      ctx.fillStyle = rgba(color);
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    }
    ctx.stroke();
  }

  drawAxes(ctx, sx, sy, width, height) {
    ctx.strokeStyle = 'rgba(255,255,255,0.10)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(sx(0), 0);
    ctx.lineTo(sx(0), height);
    ctx.moveTo(0, sy(0));
    ctx.lineTo(width, sy(0));
    ctx.stroke();
    ctx.fillStyle = 'rgba(255,255,255,0.55)';
    ctx.font = font(11);
    ctx.textBaseline = 'bottom';
    ctx.textAlign = 'left';
    ctx.fillText(formatNumber(this.extent.x[0]), 4, height - 3);
    ctx.textAlign = 'right';
    ctx.fillText(formatNumber(this.extent.x[1]), width - 4, height - 3);
    ctx.textBaseline = 'top';
    ctx.fillText(formatNumber(this.extent.y[1]), width - 4, 3);
  }
}
