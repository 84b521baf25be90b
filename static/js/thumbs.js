// Dataset previews drawn client-side: seeded look-alikes of the server's generators, and a digit icon.
import { divergingMap, fitCanvas, themeColor } from './canvas.js';

const PREVIEW_POINTS = 140; // per thumbnail
const EXTENT = 6; // the 2-D sets live in [-6, 6]²
const MOON_RADIUS = 10 / 3;
const BUMPS = [
  [-4, 2.5, 1],
  [0, 2.5, -1],
  [4, 2.5, 1],
  [-4, -2.5, -1],
  [0, -2.5, 1],
  [4, -2.5, -1],
];
// One real 8×8 image from the UCI digits set (a "3"), 0…16.
const DIGIT_ICON = [
  0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15, 11, 1, 0, 0, 0, 0, 0, 1,
  12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0, 0, 7, 13, 13, 9, 0, 0,
];

/** mulberry32: small seeded PRNG so previews are the same on every load. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normal(rand) {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const polar = (r, angle) => [r * Math.sin(angle), r * Math.cos(angle)];
const uniform = (rand, lo, hi) => lo + (hi - lo) * rand();

const GENERATORS = {
  circle(rand, i, n, noise) {
    const label = 1 - (i % 2);
    const p = polar(label ? 2.5 * rand() : 3.5 + 1.5 * rand(), uniform(rand, 0, 2 * Math.PI));
    const rx = p[0] + uniform(rand, -5, 5) * noise;
    const ry = p[1] + uniform(rand, -5, 5) * noise;
    return [p[0], p[1], Math.hypot(rx, ry) < 2.5 ? 1 : 0];
  },
  xor(rand, i, n, noise) {
    const p = [uniform(rand, -5, 5), uniform(rand, -5, 5)].map((v) => v + (v > 0 ? 0.3 : -0.3));
    const r = p.map((v) => v + uniform(rand, -5, 5) * noise);
    return [p[0], p[1], r[0] * r[1] >= 0 ? 1 : 0];
  },
  gauss(rand, i, n, noise) {
    const label = 1 - (i % 2);
    const std = Math.sqrt(0.5 + 7 * noise);
    const c = label ? 2 : -2;
    return [c + normal(rand) * std, c + normal(rand) * std, label];
  },
  spiral(rand, i, n, noise) {
    const label = 1 - (i % 2);
    const along = Math.floor(i / 2) / Math.floor((n + 1) / 2);
    const p = polar(5 * along, 1.75 * 2 * Math.PI * along + Math.PI * (1 - label));
    return [p[0] + uniform(rand, -1, 1) * noise, p[1] + uniform(rand, -1, 1) * noise, label];
  },
  moons(rand, i, n, noise) {
    const label = i % 2;
    const theta = uniform(rand, 0, Math.PI);
    const u = label === 0 ? [Math.cos(theta), Math.sin(theta)] : [1 - Math.cos(theta), 0.5 - Math.sin(theta)];
    return [
      MOON_RADIUS * (u[0] - 0.5) + normal(rand) * 2 * noise,
      MOON_RADIUS * (u[1] - 0.25) + normal(rand) * 2 * noise,
      label,
    ];
  },
  plane(rand, i, n, noise) {
    const p = [uniform(rand, -6, 6), uniform(rand, -6, 6)];
    const sum = p[0] + p[1] + (uniform(rand, -6, 6) + uniform(rand, -6, 6)) * noise;
    return [p[0], p[1], Math.max(-1, Math.min(1, sum / 12))];
  },
  multigauss(rand, i, n, noise) {
    const p = [uniform(rand, -6, 6), uniform(rand, -6, 6)];
    const r = p.map((v) => v + uniform(rand, -6, 6) * noise);
    const y = BUMPS.reduce((acc, [cx, cy, s]) => acc + s * Math.exp(-((r[0] - cx) ** 2 + (r[1] - cy) ** 2) / 2), 0);
    return [p[0], p[1], Math.max(-1, Math.min(1, y))];
  },
};

export const REGRESSION = new Set(['plane', 'multigauss']);

/** Preview points for a 2-D set as {points: [[x1, x2]…], y: […]}, or null for digits/unknown. */
export function previewPoints(name, { n = PREVIEW_POINTS, noise = 0, seed = 0 } = {}) {
  const generate = GENERATORS[name];
  if (!generate) return null;
  const rand = random(seed * 7919 + name.length * 104729 + 17);
  const points = [];
  const y = [];
  for (let i = 0; i < n; i++) {
    const [a, b, t] = generate(rand, i, n, noise);
    points.push([a, b]);
    y.push(t);
  }
  return { points, y };
}

/** Draw a dataset's thumbnail on a small canvas. */
export function drawThumbnail(canvas, name) {
  const { ctx, width, height } = fitCanvas(canvas);
  ctx.fillStyle = '#0c1220';
  ctx.fillRect(0, 0, width, height);
  if (name === null) return drawTableIcon(ctx, width, height);
  const preview = previewPoints(name);
  if (!preview) return drawDigitIcon(ctx, width, height);
  const colors = divergingMap(themeColor('--neg'), '#2a3347', themeColor('--pos'));
  preview.points.forEach(([x, y], i) => {
    const t = REGRESSION.has(name) ? (preview.y[i] + 1) / 2 : preview.y[i];
    const c = Math.round(Math.max(0, Math.min(1, t)) * 255) * 3;
    ctx.fillStyle = `rgb(${colors[c]},${colors[c + 1]},${colors[c + 2]})`;
    ctx.beginPath();
    ctx.arc(((x + EXTENT) / (2 * EXTENT)) * width, (1 - (y + EXTENT) / (2 * EXTENT)) * height, 1.5, 0, Math.PI * 2);
    ctx.fill();
  });
}

/** Uploaded and drawn sets: a small table. */
function drawTableIcon(ctx, width, height) {
  const rows = 5;
  const cols = 3;
  const w = width * 0.7;
  const h = height * 0.6;
  const x0 = (width - w) / 2;
  const y0 = (height - h) / 2;
  ctx.strokeStyle = 'rgba(232, 237, 245, 0.7)';
  ctx.lineWidth = 1;
  for (let r = 0; r <= rows; r++) {
    ctx.beginPath();
    ctx.moveTo(x0, y0 + (r * h) / rows);
    ctx.lineTo(x0 + w, y0 + (r * h) / rows);
    ctx.stroke();
  }
  for (let c = 0; c <= cols; c++) {
    ctx.beginPath();
    ctx.moveTo(x0 + (c * w) / cols, y0);
    ctx.lineTo(x0 + (c * w) / cols, y0 + h);
    ctx.stroke();
  }
}

function drawDigitIcon(ctx, width, height) {
  const cell = Math.min(width, height) / 10;
  const x0 = (width - cell * 8) / 2;
  const y0 = (height - cell * 8) / 2;
  DIGIT_ICON.forEach((v, i) => {
    if (!v) return;
    ctx.fillStyle = `rgba(232, 237, 245, ${v / 16})`;
    ctx.fillRect(x0 + (i % 8) * cell, y0 + Math.floor(i / 8) * cell, cell + 0.3, cell + 0.3);
  });
}
