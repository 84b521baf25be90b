// The run form: data, features, network and optimiser settings ↔ a run config, kept in the URL hash.
import { readHash, updateHash } from './hash.js';
import { LayerEditor } from './layers.js';
import { drawThumbnail } from './thumbs.js';
import { DEFAULT_REG_RATE, NO_FEATURES, plainServerMessage, problem, repair } from './validate.js';
import { $ } from './dom.js';
import { formatCount } from './format.js';

export const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
export const REGULARIZATION_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
// The form as the server renders it into the page (app/engine/config.py form_schema, with the
// built-in datasets): defaults, choices, limits and features are RunConfig's, never copied here.
// Outside a page (node:test importing a module that imports this one) there is none.
const carried = globalThis.document?.body?.dataset.form;
const SERVER = carried
  ? JSON.parse(carried)
  : { defaults: {}, datasets: [], features: [], limits: {}, digits_inputs: null };

export const FEATURES = SERVER.features;
export const FEATURE_LABELS = {
  x1: 'x₁',
  x2: 'x₂',
  'x1^2': 'x₁²',
  'x2^2': 'x₂²',
  'x1*x2': 'x₁x₂',
  'sin(x1)': 'sin x₁',
  'sin(x2)': 'sin x₂',
};

// The run config the page starts from: the server's RunConfig defaults (the same as
// `POST /api/runs {}` and GET /api/defaults), so page and API share one source. Tempo is the transport's.
export const DEFAULTS = {};
const NOT_FORM_KEYS = new Set(['steps_per_second', 'start_paused']);

export function setDefaults(config) {
  for (const [key, value] of Object.entries(config)) if (!NOT_FORM_KEYS.has(key)) DEFAULTS[key] = value;
}
setDefaults(SERVER.defaults);
const SEED_MAX = SERVER.limits.seed?.max;
const DIGITS_INPUTS = SERVER.digits_inputs;

// config field → the element an error message belongs next to (also gets aria-invalid)
const FIELD_CONTROLS = {
  dataset: 'dataset-picker',
  n_samples: 'n-samples',
  noise: 'noise',
  train_ratio: 'train-ratio',
  batch_size: 'batch-size',
  max_steps: 'max-steps',
  seed: 'seed',
  features: 'feature-chips',
  hidden: 'layer-editor',
  activation: 'activation',
  optimizer: 'optimizer',
  learning_rate: 'lr',
  regularization: 'regularization',
  regularization_rate: 'reg-rate',
  steps_per_second: 'tempo',
};

const parseNumber = (text) => (text.trim() === '' || Number.isNaN(Number(text)) ? null : Number(text));

export class RunForm {
  constructor(datasets, onChange) {
    this.datasets = datasets && datasets.length ? datasets : SERVER.datasets; // the built-in sets if the list failed
    this.onChange = onChange;
    this.invalid = {}; // setting → what is wrong with what the user typed (never written to the URL)
    this.config = this.fromHash();
    this.layers = new LayerEditor((hidden) => this.set('hidden', hidden));
    this.buildDatasets();
    this.buildFeatures();
    fillSelect($('lr'), LEARNING_RATES);
    fillSelect($('reg-rate'), REGULARIZATION_RATES);
    this.bind();
    this.render();
    if (this.repaired) this.save(); // the address now holds what the page uses
  }

  /** The bookmark's settings, repaired to the nearest valid values (with a notice saying what changed). */
  fromHash() {
    const { config, notices } = repair({ ...DEFAULTS, ...configFromHash(this.datasets) }, DEFAULTS);
    this.repaired = notices.length > 0;
    const notice = $('form-notice');
    if (notice) notice.textContent = notices.length ? `This link's settings were adjusted: ${notices.join('; ')}.` : '';
    return config;
  }

  /** Settings typed that the server would refuse, in plain words; Play waits until there are none. */
  problems() {
    return Object.values(this.invalid);
  }

  /** The run config the server is sent (tempo is the transport's). */
  value() {
    const c = { ...this.config, features: [...this.config.features], hidden: [...this.config.hidden] };
    if (!this.is2d()) c.features = ['x1', 'x2'];
    return c;
  }

