// Canvas helpers shared by the renderers: HiDPI sizing and theme colours from CSS variables.

const styles = () => getComputedStyle(document.body || document.documentElement);
let scale = null; // cached --canvas-text-scale; presenter mode enlarges canvas type

/** Read a theme colour (e.g. "--pos") so the palette lives in one place: the stylesheet. */
export function themeColor(name) {
  return styles().getPropertyValue(name).trim() || '#888';
}

/** How much larger canvas text is drawn than its base size (1 normally, more in presenter mode). */
export function textScale() {
  if (scale === null) scale = parseFloat(styles().getPropertyValue('--canvas-text-scale')) || 1;
  return scale;
}

/** A font string at the theme's text scale, e.g. font(11) → "11px system-ui, sans-serif". */
export function font(px, weight = '') {
  return `${weight ? `${weight} ` : ''}${Math.round(px * textScale())}px system-ui, sans-serif`;
}

/** The theme changed (presenter mode): forget cached values. */
export function themeChanged() {
  scale = null;
}

/** Size the backing store to CSS size × devicePixelRatio; returns a context drawing in CSS px. */
export function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const bw = Math.max(1, Math.round(width * dpr));
  const bh = Math.max(1, Math.round(height * dpr));
  const resized = canvas.width !== bw || canvas.height !== bh;
  if (resized) {
    canvas.width = bw;
    canvas.height = bh;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, width, height, dpr, resized };
}

/** Parse "#rrggbb" into [r, g, b]. */
export function hexToRgb(hex) {
  const h = hex.replace('#', '');
  const full =
    h.length === 3
      ? h
          .split('')
          .map((c) => c + c)
          .join('')
      : h;
  const n = parseInt(full, 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Linear blend of two [r, g, b] colours, t in [0, 1]. */
export function mix(a, b, t) {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
}

export const rgba = ([r, g, b], a = 1) => `rgba(${r},${g},${b},${a})`;

/** Diverging colour map used by heatmap and points: 0 → negative colour, 0.5 → neutral, 1 → positive. */
export function divergingMap(neg, neutral, pos) {
  const [n, z, p] = [neg, neutral, pos].map(hexToRgb);
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    const c = t < 0.5 ? mix(n, z, t * 2) : mix(z, p, (t - 0.5) * 2);
    table.set(c, i * 3);
  }
  return table;
}

/** Compact number for axes and readouts: 3 significant digits, exponent when tiny or huge. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return Number(v.toExponential(1)).toExponential(); // 1e-6, 2.5e-6
  if (a >= 100) return v.toFixed(0);
  return Number(v.toPrecision(3)).toString();
}

/** A hover readout: `lines` in a dark box beside the pointer `at`, kept inside width × height. */
export function drawReadout(ctx, lines, at, width, height, { fill, text }) {
  ctx.font = font(12);
  const lineH = 15 * textScale();
  const boxW = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 14;
  const boxH = lines.length * lineH + 8;
  const bx = Math.min(at.x + 12, width - boxW - 2);
  const by = Math.min(at.y + 12, height - boxH - 2);
  ctx.fillStyle = fill;
  ctx.fillRect(bx, by, boxW, boxH);
  ctx.fillStyle = text;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  lines.forEach((line, i) => ctx.fillText(line, bx + 7, by + 5 + i * lineH));
}
