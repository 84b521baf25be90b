// Draw mode: click the output area to add points of a class (or a regression value), then train on them.
// Points snap to a 4096-step grid so the bookmark's compact encoding restores them exactly.
import { api } from './api.js';
import { readHash, updateHash } from './hash.js';
import { $ } from './dom.js';

export const MAX_BOOKMARK_POINTS = 200; // more than this are saved on the server, not in the address
export const MIN_POINTS = 4; // what the server needs to split a set
const EXTENT = 6; // the drawing square is [-6, 6]², as the built-in 2-D sets
const STEPS = 4095; // grid steps per axis (12 bits)
const LEVELS = 254; // regression targets: 255 levels over [-1, 1] (8 bits)
const ERASE_RADIUS = 12; // css px around a click that the eraser clears
const BYTES_PER_POINT = 4; // 12 + 12 bits of position, 8 of class or level

const snapAxis = (v) =>
  (Math.round(((Math.min(EXTENT, Math.max(-EXTENT, v)) + EXTENT) / (2 * EXTENT)) * STEPS) / STEPS) * 2 * EXTENT -
  EXTENT;
const snapTarget = (t) => (Math.round(((Math.min(1, Math.max(-1, t)) + 1) / 2) * LEVELS) / LEVELS) * 2 - 1;
const axisStep = (v) => Math.round(((v + EXTENT) / (2 * EXTENT)) * STEPS);

/** Points → `c.<base64url>` (classes) or `r.<base64url>` (values), 4 bytes a point. */
export function encodePoints(task, points) {
  const bytes = new Uint8Array(points.length * BYTES_PER_POINT);
  points.forEach(([x, y, t], i) => {
    const qx = axisStep(x);
    const qy = axisStep(y);
    const label = task === 'regression' ? Math.round(((t + 1) / 2) * LEVELS) : t;
    bytes.set([qx >> 4, ((qx & 15) << 4) | (qy >> 8), qy & 255, label], i * BYTES_PER_POINT);
  });
  const b64 = btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
  return `${task === 'regression' ? 'r' : 'c'}.${b64}`;
}