  /** Two raw inputs: features, the heatmap and drawing apply (built-in 2-D sets, 2-column uploads). */
  is2d() {
    return (this.dataset().n_inputs ?? 2) === 2;
  }

  isUploaded() {
    return this.dataset().source === 'uploaded';
  }

  /** A set was uploaded or drawn: it joins the picker (replacing one of the same name). */
  addDataset(info) {
    this.datasets = [...this.datasets.filter((d) => d.name.toLowerCase() !== info.name.toLowerCase()), info];
    this.rebuildDatasets();
  }

  removeDataset(name) {
    this.datasets = this.datasets.filter((d) => d.name !== name);
    this.rebuildDatasets();
    if (this.config.dataset === name) this.set('dataset', DEFAULTS.dataset);
  }

  rebuildDatasets() {
    $('dataset-picker').replaceChildren();
    this.buildDatasets();
    this.render();
    if (this.enabled === false) this.setEnabled(false);
  }

  dataset() {
    return this.datasets.find((d) => d.name === this.config.dataset) || this.datasets[0];
  }

  isDigits() {
    return this.config.dataset === 'digits';
  }

  /** Layer sizes, input labels and output labels the diagram shows before a run exists. */
  architecture() {
    const d = this.dataset();
    const inputs = this.is2d() ? this.config.features.length : d.n_inputs || DIGITS_INPUTS;
    const outputs = d.n_classes > 2 ? d.n_classes : 1;
    const labels = this.is2d() ? this.config.features : d.inputs || [];
    return { sizes: [inputs, ...this.config.hidden, outputs], inputs: labels };
  }

  /** The address changed (a bookmark opened in this tab): show its settings; true if they differ. */
  loadHash() {
    const next = this.fromHash();
    if (this.repaired) this.save();
    if (JSON.stringify(next) === JSON.stringify(this.config)) return false;
    this.config = next;
    this.invalid = {};
    this.clearErrors();
    this.render();
    return true;
  }

  /** Show a watched run's settings (late join, viewer, replay) without touching the URL or the run. */
  showConfig(config) {
    const known = Object.fromEntries(
      Object.keys(DEFAULTS)
        .filter((k) => k in config)
        .map((k) => [k, config[k]]),
    );
    this.config = { ...DEFAULTS, ...known };
    this.clearErrors();
    this.render();
  }

  set(key, value) {
    this.config[key] = value;
    this.clearErrors();
    this.render();
    this.save();
    this.onChange(key);
  }

  /** Write every setting to the URL, so the page as it stands is a bookmark. */
  save() {
    writeHash(this.config);
  }

