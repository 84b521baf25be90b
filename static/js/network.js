// The network diagram: weights by sign and magnitude; beat and echo pulses drawn from the audio schedule.
import { drawReadout, fitCanvas, font, formatNumber, hexToRgb, mix, rgba, textScale, themeColor } from './canvas.js';

const MAX_UNITS_DRAWN = 12; // per layer; bigger layers show their first units and a "+N"
const PAD = { left: 78, right: 56, top: 44, bottom: 30 }; // css px: labels, layer editor, captions
const MAX_SPACING = 46; // css px between units
const DOTS_PER_LAYER = 48; // echo dots drawn per weight layer (edges are sampled beyond this)
const MAX_PULSES = 120;
const HOVER_REACH = 7; // css px from an edge that still counts as on it
const REDUCED_MOTION = matchMedia('(prefers-reduced-motion: reduce)'); // then: static highlights, nothing travels

export class NetworkDiagram {
  constructor(canvas, onLayout = () => {}) {
    this.canvas = canvas;
    this.onLayout = onLayout;
    this.sizes = [2, 8, 8, 1];
    this.labels = ['x1', 'x2'];
    this.outputs = ['ŷ'];
    this.weights = null; // [layer][i][j]
    this.pulses = [];
    this.mood = 'idle';
    this.glow = null; // {kind: 'chime'|'alarm', start, duration}
    this.still = document.createElement('canvas'); // edges and nodes, redrawn only on change
    this.stillDirty = true;
    this.layout = null;
    this.colors = {};
    this.biases = null; // [layer][j], for the hover readout
    this.hover = null; // {x, y} css px while the pointer is over the diagram
    this.readout = null; // what the hover readout says (tests and the console)
    canvas.addEventListener('pointermove', (e) => (this.hover = { x: e.offsetX, y: e.offsetY }));
    canvas.addEventListener('pointerleave', () => {
      this.hover = null;
      this.readout = null;
    });
    new ResizeObserver(() => (this.stillDirty = true)).observe(canvas);
  }

  /** 'reduced' when the user asked for less motion: beats and echoes light up in place. */
  get motion() {
    return REDUCED_MOTION.matches ? 'reduced' : 'full';
  }

  /** Theme or type size changed (presenter mode): redraw the still layer with the new colours. */
  restyle() {
    this.stillDirty = true;
  }

  setArchitecture(sizes, labels, outputs) {
    const same = JSON.stringify([sizes, labels, outputs]) === JSON.stringify([this.sizes, this.labels, this.outputs]);
    if (same) return;
    Object.assign(this, { sizes: [...sizes], labels: [...labels], outputs: [...outputs], weights: null });
    this.pulses = [];
    this.stillDirty = true;
  }

  /** From GET /model (null clears): layers[k].weights[i][j] joins unit i of layer k to unit j of k+1. */
  setWeights(model) {
    if (model && (!model.layers || model.layers.length !== this.sizes.length - 1)) return;
    this.weights = model ? model.layers.map((l) => l.weights) : null;
    this.biases = model ? model.layers.map((l) => l.biases) : null;
    this.stillDirty = true;
  }

  setMood(mood) {
    if (mood === this.mood) return;
    this.mood = mood;
    this.stillDirty = true;
  }

  /** Notes from the audio scheduler whose time has come become pulses. */
  addNotes(notes) {
    for (const n of notes) {
      if (n.kind === 'chime' || n.kind === 'alarm') this.glow = { kind: n.kind, start: n.time, duration: n.duration };
      else if (n.kind === 'beat' || n.kind === 'echo') this.pulses.push({ ...n, start: n.time });
    }
    if (this.pulses.length > MAX_PULSES) this.pulses.splice(0, this.pulses.length - MAX_PULSES);
  }

  clearPulses() {
    this.pulses = [];
    this.glow = null;
  }

  /** x of column i in css px (for aligning the layer editor). */
  columnX(i) {
    return this.layout ? this.layout.columns[i].x : 0;
  }

