// Hidden-layer editor: add or remove layers and units; each layer's buttons sit over its diagram column.

export const MAX_LAYERS = 8;
export const MAX_UNITS = 256;
const SIDE_GAP = 8; // px kept free between neighbouring layers' buttons
const LINEAR_UNTIL = 16; // ± one unit up to here, then doubling, so 256 is a few clicks away

export const moreUnits = (n) => (n < LINEAR_UNTIL ? n + 1 : Math.min(MAX_UNITS, n * 2));
export const fewerUnits = (n) => (n <= LINEAR_UNTIL ? Math.max(1, n - 1) : Math.max(LINEAR_UNTIL, n >> 1));

export class LayerEditor {
  constructor(onChange) {
    this.onChange = onChange;
    this.container = document.getElementById('layer-editor');
    this.count = document.getElementById('layer-count');
    this.addLayer = document.getElementById('add-layer');
    this.removeLayer = document.getElementById('remove-layer');
    this.hidden = [];
    this.groups = [];
    this.addLayer.addEventListener('click', () => this.change([...this.hidden, this.hidden.at(-1) ?? 4]));
    this.removeLayer.addEventListener('click', () => this.change(this.hidden.slice(0, -1)));
  }

  change(hidden) {
    this.set(hidden);
    this.onChange(this.hidden);
  }

  set(hidden) {
    this.hidden = hidden.slice(0, MAX_LAYERS);
    this.render();
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.render();
  }

  render() {
    const n = this.hidden.length;
    const off = this.enabled === false;
    this.count.textContent = `${n} hidden layer${n === 1 ? '' : 's'}`;
    this.addLayer.disabled = off || n >= MAX_LAYERS;
    this.removeLayer.disabled = off || n === 0;
    this.groups = this.hidden.map((units, i) => this.group(units, i, off));
    this.container.replaceChildren(...this.groups);
    if (this.xOf) this.align(this.xOf);
  }

  group(units, i, off) {
    const box = document.createElement('div');
    box.className = 'layer-group';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', `Hidden layer ${i + 1}`);
    const button = (text, label, testid, next, disabled) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'mini-button';
      b.textContent = text;
      b.setAttribute('aria-label', label);
      b.dataset.testid = testid;
      b.disabled = off || disabled;
      b.addEventListener('click', () => this.change(this.hidden.map((u, k) => (k === i ? next(u) : u))));
      return b;
    };
    const count = document.createElement('span');
    count.className = 'units';
    count.textContent = String(units);
    count.dataset.testid = `units-${i + 1}`;
    count.title = `${units} neurons`;
    box.append(
      button('−', `Remove a neuron from hidden layer ${i + 1}`, `remove-neuron-${i + 1}`, fewerUnits, units <= 1),
      count,
      button('+', `Add a neuron to hidden layer ${i + 1}`, `add-neuron-${i + 1}`, moreUnits, units >= MAX_UNITS),
    );
    return box;
  }

  /** Place hidden layer i's buttons over diagram column i + 1; stacked when side by side would not fit. */
  align(xOf) {
    this.xOf = xOf;
    this.groups.forEach((g, i) => (g.style.left = `${xOf(i + 1)}px`));
    if (this.groups.length < 2) return this.container.classList.remove('stacked');
    const room = xOf(2) - xOf(1);
    this.container.classList.remove('stacked');
    const wide = Math.max(...this.groups.map((g) => g.getBoundingClientRect().width));
    this.container.classList.toggle('stacked', wide + SIDE_GAP > room);
  }
}