  buildDatasets() {
    const picker = $('dataset-picker');
    this.datasetButtons = this.datasets.map((d) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'dataset-option';
      b.setAttribute('role', 'radio');
      b.setAttribute('aria-label', `Dataset: ${d.name}`);
      b.dataset.testid = `dataset-${d.name}`;
      b.dataset.name = d.name;
      b.dataset.source = d.source || 'builtin';
      b.title = d.description || d.name; // names are text: textContent and attributes only
      const thumb = document.createElement('canvas');
      const caption = document.createElement('span');
      caption.textContent = d.name;
      b.append(thumb, caption);
      b.addEventListener('click', () => this.set('dataset', d.name));
      b.addEventListener('keydown', (e) => this.arrowKeys(e, d.name));
      picker.append(b);
      return b;
    });
    requestAnimationFrame(() =>
      this.datasetButtons.forEach((b) =>
        drawThumbnail(b.querySelector('canvas'), b.dataset.source === 'uploaded' ? null : b.dataset.name),
      ),
    );
  }

  /** Radio-group keyboard: arrows move the choice. */
  arrowKeys(event, name) {
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    event.stopPropagation();
    const names = this.datasets.map((d) => d.name);
    const next = names[(names.indexOf(name) + step + names.length) % names.length];
    this.set('dataset', next);
    this.datasetButtons[names.indexOf(next)].focus();
  }

  buildFeatures() {
    this.featureButtons = FEATURES.map((f) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'chip';
      b.textContent = FEATURE_LABELS[f];
      b.dataset.testid = `feature-${f}`;
      b.dataset.feature = f;
      b.setAttribute('aria-label', `Input feature ${f}`);
      b.addEventListener('click', () => {
        const on = this.config.features.includes(f);
        if (on && this.config.features.length === 1) {
          this.showProblem('features', NO_FEATURES);
          return;
        }
        const next = on
          ? this.config.features.filter((x) => x !== f)
          : FEATURES.filter((x) => x === f || this.config.features.includes(x));
        this.set('features', next);
      });
      $('feature-chips').append(b);
      return b;
    });
  }

  bind() {
    const slider = (id, key, toValue, show) => {
      const el = $(id);
      el.addEventListener('input', () => ($(`${id}-value`).textContent = show(toValue(el.value))));
      el.addEventListener('change', () => this.set(key, toValue(el.value)));
    };
    slider(
      'train-ratio',
      'train_ratio',
      (v) => Number(v) / 100,
      (v) => `${Math.round(v * 100)}%`,
    );
    slider(
      'noise',
      'noise',
      (v) => Number(v) / 100,
      (v) => String(Math.round(v * 100)),
    );
    slider('n-samples', 'n_samples', Number, String);
    for (const [id, key] of [
      ['batch-size', 'batch_size'],
      ['max-steps', 'max_steps'],
      ['seed', 'seed'],
    ]) {
      const typed = () => {
        const value = parseNumber($(id).value);
        const wrong = problem(key, value);
        if (wrong) this.invalid[key] = wrong;
        else delete this.invalid[key];
        this.showProblem(key, wrong);
        return wrong ? undefined : value;
      };
      $(id).addEventListener('input', typed); // as the user types, beside the field
      $(id).addEventListener('change', () => {
        const value = typed();
        if (value !== undefined && value !== this.config[key]) this.set(key, value); // only valid values reach the URL
      });
    }
    for (const [id, key, toValue] of [
      ['lr', 'learning_rate', Number],
      ['reg-rate', 'regularization_rate', Number],
      ['activation', 'activation', String],
      ['optimizer', 'optimizer', String],
    ]) {
      $(id).addEventListener('change', () => this.set(key, toValue($(id).value)));
    }
    $('regularization').addEventListener('change', () => {
      const kind = $('regularization').value;
      // L1 or L2 at rate 0 would do nothing: choosing one brings a working rate; None sets it back to 0
      if (kind === 'none') this.config.regularization_rate = 0;
      else if (!this.config.regularization_rate) this.config.regularization_rate = DEFAULT_REG_RATE;
      this.set('regularization', kind);
    });
    $('regenerate').addEventListener('click', () => this.set('seed', Math.floor(Math.random() * SEED_MAX)));
  }

  /** Widgets follow the config. */
  render() {
    const c = this.config;
    this.datasetButtons.forEach((b) => b.setAttribute('aria-checked', String(b.dataset.name === c.dataset)));
    this.datasetButtons.forEach((b) => (b.tabIndex = b.dataset.name === c.dataset ? 0 : -1));
    $('dataset-description').textContent = this.dataset().description || '';
    this.featureButtons.forEach((b) => b.setAttribute('aria-pressed', String(c.features.includes(b.dataset.feature))));
    $('features-field').hidden = !this.is2d();
    $('samples-field').hidden = this.isDigits() || this.isUploaded(); // an uploaded set has its rows
    $('noise').closest('.field').hidden = this.isUploaded();
    setRange('train-ratio', Math.round(c.train_ratio * 100), `${Math.round(c.train_ratio * 100)}%`);
    setRange('noise', Math.round(c.noise * 100), String(Math.round(c.noise * 100)));
    setRange('n-samples', c.n_samples, String(c.n_samples));
    for (const [id, key] of [
      ['batch-size', 'batch_size'],
      ['max-steps', 'max_steps'],
      ['seed', 'seed'],
    ]) {
      if (parseNumber($(id).value) !== c[key]) $(id).value = c[key] === null ? '' : String(c[key]);
    }
    selectValue($('lr'), c.learning_rate);
    selectValue($('reg-rate'), c.regularization_rate);
    $('activation').value = c.activation;
    $('optimizer').value = c.optimizer;
    $('regularization').value = c.regularization;
    $('reg-rate').disabled = c.regularization === 'none' || this.enabled === false;
    this.layers.set(c.hidden);
    const { sizes } = this.architecture();
    const params = sizes.slice(1).reduce((sum, units, i) => sum + units * sizes[i] + units, 0);
    $('param-count').textContent = `${formatCount(params)} parameters`;
  }

  /** One setting's problem beside its control (null clears it). */
  showProblem(field, message) {
    const box = $(`error-${field}`);
    const control = $(FIELD_CONTROLS[field]);
    if (box) box.textContent = message || '';
    if (!control) return;
    if (message) {
      control.setAttribute('aria-invalid', 'true');
      control.setAttribute('aria-describedby', box.id);
    } else control.removeAttribute('aria-invalid');
  }

  /** Put each 422 message next to its control, in plain words; returns the messages that have no control. */
  showErrors(errors) {
    this.clearErrors();
    const unplaced = [];
    for (const { field, message: raw } of errors) {
      const message = plainServerMessage(field, raw);
      const box = field && $(`error-${field}`);
      if (!box) {
        unplaced.push(field ? `${field}: ${message}` : message);
        continue;
      }
      box.textContent = box.textContent ? `${box.textContent} ${message}` : message;
      const control = $(FIELD_CONTROLS[field]);
      if (control) {
        control.setAttribute('aria-invalid', 'true');
        control.setAttribute('aria-describedby', box.id);
      }
    }
    return unplaced;
  }

  /** Server errors go; what the user typed wrong stays shown until it is fixed. */
  clearErrors() {
    for (const field of Object.keys(FIELD_CONTROLS)) this.showProblem(field, this.invalid[field] || null);
  }

  /** Viewers watch: every control that would change the run is disabled. */
  setEnabled(enabled) {
    this.enabled = enabled;
    document
      .querySelectorAll('.panel-data input, .panel-data button, .panel-data select, .hyper-row select')
      .forEach((el) => (el.disabled = !enabled));
    this.layers.setEnabled(enabled);
    $('reg-rate').disabled = !enabled || this.config.regularization === 'none'; // no rate without a regularizer
  }
}

