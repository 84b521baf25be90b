// Line charts on canvas: bounded min/max-bucketed series, linear or log y, a hover readout.
import { fitCanvas, font, formatNumber, textScale, themeColor } from './canvas.js';
import { Series } from './series.js';

const PAD = { left: 46, right: 10, top: 8, bottom: 18 }; // css px
const X_TICK_SPACING = 70; // css px per x-axis label, at least
const MIN_REDRAW_INTERVAL = 33; // ms: charts redraw at most ~30 times a second, whatever the step rate
const KEY_MAX_ENTRIES = 4; // more series than this (a deep network's layers): one key swatch runs first to last

export class LineChart {
  /** options: {log: bool, yRange: [lo, hi] | null, keyElement: element listing the series} */
  constructor(canvas, { log = false, yRange = null, keyElement = null } = {}) {
    this.canvas = canvas;
    this.log = log;
    this.yRange = yRange;
    this.keyElement = keyElement;
    this.series = new Map();
    this.emptyText = 'waiting for steps…';
    this.hoverX = null;
    this.readout = null; // the crosshair's lines while hovered: step, then each series' value
    this.dirty = true;
    this.pad = PAD;
    canvas.addEventListener('pointermove', (e) => {
      this.hoverX = e.offsetX;
      this.dirty = true;
    });
    canvas.addEventListener('pointerleave', () => {
      this.hoverX = null;
      this.readout = null;
      this.dirty = true;
    });
    new ResizeObserver(() => (this.dirty = true)).observe(canvas);
  }

  setSeries(specs) {
    this.series = new Map(specs.map(([key, label, color, opts]) => [key, new Series(label, color, opts)]));
    this.renderKey();
    this.dirty = true;
  }

  /** The key in the caption: a swatch per series, or for many (deep nets) one swatch through every colour in order. */
  renderKey() {
    if (!this.keyElement) return;
    const series = [...this.series.values()];
    const entry = (color, label) => {
      const span = document.createElement('span');
      const swatch = document.createElement('i');
      swatch.style.background = color;
      span.append(swatch, label);
      return span;
    };
    if (series.length <= KEY_MAX_ENTRIES) {
      this.keyElement.replaceChildren(...series.map((s) => entry(s.color, s.label)));
      this.keyElement.removeAttribute('title');
      return;
    }
    const range = document.createElement('span');
    range.className = 'key-range';
    const swatch = document.createElement('i');
    swatch.style.background = `linear-gradient(90deg, ${series.map((s) => s.color).join(', ')})`;
    range.append(series[0].label, swatch, series[series.length - 1].label);
    this.keyElement.replaceChildren(range);
    this.keyElement.title = `${series.map((s) => s.label).join(', ')}: input side to output; hover the chart for each value`;
  }

  /** A point, or `n` steps as their mean and range (see Series.add). */
  add(key, x, y, n, lo, hi) {
    const s = this.series.get(key);
    if (!s) return;
    s.add(x, y, n, lo, hi);
    this.dirty = true;
  }

  setEmptyText(text) {
    this.emptyText = text;
    this.dirty = true;
  }

  /** Theme or type size changed: redraw. */
  restyle() {
    this.dirty = true;
  }

  setLog(log) {
    this.log = log;
    this.dirty = true;
  }

  reset() {
    this.series.forEach((s) => s.clear());
    this.markers = [];
    this.dirty = true;
  }

  /** A labelled vertical line at step `x` (a knob turned, a plateau began). */
  addMarker(x, label) {
    (this.markers ||= []).push({ x, label });
    this.dirty = true;
  }

  drawMarkers(ctx, d, sx, plotH) {
    ctx.save();
    ctx.strokeStyle = themeColor('--warn');
    ctx.fillStyle = ctx.strokeStyle;
    ctx.setLineDash([4, 3]);
    ctx.font = font(10);
    ctx.textAlign = 'left';
    for (const m of this.markers || []) {
      if (m.x < d.x0 || m.x > d.x1) continue;
      const x = Math.round(sx(m.x)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, this.pad.top);
      ctx.lineTo(x, this.pad.top + plotH);
      ctx.stroke();
      ctx.fillText(m.label, x + 3, this.pad.top + 10);
    }
    ctx.restore();
  }