/** The inverse of encodePoints; null for text that is not an encoding. */
export function decodePoints(text) {
  const match = /^([cr])\.([A-Za-z0-9_-]*)$/.exec(text || '');
  if (!match) return null;
  let raw;
  try {
    raw = atob(match[2].replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  if (raw.length % BYTES_PER_POINT) return null;
  const task = match[1] === 'r' ? 'regression' : 'classification';
  const points = [];
  for (let i = 0; i < raw.length; i += BYTES_PER_POINT) {
    const [a, b, c, label] = [0, 1, 2, 3].map((k) => raw.charCodeAt(i + k));
    const qx = (a << 4) | (b >> 4);
    const qy = ((b & 15) << 8) | c;
    const t = task === 'regression' ? (label / LEVELS) * 2 - 1 : Math.min(label, 1);
    points.push([(qx / STEPS) * 2 * EXTENT - EXTENT, (qy / STEPS) * 2 * EXTENT - EXTENT, t]);
  }
  return { task, points };
}

export class DrawPad {
  /** heatmap: the DecisionHeatmap drawn on; onEdit: points changed; onSaved(info, train): a set was stored. */
  constructor(heatmap, { onEdit, onSaved, selected }) {
    this.heatmap = heatmap;
    this.selected = selected; // () => the form's dataset: a saved drawing opens for editing
    this.onEdit = onEdit;
    this.onSaved = onSaved;
    this.active = false;
    this.enabled = true;
    this.task = 'classification';
    this.label = 1;
    this.erasing = false;
    this.points = []; // [x, y, class 0/1 or value in [-1, 1]]
    this.bind();
    const saved = decodePoints(readHash().get('draw'));
    if (saved) {
      this.task = saved.task;
      this.points = saved.points;
      this.active = true; // the page's first paint shows them (no run to give way yet)
      this.bookmark(); // over 200 points stay out of the address
    }
    this.render();
  }

  bind() {
    $('draw-toggle').addEventListener('click', () => this.setActive(!this.active));
    $('draw-class-1').addEventListener('click', () => this.pick(1));
    $('draw-class-0').addEventListener('click', () => this.pick(0));
    $('draw-erase').addEventListener('click', () => {
      this.erasing = !this.erasing;
      this.render();
    });
    $('draw-task').addEventListener('change', (e) => {
      this.task = e.target.value;
      this.points = []; // classes and values do not mix
      this.changed();
    });
    $('draw-target').addEventListener('input', () => this.render());
    $('draw-clear').addEventListener('click', () => {
      this.points = [];
      this.changed();
    });
    $('draw-save').addEventListener('click', () => this.save(false));
    $('draw-train').addEventListener('click', () => this.save(true));
    const canvas = this.heatmap.canvas;
    canvas.addEventListener('click', (e) => this.click(e));
    canvas.addEventListener('contextmenu', (e) => {
      if (!this.active) return;
      e.preventDefault();
      this.erase(e);
    });
  }

  pick(label) {
    this.label = label;
    this.erasing = false;
    this.render();
  }

  /** Viewers watch: no drawing. */
  setEnabled(enabled) {
    this.enabled = enabled;
    $('draw-toggle').hidden = !enabled;
    if (!enabled) this.setActive(false);
  }

  /** Drawing needs the 2-D output area (hidden for digits and sets of more inputs). */
  setAvailable(available) {
    $('draw-toggle').disabled = !available;
    if (!available && this.active) this.setActive(false);
  }

  setActive(on) {
    this.active = on && this.enabled;
    const set = this.selected && this.selected();
    if (this.active && !this.points.length && set && set.kind === 'drawn') {
      this.load(set.name).catch((e) => ($('draw-error').textContent = e.message)); // edit a saved drawing
    }
    this.render();
    this.onEdit(this);
    this.bookmark();
  }

  click(e) {
    if (!this.active) return;
    if (this.erasing || e.shiftKey || e.altKey) return this.erase(e);
    const [x, y] = this.toData(e);
    const t = this.task === 'regression' ? snapTarget(Number($('draw-target').value)) : this.label;
    this.points.push([snapAxis(x), snapAxis(y), t]);
    this.changed();
  }

  erase(e) {
    const rect = this.heatmap.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const py = e.clientY - rect.top;
    const before = this.points.length;
    this.points = this.points.filter(([x, y]) => {
      const sx = ((x + EXTENT) / (2 * EXTENT)) * rect.width;
      const sy = (1 - (y + EXTENT) / (2 * EXTENT)) * rect.height;
      return Math.hypot(sx - px, sy - py) > ERASE_RADIUS;
    });
    if (this.points.length !== before) this.changed();
  }

  /** A click's place in data coordinates (the drawing square, whatever the canvas size). */
  toData(e) {
    const rect = this.heatmap.canvas.getBoundingClientRect();
    return [
      ((e.clientX - rect.left) / rect.width) * 2 * EXTENT - EXTENT,
      EXTENT - ((e.clientY - rect.top) / rect.height) * 2 * EXTENT,
    ];
  }

  changed() {
    $('draw-error').textContent = '';
    this.render();
    this.onEdit(this);
    this.bookmark();
  }

  /** Small sets travel in the address; larger ones are saved on the server (dataset=name). */
  bookmark() {
    const small = this.points.length && this.points.length <= MAX_BOOKMARK_POINTS;
    updateHash({ draw: small ? encodePoints(this.task, this.points) : null });
  }

  /** What the heatmap shows while drawing. */
  preview() {
    return { points: this.points.map(([x, y]) => [x, y]), y: this.points.map((p) => p[2]), task: this.task };
  }

  /** Store the points as a drawn set (named, or by content); `train` starts a run on it. */
  async save(train) {
    const error = $('draw-error');
    if (this.points.length < MIN_POINTS) {
      error.textContent = `Draw at least ${MIN_POINTS} points first (${this.points.length} so far).`;
      return null;
    }
    const target = this.task === 'regression' ? 'target' : 'label';
    const rows = [['x1', 'x2', target], ...this.points];
    const name = $('draw-name').value.trim();
    try {
      const info = await api.saveDataset({ rows, kind: 'drawn', task: this.task, target, ...(name ? { name } : {}) });
      error.textContent = '';
      $('draw-status').textContent = `Saved as “${info.name}”`;
      if (train) this.active = false;
      this.render();
      await this.onSaved(info, train);
      return info;
    } catch (e) {
      error.textContent = e.message;
      return null;
    }
  }

  /** Edit a saved drawn set: its rows become the pad's points. */
  async load(name) {
    const set = await api.dataset(name);
    this.task = set.task;
    const header = set.data[0];
    const t = header.length - 1;
    this.points = set.data
      .slice(1)
      .map((r) => [r[0], r[1], set.task === 'regression' ? r[t] : set.classes.indexOf(String(r[t]))]);
    $('draw-name').value = set.name;
    this.changed();
  }

  render() {
    $('draw-toggle').setAttribute('aria-pressed', String(this.active));
    $('draw-bar').hidden = !this.active;
    document.body.dataset.drawing = String(this.active);
    $('draw-task').value = this.task;
    const regression = this.task === 'regression';
    $('draw-classes').hidden = regression;
    $('draw-target-field').hidden = !regression;
    $('draw-target-value').textContent = snapTarget(Number($('draw-target').value)).toFixed(2);
    for (const label of [0, 1])
      $(`draw-class-${label}`).setAttribute('aria-pressed', String(!this.erasing && this.label === label));
    $('draw-erase').setAttribute('aria-pressed', String(this.erasing));
    const n = this.points.length;
    const where = n > MAX_BOOKMARK_POINTS ? ': too many for the address, Save keeps them on the server' : '';
    $('draw-count').textContent = `${n} point${n === 1 ? '' : 's'}${where}`;
    if (this.active) {
      this.heatmap.setTask(this.task);
      this.heatmap.setPoints(this.preview(), null);
    }
  }
}