function fillSelect(select, values) {
  select.replaceChildren(
    ...values.map((v) => {
      const o = document.createElement('option');
      o.value = String(v);
      o.textContent = String(v);
      return o;
    }),
  );
}

/** Select the option equal to a number, adding it if the URL asked for a value not in the list. */
function selectValue(select, value) {
  let option = [...select.options].find((o) => Number(o.value) === value);
  if (!option) {
    option = document.createElement('option');
    option.value = String(value);
    option.textContent = String(value);
    select.append(option);
  }
  select.value = option.value;
}

function setRange(id, value, label) {
  $(id).value = String(value);
  $(`${id}-value`).textContent = label;
}

// --- URL hash: a prepared configuration is a link ----------------------------------------

const LIST_KEYS = new Set(['features', 'hidden']);
const BOOL_KEYS = new Set(['stop_at_convergence']);
const NUMBER_KEYS = new Set([
  'n_samples',
  'noise',
  'train_ratio',
  'learning_rate',
  'batch_size',
  'regularization_rate',
  'seed',
  'max_steps',
]);

function configFromHash(datasets) {
  const params = readHash();
  const out = {};
  for (const [key, raw] of params) {
    if (!(key in DEFAULTS)) continue;
    if (key === 'hidden') out.hidden = raw === '' ? [] : raw.split(',').map(Number).filter(Number.isFinite);
    else if (key === 'features') out.features = raw.split(',').filter((f) => FEATURES.includes(f));
    else if (NUMBER_KEYS.has(key)) {
      const n = Number(raw);
      if (raw !== '' && Number.isFinite(n)) out[key] = n;
    } else if (BOOL_KEYS.has(key)) out[key] = raw === 'true';
    else out[key] = raw;
  }
  if (out.dataset && !datasets.some((d) => d.name === out.dataset)) delete out.dataset;
  return out;
}

function writeHash(config) {
  const settings = {};
  for (const key of Object.keys(DEFAULTS)) {
    const v = config[key];
    settings[key] = v === null || v === undefined ? null : LIST_KEYS.has(key) ? v.join(',') : String(v);
  }
  updateHash(settings);
}