  computeLayout(width, height) {
    const n = this.sizes.length;
    const k = textScale();
    const pad = { left: PAD.left * k, right: PAD.right * k, top: PAD.top, bottom: PAD.bottom * k };
    const innerW = width - pad.left - pad.right;
    const innerH = height - pad.top - pad.bottom;
    const columns = this.sizes.map((size, i) => {
      const shown = Math.min(size, MAX_UNITS_DRAWN);
      const spacing = Math.min(MAX_SPACING, innerH / Math.max(shown, 1));
      const top = pad.top + (innerH - spacing * (shown - 1)) / 2;
      const x = pad.left + (n === 1 ? innerW / 2 : (i * innerW) / (n - 1));
      const ys = Array.from({ length: shown }, (_, k) => top + k * spacing);
      return { x, ys, size, shown, spacing };
    });
    const radius = Math.max(3, Math.min(11, Math.min(...columns.map((c) => c.spacing)) * 0.3));
    return { columns, radius, width, height };
  }

  draw(now) {
    if (!this.canvas.clientWidth || !this.canvas.clientHeight) return;
    const { ctx, width, height, resized } = fitCanvas(this.canvas);
    if (resized || this.stillDirty || !this.layout) {
      this.layout = this.computeLayout(width, height);
      this.colors = {
        pos: hexToRgb(themeColor('--pos')),
        neg: hexToRgb(themeColor('--neg')),
        line: hexToRgb(themeColor('--line')),
        dull: hexToRgb(themeColor('--echo-dull')),
        bright: hexToRgb(themeColor('--echo-bright')),
        good: hexToRgb(themeColor('--good')),
        bad: hexToRgb(themeColor('--bad')),
        text: themeColor('--text'),
        muted: themeColor('--muted'),
        ring: themeColor('--node-ring'),
        fill: themeColor('--node-fill'),
      };
      this.drawStill(width, height);
      this.stillDirty = false;
      this.onLayout();
    }
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(this.still, 0, 0, width, height);
    this.pulses = this.pulses.filter((p) => now < p.start + p.duration);
    const still = REDUCED_MOTION.matches;
    for (const p of this.pulses) {
      const t = (now - p.start) / p.duration;
      if (t < 0) continue;
      if (still) this.drawStaticPulse(ctx, p);
      else if (p.kind === 'beat') this.drawBeat(ctx, t, p.level);
      else this.drawEcho(ctx, p.layer, t, p.level);
    }
    if (this.glow) this.drawGlow(ctx, now, width, height);
    this.drawHover(ctx, width, height);
  }

  /** A unit's name: x₁ for inputs, ŷ (or a class) for outputs, h2.3 for hidden layer 2's third unit. */
  unitName(layer, j) {
    if (layer === 0) return this.labels[j] || `input ${j + 1}`;
    if (layer === this.sizes.length - 1) return this.outputs[j] || `output ${j + 1}`;
    return `h${layer}.${j + 1}`;
  }

  /** What is under the pointer: a unit (its bias) or an edge (its weight). */
  hovered() {
    const { x, y } = this.hover;
    const { columns, radius } = this.layout;
    for (let k = 0; k < columns.length; k++) {
      const c = columns[k];
      if (Math.abs(x - c.x) > radius + 4) continue;
      const j = c.ys.findIndex((uy) => Math.abs(y - uy) <= radius + 4);
      if (j < 0) continue;
      const bias = k > 0 && this.biases ? this.biases[k - 1][j] : null;
      return [this.unitName(k, j), ...(bias === null || bias === undefined ? [] : [`bias ${formatNumber(bias)}`])];
    }
    const k = columns.findIndex((c, i) => i < columns.length - 1 && x > c.x && x < columns[i + 1].x);
    if (k < 0 || !this.weights) return null;
    const [a, b] = [columns[k], columns[k + 1]];
    // every edge of this gap shares its x(t) (control points at the midpoint), so one t serves all
    const u = (x - a.x) / (b.x - a.x);
    let lo = 0;
    let hi = 1;
    for (let n = 0; n < 24; n++) {
      const t = (lo + hi) / 2;
      const xt = 1.5 * (1 - t) * t + t * t * t; // x(t) of the gap, from 0 to 1
      if (xt < u) lo = t;
      else hi = t;
    }
    const t = (lo + hi) / 2;
    const share = 3 * (1 - t) * t * t + t * t * t; // y(t) = y0 + (y1 - y0) * share
    let best = null;
    for (let i = 0; i < a.shown; i++) {
      for (let j = 0; j < b.shown; j++) {
        const d = Math.abs(a.ys[i] + (b.ys[j] - a.ys[i]) * share - y);
        if (d <= HOVER_REACH && (!best || d < best.d)) best = { d, i, j };
      }
    }
    if (!best) return null;
    const w = this.weights[k] && this.weights[k][best.i] ? this.weights[k][best.i][best.j] : null;
    if (w === null || w === undefined) return null;
    return [`${this.unitName(k, best.i)} → ${this.unitName(k + 1, best.j)}`, `weight ${formatNumber(w)}`];
  }