  /** Domain of everything drawn; log charts only see positive values. */
  domain() {
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const s of this.series.values()) {
      for (let i = 0; i < s.length; i++) {
        x0 = Math.min(x0, s.x[i]);
        x1 = Math.max(x1, s.x[i]);
        const lo = this.log ? (s.lo[i] > 0 ? s.lo[i] : s.hi[i]) : s.lo[i];
        if (!this.log || lo > 0) y0 = Math.min(y0, lo);
        if (!this.log || s.hi[i] > 0) y1 = Math.max(y1, s.hi[i]);
      }
    }
    if (!Number.isFinite(x0)) return null;
    if (x1 === x0) x1 = x0 + 1;
    if (this.yRange) [y0, y1] = this.yRange;
    if (!Number.isFinite(y0)) return null;
    if (this.log) {
      y0 = Math.log10(y0);
      y1 = Math.log10(y1);
      if (y1 - y0 < 0.5) [y0, y1] = [(y0 + y1) / 2 - 0.25, (y0 + y1) / 2 + 0.25];
    } else if (!this.yRange) {
      const pad = (y1 - y0) * 0.08 || Math.abs(y0) * 0.1 || 0.5;
      [y0, y1] = [y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad, y1 + pad];
    }
    return { x0, x1, y0, y1 };
  }

  draw(now = performance.now()) {
    if (!this.dirty || now - (this.drawnAt || 0) < MIN_REDRAW_INTERVAL) return;
    this.dirty = false;
    this.drawnAt = now;
    const k = textScale();
    this.pad = { left: PAD.left * k, right: PAD.right, top: PAD.top, bottom: PAD.bottom * k };
    const { ctx, width, height } = fitCanvas(this.canvas);
    ctx.clearRect(0, 0, width, height);
    const d = this.domain();
    const plotW = width - this.pad.left - this.pad.right;
    const plotH = height - this.pad.top - this.pad.bottom;
    if (!d || plotW < 20 || plotH < 20) {
      ctx.fillStyle = themeColor('--faint');
      ctx.font = font(11);
      ctx.textAlign = 'center';
      ctx.fillText(this.emptyText, width / 2, height / 2);
      return;
    }
    const sx = (x) => this.pad.left + ((x - d.x0) / (d.x1 - d.x0)) * plotW;
    const fy = (y) => (this.log ? Math.log10(Math.max(y, 1e-300)) : y);
    const sy = (y) => this.pad.top + (1 - (fy(y) - d.y0) / (d.y1 - d.y0)) * plotH;
    this.drawAxes(ctx, d, sx, width, height, plotH);
    ctx.save();
    ctx.beginPath();
    ctx.rect(this.pad.left, this.pad.top, plotW, plotH);
    ctx.clip();
    for (const s of this.series.values()) this.drawSeries(ctx, s, sx, sy);
    this.drawMarkers(ctx, d, sx, plotH);
    ctx.restore();
    if (this.hoverX !== null && this.hoverX >= this.pad.left) this.drawHover(ctx, d, sx, sy, width);
  }

  drawAxes(ctx, d, sx, width, height, plotH) {
    ctx.font = font(11);
    ctx.fillStyle = themeColor('--faint');
    ctx.strokeStyle = themeColor('--line-soft');
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of yTicks(d.y0, d.y1, this.log)) {
      const y = this.pad.top + (1 - (t.v - d.y0) / (d.y1 - d.y0)) * plotH;
      ctx.beginPath();
      ctx.moveTo(this.pad.left, Math.round(y) + 0.5);
      ctx.lineTo(width - this.pad.right, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(t.label, this.pad.left - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    const xTicks = Math.max(2, Math.floor((width - this.pad.left - this.pad.right) / (X_TICK_SPACING * textScale())));
    for (const x of niceTicks(d.x0, d.x1, xTicks)) {
      const label = formatNumber(x);
      const half = ctx.measureText(label).width / 2;
      ctx.fillText(label, Math.min(sx(x), width - half - 1), height - 4);
    }
  }

  drawSeries(ctx, s, sx, sy) {
    if (!s.length) return;
    if (s.band && s.per > 1) {
      const band = bandColumns(s, sx);
      ctx.fillStyle = s.color;
      ctx.globalAlpha = 0.18;
      ctx.beginPath();
      let lowest = Infinity;
      if (this.log) for (const h of s.hi) if (h > 0 && h < lowest) lowest = h;
      const floor = (v) => (this.log && !(v > 0) ? lowest : v);
      for (let c = 0; c < band.x.length; c++) ctx.lineTo(sx(band.x[c]), sy(band.hi[c]));
      for (let c = band.x.length - 1; c >= 0; c--) ctx.lineTo(sx(band.x[c]), sy(floor(band.lo[c])));
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    let pen = false;
    const drawable = (y) => !this.log || y > 0; // log scale: a zero breaks the line instead of plunging to -∞
    for (const i of lineVertices(s, sx, drawable)) {
      const y = s.mean(i);
      if (!drawable(y)) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(sx(s.x[i]), sy(y));
      else ctx.moveTo(sx(s.x[i]), sy(y));
      pen = true;
    }
    ctx.stroke();
    if (s.dots || s.length === 1) {
      ctx.fillStyle = s.color;
      const i = s.length - 1;
      ctx.beginPath();
      ctx.arc(sx(s.x[i]), sy(s.mean(i)), 2.5, 0, Math.PI * 2);
      ctx.fill();
    }
  }

  /** Crosshair at the cursor and every series' value there. */
  drawHover(ctx, d, sx, sy, width) {
    const x = d.x0 + ((this.hoverX - this.pad.left) / (width - this.pad.left - this.pad.right)) * (d.x1 - d.x0);
    const rows = [];
    for (const s of this.series.values()) {
      if (!s.length) continue;
      const i = s.nearest(x);
      rows.push({ s, x: s.x[i], y: s.mean(i) });
    }
    if (!rows.length) return;
    const px = sx(rows[0].x);
    ctx.strokeStyle = themeColor('--muted');
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(px, this.pad.top);
    ctx.lineTo(px, this.canvas.clientHeight - this.pad.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    for (const r of rows) {
      ctx.fillStyle = r.s.color;
      ctx.beginPath();
      ctx.arc(sx(r.x), sy(r.y), 3, 0, Math.PI * 2);
      ctx.fill();
    }
    const lines = [`step ${formatNumber(rows[0].x)}`, ...rows.map((r) => `${r.s.label}: ${formatNumber(r.y)}`)];
    ctx.font = font(12);
    const lineH = 15 * textScale();
    // many series (a deep net's layers): the readout wraps into columns rather than run off the chart
    const fit = Math.max(2, Math.floor((this.canvas.clientHeight - this.pad.top - 8) / lineH));
    const perColumn = Math.ceil(lines.length / Math.ceil(lines.length / fit));
    const columns = Math.ceil(lines.length / perColumn);
    const colW = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 10;
    const boxW = columns * colW + 4;
    const boxH = perColumn * lineH + 8;
    const bx = Math.max(0, Math.min(Math.max(px + 8, this.pad.left), width - boxW - 4));
    ctx.fillStyle = 'rgba(8, 12, 20, 0.92)';
    ctx.fillRect(bx, this.pad.top, boxW, boxH);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    lines.forEach((line, i) => {
      ctx.fillStyle = i === 0 ? themeColor('--muted') : rows[i - 1].s.color;
      const col = Math.floor(i / perColumn);
      ctx.fillText(line, bx + 7 + col * colW, this.pad.top + 5 + (i % perColumn) * lineH);
    });
    this.readout = lines; // what the crosshair reads out (tests and the console)
  }
}

// Drawing thins a series to the pixels it covers: history can hold far more buckets than the chart has columns.

/** The band's buckets merged per css pixel column (lowest lo, highest hi): the same outline, fewer vertices. */
function bandColumns(s, sx) {
  const band = { x: [], lo: [], hi: [] };
  let px = null;
  for (let i = 0; i < s.length; i++) {
    const p = Math.round(sx(s.x[i]));
    const c = band.x.length - 1;
    if (p === px) {
      band.x[c] = s.x[i];
      band.lo[c] = Math.min(band.lo[c], s.lo[i]);
      band.hi[c] = Math.max(band.hi[c], s.hi[i]);
    } else {
      px = p;
      band.x.push(s.x[i]);
      band.lo.push(s.lo[i]);
      band.hi.push(s.hi[i]);
    }
  }
  return band;
}

/** Indices of the line's vertices: per css pixel column its first, lowest, highest and last mean (M4), so it
 *  rasterises as the full line would; undrawable means stay in, to break the line. */
function lineVertices(s, sx, drawable) {
  const out = [];
  let px = null;
  let first = -1;
  let lo = -1;
  let hi = -1;
  let last = -1;
  const flush = () => {
    if (first < 0) return;
    for (const i of [first, Math.min(lo, hi), Math.max(lo, hi), last]) if (i !== out[out.length - 1]) out.push(i);
    first = -1;
  };
  for (let i = 0; i < s.length; i++) {
    const y = s.mean(i);
    if (!drawable(y)) {
      flush();
      out.push(i);
      px = null;
      continue;
    }
    const p = Math.round(sx(s.x[i]));
    if (p !== px) {
      flush();
      px = p;
      first = lo = hi = i;
    }
    if (y < s.mean(lo)) lo = i;
    if (y > s.mean(hi)) hi = i;
    last = i;
  }
  flush();
  return out;
}

function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function yTicks(y0, y1, log) {
  if (!log) return niceTicks(y0, y1, 3).map((v) => ({ v, label: formatNumber(v) }));
  const ticks = [];
  const every = Math.max(1, Math.ceil((y1 - y0) / 4));
  for (let e = Math.ceil(y0); e <= Math.floor(y1); e += every) ticks.push({ v: e, label: formatNumber(10 ** e) });
  if (ticks.length < 2) {
    for (const m of [2, 5]) {
      const e = Math.log10(m * 10 ** Math.floor(y0));
      if (e > y0 && e < y1) ticks.push({ v: e, label: formatNumber(10 ** e) });
    }
  }
  return ticks;
}
