// A run's limits in plain words: checked as the user types, and used to repair a bookmark that strays.
// In a page the ranges are the server's RunConfig (app/engine/config.py form_schema, carried in
// the page); the numbers below serve node:test only, and tests/test_page_form.py holds them equal.

import { MAX_LAYERS, MAX_UNITS } from './layers.js';

export const DEFAULT_REG_RATE = 0.003; // chosen with L1 or L2, so the regularizer does something

/** Numeric settings: the name a person reads, the range, whether only whole numbers make sense. */
export const LIMITS = {
  n_samples: { name: 'Number of points', min: 10, max: 5000, whole: true },
  noise: { name: 'Noise', min: 0, max: 0.5 },
  train_ratio: { name: 'Training share', min: 0.1, max: 0.9 },
  learning_rate: { name: 'Learning rate', min: 0.00001, max: 10 },
  batch_size: { name: 'Batch size', min: 1, max: 512, whole: true },
  regularization_rate: { name: 'Regularization rate', min: 0, max: 10 },
  seed: { name: 'Seed', min: 0, max: 2 ** 31 - 1, whole: true },
  max_steps: { name: 'Max steps', min: 1, max: 10_000_000, whole: true },
};

const carried = globalThis.document?.body?.dataset.form;
for (const [key, range] of Object.entries(carried ? JSON.parse(carried).limits : {})) {
  if (LIMITS[key]) Object.assign(LIMITS[key], { min: range.min, max: range.max });
}

const plain = (n) => (Math.abs(n) > 0 && Math.abs(n) < 0.001 ? n.toFixed(5) : n.toLocaleString('en-US'));

/** What is wrong with `value` for setting `key`, as a sentence; null when it is fine. */
export function problem(key, value) {
  const limit = LIMITS[key];
  if (!limit) return null;
  if (value === null || value === undefined || Number.isNaN(value)) return `${limit.name} needs a number`;
  if (limit.whole && !Number.isInteger(value)) return `${limit.name} must be a whole number`;
  if (value < limit.min || value > limit.max) {
    return `${limit.name} must be between ${plain(limit.min)} and ${plain(limit.max)}`;
  }
  return null;
}

export const NO_FEATURES = 'Choose at least one input feature: the network needs something to look at';

/**
 * A config from a bookmark, brought within the limits: each number to the nearest allowed value,
 * at most MAX_LAYERS hidden layers of 1…MAX_UNITS units, at least one feature. Returns {config, notices}.
 */
export function repair(config, defaults) {
  const out = { ...config };
  const notices = [];
  for (const [key, limit] of Object.entries(LIMITS)) {
    const v = out[key];
    if (v === undefined || problem(key, v) === null) continue;
    const n = Number.isFinite(v) ? v : defaults[key];
    const fixed = Math.min(limit.max, Math.max(limit.min, limit.whole ? Math.round(n) : n));
    notices.push(`${limit.name} ${v} is outside ${plain(limit.min)}–${plain(limit.max)}: using ${plain(fixed)}`);
    out[key] = fixed;
  }
  if (out.hidden) {
    let hidden = out.hidden;
    if (hidden.length > MAX_LAYERS) {
      notices.push(`${hidden.length} hidden layers is more than ${MAX_LAYERS}: keeping the first ${MAX_LAYERS}`);
      hidden = hidden.slice(0, MAX_LAYERS);
    }
    const clamped = hidden.map((u) => Math.min(MAX_UNITS, Math.max(1, Math.round(u))));
    if (clamped.some((u, i) => u !== hidden[i])) notices.push(`each hidden layer has 1 to ${MAX_UNITS} neurons`);
    out.hidden = clamped;
  }
  if (out.features && !out.features.length) {
    notices.push('no input feature was chosen: using x₁ and x₂');
    out.features = [...defaults.features];
  }
  return { config: out, notices };
}

/** A server 422 message in plain words (pydantic says "Value error, …" and "Input should be …"). */
export function plainServerMessage(field, message) {
  if (field === 'features' && /at least 1 item/.test(message)) return NO_FEATURES;
  const limit = LIMITS[field];
  if (limit && /greater than|less than|valid (number|integer)/.test(message)) {
    return `${limit.name} must be between ${plain(limit.min)} and ${plain(limit.max)}`;
  }
  return message.replace(/^Value error, /, '').replace(/^./, (c) => c.toUpperCase());
}