  drawHover(ctx, width, height) {
    this.readout = null;
    if (!this.hover || !this.layout) return;
    const lines = this.hovered();
    if (!lines) return;
    this.readout = lines;
    drawReadout(ctx, lines, this.hover, width, height, { fill: 'rgba(8, 12, 20, 0.9)', text: this.colors.text });
  }

  edgePath(ctx, x0, y0, x1, y1) {
    const xm = (x0 + x1) / 2;
    ctx.moveTo(x0, y0);
    ctx.bezierCurveTo(xm, y0, xm, y1, x1, y1);
  }

  /** Edges and units: sign → colour, |w| → width and opacity (scaled per layer). */
  drawStill(width, height) {
    const dpr = window.devicePixelRatio || 1;
    this.still.width = Math.round(width * dpr);
    this.still.height = Math.round(height * dpr);
    const ctx = this.still.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const { columns, radius } = this.layout;
    for (let k = 0; k < columns.length - 1; k++) {
      const a = columns[k];
      const b = columns[k + 1];
      const w = this.weights ? this.weights[k] : null;
      let maxAbs = 1e-12;
      if (w)
        for (let i = 0; i < a.shown; i++)
          for (let j = 0; j < b.shown; j++) maxAbs = Math.max(maxAbs, Math.abs(w[i][j]));
      for (let i = 0; i < a.shown; i++) {
        for (let j = 0; j < b.shown; j++) {
          const v = w ? w[i][j] : null;
          const m = v === null || v === undefined ? 0 : Math.abs(v) / maxAbs;
          ctx.beginPath();
          this.edgePath(ctx, a.x, a.ys[i], b.x, b.ys[j]);
          if (v === null || v === undefined) {
            ctx.strokeStyle = rgba(this.colors.line, 0.7);
            ctx.lineWidth = 1;
          } else {
            ctx.strokeStyle = rgba(v >= 0 ? this.colors.pos : this.colors.neg, 0.15 + 0.8 * m);
            ctx.lineWidth = 0.4 + 4.2 * m;
          }
          ctx.stroke();
        }
      }
    }
    const ring = this.mood === 'diverged' ? this.colors.bad : this.mood === 'converged' ? this.colors.good : null;
    ctx.font = font(13);
    columns.forEach((c, k) => {
      c.ys.forEach((y, i) => {
        ctx.beginPath();
        ctx.arc(c.x, y, radius, 0, Math.PI * 2);
        ctx.fillStyle = this.colors.fill;
        ctx.fill();
        ctx.lineWidth = 1.6;
        ctx.strokeStyle = ring ? rgba(ring, 0.9) : this.colors.ring;
        ctx.stroke();
        if (k === 0 && this.labels[i] !== undefined && c.size <= MAX_UNITS_DRAWN) {
          ctx.fillStyle = this.colors.text;
          ctx.textAlign = 'right';
          ctx.textBaseline = 'middle';
          ctx.fillText(this.labels[i], c.x - radius - 8, y);
        }
        if (k === columns.length - 1 && this.outputs[i] !== undefined) {
          ctx.fillStyle = this.colors.text;
          ctx.textAlign = 'left';
          ctx.textBaseline = 'middle';
          ctx.fillText(this.outputs[i], c.x + radius + 8, y);
        }
      });
      ctx.fillStyle = this.colors.muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'alphabetic';
      const caption = k === 0 ? `input ${c.size}` : k === columns.length - 1 ? `output ${c.size}` : '';
      if (caption) ctx.fillText(caption, c.x, height - 8);
      if (c.size > c.shown) {
        ctx.textAlign = 'left';
        ctx.textBaseline = 'middle';
        ctx.fillText(`+${c.size - c.shown}`, c.x + radius + 5, c.ys[c.shown - 1] + radius + 6);
      }
    });
  }

  /** A beat travels input → output: dots ride the edges of each layer in turn, columns light up as it passes. */
  drawBeat(ctx, t, level) {
    const { columns, radius } = this.layout;
    const hops = columns.length - 1;
    const along = easeOut(t) * hops;
    const k = Math.min(hops - 1, Math.floor(along));
    const fade = 1 - t * 0.5;
    const alpha = fade * (0.35 + 0.65 * level);
    this.drawDots(ctx, k, along - k, [150, 205, 255], alpha, 2.4);
    columns.forEach((c, i) => {
      const near = Math.exp(-((i - along) ** 2) / 0.18);
      if (near < 0.03) return;
      ctx.fillStyle = `rgba(170,215,255,${near * alpha})`;
      for (const y of c.ys) {
        ctx.beginPath();
        ctx.arc(c.x, y, radius * 0.72, 0, Math.PI * 2);
        ctx.fill();
      }
    });
  }

  /** Dots at parameter s along a sample of weight layer k's edges. */
  drawDots(ctx, k, s, color, alpha, r) {
    const a = this.layout.columns[k];
    const b = this.layout.columns[k + 1];
    if (!a || !b) return;
    const edges = a.shown * b.shown;
    const stride = Math.max(1, Math.ceil(edges / DOTS_PER_LAYER));
    const halo = new Path2D();
    const core = new Path2D();
    for (let e = 0; e < edges; e += stride) {
      const [px, py] = bezierPoint(a.x, a.ys[e % a.shown], b.x, b.ys[Math.floor(e / a.shown)], s);
      halo.moveTo(px + r * 2.2, py);
      halo.arc(px, py, r * 2.2, 0, Math.PI * 2);
      core.moveTo(px + r, py);
      core.arc(px, py, r, 0, Math.PI * 2);
    }
    ctx.fillStyle = rgba(color, alpha * 0.25); // a cheap glow: shadowBlur is slow on software canvases
    ctx.fill(halo);
    ctx.fillStyle = rgba(color, alpha);
    ctx.fill(core);
  }

  /** An echo travels back along one weight layer (output side → input side); brightness = gradient level. */
  drawEcho(ctx, layer, t, level) {
    const color = mix(this.colors.dull, this.colors.bright, level);
    this.drawDots(ctx, layer, 1 - t, color, (0.25 + 0.75 * level) * (1 - t * 0.6), 1.6 + 3 * level);
  }

  /** Reduced motion: a beat lights every unit in place, an echo lights its layer's edges; nothing moves or fades. */
  drawStaticPulse(ctx, p) {
    const { columns, radius } = this.layout;
    if (p.kind === 'beat') {
      ctx.fillStyle = `rgba(170,215,255,${0.45 + 0.45 * p.level})`;
      for (const c of columns) {
        for (const y of c.ys) {
          ctx.beginPath();
          ctx.arc(c.x, y, radius * 0.72, 0, Math.PI * 2);
          ctx.fill();
        }
      }
    } else {
      const color = mix(this.colors.dull, this.colors.bright, p.level);
      this.drawDots(ctx, p.layer, 0.5, color, 0.3 + 0.6 * p.level, 1.6 + 3 * p.level);
    }
  }

  /** Converged: a green bloom; diverged: a red flash (a steady tint when motion is reduced). */
  drawGlow(ctx, now, width, height) {
    const t = (now - this.glow.start) / this.glow.duration;
    if (t > 1) {
      this.glow = null;
      return;
    }
    if (t < 0) return;
    if (REDUCED_MOTION.matches) {
      ctx.fillStyle = rgba(this.glow.kind === 'chime' ? this.colors.good : this.colors.bad, 0.12);
      ctx.fillRect(0, 0, width, height);
      return;
    }
    const color = this.glow.kind === 'chime' ? this.colors.good : this.colors.bad;
    const out = this.layout.columns[this.layout.columns.length - 1];
    const cy = out.ys[Math.floor(out.ys.length / 2)];
    const g = ctx.createRadialGradient(out.x, cy, 0, out.x, cy, width * (0.2 + 0.8 * t));
    g.addColorStop(0, rgba(color, 0.45 * (1 - t)));
    g.addColorStop(1, rgba(color, 0));
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, width, height);
  }
}

function easeOut(t) {
  return 1 - (1 - t) ** 2;
}

/** Point at parameter s on the edge curve used by edgePath. */
function bezierPoint(x0, y0, x1, y1, s) {
  const xm = (x0 + x1) / 2;
  const u = 1 - s;
  const x = u ** 3 * x0 + 3 * u * u * s * xm + 3 * u * s * s * xm + s ** 3 * x1;
  const y = u ** 3 * y0 + 3 * u * u * s * y0 + 3 * u * s * s * y1 + s ** 3 * y1;
  return [x, y];
}
